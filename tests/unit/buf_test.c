/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "util/buf.h"
#include "tests/unit/suites.h"
#include "tests/unit/testutil.h"

/* Growth must keep every byte appended so far, across many reallocations. */
START_TEST(test_append_growth)
{
	struct buf b = { 0 };

	for (unsigned i = 0; i < 100000; i++) {
		uint8_t c = (uint8_t)(i * 7);

		ck_assert_int_eq(buf_append(&b, &c, 1), 0);
	}
	ck_assert_uint_eq(b.len, 100000);
	ck_assert_uint_ge(b.cap, b.len);
	for (unsigned i = 0; i < 100000; i++)
		ck_assert_uint_eq(b.data[i], (uint8_t)(i * 7));
	buf_free(&b);
}
END_TEST

START_TEST(test_append_large_chunks)
{
	static uint8_t chunk[70000];
	struct buf b = { 0 };

	fill_random(chunk, sizeof(chunk), 1);
	ck_assert_int_eq(buf_append(&b, "ab", 2), 0);
	ck_assert_int_eq(buf_append(&b, chunk, sizeof(chunk)), 0);
	ck_assert_int_eq(buf_append(&b, chunk, sizeof(chunk)), 0);
	ck_assert_uint_eq(b.len, 2 + 2 * sizeof(chunk));
	ck_assert_mem_eq(b.data, "ab", 2);
	ck_assert_mem_eq(b.data + 2, chunk, sizeof(chunk));
	ck_assert_mem_eq(b.data + 2 + sizeof(chunk), chunk, sizeof(chunk));
	buf_free(&b);
}
END_TEST

/* Callers reserve and then write through b.data directly (block_encode does). */
START_TEST(test_reserve_gives_room)
{
	struct buf b = { 0 };
	uint8_t *p;

	ck_assert_int_eq(buf_append(&b, "xy", 2), 0);
	ck_assert_int_eq(buf_reserve(&b, 5000), 0);
	ck_assert_uint_ge(b.cap, 5002);
	ck_assert_uint_eq(b.len, 2);
	p = b.data;
	memset(b.data + b.len, 0xab, 5000);
	ck_assert_int_eq(buf_append_zeros(&b, 5000), 0);
	/* Appending within the reservation must not move the data. */
	ck_assert_ptr_eq(b.data, p);
	ck_assert_mem_eq(b.data, "xy", 2);
	for (size_t i = 2; i < b.len; i++)
		ck_assert_uint_eq(b.data[i], 0);
	ck_assert_int_eq(buf_reserve(&b, 0), 0);
	ck_assert_ptr_eq(b.data, p);
	buf_free(&b);
}
END_TEST

/* A length computed from untrusted input must not wrap into a small allocation. */
START_TEST(test_reserve_overflow)
{
	struct buf b = { 0 };

	ck_assert_int_eq(buf_append(&b, "0123456789", 10), 0);
	ck_assert_int_eq(buf_reserve(&b, SIZE_MAX - 5), -ENOMEM);
	ck_assert_int_eq(buf_append(&b, "x", SIZE_MAX - 9), -ENOMEM);
	ck_assert_int_eq(buf_append_zeros(&b, SIZE_MAX), -ENOMEM);
	ck_assert_uint_eq(b.len, 10);
	ck_assert_mem_eq(b.data, "0123456789", 10);
	buf_free(&b);
}
END_TEST

START_TEST(test_reset_and_free)
{
	struct buf b = { 0 };
	size_t cap;

	ck_assert_int_eq(buf_append(&b, NULL, 0), 0);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_int_eq(buf_append(&b, "hello", 5), 0);
	cap = b.cap;
	buf_reset(&b);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_uint_eq(b.cap, cap);
	ck_assert_int_eq(buf_append(&b, "hi", 2), 0);
	ck_assert_mem_eq(b.data, "hi", 2);
	buf_free(&b);
	ck_assert_ptr_null(b.data);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_uint_eq(b.cap, 0);
	/* Error paths free unconditionally; a second free must be harmless. */
	buf_free(&b);
}
END_TEST

START_TEST(test_append_le)
{
	static const uint8_t want[] = { 0x04, 0x03, 0x02, 0x01, 0x08, 0x07, 0x06, 0x05,
		                        0x04, 0x03, 0x02, 0x01, 0xff, 0xff, 0xff, 0xff };
	struct buf b = { 0 };

	ck_assert_int_eq(buf_append_u32le(&b, 0x01020304u), 0);
	ck_assert_int_eq(buf_append_u64le(&b, 0x0102030405060708ull), 0);
	ck_assert_int_eq(buf_append_u32le(&b, UINT32_MAX), 0);
	ck_assert_uint_eq(b.len, sizeof(want));
	ck_assert_mem_eq(b.data, want, sizeof(want));
	ck_assert_uint_eq(get_u32le(b.data), 0x01020304u);
	ck_assert_uint_eq(get_u64le(b.data + 4), 0x0102030405060708ull);
	ck_assert_uint_eq(get_u32le(b.data + 12), UINT32_MAX);
	buf_free(&b);
}
END_TEST

/* Parsers read fields at any offset of an untrusted byte string. */
START_TEST(test_get_put_unaligned)
{
	uint8_t raw[16] = { 0 };

	put_u64le(raw + 3, 0x8000000000000001ull);
	ck_assert_uint_eq(raw[3], 0x01);
	ck_assert_uint_eq(raw[10], 0x80);
	ck_assert_uint_eq(get_u64le(raw + 3), 0x8000000000000001ull);
	put_u32le(raw + 1, 0xdeadbeefu);
	ck_assert_uint_eq(raw[1], 0xef);
	ck_assert_uint_eq(raw[4], 0xde);
	ck_assert_uint_eq(get_u32le(raw + 1), 0xdeadbeefu);
	put_u64le(raw + 8, UINT64_MAX);
	ck_assert_uint_eq(get_u64le(raw + 8), UINT64_MAX);
	ck_assert_uint_eq(get_u32le(raw + 8), UINT32_MAX);
}
END_TEST

Suite *buf_suite(void)
{
	Suite *s = suite_create("buf");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_append_growth);
	tcase_add_test(tc, test_append_large_chunks);
	tcase_add_test(tc, test_reserve_gives_room);
	tcase_add_test(tc, test_reserve_overflow);
	tcase_add_test(tc, test_reset_and_free);
	tcase_add_test(tc, test_append_le);
	tcase_add_test(tc, test_get_put_unaligned);
	suite_add_tcase(s, tc);
	return s;
}
