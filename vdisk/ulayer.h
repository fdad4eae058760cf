/* SPDX-License-Identifier: MIT */
/*
 * A user layer (users/USER/DISK/N.layer, docs/format.md): check-in N of a
 * user's disk, immutable. A sparse map from block index to block over the
 * disk's base, holding every block that differs from the base, so a read
 * never walks history. Its header is plain (the server checks names and
 * version); everything else is sealed with the user's key (ukey.h), and
 * the header is authenticated with it.
 */
#ifndef CIRC_ULAYER_H
#define CIRC_ULAYER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/err.h"
#include "blockfs/block.h"
#include "blockfs/repo.h"
#include "vdisk/head.h"
#include "vdisk/ukey.h"

#define ULAYER_MAGIC       "CIRCLAYR"
#define ULAYER_FORMAT      1
#define ULAYER_HEADER_LEN  192
#define ULAYER_MAX_ENTRIES (1u << 20)

enum ulayer_base {
	ULAYER_BASE_BLANK = 0, /* a blank disk: reads as zeros */
	ULAYER_BASE_IMAGE = 1, /* a published image version */
};

/* One block of the disk that differs from the base. */
struct ulayer_entry {
	uint32_t index;
	struct block_id name; /* on the server: users/USER/blocks/; all-zero: a zero block */
	struct block_id id;   /* SHA-256 of the plaintext, as the local cache keys it */
};

struct ulayer {
	/* Plain header (authenticated). */
	char user[REPO_NAME_MAX + 1];
	char disk[REPO_NAME_MAX + 1];
	uint64_t version; /* N >= 1 */
	uint8_t salt[UKEY_SALT_LEN];
	/* Sealed body. */
	uint64_t parent;           /* N - 1, 0 for the first */
	uint8_t parent_sha256[32]; /* of the whole parent layer file; zero for the first */
	uint64_t created;          /* Unix seconds */
	char machine[HEAD_MACHINE_HEX + 1];
	char host[HEAD_HOST_MAX + 1];
	enum ulayer_base base;
	uint64_t disk_size;
	uint32_t block_size;
	char base_image[REPO_NAME_MAX + 1]; /* ULAYER_BASE_IMAGE */
	uint64_t base_version;
	uint8_t base_manifest_sha256[32];
	/* Where a branch came from (a stale check-in kept): disk and version, or "" and 0. */
	char origin_disk[REPO_NAME_MAX + 1];
	uint64_t origin_version;
	uint64_t bytes_uploaded; /* by this check-in, sealed blocks */
	uint64_t bytes_total;    /* every sealed block the layer names */
	uint32_t n_entries;
	struct ulayer_entry *entries; /* sorted by index, each index once, < block count */
};

void ulayer_release(struct ulayer *l);

/*
 * Encodes l: a fresh random salt is drawn into l->salt, the body sealed.
 * Entries must be sorted and valid (checked).
 */
CIRC_MUST_CHECK int ulayer_encode(struct ulayer *l, const struct ukey *k, struct buf *out,
                                  struct circ_err *err);
/*
 * Opens and checks a layer file: header, authentication, every length and
 * entry (sorted, in range, count bounded). l is the caller's to release.
 */
CIRC_MUST_CHECK int ulayer_decode(const uint8_t *data, size_t len, const struct ukey *k,
                                  struct ulayer *l, struct circ_err *err);
/* Reads only the plain header (what the server may check). */
CIRC_MUST_CHECK int ulayer_parse_header(const uint8_t *data, size_t len, struct ulayer *l,
                                        struct circ_err *err);

/* The entry for block index, or NULL (binary search). */
const struct ulayer_entry *ulayer_find(const struct ulayer *l, uint32_t index);

#endif
