/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blockfs/repo.h"
#include "tests/unit/suites.h"
#include "tests/unit/testutil.h"

#define ABC_HEX "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

static struct repo *open_repo(void)
{
	struct repo *r = NULL;
	struct circ_err err;

	ck_assert_msg(repo_open_dir(test_dir(), false, &r, &err) == 0, "%s", err.msg);
	return r;
}

static bool exists(const char *rel)
{
	char path[PATH_MAX];
	struct stat st;

	test_path(path, rel);
	return lstat(path, &st) == 0;
}

static void touch(const char *rel)
{
	char path[PATH_MAX];

	test_path(path, rel);
	write_file(path, "t", 1);
}

/* The name of the one entry in a directory; fails if there are others. */
static const char *only_entry(const char *rel)
{
	static char name[256];
	char path[PATH_MAX];
	struct dirent *de;
	int n = 0;
	DIR *d;

	test_path(path, rel);
	d = opendir(path);
	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(name, sizeof(name), "%s", de->d_name);
		n++;
	}
	closedir(d);
	ck_assert_msg(n == 1, "%s holds %d entries", rel, n);
	return name;
}

/* A block of bs random bytes, its ID and its stored form. */
static void make_block(uint8_t *data, size_t bs, uint64_t seed, struct block_id *id,
                       struct buf *comp)
{
	struct block_encoder *enc = block_encoder_new(3);
	struct circ_err err;

	fill_random(data, bs / 2, seed);
	memset(data + bs / 2, (int)seed, bs - bs / 2);
	block_id_compute(id, data, bs);
	ck_assert_int_eq(block_encode(enc, data, bs, comp, &err), 0);
	block_encoder_free(enc);
}

START_TEST(test_name_valid)
{
	static const char *const good[] = { "debian-12.1_x",  "a", "A", "0", "x..y", "a.",
		                            "ABC-def_123.img" };
	static const char *const bad[] = { "",    ".hidden", "a/b",  "..",    ".",   "/",
		                           "a b", " a",      "a\tb", "a\n",   "a:b", "a\\b",
		                           "*",   "a?",      "é",    "a%2fb", "~a" };
	char name[REPO_NAME_MAX + 2];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ck_assert_msg(repo_name_valid(good[i]), "rejected '%s'", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(!repo_name_valid(bad[i]), "accepted '%s'", bad[i]);
	memset(name, 'n', REPO_NAME_MAX);
	name[REPO_NAME_MAX] = '\0';
	ck_assert(repo_name_valid(name));
	name[REPO_NAME_MAX] = 'n';
	name[REPO_NAME_MAX + 1] = '\0';
	ck_assert(!repo_name_valid(name));
}
END_TEST

START_TEST(test_paths)
{
	char path[REPO_PATH_MAX];
	struct block_id id;

	ck_assert_int_eq(block_id_from_hex(&id, ABC_HEX), 0);
	repo_block_path(&id, path);
	ck_assert_str_eq(path, "blocks/ba/" ABC_HEX);
	repo_manifest_path("debian-12", 7, path);
	ck_assert_str_eq(path, "images/debian-12/7.manifest");
	repo_manifest_path("d", UINT64_MAX, path);
	ck_assert_str_eq(path, "images/d/18446744073709551615.manifest");
	repo_pointer_path("debian-12", path);
	ck_assert_str_eq(path, "images/debian-12/latest");
}
END_TEST

START_TEST(test_open_dir)
{
	char dir[PATH_MAX];
	struct repo *r = NULL;
	struct circ_err err;
	struct stat st;

	test_path(dir, "new-repo");
	ck_assert_int_eq(repo_open_dir(dir, false, &r, &err), -1);
	ck_assert_int_eq(err.errnum, ENOENT);
	ck_assert_err_has(&err, dir);
	ck_assert_int_eq(repo_open_dir(dir, true, &r, &err), 0);
	ck_assert_int_eq(stat(dir, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_str_eq(repo_location(r), dir);
	ck_assert_ptr_null(repo_fetcher(r));
	repo_close(r);
	/* Opening an existing repo with create is not an error. */
	ck_assert_int_eq(repo_open_dir(dir, true, &r, &err), 0);
	repo_close(r);
	repo_close(NULL);
}
END_TEST

START_TEST(test_store_read_block)
{
	static uint8_t data[8192], back[8192];
	struct buf comp = { 0 }, scratch = { 0 };
	char path[REPO_PATH_MAX], full[PATH_MAX];
	struct block_id id, other;
	struct repo *r = open_repo();
	struct circ_err err;
	struct buf file = { 0 };

	make_block(data, sizeof(data), 1, &id, &comp);
	ck_assert(!repo_has_block(r, &id));
	ck_assert_msg(repo_store_block(r, &id, comp.data, comp.len, &err) == 0, "%s", err.msg);
	ck_assert(repo_has_block(r, &id));
	repo_block_path(&id, path);
	ck_assert(repo_file_exists(r, path));
	/* The stored object is the frame itself, so any web server can serve it. */
	test_path(full, path);
	read_file(full, &file);
	ck_assert_uint_eq(file.len, comp.len);
	ck_assert_mem_eq(file.data, comp.data, comp.len);
	ck_assert_msg(repo_read_block(r, &id, sizeof(data), back, &scratch, &err) == 0, "%s",
	              err.msg);
	ck_assert_mem_eq(back, data, sizeof(data));

	memcpy(&other, &id, sizeof(id));
	other.b[0] ^= 0xff;
	ck_assert(!repo_has_block(r, &other));
	ck_assert_int_eq(repo_read_block(r, &other, sizeof(data), back, &scratch, &err), -1);
	ck_assert_int_eq(err.errnum, ENOENT);

	ck_assert_int_eq(repo_remove_block(r, &id), 0);
	ck_assert(!repo_has_block(r, &id));
	ck_assert_int_eq(repo_remove_block(r, &id), -ENOENT);
	repo_close(r);
	buf_free(&comp);
	buf_free(&scratch);
	buf_free(&file);
}
END_TEST

START_TEST(test_read_block_corrupted)
{
	static uint8_t data[4096], back[4096], other_data[4096];
	struct buf comp = { 0 }, other = { 0 }, scratch = { 0 };
	char path[REPO_PATH_MAX], full[PATH_MAX], hex[BLOCK_ID_HEX_LEN + 1];
	struct block_id id, other_id;
	struct repo *r = open_repo();
	struct circ_err err;
	uint8_t *big;

	make_block(data, sizeof(data), 2, &id, &comp);
	make_block(other_data, sizeof(other_data), 3, &other_id, &other);
	ck_assert_int_eq(repo_store_block(r, &id, comp.data, comp.len, &err), 0);
	repo_block_path(&id, path);
	test_path(full, path);
	block_id_to_hex(&id, hex);

	/* One flipped byte in the middle of the stored file. */
	comp.data[comp.len / 2] ^= 0x01;
	write_file(full, comp.data, comp.len);
	ck_assert_int_eq(repo_read_block(r, &id, sizeof(data), back, &scratch, &err), -1);
	ck_assert_int_eq(err.errnum, EBADMSG);
	ck_assert_err_has(&err, hex);
	comp.data[comp.len / 2] ^= 0x01;

	/* A good frame of another block under this name. */
	write_file(full, other.data, other.len);
	ck_assert_int_eq(repo_read_block(r, &id, sizeof(data), back, &scratch, &err), -1);
	ck_assert_err_has(&err, "does not match");

	write_file(full, comp.data, comp.len - 1);
	ck_assert_int_eq(repo_read_block(r, &id, sizeof(data), back, &scratch, &err), -1);
	write_file(full, "", 0);
	ck_assert_int_eq(repo_read_block(r, &id, sizeof(data), back, &scratch, &err), -1);
	/* A good frame read as a block of the wrong size. */
	write_file(full, comp.data, comp.len);
	big = malloc(2 * sizeof(data));
	ck_assert_int_eq(repo_read_block(r, &id, 2 * sizeof(data), big, &scratch, &err), -1);
	free(big);

	/* Storing the block again repairs it. */
	comp.data[0] ^= 0xff;
	write_file(full, comp.data, comp.len);
	comp.data[0] ^= 0xff;
	ck_assert_int_eq(repo_read_block(r, &id, sizeof(data), back, &scratch, &err), -1);
	ck_assert_int_eq(repo_store_block(r, &id, comp.data, comp.len, &err), 0);
	ck_assert_msg(repo_read_block(r, &id, sizeof(data), back, &scratch, &err) == 0, "%s",
	              err.msg);
	ck_assert_mem_eq(back, data, sizeof(data));
	repo_close(r);
	buf_free(&comp);
	buf_free(&other);
	buf_free(&scratch);
}
END_TEST

START_TEST(test_read_file_limits)
{
	static uint8_t data[100];
	struct repo *r = open_repo();
	struct buf out = { 0 };
	struct circ_err err;
	char path[PATH_MAX];

	fill_random(data, sizeof(data), 4);
	test_path(path, "f");
	write_file(path, data, sizeof(data));
	ck_assert_int_eq(repo_read_file(r, "f", sizeof(data) - 1, 0, &out, &err), -1);
	ck_assert_int_eq(err.errnum, EFBIG);
	ck_assert_uint_eq(out.len, 0);
	ck_assert_int_eq(repo_read_file(r, "f", sizeof(data), 0, &out, &err), 0);
	ck_assert_uint_eq(out.len, sizeof(data));
	ck_assert_mem_eq(out.data, data, sizeof(data));

	ck_assert_int_eq(repo_read_file(r, "missing", 100, 0, &out, &err), -1);
	ck_assert_int_eq(err.errnum, ENOENT);
	ck_assert_err_has(&err, "missing");
	ck_assert_int_eq(repo_read_file(r, "images/x/latest", 100, 0, &out, &err), -1);
	ck_assert_int_eq(err.errnum, ENOENT);

	test_path(path, "d");
	make_dirs(path);
	ck_assert_int_eq(repo_read_file(r, "d", 100, 0, &out, &err), -1);

	test_path(path, "empty");
	write_file(path, "", 0);
	ck_assert_int_eq(repo_read_file(r, "empty", 0, 0, &out, &err), 0);
	ck_assert_uint_eq(out.len, 0);
	repo_close(r);
	buf_free(&out);
}
END_TEST

START_TEST(test_write_file)
{
	static uint8_t big[100000];
	struct repo *r = open_repo();
	struct buf out = { 0 };
	struct circ_err err;

	ck_assert_msg(repo_write_file(r, "images/deb/latest", "one", 3, &err) == 0, "%s", err.msg);
	ck_assert(repo_file_exists(r, "images/deb/latest"));
	ck_assert_int_eq(repo_read_file(r, "images/deb/latest", 100, 0, &out, &err), 0);
	ck_assert_uint_eq(out.len, 3);
	ck_assert_mem_eq(out.data, "one", 3);
	/* The pointer is the one file that changes: a rewrite replaces it whole. */
	fill_random(big, sizeof(big), 5);
	ck_assert_int_eq(repo_write_file(r, "images/deb/latest", big, sizeof(big), &err), 0);
	ck_assert_int_eq(repo_read_file(r, "images/deb/latest", sizeof(big), 0, &out, &err), 0);
	ck_assert_uint_eq(out.len, sizeof(big));
	ck_assert_mem_eq(out.data, big, sizeof(big));
	ck_assert_int_eq(repo_write_file(r, "images/deb/latest", "two", 3, &err), 0);
	ck_assert_int_eq(repo_read_file(r, "images/deb/latest", 100, 0, &out, &err), 0);
	ck_assert_uint_eq(out.len, 3);
	ck_assert_mem_eq(out.data, "two", 3);
	/* No temporaries left beside it. */
	ck_assert_str_eq(only_entry("images/deb"), "latest");
	ck_assert_int_eq(repo_write_file(r, "top", "x", 1, &err), 0);
	ck_assert(repo_file_exists(r, "top"));
	ck_assert_int_eq(repo_remove_file(r, "top"), 0);
	ck_assert(!repo_file_exists(r, "top"));
	ck_assert_int_eq(repo_remove_file(r, "top"), -ENOENT);
	ck_assert_int_eq(repo_sync(r, &err), 0);
	repo_close(r);
	buf_free(&out);
}
END_TEST

START_TEST(test_clean_temporaries)
{
	static const char *const temps[] = { "blocks/ab/.tmp-123-0", "blocks/.tmp-9-1",
		                             "images/deb/.tmp-1-2", "images/.tmp-x" };
	static const char *const keep[] = { "blocks/ab/ab00",     "images/deb/1.manifest",
		                            "images/deb/latest",  "images/deb/tmp-1",
		                            "images/deb/x.tmp-1", ".tmp-root",
		                            "other/.tmp-1",       "images/deb/.tmpx" };
	struct repo *r = open_repo();
	char path[PATH_MAX];

	test_path(path, "blocks/ab");
	make_dirs(path);
	test_path(path, "images/deb");
	make_dirs(path);
	test_path(path, "other");
	make_dirs(path);
	for (size_t i = 0; i < sizeof(temps) / sizeof(temps[0]); i++)
		touch(temps[i]);
	for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
		touch(keep[i]);
	repo_clean_temporaries(r);
	for (size_t i = 0; i < sizeof(temps) / sizeof(temps[0]); i++)
		ck_assert_msg(!exists(temps[i]), "%s left behind", temps[i]);
	for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
		ck_assert_msg(exists(keep[i]), "%s removed", keep[i]);
	ck_assert(exists("blocks/ab"));
	ck_assert(exists("images/deb"));
	repo_close(r);
}
END_TEST

/* A repo without blocks/ or images/ yet is not an error. */
START_TEST(test_clean_temporaries_empty)
{
	struct repo *r = open_repo();

	repo_clean_temporaries(r);
	ck_assert(!exists("blocks"));
	repo_close(r);
}
END_TEST

START_TEST(test_url_repo_is_read_only)
{
	static const char *const mirrors[] = { "http://127.0.0.1:9/repo" };
	struct fetch_config cfg = { .mirrors = mirrors, .n_mirrors = 1 };
	struct repo *r = NULL;
	struct circ_err err;

	ck_assert_msg(repo_open_url(&cfg, &r, &err) == 0, "%s", err.msg);
	ck_assert_str_eq(repo_location(r), mirrors[0]);
	ck_assert_ptr_nonnull(repo_fetcher(r));
	ck_assert_int_eq(repo_lock(r, &err), -1);
	ck_assert_int_eq(err.errnum, EROFS);
	repo_close(r);
}
END_TEST

START_TEST(test_lock)
{
	struct repo *r = open_repo();
	struct circ_err err;

	ck_assert_msg(repo_lock(r, &err) == 0, "%s", err.msg);
	ck_assert(exists(".lock"));
	repo_close(r);
}
END_TEST

Suite *repo_suite(void)
{
	Suite *s = suite_create("repo");
	TCase *names = tcase_create("names");
	TCase *dir = tcase_create("dir");

	tcase_add_test(names, test_name_valid);
	tcase_add_test(names, test_paths);
	suite_add_tcase(s, names);

	tcase_add_scratch(dir);
	tcase_add_test(dir, test_open_dir);
	tcase_add_test(dir, test_store_read_block);
	tcase_add_test(dir, test_read_block_corrupted);
	tcase_add_test(dir, test_read_file_limits);
	tcase_add_test(dir, test_write_file);
	tcase_add_test(dir, test_clean_temporaries);
	tcase_add_test(dir, test_clean_temporaries_empty);
	tcase_add_test(dir, test_url_repo_is_read_only);
	tcase_add_test(dir, test_lock);
	suite_add_tcase(s, dir);
	return s;
}
