/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "vdisk/manifest.h"
#include "tests/unit/suites.h"
#include "tests/unit/testutil.h"

#define NAME "debian-12.1_x"
#define BS   4096u
/* Six blocks, the last one partial. */
#define IMAGE_SIZE (5 * BS + 100)
/* Header, name padded to 16, six IDs, three indices padded to 16, signature. */
#define SAMPLE_LEN (MANIFEST_HEADER_LEN + 16 + 6 * BLOCK_ID_LEN + 16 + KEY_SIG_LEN)

/* Header field offsets (docs/format.md). */
#define OFF_FORMAT     8
#define OFF_HEADER_LEN 12
#define OFF_VERSION    16
#define OFF_PARENT     24
#define OFF_IMAGE_SIZE 40
#define OFF_BLOCK_SIZE 48
#define OFF_N_BLOCKS   52
#define OFF_N_PREFETCH 56
#define OFF_NAME_LEN   60
#define OFF_KEY_ID     64
#define OFF_NAME       MANIFEST_HEADER_LEN
#define OFF_PREFETCH   (OFF_NAME + 16 + 6 * BLOCK_ID_LEN)

/* Every field set, zero blocks among real ones, a prefetch list. */
static void sample(struct manifest *m)
{
	static const uint32_t prefetch[] = { 5, 0, 3 };
	struct circ_err err;

	ck_assert_msg(manifest_init(m, NAME, IMAGE_SIZE, BS, &err) == 0, "%s", err.msg);
	/* This file checks format 1, still read; format2_test.c checks format 2. */
	m->format = 1;
	m->version = 7;
	m->parent = 6;
	m->created = 1700000000;
	for (uint32_t i = 0; i < m->n_blocks; i++)
		if (i != 1 && i != 4)
			block_id_compute(&m->blocks[i], &i, sizeof(i));
	m->n_prefetch = 3;
	m->prefetch = malloc(sizeof(prefetch));
	ck_assert_ptr_nonnull(m->prefetch);
	memcpy(m->prefetch, prefetch, sizeof(prefetch));
}

static void encode_sample(struct buf *out)
{
	struct manifest m;
	struct circ_err err;

	sample(&m);
	ck_assert_msg(manifest_encode(&m, signer, out, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(out->len, SAMPLE_LEN);
	manifest_release(&m);
}

static void assert_same(const struct manifest *a, const struct manifest *b)
{
	ck_assert_str_eq(a->name, b->name);
	ck_assert_uint_eq(a->version, b->version);
	ck_assert_uint_eq(a->parent, b->parent);
	ck_assert_uint_eq(a->created, b->created);
	ck_assert_uint_eq(a->image_size, b->image_size);
	ck_assert_uint_eq(a->block_size, b->block_size);
	ck_assert_uint_eq(a->n_blocks, b->n_blocks);
	ck_assert_mem_eq(a->blocks, b->blocks, (size_t)a->n_blocks * sizeof(*a->blocks));
	ck_assert_uint_eq(a->n_prefetch, b->n_prefetch);
	if (a->n_prefetch)
		ck_assert_mem_eq(a->prefetch, b->prefetch, a->n_prefetch * sizeof(*a->prefetch));
	ck_assert_mem_eq(a->key_id, b->key_id, KEY_ID_LEN);
}

/* A refused manifest must leave nothing allocated for the caller to leak. */
static void assert_refused(int r, const struct manifest *m)
{
	ck_assert_int_eq(r, -1);
	ck_assert_ptr_null(m->blocks);
	ck_assert_ptr_null(m->prefetch);
}

/* Parses d (unsigned path) and expects a refusal naming `why`. */
static void parse_fails(const uint8_t *d, size_t len, const char *why)
{
	struct manifest m;
	struct circ_err err = { 0 };

	assert_refused(manifest_parse(d, len, &m, &err), &m);
	ck_assert_int_eq(err.errnum, EBADMSG);
	if (why)
		ck_assert_err_has(&err, why);
	manifest_release(&m);
}

static void parse_ok(const uint8_t *d, size_t len)
{
	struct manifest m;
	struct circ_err err;

	ck_assert_msg(manifest_parse(d, len, &m, &err) == 0, "%s", err.msg);
	manifest_release(&m);
}

START_TEST(test_init)
{
	struct manifest m;
	struct circ_err err;

	ck_assert_int_eq(manifest_init(&m, NAME, IMAGE_SIZE, BS, &err), 0);
	ck_assert_str_eq(m.name, NAME);
	ck_assert_uint_eq(m.n_blocks, 6);
	ck_assert_uint_eq(m.image_size, IMAGE_SIZE);
	ck_assert_uint_eq(m.block_size, BS);
	for (uint32_t i = 0; i < m.n_blocks; i++)
		ck_assert(block_id_is_zero(&m.blocks[i]));
	manifest_release(&m);
	ck_assert_int_eq(manifest_init(&m, NAME, 6 * BS, BS, &err), 0);
	ck_assert_uint_eq(m.n_blocks, 6);
	manifest_release(&m);
	ck_assert_int_eq(manifest_init(&m, NAME, 1, 64 << 10, &err), 0);
	ck_assert_uint_eq(m.n_blocks, 1);
	manifest_release(&m);
	ck_assert_int_eq(manifest_init(&m, NAME, 6 * BS + 1, BS, &err), 0);
	ck_assert_uint_eq(m.n_blocks, 7);
	manifest_release(&m);
}
END_TEST

START_TEST(test_init_rejects)
{
	struct manifest m;
	struct circ_err err;

	ck_assert_int_eq(manifest_init(&m, "a/b", IMAGE_SIZE, BS, &err), -1);
	ck_assert_int_eq(err.errnum, EINVAL);
	ck_assert_int_eq(manifest_init(&m, "", IMAGE_SIZE, BS, &err), -1);
	ck_assert_int_eq(manifest_init(&m, NAME, IMAGE_SIZE, 4095, &err), -1);
	ck_assert_int_eq(err.errnum, EINVAL);
	ck_assert_int_eq(manifest_init(&m, NAME, IMAGE_SIZE, 8u << 20, &err), -1);
	ck_assert_int_eq(manifest_init(&m, NAME, 0, BS, &err), -1);
	ck_assert_int_eq(
	    manifest_init(&m, NAME, ((uint64_t)MANIFEST_MAX_BLOCKS + 1) * BS, BS, &err), -1);
	ck_assert_int_eq(err.errnum, EFBIG);
	ck_assert_err_has(&err, "larger block size");
	ck_assert_ptr_null(m.blocks);
	manifest_release(&m);
}
END_TEST

START_TEST(test_round_trip)
{
	struct manifest m, back;
	struct buf enc = { 0 };
	uint8_t id[KEY_ID_LEN];
	struct circ_err err;

	sample(&m);
	ck_assert_int_eq(manifest_encode(&m, signer, &enc, &err), 0);
	ck_assert_uint_eq(enc.len, SAMPLE_LEN);
	ck_assert_mem_eq(enc.data, MANIFEST_MAGIC, 8);
	/* Encoding records who signed. */
	key_id(signer, id);
	ck_assert_mem_eq(m.key_id, id, KEY_ID_LEN);
	ck_assert_msg(manifest_decode(enc.data, enc.len, signer_pub, &back, &err) == 0, "%s",
	              err.msg);
	assert_same(&m, &back);
	ck_assert(block_id_is_zero(&back.blocks[1]));
	ck_assert(block_id_is_zero(&back.blocks[4]));
	ck_assert(!block_id_is_zero(&back.blocks[5]));
	manifest_release(&back);
	/* The unsigned parser sees the same. */
	ck_assert_int_eq(manifest_parse(enc.data, enc.len, &back, &err), 0);
	assert_same(&m, &back);
	manifest_release(&back);
	manifest_release(&m);
	buf_free(&enc);
}
END_TEST

START_TEST(test_round_trip_shapes)
{
	struct manifest m, back;
	struct buf enc = { 0 };
	struct circ_err err;
	char name[REPO_NAME_MAX + 1];

	/* Longest name, no prefetch, one block of the largest size, first version. */
	memset(name, 'z', REPO_NAME_MAX);
	name[REPO_NAME_MAX] = '\0';
	ck_assert_int_eq(manifest_init(&m, name, 1, 4u << 20, &err), 0);
	m.format = 1;
	m.version = 1;
	block_id_compute(&m.blocks[0], "x", 1);
	ck_assert_int_eq(manifest_encode(&m, signer, &enc, &err), 0);
	ck_assert_uint_eq(enc.len,
	                  MANIFEST_HEADER_LEN + REPO_NAME_MAX + BLOCK_ID_LEN + KEY_SIG_LEN);
	ck_assert_msg(manifest_decode(enc.data, enc.len, signer_pub, &back, &err) == 0, "%s",
	              err.msg);
	assert_same(&m, &back);
	ck_assert_uint_eq(back.n_prefetch, 0);
	manifest_release(&back);
	manifest_release(&m);

	/* A prefetch list filling its 8-byte padding exactly, huge field values. */
	ck_assert_int_eq(manifest_init(&m, "a", 3 * (64 << 10), 64 << 10, &err), 0);
	m.format = 1;
	m.version = UINT64_MAX;
	m.parent = UINT64_MAX - 1;
	m.created = UINT64_MAX;
	m.n_prefetch = 2;
	m.prefetch = calloc(2, sizeof(*m.prefetch));
	m.prefetch[0] = 2;
	ck_assert_int_eq(manifest_encode(&m, signer, &enc, &err), 0);
	ck_assert_uint_eq(enc.len, MANIFEST_HEADER_LEN + 8 + 3 * BLOCK_ID_LEN + 8 + KEY_SIG_LEN);
	ck_assert_msg(manifest_decode(enc.data, enc.len, signer_pub, &back, &err) == 0, "%s",
	              err.msg);
	assert_same(&m, &back);
	manifest_release(&back);
	manifest_release(&m);
	buf_free(&enc);
}
END_TEST

START_TEST(test_encode_rejects_bad_name)
{
	struct manifest m;
	struct buf enc = { 0 };
	struct circ_err err;

	sample(&m);
	snprintf(m.name, sizeof(m.name), "a/b");
	ck_assert_int_eq(manifest_encode(&m, signer, &enc, &err), -1);
	ck_assert_int_eq(err.errnum, EINVAL);
	manifest_release(&m);
	buf_free(&enc);
}
END_TEST

START_TEST(test_decode_other_key)
{
	struct buf enc = { 0 };
	uint8_t id[KEY_ID_LEN];
	char ours[17], theirs[17];
	struct manifest m;
	struct circ_err err;

	encode_sample(&enc);
	assert_refused(manifest_decode(enc.data, enc.len, stranger_pub, &m, &err), &m);
	ck_assert_int_eq(err.errnum, EPERM);
	ck_assert_err_has(&err, "signed by key");
	/* The message names both keys so that a user can tell which is which. */
	key_id(signer, id);
	key_id_short(id, theirs);
	key_id(stranger, id);
	key_id_short(id, ours);
	ck_assert_err_has(&err, theirs);
	ck_assert_err_has(&err, ours);
	buf_free(&enc);
}
END_TEST

START_TEST(test_decode_flipped_bytes)
{
	static const uint8_t flips[] = { 0x01, 0x80, 0xff };
	struct buf enc = { 0 };
	struct manifest m;
	struct circ_err err;

	encode_sample(&enc);
	for (size_t i = 0; i < enc.len; i++) {
		for (size_t f = 0; f < sizeof(flips); f++) {
			enc.data[i] ^= flips[f];
			err.msg[0] = '\0';
			ck_assert_msg(manifest_decode(enc.data, enc.len, signer_pub, &m, &err) ==
			                  -1,
			              "accepted byte %zu ^ 0x%02x", i, flips[f]);
			assert_refused(-1, &m);
			ck_assert(err.msg[0] != '\0');
			/* Outside magic and signer ID, it is the signature that catches it. */
			if (i >= 8 && (i < OFF_KEY_ID || i >= OFF_KEY_ID + KEY_ID_LEN))
				ck_assert_err_has(&err, "does not verify");
			enc.data[i] ^= flips[f];
		}
	}
	ck_assert_int_eq(manifest_decode(enc.data, enc.len, signer_pub, &m, &err), 0);
	manifest_release(&m);
	buf_free(&enc);
}
END_TEST

START_TEST(test_decode_truncated_or_extended)
{
	struct buf enc = { 0 };
	struct manifest m;
	struct circ_err err;
	uint8_t *longer;

	encode_sample(&enc);
	for (size_t n = 0; n < enc.len; n++) {
		/* Exactly n bytes, so ASan catches a read past the end. */
		uint8_t *cut = malloc(n ? n : 1);

		memcpy(cut, enc.data, n);
		ck_assert_msg(manifest_decode(cut, n, signer_pub, &m, &err) == -1,
		              "accepted %zu of %zu bytes", n, enc.len);
		assert_refused(-1, &m);
		ck_assert_msg(manifest_parse(cut, n, &m, &err) == -1, "parsed %zu bytes", n);
		assert_refused(-1, &m);
		free(cut);
	}
	longer = calloc(1, enc.len + 8);
	memcpy(longer, enc.data, enc.len);
	for (size_t extra = 1; extra <= 8; extra++)
		ck_assert_int_eq(manifest_decode(longer, enc.len + extra, signer_pub, &m, &err),
		                 -1);
	free(longer);
	buf_free(&enc);
}
END_TEST

START_TEST(test_parse_header_checks)
{
	struct buf enc = { 0 };
	uint8_t d[SAMPLE_LEN + 8];

	encode_sample(&enc);
#define RESET() memcpy(d, enc.data, SAMPLE_LEN)
	RESET();
	parse_ok(d, SAMPLE_LEN);

	d[7] = 'X';
	parse_fails(d, SAMPLE_LEN, "magic");
	RESET();
	memcpy(d, POINTER_MAGIC, 8);
	parse_fails(d, SAMPLE_LEN, "magic");
	RESET();
	put_u32le(d + OFF_FORMAT, 3);
	parse_fails(d, SAMPLE_LEN, "format 3");
	put_u32le(d + OFF_FORMAT, 0);
	parse_fails(d, SAMPLE_LEN, "format");
	RESET();
	put_u32le(d + OFF_HEADER_LEN, MANIFEST_HEADER_LEN + 8);
	parse_fails(d, SAMPLE_LEN, "header length");
	RESET();

	put_u64le(d + OFF_VERSION, 0);
	put_u64le(d + OFF_PARENT, 0);
	parse_fails(d, SAMPLE_LEN, "version");
	RESET();
	put_u64le(d + OFF_PARENT, 7);
	parse_fails(d, SAMPLE_LEN, "version");
	put_u64le(d + OFF_PARENT, 8);
	parse_fails(d, SAMPLE_LEN, "version");
	put_u64le(d + OFF_PARENT, 0);
	parse_ok(d, SAMPLE_LEN);
	RESET();

	put_u32le(d + OFF_BLOCK_SIZE, 4095);
	parse_fails(d, SAMPLE_LEN, "block size");
	put_u32le(d + OFF_BLOCK_SIZE, 0);
	parse_fails(d, SAMPLE_LEN, "block size");
	put_u32le(d + OFF_BLOCK_SIZE, 3 * BS);
	parse_fails(d, SAMPLE_LEN, "block size");
	put_u32le(d + OFF_BLOCK_SIZE, 8u << 20);
	parse_fails(d, SAMPLE_LEN, "block size");
	put_u32le(d + OFF_BLOCK_SIZE, 2 * BS);
	parse_fails(d, SAMPLE_LEN, "block count");
	RESET();
	buf_free(&enc);
#undef RESET
}
END_TEST

/* n_blocks must be exactly ceil(image_size / block_size). */
START_TEST(test_parse_block_count)
{
	struct buf enc = { 0 };
	uint8_t d[SAMPLE_LEN];

	encode_sample(&enc);
	memcpy(d, enc.data, SAMPLE_LEN);
	put_u64le(d + OFF_IMAGE_SIZE, 0);
	parse_fails(d, SAMPLE_LEN, "image size");
	put_u64le(d + OFF_IMAGE_SIZE, 6 * BS + 1);
	parse_fails(d, SAMPLE_LEN, "block count");
	put_u64le(d + OFF_IMAGE_SIZE, 5 * BS);
	parse_fails(d, SAMPLE_LEN, "block count");
	put_u64le(d + OFF_IMAGE_SIZE, 6 * BS);
	parse_ok(d, SAMPLE_LEN);
	put_u64le(d + OFF_IMAGE_SIZE, 5 * BS + 1);
	parse_ok(d, SAMPLE_LEN);
	put_u64le(d + OFF_IMAGE_SIZE, UINT64_MAX);
	parse_fails(d, SAMPLE_LEN, "block count");
	memcpy(d, enc.data, SAMPLE_LEN);
	put_u32le(d + OFF_N_BLOCKS, 7);
	parse_fails(d, SAMPLE_LEN, "block count");
	put_u32le(d + OFF_N_BLOCKS, 0);
	parse_fails(d, SAMPLE_LEN, "block count");
	/* Consistent with the image size, but more than the format allows. */
	put_u32le(d + OFF_N_BLOCKS, MANIFEST_MAX_BLOCKS + 1);
	put_u64le(d + OFF_IMAGE_SIZE, ((uint64_t)MANIFEST_MAX_BLOCKS + 1) * BS);
	parse_fails(d, SAMPLE_LEN, "block count");
	put_u32le(d + OFF_N_BLOCKS, UINT32_MAX);
	put_u64le(d + OFF_IMAGE_SIZE, (uint64_t)UINT32_MAX * BS);
	parse_fails(d, SAMPLE_LEN, "block count");
	/* Consistent and allowed, but the file is far too short for it. */
	put_u32le(d + OFF_N_BLOCKS, MANIFEST_MAX_BLOCKS);
	put_u64le(d + OFF_IMAGE_SIZE, (uint64_t)MANIFEST_MAX_BLOCKS * BS);
	parse_fails(d, SAMPLE_LEN, "header says");
	buf_free(&enc);
}
END_TEST

START_TEST(test_parse_prefetch)
{
	struct buf enc = { 0 };
	uint8_t d[SAMPLE_LEN];

	encode_sample(&enc);
	memcpy(d, enc.data, SAMPLE_LEN);
	put_u32le(d + OFF_PREFETCH + 4, 6);
	parse_fails(d, SAMPLE_LEN, "prefetch entry 1 out of range");
	put_u32le(d + OFF_PREFETCH + 4, UINT32_MAX);
	parse_fails(d, SAMPLE_LEN, "out of range");
	put_u32le(d + OFF_PREFETCH + 4, 5);
	parse_ok(d, SAMPLE_LEN);
	memcpy(d, enc.data, SAMPLE_LEN);
	put_u32le(d + OFF_N_PREFETCH, 7);
	parse_fails(d, SAMPLE_LEN, "prefetch list longer");
	put_u32le(d + OFF_N_PREFETCH, UINT32_MAX);
	parse_fails(d, SAMPLE_LEN, "prefetch");
	put_u32le(d + OFF_N_PREFETCH, 0);
	parse_fails(d, SAMPLE_LEN, "header says");
	put_u32le(d + OFF_N_PREFETCH, 5);
	parse_fails(d, SAMPLE_LEN, "header says");
	buf_free(&enc);
}
END_TEST

START_TEST(test_parse_name)
{
	struct buf enc = { 0 };
	uint8_t d[SAMPLE_LEN];

	encode_sample(&enc);
	memcpy(d, enc.data, SAMPLE_LEN);
	d[OFF_NAME + 3] = '/';
	parse_fails(d, SAMPLE_LEN, "invalid image name");
	memcpy(d, enc.data, SAMPLE_LEN);
	d[OFF_NAME] = '.';
	parse_fails(d, SAMPLE_LEN, "invalid image name");
	memcpy(d, enc.data, SAMPLE_LEN);
	d[OFF_NAME + 12] = ' ';
	parse_fails(d, SAMPLE_LEN, "invalid image name");
	memcpy(d, enc.data, SAMPLE_LEN);
	put_u32le(d + OFF_NAME_LEN, 0);
	parse_fails(d, SAMPLE_LEN, "name length");
	put_u32le(d + OFF_NAME_LEN, REPO_NAME_MAX + 1);
	parse_fails(d, SAMPLE_LEN, "name length");
	put_u32le(d + OFF_NAME_LEN, UINT32_MAX);
	parse_fails(d, SAMPLE_LEN, "name length");
	put_u32le(d + OFF_NAME_LEN, 17);
	parse_fails(d, SAMPLE_LEN, "header says");
	put_u32le(d + OFF_NAME_LEN, 8);
	parse_fails(d, SAMPLE_LEN, "header says");
	buf_free(&enc);
}
END_TEST

/* The size check must come before any use of the bytes. */
START_TEST(test_parse_too_large)
{
	size_t len = MANIFEST_MAX_LEN + 8;
	struct buf enc = { 0 };
	uint8_t *big;

	encode_sample(&enc);
	/* Untouched anonymous pages cost no memory. */
	big = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert(big != MAP_FAILED);
	memcpy(big, enc.data, enc.len);
	parse_fails(big, len, "too large");
	munmap(big, len);
	buf_free(&enc);
}
END_TEST

START_TEST(test_file_hash)
{
	static const uint8_t abc[32] = { 0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea,
		                         0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
		                         0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c,
		                         0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad };
	uint8_t out[32];

	manifest_file_hash((const uint8_t *)"abc", 3, out);
	ck_assert_mem_eq(out, abc, 32);
}
END_TEST

Suite *manifest_suite(void)
{
	Suite *s = suite_create("manifest");
	TCase *tc = tcase_create("core");

	tcase_add_scratch(tc);
	tcase_add_checked_fixture(tc, test_keys_setup, test_keys_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_init);
	tcase_add_test(tc, test_init_rejects);
	tcase_add_test(tc, test_round_trip);
	tcase_add_test(tc, test_round_trip_shapes);
	tcase_add_test(tc, test_encode_rejects_bad_name);
	tcase_add_test(tc, test_decode_other_key);
	tcase_add_test(tc, test_decode_flipped_bytes);
	tcase_add_test(tc, test_decode_truncated_or_extended);
	tcase_add_test(tc, test_parse_header_checks);
	tcase_add_test(tc, test_parse_block_count);
	tcase_add_test(tc, test_parse_prefetch);
	tcase_add_test(tc, test_parse_name);
	tcase_add_test(tc, test_parse_too_large);
	tcase_add_test(tc, test_file_hash);
	suite_add_tcase(s, tc);
	return s;
}
