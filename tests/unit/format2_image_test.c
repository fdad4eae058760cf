/* SPDX-License-Identifier: MIT */
/*
 * Format 2 beyond the manifest: the pointer's manifest size, loading a
 * manifest no larger than the pointer says, and writing a boot file out of
 * the block store.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vdisk/image.h"
#include "vdisk/manifest.h"
#include "tests/unit/format2_fixture.h"
#include "tests/unit/suites.h"
#include "tests/unit/testutil.h"

#define P_OFF_SIZE 112

static void pointer_sample(struct pointer *p, uint32_t format)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "%s", NAME);
	p->format = format;
	p->version = 12;
	p->created = 1700000000;
	p->expires = 1700000000 + 86400;
	p->manifest_size = format == 1 ? 0 : 123456;
	manifest_file_hash((const uint8_t *)"m", 1, p->manifest_sha256);
}

START_TEST(test_pointer_round_trip)
{
	struct pointer p, back;
	struct buf enc = { 0 };
	struct circ_err err;

	pointer_sample(&p, 0);
	ck_assert_msg(pointer_encode(&p, signer, &enc, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(p.format, 2);
	ck_assert_uint_eq(enc.len, POINTER_HEADER_LEN2 + 8 + KEY_SIG_LEN);
	ck_assert_uint_eq(get_u64le(enc.data + P_OFF_SIZE), 123456);
	ck_assert_msg(pointer_decode(enc.data, enc.len, signer_pub, &back, &err) == 0, "%s",
	              err.msg);
	ck_assert_uint_eq(back.format, 2);
	ck_assert_uint_eq(back.manifest_size, 123456);
	ck_assert_uint_eq(back.version, 12);
	ck_assert_str_eq(back.name, NAME);

	/* Format 1 still reads, with no size. */
	pointer_sample(&p, 1);
	ck_assert_msg(pointer_encode(&p, signer, &enc, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(enc.len, POINTER_HEADER_LEN + 8 + KEY_SIG_LEN);
	ck_assert_msg(pointer_decode(enc.data, enc.len, signer_pub, &back, &err) == 0, "%s",
	              err.msg);
	ck_assert_uint_eq(back.format, 1);
	ck_assert_uint_eq(back.manifest_size, 0);
	buf_free(&enc);
}
END_TEST

START_TEST(test_pointer_refuses)
{
	struct pointer p;
	struct buf enc = { 0 };
	struct circ_err err;
	uint8_t d[POINTER_HEADER_LEN2 + 8 + KEY_SIG_LEN];

	pointer_sample(&p, 2);
	p.manifest_size = 0;
	ck_assert_int_eq(pointer_encode(&p, signer, &enc, &err), -1);
	ck_assert_err_has(&err, "manifest size");
	p.manifest_size = (uint64_t)MANIFEST_MAX_LEN + 1;
	ck_assert_int_eq(pointer_encode(&p, signer, &enc, &err), -1);
	pointer_sample(&p, 1);
	p.manifest_size = 5000;
	ck_assert_int_eq(pointer_encode(&p, signer, &enc, &err), -1);
	p.format = 3;
	ck_assert_int_eq(pointer_encode(&p, signer, &enc, &err), -1);

	pointer_sample(&p, 2);
	ck_assert_int_eq(pointer_encode(&p, signer, &enc, &err), 0);
	ck_assert_uint_eq(enc.len, sizeof(d));
	memcpy(d, enc.data, sizeof(d));
	put_u64le(d + P_OFF_SIZE, 0);
	ck_assert_int_eq(pointer_parse(d, sizeof(d), &p, &err), -1);
	ck_assert_err_has(&err, "manifest size");
	put_u64le(d + P_OFF_SIZE, UINT64_MAX);
	ck_assert_int_eq(pointer_parse(d, sizeof(d), &p, &err), -1);
	memcpy(d, enc.data, sizeof(d));
	put_u32le(d + 12, POINTER_HEADER_LEN);
	ck_assert_int_eq(pointer_parse(d, sizeof(d), &p, &err), -1);
	ck_assert_err_has(&err, "header length");
	memcpy(d, enc.data, sizeof(d));
	put_u32le(d + 8, 1);
	ck_assert_int_eq(pointer_parse(d, sizeof(d), &p, &err), -1);
	for (size_t n = 0; n < enc.len; n++) {
		uint8_t *cut = malloc(n ? n : 1);

		memcpy(cut, enc.data, n);
		ck_assert_int_eq(pointer_parse(cut, n, &p, &err), -1);
		free(cut);
	}
	for (size_t i = 0; i < enc.len; i++) {
		enc.data[i] ^= 4;
		ck_assert_int_eq(pointer_decode(enc.data, enc.len, signer_pub, &p, &err), -1);
		enc.data[i] ^= 4;
	}
	buf_free(&enc);
}
END_TEST

/* --- loading with the pointer's size, and writing boot files --- */

static struct repo *repo;

static void write_version(struct manifest *m, struct buf *raw)
{
	char path[REPO_PATH_MAX];
	struct circ_err err;

	encode(m, raw);
	repo_manifest_path(m->name, m->version, path);
	ck_assert_msg(repo_write_file(repo, path, raw->data, raw->len, &err) == 0, "%s", err.msg);
}

static void write_pointer(const char *name, uint64_t version, const struct buf *raw,
                          uint32_t format, uint64_t size)
{
	char path[REPO_PATH_MAX];
	struct pointer p = { .version = version, .expires = UINT64_MAX, .format = format };
	struct buf out = { 0 };
	struct circ_err err;

	snprintf(p.name, sizeof(p.name), "%s", name);
	p.manifest_size = size;
	manifest_file_hash(raw->data, raw->len, p.manifest_sha256);
	ck_assert_msg(pointer_encode(&p, signer, &out, &err) == 0, "%s", err.msg);
	repo_pointer_path(name, path);
	ck_assert_int_eq(repo_write_file(repo, path, out.data, out.len, &err), 0);
	buf_free(&out);
}

static void repo_setup(void)
{
	char dir[PATH_MAX];
	struct circ_err err;

	test_keys_setup();
	test_path(dir, "repo");
	ck_assert_int_eq(repo_open_dir(dir, true, &repo, &err), 0);
}

static void repo_teardown(void)
{
	repo_close(repo);
	repo = NULL;
	test_keys_teardown();
}

static int load(struct manifest *m, struct circ_err *err)
{
	struct pointer pt;

	ck_assert_msg(image_load_pointer(repo, signer_pub, NAME, 0, &pt, err) == 0, "%s", err->msg);
	return image_load_manifest(repo, signer_pub, &pt, 0, m, NULL, err);
}

START_TEST(test_load_bounded_by_pointer)
{
	struct manifest m, got;
	struct buf raw = { 0 };
	struct circ_err err;

	sample(&m);
	write_version(&m, &raw);
	write_pointer(NAME, m.version, &raw, 2, raw.len);
	ck_assert_msg(load(&got, &err) == 0, "%s", err.msg);
	assert_same(&m, &got);
	manifest_release(&got);

	/* A signed size smaller than the file: not read past it, refused. */
	write_pointer(NAME, m.version, &raw, 2, raw.len - 8);
	ck_assert_int_eq(load(&got, &err), -1);
	ck_assert_err_has(&err, "not the manifest the signed pointer names");
	ck_assert_err_has(&err, "larger than");
	ck_assert_ptr_null(got.blocks);
	/* Larger: refused too, whatever the hash says. */
	write_pointer(NAME, m.version, &raw, 2, raw.len + 8);
	ck_assert_int_eq(load(&got, &err), -1);
	ck_assert_err_has(&err, "not the manifest the signed pointer names");
	ck_assert_int_eq(err.errnum, EPERM);

	/* A format 1 pointer still leads to it. */
	write_pointer(NAME, m.version, &raw, 1, 0);
	ck_assert_msg(load(&got, &err) == 0, "%s", err.msg);
	assert_same(&m, &got);
	manifest_release(&got);
	manifest_release(&m);
	buf_free(&raw);
}
END_TEST

/* Stores each non-zero block of f's bytes in the repo, filling in f's IDs. */
static void store_file(struct manifest_file *f, const uint8_t *bytes, uint64_t size)
{
	struct block_encoder *enc = block_encoder_new(3);
	struct buf comp = { 0 };
	uint8_t block[BS];
	struct circ_err err;

	ck_assert_int_eq(manifest_file_init(f, size, BS, &err), 0);
	for (uint32_t i = 0; i < f->n_blocks; i++) {
		size_t len = size - (uint64_t)i * BS < BS ? size - (uint64_t)i * BS : BS;

		memset(block, 0, BS);
		memcpy(block, bytes + (size_t)i * BS, len);
		if (block_is_zero(block, BS))
			continue;
		block_id_compute(&f->blocks[i], block, BS);
		ck_assert_int_eq(block_encode(enc, block, BS, &comp, &err), 0);
		ck_assert_int_eq(repo_store_block(repo, &f->blocks[i], comp.data, comp.len, &err),
		                 0);
	}
	block_encoder_free(enc);
	buf_free(&comp);
}

static int temporaries(const char *dir)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)))
		n += strstr(de->d_name, ".tmp-") != NULL;
	closedir(d);
	return n;
}

START_TEST(test_write_bootfile)
{
	static uint8_t kernel[KERNEL_SIZE + BS];
	char cdir[PATH_MAX], out[PATH_MAX];
	struct manifest m = { 0 };
	struct cache *cache;
	struct store *store;
	struct buf got = { 0 };
	struct circ_err err;
	struct stat st;
	uint64_t size = sizeof(kernel) - 100;

	fill_random(kernel, sizeof(kernel), 7);
	memset(kernel + BS, 0, BS); /* a zero block, never stored */
	m.block_size = BS;
	snprintf(m.name, sizeof(m.name), NAME);
	m.version = 1;
	store_file(&m.kernel, kernel, size);
	ck_assert(block_id_is_zero(&m.kernel.blocks[1]));
	test_path(cdir, "cache");
	ck_assert_int_eq(cache_open(cdir, 0, &cache, &err), 0);
	ck_assert_int_eq(store_new(repo, cache, 0, &store, &err), 0);
	test_path(out, "vmlinuz");
	write_file(out, "old", 3);
	ck_assert_msg(image_write_bootfile(store, &m, &m.kernel, out, &err) == 0, "%s", err.msg);
	read_file(out, &got);
	ck_assert_uint_eq(got.len, size);
	ck_assert_mem_eq(got.data, kernel, size);
	ck_assert_int_eq(stat(out, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0644);
	/* Its blocks went through the cache. */
	ck_assert(cache_contains(cache, &m.kernel.blocks[0]));

	/* No initrd: nothing written. */
	test_path(out, "initrd");
	ck_assert_int_eq(image_write_bootfile(store, &m, &m.initrd, out, &err), -1);
	ck_assert_int_eq(err.errnum, ENOENT);
	ck_assert_int_ne(access(out, F_OK), 0);

	/* A block missing from the repo: an error, and no file, not even a temporary. */
	m.kernel.blocks[2].b[0] ^= 1;
	test_path(out, "broken");
	ck_assert_int_eq(image_write_bootfile(store, &m, &m.kernel, out, &err), -1);
	ck_assert_int_ne(access(out, F_OK), 0);
	ck_assert_int_eq(temporaries(test_dir()), 0);
	store_free(store);
	cache_close(cache);
	manifest_release(&m);
	buf_free(&got);
}
END_TEST

Suite *format2_image_suite(void)
{
	Suite *s = suite_create("format2-image");
	TCase *tp = tcase_create("pointer");
	TCase *ti = tcase_create("image");

	tcase_add_scratch(tp);
	tcase_add_checked_fixture(tp, test_keys_setup, test_keys_teardown);
	tcase_set_timeout(tp, 60);
	tcase_add_test(tp, test_pointer_round_trip);
	tcase_add_test(tp, test_pointer_refuses);
	suite_add_tcase(s, tp);

	tcase_add_scratch(ti);
	tcase_add_checked_fixture(ti, repo_setup, repo_teardown);
	tcase_set_timeout(ti, 60);
	tcase_add_test(ti, test_load_bounded_by_pointer);
	tcase_add_test(ti, test_write_bootfile);
	suite_add_tcase(s, ti);
	return s;
}
