/* SPDX-License-Identifier: MIT */
/*
 * Block identity and encoding: a block's ID is the SHA-256 of its
 * uncompressed bytes; on the wire and on disk it is one zstd frame.
 */
#ifndef CIRC_BLOCK_H
#define CIRC_BLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/err.h"

#define BLOCK_ID_LEN       32
#define BLOCK_ID_HEX_LEN   64
#define BLOCK_SIZE_MIN     (4u << 10)
#define BLOCK_SIZE_MAX     (4u << 20)
#define BLOCK_SIZE_DEFAULT (64u << 10)

struct block_id {
	uint8_t b[BLOCK_ID_LEN];
};

/* The all-zero ID marks an all-zero block; no data hashes to it in practice. */
bool block_id_is_zero(const struct block_id *id);
bool block_id_equal(const struct block_id *a, const struct block_id *b);
void block_id_compute(struct block_id *id, const void *data, size_t len);
/* out must hold BLOCK_ID_HEX_LEN + 1 bytes. */
void block_id_to_hex(const struct block_id *id, char *out);
int block_id_from_hex(struct block_id *id, const char *hex);

bool block_is_zero(const void *data, size_t len);
bool block_size_valid(uint64_t size);

/* A reusable compression context, one per thread. */
struct block_encoder;
struct block_encoder *block_encoder_new(int level);
void block_encoder_free(struct block_encoder *enc);
/* Compresses len bytes into out (replacing its contents). */
CIRC_MUST_CHECK int block_encode(struct block_encoder *enc, const void *data, size_t len,
                                 struct buf *out, struct circ_err *err);

/*
 * Decompresses one stored block into out (exactly block_size bytes, the
 * caller's) and checks it against id. Never writes past block_size, and
 * fails on any frame that does not decode to exactly block_size bytes whose
 * SHA-256 is id: nothing unverified is ever left looking valid in out.
 */
CIRC_MUST_CHECK int block_decode_verified(const struct block_id *id, const void *comp,
                                          size_t comp_len, void *out, size_t block_size,
                                          struct circ_err *err);

/*
 * Whether a stored block, whatever its size (a frame must declare it, up to
 * BLOCK_SIZE_MAX), decodes to exactly the bytes its ID names: 0, or -1 with
 * the reason (EBADMSG).
 */
CIRC_MUST_CHECK int block_check_stored(const struct block_id *id, const void *comp, size_t comp_len,
                                       struct circ_err *err);

/* The largest compressed object a block of block_size may legitimately be. */
size_t block_encoded_bound(size_t block_size);

#endif
