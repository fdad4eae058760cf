/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "util/buf.h"
#include "vdisk/ukey.h"
#include "tests/unit/suites.h"
#include "tests/unit/testutil.h"

/* Cheap scrypt parameters: the tests unlock many times. */
#define FAST_KDF ((struct ukey_kdf){ .log2_n = 10, .r = 8, .p = 1 })
#define PASS     "correct horse battery staple"

static struct ukey *new_key(void)
{
	struct ukey *k = NULL;
	struct circ_err err;

	ck_assert_msg(ukey_create(&k, &err) == 0, "%s", err.msg);
	ck_assert_ptr_nonnull(k);
	return k;
}

static void wrap(const struct ukey *k, const char *user, struct ukey_kdf kdf, struct buf *out)
{
	struct circ_err err;

	ck_assert_msg(ukey_wrap(k, user, PASS, strlen(PASS), kdf, out, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(out->len, UKEY_FILE_LEN);
}

static void assert_same_key(const struct ukey *a, const struct ukey *b)
{
	uint8_t ra[UKEY_MASTER_LEN], rb[UKEY_MASTER_LEN];

	ukey_export(a, ra);
	ukey_export(b, rb);
	ck_assert_mem_eq(ra, rb, UKEY_MASTER_LEN);
}

static void seal_block(const struct ukey *k, const void *data, size_t len, struct block_id *name,
                       struct buf *out)
{
	struct circ_err err;

	ukey_block_name(k, data, len, name);
	ck_assert_msg(ukey_block_seal(k, name, data, len, out, &err) == 0, "%s", err.msg);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

START_TEST(test_wrap_unwrap)
{
	struct ukey *k = new_key(), *back = NULL;
	struct buf file = { 0 };
	struct circ_err err;

	wrap(k, "alice", FAST_KDF, &file);
	ck_assert_mem_eq(file.data, UKEY_FILE_MAGIC, 8);
	ck_assert_int_eq(ukey_unwrap(file.data, file.len, "alice", PASS, strlen(PASS), &back, &err),
	                 0);
	assert_same_key(k, back);
	ukey_free(back);
	ukey_free(k);
	buf_free(&file);
}
END_TEST

/* The default cost needs more memory than OpenSSL allows scrypt unless told. */
START_TEST(test_default_kdf)
{
	struct ukey *k = new_key(), *back = NULL;
	struct buf file = { 0 };
	struct circ_err err;

	wrap(k, "alice", UKEY_KDF_DEFAULT, &file);
	ck_assert_msg(ukey_unwrap(file.data, file.len, "alice", PASS, strlen(PASS), &back, &err) ==
	                  0,
	              "%s", err.msg);
	assert_same_key(k, back);
	ukey_free(back);
	ukey_free(k);
	buf_free(&file);
}
END_TEST

START_TEST(test_wrong_passphrase)
{
	struct ukey *k = new_key(), *back = NULL;
	struct buf file = { 0 };
	struct circ_err err;

	wrap(k, "alice", FAST_KDF, &file);
	ck_assert_int_eq(
	    ukey_unwrap(file.data, file.len, "alice", "correct horse", 13, &back, &err), -1);
	ck_assert_int_eq(err.errnum, EACCES);
	ck_assert_str_eq(err.msg, "wrong passphrase");
	ck_assert_ptr_null(back);
	/* A passphrase is its bytes: one short is another passphrase. */
	ck_assert_int_eq(
	    ukey_unwrap(file.data, file.len, "alice", PASS, strlen(PASS) - 1, &back, &err), -1);
	ck_assert_int_eq(err.errnum, EACCES);
	ck_assert_int_eq(ukey_unwrap(file.data, file.len, "alice", NULL, 0, &back, &err), -1);
	ck_assert_int_eq(err.errnum, EACCES);
	ukey_free(k);
	buf_free(&file);
}
END_TEST

START_TEST(test_other_user)
{
	struct ukey *k = new_key(), *back = NULL;
	struct buf file = { 0 };
	struct circ_err err;

	wrap(k, "alice", FAST_KDF, &file);
	ck_assert_int_eq(ukey_unwrap(file.data, file.len, "bob", PASS, strlen(PASS), &back, &err),
	                 -1);
	ck_assert_ptr_null(back);
	ck_assert_int_eq(ukey_unwrap(file.data, file.len, "alicE", PASS, strlen(PASS), &back, &err),
	                 -1);
	ck_assert_int_eq(ukey_unwrap(file.data, file.len, "../x", PASS, strlen(PASS), &back, &err),
	                 -1);
	ck_assert_int_eq(err.errnum, EINVAL);
	ck_assert_int_eq(ukey_wrap(k, "", PASS, strlen(PASS), FAST_KDF, &file, &err), -1);
	ck_assert_int_eq(err.errnum, EINVAL);
	ukey_free(k);
	buf_free(&file);
}
END_TEST

START_TEST(test_keys_file_damaged)
{
	struct ukey *k = new_key(), *back = NULL;
	struct buf file = { 0 };
	struct circ_err err;
	uint8_t copy[UKEY_FILE_LEN + 1];

	wrap(k, "alice", FAST_KDF, &file);
	for (size_t i = 0; i < UKEY_FILE_LEN; i++) {
		memcpy(copy, file.data, UKEY_FILE_LEN);
		copy[i] ^= (uint8_t)(1u << (i % 8));
		ck_assert_msg(ukey_unwrap(copy, UKEY_FILE_LEN, "alice", PASS, strlen(PASS), &back,
		                          &err) == -1,
		              "byte %zu flipped still opens", i);
		ck_assert_ptr_null(back);
		ck_assert(err.errnum == EACCES || err.errnum == EBADMSG);
	}
	memcpy(copy, file.data, UKEY_FILE_LEN);
	copy[UKEY_FILE_LEN] = 0;
	ck_assert_int_eq(
	    ukey_unwrap(copy, UKEY_FILE_LEN + 1, "alice", PASS, strlen(PASS), &back, &err), -1);
	ck_assert_int_eq(err.errnum, EBADMSG);
	ck_assert_int_eq(
	    ukey_unwrap(copy, UKEY_FILE_LEN - 1, "alice", PASS, strlen(PASS), &back, &err), -1);
	ck_assert_int_eq(err.errnum, EBADMSG);
	ck_assert_int_eq(ukey_unwrap(copy, 0, "alice", PASS, strlen(PASS), &back, &err), -1);
	ck_assert_int_eq(err.errnum, EBADMSG);
	ukey_free(k);
	buf_free(&file);
}
END_TEST

/* A keys file from the server may ask for any cost: beyond the bounds, scrypt never runs. */
START_TEST(test_hostile_kdf)
{
	static const struct {
		uint32_t log2_n, r, p;
	} bad[] = {
		{ 30, 8, 1 },          { 10, 1000, 1 },      { 9, 8, 1 },   { 21, 1, 1 },
		{ 10, 0, 1 },          { 10, 8, 0 },         { 10, 33, 1 }, { 10, 8, 17 },
		{ 20, 32, 16 },        { 20, 16, 1 },        { 17, 32, 3 }, { 64, 1, 1 },
		{ 10, UINT32_MAX, 1 }, { UINT32_MAX, 1, 1 },
	};
	struct ukey *k = new_key(), *back = NULL;
	struct buf file = { 0 };
	struct circ_err err;
	double spent = 0, start;

	wrap(k, "alice", FAST_KDF, &file);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		put_u32le(file.data + 12, bad[i].log2_n);
		put_u32le(file.data + 16, bad[i].r);
		put_u32le(file.data + 20, bad[i].p);
		start = now();
		ck_assert_int_eq(
		    ukey_unwrap(file.data, file.len, "alice", PASS, strlen(PASS), &back, &err), -1);
		spent += now() - start;
		ck_assert_int_eq(err.errnum, EBADMSG);
		ck_assert_err_has(&err, "scrypt parameters");
		ck_assert_ptr_null(back);
		/* The writer holds itself to the same bounds. */
		ck_assert_int_eq(ukey_wrap(k, "alice", PASS, strlen(PASS),
		                           (struct ukey_kdf){ bad[i].log2_n, bad[i].r, bad[i].p },
		                           &file, &err),
		                 -1);
		ck_assert_int_eq(err.errnum, EINVAL);
		wrap(k, "alice", FAST_KDF, &file);
	}
	/* Had scrypt run, N = 2^30 alone would take minutes and 128 GiB. */
	ck_assert_msg(spent < 0.05, "refusing took %.3f s", spent);
	ukey_free(k);
	buf_free(&file);
}
END_TEST

START_TEST(test_kdf_bounds_accepted)
{
	struct ukey *k = new_key(), *back = NULL;
	struct buf file = { 0 };
	struct circ_err err;

	/* The edges that stay cheap: the smallest N with r and p at their limits. */
	wrap(k, "alice", ((struct ukey_kdf){ .log2_n = 10, .r = 32, .p = 16 }), &file);
	ck_assert_msg(ukey_unwrap(file.data, file.len, "alice", PASS, strlen(PASS), &back, &err) ==
	                  0,
	              "%s", err.msg);
	ukey_free(back);
	wrap(k, "alice", ((struct ukey_kdf){ .log2_n = 10, .r = 1, .p = 1 }), &file);
	ck_assert_msg(ukey_unwrap(file.data, file.len, "alice", PASS, strlen(PASS), &back, &err) ==
	                  0,
	              "%s", err.msg);
	assert_same_key(k, back);
	ukey_free(back);
	ukey_free(k);
	buf_free(&file);
}
END_TEST

START_TEST(test_wrap_fresh_salt)
{
	struct ukey *k = new_key();
	struct buf a = { 0 }, b = { 0 };

	wrap(k, "alice", FAST_KDF, &a);
	wrap(k, "alice", FAST_KDF, &b);
	ck_assert(memcmp(a.data + 24, b.data + 24, UKEY_SALT_LEN) != 0);
	ck_assert(memcmp(a.data + 56, b.data + 56, UKEY_MASTER_LEN) != 0);
	ukey_free(k);
	buf_free(&a);
	buf_free(&b);
}
END_TEST

START_TEST(test_block_names)
{
	struct ukey *a = new_key(), *b = new_key();
	struct block_id n1, n2, n3, plain;
	uint8_t data[4096];

	fill_random(data, sizeof(data), 1);
	ukey_block_name(a, data, sizeof(data), &n1);
	ukey_block_name(a, data, sizeof(data), &n2);
	ck_assert(block_id_equal(&n1, &n2));
	ck_assert(!block_id_is_zero(&n1));
	/* Another user's name for the same plaintext says nothing about it. */
	ukey_block_name(b, data, sizeof(data), &n3);
	ck_assert(!block_id_equal(&n1, &n3));
	block_id_compute(&plain, data, sizeof(data));
	ck_assert(!block_id_equal(&n1, &plain));
	data[100] ^= 1;
	ukey_block_name(a, data, sizeof(data), &n2);
	ck_assert(!block_id_equal(&n1, &n2));
	ukey_free(a);
	ukey_free(b);
}
END_TEST

START_TEST(test_block_seal_open)
{
	struct ukey *k = new_key();
	struct buf obj = { 0 }, comp = { 0 };
	struct block_id name;
	struct circ_err err;
	uint8_t data[3000];

	fill_random(data, sizeof(data), 2);
	seal_block(k, data, sizeof(data), &name, &obj);
	ck_assert_uint_eq(obj.len, 1 + sizeof(data) + UKEY_TAG_LEN);
	ck_assert_uint_eq(obj.data[0], UKEY_BLOCK_FORMAT);
	ck_assert(memcmp(obj.data + 1, data, sizeof(data)) != 0);
	ck_assert_msg(ukey_block_open(k, &name, obj.data, obj.len, &comp, &err) == 0, "%s",
	              err.msg);
	ck_assert_uint_eq(comp.len, sizeof(data));
	ck_assert_mem_eq(comp.data, data, sizeof(data));
	/* An empty message seals to the format byte and the tag. */
	seal_block(k, "", 0, &name, &obj);
	ck_assert_uint_eq(obj.len, 1 + UKEY_TAG_LEN);
	ck_assert_int_eq(ukey_block_open(k, &name, obj.data, obj.len, &comp, &err), 0);
	ck_assert_uint_eq(comp.len, 0);
	ukey_free(k);
	buf_free(&obj);
	buf_free(&comp);
}
END_TEST

START_TEST(test_block_wrong_name_or_key)
{
	struct ukey *k = new_key(), *other = new_key();
	struct buf obj = { 0 }, comp = { 0 };
	struct block_id x, y;
	struct circ_err err;
	uint8_t data[512], data2[512];

	fill_random(data, sizeof(data), 3);
	fill_random(data2, sizeof(data2), 4);
	seal_block(k, data, sizeof(data), &x, &obj);
	ukey_block_name(k, data2, sizeof(data2), &y);
	ck_assert_int_eq(ukey_block_open(k, &y, obj.data, obj.len, &comp, &err), -1);
	ck_assert_int_eq(err.errnum, EBADMSG);
	ck_assert_uint_eq(comp.len, 0);
	ck_assert_int_eq(ukey_block_open(other, &x, obj.data, obj.len, &comp, &err), -1);
	ck_assert_int_eq(err.errnum, EBADMSG);
	/* The all-zero name means a zero block: it never names a sealed one. */
	memset(&y, 0, sizeof(y));
	ck_assert_int_eq(ukey_block_seal(k, &y, data, sizeof(data), &obj, &err), -1);
	ck_assert_int_eq(ukey_block_open(k, &y, obj.data, obj.len, &comp, &err), -1);
	ukey_free(k);
	ukey_free(other);
	buf_free(&obj);
	buf_free(&comp);
}
END_TEST

START_TEST(test_block_damaged)
{
	struct ukey *k = new_key();
	struct buf obj = { 0 }, comp = { 0 };
	struct block_id name;
	struct circ_err err;
	uint8_t data[200], copy[1 + 200 + UKEY_TAG_LEN + 1];

	fill_random(data, sizeof(data), 5);
	seal_block(k, data, sizeof(data), &name, &obj);
	ck_assert_uint_eq(obj.len, sizeof(copy) - 1);
	for (size_t i = 0; i < obj.len; i++) {
		memcpy(copy, obj.data, obj.len);
		copy[i] ^= (uint8_t)(0x80u >> (i % 8));
		ck_assert_msg(ukey_block_open(k, &name, copy, obj.len, &comp, &err) == -1,
		              "byte %zu flipped still opens", i);
		ck_assert_int_eq(err.errnum, EBADMSG);
		ck_assert_uint_eq(comp.len, 0);
	}
	memcpy(copy, obj.data, obj.len);
	copy[obj.len] = 0;
	ck_assert_int_eq(ukey_block_open(k, &name, copy, obj.len + 1, &comp, &err), -1);
	ck_assert_int_eq(ukey_block_open(k, &name, copy, obj.len - 1, &comp, &err), -1);
	ck_assert_int_eq(ukey_block_open(k, &name, copy, UKEY_TAG_LEN, &comp, &err), -1);
	ck_assert_err_has(&err, "too short");
	ck_assert_int_eq(ukey_block_open(k, &name, copy, 0, &comp, &err), -1);
	ukey_free(k);
	buf_free(&obj);
	buf_free(&comp);
}
END_TEST

START_TEST(test_block_deterministic)
{
	struct ukey *k = new_key();
	struct buf a = { 0 }, b = { 0 };
	struct block_id na, nb;
	uint8_t data[1000];

	fill_random(data, sizeof(data), 6);
	seal_block(k, data, sizeof(data), &na, &a);
	seal_block(k, data, sizeof(data), &nb, &b);
	ck_assert(block_id_equal(&na, &nb));
	ck_assert_uint_eq(a.len, b.len);
	ck_assert_mem_eq(a.data, b.data, a.len);
	ukey_free(k);
	buf_free(&a);
	buf_free(&b);
}
END_TEST

/*
 * Under one key and nonce, c1 ^ c2 == p1 ^ p2 would give plaintext away:
 * two blocks must be sealed under different one-time keys.
 */
START_TEST(test_block_one_time_keys)
{
	struct ukey *k = new_key();
	struct buf a = { 0 }, b = { 0 };
	struct block_id na, nb;
	uint8_t p1[256], p2[256];
	size_t same = 0;

	fill_random(p1, sizeof(p1), 7);
	memcpy(p2, p1, sizeof(p2));
	p2[0] ^= 1;
	seal_block(k, p1, sizeof(p1), &na, &a);
	seal_block(k, p2, sizeof(p2), &nb, &b);
	ck_assert(!block_id_equal(&na, &nb));
	ck_assert(memcmp(a.data + 1, b.data + 1, sizeof(p1)) != 0);
	for (size_t i = 0; i < sizeof(p1); i++)
		same += (a.data[1 + i] ^ b.data[1 + i]) == (p1[i] ^ p2[i]);
	ck_assert_msg(same < 32, "%zu of 256 keystream bytes repeat", same);
	ukey_free(k);
	buf_free(&a);
	buf_free(&b);
}
END_TEST

START_TEST(test_layer_seal_open)
{
	struct ukey *k = new_key(), *other = new_key();
	struct buf sealed = { 0 }, body = { 0 };
	struct circ_err err;
	uint8_t salt[UKEY_SALT_LEN], salt2[UKEY_SALT_LEN], aad[40], data[700];

	ck_assert_int_eq(ukey_random(salt, sizeof(salt), &err), 0);
	memcpy(salt2, salt, sizeof(salt));
	salt2[31] ^= 1;
	fill_random(aad, sizeof(aad), 8);
	fill_random(data, sizeof(data), 9);
	ck_assert_int_eq(
	    ukey_layer_seal(k, salt, aad, sizeof(aad), data, sizeof(data), &sealed, &err), 0);
	ck_assert_uint_eq(sealed.len, sizeof(data) + UKEY_TAG_LEN);
	ck_assert_int_eq(
	    ukey_layer_open(k, salt, aad, sizeof(aad), sealed.data, sealed.len, &body, &err), 0);
	ck_assert_uint_eq(body.len, sizeof(data));
	ck_assert_mem_eq(body.data, data, sizeof(data));
	ck_assert_int_eq(
	    ukey_layer_open(k, salt2, aad, sizeof(aad), sealed.data, sealed.len, &body, &err), -1);
	ck_assert_int_eq(err.errnum, EBADMSG);
	ck_assert_int_eq(
	    ukey_layer_open(other, salt, aad, sizeof(aad), sealed.data, sealed.len, &body, &err),
	    -1);
	ck_assert_int_eq(
	    ukey_layer_open(k, salt, aad, sizeof(aad) - 1, sealed.data, sealed.len, &body, &err),
	    -1);
	aad[0] ^= 1;
	ck_assert_int_eq(
	    ukey_layer_open(k, salt, aad, sizeof(aad), sealed.data, sealed.len, &body, &err), -1);
	ck_assert_uint_eq(body.len, 0);
	ck_assert_int_eq(ukey_layer_open(k, salt, aad, sizeof(aad), sealed.data, 15, &body, &err),
	                 -1);
	ukey_free(k);
	ukey_free(other);
	buf_free(&sealed);
	buf_free(&body);
}
END_TEST

START_TEST(test_export_import)
{
	struct ukey *k = new_key(), *back = NULL, *other = new_key();
	struct buf obj = { 0 }, comp = { 0 };
	struct block_id name, name2;
	struct circ_err err;
	uint8_t raw[UKEY_MASTER_LEN], raw2[UKEY_MASTER_LEN], data[300];

	ukey_export(k, raw);
	ukey_export(other, raw2);
	ck_assert(memcmp(raw, raw2, sizeof(raw)) != 0);
	ck_assert_int_eq(ukey_import(raw, &back, &err), 0);
	assert_same_key(k, back);
	fill_random(data, sizeof(data), 10);
	seal_block(k, data, sizeof(data), &name, &obj);
	ukey_block_name(back, data, sizeof(data), &name2);
	ck_assert(block_id_equal(&name, &name2));
	ck_assert_int_eq(ukey_block_open(back, &name, obj.data, obj.len, &comp, &err), 0);
	ck_assert_mem_eq(comp.data, data, sizeof(data));
	ukey_free(k);
	ukey_free(back);
	ukey_free(other);
	ukey_free(NULL);
	buf_free(&obj);
	buf_free(&comp);
}
END_TEST

Suite *ukey_suite(void)
{
	Suite *s = suite_create("ukey");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_wrap_unwrap);
	tcase_add_test(tc, test_default_kdf);
	tcase_add_test(tc, test_wrong_passphrase);
	tcase_add_test(tc, test_other_user);
	tcase_add_test(tc, test_keys_file_damaged);
	tcase_add_test(tc, test_hostile_kdf);
	tcase_add_test(tc, test_kdf_bounds_accepted);
	tcase_add_test(tc, test_wrap_fresh_salt);
	tcase_add_test(tc, test_block_names);
	tcase_add_test(tc, test_block_seal_open);
	tcase_add_test(tc, test_block_wrong_name_or_key);
	tcase_add_test(tc, test_block_damaged);
	tcase_add_test(tc, test_block_deterministic);
	tcase_add_test(tc, test_block_one_time_keys);
	tcase_add_test(tc, test_layer_seal_open);
	tcase_add_test(tc, test_export_import);
	suite_add_tcase(s, tc);
	return s;
}
