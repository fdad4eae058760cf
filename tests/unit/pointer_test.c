/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vdisk/manifest.h"
#include "tests/unit/suites.h"
#include "tests/unit/testutil.h"

#define NAME "debian-12.1_x"
/* Header, name padded to 16, signature. */
#define SAMPLE_LEN (POINTER_HEADER_LEN + 16 + KEY_SIG_LEN)

#define OFF_FORMAT     8
#define OFF_HEADER_LEN 12
#define OFF_VERSION    16
#define OFF_EXPIRES    32
#define OFF_SHA256     40
#define OFF_NAME_LEN   72
#define OFF_KEY_ID     80
#define OFF_NAME       POINTER_HEADER_LEN

static void sample(struct pointer *p)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "%s", NAME);
	/* This file checks format 1, still read; format2_test.c checks format 2. */
	p->format = 1;
	p->version = 9;
	p->created = 1700000000;
	p->expires = 1700000000 + 30 * 86400;
	manifest_file_hash((const uint8_t *)"manifest bytes", 14, p->manifest_sha256);
}

static void encode_sample(struct buf *out)
{
	struct pointer p;
	struct circ_err err;

	sample(&p);
	ck_assert_msg(pointer_encode(&p, signer, out, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(out->len, SAMPLE_LEN);
}

static void assert_same(const struct pointer *a, const struct pointer *b)
{
	ck_assert_str_eq(a->name, b->name);
	ck_assert_uint_eq(a->version, b->version);
	ck_assert_uint_eq(a->created, b->created);
	ck_assert_uint_eq(a->expires, b->expires);
	ck_assert_mem_eq(a->manifest_sha256, b->manifest_sha256, 32);
	ck_assert_mem_eq(a->key_id, b->key_id, KEY_ID_LEN);
}

static void parse_fails(const uint8_t *d, size_t len, const char *why)
{
	struct pointer p;
	struct circ_err err = { 0 };

	ck_assert_int_eq(pointer_parse(d, len, &p, &err), -1);
	ck_assert_int_eq(err.errnum, EBADMSG);
	if (why)
		ck_assert_err_has(&err, why);
}

static void parse_ok(const uint8_t *d, size_t len)
{
	struct pointer p;
	struct circ_err err;

	ck_assert_msg(pointer_parse(d, len, &p, &err) == 0, "%s", err.msg);
}

START_TEST(test_round_trip)
{
	struct pointer p, back;
	struct buf enc = { 0 };
	uint8_t id[KEY_ID_LEN];
	struct circ_err err;

	sample(&p);
	ck_assert_int_eq(pointer_encode(&p, signer, &enc, &err), 0);
	ck_assert_uint_eq(enc.len, SAMPLE_LEN);
	ck_assert_mem_eq(enc.data, POINTER_MAGIC, 8);
	key_id(signer, id);
	ck_assert_mem_eq(p.key_id, id, KEY_ID_LEN);
	ck_assert_msg(pointer_decode(enc.data, enc.len, signer_pub, &back, &err) == 0, "%s",
	              err.msg);
	assert_same(&p, &back);
	ck_assert_int_eq(pointer_parse(enc.data, enc.len, &back, &err), 0);
	assert_same(&p, &back);

	/* Longest name, extreme values. */
	memset(p.name, 'n', REPO_NAME_MAX);
	p.name[REPO_NAME_MAX] = '\0';
	p.version = UINT64_MAX;
	p.created = 0;
	p.expires = UINT64_MAX;
	memset(p.manifest_sha256, 0xff, 32);
	ck_assert_int_eq(pointer_encode(&p, signer, &enc, &err), 0);
	ck_assert_uint_eq(enc.len, POINTER_HEADER_LEN + REPO_NAME_MAX + KEY_SIG_LEN);
	ck_assert_msg(pointer_decode(enc.data, enc.len, signer_pub, &back, &err) == 0, "%s",
	              err.msg);
	assert_same(&p, &back);
	buf_free(&enc);
}
END_TEST

START_TEST(test_encode_rejects_bad_name)
{
	struct pointer p;
	struct buf enc = { 0 };
	struct circ_err err;

	sample(&p);
	snprintf(p.name, sizeof(p.name), "../x");
	ck_assert_int_eq(pointer_encode(&p, signer, &enc, &err), -1);
	ck_assert_int_eq(err.errnum, EINVAL);
	p.name[0] = '\0';
	ck_assert_int_eq(pointer_encode(&p, signer, &enc, &err), -1);
	buf_free(&enc);
}
END_TEST

START_TEST(test_decode_other_key)
{
	struct buf enc = { 0 };
	uint8_t id[KEY_ID_LEN];
	char theirs[17];
	struct pointer p;
	struct circ_err err;

	encode_sample(&enc);
	ck_assert_int_eq(pointer_decode(enc.data, enc.len, stranger_pub, &p, &err), -1);
	ck_assert_int_eq(err.errnum, EPERM);
	ck_assert_err_has(&err, "signed by key");
	key_id(signer, id);
	key_id_short(id, theirs);
	ck_assert_err_has(&err, theirs);
	buf_free(&enc);
}
END_TEST

START_TEST(test_decode_flipped_bytes)
{
	static const uint8_t flips[] = { 0x01, 0x80, 0xff };
	struct buf enc = { 0 };
	struct pointer p;
	struct circ_err err;

	encode_sample(&enc);
	for (size_t i = 0; i < enc.len; i++) {
		for (size_t f = 0; f < sizeof(flips); f++) {
			enc.data[i] ^= flips[f];
			ck_assert_msg(pointer_decode(enc.data, enc.len, signer_pub, &p, &err) == -1,
			              "accepted byte %zu ^ 0x%02x", i, flips[f]);
			if (i >= 8 && (i < OFF_KEY_ID || i >= OFF_KEY_ID + KEY_ID_LEN))
				ck_assert_err_has(&err, "does not verify");
			enc.data[i] ^= flips[f];
		}
	}
	ck_assert_int_eq(pointer_decode(enc.data, enc.len, signer_pub, &p, &err), 0);
	buf_free(&enc);
}
END_TEST

START_TEST(test_decode_truncated_or_extended)
{
	struct buf enc = { 0 };
	struct pointer p;
	struct circ_err err;
	uint8_t *longer;

	encode_sample(&enc);
	for (size_t n = 0; n < enc.len; n++) {
		uint8_t *cut = malloc(n ? n : 1);

		memcpy(cut, enc.data, n);
		ck_assert_msg(pointer_decode(cut, n, signer_pub, &p, &err) == -1,
		              "accepted %zu of %zu bytes", n, enc.len);
		ck_assert_msg(pointer_parse(cut, n, &p, &err) == -1, "parsed %zu bytes", n);
		free(cut);
	}
	longer = calloc(1, enc.len + 8);
	memcpy(longer, enc.data, enc.len);
	for (size_t extra = 1; extra <= 8; extra++)
		ck_assert_int_eq(pointer_decode(longer, enc.len + extra, signer_pub, &p, &err), -1);
	free(longer);
	buf_free(&enc);
}
END_TEST

START_TEST(test_parse_checks)
{
	struct buf enc = { 0 };
	uint8_t d[SAMPLE_LEN];

	encode_sample(&enc);
#define RESET() memcpy(d, enc.data, SAMPLE_LEN)
	RESET();
	parse_ok(d, SAMPLE_LEN);
	d[0] = 'c';
	parse_fails(d, SAMPLE_LEN, "magic");
	RESET();
	memcpy(d, MANIFEST_MAGIC, 8);
	parse_fails(d, SAMPLE_LEN, "magic");
	RESET();
	put_u32le(d + OFF_FORMAT, 3);
	parse_fails(d, SAMPLE_LEN, "format 3");
	RESET();
	put_u32le(d + OFF_HEADER_LEN, POINTER_HEADER_LEN + 8);
	parse_fails(d, SAMPLE_LEN, "header length");
	RESET();
	put_u64le(d + OFF_VERSION, 0);
	parse_fails(d, SAMPLE_LEN, "version");
	RESET();
	/* Expiry and hash are the client's to judge, not the parser's. */
	put_u64le(d + OFF_EXPIRES, 0);
	memset(d + OFF_SHA256, 0, 32);
	parse_ok(d, SAMPLE_LEN);
	RESET();
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
	RESET();
	d[OFF_NAME + 6] = '/';
	parse_fails(d, SAMPLE_LEN, "invalid image name");
	RESET();
	d[OFF_NAME] = '.';
	parse_fails(d, SAMPLE_LEN, "invalid image name");
	RESET();
#undef RESET
	buf_free(&enc);
}
END_TEST

START_TEST(test_parse_too_large)
{
	struct buf enc = { 0 };
	uint8_t *big = calloc(1, POINTER_MAX_LEN + 1);

	encode_sample(&enc);
	memcpy(big, enc.data, enc.len);
	parse_fails(big, POINTER_MAX_LEN + 1, "too large");
	free(big);
	buf_free(&enc);
}
END_TEST

Suite *pointer_suite(void)
{
	Suite *s = suite_create("pointer");
	TCase *tc = tcase_create("core");

	tcase_add_scratch(tc);
	tcase_add_checked_fixture(tc, test_keys_setup, test_keys_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_round_trip);
	tcase_add_test(tc, test_encode_rejects_bad_name);
	tcase_add_test(tc, test_decode_other_key);
	tcase_add_test(tc, test_decode_flipped_bytes);
	tcase_add_test(tc, test_decode_truncated_or_extended);
	tcase_add_test(tc, test_parse_checks);
	tcase_add_test(tc, test_parse_too_large);
	suite_add_tcase(s, tc);
	return s;
}
