/* SPDX-License-Identifier: MIT */
/*
 * Signed image metadata (docs/format.md): the immutable manifest of one image
 * version, and the mutable pointer to an image's newest version.
 *
 * Decoding checks the signature over the exact bytes before any field is
 * used; the *_parse functions beneath it (exposed for the fuzzers) check
 * every length and never read outside the input.
 */
#ifndef CIRC_MANIFEST_H
#define CIRC_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "blockfs/block.h"
#include "blockfs/buf.h"
#include "blockfs/err.h"
#include "blockfs/repo.h"
#include "vdisk/key.h"

#define MANIFEST_MAGIC      "CIRCMFST"
#define POINTER_MAGIC       "CIRCPNTR"
#define MANIFEST_FORMAT     1
#define POINTER_FORMAT      1
#define MANIFEST_HEADER_LEN 128
#define POINTER_HEADER_LEN  112
#define MANIFEST_MAX_LEN    (256u << 20)
#define POINTER_MAX_LEN     4096
/* Bounded so that a manifest never exceeds MANIFEST_MAX_LEN. */
#define MANIFEST_MAX_BLOCKS (4u << 20)

struct manifest {
	char name[REPO_NAME_MAX + 1];
	uint64_t version; /* 1, 2, ... */
	uint64_t parent;  /* previous version, 0 for the first */
	uint64_t created; /* Unix seconds */
	uint64_t image_size;
	uint32_t block_size;
	uint32_t n_blocks;       /* ceil(image_size / block_size) */
	struct block_id *blocks; /* all-zero ID: an all-zero block */
	uint32_t n_prefetch;
	uint32_t *prefetch; /* block indices, in the order a boot reads them */
	uint8_t key_id[KEY_ID_LEN];
};

struct pointer {
	char name[REPO_NAME_MAX + 1];
	uint64_t version;
	uint64_t created;
	uint64_t expires;            /* Unix seconds; a client refuses the pointer after it */
	uint8_t manifest_sha256[32]; /* of the whole manifest file */
	uint8_t key_id[KEY_ID_LEN];
};

/* Allocates the block table for image_size / block_size (zeroed). */
int manifest_init(struct manifest *m, const char *name, uint64_t image_size, uint32_t block_size,
                  struct circ_err *err);
void manifest_release(struct manifest *m);

/* Serialises m and signs it with signer (whose ID goes into the manifest). */
int manifest_encode(struct manifest *m, const struct key *signer, struct buf *out,
                    struct circ_err *err);
/* Verifies the signature with pub, then parses. m is the caller's to release. */
int manifest_decode(const uint8_t *data, size_t len, const struct key *pub, struct manifest *m,
                    struct circ_err *err);
int manifest_parse(const uint8_t *data, size_t len, struct manifest *m, struct circ_err *err);

int pointer_encode(struct pointer *p, const struct key *signer, struct buf *out,
                   struct circ_err *err);
int pointer_decode(const uint8_t *data, size_t len, const struct key *pub, struct pointer *p,
                   struct circ_err *err);
int pointer_parse(const uint8_t *data, size_t len, struct pointer *p, struct circ_err *err);

/* SHA-256 of a whole file, as the pointer records it. */
void manifest_file_hash(const uint8_t *data, size_t len, uint8_t out[32]);

#endif
