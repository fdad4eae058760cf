/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vdisk/image.h"
#include "tests/unit/suites.h"
#include "tests/unit/testutil.h"

#define NAME    "deb"
#define CREATED 1700000000u
#define EXPIRES (CREATED + 86400u)

static struct repo *repo;

static void publish(const char *name, uint64_t version, uint64_t created, struct key *k,
                    const char *at_name, uint64_t at_version, struct buf *out)
{
	char path[REPO_PATH_MAX];
	struct manifest m;
	struct circ_err err;

	ck_assert_int_eq(manifest_init(&m, name, 3 * 4096, 4096, &err), 0);
	m.version = version;
	m.parent = version - 1;
	m.created = created;
	block_id_compute(&m.blocks[0], &version, sizeof(version));
	ck_assert_int_eq(manifest_encode(&m, k, out, &err), 0);
	manifest_release(&m);
	repo_manifest_path(at_name, at_version, path);
	ck_assert_msg(repo_write_file(repo, path, out->data, out->len, &err) == 0, "%s", err.msg);
}

static void point(const char *name, uint64_t version, const struct buf *manifest, struct key *k,
                  const char *at_name)
{
	char path[REPO_PATH_MAX];
	struct pointer p = { .version = version, .created = CREATED, .expires = EXPIRES };
	struct buf out = { 0 };
	struct circ_err err;

	snprintf(p.name, sizeof(p.name), "%s", name);
	p.manifest_size = manifest->len;
	manifest_file_hash(manifest->data, manifest->len, p.manifest_sha256);
	ck_assert_int_eq(pointer_encode(&p, k, &out, &err), 0);
	repo_pointer_path(at_name, path);
	ck_assert_int_eq(repo_write_file(repo, path, out.data, out.len, &err), 0);
	buf_free(&out);
}

/* A repo holding versions 1 and 2 of NAME, the pointer naming 2. */
static void repo_setup(void)
{
	struct buf b = { 0 };
	char dir[PATH_MAX];
	struct circ_err err;

	test_keypair("signer", &signer, &signer_pub);
	test_keypair("stranger", &stranger, &stranger_pub);
	test_path(dir, "repo");
	ck_assert_int_eq(repo_open_dir(dir, true, &repo, &err), 0);
	publish(NAME, 1, CREATED - 100, signer, NAME, 1, &b);
	publish(NAME, 2, CREATED, signer, NAME, 2, &b);
	point(NAME, 2, &b, signer, NAME);
	buf_free(&b);
}

static void repo_teardown(void)
{
	repo_close(repo);
	key_free(signer);
	key_free(signer_pub);
	key_free(stranger);
	key_free(stranger_pub);
	repo = NULL;
	signer = signer_pub = stranger = stranger_pub = NULL;
}

static void load_pointer(struct pointer *pt)
{
	struct circ_err err;

	ck_assert_msg(image_load_pointer(repo, signer_pub, NAME, CREATED, pt, &err) == 0, "%s",
	              err.msg);
}

START_TEST(test_load_newest)
{
	struct pointer pt;
	struct manifest m;
	struct circ_err err;

	load_pointer(&pt);
	ck_assert_str_eq(pt.name, NAME);
	ck_assert_uint_eq(pt.version, 2);
	ck_assert_uint_eq(pt.expires, EXPIRES);
	ck_assert_msg(image_load_manifest(repo, signer_pub, &pt, 0, &m, NULL, &err) == 0, "%s",
	              err.msg);
	ck_assert_uint_eq(m.version, 2);
	ck_assert_uint_eq(m.created, CREATED);
	ck_assert_str_eq(m.name, NAME);
	manifest_release(&m);
	ck_assert_int_eq(image_load_manifest(repo, signer_pub, &pt, 2, &m, NULL, &err), 0);
	ck_assert_uint_eq(m.version, 2);
	manifest_release(&m);
}
END_TEST

/* Callers that keep the manifest (a local disk's state) get its exact bytes. */
START_TEST(test_load_raw_bytes)
{
	char path[PATH_MAX];
	struct buf raw = { 0 }, file = { 0 };
	struct pointer pt;
	struct manifest m;
	struct circ_err err;

	load_pointer(&pt);
	ck_assert_int_eq(buf_append(&raw, "stale", 5), 0);
	ck_assert_msg(image_load_manifest(repo, signer_pub, &pt, 0, &m, &raw, &err) == 0, "%s",
	              err.msg);
	manifest_release(&m);
	test_path(path, "repo/images/deb/2.manifest");
	read_file(path, &file);
	ck_assert_uint_eq(raw.len, file.len);
	ck_assert_mem_eq(raw.data, file.data, file.len);
	buf_free(&raw);
	buf_free(&file);
}
END_TEST

START_TEST(test_load_older_version)
{
	struct pointer pt;
	struct manifest m;
	struct circ_err err;

	load_pointer(&pt);
	ck_assert_msg(image_load_manifest(repo, signer_pub, &pt, 1, &m, NULL, &err) == 0, "%s",
	              err.msg);
	ck_assert_uint_eq(m.version, 1);
	ck_assert_uint_eq(m.created, CREATED - 100);
	manifest_release(&m);
	ck_assert_int_eq(image_load_manifest(repo, signer_pub, &pt, 3, &m, NULL, &err), -1);
	ck_assert_int_eq(err.errnum, ENOENT);
	ck_assert_err_has(&err, "no version 3");
	ck_assert_ptr_null(m.blocks);
}
END_TEST

START_TEST(test_pointer_missing_or_bad_name)
{
	struct pointer pt;
	struct circ_err err;

	ck_assert_int_eq(image_load_pointer(repo, signer_pub, "other", CREATED, &pt, &err), -1);
	ck_assert_int_eq(err.errnum, ENOENT);
	ck_assert_err_has(&err, "has no image 'other'");
	ck_assert_int_eq(image_load_pointer(repo, signer_pub, "../deb", CREATED, &pt, &err), -1);
	ck_assert_int_eq(err.errnum, EINVAL);
}
END_TEST

START_TEST(test_pointer_wrong_key)
{
	struct pointer pt;
	struct circ_err err;

	ck_assert_int_eq(image_load_pointer(repo, stranger_pub, NAME, CREATED, &pt, &err), -1);
	ck_assert_int_eq(err.errnum, EPERM);
	ck_assert_err_has(&err, "signed by key");
	ck_assert_err_has(&err, "images/deb/latest");
}
END_TEST

/* A validly signed pointer for one image must not stand in for another. */
START_TEST(test_pointer_for_other_image)
{
	struct buf b = { 0 };
	struct pointer pt;
	struct circ_err err;

	publish("other", 1, CREATED, signer, "other", 1, &b);
	point("other", 1, &b, signer, NAME);
	ck_assert_int_eq(image_load_pointer(repo, signer_pub, NAME, CREATED, &pt, &err), -1);
	ck_assert_int_eq(err.errnum, EPERM);
	ck_assert_err_has(&err, "'other'");
	buf_free(&b);
}
END_TEST

START_TEST(test_pointer_expired)
{
	struct pointer pt;
	struct circ_err err;

	ck_assert_int_eq(image_load_pointer(repo, signer_pub, NAME, EXPIRES, &pt, &err), 0);
	ck_assert_int_eq(image_load_pointer(repo, signer_pub, NAME, EXPIRES + 1, &pt, &err), -1);
	ck_assert_int_eq(err.errnum, EKEYEXPIRED);
	ck_assert_err_has(&err, "expired");
	ck_assert_err_has(&err, "2023-11-15 22:13:20 UTC");
}
END_TEST

START_TEST(test_pointer_corrupted)
{
	char path[PATH_MAX];
	struct buf b = { 0 };
	struct pointer pt;
	struct circ_err err;

	test_path(path, "repo/images/deb/latest");
	read_file(path, &b);
	b.data[20] ^= 1;
	write_file(path, b.data, b.len);
	ck_assert_int_eq(image_load_pointer(repo, signer_pub, NAME, CREATED, &pt, &err), -1);
	ck_assert_int_eq(err.errnum, EPERM);
	buf_free(&b);
}
END_TEST

/* A second, validly signed version 2 is not the one the pointer names. */
START_TEST(test_manifest_swapped)
{
	struct buf b = { 0 };
	struct pointer pt;
	struct manifest m;
	struct circ_err err;

	load_pointer(&pt);
	publish(NAME, 2, CREATED + 1, signer, NAME, 2, &b);
	ck_assert_int_eq(image_load_manifest(repo, signer_pub, &pt, 0, &m, NULL, &err), -1);
	ck_assert_int_eq(err.errnum, EPERM);
	ck_assert_err_has(&err, "not the manifest the signed pointer names");
	ck_assert_ptr_null(m.blocks);
	buf_free(&b);
}
END_TEST

/* Older versions are checked by signature and by what they say they are. */
START_TEST(test_manifest_misplaced)
{
	struct buf b = { 0 };
	struct pointer pt;
	struct manifest m;
	struct circ_err err;

	load_pointer(&pt);
	publish(NAME, 2, CREATED, signer, NAME, 1, &b);
	ck_assert_int_eq(image_load_manifest(repo, signer_pub, &pt, 1, &m, NULL, &err), -1);
	ck_assert_int_eq(err.errnum, EPERM);
	ck_assert_err_has(&err, "holds");
	ck_assert_ptr_null(m.blocks);

	publish("other", 1, CREATED, signer, NAME, 1, &b);
	ck_assert_int_eq(image_load_manifest(repo, signer_pub, &pt, 1, &m, NULL, &err), -1);
	ck_assert_int_eq(err.errnum, EPERM);
	ck_assert_ptr_null(m.blocks);

	publish(NAME, 1, CREATED, stranger, NAME, 1, &b);
	ck_assert_int_eq(image_load_manifest(repo, signer_pub, &pt, 1, &m, NULL, &err), -1);
	ck_assert_err_has(&err, "signed by key");
	ck_assert_ptr_null(m.blocks);
	buf_free(&b);
}
END_TEST

START_TEST(test_manifest_missing)
{
	char path[REPO_PATH_MAX];
	struct pointer pt;
	struct manifest m;
	struct circ_err err;

	load_pointer(&pt);
	repo_manifest_path(NAME, 1, path);
	ck_assert_int_eq(repo_remove_file(repo, path), 0);
	ck_assert_int_eq(image_load_manifest(repo, signer_pub, &pt, 1, &m, NULL, &err), -1);
	ck_assert_int_eq(err.errnum, ENOENT);
}
END_TEST

Suite *image_suite(void)
{
	Suite *s = suite_create("image");
	TCase *tc = tcase_create("dir-repo");

	tcase_add_scratch(tc);
	tcase_add_checked_fixture(tc, repo_setup, repo_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_load_newest);
	tcase_add_test(tc, test_load_raw_bytes);
	tcase_add_test(tc, test_load_older_version);
	tcase_add_test(tc, test_pointer_missing_or_bad_name);
	tcase_add_test(tc, test_pointer_wrong_key);
	tcase_add_test(tc, test_pointer_for_other_image);
	tcase_add_test(tc, test_pointer_expired);
	tcase_add_test(tc, test_pointer_corrupted);
	tcase_add_test(tc, test_manifest_swapped);
	tcase_add_test(tc, test_manifest_misplaced);
	tcase_add_test(tc, test_manifest_missing);
	suite_add_tcase(s, tc);
	return s;
}
