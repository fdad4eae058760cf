/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blockfs/repo.h"
#include "blockfs/store.h"
#include "tests/unit/packfile.h"
#include "tests/unit/suites.h"
#include "tests/unit/testutil.h"

#define BS (64u << 10)

/* A repo directory, a cache and a store over both, for one test. */
struct fixture {
	struct repo *repo;
	struct cache *cache;
	struct store *store;
};

static void fx_open(struct fixture *fx, unsigned workers)
{
	char path[PATH_MAX];
	struct circ_err err;

	test_path(path, "repo");
	ck_assert_msg(repo_open_dir(path, true, &fx->repo, &err) == 0, "%s", err.msg);
	test_path(path, "cache");
	ck_assert_msg(cache_open(path, 0, &fx->cache, &err) == 0, "%s", err.msg);
	ck_assert_msg(store_new(fx->repo, fx->cache, workers, &fx->store, &err) == 0, "%s",
	              err.msg);
}

static void fx_close(struct fixture *fx)
{
	store_free(fx->store);
	cache_close(fx->cache);
	repo_close(fx->repo);
}

/* Block i's bytes and ID; optionally stored in the repo (its compressed size returned). */
static size_t make_block(struct fixture *fx, uint64_t i, uint8_t *data, size_t bs,
                         struct block_id *id, bool store)
{
	struct block_encoder *enc;
	struct buf comp = { 0 };
	struct circ_err err;
	size_t len;

	/* Half random, half a run: compressible, but not trivially. */
	fill_random(data, bs / 2, 500 + i);
	memset(data + bs / 2, (int)i, bs - bs / 2);
	block_id_compute(id, data, bs);
	if (!store)
		return 0;
	enc = block_encoder_new(3);
	ck_assert_ptr_nonnull(enc);
	ck_assert_int_eq(block_encode(enc, data, bs, &comp, &err), 0);
	ck_assert_msg(repo_store_block(fx->repo, id, comp.data, comp.len, &err) == 0, "%s",
	              err.msg);
	len = comp.len;
	block_encoder_free(enc);
	buf_free(&comp);
	return len;
}

/* Number of whole records in the test's cache. */
static int cache_files(void)
{
	struct pack_record *v;
	char path[PATH_MAX];
	size_t n;

	test_path(path, "cache");
	n = pack_records(path, &v);
	free(v);
	return (int)n;
}

START_TEST(test_read_fetches_then_hits)
{
	static uint8_t data[BS], back[BS];
	struct store_stats st;
	struct fixture fx;
	struct circ_err err;
	struct block_id id;
	size_t comp_len;

	fx_open(&fx, 0);
	comp_len = make_block(&fx, 1, data, BS, &id, true);
	ck_assert(!cache_contains(fx.cache, &id));
	ck_assert_msg(store_read(fx.store, &id, BS, 1000, 3000, back, &err) == 0, "%s", err.msg);
	ck_assert_mem_eq(back, data + 1000, 3000);
	ck_assert(cache_contains(fx.cache, &id));
	store_get_stats(fx.store, &st);
	ck_assert_uint_eq(st.misses, 1);
	ck_assert_uint_eq(st.hits, 0);
	ck_assert_uint_eq(st.fetched_blocks, 1);
	ck_assert_uint_eq(st.fetched_bytes, comp_len);
	ck_assert_uint_eq(st.failures, 0);
	ck_assert_uint_eq(st.requests, 0); /* a directory repo makes no HTTP requests */

	/* Now from the cache: no second fetch. */
	ck_assert_int_eq(store_read(fx.store, &id, BS, 0, BS, back, &err), 0);
	ck_assert_mem_eq(back, data, BS);
	ck_assert_int_eq(store_read(fx.store, &id, BS, BS - 1, 1, back, &err), 0);
	ck_assert_uint_eq(back[0], data[BS - 1]);
	store_get_stats(fx.store, &st);
	ck_assert_uint_eq(st.hits, 2);
	ck_assert_uint_eq(st.misses, 1);
	ck_assert_uint_eq(st.fetched_blocks, 1);
	ck_assert_uint_eq(st.fetched_bytes, comp_len);

	/* Even with the block gone from the repo, the cache serves it. */
	ck_assert_int_eq(repo_remove_block(fx.repo, &id), 0);
	ck_assert_int_eq(store_read(fx.store, &id, BS, 0, BS, back, &err), 0);
	ck_assert_mem_eq(back, data, BS);

	ck_assert_int_eq(store_read(fx.store, &id, BS, BS, 1, back, &err), -1);
	ck_assert_int_eq(err.errnum, EINVAL);
	fx_close(&fx);
}
END_TEST

START_TEST(test_missing_block)
{
	static uint8_t data[BS], back[BS];
	char hex[BLOCK_ID_HEX_LEN + 1];
	struct store_stats st;
	struct fixture fx;
	struct circ_err err;
	struct block_id id;

	fx_open(&fx, 0);
	make_block(&fx, 2, data, BS, &id, false);
	block_id_to_hex(&id, hex);
	ck_assert_int_eq(store_read(fx.store, &id, BS, 0, 16, back, &err), -1);
	ck_assert_int_eq(err.errnum, ENOENT);
	ck_assert_err_has(&err, hex);
	ck_assert(!cache_contains(fx.cache, &id));
	ck_assert_int_eq(store_ensure(fx.store, &id, BS, &err), -1);
	ck_assert_int_eq(err.errnum, ENOENT);
	store_get_stats(fx.store, &st);
	ck_assert_uint_eq(st.failures, 2);
	ck_assert_uint_eq(st.fetched_blocks, 0);

	/* Once published, the same store fetches it: failures are not remembered. */
	make_block(&fx, 2, data, BS, &id, true);
	ck_assert_msg(store_read(fx.store, &id, BS, 0, BS, back, &err) == 0, "%s", err.msg);
	ck_assert_mem_eq(back, data, BS);
	fx_close(&fx);
}
END_TEST

enum corruption {
	FLIPPED_BYTE,
	OTHER_BLOCKS_FRAME,
	TRUNCATED,
	EMPTY_FILE,
	WRONG_SIZE, /* a valid frame of a block of another size */
};

START_TEST(test_corrupted_block_never_cached)
{
	static uint8_t data[BS], other[BS], back[BS];
	char path[REPO_PATH_MAX], full[PATH_MAX];
	struct buf good = { 0 }, bad = { 0 };
	struct block_id id, other_id;
	struct block_encoder *enc = block_encoder_new(3);
	struct store_stats st;
	struct circ_err err;
	struct fixture fx;

	fx_open(&fx, 0);
	make_block(&fx, 3, data, BS, &id, true);
	make_block(&fx, 4, other, BS, &other_id, false);
	repo_block_path(&id, path);
	ck_assert(snprintf(full, sizeof(full), "%s/repo/%s", test_dir(), path) < PATH_MAX);
	read_file(full, &good);
	switch ((enum corruption)_i) {
	case FLIPPED_BYTE:
		ck_assert_int_eq(buf_append(&bad, good.data, good.len), 0);
		bad.data[bad.len / 2] ^= 0x10;
		break;
	case OTHER_BLOCKS_FRAME:
		ck_assert_int_eq(block_encode(enc, other, BS, &bad, &err), 0);
		break;
	case TRUNCATED:
		ck_assert_int_eq(buf_append(&bad, good.data, good.len - 1), 0);
		break;
	case EMPTY_FILE:
		break;
	case WRONG_SIZE:
		ck_assert_int_eq(block_encode(enc, data, BS / 2, &bad, &err), 0);
		break;
	}
	write_file(full, bad.len ? (const void *)bad.data : "", bad.len);

	ck_assert_int_eq(store_read(fx.store, &id, BS, 0, BS, back, &err), -1);
	ck_assert_int_ne(err.errnum, 0);
	ck_assert(!cache_contains(fx.cache, &id));
	ck_assert_int_eq(cache_files(), 0);
	ck_assert_int_eq(store_ensure(fx.store, &id, BS, &err), -1);
	ck_assert(!cache_contains(fx.cache, &id));
	ck_assert_int_eq(cache_files(), 0);
	store_get_stats(fx.store, &st);
	ck_assert_uint_eq(st.fetched_blocks, 0);
	ck_assert_uint_eq(st.failures, 2);

	/* Repaired in the repo, the block is fetched and served. */
	write_file(full, good.data, good.len);
	ck_assert_msg(store_read(fx.store, &id, BS, 0, BS, back, &err) == 0, "%s", err.msg);
	ck_assert_mem_eq(back, data, BS);
	ck_assert_int_eq(cache_files(), 1);
	block_encoder_free(enc);
	buf_free(&good);
	buf_free(&bad);
	fx_close(&fx);
}
END_TEST

START_TEST(test_ensure)
{
	static uint8_t data[BS], back[BS];
	struct store_stats st;
	struct circ_err err;
	struct block_id id;
	struct fixture fx;

	fx_open(&fx, 0);
	make_block(&fx, 5, data, BS, &id, true);
	ck_assert_msg(store_ensure(fx.store, &id, BS, &err) == 0, "%s", err.msg);
	ck_assert(cache_contains(fx.cache, &id));
	store_get_stats(fx.store, &st);
	ck_assert_uint_eq(st.fetched_blocks, 1);
	ck_assert_uint_eq(st.hits, 0);
	ck_assert_uint_eq(st.misses, 0);
	/* Cached already: nothing fetched, even with the repo's copy gone. */
	ck_assert_int_eq(repo_remove_block(fx.repo, &id), 0);
	ck_assert_int_eq(store_ensure(fx.store, &id, BS, &err), 0);
	store_get_stats(fx.store, &st);
	ck_assert_uint_eq(st.fetched_blocks, 1);
	/* And what it cached is the block: served without the repo. */
	ck_assert_int_eq(store_read(fx.store, &id, BS, 7, 100, back, &err), 0);
	ck_assert_mem_eq(back, data + 7, 100);
	store_get_stats(fx.store, &st);
	ck_assert_uint_eq(st.hits, 1);
	fx_close(&fx);
}
END_TEST

START_TEST(test_prefetch_drain)
{
	static uint8_t data[4][BS], missing[BS], back[BS];
	struct block_id ids[4], missing_id;
	struct store_stats st;
	struct circ_err err;
	struct fixture fx;

	fx_open(&fx, 2);
	for (int i = 0; i < 4; i++)
		make_block(&fx, 10 + (uint64_t)i, data[i], BS, &ids[i], true);
	make_block(&fx, 20, missing, BS, &missing_id, false);
	for (int i = 0; i < 4; i++)
		store_prefetch(fx.store, &ids[i], BS);
	store_prefetch(fx.store, &missing_id, BS);
	store_drain(fx.store);
	for (int i = 0; i < 4; i++)
		ck_assert_msg(cache_contains(fx.cache, &ids[i]), "block %d not cached", i);
	ck_assert(!cache_contains(fx.cache, &missing_id));
	store_get_stats(fx.store, &st);
	ck_assert_uint_eq(st.fetched_blocks, 4);
	ck_assert_uint_eq(st.failures, 1);

	/* Prefetching what is cached does nothing; readers now hit. */
	store_prefetch(fx.store, &ids[0], BS);
	store_drain(fx.store);
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(store_read(fx.store, &ids[i], BS, 0, BS, back, &err), 0);
		ck_assert_mem_eq(back, data[i], BS);
	}
	store_get_stats(fx.store, &st);
	ck_assert_uint_eq(st.fetched_blocks, 4);
	ck_assert_uint_eq(st.hits, 4);
	ck_assert_uint_eq(st.misses, 0);
	/* Draining an idle store returns at once. */
	store_drain(fx.store);
	fx_close(&fx);
}
END_TEST

/* Freeing a store with work still queued neither hangs nor leaks. */
START_TEST(test_free_with_queue)
{
	static uint8_t data[BS];
	struct fixture fx;
	struct block_id id;

	fx_open(&fx, 1);
	for (int i = 0; i < 32; i++) {
		make_block(&fx, 100 + (uint64_t)i, data, BS, &id, true);
		store_prefetch(fx.store, &id, BS);
	}
	fx_close(&fx);
}
END_TEST

#define READERS 12

struct reader_arg {
	struct store *store;
	const struct block_id *id;
	const uint8_t *data;
	pthread_barrier_t *start;
	size_t off, len;
	int rc;
	bool right;
};

static void *reader(void *p)
{
	struct reader_arg *a = p;
	uint8_t *back = malloc(BS);
	struct circ_err err;

	pthread_barrier_wait(a->start);
	a->rc = store_read(a->store, a->id, BS, a->off, a->len, back, &err);
	a->right = a->rc == 0 && back && memcmp(back, a->data + a->off, a->len) == 0;
	free(back);
	return NULL;
}

/* Readers of one uncached block at the same moment share one fetch. */
START_TEST(test_concurrent_readers_one_fetch)
{
	static uint8_t data[BS];
	struct reader_arg args[READERS];
	pthread_t tids[READERS];
	pthread_barrier_t start;
	struct store_stats st;
	struct block_id id;
	struct fixture fx;
	size_t comp_total = 0;

	fx_open(&fx, 0);
	for (uint64_t round = 0; round < 4; round++) {
		comp_total += make_block(&fx, 200 + round, data, BS, &id, true);
		ck_assert_int_eq(pthread_barrier_init(&start, NULL, READERS), 0);
		for (int t = 0; t < READERS; t++) {
			args[t] = (struct reader_arg){ .store = fx.store,
				                       .id = &id,
				                       .data = data,
				                       .start = &start,
				                       .off = (size_t)t * 4099,
				                       .len = 1 + (size_t)t * 1000 };
			ck_assert_int_eq(pthread_create(&tids[t], NULL, reader, &args[t]), 0);
		}
		for (int t = 0; t < READERS; t++)
			pthread_join(tids[t], NULL);
		pthread_barrier_destroy(&start);
		for (int t = 0; t < READERS; t++) {
			ck_assert_msg(args[t].rc == 0, "reader %d failed", t);
			ck_assert_msg(args[t].right, "reader %d got wrong bytes", t);
		}
		store_get_stats(fx.store, &st);
		ck_assert_uint_eq(st.fetched_blocks, round + 1);
		ck_assert_uint_eq(st.hits + st.misses, (round + 1) * READERS);
		ck_assert_uint_eq(st.fetched_bytes, comp_total);
		ck_assert_uint_eq(st.failures, 0);
	}
	fx_close(&fx);
}
END_TEST

Suite *store_suite(void)
{
	Suite *s = suite_create("store");
	TCase *tc = tcase_create("store");

	tcase_add_scratch(tc);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_read_fetches_then_hits);
	tcase_add_test(tc, test_missing_block);
	tcase_add_loop_test(tc, test_corrupted_block_never_cached, FLIPPED_BYTE, WRONG_SIZE + 1);
	tcase_add_test(tc, test_ensure);
	tcase_add_test(tc, test_prefetch_drain);
	tcase_add_test(tc, test_free_with_queue);
	tcase_add_test(tc, test_concurrent_readers_one_fetch);
	suite_add_tcase(s, tc);
	return s;
}
