/* SPDX-License-Identifier: MIT */
/*
 * Power cuts of everything but the overlay (overlay_crash_test.c): the block
 * cache, the publisher and circ update's base switch each run through a
 * crashfs (crashfs.h says what an image may hold), and each crash image
 * must keep their promises:
 * - the cache opens, and every block reads back whole or misses; what a
 *   cache_sync covered hits;
 * - a repo's pointer, if there is one, is a version whose manifest and
 *   every block are there and verify, and read as that version's image; a
 *   publish that returned is never undone, and one made after the cut names
 *   no block the cut tore;
 * - a disk is on the old version with its writes (or, asked to drop them,
 *   without), or on the new one whole; its seen version never passes it;
 *   all of circ update (fetching into the cache, the switch) through one
 *   recorder: on the new version, every changed block is whole in the
 *   cache, and an update run again after the cut ends there whole.
 * CIRC_CRASH_IMAGES sets how many images each (default 1000; `make stress` more).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "blockfs/block.h"
#include "blockfs/cache.h"
#include "blockfs/repo.h"
#include "vdisk/image.h"
#include "vdisk/publish.h"
#include "vdisk/state.h"
#include "server/server.h"
#include "tests/unit/crashfs.h"
#include "tests/unit/suites.h"
#include "tests/unit/testutil.h"

/* An empty scratch directory for the next image. */
static void fresh_dir(char out[PATH_MAX], const char *name)
{
	test_path(out, name);
	rm_rf(out);
	make_dirs(out);
}

/* --- the block cache --------------------------------------------------------------- */

#define CACHE_BLOCK  4096
#define CACHE_BLOCKS 48 /* distinct blocks put */
/*
 * Bounds under which blocks are put past the bound: 80 KiB gives each block
 * a pack of its own, 160 KiB packs of two blocks (one bound / 16 each), so
 * that a cut can fall between a pack's payloads and slots.
 */
static const uint64_t cache_bounds[] = { 20 * CACHE_BLOCK, 40 * CACHE_BLOCK };

static void cache_block(uint32_t i, uint8_t out[CACHE_BLOCK], struct block_id *id)
{
	fill_random(out, CACHE_BLOCK, 1000 + i);
	block_id_compute(id, out, CACHE_BLOCK);
}

START_TEST(test_cache_power_cuts)
{
	static uint8_t data[CACHE_BLOCKS][CACHE_BLOCK];
	struct block_id ids[CACHE_BLOCKS];
	bool synced[CACHE_BLOCKS] = { false };
	char live[PATH_MAX], scratch[PATH_MAX];
	size_t images = crashfs_images(), first, sync_end, last;
	uint64_t x = 0x51ed270b27a5c3f1ull;
	struct crashfs *rec;
	struct circ_err err;
	struct cache *c;
	size_t hits = 0;

	for (uint32_t i = 0; i < CACHE_BLOCKS; i++)
		cache_block(i, data[i], &ids[i]);
	fresh_dir(live, "cache");
	rec = crashfs_new(live);
	first = crashfs_now(rec);
	ck_assert_msg(cache_open_io(live, cache_bounds[_i], crashfs_io(rec), &c, &err) == 0, "%s",
	              err.msg);
	/* Puts past the bound (so evictions), a sync, then more puts and evictions. */
	for (uint32_t i = 0; i < 36; i++)
		ck_assert_int_eq(cache_put(c, &ids[i], data[i], CACHE_BLOCK), 0);
	ck_assert_int_eq(cache_sync(c), 0);
	sync_end = crashfs_now(rec);
	for (uint32_t i = 36; i < CACHE_BLOCKS; i++)
		ck_assert_int_eq(cache_put(c, &ids[i], data[i], CACHE_BLOCK), 0);
	/* What the sync covered and nothing evicted since must survive any later cut. */
	for (uint32_t i = 0; i < 36; i++)
		synced[i] = cache_contains(c, &ids[i]);
	cache_close(c);
	last = crashfs_now(rec);
	/* More packs made than the bound holds at once: packs were removed. */
	ck_assert_uint_gt(crashfs_files_created(rec) * 2 * CACHE_BLOCK, cache_bounds[_i]);

	for (size_t image = 0; image < images; image++) {
		size_t k = first + crashfs_draw(&x) % (last - first + 1);

		fresh_dir(scratch, "crash");
		crashfs_image(rec, k, crashfs_draw(&x) ^ image, scratch);
		ck_assert_msg(cache_open(scratch, 0, &c, &err) == 0,
		              "image %zu (crash after op %zu): the cache does not open: %s", image,
		              k, err.msg);
		for (uint32_t i = 0; i < CACHE_BLOCKS; i++) {
			uint8_t got[CACHE_BLOCK];
			int rc = cache_read(c, &ids[i], CACHE_BLOCK, 0, CACHE_BLOCK, got);

			ck_assert_msg(rc == 0 || rc == -ENOENT,
			              "image %zu (crash after op %zu): block %u: error %d", image,
			              k, i, rc);
			ck_assert_msg(rc || memcmp(got, data[i], CACHE_BLOCK) == 0,
			              "image %zu (crash after op %zu): block %u reads wrong bytes",
			              image, k, i);
			ck_assert_msg(rc == 0 || !synced[i] || k < sync_end,
			              "image %zu (crash after op %zu): block %u was synced and is "
			              "gone",
			              image, k, i);
			hits += rc == 0;
		}
		cache_close(c);
	}
	/* The images must not all be empty caches: then nothing was tested. */
	ck_assert_uint_gt(hits, images);
	crashfs_free(rec);
}
END_TEST

/*
 * A cache in the older layout (one file per block) moved into packs, cut
 * by a power failure anywhere: every block it held is still there, in its
 * old file or in a pack, and nothing reads wrong.
 */
START_TEST(test_cache_migration_power_cuts)
{
	static uint8_t data[CACHE_BLOCKS][CACHE_BLOCK];
	struct block_id ids[CACHE_BLOCKS];
	char live[PATH_MAX], scratch[PATH_MAX], path[PATH_MAX + 80];
	size_t images = crashfs_images() / 4 + 1, first, last;
	uint64_t x = 0x2545f4914f6cdd1dull;
	struct cache_options quiet = { 0 };
	struct crashfs *rec;
	struct circ_err err;
	struct cache *c;

	fresh_dir(live, "cache");
	for (uint32_t i = 0; i < CACHE_BLOCKS; i++) {
		char hex[BLOCK_ID_HEX_LEN + 1];

		cache_block(i, data[i], &ids[i]);
		block_id_to_hex(&ids[i], hex);
		snprintf(path, sizeof(path), "%s/%.2s", live, hex);
		make_dirs(path);
		snprintf(path, sizeof(path), "%s/%.2s/%s", live, hex, hex);
		write_file(path, data[i], CACHE_BLOCK);
	}
	rec = crashfs_new(live);
	first = crashfs_now(rec);
	quiet.fio = crashfs_io(rec);
	ck_assert_msg(cache_open_opts(live, &quiet, &c, &err) == 0, "%s", err.msg);
	quiet.fio = NULL;
	cache_close(c);
	last = crashfs_now(rec);
	ck_assert_uint_gt(last, first + CACHE_BLOCKS);

	for (size_t image = 0; image < images; image++) {
		size_t k = first + crashfs_draw(&x) % (last - first + 1);

		fresh_dir(scratch, "crash");
		crashfs_image(rec, k, crashfs_draw(&x) ^ image, scratch);
		ck_assert_msg(cache_open_opts(scratch, &quiet, &c, &err) == 0,
		              "image %zu (crash after op %zu): the cache does not open: %s", image,
		              k, err.msg);
		for (uint32_t i = 0; i < CACHE_BLOCKS; i++) {
			uint8_t got[CACHE_BLOCK];
			int rc = cache_read(c, &ids[i], CACHE_BLOCK, 0, CACHE_BLOCK, got);

			ck_assert_msg(rc == 0, "image %zu (crash after op %zu): block %u lost: %d",
			              image, k, i, rc);
			ck_assert_msg(memcmp(got, data[i], CACHE_BLOCK) == 0,
			              "image %zu (crash after op %zu): block %u reads wrong bytes",
			              image, k, i);
		}
		cache_close(c);
	}
	crashfs_free(rec);
}
END_TEST

/* --- the publisher ----------------------------------------------------------------- */

#define PUB_BLOCK  4096
#define PUB_BLOCKS 12
#define PUB_SIZE   (PUB_BLOCKS * PUB_BLOCK)

/* Version v's image: some blocks change from one version to the next, one is zeros. */
static void pub_image(uint32_t v, uint8_t out[PUB_SIZE])
{
	for (uint32_t b = 0; b < PUB_BLOCKS; b++)
		if (b == 5)
			memset(out + b * PUB_BLOCK, 0, PUB_BLOCK);
		else
			fill_random(out + b * PUB_BLOCK, PUB_BLOCK, b % 3 ? 500 + b : 500 + b + v);
}

/* Publishes version v's image into repo through fio (NULL: the system's); returns its number. */
static uint64_t publish_content(const struct fileio *fio, const char *repo, uint32_t v)
{
	static uint8_t img[PUB_SIZE];
	struct publish_result res;
	char path[PATH_MAX], key[PATH_MAX];
	struct publish_opts po = { 0 };
	struct circ_err err;

	pub_image(v, img);
	test_path(path, "pub.img");
	write_file(path, img, sizeof(img));
	test_path(key, "publisher.key");
	po.repo_dir = repo;
	po.key_path = key;
	po.name = "img";
	po.image = path;
	po.block_size = PUB_BLOCK;
	po.expires_in = 3600;
	po.threads = 1;
	po.level = 1;
	po.fio = fio;
	ck_assert_msg(publish_image(&po, &res, &err) == 0, "%s", err.msg);
	return res.version;
}

/*
 * Which version the repo's pointer names (0: none), its manifest and blocks
 * checked against the image of that version, or of version `content` if not 0.
 */
static uint32_t check_repo(const char *dir, const struct key *pub, uint32_t content, size_t image,
                           size_t k)
{
	static uint8_t want[PUB_SIZE], got[PUB_BLOCK];
	struct manifest m = { 0 };
	struct buf scratch = { 0 };
	struct circ_err err;
	struct pointer pt;
	struct repo *r;
	uint32_t v;

	ck_assert_int_eq(repo_open_dir(dir, false, &r, &err), 0);
	if (image_load_pointer(r, pub, "img", (uint64_t)time(NULL), &pt, &err)) {
		ck_assert_msg(err.errnum == ENOENT,
		              "image %zu (crash after op %zu): the pointer does not load: %s",
		              image, k, err.msg);
		repo_close(r);
		return 0;
	}
	ck_assert_msg(image_load_manifest(r, pub, &pt, 0, &m, NULL, &err) == 0,
	              "image %zu (crash after op %zu): the pointer names version %llu, whose "
	              "manifest does not load: %s",
	              image, k, (unsigned long long)pt.version, err.msg);
	v = (uint32_t)pt.version;
	pub_image(content ? content : v, want);
	ck_assert_uint_eq(m.n_blocks, PUB_BLOCKS);
	for (uint32_t b = 0; b < PUB_BLOCKS; b++) {
		if (block_id_is_zero(&m.blocks[b])) {
			ck_assert(block_is_zero(want + b * PUB_BLOCK, PUB_BLOCK));
			continue;
		}
		ck_assert_msg(repo_read_block(r, &m.blocks[b], PUB_BLOCK, got, &scratch, &err) == 0,
		              "image %zu (crash after op %zu): version %u names block %u, which "
		              "does not read: %s",
		              image, k, v, b, err.msg);
		ck_assert_msg(
		    memcmp(got, want + b * PUB_BLOCK, PUB_BLOCK) == 0,
		    "image %zu (crash after op %zu): version %u block %u is not its image's", image,
		    k, v, b);
	}
	manifest_release(&m);
	buf_free(&scratch);
	repo_close(r);
	return v;
}

START_TEST(test_publish_power_cuts)
{
	char live[PATH_MAX], scratch[PATH_MAX];
	size_t images = crashfs_images(), first, done[3], last;
	uint64_t x = 0x2545f4914f6cdd1dull;
	struct key *priv, *pub;
	struct crashfs *rec;
	uint32_t seen[4] = { 0 };

	test_keypair("publisher", &priv, &pub);
	fresh_dir(live, "repo");
	rec = crashfs_new(live);
	first = crashfs_now(rec);
	for (uint32_t v = 1; v <= 3; v++) {
		ck_assert_uint_eq(publish_content(crashfs_io(rec), live, v), v);
		done[v - 1] = crashfs_now(rec);
	}
	last = crashfs_now(rec);

	for (size_t image = 0; image < images; image++) {
		size_t k = first + crashfs_draw(&x) % (last - first + 1);
		uint32_t v, promised = 0;

		fresh_dir(scratch, "crash");
		crashfs_image(rec, k, crashfs_draw(&x) ^ image, scratch);
		v = check_repo(scratch, pub, 0, image, k);
		for (uint32_t i = 0; i < 3; i++)
			if (k >= done[i])
				promised = i + 1;
		ck_assert_msg(v >= promised,
		              "image %zu (crash after op %zu): version %u was published, the "
		              "pointer names %u",
		              image, k, promised, v);
		seen[v]++;
		/*
		 * Now and then, publish again after the cut: blocks it finds under
		 * their names must be whole (a cut may have torn them), or it would
		 * publish a version naming damaged blocks.
		 */
		if (image % 8 == 0) {
			uint64_t next = publish_content(NULL, scratch, 4);

			ck_assert_uint_eq(check_repo(scratch, pub, 4, image, k), next);
		}
	}
	/* Cuts before, during and after: more than one version must have been seen. */
	ck_assert_uint_gt((seen[0] != 0) + (seen[1] != 0) + (seen[2] != 0) + (seen[3] != 0),
	                  images > 20 ? 2 : 0);
	crashfs_free(rec);
	key_free(priv);
	key_free(pub);
}
END_TEST

/* --- circ update's base switch ----------------------------------------------------- */

static const char overlay_bytes[] = "the local writes";

/* STATE with disk D on image img version 1, local writes and a seen version of 1. */
static void switch_setup(char state[PATH_MAX], char dir[PATH_MAX], const struct buf *raw1)
{
	struct disk_conf conf = { .image = "img", .version = 1 };
	static char url[] = "http://circ.invalid/repo";
	const char *names[] = { "overlay.map", "overlay.log", "overlay.data" };
	char path[PATH_MAX + 32];
	struct circ_err err;

	fresh_dir(state, "state");
	ck_assert(snprintf(dir, PATH_MAX, "%s/disks/D", state) < PATH_MAX);
	make_dirs(dir);
	conf.urls[0] = url;
	conf.n_urls = 1;
	ck_assert_msg(disk_conf_save(dir, &conf, &err) == 0, "%s", err.msg);
	ck_assert_msg(state_write_manifest(dir, 1, raw1, &err) == 0, "%s", err.msg);
	for (int i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		write_file(path, overlay_bytes, sizeof(overlay_bytes));
	}
	snprintf(path, sizeof(path), "%s/images/img", state);
	make_dirs(path);
	ck_assert_msg(state_seen_raise(state, "img", 1, &err) == 0, "%s", err.msg);
}

/* Whether a file holds exactly len bytes of data; false when it is missing. */
static bool file_is(const char *path, const void *data, size_t len)
{
	struct buf b = { 0 };
	struct stat st;
	bool same;

	if (stat(path, &st))
		return false;
	read_file(path, &b);
	same = b.len == len && memcmp(b.data, data, len) == 0;
	buf_free(&b);
	return same;
}

/* Checks the state directory a cut at op k left; returns the disk's version. */
static uint64_t check_switch(const char *state, bool drop, const struct buf *raw[3], size_t image,
                             size_t k, bool done)
{
	char dir[PATH_MAX], path[PATH_MAX + 32];
	struct disk_conf conf = { 0 };
	struct circ_err err;
	uint64_t seen, version;
	bool writes;

	ck_assert(snprintf(dir, sizeof(dir), "%s/disks/D", state) < (int)sizeof(dir));
	ck_assert_msg(disk_conf_load(dir, &conf, &err) == 0,
	              "image %zu (crash after op %zu): disk.conf: %s", image, k, err.msg);
	ck_assert_msg(conf.version == 1 || conf.version == 2,
	              "image %zu (crash after op %zu): version %llu", image, k,
	              (unsigned long long)conf.version);
	ck_assert_msg(!done || conf.version == 2,
	              "image %zu (crash after op %zu): the switch returned, the disk is back on "
	              "version 1",
	              image, k);
	snprintf(path, sizeof(path), "%s/manifest.%llu", dir, (unsigned long long)conf.version);
	ck_assert_msg(file_is(path, raw[conf.version]->data, raw[conf.version]->len),
	              "image %zu (crash after op %zu): version %llu's manifest is missing or "
	              "wrong",
	              image, k, (unsigned long long)conf.version);
	ck_assert_int_eq(state_seen_load(state, "img", &seen, &err), 0);
	ck_assert_msg(seen <= conf.version,
	              "image %zu (crash after op %zu): seen version %llu is past the disk's "
	              "%llu: it would be refused",
	              image, k, (unsigned long long)seen, (unsigned long long)conf.version);
	ck_assert_msg(state_disk_check_version(dir, &conf, &err) == 0,
	              "image %zu (crash after op %zu): %s", image, k, err.msg);
	snprintf(path, sizeof(path), "%s/overlay.log", dir);
	writes = file_is(path, overlay_bytes, sizeof(overlay_bytes));
	/* Kept whole when kept; dropped at the latest by the time the new version shows. */
	ck_assert_msg(drop || writes, "image %zu (crash after op %zu): the local writes are lost",
	              image, k);
	ck_assert_msg(!drop || conf.version == 1 || !writes,
	              "image %zu (crash after op %zu): version 2 came with the dropped writes",
	              image, k);
	version = conf.version;
	disk_conf_release(&conf);
	return version;
}

static void switch_power_cuts(bool drop)
{
	static const char m1[] = "manifest of version 1", m2[] = "manifest of version 2";
	struct buf b1 = { .data = (uint8_t *)m1, .len = sizeof(m1) };
	struct buf b2 = { .data = (uint8_t *)m2, .len = sizeof(m2) };
	const struct buf *raw[3] = { NULL, &b1, &b2 };
	struct disk_conf conf = { 0 };
	char state[PATH_MAX], dir[PATH_MAX], scratch[PATH_MAX];
	size_t images = crashfs_images(), first, last;
	uint64_t x = drop ? 0x9fb21c651e98df25ull : 0x7c9e3779b97f4a7cull;
	struct crashfs *rec;
	struct circ_err err;
	uint32_t versions[3] = { 0 };

	switch_setup(state, dir, &b1);
	ck_assert_int_eq(disk_conf_load(dir, &conf, &err), 0);
	rec = crashfs_new(state);
	first = crashfs_now(rec);
	ck_assert_msg(
	    state_switch_base(crashfs_io(rec), state, dir, &conf, 1, 2, &b2, drop, &err) == 0, "%s",
	    err.msg);
	last = crashfs_now(rec);
	disk_conf_release(&conf);
	ck_assert_uint_gt(last, first + 6);

	for (size_t image = 0; image < images; image++) {
		size_t k = first + crashfs_draw(&x) % (last - first + 1);

		fresh_dir(scratch, "crash");
		crashfs_image(rec, k, crashfs_draw(&x) ^ image, scratch);
		versions[check_switch(scratch, drop, raw, image, k, k == last)]++;
	}
	ck_assert(images < 20 || (versions[1] && versions[2]));
	crashfs_free(rec);
}

START_TEST(test_switch_keep_power_cuts)
{
	switch_power_cuts(false);
}
END_TEST

START_TEST(test_switch_drop_power_cuts)
{
	switch_power_cuts(true);
}
END_TEST

/* --- circ update, end to end ------------------------------------------------------- */

struct update_fixture {
	char repo[PATH_MAX], url[64];
	struct buf raw[3];    /* versions 1 and 2's manifests, as published */
	struct manifest m[3]; /* and decoded */
	struct server *srv;
};

static void copy_file(const char *from, const char *to)
{
	struct buf b = { 0 };

	read_file(from, &b);
	write_file(to, b.data, b.len);
	buf_free(&b);
}

/* Versions 1 and 2 of img published and served; STATE with disk D on version 1. */
static void update_setup(struct update_fixture *fx, const struct key *pub, const char *state)
{
	static char url[64];
	struct disk_conf conf = { .image = "img", .version = 1 };
	struct server_config cfg = { 0 };
	char path[PATH_MAX + 64], dir[PATH_MAX + 64];
	struct circ_err err;

	fresh_dir(fx->repo, "urepo");
	for (uint32_t v = 1; v <= 2; v++) {
		ck_assert_uint_eq(publish_content(NULL, fx->repo, v), v);
		snprintf(path, sizeof(path), "%s/images/img/%u.manifest", fx->repo, v);
		read_file(path, &fx->raw[v]);
		ck_assert_msg(
		    manifest_decode(fx->raw[v].data, fx->raw[v].len, pub, &fx->m[v], &err) == 0,
		    "%s", err.msg);
	}
	cfg.repo_dir = fx->repo;
	cfg.listen = "127.0.0.1:0";
	ck_assert_msg(server_start(&cfg, &fx->srv, &err) == 0, "%s", err.msg);
	snprintf(fx->url, sizeof(fx->url), "http://127.0.0.1:%u", server_port(fx->srv));
	snprintf(url, sizeof(url), "%s", fx->url);

	snprintf(dir, sizeof(dir), "%s/disks/D", state);
	make_dirs(dir);
	conf.urls[0] = url;
	conf.n_urls = 1;
	ck_assert_msg(disk_conf_save(dir, &conf, &err) == 0, "%s", err.msg);
	ck_assert_msg(state_write_manifest(dir, 1, &fx->raw[1], &err) == 0, "%s", err.msg);
	snprintf(path, sizeof(path), "%s/images/img", state);
	make_dirs(path);
	snprintf(path, sizeof(path), "%s/images/img/key.pub", state);
	test_path(dir, "publisher.pub");
	copy_file(dir, path);
	/* Made now, so that the recorder knows it: the cache's files go below it. */
	snprintf(path, sizeof(path), "%s/cache", state);
	make_dirs(path);
}

static void update_teardown(struct update_fixture *fx)
{
	server_stop(fx->srv);
	for (int v = 1; v <= 2; v++) {
		buf_free(&fx->raw[v]);
		manifest_release(&fx->m[v]);
	}
}

static int update_run(const char *state, const struct fileio *fio, struct update_result *res,
                      struct circ_err *err)
{
	struct state_net net = { .timeout_ms = 10000 };
	struct update_options uo = { .mode = UPDATE_REFUSE_OVERLAY, .net = &net, .fio = fio };

	return state_update(state, "D", &uo, res, err);
}

/* The disk's version in the state a cut left, its manifest and (on 2) its blocks checked. */
static uint64_t check_update(const struct update_fixture *fx, const char *state, size_t image,
                             size_t k)
{
	char dir[PATH_MAX + 64], path[PATH_MAX + 96];
	struct disk_conf conf = { 0 };
	struct circ_err err;
	struct cache *c;
	uint64_t v, seen;

	snprintf(dir, sizeof(dir), "%s/disks/D", state);
	ck_assert_msg(disk_conf_load(dir, &conf, &err) == 0,
	              "image %zu (crash after op %zu): disk.conf: %s", image, k, err.msg);
	v = conf.version;
	disk_conf_release(&conf);
	ck_assert_msg(v == 1 || v == 2, "image %zu: version %llu", image, (unsigned long long)v);
	snprintf(path, sizeof(path), "%s/manifest.%llu", dir, (unsigned long long)v);
	ck_assert_msg(file_is(path, fx->raw[v].data, fx->raw[v].len),
	              "image %zu (crash after op %zu): version %llu's manifest is missing or wrong",
	              image, k, (unsigned long long)v);
	ck_assert_int_eq(state_seen_load(state, "img", &seen, &err), 0);
	ck_assert_msg(seen <= v, "image %zu (crash after op %zu): seen %llu, disk at %llu", image,
	              k, (unsigned long long)seen, (unsigned long long)v);
	if (v == 1)
		return v;
	/* On version 2, every block that changed was cached, synced: it must be whole. */
	snprintf(path, sizeof(path), "%s/cache", state);
	ck_assert_msg(cache_open(path, 0, &c, &err) == 0, "%s", err.msg);
	for (uint32_t b = 0; b < fx->m[2].n_blocks; b++) {
		const struct block_id *id = &fx->m[2].blocks[b];

		if (block_id_is_zero(id) || block_id_equal(id, &fx->m[1].blocks[b]))
			continue;
		ck_assert_msg(cache_verify(c, id, PUB_BLOCK) == 0,
		              "image %zu (crash after op %zu): on version 2, changed block %u is "
		              "not whole in the cache",
		              image, k, b);
	}
	cache_close(c);
	return v;
}

START_TEST(test_update_power_cuts)
{
	static struct update_fixture fx;
	char state[PATH_MAX], scratch[PATH_MAX];
	size_t images = crashfs_images(), first, last;
	uint64_t x = 0x6a09e667f3bcc908ull;
	uint32_t versions[3] = { 0 };
	struct update_result res;
	struct key *priv, *pub;
	struct crashfs *rec;
	struct circ_err err;

	memset(&fx, 0, sizeof(fx));
	test_keypair("publisher", &priv, &pub);
	fresh_dir(state, "ustate");
	update_setup(&fx, pub, state);
	rec = crashfs_new(state);
	first = crashfs_now(rec);
	ck_assert_msg(update_run(state, crashfs_io(rec), &res, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(res.to, 2);
	ck_assert_uint_gt(res.changed_blocks, 0);
	last = crashfs_now(rec);

	for (size_t image = 0; image < images; image++) {
		size_t k = first + crashfs_draw(&x) % (last - first + 1);
		uint64_t v;

		fresh_dir(scratch, "crash");
		crashfs_image(rec, k, crashfs_draw(&x) ^ image, scratch);
		v = check_update(&fx, scratch, image, k);
		ck_assert_msg(k < last || v == 2,
		              "image %zu: the update returned, the disk is back on version 1",
		              image);
		versions[v]++;
		/* Now and then, update again after the cut: it must end whole on version 2. */
		if (image % 8 == 0) {
			ck_assert_msg(update_run(scratch, NULL, &res, &err) == 0,
			              "image %zu (crash after op %zu): update again: %s", image, k,
			              err.msg);
			ck_assert_uint_eq(check_update(&fx, scratch, image, k), 2);
		}
	}
	ck_assert(images < 20 || (versions[1] && versions[2]));
	crashfs_free(rec);
	update_teardown(&fx);
	key_free(priv);
	key_free(pub);
}
END_TEST

Suite *crash_suite(void)
{
	Suite *s = suite_create("crash");
	TCase *tc = tcase_create("power cuts");

	tcase_add_scratch(tc);
	tcase_set_timeout(tc, 900);
	tcase_add_loop_test(tc, test_cache_power_cuts, 0,
	                    (int)(sizeof(cache_bounds) / sizeof(cache_bounds[0])));
	tcase_add_test(tc, test_cache_migration_power_cuts);
	tcase_add_test(tc, test_publish_power_cuts);
	tcase_add_test(tc, test_switch_keep_power_cuts);
	tcase_add_test(tc, test_switch_drop_power_cuts);
	tcase_add_test(tc, test_update_power_cuts);
	suite_add_tcase(s, tc);
	return s;
}
