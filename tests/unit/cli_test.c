/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "client/cli.h"
#include "tests/unit/suites.h"
#include "tests/unit/testutil.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

struct parse_case {
	const char *in;
	uint64_t want;
};

typedef int (*parse_fn)(const char *s, uint64_t *out);

static void check_cases(parse_fn fn, const char *what, const struct parse_case *ok, size_t n_ok,
                        const char *const *bad, size_t n_bad)
{
	for (size_t i = 0; i < n_ok; i++) {
		uint64_t v = 12345;

		ck_assert_msg(fn(ok[i].in, &v) == 0, "%s rejected '%s'", what, ok[i].in);
		ck_assert_msg(v == ok[i].want, "%s('%s') = %llu, want %llu", what, ok[i].in,
		              (unsigned long long)v, (unsigned long long)ok[i].want);
	}
	for (size_t i = 0; i < n_bad; i++) {
		uint64_t v = 12345;

		ck_assert_msg(fn(bad[i], &v) < 0, "%s accepted '%s' as %llu", what, bad[i],
		              (unsigned long long)v);
	}
}

START_TEST(test_parse_size)
{
	static const struct parse_case ok[] = {
		{ "64K", 65536 },
		{ "1M", 1 << 20 },
		{ "2G", 2ull << 30 },
		{ "17", 17 },
		{ "0", 0 },
		{ "4096", 4096 },
		{ "18446744073709551615", UINT64_MAX },
		{ "17179869183G", 17179869183ull << 30 },
	};
	static const char *const bad[] = {
		"",
		"K",
		"12X",
		"-1",
		"1KB",
		"99999999999999999999G",
		"99999999999999999999",
		"17179869184G",
		"18446744073709551616",
		" 1",
		"1 ",
		"1 K",
		"+1",
		"1.5M",
		"0x10",
		"M1",
		"1e3",
	};

	check_cases(cli_parse_size, "size", ok, ARRAY_LEN(ok), bad, ARRAY_LEN(bad));
	ck_assert_int_eq(cli_parse_size(NULL, &(uint64_t){ 0 }), -EINVAL);
}
END_TEST

START_TEST(test_parse_duration)
{
	static const struct parse_case ok[] = {
		{ "30d", 30 * 86400 }, { "12h", 12 * 3600 },
		{ "90m", 90 * 60 },    { "45s", 45 },
		{ "10", 10 },          { "0d", 0 },
		{ "1d", 86400 },       { "213503982334601d", 213503982334601ull * 86400 },
	};
	static const char *const bad[] = { "",    "d",  "1w",   "1dd", "-5m",
		                           "1 d", "1D", "1.5h", "1ms", "213503982334602d" };

	check_cases(cli_parse_duration, "duration", ok, ARRAY_LEN(ok), bad, ARRAY_LEN(bad));
}
END_TEST

START_TEST(test_parse_u64)
{
	static const struct parse_case ok[] = {
		{ "0", 0 },
		{ "7", 7 },
		{ "007", 7 },
		{ "18446744073709551615", UINT64_MAX },
	};
	static const char *const bad[] = { "",   "-1", "+1",  " 1",
		                           "1 ", "1K", "0x1", "18446744073709551616",
		                           "abc" };

	check_cases(cli_parse_u64, "u64", ok, ARRAY_LEN(ok), bad, ARRAY_LEN(bad));
}
END_TEST

enum {
	OPT_BLOCK_SIZE = OPT_LONG + 1
};

static const struct option test_opts[] = {
	{ "name", required_argument, NULL, 'n' },
	{ "block-size", required_argument, NULL, OPT_BLOCK_SIZE },
	{ NULL, 0, NULL, 0 },
};

/* Runs cli_getopt to the end; returns its last answer. */
static int getopt_all(struct cli *cli, int argc, char **argv, const char **name,
                      const char **block_size)
{
	int c;

	/* glibc restarts its scan, permutation state included, at optind 0. */
	optind = 0;
	while ((c = cli_getopt(cli, argc, argv, "n:", test_opts)) >= 0) {
		if (c == 'n')
			*name = optarg;
		else if (c == OPT_BLOCK_SIZE)
			*block_size = optarg;
		else
			return c;
	}
	return c;
}

/* Runs getopt_all with stderr muted: usage errors print there by design. */
static int getopt_quiet(struct cli *cli, int argc, char **argv)
{
	const char *name = NULL, *bs = NULL;
	int saved = dup(STDERR_FILENO), null = open("/dev/null", O_WRONLY), c;

	ck_assert(saved >= 0 && null >= 0);
	fflush(stderr);
	dup2(null, STDERR_FILENO);
	c = getopt_all(cli, argc, argv, &name, &bs);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(null);
	return c;
}

START_TEST(test_getopt_gnu_style)
{
	char *argv[] = { "publish", "IMAGE", "--state",          "/s", "-v", "--name",
		         "deb",     "-v",    "--block-size=64K", "--", "-x", NULL };
	struct cli cli = { .cmd = "publish", .usage = "usage\n" };
	const char *name = NULL, *bs = NULL;
	int argc = (int)ARRAY_LEN(argv) - 1;

	ck_assert_int_eq(getopt_all(&cli, argc, argv, &name, &bs), -1);
	ck_assert_str_eq(cli.state_dir, "/s");
	ck_assert_int_eq(cli.verbose, 2);
	ck_assert_str_eq(name, "deb");
	ck_assert_str_eq(bs, "64K");
	/* Options may follow positional arguments; those end up after optind. */
	ck_assert_int_eq(optind, argc - 2);
	ck_assert_str_eq(argv[optind], "IMAGE");
	ck_assert_str_eq(argv[optind + 1], "-x");
}
END_TEST

START_TEST(test_getopt_errors)
{
	char *unknown[] = { "publish", "--bogus", NULL };
	char *unknown_short[] = { "publish", "-q", NULL };
	char *missing[] = { "publish", "IMAGE", "--name", NULL };
	char *missing_state[] = { "publish", "--state", NULL };
	struct cli cli = { .cmd = "publish", .usage = "usage\n" };

	ck_assert_int_eq(getopt_quiet(&cli, 2, unknown), CLI_EXIT_USAGE);
	ck_assert_int_eq(getopt_quiet(&cli, 2, unknown_short), CLI_EXIT_USAGE);
	ck_assert_int_eq(getopt_quiet(&cli, 3, missing), CLI_EXIT_USAGE);
	ck_assert_int_eq(getopt_quiet(&cli, 2, missing_state), CLI_EXIT_USAGE);
}
END_TEST

START_TEST(test_exit_codes)
{
	struct cli cli = { .cmd = "x" };
	int saved = dup(STDERR_FILENO), null = open("/dev/null", O_WRONLY);
	int usage, fail;

	fflush(stderr);
	dup2(null, STDERR_FILENO);
	usage = cli_usage_error(&cli, "bad");
	fail = cli_fail(&cli, "bad");
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(null);
	ck_assert_int_eq(usage, 2);
	ck_assert_int_eq(fail, 1);
}
END_TEST

Suite *cli_suite(void)
{
	Suite *s = suite_create("cli");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_parse_size);
	tcase_add_test(tc, test_parse_duration);
	tcase_add_test(tc, test_parse_u64);
	tcase_add_test(tc, test_getopt_gnu_style);
	tcase_add_test(tc, test_getopt_errors);
	tcase_add_test(tc, test_exit_codes);
	suite_add_tcase(s, tc);
	return s;
}
