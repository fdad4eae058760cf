/* SPDX-License-Identifier: MIT */
/*
 * A user's keys for cold migration (docs/migration.md), through OpenSSL.
 *
 * A random 32-byte master key is the root of everything; it leaves the
 * client only wrapped (users/USER/keys): sealed with a key that scrypt
 * derives from the passphrase, its parameters stored beside it. Three
 * subkeys are derived from the master key with HKDF-SHA256: one names
 * blocks, one encrypts blocks, one seals layers.
 *
 * Nonces never repeat because no key seals two different messages: each
 * message is sealed (AES-256-GCM, zero nonce) under a one-time key derived
 * from a subkey and a per-message ID: a block's keyed-hash name (the same
 * name is the same plaintext, so the same ciphertext), a layer's random
 * salt, the keys file's random scrypt salt.
 */
#ifndef CIRC_UKEY_H
#define CIRC_UKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/err.h"
#include "blockfs/block.h"

#define UKEY_MASTER_LEN 32
#define UKEY_SALT_LEN   32
#define UKEY_TAG_LEN    16
/* The keys file: magic, format, scrypt parameters, salt, sealed master key. */
#define UKEY_FILE_MAGIC "CIRCKEYS"
#define UKEY_FILE_LEN   (8 + 4 + 4 + 4 + 4 + UKEY_SALT_LEN + UKEY_MASTER_LEN + UKEY_TAG_LEN)
/* A sealed block: a format byte, then ciphertext and tag. */
#define UKEY_BLOCK_FORMAT 1

struct ukey;

/* scrypt's cost: N = 2^log2_n, r, p. Reads refuse more than about 1 GiB of memory. */
struct ukey_kdf {
	unsigned log2_n;
	unsigned r, p;
};
/* 2^15 x 8 x 1: 32 MiB and about 0.1 s here, per unlock. */
#define UKEY_KDF_DEFAULT ((struct ukey_kdf){ .log2_n = 15, .r = 8, .p = 1 })

/* A new random master key (from OpenSSL's CSPRNG). */
CIRC_MUST_CHECK int ukey_create(struct ukey **out, struct circ_err *err);
/* Zeroes and frees. */
void ukey_free(struct ukey *k);

/*
 * The keys file: the master key sealed under scrypt(passphrase, fresh salt).
 * user is bound into it (as associated data), so one user's file does not
 * open as another's.
 */
CIRC_MUST_CHECK int ukey_wrap(const struct ukey *k, const char *user, const char *pass,
                              size_t pass_len, struct ukey_kdf kdf, struct buf *out,
                              struct circ_err *err);
/* EACCES "wrong passphrase" when the passphrase does not open it; EBADMSG when damaged. */
CIRC_MUST_CHECK int ukey_unwrap(const uint8_t *data, size_t len, const char *user, const char *pass,
                                size_t pass_len, struct ukey **out, struct circ_err *err);

/* The raw master key, for the client's local copy (a 0600 file); and back. */
void ukey_export(const struct ukey *k, uint8_t out[UKEY_MASTER_LEN]);
CIRC_MUST_CHECK int ukey_import(const uint8_t raw[UKEY_MASTER_LEN], struct ukey **out,
                                struct circ_err *err);

/* A block's name on the server: HMAC-SHA256 of its plaintext under the naming subkey. */
void ukey_block_name(const struct ukey *k, const void *data, size_t len, struct block_id *name);

/*
 * Seals a block's compressed bytes for upload: UKEY_BLOCK_FORMAT, then
 * AES-256-GCM under a key derived from name, then the tag. Deterministic.
 */
CIRC_MUST_CHECK int ukey_block_seal(const struct ukey *k, const struct block_id *name,
                                    const void *comp, size_t comp_len, struct buf *out,
                                    struct circ_err *err);
/* Opens a sealed block into its compressed bytes; EBADMSG if it is not name's, or altered. */
CIRC_MUST_CHECK int ukey_block_open(const struct ukey *k, const struct block_id *name,
                                    const void *obj, size_t obj_len, struct buf *comp,
                                    struct circ_err *err);

/*
 * Seals and opens a layer's body: AES-256-GCM under a key derived from the
 * layer subkey and salt (random per layer), over aad (the layer's header).
 * out receives ciphertext then tag.
 */
CIRC_MUST_CHECK int ukey_layer_seal(const struct ukey *k, const uint8_t salt[UKEY_SALT_LEN],
                                    const void *aad, size_t aad_len, const void *body,
                                    size_t body_len, struct buf *out, struct circ_err *err);
CIRC_MUST_CHECK int ukey_layer_open(const struct ukey *k, const uint8_t salt[UKEY_SALT_LEN],
                                    const void *aad, size_t aad_len, const void *sealed,
                                    size_t sealed_len, struct buf *body, struct circ_err *err);

/* Random bytes from OpenSSL's CSPRNG. */
CIRC_MUST_CHECK int ukey_random(void *out, size_t len, struct circ_err *err);

#endif
