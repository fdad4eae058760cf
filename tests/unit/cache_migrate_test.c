/* SPDX-License-Identifier: MIT */
/* The block cache's older layout (one file per block) moved into packs. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "util/fileio.h"
#include "tests/unit/cache_fixture.h"
#include "tests/unit/suites.h"
#include "tests/unit/testutil.h"

/* Writes block i as the older layout held it, CACHE/XX/<64 hex>, last used at mtime. */
static void old_entry(uint64_t i, time_t mtime, size_t len, const struct block_id *name)
{
	char hex[BLOCK_ID_HEX_LEN + 1], rel[128], path[PATH_MAX];
	struct timespec ts[2] = { { mtime, 0 }, { mtime, 0 } };
	struct block_id id;
	uint8_t data[BS];

	block_of(i, data, BS, &id);
	block_id_to_hex(name ? name : &id, hex);
	snprintf(rel, sizeof(rel), "cache/%.2s", hex);
	test_path(path, rel);
	make_dirs(path);
	snprintf(rel, sizeof(rel), "cache/%.2s/%s", hex, hex);
	test_path(path, rel);
	write_file(path, data, len);
	ck_assert_int_eq(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static bool rel_exists(const char *rel)
{
	char path[PATH_MAX];
	struct stat st;

	test_path(path, rel);
	return stat(path, &st) == 0;
}

/* Opens the test's cache with its log in a string; *log is malloc'd. */
static struct cache *open_logged(uint64_t max_bytes, char **log, size_t *len)
{
	struct cache_options o = { .max_bytes = max_bytes };
	struct cache *c = NULL;
	struct circ_err err;
	char dir[PATH_MAX];

	o.log = open_memstream(log, len);
	ck_assert_ptr_nonnull(o.log);
	cache_dir(dir);
	ck_assert_msg(cache_open_opts(dir, &o, &c, &err) == 0, "%s", err.msg);
	fclose(o.log);
	cache_set_log(c, NULL);
	return c;
}

/*
 * A cache of the older layout (one file per block) is moved into packs by
 * the first open, saying so once: its whole blocks are kept, the newest
 * when the bound cannot hold them all, and what is not a whole block
 * (short, other bytes, misplaced, a temporary) goes with its directory.
 */
START_TEST(test_older_layout_moved)
{
	time_t now = time(NULL);
	struct cache_stats st;
	struct block_id wrong;
	char path[PATH_MAX];
	char *log = NULL;
	size_t len = 0;
	struct cache *c;

	for (uint64_t i = 0; i < 6; i++)
		old_entry(i, now - 1000 + (time_t)(100 * i), BS, NULL);
	old_entry(6, now, BS / 2, NULL); /* torn short */
	block_of(8, (uint8_t[BS]){ 0 }, BS, &wrong);
	old_entry(7, now, BS, &wrong); /* other bytes under block 8's name */
	test_path(path, "cache/ab");
	make_dirs(path);
	test_path(path, "cache/ab/.tmp-12-3");
	write_file(path, "torn", 4);
	test_path(path, "cache/ab/0123"); /* no block's name */
	write_file(path, "x", 1);

	/* Room for four: blocks 2 to 5, the newest whole ones, stay. */
	c = open_logged(4 * ONE, &log, &len);
	ck_assert_msg(strstr(log, "moving the block cache") && strstr(log, "(8 blocks"), "%s", log);
	ck_assert_msg(strstr(log, "4 blocks kept, 2 damaged dropped, 2 past the bound"), "%s", log);
	free(log);
	cache_get_stats(c, &st);
	ck_assert_uint_eq(st.migrated, 4);
	ck_assert_uint_eq(st.entries, 4);
	for (uint64_t i = 0; i < 9; i++)
		ck_assert_msg(hits(c, i) == (i >= 2 && i <= 5), "block %d", (int)i);
	cache_close(c);
	for (unsigned sub = 0; sub < 256; sub++) {
		char rel[16];

		snprintf(rel, sizeof(rel), "cache/%02x", sub);
		ck_assert_msg(!rel_exists(rel), "%s is still there", rel);
	}
	/* Moved once: the next open says nothing and finds the same. */
	c = open_logged(4 * ONE, &log, &len);
	ck_assert_uint_eq(len, 0);
	free(log);
	for (uint64_t i = 2; i <= 5; i++)
		ck_assert(hits(c, i));
	cache_close(c);
}
END_TEST

/* Files left in the older layout's fan-out directories. */
static unsigned old_files(void)
{
	unsigned n = 0;

	for (unsigned sub = 0; sub < 256; sub++) {
		char rel[16], path[PATH_MAX];
		struct dirent *de;
		DIR *d;

		snprintf(rel, sizeof(rel), "cache/%02x", sub);
		test_path(path, rel);
		d = opendir(path);
		while (d && (de = readdir(d)))
			n += de->d_name[0] != '.';
		if (d)
			closedir(d);
	}
	return n;
}

/* The system's file operations, but pwrite fails with EIO once writes_left is spent. */
struct failing_io {
	struct fileio fio;
	int writes_left;
};

static int failing_pwrite(void *ctx, int fd, const void *buf, size_t len, uint64_t off)
{
	struct failing_io *f = ctx;

	if (f->writes_left-- <= 0)
		return -EIO;
	return fileio_system.pwrite(NULL, fd, buf, len, off);
}

/*
 * A move cut short by a failing write (a full or failing disk) keeps every
 * old file it has not got a synced copy of; the next open moves the rest.
 */
START_TEST(test_older_layout_move_stops_on_failure)
{
	struct failing_io f = { .fio = fileio_system, .writes_left = 9 };
	struct cache_options o = { .fio = &f.fio };
	time_t now = time(NULL);
	struct cache_stats st;
	char dir[PATH_MAX], *log = NULL;
	struct cache *c = NULL;
	struct circ_err err;
	size_t len = 0;

	f.fio.pwrite = failing_pwrite;
	f.fio.ctx = &f;
	for (uint64_t i = 0; i < 12; i++)
		old_entry(i, now - 100 + (time_t)i, BS, NULL);
	o.log = open_memstream(&log, &len);
	ck_assert_ptr_nonnull(o.log);
	cache_dir(dir);
	ck_assert_msg(cache_open_opts(dir, &o, &c, &err) == 0, "%s", err.msg);
	fclose(o.log);
	ck_assert_msg(strstr(log, "blocks left in the older layout"), "%s", log);
	free(log);
	cache_close(c);
	ck_assert_uint_gt(old_files(), 0);
	/* Whatever the first run moved or not, every block is there for the next. */
	c = open_logged(0, &log, &len);
	ck_assert_msg(strstr(log, "moving the block cache"), "%s", log);
	free(log);
	cache_get_stats(c, &st);
	ck_assert_uint_eq(st.entries, 12);
	for (uint64_t i = 0; i < 12; i++)
		ck_assert_msg(hits(c, i), "block %d lost", (int)i);
	cache_close(c);
	ck_assert_uint_eq(old_files(), 0);
}
END_TEST

Suite *cache_migrate_suite(void)
{
	Suite *s = suite_create("cache_migrate");
	TCase *tc = tcase_create("older layout");

	tcase_add_scratch(tc);
	tcase_add_test(tc, test_older_layout_moved);
	tcase_add_test(tc, test_older_layout_move_stops_on_failure);
	suite_add_tcase(s, tc);
	return s;
}
