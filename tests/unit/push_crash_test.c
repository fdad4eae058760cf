/* SPDX-License-Identifier: MIT */
/*
 * Power cuts of the server's upload commit. `circ serve --users` runs in
 * this process with its uploads going through a crashfs (crashfs.h), and
 * circ push checks a disk in three times. In every crash image of the
 * server's tree, the user's head, if there is one, parses and names a
 * check-in whose layer is there with the hash the head gives, and every
 * object that check-in stood on (keys, layers, blocks, as they were when
 * its push returned) is there, byte for byte; a push that returned is never
 * undone. CIRC_CRASH_IMAGES sets how many images (default 1000).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>

#include "vdisk/head.h"
#include "vdisk/migrate.h"
#include "tests/unit/crashfs.h"
#include "tests/unit/push_fixture.h"
#include "tests/unit/suites.h"
#include "tests/unit/testutil.h"

#define PUSHES    3
#define HEAD_PATH "users/alice/home/head"

/* Every file below root (temporaries aside), path and bytes. */
struct tree {
	char **paths;
	struct buf *data;
	size_t n;
};

static void tree_walk(struct tree *t, const char *root, const char *rel)
{
	char path[PATH_MAX + 64];
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "%s%s%s", root, *rel ? "/" : "", rel);
	d = opendir(path);
	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d))) {
		char sub[PATH_MAX];
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		snprintf(sub, sizeof(sub), "%s%s%s", rel, *rel ? "/" : "", de->d_name);
		snprintf(path, sizeof(path), "%s/%s", root, sub);
		ck_assert_int_eq(lstat(path, &st), 0);
		if (S_ISDIR(st.st_mode)) {
			tree_walk(t, root, sub);
			continue;
		}
		t->paths = realloc(t->paths, (t->n + 1) * sizeof(*t->paths));
		t->data = realloc(t->data, (t->n + 1) * sizeof(*t->data));
		ck_assert(t->paths && t->data);
		t->paths[t->n] = strdup(sub);
		t->data[t->n] = (struct buf){ 0 };
		read_file(path, &t->data[t->n]);
		t->n++;
	}
	closedir(d);
}

static void tree_free(struct tree *t)
{
	for (size_t i = 0; i < t->n; i++) {
		free(t->paths[i]);
		buf_free(&t->data[i]);
	}
	free(t->paths);
	free(t->data);
	*t = (struct tree){ 0 };
}

static bool file_equals(const char *path, const struct buf *want)
{
	struct buf b = { 0 };
	struct stat st;
	bool same;

	if (stat(path, &st))
		return false;
	read_file(path, &b);
	same = b.len == want->len && memcmp(b.data, want->data, b.len) == 0;
	buf_free(&b);
	return same;
}

/* The check-in the image's head names (0: none), checked against what its push left. */
static uint64_t check_image(const char *dir, const struct tree snap[PUSHES + 1], size_t image,
                            size_t k)
{
	char path[PATH_MAX + 64];
	uint8_t sha[32];
	struct user_head h;
	struct buf b = { 0 };
	struct circ_err err;
	struct stat st;
	const struct tree *t;

	snprintf(path, sizeof(path), "%s/" HEAD_PATH, dir);
	if (stat(path, &st))
		return 0;
	read_file(path, &b);
	ck_assert_msg(head_parse(b.data, b.len, &h, &err) == 0,
	              "image %zu (crash after op %zu): the head does not parse: %s", image, k,
	              err.msg);
	buf_free(&b);
	ck_assert_msg(h.version <= PUSHES, "image %zu: head version %llu", image,
	              (unsigned long long)h.version);
	if (h.version == 0)
		return 0;
	snprintf(path, sizeof(path), "%s/users/alice/home/%llu.layer", dir,
	         (unsigned long long)h.version);
	ck_assert_msg(stat(path, &st) == 0,
	              "image %zu (crash after op %zu): the head names check-in %llu, whose layer "
	              "is missing",
	              image, k, (unsigned long long)h.version);
	read_file(path, &b);
	ck_assert_int_eq(EVP_Digest(b.data, b.len, sha, NULL, EVP_sha256(), NULL), 1);
	buf_free(&b);
	ck_assert_msg(memcmp(sha, h.layer_sha256, 32) == 0,
	              "image %zu (crash after op %zu): check-in %llu's layer is not the one its "
	              "head names",
	              image, k, (unsigned long long)h.version);
	t = &snap[h.version];
	for (size_t i = 0; i < t->n; i++) {
		if (strcmp(t->paths[i], HEAD_PATH) == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, t->paths[i]);
		ck_assert_msg(file_equals(path, &t->data[i]),
		              "image %zu (crash after op %zu): check-in %llu stood on %s, which is "
		              "missing or changed",
		              image, k, (unsigned long long)h.version, t->paths[i]);
	}
	return h.version;
}

START_TEST(test_upload_power_cuts)
{
	size_t images = crashfs_images(), first, done[PUSHES + 1] = { 0 }, last;
	char scratch[PATH_MAX];
	struct tree snap[PUSHES + 1] = { 0 };
	uint64_t x = 0x3c6ef372fe94f82bull;
	uint32_t versions[PUSHES + 1] = { 0 };
	static struct push_fixture fx;
	struct push_result res;
	struct crashfs *rec;
	struct circ_err err;
	char live[PATH_MAX];

	/* The recorder needs the tree before the server does. */
	test_path(live, "srv");
	make_dirs(live);
	rec = crashfs_new(live);
	first = crashfs_now(rec);
	push_fixture_start(&fx, crashfs_io(rec));
	for (uint32_t v = 1; v <= PUSHES; v++) {
		push_fixture_use_disk(&fx, v);
		ck_assert_msg(migrate_push(fx.state, "home", &fx.po, &res, &err) == 0,
		              "push %u: %s", v, err.msg);
		ck_assert_uint_eq(res.version, v);
		done[v] = crashfs_now(rec);
		tree_walk(&snap[v], live, "");
	}
	push_fixture_stop(&fx);
	last = crashfs_now(rec);

	for (size_t image = 0; image < images; image++) {
		size_t k = first + crashfs_draw(&x) % (last - first + 1);
		uint64_t v, promised = 0;

		test_path(scratch, "crash");
		rm_rf(scratch);
		make_dirs(scratch);
		crashfs_image(rec, k, crashfs_draw(&x) ^ image, scratch);
		v = check_image(scratch, snap, image, k);
		for (uint32_t i = 1; i <= PUSHES; i++)
			if (k >= done[i])
				promised = i;
		ck_assert_msg(v >= promised,
		              "image %zu (crash after op %zu): check-in %llu was acknowledged, the "
		              "head names %llu",
		              image, k, (unsigned long long)promised, (unsigned long long)v);
		versions[v]++;
	}
	ck_assert(images < 50 || (versions[0] && versions[PUSHES]));
	for (uint32_t v = 1; v <= PUSHES; v++)
		tree_free(&snap[v]);
	crashfs_free(rec);
}
END_TEST

Suite *push_crash_suite(void)
{
	Suite *s = suite_create("push_crash");
	TCase *tc = tcase_create("power cuts");

	tcase_add_scratch(tc);
	tcase_set_timeout(tc, 900);
	tcase_add_test(tc, test_upload_power_cuts);
	suite_add_tcase(s, tc);
	return s;
}
