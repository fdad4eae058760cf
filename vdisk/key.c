/* SPDX-License-Identifier: MIT */
#include "vdisk/key.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "util/buf.h"

struct key {
	EVP_PKEY *pkey;
	uint8_t id[KEY_ID_LEN];
};

static int key_wrap(EVP_PKEY *pkey, const char *path, struct key **out, struct circ_err *err)
{
	uint8_t raw[32];
	size_t n = sizeof(raw);
	struct key *k;

	if (EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519) {
		err_set(err, EINVAL, "%s: not an Ed25519 key (it is %s)", path,
		        OBJ_nid2sn(EVP_PKEY_get_id(pkey)));
		EVP_PKEY_free(pkey);
		return -1;
	}
	if (EVP_PKEY_get_raw_public_key(pkey, raw, &n) != 1 || n != sizeof(raw)) {
		EVP_PKEY_free(pkey);
		return err_set(err, EINVAL, "%s: cannot read the public key", path);
	}
	k = calloc(1, sizeof(*k));
	if (!k) {
		EVP_PKEY_free(pkey);
		return err_set(err, ENOMEM, "out of memory");
	}
	k->pkey = pkey;
	EVP_Digest(raw, sizeof(raw), k->id, NULL, EVP_sha256(), NULL);
	*out = k;
	return 0;
}

static FILE *open_key_file(const char *path, struct circ_err *err)
{
	FILE *f = fopen(path, "re");

	if (!f)
		err_sys(err, errno, "%s", path);
	return f;
}

int key_load_private(const char *path, struct key **out, struct circ_err *err)
{
	FILE *f = open_key_file(path, err);
	EVP_PKEY *pkey;

	if (!f)
		return -1;
	pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (!pkey)
		return err_set(err, EINVAL, "%s: not a PEM private key", path);
	return key_wrap(pkey, path, out, err);
}

int key_load_public(const char *path, struct key **out, struct circ_err *err)
{
	FILE *f = open_key_file(path, err);
	EVP_PKEY *pkey;

	if (!f)
		return -1;
	pkey = PEM_read_PUBKEY(f, NULL, NULL, NULL);
	fclose(f);
	if (!pkey)
		return err_set(err, EINVAL, "%s: not a PEM public key", path);
	return key_wrap(pkey, path, out, err);
}

void key_free(struct key *k)
{
	if (!k)
		return;
	EVP_PKEY_free(k->pkey);
	free(k);
}

void key_id(const struct key *k, uint8_t id[KEY_ID_LEN])
{
	memcpy(id, k->id, KEY_ID_LEN);
}

void key_id_short(const uint8_t id[KEY_ID_LEN], char out[17])
{
	for (int i = 0; i < 8; i++)
		snprintf(out + 2 * i, 3, "%02x", id[i]);
}

/* Creates path exclusively with mode and writes the key with one PEM writer. */
static int write_pem(const char *path, mode_t mode, EVP_PKEY *pkey, bool private_part,
                     bool exclusive, struct circ_err *err)
{
	int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (exclusive ? O_EXCL : O_TRUNC);
	int fd = open(path, flags, mode), ok;
	FILE *f;

	if (fd < 0)
		return err_sys(err, errno, "%s", path);
	f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		unlink(path);
		return err_sys(err, errno, "%s", path);
	}
	ok = private_part ? PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL)
	                  : PEM_write_PUBKEY(f, pkey);
	if (fflush(f) || fsync(fd))
		ok = 0;
	if (fclose(f))
		ok = 0;
	if (!ok) {
		unlink(path);
		return err_set(err, EIO, "writing %s failed", path);
	}
	return 0;
}

int key_generate(const char *prefix, struct circ_err *err)
{
	EVP_PKEY *pkey = NULL;
	EVP_PKEY_CTX *ctx;
	char *priv = NULL, *pub = NULL;
	int ret = -1;

	if (asprintf(&priv, "%s.key", prefix) < 0 || asprintf(&pub, "%s.pub", prefix) < 0) {
		err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	if (access(priv, F_OK) == 0 || access(pub, F_OK) == 0) {
		err_set(err, EEXIST, "%s: key exists, not overwriting it",
		        access(priv, F_OK) == 0 ? priv : pub);
		goto out;
	}
	ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
	if (!ctx || EVP_PKEY_keygen_init(ctx) != 1 || EVP_PKEY_keygen(ctx, &pkey) != 1) {
		EVP_PKEY_CTX_free(ctx);
		err_set(err, EIO, "Ed25519 key generation failed");
		goto out;
	}
	EVP_PKEY_CTX_free(ctx);
	if (write_pem(priv, 0600, pkey, true, true, err))
		goto out;
	if (write_pem(pub, 0644, pkey, false, true, err)) {
		unlink(priv);
		goto out;
	}
	ret = 0;
out:
	EVP_PKEY_free(pkey);
	free(priv);
	free(pub);
	return ret;
}

int key_save_public(const struct key *k, const char *path, struct circ_err *err)
{
	return write_pem(path, 0644, k->pkey, false, false, err);
}

int key_sign(const struct key *k, const void *data, size_t len, uint8_t sig[KEY_SIG_LEN],
             struct circ_err *err)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	size_t n = KEY_SIG_LEN;
	int ok;

	if (!md)
		return err_set(err, ENOMEM, "out of memory");
	ok = EVP_DigestSignInit(md, NULL, NULL, NULL, k->pkey) == 1 &&
	     EVP_DigestSign(md, sig, &n, data, len) == 1 && n == KEY_SIG_LEN;
	EVP_MD_CTX_free(md);
	if (!ok)
		return err_set(err, EINVAL, "signing failed (is this a private key?)");
	return 0;
}

bool key_verify(const struct key *k, const void *data, size_t len, const uint8_t sig[KEY_SIG_LEN])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	bool ok;

	if (!md)
		return false;
	ok = EVP_DigestVerifyInit(md, NULL, NULL, NULL, k->pkey) == 1 &&
	     EVP_DigestVerify(md, sig, KEY_SIG_LEN, data, len) == 1;
	EVP_MD_CTX_free(md);
	return ok;
}

int key_seal(const struct key *signer, struct buf *b, struct circ_err *err)
{
	uint8_t sig[KEY_SIG_LEN];

	if (key_sign(signer, b->data, b->len, sig, err))
		return -1;
	if (buf_append(b, sig, sizeof(sig)))
		return err_set(err, ENOMEM, "out of memory");
	return 0;
}

int key_open(const struct key *pub, const uint8_t *data, size_t len, size_t key_id_off,
             const char *what, struct circ_err *err)
{
	uint8_t ours[KEY_ID_LEN];
	char a[17], b[17];

	if (len <= KEY_SIG_LEN || key_id_off + KEY_ID_LEN > len - KEY_SIG_LEN)
		return err_set(err, EBADMSG, "%s truncated (%zu bytes)", what, len);
	if (key_verify(pub, data, len - KEY_SIG_LEN, data + len - KEY_SIG_LEN))
		return 0;
	key_id(pub, ours);
	if (memcmp(ours, data + key_id_off, KEY_ID_LEN) != 0) {
		key_id_short(data + key_id_off, a);
		key_id_short(ours, b);
		return err_set(err, EPERM, "%s is signed by key %s, not by the trusted key %s",
		               what, a, b);
	}
	return err_set(err, EPERM, "%s signature does not verify (tampered or corrupted)", what);
}
