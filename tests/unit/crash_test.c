/* SPDX-License-Identifier: MIT */
/*
 * Power cuts of everything but the overlay (overlay_crash_test.c): the block
 * cache and the publisher each run through a crashfs (crashfs.h says what an image may hold), and
 * each crash image must keep their promises:
 * - the cache opens, and every block reads back whole or misses; what a
 *   cache_sync covered hits;
 * - a repo's pointer, if there is one, is a version whose manifest and
 *   every block are there and verify, and read as that version's image; a
 *   publish that returned is never undone.
 * CIRC_CRASH_IMAGES sets how many images each (default 1000; `make stress` more).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "blockfs/block.h"
#include "blockfs/cache.h"
#include "blockfs/repo.h"
#include "client/publish.h"
#include "tests/unit/crashfs.h"
#include "tests/unit/suites.h"
#include "tests/unit/testutil.h"
#include "vdisk/image.h"

static size_t crash_images(void)
{
	const char *env = getenv("CIRC_CRASH_IMAGES");

	return env ? strtoul(env, NULL, 10) : 1000;
}

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
#define CACHE_BOUND  (20 * CACHE_BLOCK)

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
	size_t images = crash_images(), first, sync_end, last;
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
	ck_assert_msg(cache_open_io(live, CACHE_BOUND, crashfs_io(rec), &c, &err) == 0, "%s",
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
	ck_assert_uint_ge(crashfs_files_created(rec), CACHE_BLOCKS);

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

static void publish_version(struct crashfs *rec, const char *repo, uint32_t v)
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
	po.fio = crashfs_io(rec);
	ck_assert_msg(publish_image(&po, &res, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(res.version, v);
}

/* Which version the repo's pointer names (0: none), its manifest and blocks checked. */
static uint32_t check_repo(const char *dir, const struct key *pub, size_t image, size_t k)
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
	pub_image(v, want);
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
	size_t images = crash_images(), first, done[3], last;
	uint64_t x = 0x2545f4914f6cdd1dull;
	struct key *priv, *pub;
	struct crashfs *rec;
	uint32_t seen[4] = { 0 };

	test_keypair("publisher", &priv, &pub);
	fresh_dir(live, "repo");
	rec = crashfs_new(live);
	first = crashfs_now(rec);
	for (uint32_t v = 1; v <= 3; v++) {
		publish_version(rec, live, v);
		done[v - 1] = crashfs_now(rec);
	}
	last = crashfs_now(rec);

	for (size_t image = 0; image < images; image++) {
		size_t k = first + crashfs_draw(&x) % (last - first + 1);
		uint32_t v, promised = 0;

		fresh_dir(scratch, "crash");
		crashfs_image(rec, k, crashfs_draw(&x) ^ image, scratch);
		v = check_repo(scratch, pub, image, k);
		for (uint32_t i = 0; i < 3; i++)
			if (k >= done[i])
				promised = i + 1;
		ck_assert_msg(v >= promised,
		              "image %zu (crash after op %zu): version %u was published, the "
		              "pointer names %u",
		              image, k, promised, v);
		seen[v]++;
	}
	/* Cuts before, during and after: more than one version must have been seen. */
	ck_assert_uint_gt((seen[0] != 0) + (seen[1] != 0) + (seen[2] != 0) + (seen[3] != 0),
	                  images > 20 ? 2 : 0);
	crashfs_free(rec);
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
	tcase_add_test(tc, test_cache_power_cuts);
	tcase_add_test(tc, test_publish_power_cuts);
	suite_add_tcase(s, tc);
	return s;
}
