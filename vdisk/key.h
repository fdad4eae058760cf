/* SPDX-License-Identifier: MIT */
/* Ed25519 signing keys in PEM files, through OpenSSL's EVP API. */
#ifndef CIRC_KEY_H
#define CIRC_KEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define KEY_ID_LEN  32
#define KEY_SIG_LEN 64

struct key;

/* Writes PREFIX.key (mode 0600) and PREFIX.pub; never overwrites either. */
CIRC_MUST_CHECK int key_generate(const char *prefix, struct circ_err *err);
CIRC_MUST_CHECK int key_load_private(const char *path, struct key **out, struct circ_err *err);
CIRC_MUST_CHECK int key_load_public(const char *path, struct key **out, struct circ_err *err);
void key_free(struct key *k);

/* SHA-256 of the raw 32-byte public key: names the signer in signed files. */
void key_id(const struct key *k, uint8_t id[KEY_ID_LEN]);
/* The first 8 bytes of an ID in hex, for messages. */
void key_id_short(const uint8_t id[KEY_ID_LEN], char out[17]);
/* Writes the public half in PEM to path (mode 0644), replacing it. */
CIRC_MUST_CHECK int key_save_public(const struct key *k, const char *path, struct circ_err *err);

CIRC_MUST_CHECK int key_sign(const struct key *k, const void *data, size_t len,
                             uint8_t sig[KEY_SIG_LEN], struct circ_err *err);
bool key_verify(const struct key *k, const void *data, size_t len, const uint8_t sig[KEY_SIG_LEN]);

/*
 * The signed envelope of the repository's signed files (manifest, pointer,
 * catalog): their bytes, the signer's key ID at a fixed offset in them,
 * then an Ed25519 signature over everything before it.
 *
 * key_seal signs what b holds and appends the signature. key_open checks
 * the signature that ends data (len > KEY_SIG_LEN) against pub; on a
 * mismatch, the key ID at key_id_off (read unverified, only for the
 * message) tells "signed by another key" from "tampered or corrupted".
 * what names the file in errors.
 */
struct buf;
CIRC_MUST_CHECK int key_seal(const struct key *signer, struct buf *b, struct circ_err *err);
CIRC_MUST_CHECK int key_open(const struct key *pub, const uint8_t *data, size_t len,
                             size_t key_id_off, const char *what, struct circ_err *err);

#endif
