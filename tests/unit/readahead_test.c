/* SPDX-License-Identifier: MIT */
#include "tests/unit/suites.h"
#include "vdisk/readahead.h"

/* Feeds reads of blocks v[0..n); returns the blocks asked for ahead, checking they never overlap.
 */
static uint64_t feed(struct readahead *ra, const uint64_t *v, size_t n, uint32_t max,
                     uint64_t *fetched_to)
{
	uint64_t total = 0;

	for (size_t i = 0; i < n; i++) {
		uint64_t from = 0;
		uint32_t got = readahead_advance(ra, v[i], max, &from);

		if (!got)
			continue;
		ck_assert_uint_le(got, max);
		ck_assert_uint_gt(from, v[i]);
		/* Never a block asked for already. */
		ck_assert_uint_ge(from, *fetched_to);
		*fetched_to = from + got;
		total += got;
	}
	return total;
}

/* A boot's pattern: runs of one to three blocks here and there fetch nothing ahead. */
START_TEST(test_short_runs_fetch_nothing_ahead)
{
	struct readahead ra;
	uint64_t x = 12345, v[3 * 500], to = 0;
	size_t n = 0;

	readahead_init(&ra);
	for (int r = 0; r < 500; r++) {
		uint64_t start, len;

		x = x * 6364136223846793005ull + 1442695040888963407ull;
		start = (x >> 20) % 100000 * 16; /* far apart */
		len = 1 + (x >> 50) % 3;
		for (uint64_t k = 0; k < len; k++)
			v[n++] = start + k;
	}
	ck_assert_uint_eq(feed(&ra, v, n, 32, &to), 0);
}
END_TEST

/*
 * A long scan is fetched ahead, the window doubling to the maximum, each
 * block before it is read, and what is left unread at its end is at most
 * one window.
 */
START_TEST(test_long_run_fetched_ahead)
{
	struct readahead ra;
	uint64_t v[1000], to = 0, total;

	readahead_init(&ra);
	for (uint64_t i = 0; i < 1000; i++)
		v[i] = 500 + i;
	total = 0;
	for (size_t i = 0; i < 1000; i++) {
		total += feed(&ra, &v[i], 1, 32, &to);
		if (i >= RA_MIN_RUN)
			ck_assert_msg(to > v[i] + 1, "block %llu read, only %llu fetched ahead",
			              (unsigned long long)v[i], (unsigned long long)to);
	}
	ck_assert_uint_eq(ra.window, 32);
	ck_assert_uint_ge(to, v[999] + 1);
	ck_assert_uint_le(to - (v[999] + 1), 32);
	ck_assert_uint_le(total, 1000 - (RA_MIN_RUN - 1) + 32);
}
END_TEST

/* FUSE threads reorder a sequential reader's requests a little: still one run. */
START_TEST(test_reordered_run_is_sequential)
{
	static const uint64_t v[] = { 10, 11, 13, 12, 14, 16, 15, 17, 18, 19, 20, 22, 21 };
	struct readahead ra;
	uint64_t to = 0;

	readahead_init(&ra);
	ck_assert_uint_gt(feed(&ra, v, sizeof(v) / sizeof(v[0]), 32, &to), 0);
	/* No read-ahead at all when the disk has none. */
	readahead_init(&ra);
	to = 0;
	ck_assert_uint_eq(feed(&ra, v, sizeof(v) / sizeof(v[0]), 0, &to), 0);
}
END_TEST

Suite *readahead_suite(void)
{
	Suite *s = suite_create("readahead");
	TCase *tc = tcase_create("readahead");

	tcase_add_test(tc, test_short_runs_fetch_nothing_ahead);
	tcase_add_test(tc, test_long_run_fetched_ahead);
	tcase_add_test(tc, test_reordered_run_is_sequential);
	suite_add_tcase(s, tc);
	return s;
}
