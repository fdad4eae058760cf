/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>

#include "util/json.h"
#include "tests/unit/suites.h"

static void assert_text(struct buf *b, const char *want)
{
	ck_assert_uint_eq(b->len, strlen(want));
	ck_assert_mem_eq(b->data, want, b->len);
}

/* The writer places every comma: nested objects, arrays of objects, empty ones. */
START_TEST(test_structure)
{
	static const uint8_t id[3] = { 0x00, 0xab, 0x7f };
	struct buf b = { 0 };
	struct json j;

	json_init(&j, &b);
	json_object_begin(&j, NULL);
	json_str(&j, "disk", "kiosk");
	json_u64(&j, "version", 18446744073709551615ull);
	json_array_begin(&j, "rows");
	json_object_begin(&j, NULL);
	json_bool(&j, "ok", true);
	json_object_end(&j);
	json_object_begin(&j, NULL);
	json_object_end(&j);
	json_array_end(&j);
	json_array_begin(&j, "empty");
	json_array_end(&j);
	json_str(&j, "mountpoint", NULL);
	json_fixed(&j, "cached", 12.345, 1);
	json_hex(&j, "id", id, sizeof(id));
	json_hex(&j, "none", NULL, 0);
	json_object_end(&j);
	ck_assert_int_eq(json_finish(&j), 0);
	assert_text(&b, "{\"disk\":\"kiosk\",\"version\":18446744073709551615,"
	                "\"rows\":[{\"ok\":true},{}],\"empty\":[],\"mountpoint\":null,"
	                "\"cached\":12.3,\"id\":\"00ab7f\",\"none\":null}\n");
	buf_free(&b);
}
END_TEST

/*
 * Names and descriptions come from repositories and users: quotes, backslashes
 * and control bytes must not end the string or the line (a boot record is one
 * line per boot).
 */
START_TEST(test_escapes)
{
	struct buf b = { 0 };
	struct json j;

	json_init(&j, &b);
	json_object_begin(&j, NULL);
	json_str(&j, "k\"ey",
	         "a\"b\\c\nd\x01\x7f"
	         "é");
	json_object_end(&j);
	ck_assert_int_eq(json_finish(&j), 0);
	assert_text(&b, "{\"k\\\"ey\":\"a\\\"b\\\\c\\u000ad\\u0001\\u007fé\"}\n");
	ck_assert_ptr_null(memchr(b.data, '\n', b.len - 1));
	buf_free(&b);
}
END_TEST

/* Bytes that are not UTF-8 (a server's name, a damaged file) become U+FFFD: still JSON. */
START_TEST(test_invalid_utf8)
{
	struct buf b = { 0 };
	struct json j;

	json_init(&j, &b);
	json_array_begin(&j, NULL);
	json_str(&j, NULL,
	         "a\xff"
	         "b\xc3"
	         "\xa9\xe0\x80\x80\xed\xa0\x80\xf4\x90\x80\x80\xc3");
	json_array_end(&j);
	ck_assert_int_eq(json_finish(&j), 0);
	assert_text(&b, "[\"a\\ufffdb\xc3\xa9\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd"
	                "\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\"]\n");
	buf_free(&b);
}
END_TEST

/* A value JSON cannot hold is written as null, never as "nan" or "inf". */
START_TEST(test_fixed_out_of_range)
{
	struct buf b = { 0 };
	struct json j;

	json_init(&j, &b);
	json_array_begin(&j, NULL);
	json_fixed(&j, NULL, 0.0 / 0.0, 1);
	json_fixed(&j, NULL, 1e300, 1);
	json_fixed(&j, NULL, 99.95, 0);
	json_array_end(&j);
	ck_assert_int_eq(json_finish(&j), 0);
	assert_text(&b, "[null,null,100]\n");
	buf_free(&b);
}
END_TEST

/* A caller's misuse is reported, not written as broken JSON. */
START_TEST(test_unbalanced)
{
	struct buf b = { 0 };
	struct json j;

	json_init(&j, &b);
	json_object_begin(&j, NULL);
	ck_assert_int_eq(json_finish(&j), -EINVAL);
	buf_free(&b);

	json_init(&j, &b);
	json_object_end(&j);
	ck_assert_int_eq(json_finish(&j), -EINVAL);
	buf_free(&b);

	json_init(&j, &b);
	for (int i = 0; i < JSON_DEPTH_MAX + 2; i++)
		json_array_begin(&j, NULL);
	for (int i = 0; i < JSON_DEPTH_MAX + 2; i++)
		json_array_end(&j);
	ck_assert_int_eq(json_finish(&j), -EINVAL);
	buf_free(&b);
}
END_TEST

Suite *json_suite(void)
{
	Suite *s = suite_create("json");
	TCase *tc = tcase_create("json");

	tcase_add_test(tc, test_structure);
	tcase_add_test(tc, test_escapes);
	tcase_add_test(tc, test_invalid_utf8);
	tcase_add_test(tc, test_fixed_out_of_range);
	tcase_add_test(tc, test_unbalanced);
	suite_add_tcase(s, tc);
	return s;
}
