/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vdisk/state.h"
#include "tests/unit/suites.h"
#include "tests/unit/testutil.h"

static void write_conf(const char *text)
{
	char path[PATH_MAX];

	test_path(path, "disk.conf");
	write_file(path, text, strlen(text));
}

/* Loads test_dir()/disk.conf, expecting a refusal that leaves nothing to free. */
static void expect_refused(int errnum)
{
	struct disk_conf c;
	struct circ_err err;

	memset(&c, 0x5a, sizeof(c));
	ck_assert_int_eq(disk_conf_load(test_dir(), &c, &err), -1);
	ck_assert_int_eq(err.errnum, errnum);
	ck_assert_uint_eq(c.n_urls, 0);
	for (size_t i = 0; i < STATE_MAX_MIRRORS; i++)
		ck_assert_ptr_null(c.urls[i]);
	disk_conf_release(&c);
}

static int entries_in_test_dir(void)
{
	DIR *d = opendir(test_dir());
	struct dirent *de;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)))
		n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
	closedir(d);
	return n;
}

START_TEST(test_conf_round_trip)
{
	char *urls[] = { "http://127.0.0.1:8080", "https://mirror.example.org/circ/repo" };
	struct disk_conf c = { .image = "debian-12.1_x", .version = 42 }, back;
	struct circ_err err;

	c.urls[0] = urls[0];
	c.urls[1] = urls[1];
	c.n_urls = 2;
	ck_assert_msg(disk_conf_save(test_dir(), &c, &err) == 0, "%s", err.msg);
	ck_assert_msg(disk_conf_load(test_dir(), &back, &err) == 0, "%s", err.msg);
	ck_assert_str_eq(back.image, c.image);
	ck_assert_uint_eq(back.version, 42);
	ck_assert_uint_eq(back.n_urls, 2);
	ck_assert_str_eq(back.urls[0], urls[0]);
	ck_assert_str_eq(back.urls[1], urls[1]);
	disk_conf_release(&back);
	ck_assert_uint_eq(back.n_urls, 0);
	ck_assert_ptr_null(back.urls[0]);

	/* Saving again replaces the file whole, leaving no temporary beside it. */
	c.version = UINT64_MAX;
	c.n_urls = 1;
	ck_assert_int_eq(disk_conf_save(test_dir(), &c, &err), 0);
	ck_assert_int_eq(disk_conf_load(test_dir(), &back, &err), 0);
	ck_assert_uint_eq(back.version, UINT64_MAX);
	ck_assert_uint_eq(back.n_urls, 1);
	disk_conf_release(&back);
	ck_assert_int_eq(entries_in_test_dir(), 1);
}
END_TEST

START_TEST(test_conf_lenient_where_harmless)
{
	struct disk_conf c;
	struct circ_err err;
	char text[4096];
	size_t n = 0;

	/* Unknown keys (a newer circ's) and lines without a value are skipped. */
	write_conf("# comment\n"
	           "future-key some value\n"
	           "novalue\n"
	           "\n"
	           "url ftp://not-used\n"
	           "url http://a\n"
	           "version 3\n"
	           "image img\n");
	ck_assert_msg(disk_conf_load(test_dir(), &c, &err) == 0, "%s", err.msg);
	ck_assert_str_eq(c.image, "img");
	ck_assert_uint_eq(c.version, 3);
	ck_assert_uint_eq(c.n_urls, 1);
	ck_assert_str_eq(c.urls[0], "http://a");
	disk_conf_release(&c);

	/* More URLs than mirrors are kept: the first STATE_MAX_MIRRORS, in order. */
	n += (size_t)snprintf(text + n, sizeof(text) - n, "image img\nversion 1\n");
	for (int i = 0; i < STATE_MAX_MIRRORS + 3; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "url http://m%d\n", i);
	write_conf(text);
	ck_assert_int_eq(disk_conf_load(test_dir(), &c, &err), 0);
	ck_assert_uint_eq(c.n_urls, STATE_MAX_MIRRORS);
	ck_assert_str_eq(c.urls[0], "http://m0");
	ck_assert_str_eq(c.urls[STATE_MAX_MIRRORS - 1], "http://m7");
	disk_conf_release(&c);

	/* No newline at the end. */
	write_conf("image img\nversion 9\nurl https://x");
	ck_assert_int_eq(disk_conf_load(test_dir(), &c, &err), 0);
	ck_assert_uint_eq(c.version, 9);
	ck_assert_str_eq(c.urls[0], "https://x");
	disk_conf_release(&c);
}
END_TEST

START_TEST(test_conf_refused)
{
	static const char *const bad[] = {
		"",
		"version 1\nurl http://a\n",                  /* no image */
		"image img\nurl http://a\n",                  /* no version */
		"image img\nversion 1\n",                     /* no url */
		"image img\nversion 1\nurl ftp://a\n",        /* not http */
		"image img\nversion 1\nurl file:///etc\n",    /* not http */
		"image img\nversion 0\nurl http://a\n",       /* versions start at 1 */
		"image img\nversion 7x\nurl http://a\n",      /* not a number */
		"image img\nversion \nurl http://a\n",        /* empty number */
		"image ../x\nversion 1\nurl http://a\n",      /* not an image name */
		"image .hidden\nversion 1\nurl http://a\n",   /* not an image name */
		"image \nversion 1\nurl http://a\n",          /* empty image name */
		"image img\nversion 1\nurl http://a b\n",     /* space in the URL */
		"image img\nversion 1\nurl http://a\tb\n",    /* control character */
		"IMAGE img\nVERSION 1\nURL http://a\n",       /* keys are lower case */
		"image\timg\nversion\t1\nurl\thttp://a\n",    /* one space separates */
		"image img\r\nversion 1\r\nurl http://a\r\n", /* CRLF */
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_conf(bad[i]);
		expect_refused(EBADMSG);
	}
}
END_TEST

START_TEST(test_conf_garbage)
{
	static uint8_t junk[8192], big[8193];
	struct disk_conf c;
	struct circ_err err;
	char path[PATH_MAX];

	test_path(path, "disk.conf");
	for (uint64_t seed = 0; seed < 50; seed++) {
		size_t len = (size_t)(seed * 163) % sizeof(junk);

		fill_random(junk, len, seed);
		write_file(path, junk, len);
		expect_refused(EBADMSG);
	}
	/* A valid file with a NUL in the middle: what follows it is not read. */
	write_file(path, "image img\nversion 1\n\0url http://a\n", 34);
	expect_refused(EBADMSG);
	/* The largest disk.conf read, and one byte more. */
	memset(big, '#', sizeof(big));
	memcpy(big, "image img\nversion 1\nurl http://a\n", 33);
	big[8191] = '\n';
	write_file(path, big, 8192);
	ck_assert_msg(disk_conf_load(test_dir(), &c, &err) == 0, "%s", err.msg);
	disk_conf_release(&c);
	big[8192] = '\n';
	write_file(path, big, 8193);
	expect_refused(EFBIG);
}
END_TEST

START_TEST(test_conf_missing)
{
	struct disk_conf c;
	struct circ_err err;
	char path[PATH_MAX];

	ck_assert_int_eq(disk_conf_load(test_dir(), &c, &err), -1);
	ck_assert_int_eq(err.errnum, ENOENT);
	ck_assert_err_has(&err, "circ pull");
	ck_assert_uint_eq(c.n_urls, 0);
	/* disk.conf a directory. */
	test_path(path, "disk.conf");
	make_dirs(path);
	expect_refused(EISDIR);
}
END_TEST

START_TEST(test_stats_round_trip)
{
	struct disk_stats st = { .fetched_bytes = 123456789012ull,
		                 .fetched_blocks = 7,
		                 .requests = 9,
		                 .hits = UINT64_MAX,
		                 .misses = 0,
		                 .overlay_bytes = 4096 },
	                  back;

	memset(&back, 0x5a, sizeof(back));
	ck_assert_int_eq(disk_stats_load(test_dir(), &back), -ENOENT);
	ck_assert_uint_eq(back.hits, 0);
	ck_assert_uint_eq(back.fetched_bytes, 0);
	ck_assert_int_eq(disk_stats_save(test_dir(), &st), 0);
	ck_assert_int_eq(disk_stats_load(test_dir(), &back), 0);
	ck_assert_mem_eq(&back, &st, sizeof(st));
	st.hits = 1;
	ck_assert_int_eq(disk_stats_save(test_dir(), &st), 0);
	ck_assert_int_eq(disk_stats_load(test_dir(), &back), 0);
	ck_assert_uint_eq(back.hits, 1);
	ck_assert_int_eq(entries_in_test_dir(), 1);
}
END_TEST

START_TEST(test_stats_partial)
{
	static uint8_t junk[2000];
	struct disk_stats back;
	char path[PATH_MAX];

	/* Missing lines read as 0, unknown ones are skipped. */
	test_path(path, "stats");
	write_file(path, "hits 5\nfuture 9\nmisses 2\n", 25);
	ck_assert_int_eq(disk_stats_load(test_dir(), &back), 0);
	ck_assert_uint_eq(back.hits, 5);
	ck_assert_uint_eq(back.misses, 2);
	ck_assert_uint_eq(back.fetched_bytes, 0);
	ck_assert_uint_eq(back.overlay_bytes, 0);
	/* Garbage reads as whatever it reads as, without crashing. */
	for (uint64_t seed = 0; seed < 20; seed++) {
		fill_random(junk, sizeof(junk), seed);
		write_file(path, junk, (size_t)seed * 100);
		ck_assert_int_eq(disk_stats_load(test_dir(), &back), 0);
	}
}
END_TEST

START_TEST(test_paths)
{
	char *p;

	p = state_disk_dir("/s", "deb");
	ck_assert_str_eq(p, "/s/disks/deb");
	free(p);
	p = state_cache_dir("/s");
	ck_assert_str_eq(p, "/s/cache");
	free(p);
	ck_assert(state_disk_name_valid("deb-12.1_x"));
	ck_assert(!state_disk_name_valid(""));
	ck_assert(!state_disk_name_valid(".."));
	ck_assert(!state_disk_name_valid("a/b"));
	ck_assert(!state_disk_name_valid(".x"));
}
END_TEST

/*
 * Rollback protection rests on the seen file: none is "nothing seen yet",
 * but one that cannot be read or holds anything but a number must stop
 * the caller, not read as 0 (which would let any older version in).
 */
START_TEST(test_seen_file)
{
	static const char *const bad[] = { "",    "x\n", "12", "12x\n", "99999999999999999999999\n",
		                           "-3\n" };
	char path[PATH_MAX];
	struct circ_err err;
	uint64_t seen = 42;

	test_path(path, "seen");
	ck_assert_int_eq(state_seen_read(path, &seen, &err), 0);
	ck_assert_uint_eq(seen, 0);
	ck_assert_int_eq(state_seen_write(NULL, path, 7, &err), 0);
	ck_assert_int_eq(state_seen_read(path, &seen, &err), 0);
	ck_assert_uint_eq(seen, 7);
	/* Never lowered. */
	ck_assert_int_eq(state_seen_write(NULL, path, 5, &err), 0);
	ck_assert_int_eq(state_seen_read(path, &seen, &err), 0);
	ck_assert_uint_eq(seen, 7);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_file(path, bad[i], strlen(bad[i]));
		seen = 42;
		ck_assert_msg(state_seen_read(path, &seen, &err) == -1, "'%s' was read", bad[i]);
		ck_assert_int_eq(err.errnum, EINVAL);
		ck_assert_ptr_nonnull(strstr(err.msg, "damaged"));
		ck_assert_uint_eq(seen, 0);
		/* Nor is it overwritten: what it held is not known. */
		ck_assert_int_eq(state_seen_write(NULL, path, 3, &err), -1);
	}
	/* Unreadable (a directory in its place). */
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(mkdir(path, 0755), 0);
	ck_assert_int_eq(state_seen_read(path, &seen, &err), -1);
	ck_assert_int_ne(err.errnum, ENOENT);
	ck_assert_int_eq(rmdir(path), 0);
}
END_TEST

Suite *state_suite(void)
{
	Suite *s = suite_create("state");
	TCase *tc = tcase_create("state");

	tcase_add_scratch(tc);
	tcase_add_test(tc, test_conf_round_trip);
	tcase_add_test(tc, test_conf_lenient_where_harmless);
	tcase_add_test(tc, test_conf_refused);
	tcase_add_test(tc, test_conf_garbage);
	tcase_add_test(tc, test_conf_missing);
	tcase_add_test(tc, test_stats_round_trip);
	tcase_add_test(tc, test_stats_partial);
	tcase_add_test(tc, test_paths);
	tcase_add_test(tc, test_seen_file);
	suite_add_tcase(s, tc);
	return s;
}
