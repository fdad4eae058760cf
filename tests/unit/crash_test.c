/* SPDX-License-Identifier: MIT */
/*
 * Power cuts of everything but the overlay (overlay_crash_test.c): the block
 * cache runs through a crashfs (crashfs.h says what an image may hold), and
 * each crash image must keep its promises:
 * - the cache opens, and every block reads back whole or misses; what a
 *   cache_sync covered hits;
 * CIRC_CRASH_IMAGES sets how many images each (default 1000; `make stress` more).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blockfs/block.h"
#include "blockfs/cache.h"
#include "tests/unit/crashfs.h"
#include "tests/unit/suites.h"
#include "tests/unit/testutil.h"

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

Suite *crash_suite(void)
{
	Suite *s = suite_create("crash");
	TCase *tc = tcase_create("power cuts");

	tcase_add_scratch(tc);
	tcase_set_timeout(tc, 900);
	tcase_add_test(tc, test_cache_power_cuts);
	suite_add_tcase(s, tc);
	return s;
}
