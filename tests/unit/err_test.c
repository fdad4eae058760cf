/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "util/err.h"
#include "tests/unit/suites.h"
#include "tests/unit/testutil.h"

START_TEST(test_err_set)
{
	struct circ_err err = { 0 };

	ck_assert_int_eq(err_set(&err, ENOENT, "no %s %d", "block", 7), -1);
	ck_assert_int_eq(err.errnum, ENOENT);
	ck_assert_str_eq(err.msg, "no block 7");
}
END_TEST

/* Libraries may be called without an error sink; that must not crash. */
START_TEST(test_err_null_sink)
{
	ck_assert_int_eq(err_set(NULL, EIO, "x"), -1);
	ck_assert_int_eq(err_sys(NULL, EIO, "x"), -1);
	ck_assert_int_eq(err_prefix(NULL, "x"), -1);
}
END_TEST

START_TEST(test_err_sys_appends_strerror)
{
	struct circ_err err = { 0 };
	char want[CIRC_ERR_MSG_MAX];

	snprintf(want, sizeof(want), "opening /x: %s", strerror(EACCES));
	ck_assert_int_eq(err_sys(&err, EACCES, "opening %s", "/x"), -1);
	ck_assert_int_eq(err.errnum, EACCES);
	ck_assert_str_eq(err.msg, want);
}
END_TEST

START_TEST(test_err_prefix_keeps_errnum)
{
	struct circ_err err = { 0 };

	err_set(&err, EBADMSG, "bad magic");
	ck_assert_int_eq(err_prefix(&err, "reading %s", "a.manifest"), -1);
	ck_assert_str_eq(err.msg, "reading a.manifest: bad magic");
	ck_assert_int_eq(err.errnum, EBADMSG);
}
END_TEST

/* Messages built from untrusted names may be long: they must stay terminated. */
START_TEST(test_err_truncates)
{
	struct circ_err err = { 0 };
	char big[2 * CIRC_ERR_MSG_MAX];

	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	err_set(&err, EIO, "%s", big);
	ck_assert_uint_eq(strlen(err.msg), CIRC_ERR_MSG_MAX - 1);
	err_sys(&err, EIO, "%s", big);
	ck_assert_uint_eq(strlen(err.msg), CIRC_ERR_MSG_MAX - 1);
	err_set(&err, EIO, "tail");
	err_prefix(&err, "%s", big);
	ck_assert_uint_eq(strlen(err.msg), CIRC_ERR_MSG_MAX - 1);
	ck_assert_int_eq(strncmp(err.msg, "aaaa", 4), 0);
	err_set(&err, EIO, "%s", big);
	err_prefix(&err, "ctx");
	ck_assert_uint_eq(strlen(err.msg), CIRC_ERR_MSG_MAX - 1);
	ck_assert_int_eq(strncmp(err.msg, "ctx: aaaa", 9), 0);
}
END_TEST

Suite *err_suite(void)
{
	Suite *s = suite_create("err");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_err_set);
	tcase_add_test(tc, test_err_null_sink);
	tcase_add_test(tc, test_err_sys_appends_strerror);
	tcase_add_test(tc, test_err_prefix_keeps_errnum);
	tcase_add_test(tc, test_err_truncates);
	suite_add_tcase(s, tc);
	return s;
}
