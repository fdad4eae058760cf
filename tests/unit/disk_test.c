/* SPDX-License-Identifier: MIT */
/*
 * The disk API end to end without a network: a state directory made by hand
 * around a published image, with every block already in the cache, and a
 * disk.conf whose URL nothing listens on. A disk whose blocks are all cached
 * works offline.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blockfs/cache.h"
#include "blockfs/repo.h"
#include "vdisk/disk.h"
#include "vdisk/publish.h"
#include "tests/unit/packfile.h"
#include "tests/unit/suites.h"
#include "tests/unit/testutil.h"

#define BLOCK   (16u << 10)
#define SECTOR  4096u
#define NBLOCKS 8u
/* Not a whole number of blocks nor of sectors: the last of each is short. */
#define IMG_SIZE ((uint64_t)(NBLOCKS - 1) * BLOCK + 5000)
#define ZERO_BLK 2u /* an all-zero block: never stored, never fetched */
#define NOBODY   "http://127.0.0.1:1"

static uint8_t image[IMG_SIZE]; /* the published image */
static uint8_t model[IMG_SIZE]; /* what the disk should read as */
static struct manifest man;
static char state[PATH_MAX];
static FILE *disk_log;

static void state_path(char out[PATH_MAX], const char *rel)
{
	ck_assert(snprintf(out, PATH_MAX, "%s/%s", state, rel) < PATH_MAX);
}

static void copy(const char *from, const char *to)
{
	struct buf b = { 0 };

	read_file(from, &b);
	write_file(to, b.data, b.len);
	buf_free(&b);
}

/* Publishes the image, makes disk D of it under state and caches every block. */
static void prepare(void)
{
	struct publish_opts po = { 0 };
	struct publish_result res;
	struct disk_conf conf = { .image = "img", .version = 1 };
	char path[PATH_MAX], repo_dir[PATH_MAX], key[PATH_MAX], pub_path[PATH_MAX];
	char *url = NOBODY;
	struct key *priv, *pub;
	struct buf raw = { 0 }, scratch = { 0 };
	struct repo *repo;
	struct cache *cache;
	struct circ_err err;
	uint8_t *data;

	for (uint32_t b = 0; b < NBLOCKS; b++) {
		uint64_t off = (uint64_t)b * BLOCK;
		size_t len = IMG_SIZE - off < BLOCK ? IMG_SIZE - off : BLOCK;

		if (b == ZERO_BLK)
			memset(image + off, 0, len);
		else
			fill_random(image + off, len, 77 + b);
	}
	memcpy(model, image, sizeof(image));
	test_keypair("publisher", &priv, &pub);
	test_path(path, "image.img");
	write_file(path, image, sizeof(image));
	test_path(repo_dir, "repo");
	test_path(key, "publisher.key");
	test_path(pub_path, "publisher.pub");
	po.repo_dir = repo_dir;
	po.key_path = key;
	po.name = "img";
	po.image = path;
	po.block_size = BLOCK;
	po.expires_in = 3600;
	po.threads = 1;
	po.level = 1;
	ck_assert_msg(publish_image(&po, &res, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(res.version, 1);
	ck_assert_uint_eq(res.zero_blocks, 1);

	test_path(state, "state");
	state_path(path, "disks/D");
	make_dirs(path);
	conf.urls[0] = url;
	conf.n_urls = 1;
	ck_assert_msg(disk_conf_save(path, &conf, &err) == 0, "%s", err.msg);
	state_path(path, "images/img");
	make_dirs(path);
	state_path(path, "images/img/key.pub");
	copy(pub_path, path);
	test_path(path, "repo/images/img/1.manifest");
	read_file(path, &raw);
	ck_assert_msg(manifest_decode(raw.data, raw.len, pub, &man, &err) == 0, "%s", err.msg);
	state_path(path, "disks/D/manifest.1");
	write_file(path, raw.data, raw.len);
	ck_assert_uint_eq(man.n_blocks, NBLOCKS);
	ck_assert(block_id_is_zero(&man.blocks[ZERO_BLK]));

	ck_assert_int_eq(repo_open_dir(repo_dir, false, &repo, &err), 0);
	state_path(path, "cache");
	ck_assert_int_eq(cache_open(path, 0, &cache, &err), 0);
	data = malloc(BLOCK);
	ck_assert_ptr_nonnull(data);
	for (uint32_t b = 0; b < NBLOCKS; b++) {
		if (block_id_is_zero(&man.blocks[b]))
			continue;
		ck_assert_msg(repo_read_block(repo, &man.blocks[b], BLOCK, data, &scratch, &err) ==
		                  0,
		              "%s", err.msg);
		ck_assert_int_eq(cache_put(cache, &man.blocks[b], data, BLOCK), 0);
	}
	free(data);
	cache_close(cache);
	repo_close(repo);
	buf_free(&raw);
	buf_free(&scratch);
	key_free(priv);
	key_free(pub);

	test_path(path, "disk.log");
	disk_log = fopen(path, "w+e");
	ck_assert_ptr_nonnull(disk_log);
}

static void cleanup(void)
{
	manifest_release(&man);
	if (disk_log)
		fclose(disk_log);
	disk_log = NULL;
}

static struct vdisk *open_disk(bool read_only)
{
	struct vdisk_options opts = { .net.timeout_ms = 2000,
		                      .workers = 1,
		                      .readahead = 4,
		                      .read_only = read_only,
		                      .log = disk_log };
	struct vdisk *vd = NULL;
	struct circ_err err;

	ck_assert_msg(vdisk_open(state, "D", &opts, &vd, &err) == 0, "%s", err.msg);
	return vd;
}

/* The whole disk reads as model. */
static void expect_model(struct vdisk *vd)
{
	static uint8_t back[IMG_SIZE];

	memset(back, 0xa5, sizeof(back));
	ck_assert_int_eq(vdisk_read(vd, back, IMG_SIZE, 0), 0);
	if (memcmp(back, model, IMG_SIZE) != 0)
		for (uint64_t i = 0; i < IMG_SIZE; i++)
			if (back[i] != model[i])
				ck_abort_msg("byte %llu reads %02x, want %02x",
				             (unsigned long long)i, back[i], model[i]);
}

static void write_at(struct vdisk *vd, uint64_t off, size_t len, uint64_t seed)
{
	uint8_t *buf = malloc(len ? len : 1);

	ck_assert_ptr_nonnull(buf);
	fill_random(buf, len, seed);
	ck_assert_int_eq(vdisk_write(vd, buf, len, off), 0);
	memcpy(model + off, buf, len);
	free(buf);
}

static void discard_at(struct vdisk *vd, uint64_t off, uint64_t len)
{
	ck_assert_int_eq(vdisk_discard(vd, off, len), 0);
	memset(model + off, 0, len);
}

START_TEST(test_reads_equal_image)
{
	static const struct {
		uint64_t off, len;
	} ranges[] = {
		{ 0, 1 },
		{ 1, 4094 },
		{ 4095, 2 },
		{ BLOCK - 1, 2 },
		{ BLOCK - 100, 3 * BLOCK },
		{ 2 * BLOCK + 7, BLOCK },  /* the zero block and the next */
		{ IMG_SIZE - 5000, 5000 }, /* the short last block */
		{ IMG_SIZE - 1, 1 },
		{ IMG_SIZE, 0 },
		{ 12345, 54321 },
	};
	struct vdisk *vd;
	struct disk_stats st;
	uint8_t *back = malloc(IMG_SIZE);

	prepare();
	vd = open_disk(false);
	ck_assert_uint_eq(vdisk_size(vd), IMG_SIZE);
	ck_assert_str_eq(vdisk_image(vd), "img");
	ck_assert_uint_eq(vdisk_version(vd), 1);
	ck_assert(!vdisk_read_only(vd));
	ck_assert_uint_eq(vdisk_created(vd), man.created);
	expect_model(vd);
	for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
		memset(back, 0xa5, IMG_SIZE);
		ck_assert_int_eq(vdisk_read(vd, back, ranges[i].len, ranges[i].off), 0);
		ck_assert_msg(memcmp(back, image + ranges[i].off, ranges[i].len) == 0,
		              "range %zu differs", i);
	}
	ck_assert_int_eq(vdisk_read(vd, back, 2, IMG_SIZE - 1), -EINVAL);
	ck_assert_int_eq(vdisk_read(vd, back, 0, IMG_SIZE + 1), -EINVAL);
	ck_assert_int_eq(vdisk_read(vd, back, 1, UINT64_MAX), -EINVAL);

	/* All from the cache: nothing fetched, nothing missed. */
	vdisk_get_stats(vd, &st);
	ck_assert_uint_gt(st.hits, 0);
	ck_assert_uint_eq(st.misses, 0);
	ck_assert_uint_eq(st.fetched_blocks, 0);
	ck_assert_uint_eq(st.requests, 0);
	ck_assert_uint_eq(st.overlay_bytes, 0);
	ck_assert_int_eq(vdisk_close(vd), 0);
	free(back);
	cleanup();
}
END_TEST

START_TEST(test_writes_read_back)
{
	struct disk_stats st;
	struct vdisk *vd;

	prepare();
	vd = open_disk(false);
	write_at(vd, 1, 3, 1);                       /* inside one sector */
	write_at(vd, 4090, 20, 2);                   /* across a sector line */
	write_at(vd, BLOCK - 5, 10, 3);              /* across a block line */
	write_at(vd, 5000, 9000, 4);                 /* three sectors, both ends partial */
	write_at(vd, 2 * SECTOR, 2 * SECTOR, 5);     /* whole sectors */
	write_at(vd, ZERO_BLK * BLOCK + 100, 50, 6); /* in the zero block */
	write_at(vd, ZERO_BLK * BLOCK + SECTOR, SECTOR, 7);
	write_at(vd, IMG_SIZE - 3, 3, 8); /* the short last sector */
	write_at(vd, IMG_SIZE - 904, 904, 9);
	write_at(vd, 4091, 1, 10);        /* rewrite inside an overlay sector */
	write_at(vd, 3, 20 * SECTOR, 13); /* more sectors than a write stages on the stack */
	write_at(vd, 0, 0, 11);
	expect_model(vd);
	vdisk_get_stats(vd, &st);
	ck_assert_uint_gt(st.overlay_bytes, 0);
	ck_assert_uint_eq(st.fetched_blocks, 0);
	ck_assert_int_eq(vdisk_flush(vd), 0);
	expect_model(vd);
	ck_assert_int_eq(vdisk_close(vd), 0);

	vd = open_disk(false);
	expect_model(vd);
	/* vdisk_close flushes: writes without a flush of their own survive it. */
	write_at(vd, 3 * BLOCK + 17, 3 * SECTOR, 12);
	ck_assert_int_eq(vdisk_close(vd), 0);
	vd = open_disk(false);
	expect_model(vd);
	ck_assert_int_eq(vdisk_close(vd), 0);
	cleanup();
}
END_TEST

/*
 * A write that fails partway (here the file size limit stops the overlay's
 * data file three sectors in, as a full file system would) changes nothing:
 * not what the disk reads, not what the next flush makes durable.
 */
START_TEST(test_failed_write_changes_nothing)
{
	static uint8_t big[64 << 10];
	struct rlimit rl, saved;
	char data[PATH_MAX + 32];
	struct stat st;
	struct vdisk *vd;

	prepare();
	vd = open_disk(false);
	write_at(vd, 0, SECTOR, 1);
	ck_assert_int_eq(vdisk_flush(vd), 0);
	snprintf(data, sizeof(data), "%s/disks/D/overlay.data", state);
	ck_assert_int_eq(stat(data, &st), 0);
	signal(SIGXFSZ, SIG_IGN);
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &saved), 0);
	rl = saved;
	rl.rlim_cur = (rlim_t)st.st_size + 3 * SECTOR;
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
	fill_random(big, sizeof(big), 2);
	ck_assert_int_ne(vdisk_write(vd, big, sizeof(big), 3 * BLOCK + 7), 0);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &saved), 0);
	expect_model(vd);
	ck_assert_int_eq(vdisk_flush(vd), 0);
	ck_assert_int_eq(vdisk_close(vd), 0);
	vd = open_disk(false);
	expect_model(vd);
	ck_assert_int_eq(vdisk_close(vd), 0);
	cleanup();
}
END_TEST

START_TEST(test_discard_reads_zeros)
{
	struct disk_stats st;
	struct vdisk *vd;

	prepare();
	vd = open_disk(false);
	write_at(vd, 0, 4 * SECTOR, 1);
	discard_at(vd, SECTOR, 2 * SECTOR); /* whole sectors */
	discard_at(vd, 100, 50);            /* inside one */
	discard_at(vd, BLOCK + 4000, 9000); /* across sectors, partial ends */
	discard_at(vd, IMG_SIZE - 10, 10);
	discard_at(vd, 5 * BLOCK, BLOCK); /* a whole block of base */
	discard_at(vd, 0, 0);
	expect_model(vd);
	ck_assert_int_eq(vdisk_discard(vd, IMG_SIZE - 1, 2), -EINVAL);
	ck_assert_int_eq(vdisk_discard(vd, IMG_SIZE + 1, 0), -EINVAL);
	vdisk_get_stats(vd, &st);
	/* Whole discarded sectors hold no data; partly discarded ones do: 0, 3, 4, 7, 29. */
	ck_assert_uint_eq(st.overlay_bytes, 5 * SECTOR);
	ck_assert_int_eq(vdisk_close(vd), 0);
	vd = open_disk(false);
	expect_model(vd);
	/* Writing over a discarded range brings data back. */
	write_at(vd, SECTOR + 10, 100, 2);
	expect_model(vd);
	ck_assert_int_eq(vdisk_close(vd), 0);
	cleanup();
}
END_TEST

START_TEST(test_read_only)
{
	uint8_t buf[SECTOR] = { 1 };
	char conf[PATH_MAX];
	struct buf before = { 0 }, after = { 0 };
	struct vdisk *vd;

	prepare();
	vd = open_disk(false);
	write_at(vd, 10, 10, 1);
	ck_assert_int_eq(vdisk_close(vd), 0);
	state_path(conf, "disks/D/overlay.log");
	read_file(conf, &before);

	vd = open_disk(true);
	ck_assert(vdisk_read_only(vd));
	expect_model(vd);
	ck_assert_int_eq(vdisk_write(vd, buf, 1, 0), -EROFS);
	ck_assert_int_eq(vdisk_write(vd, buf, SECTOR, 0), -EROFS);
	ck_assert_int_eq(vdisk_discard(vd, 0, SECTOR), -EROFS);
	ck_assert_int_eq(vdisk_flush(vd), 0);
	expect_model(vd);
	ck_assert_int_eq(vdisk_close(vd), 0);
	read_file(conf, &after);
	ck_assert_uint_eq(after.len, before.len);
	buf_free(&before);
	buf_free(&after);
	cleanup();
}
END_TEST

START_TEST(test_beyond_end)
{
	uint8_t buf[2 * SECTOR];
	struct vdisk *vd;

	prepare();
	vd = open_disk(false);
	memset(buf, 0x77, sizeof(buf));
	ck_assert_int_eq(vdisk_write(vd, buf, 2, IMG_SIZE - 1), -ENOSPC);
	ck_assert_int_eq(vdisk_write(vd, buf, sizeof(buf), IMG_SIZE - SECTOR), -ENOSPC);
	ck_assert_int_eq(vdisk_write(vd, buf, 1, IMG_SIZE), -ENOSPC);
	ck_assert_int_eq(vdisk_write(vd, buf, 0, IMG_SIZE + 1), -ENOSPC);
	ck_assert_int_eq(vdisk_write(vd, buf, 1, UINT64_MAX), -ENOSPC);
	ck_assert_int_eq(vdisk_write(vd, buf, 0, IMG_SIZE), 0);
	/* A refused write changed nothing, not even its part inside the disk. */
	expect_model(vd);
	ck_assert_int_eq(vdisk_close(vd), 0);
	cleanup();
}
END_TEST

/* A disk is used by one process at a time. */
START_TEST(test_locked_while_open)
{
	struct vdisk_options opts = { .log = NULL };
	struct vdisk *vd, *second = NULL;
	struct circ_err err;

	prepare();
	vd = open_disk(false);
	ck_assert_int_eq(vdisk_open(state, "D", &opts, &second, &err), -1);
	ck_assert_int_eq(err.errnum, EBUSY);
	ck_assert_ptr_null(second);
	ck_assert_int_eq(vdisk_close(vd), 0);
	vd = open_disk(true);
	ck_assert_int_eq(vdisk_close(vd), 0);

	ck_assert_int_eq(vdisk_open(state, "no-such-disk", &opts, &second, &err), -1);
	ck_assert_int_eq(err.errnum, ENOENT);
	ck_assert_int_eq(vdisk_open(state, "../D", &opts, &second, &err), -1);
	ck_assert_int_eq(err.errnum, EINVAL);
	cleanup();
}
END_TEST

/* The local manifest is checked like one from the network. */
START_TEST(test_tampered_state_refused)
{
	struct vdisk_options opts = { .log = NULL };
	char path[PATH_MAX], other[PATH_MAX];
	struct vdisk *vd = NULL;
	struct key *priv, *pub;
	struct circ_err err;
	struct buf b = { 0 };

	prepare();
	state_path(path, "disks/D/manifest.1");
	read_file(path, &b);
	b.data[b.len / 2] ^= 1;
	write_file(path, b.data, b.len);
	ck_assert_int_eq(vdisk_open(state, "D", &opts, &vd, &err), -1);
	b.data[b.len / 2] ^= 1;
	write_file(path, b.data, b.len);
	vd = open_disk(false);
	ck_assert_int_eq(vdisk_close(vd), 0);

	/* Another key pinned for the image. */
	test_keypair("stranger", &priv, &pub);
	test_path(other, "stranger.pub");
	state_path(path, "images/img/key.pub");
	copy(other, path);
	vd = NULL;
	ck_assert_int_eq(vdisk_open(state, "D", &opts, &vd, &err), -1);
	ck_assert_ptr_null(vd);
	key_free(priv);
	key_free(pub);
	buf_free(&b);
	cleanup();
}
END_TEST

/* A block neither cached nor reachable fails the read with EIO and is named in the log. */
START_TEST(test_uncached_block_offline)
{
	char hex[BLOCK_ID_HEX_LEN + 1], path[PATH_MAX], logtext[4096];
	uint8_t buf[2 * SECTOR];
	struct vdisk *vd;
	size_t n;

	prepare();
	block_id_to_hex(&man.blocks[4], hex);
	state_path(path, "cache");
	ck_assert(pack_record_forget(path, &man.blocks[4]));
	vd = open_disk(false);
	ck_assert_int_eq(vdisk_read(vd, buf, 10, 4 * BLOCK + 5), -EIO);
	ck_assert_int_eq(vdisk_read(vd, buf, 10, 3 * BLOCK + 5), 0);
	ck_assert_mem_eq(buf, image + 3 * BLOCK + 5, 10);
	/* A whole-sector write never needs the base; a partial one does. */
	memset(buf, 0x11, sizeof(buf));
	ck_assert_int_eq(vdisk_write(vd, buf, SECTOR, 4 * BLOCK + SECTOR), 0);
	memcpy(model + 4 * BLOCK + SECTOR, buf, SECTOR);
	ck_assert_int_eq(vdisk_read(vd, buf, SECTOR, 4 * BLOCK + SECTOR), 0);
	ck_assert_mem_eq(buf, model + 4 * BLOCK + SECTOR, SECTOR);
	ck_assert_int_eq(vdisk_write(vd, buf, 10, 4 * BLOCK + 5), -EIO);
	ck_assert_int_eq(vdisk_close(vd), 0);

	fflush(disk_log);
	rewind(disk_log);
	n = fread(logtext, 1, sizeof(logtext) - 1, disk_log);
	logtext[n] = '\0';
	ck_assert_msg(strstr(logtext, hex) != NULL, "log does not name the block: %s", logtext);
	ck_assert_msg(strstr(logtext, "block 4 ") != NULL, "log does not name block 4: %s",
	              logtext);
	cleanup();
}
END_TEST

/* Statistics add up across sessions and are saved on close. */
START_TEST(test_stats_across_sessions)
{
	struct disk_stats st, saved;
	char dir[PATH_MAX];
	uint8_t buf[100];
	struct vdisk *vd;
	uint64_t hits;

	prepare();
	vd = open_disk(false);
	ck_assert_int_eq(vdisk_read(vd, buf, sizeof(buf), 0), 0);
	ck_assert_int_eq(vdisk_read(vd, buf, sizeof(buf), BLOCK), 0);
	vdisk_get_stats(vd, &st);
	hits = st.hits;
	ck_assert_uint_ge(hits, 2);
	write_at(vd, 0, SECTOR, 1);
	ck_assert_int_eq(vdisk_close(vd), 0);
	state_path(dir, "disks/D");
	ck_assert_int_eq(disk_stats_load(dir, &saved), 0);
	ck_assert_uint_eq(saved.hits, hits);
	ck_assert_uint_eq(saved.overlay_bytes, SECTOR);

	vd = open_disk(false);
	ck_assert_int_eq(vdisk_read(vd, buf, sizeof(buf), 3 * BLOCK), 0);
	vdisk_get_stats(vd, &st);
	ck_assert_uint_eq(st.hits, hits + 1);
	ck_assert_uint_eq(st.overlay_bytes, SECTOR);
	vdisk_save_stats(vd);
	ck_assert_int_eq(disk_stats_load(dir, &saved), 0);
	ck_assert_uint_eq(saved.hits, hits + 1);
	ck_assert_int_eq(vdisk_close(vd), 0);
	cleanup();
}
END_TEST

/* --- threads --- */

#define PIECES 8
#define ROUNDS 300

struct piece_arg {
	struct vdisk *vd;
	pthread_barrier_t *go;
	unsigned piece;
	uint64_t base; /* offset of the shared sector */
	atomic_uint *errors;
};

static void *piece_writer(void *p)
{
	struct piece_arg *a = p;
	uint8_t buf[SECTOR / PIECES];

	for (unsigned r = 1; r <= ROUNDS; r++) {
		memset(buf, (int)(r * PIECES + a->piece) & 0xff, sizeof(buf));
		pthread_barrier_wait(a->go);
		if (vdisk_write(a->vd, buf, sizeof(buf), a->base + a->piece * sizeof(buf)))
			atomic_fetch_add(a->errors, 1);
		pthread_barrier_wait(a->go);
		pthread_barrier_wait(a->go); /* the main thread checks between rounds */
	}
	return NULL;
}

/*
 * Threads writing different bytes of one sector at once (a guest's 512-byte
 * sectors through the multithreaded FUSE loop) must each see their bytes
 * land: a read-modify-write of the sector must not lose another's write.
 */
START_TEST(test_bug_concurrent_partial_writes)
{
	struct piece_arg args[PIECES];
	pthread_t tids[PIECES];
	pthread_barrier_t go;
	atomic_uint errors = 0;
	unsigned lost = 0;
	uint8_t back[SECTOR];
	struct vdisk *vd;

	prepare();
	vd = open_disk(false);
	ck_assert_int_eq(pthread_barrier_init(&go, NULL, PIECES + 1), 0);
	for (unsigned i = 0; i < PIECES; i++) {
		args[i] = (struct piece_arg){ vd, &go, i, 3 * BLOCK + SECTOR, &errors };
		ck_assert_int_eq(pthread_create(&tids[i], NULL, piece_writer, &args[i]), 0);
	}
	for (unsigned r = 1; r <= ROUNDS; r++) {
		pthread_barrier_wait(&go);
		pthread_barrier_wait(&go);
		ck_assert_int_eq(vdisk_read(vd, back, SECTOR, 3 * BLOCK + SECTOR), 0);
		for (unsigned i = 0; i < PIECES; i++)
			lost += back[i * (SECTOR / PIECES)] != ((r * PIECES + i) & 0xff);
		pthread_barrier_wait(&go);
	}
	for (unsigned i = 0; i < PIECES; i++)
		pthread_join(tids[i], NULL);
	pthread_barrier_destroy(&go);
	ck_assert_uint_eq(atomic_load(&errors), 0);
	ck_assert_msg(lost == 0, "%u of %u partial writes lost", lost, ROUNDS * PIECES);
	ck_assert_int_eq(vdisk_close(vd), 0);
	cleanup();
}
END_TEST

struct rw_arg {
	struct vdisk *vd;
	unsigned id;
	atomic_uint *bad;
};

/* Each thread owns whole sectors; it writes and reads them back, others do the same. */
static void *sector_owner(void *p)
{
	struct rw_arg *a = p;
	uint8_t buf[SECTOR], back[SECTOR];

	for (unsigned r = 0; r < 100; r++) {
		uint64_t s = 2 * a->id + 8 * (r % 3); /* it owns sectors s and s + 1 */
		uint64_t off = s * SECTOR + (r % 3) * 7;
		size_t len = r % 2 ? SECTOR : SECTOR - 100;

		fill_random(buf, len, (uint64_t)a->id * 1000 + r);
		if (vdisk_write(a->vd, buf, len, off) || vdisk_read(a->vd, back, len, off) ||
		    memcmp(buf, back, len) != 0)
			atomic_fetch_add(a->bad, 1);
		if (r % 10 == 0 && vdisk_flush(a->vd))
			atomic_fetch_add(a->bad, 1);
	}
	return NULL;
}

START_TEST(test_threads_own_ranges)
{
	struct rw_arg args[4];
	pthread_t tids[4];
	atomic_uint bad = 0;
	struct vdisk *vd;

	prepare();
	vd = open_disk(false);
	for (unsigned i = 0; i < 4; i++) {
		args[i] = (struct rw_arg){ vd, i, &bad };
		ck_assert_int_eq(pthread_create(&tids[i], NULL, sector_owner, &args[i]), 0);
	}
	for (unsigned i = 0; i < 4; i++)
		pthread_join(tids[i], NULL);
	ck_assert_uint_eq(atomic_load(&bad), 0);
	ck_assert_int_eq(vdisk_close(vd), 0);
	cleanup();
}
END_TEST

Suite *disk_suite(void)
{
	Suite *s = suite_create("disk");
	TCase *tc = tcase_create("disk");
	TCase *bugs = tcase_create("regressions");

	tcase_add_scratch(tc);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_reads_equal_image);
	tcase_add_test(tc, test_writes_read_back);
	tcase_add_test(tc, test_failed_write_changes_nothing);
	tcase_add_test(tc, test_discard_reads_zeros);
	tcase_add_test(tc, test_read_only);
	tcase_add_test(tc, test_beyond_end);
	tcase_add_test(tc, test_locked_while_open);
	tcase_add_test(tc, test_tampered_state_refused);
	tcase_add_test(tc, test_uncached_block_offline);
	tcase_add_test(tc, test_stats_across_sessions);
	tcase_add_test(tc, test_threads_own_ranges);
	suite_add_tcase(s, tc);

	/* Regression: concurrent partial writes to one sector. */
	tcase_add_scratch(bugs);
	tcase_set_timeout(bugs, 30);
	tcase_add_test(bugs, test_bug_concurrent_partial_writes);
	suite_add_tcase(s, bugs);
	return s;
}
