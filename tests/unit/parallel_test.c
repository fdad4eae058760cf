/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/parallel.h"
#include "tests/unit/suites.h"

#define N 10007 /* a prime: the last batch is a short one */

struct counts {
	atomic_uint seen[N];
	atomic_uint started, ended, progress_calls;
	atomic_uint_fast64_t done;
	uint64_t fail_at; /* N: never */
	bool fail_start;
	/* Items after fail_at wait until it has failed, so that the run's stop is seen. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool failed;
};

static struct counts *counts_new(uint64_t fail_at)
{
	struct counts *c = calloc(1, sizeof(*c));

	ck_assert_ptr_nonnull(c);
	c->fail_at = fail_at;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	return c;
}

static void counts_free(struct counts *c)
{
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static void *count_start(void *ctx, struct circ_err *err)
{
	struct counts *c = ctx;

	if (c->fail_start)
		return err_set(err, ENOMEM, "no scratch"), NULL;
	atomic_fetch_add(&c->started, 1);
	return malloc(16);
}

static void count_end(void *ctx, void *scratch)
{
	struct counts *c = ctx;

	atomic_fetch_add(&c->ended, 1);
	free(scratch);
}

static int count_item(void *ctx, void *scratch, uint64_t i, struct circ_err *err)
{
	struct counts *c = ctx;

	ck_assert_ptr_nonnull(scratch);
	if (i == c->fail_at) {
		pthread_mutex_lock(&c->lock);
		c->failed = true;
		pthread_cond_broadcast(&c->cond);
		pthread_mutex_unlock(&c->lock);
		return err_set(err, EIO, "item %llu failed", (unsigned long long)i);
	}
	if (i > c->fail_at) {
		pthread_mutex_lock(&c->lock);
		while (!c->failed)
			pthread_cond_wait(&c->cond, &c->lock);
		pthread_mutex_unlock(&c->lock);
	}
	atomic_fetch_add(&c->seen[i], 1);
	atomic_fetch_add(&c->done, 1);
	return 0;
}

static void count_progress(void *ctx)
{
	struct counts *c = ctx;

	atomic_fetch_add(&c->progress_calls, 1);
}

static const struct parallel_ops ops = { .thread_start = count_start,
	                                 .thread_end = count_end,
	                                 .item = count_item,
	                                 .progress = count_progress };

/* Every item once, whatever the threads and the batch; each scratch made and freed once. */
START_TEST(test_every_item_once)
{
	static const unsigned threads[] = { 0, 1, 3, 8 }, batches[] = { 1, 16, N + 5 };

	for (size_t t = 0; t < 4; t++)
		for (size_t b = 0; b < 3; b++) {
			struct counts *c = counts_new(N);
			struct circ_err err = { 0 };

			ck_assert_int_eq(parallel_for(N, threads[t], batches[b], &ops, c, &err), 0);
			for (size_t i = 0; i < N; i++)
				ck_assert_msg(c->seen[i] == 1,
				              "threads %u batch %u: item %zu seen %u times",
				              threads[t], batches[b], i, c->seen[i]);
			ck_assert_uint_eq(c->started, c->ended);
			ck_assert_uint_ge(c->started, 1);
			ck_assert_uint_le(c->started, threads[t] ? threads[t] : 1);
			/* The last call comes after every item: a bar drawn from it reads 100%. */
			ck_assert_uint_ge(c->progress_calls, 1);
			ck_assert_uint_eq(c->done, N);
			counts_free(c);
		}
}
END_TEST

/* The first failure stops the run and is what the caller sees. */
START_TEST(test_failure_stops)
{
	for (unsigned threads = 1; threads <= 4; threads += 3) {
		struct counts *c = counts_new(100);
		struct circ_err err = { 0 };

		ck_assert_int_eq(parallel_for(N, threads, 1, &ops, c, &err), -1);
		ck_assert_int_eq(err.errnum, EIO);
		ck_assert_str_eq(err.msg, "item 100 failed");
		ck_assert_uint_eq(c->seen[100], 0);
		ck_assert_uint_eq(c->started, c->ended);
		/* One thread takes nothing after the failure (with more, when they see it is a
		 * race). */
		if (threads == 1)
			ck_assert_uint_eq(c->done, 100);
		counts_free(c);
	}
}
END_TEST

START_TEST(test_scratch_failure)
{
	struct counts *c = counts_new(N);
	struct circ_err err = { 0 };

	c->fail_start = true;
	ck_assert_int_eq(parallel_for(N, 3, 1, &ops, c, &err), -1);
	ck_assert_int_eq(err.errnum, ENOMEM);
	ck_assert_str_eq(err.msg, "no scratch");
	ck_assert_uint_eq(c->done, 0);
	ck_assert_uint_eq(c->ended, 0);
	counts_free(c);
}
END_TEST

START_TEST(test_nothing_to_do)
{
	struct counts *c = counts_new(N);
	struct circ_err err = { 0 };

	ck_assert_int_eq(parallel_for(0, 4, 1, &ops, c, &err), 0);
	ck_assert_uint_eq(c->done, 0);
	counts_free(c);
}
END_TEST

Suite *parallel_suite(void)
{
	Suite *s = suite_create("parallel");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_every_item_once);
	tcase_add_test(tc, test_failure_stops);
	tcase_add_test(tc, test_scratch_failure);
	tcase_add_test(tc, test_nothing_to_do);
	suite_add_tcase(s, tc);
	return s;
}
