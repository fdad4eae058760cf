/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "util/buf.h"
#include "vdisk/key.h"
#include "tests/unit/suites.h"
#include "tests/unit/testutil.h"

/* Generates test_dir()/name.{key,pub} and returns the two paths. */
static void gen(const char *name, char priv[PATH_MAX], char pub[PATH_MAX])
{
	char prefix[PATH_MAX];
	struct circ_err err;

	test_path(prefix, name);
	ck_assert_msg(key_generate(prefix, &err) == 0, "%s", err.msg);
	ck_assert(snprintf(priv, PATH_MAX, "%s.key", prefix) < PATH_MAX);
	ck_assert(snprintf(pub, PATH_MAX, "%s.pub", prefix) < PATH_MAX);
}

static struct key *load(const char *path, bool private_part)
{
	struct key *k = NULL;
	struct circ_err err;
	int r = private_part ? key_load_private(path, &k, &err) : key_load_public(path, &k, &err);

	ck_assert_msg(r == 0, "%s", err.msg);
	ck_assert_ptr_nonnull(k);
	return k;
}

/* Writes a key of another algorithm, as a user might mistakenly pass one. */
static void write_foreign_key(const char *type, size_t bits, const char *priv, const char *pub)
{
	EVP_PKEY *pkey =
	    bits ? EVP_PKEY_Q_keygen(NULL, NULL, type, bits) : EVP_PKEY_Q_keygen(NULL, NULL, type);
	FILE *f;

	ck_assert_ptr_nonnull(pkey);
	f = fopen(priv, "we");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL), 1);
	fclose(f);
	f = fopen(pub, "we");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(PEM_write_PUBKEY(f, pkey), 1);
	fclose(f);
	EVP_PKEY_free(pkey);
}

START_TEST(test_generate_modes)
{
	char priv[PATH_MAX], pub[PATH_MAX];
	mode_t old = umask(022);
	struct stat st;

	gen("k", priv, pub);
	ck_assert_int_eq(stat(priv, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0600);
	ck_assert_int_eq(stat(pub, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0644);
	/* A permissive umask must not widen the private key's mode. */
	umask(0);
	gen("k0", priv, pub);
	ck_assert_int_eq(stat(priv, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0600);
	umask(old);
}
END_TEST

START_TEST(test_generate_refuses_overwrite)
{
	char priv[PATH_MAX], pub[PATH_MAX], prefix[PATH_MAX];
	struct buf before = { 0 }, after = { 0 };
	struct circ_err err;

	gen("k", priv, pub);
	read_file(priv, &before);
	test_path(prefix, "k");
	ck_assert_int_eq(key_generate(prefix, &err), -1);
	ck_assert_int_eq(err.errnum, EEXIST);
	read_file(priv, &after);
	ck_assert_uint_eq(after.len, before.len);
	ck_assert_mem_eq(after.data, before.data, before.len);

	/* Either half existing is enough to refuse. */
	ck_assert_int_eq(unlink(priv), 0);
	ck_assert_int_eq(key_generate(prefix, &err), -1);
	ck_assert_int_eq(err.errnum, EEXIST);
	ck_assert_int_eq(access(priv, F_OK), -1);
	write_file(priv, "mine", 4);
	ck_assert_int_eq(unlink(pub), 0);
	ck_assert_int_eq(key_generate(prefix, &err), -1);
	ck_assert_int_eq(err.errnum, EEXIST);
	ck_assert_int_eq(access(pub, F_OK), -1);
	buf_free(&before);
	buf_free(&after);
}
END_TEST

START_TEST(test_generate_bad_dir)
{
	char prefix[PATH_MAX];
	struct circ_err err;

	test_path(prefix, "no/such/dir/k");
	ck_assert_int_eq(key_generate(prefix, &err), -1);
	ck_assert_int_eq(err.errnum, ENOENT);
	ck_assert_err_has(&err, "no/such/dir/k");
}
END_TEST

START_TEST(test_load_and_id)
{
	char priv[PATH_MAX], pub[PATH_MAX], priv2[PATH_MAX], pub2[PATH_MAX];
	uint8_t a[KEY_ID_LEN], b[KEY_ID_LEN], c[KEY_ID_LEN], want[KEY_ID_LEN], raw[32];
	size_t raw_len = sizeof(raw);
	struct key *kpriv, *kpub, *kother;
	EVP_PKEY *pkey;
	FILE *f;

	gen("k", priv, pub);
	gen("other", priv2, pub2);
	kpriv = load(priv, true);
	kpub = load(pub, false);
	kother = load(pub2, false);
	key_id(kpriv, a);
	key_id(kpub, b);
	key_id(kother, c);
	ck_assert_mem_eq(a, b, KEY_ID_LEN);
	ck_assert(memcmp(a, c, KEY_ID_LEN) != 0);

	/* Signed files name the signer by SHA-256 of the raw public key. */
	f = fopen(pub, "re");
	ck_assert_ptr_nonnull(f);
	pkey = PEM_read_PUBKEY(f, NULL, NULL, NULL);
	fclose(f);
	ck_assert_ptr_nonnull(pkey);
	ck_assert_int_eq(EVP_PKEY_get_raw_public_key(pkey, raw, &raw_len), 1);
	ck_assert_uint_eq(raw_len, 32);
	EVP_PKEY_free(pkey);
	ck_assert_int_eq(EVP_Digest(raw, raw_len, want, NULL, EVP_sha256(), NULL), 1);
	ck_assert_mem_eq(a, want, KEY_ID_LEN);
	key_free(kpriv);
	key_free(kpub);
	key_free(kother);
	key_free(NULL);
}
END_TEST

START_TEST(test_id_short)
{
	uint8_t id[KEY_ID_LEN];
	char out[17];

	for (int i = 0; i < KEY_ID_LEN; i++)
		id[i] = (uint8_t)(0x01 + 0x22 * i);
	memset(out, 'x', sizeof(out));
	key_id_short(id, out);
	ck_assert_str_eq(out, "0123456789abcdef");
}
END_TEST

START_TEST(test_load_wrong_kind)
{
	static const char junk_pem[] =
	    "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
	char priv[PATH_MAX], pub[PATH_MAX], path[PATH_MAX];
	struct key *k = NULL;
	struct circ_err err;

	gen("k", priv, pub);
	ck_assert_int_eq(key_load_private(pub, &k, &err), -1);
	ck_assert_err_has(&err, pub);
	ck_assert_int_eq(key_load_public(priv, &k, &err), -1);
	ck_assert_err_has(&err, priv);

	test_path(path, "missing.key");
	ck_assert_int_eq(key_load_private(path, &k, &err), -1);
	ck_assert_int_eq(err.errnum, ENOENT);
	ck_assert_int_eq(key_load_public(path, &k, &err), -1);
	ck_assert_int_eq(err.errnum, ENOENT);

	test_path(path, "junk");
	write_file(path, junk_pem, strlen(junk_pem));
	ck_assert_int_eq(key_load_public(path, &k, &err), -1);
	ck_assert_int_eq(key_load_private(path, &k, &err), -1);
	write_file(path, "", 0);
	ck_assert_int_eq(key_load_public(path, &k, &err), -1);
	ck_assert_ptr_null(k);
}
END_TEST

START_TEST(test_load_not_ed25519)
{
	static const struct {
		const char *type;
		size_t bits;
	} kinds[] = { { "RSA", 1024 }, { "X25519", 0 }, { "ED448", 0 } };
	char priv[PATH_MAX], pub[PATH_MAX];
	struct key *k = NULL;
	struct circ_err err;

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		test_path(priv, "foreign.key");
		test_path(pub, "foreign.pub");
		write_foreign_key(kinds[i].type, kinds[i].bits, priv, pub);
		ck_assert_int_eq(key_load_private(priv, &k, &err), -1);
		ck_assert_err_has(&err, "not an Ed25519 key");
		ck_assert_err_has(&err, priv);
		ck_assert_int_eq(key_load_public(pub, &k, &err), -1);
		ck_assert_err_has(&err, "not an Ed25519 key");
		ck_assert_ptr_null(k);
	}
}
END_TEST

START_TEST(test_sign_verify)
{
	char priv[PATH_MAX], pub[PATH_MAX], priv2[PATH_MAX], pub2[PATH_MAX];
	uint8_t msg[300], sig[KEY_SIG_LEN];
	struct key *kpriv, *kpub, *kother;
	struct circ_err err;

	gen("k", priv, pub);
	gen("other", priv2, pub2);
	kpriv = load(priv, true);
	kpub = load(pub, false);
	kother = load(pub2, false);
	fill_random(msg, sizeof(msg), 11);
	ck_assert_msg(key_sign(kpriv, msg, sizeof(msg), sig, &err) == 0, "%s", err.msg);
	ck_assert(key_verify(kpub, msg, sizeof(msg), sig));
	ck_assert(key_verify(kpriv, msg, sizeof(msg), sig));
	ck_assert(!key_verify(kother, msg, sizeof(msg), sig));
	ck_assert(!key_verify(kpub, msg, sizeof(msg) - 1, sig));
	for (size_t i = 0; i < sizeof(msg); i++) {
		msg[i] ^= 0x20;
		ck_assert_msg(!key_verify(kpub, msg, sizeof(msg), sig), "byte %zu", i);
		msg[i] ^= 0x20;
	}
	for (size_t i = 0; i < KEY_SIG_LEN; i++) {
		sig[i] ^= 0x01;
		ck_assert_msg(!key_verify(kpub, msg, sizeof(msg), sig), "sig byte %zu", i);
		sig[i] ^= 0x01;
	}
	ck_assert(key_verify(kpub, msg, sizeof(msg), sig));
	/* An empty message is signed like any other. */
	ck_assert_int_eq(key_sign(kpriv, "", 0, sig, &err), 0);
	ck_assert(key_verify(kpub, "", 0, sig));
	ck_assert(!key_verify(kpub, "x", 1, sig));
	key_free(kpriv);
	key_free(kpub);
	key_free(kother);
}
END_TEST

START_TEST(test_sign_with_public_fails)
{
	char priv[PATH_MAX], pub[PATH_MAX];
	uint8_t sig[KEY_SIG_LEN];
	struct circ_err err = { 0 };
	struct key *kpub;

	gen("k", priv, pub);
	kpub = load(pub, false);
	ck_assert_int_eq(key_sign(kpub, "abc", 3, sig, &err), -1);
	ck_assert(err.msg[0] != '\0');
	key_free(kpub);
}
END_TEST

START_TEST(test_save_public)
{
	char priv[PATH_MAX], pub[PATH_MAX], out[PATH_MAX];
	uint8_t a[KEY_ID_LEN], b[KEY_ID_LEN];
	struct key *kpriv, *kback, *none = NULL;
	struct circ_err err;

	gen("k", priv, pub);
	kpriv = load(priv, true);
	test_path(out, "saved.pub");
	write_file(out, "old contents", 12);
	ck_assert_msg(key_save_public(kpriv, out, &err) == 0, "%s", err.msg);
	kback = load(out, false);
	key_id(kpriv, a);
	key_id(kback, b);
	ck_assert_mem_eq(a, b, KEY_ID_LEN);
	/* What is written is only the public half. */
	ck_assert_int_eq(key_load_private(out, &none, &err), -1);
	ck_assert_ptr_null(none);
	key_free(kpriv);
	key_free(kback);
}
END_TEST

Suite *key_suite(void)
{
	Suite *s = suite_create("key");
	TCase *tc = tcase_create("core");

	tcase_add_scratch(tc);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_generate_modes);
	tcase_add_test(tc, test_generate_refuses_overwrite);
	tcase_add_test(tc, test_generate_bad_dir);
	tcase_add_test(tc, test_load_and_id);
	tcase_add_test(tc, test_id_short);
	tcase_add_test(tc, test_load_wrong_kind);
	tcase_add_test(tc, test_load_not_ed25519);
	tcase_add_test(tc, test_sign_verify);
	tcase_add_test(tc, test_sign_with_public_fails);
	tcase_add_test(tc, test_save_public);
	suite_add_tcase(s, tc);
	return s;
}
