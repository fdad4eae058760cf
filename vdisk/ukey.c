/* SPDX-License-Identifier: MIT */
#include "vdisk/ukey.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "blockfs/repo.h"

#define SUBKEY_LEN  32
#define GCM_KEY_LEN 32
#define GCM_IV_LEN  12
/* The keys file's header: everything before the sealed master key, authenticated. */
#define FILE_FORMAT     1
#define FILE_HEADER_LEN (8 + 4 + 4 + 4 + 4 + UKEY_SALT_LEN)
/* Bounds on the scrypt cost a keys file may ask for (a hostile server writes that file). */
#define KDF_LOG2_N_MIN 10
#define KDF_LOG2_N_MAX 20
#define KDF_R_MAX      32
#define KDF_P_MAX      16
#define KDF_WORK_MAX   (1ull << 30)
/* EVP's lengths are ints: large messages go through in pieces. */
#define GCM_CHUNK (1u << 30)

struct ukey {
	uint8_t master[UKEY_MASTER_LEN];
	uint8_t name_key[SUBKEY_LEN];
	uint8_t block_key[SUBKEY_LEN];
	uint8_t layer_key[SUBKEY_LEN];
};

static const uint8_t zero_iv[GCM_IV_LEN];

int ukey_random(void *out, size_t len, struct circ_err *err)
{
	uint8_t *p = out;

	while (len > 0) {
		int n = len > INT_MAX ? INT_MAX : (int)len;

		if (RAND_bytes(p, n) != 1)
			return err_set(err, EIO, "OpenSSL's random generator failed");
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The three subkeys: HKDF-SHA256 of the master key, no salt, one info string each. */
static int derive_subkeys(struct ukey *k, struct circ_err *err)
{
	static const char *const info[3] = { "circ name", "circ block", "circ layer" };
	uint8_t *const dst[3] = { k->name_key, k->block_key, k->layer_key };
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	int ret = 0;

	for (int i = 0; i < 3 && ctx && ret == 0; i++) {
		OSSL_PARAM params[] = {
			OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA256", 0),
			OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, k->master,
			                                  UKEY_MASTER_LEN),
			OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info[i],
			                                  strlen(info[i])),
			OSSL_PARAM_construct_end(),
		};

		if (EVP_KDF_derive(ctx, dst[i], SUBKEY_LEN, params) != 1)
			ret = -1;
	}
	if (!ctx)
		ret = -1;
	EVP_KDF_CTX_free(ctx);
	EVP_KDF_free(kdf);
	if (ret)
		return err_set(err, EIO, "HKDF-SHA256 failed");
	return 0;
}

static int ukey_from_master(const uint8_t raw[UKEY_MASTER_LEN], struct ukey **out,
                            struct circ_err *err)
{
	struct ukey *k = calloc(1, sizeof(*k));

	*out = NULL;
	if (!k)
		return err_set(err, ENOMEM, "out of memory");
	memcpy(k->master, raw, UKEY_MASTER_LEN);
	if (derive_subkeys(k, err)) {
		ukey_free(k);
		return -1;
	}
	*out = k;
	return 0;
}

int ukey_create(struct ukey **out, struct circ_err *err)
{
	uint8_t raw[UKEY_MASTER_LEN];
	int ret = -1;

	*out = NULL;
	if (ukey_random(raw, sizeof(raw), err) == 0)
		ret = ukey_from_master(raw, out, err);
	OPENSSL_cleanse(raw, sizeof(raw));
	return ret;
}

void ukey_free(struct ukey *k)
{
	if (!k)
		return;
	OPENSSL_cleanse(k, sizeof(*k));
	free(k);
}

void ukey_export(const struct ukey *k, uint8_t out[UKEY_MASTER_LEN])
{
	memcpy(out, k->master, UKEY_MASTER_LEN);
}

int ukey_import(const uint8_t raw[UKEY_MASTER_LEN], struct ukey **out, struct circ_err *err)
{
	return ukey_from_master(raw, out, err);
}

/* The one-time key of one message: HMAC-SHA256(subkey, the message's ID). */
static int one_time_key(const uint8_t subkey[SUBKEY_LEN], const void *id, size_t id_len,
                        uint8_t key[GCM_KEY_LEN])
{
	unsigned int n = 0;

	if (!HMAC(EVP_sha256(), subkey, SUBKEY_LEN, id, id_len, key, &n) || n != GCM_KEY_LEN) {
		OPENSSL_cleanse(key, GCM_KEY_LEN);
		return -1;
	}
	return 0;
}

/* Feeds len bytes through EVP in int-sized pieces (out NULL: associated data). */
static int gcm_update(EVP_CIPHER_CTX *ctx, bool enc, uint8_t *out, const uint8_t *in, size_t len)
{
	while (len > 0) {
		int n = len > GCM_CHUNK ? (int)GCM_CHUNK : (int)len, got = 0;
		int ok = enc ? EVP_EncryptUpdate(ctx, out, &got, in, n)
		             : EVP_DecryptUpdate(ctx, out, &got, in, n);

		if (ok != 1 || (out && got != n))
			return -1;
		in += n;
		if (out)
			out += n;
		len -= (size_t)n;
	}
	return 0;
}

/* AES-256-GCM with the zero nonce: out receives len bytes of ciphertext, then the tag. */
static int gcm_seal(const uint8_t key[GCM_KEY_LEN], const void *aad, size_t aad_len, const void *in,
                    size_t len, uint8_t *out)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int n = 0, ok;

	ok = ctx && EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, zero_iv) == 1 &&
	     gcm_update(ctx, true, NULL, aad, aad_len) == 0 &&
	     gcm_update(ctx, true, out, in, len) == 0 &&
	     EVP_EncryptFinal_ex(ctx, out + len, &n) == 1 && n == 0 &&
	     EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, UKEY_TAG_LEN, out + len) == 1;
	EVP_CIPHER_CTX_free(ctx);
	return ok ? 0 : -1;
}

enum gcm_result {
	GCM_OK,
	GCM_BAD_TAG,
	GCM_FAILED
};

/*
 * Opens len bytes of ciphertext followed by the tag into out. On any failure
 * out is wiped: GCM writes plaintext before it knows the tag is good.
 */
static enum gcm_result gcm_open(const uint8_t key[GCM_KEY_LEN], const void *aad, size_t aad_len,
                                const uint8_t *in, size_t len, uint8_t *out)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	uint8_t tag[UKEY_TAG_LEN];
	enum gcm_result r = GCM_FAILED;
	int n = 0;

	memcpy(tag, in + len, UKEY_TAG_LEN);
	if (ctx && EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, zero_iv) == 1 &&
	    gcm_update(ctx, false, NULL, aad, aad_len) == 0 &&
	    gcm_update(ctx, false, out, in, len) == 0 &&
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, UKEY_TAG_LEN, tag) == 1)
		r = EVP_DecryptFinal_ex(ctx, out + len, &n) == 1 && n == 0 ? GCM_OK : GCM_BAD_TAG;
	EVP_CIPHER_CTX_free(ctx);
	if (r != GCM_OK && len)
		OPENSSL_cleanse(out, len);
	return r;
}

/* Seals in under subkey and id into out (replacing it): prefix, ciphertext, tag. */
static int seal_message(const uint8_t subkey[SUBKEY_LEN], const void *id, size_t id_len,
                        const void *prefix, size_t prefix_len, const void *aad, size_t aad_len,
                        const void *in, size_t len, struct buf *out, struct circ_err *err)
{
	uint8_t key[GCM_KEY_LEN];
	int ret = 0;

	buf_reset(out);
	if (len > SIZE_MAX - prefix_len - UKEY_TAG_LEN ||
	    buf_reserve(out, prefix_len + len + UKEY_TAG_LEN))
		return err_set(err, ENOMEM, "out of memory");
	if (prefix_len)
		memcpy(out->data, prefix, prefix_len);
	if (one_time_key(subkey, id, id_len, key) ||
	    gcm_seal(key, aad, aad_len, in, len, out->data + prefix_len)) {
		ret = err_set(err, EIO, "AES-256-GCM sealing failed");
	} else {
		out->len = prefix_len + len + UKEY_TAG_LEN;
	}
	OPENSSL_cleanse(key, sizeof(key));
	return ret;
}

/* Opens ciphertext-then-tag under subkey and id into out (replacing it). */
static int open_message(const uint8_t subkey[SUBKEY_LEN], const void *id, size_t id_len,
                        const void *aad, size_t aad_len, const uint8_t *sealed, size_t sealed_len,
                        struct buf *out, const char *what, struct circ_err *err)
{
	uint8_t key[GCM_KEY_LEN];
	size_t len = sealed_len - UKEY_TAG_LEN;
	enum gcm_result r;

	buf_reset(out);
	/* One spare byte: a zero-length message still gets a real pointer to write at. */
	if (buf_reserve(out, len + 1))
		return err_set(err, ENOMEM, "out of memory");
	if (one_time_key(subkey, id, id_len, key))
		return err_set(err, EIO, "HMAC-SHA256 failed");
	r = gcm_open(key, aad, aad_len, sealed, len, out->data);
	OPENSSL_cleanse(key, sizeof(key));
	if (r == GCM_BAD_TAG)
		return err_set(err, EBADMSG,
		               "%s: does not authenticate (altered, or not this key's)", what);
	if (r != GCM_OK)
		return err_set(err, EIO, "AES-256-GCM opening failed");
	out->len = len;
	return 0;
}

void ukey_block_name(const struct ukey *k, const void *data, size_t len, struct block_id *name)
{
	/*
	 * Fails only when OpenSSL cannot allocate; the all-zero name it leaves
	 * is refused by ukey_block_seal, so the failure cannot pass unnoticed
	 * as a zero block.
	 */
	if (one_time_key(k->name_key, data, len, name->b))
		memset(name->b, 0, sizeof(name->b));
}

int ukey_block_seal(const struct ukey *k, const struct block_id *name, const void *comp,
                    size_t comp_len, struct buf *out, struct circ_err *err)
{
	static const uint8_t format = UKEY_BLOCK_FORMAT;

	if (block_id_is_zero(name))
		return err_set(err, EINVAL, "sealing a block: the all-zero name names no block");
	return seal_message(k->block_key, name->b, sizeof(name->b), &format, 1, &format, 1, comp,
	                    comp_len, out, err);
}

int ukey_block_open(const struct ukey *k, const struct block_id *name, const void *obj,
                    size_t obj_len, struct buf *comp, struct circ_err *err)
{
	const uint8_t *p = obj;

	buf_reset(comp);
	if (block_id_is_zero(name))
		return err_set(err, EINVAL, "opening a block: the all-zero name names no block");
	if (obj_len < 1 + UKEY_TAG_LEN)
		return err_set(err, EBADMSG, "sealed block: %zu bytes, too short", obj_len);
	if (p[0] != UKEY_BLOCK_FORMAT)
		return err_set(err, EBADMSG, "sealed block: unknown format %u", p[0]);
	return open_message(k->block_key, name->b, sizeof(name->b), p, 1, p + 1, obj_len - 1, comp,
	                    "sealed block", err);
}

int ukey_layer_seal(const struct ukey *k, const uint8_t salt[UKEY_SALT_LEN], const void *aad,
                    size_t aad_len, const void *body, size_t body_len, struct buf *out,
                    struct circ_err *err)
{
	return seal_message(k->layer_key, salt, UKEY_SALT_LEN, NULL, 0, aad, aad_len, body,
	                    body_len, out, err);
}

int ukey_layer_open(const struct ukey *k, const uint8_t salt[UKEY_SALT_LEN], const void *aad,
                    size_t aad_len, const void *sealed, size_t sealed_len, struct buf *body,
                    struct circ_err *err)
{
	buf_reset(body);
	if (sealed_len < UKEY_TAG_LEN)
		return err_set(err, EBADMSG, "sealed layer: %zu bytes, too short", sealed_len);
	return open_message(k->layer_key, salt, UKEY_SALT_LEN, aad, aad_len, sealed, sealed_len,
	                    body, "sealed layer", err);
}

/*
 * Bounds checked before scrypt runs: the keys file comes from the server,
 * and its parameters decide how much memory and time an unlock takes.
 */
static bool kdf_valid(struct ukey_kdf kdf)
{
	if (kdf.log2_n < KDF_LOG2_N_MIN || kdf.log2_n > KDF_LOG2_N_MAX || kdf.r < 1 ||
	    kdf.r > KDF_R_MAX || kdf.p < 1 || kdf.p > KDF_P_MAX)
		return false;
	return 128ull * kdf.r * (1ull << kdf.log2_n) * kdf.p <= KDF_WORK_MAX;
}

static int scrypt_key(const char *pass, size_t pass_len, const uint8_t salt[UKEY_SALT_LEN],
                      struct ukey_kdf kdf, uint8_t key[GCM_KEY_LEN], struct circ_err *err)
{
	uint64_t n = 1ull << kdf.log2_n;
	/* What OpenSSL's scrypt allocates: B (128 r p) and V (128 r (N + 2)). */
	uint64_t maxmem = 128ull * kdf.r * kdf.p + 128ull * kdf.r * (n + 2);

	if (EVP_PBE_scrypt(pass ? pass : "", pass ? pass_len : 0, salt, UKEY_SALT_LEN, n, kdf.r,
	                   kdf.p, maxmem, key, GCM_KEY_LEN) != 1) {
		OPENSSL_cleanse(key, GCM_KEY_LEN);
		return err_set(err, EIO, "scrypt failed (N=2^%u r=%u p=%u)", kdf.log2_n, kdf.r,
		               kdf.p);
	}
	return 0;
}

/* The associated data of a keys file: its header, then the user's name. */
static int file_aad(const uint8_t *header, const char *user, struct buf *aad, struct circ_err *err)
{
	if (buf_append(aad, header, FILE_HEADER_LEN) || buf_append(aad, user, strlen(user)))
		return err_set(err, ENOMEM, "out of memory");
	return 0;
}

int ukey_wrap(const struct ukey *k, const char *user, const char *pass, size_t pass_len,
              struct ukey_kdf kdf, struct buf *out, struct circ_err *err)
{
	uint8_t file[UKEY_FILE_LEN], key[GCM_KEY_LEN];
	struct buf aad = { 0 };
	int ret = -1;

	buf_reset(out);
	if (!user || !repo_name_valid(user))
		return err_set(err, EINVAL, "keys file: invalid user name");
	if (!kdf_valid(kdf))
		return err_set(err, EINVAL,
		               "keys file: scrypt parameters N=2^%u r=%u p=%u out of bounds",
		               kdf.log2_n, kdf.r, kdf.p);
	memcpy(file, UKEY_FILE_MAGIC, 8);
	put_u32le(file + 8, FILE_FORMAT);
	put_u32le(file + 12, kdf.log2_n);
	put_u32le(file + 16, kdf.r);
	put_u32le(file + 20, kdf.p);
	if (ukey_random(file + 24, UKEY_SALT_LEN, err) || file_aad(file, user, &aad, err) ||
	    scrypt_key(pass, pass_len, file + 24, kdf, key, err))
		goto out;
	if (gcm_seal(key, aad.data, aad.len, k->master, UKEY_MASTER_LEN, file + FILE_HEADER_LEN)) {
		err_set(err, EIO, "AES-256-GCM sealing failed");
		goto out;
	}
	if (buf_append(out, file, sizeof(file))) {
		err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	ret = 0;
out:
	OPENSSL_cleanse(key, sizeof(key));
	buf_free(&aad);
	return ret;
}

int ukey_unwrap(const uint8_t *data, size_t len, const char *user, const char *pass,
                size_t pass_len, struct ukey **out, struct circ_err *err)
{
	uint8_t key[GCM_KEY_LEN], master[UKEY_MASTER_LEN];
	struct ukey_kdf kdf;
	struct buf aad = { 0 };
	enum gcm_result r;
	int ret = -1;

	*out = NULL;
	if (!user || !repo_name_valid(user))
		return err_set(err, EINVAL, "keys file: invalid user name");
	if (len != UKEY_FILE_LEN)
		return err_set(err, EBADMSG, "keys file: %zu bytes, expected %d", len,
		               UKEY_FILE_LEN);
	if (memcmp(data, UKEY_FILE_MAGIC, 8) != 0)
		return err_set(err, EBADMSG, "keys file: bad magic");
	if (get_u32le(data + 8) != FILE_FORMAT)
		return err_set(err, EBADMSG, "keys file: unknown format %u", get_u32le(data + 8));
	kdf.log2_n = get_u32le(data + 12);
	kdf.r = get_u32le(data + 16);
	kdf.p = get_u32le(data + 20);
	if (!kdf_valid(kdf))
		return err_set(err, EBADMSG,
		               "keys file: scrypt parameters N=2^%u r=%u p=%u out of bounds",
		               kdf.log2_n, kdf.r, kdf.p);
	if (file_aad(data, user, &aad, err) || scrypt_key(pass, pass_len, data + 24, kdf, key, err))
		goto out;
	r = gcm_open(key, aad.data, aad.len, data + FILE_HEADER_LEN, UKEY_MASTER_LEN, master);
	if (r == GCM_BAD_TAG)
		err_set(err, EACCES, "wrong passphrase");
	else if (r != GCM_OK)
		err_set(err, EIO, "AES-256-GCM opening failed");
	else
		ret = ukey_from_master(master, out, err);
out:
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(master, sizeof(master));
	buf_free(&aad);
	return ret;
}
