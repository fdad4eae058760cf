/* SPDX-License-Identifier: MIT */
/*
 * Signed image metadata (docs/format.md): the immutable manifest of one image
 * version, and the mutable pointer to an image's newest version.
 *
 * Decoding checks the signature over the exact bytes before any field is
 * used; the *_parse functions beneath it (exposed for the fuzzers) check
 * every length and never read outside the input.
 *
 * Both exist in formats 1 and 2. Clients read both; the publisher writes 2:
 * a manifest 2 adds a boot kit (kernel, initrd, command line), a description
 * and a zstd-compressed block table; a pointer 2 adds the manifest's exact
 * size, so that a client never reads more than that of it.
 */
#ifndef CIRC_MANIFEST_H
#define CIRC_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/err.h"
#include "blockfs/block.h"
#include "blockfs/repo.h"
#include "vdisk/key.h"

/* The formats written; format 1 of both is still read (and written when asked). */
#define MANIFEST_MAGIC      "CIRCMFST"
#define POINTER_MAGIC       "CIRCPNTR"
#define MANIFEST_FORMAT     2
#define POINTER_FORMAT      2
#define MANIFEST_HEADER_LEN 128
#define POINTER_HEADER_LEN  112 /* format 1 */
#define POINTER_HEADER_LEN2 120 /* format 2: the manifest's size follows */
#define MANIFEST_MAX_LEN    (256u << 20)
#define POINTER_MAX_LEN     4096
/* Bounded so that a manifest never exceeds MANIFEST_MAX_LEN. */
#define MANIFEST_MAX_BLOCKS (4u << 20)
/* The boot kit (format 2): a kernel command line is printable ASCII. */
#define MANIFEST_CMDLINE_MAX 4096
/* A description is UTF-8 without control characters. */
#define MANIFEST_DESC_MAX 1024
/* A kernel or initrd: 1 GiB, at most 262144 IDs of 4 KiB blocks (8 MiB). */
#define MANIFEST_BOOTFILE_MAX (1ull << 30)

/* A file of the boot kit, cut into blocks of the image's block size. */
struct manifest_file {
	uint64_t size;           /* exact bytes; 0: absent */
	uint32_t n_blocks;       /* ceil(size / block_size) */
	struct block_id *blocks; /* all-zero ID: an all-zero block */
};

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
	uint32_t format; /* as read: 1 or 2; encoding writes it (0: MANIFEST_FORMAT) */
	/* Format 2 only; format 1 has none of these. */
	struct manifest_file kernel, initrd; /* an initrd or command line only with a kernel */
	char cmdline[MANIFEST_CMDLINE_MAX + 1];
	char description[MANIFEST_DESC_MAX + 1];
};

struct pointer {
	char name[REPO_NAME_MAX + 1];
	uint64_t version;
	uint64_t created;
	uint64_t expires;            /* Unix seconds; a client refuses the pointer after it */
	uint8_t manifest_sha256[32]; /* of the whole manifest file */
	uint8_t key_id[KEY_ID_LEN];
	uint32_t format;        /* as read: 1 or 2; encoding writes it (0: POINTER_FORMAT) */
	uint64_t manifest_size; /* format 2: the manifest file's exact size; 0 in format 1 */
};

/* Allocates the block table for image_size / block_size (zeroed); format MANIFEST_FORMAT. */
CIRC_MUST_CHECK int manifest_init(struct manifest *m, const char *name, uint64_t image_size,
                                  uint32_t block_size, struct circ_err *err);
/* Frees the block table, the prefetch list and the boot kit's block lists. */
void manifest_release(struct manifest *m);
/* Sizes f for size bytes in blocks of block_size (IDs zeroed); size 0 leaves it absent. */
CIRC_MUST_CHECK int manifest_file_init(struct manifest_file *f, uint64_t size, uint32_t block_size,
                                       struct circ_err *err);
void manifest_file_release(struct manifest_file *f);

/* What the boot kit's text fields allow, over exactly len bytes (a NUL is refused). */
bool manifest_cmdline_valid(const char *s, size_t len);
bool manifest_description_valid(const char *s, size_t len);

/*
 * Serialises m in m->format and signs it with signer (whose ID goes into the
 * manifest). Format 1 is refused for a manifest with a boot kit or description.
 */
CIRC_MUST_CHECK int manifest_encode(struct manifest *m, const struct key *signer, struct buf *out,
                                    struct circ_err *err);
/* Verifies the signature with pub, then parses. m is the caller's to release. */
CIRC_MUST_CHECK int manifest_decode(const uint8_t *data, size_t len, const struct key *pub,
                                    struct manifest *m, struct circ_err *err);
CIRC_MUST_CHECK int manifest_parse(const uint8_t *data, size_t len, struct manifest *m,
                                   struct circ_err *err);

/* Format 2 needs manifest_size (1..MANIFEST_MAX_LEN); format 1 refuses one. */
CIRC_MUST_CHECK int pointer_encode(struct pointer *p, const struct key *signer, struct buf *out,
                                   struct circ_err *err);
CIRC_MUST_CHECK int pointer_decode(const uint8_t *data, size_t len, const struct key *pub,
                                   struct pointer *p, struct circ_err *err);
CIRC_MUST_CHECK int pointer_parse(const uint8_t *data, size_t len, struct pointer *p,
                                  struct circ_err *err);

/* SHA-256 of a whole file, as the pointer records it. */
void manifest_file_hash(const uint8_t *data, size_t len, uint8_t out[32]);

#endif
