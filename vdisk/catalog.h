/* SPDX-License-Identifier: MIT */
/*
 * The repo's catalog (docs/format.md): one signed file at the repository's
 * root that lists every image, its newest version and what `circ ls` shows
 * of it, so that a kiosk or a lab machine can choose an image without
 * knowing the names beforehand.
 *
 * The catalog is an index, not a root of trust: each image is still checked
 * against its own pointer and manifest and the key pinned for it when it is
 * pulled. Decoding checks the signature over the exact bytes first;
 * catalog_parse (for the fuzzer, and for printing an unverified catalog)
 * checks every length and never reads outside the input.
 */
#ifndef CIRC_CATALOG_H
#define CIRC_CATALOG_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/err.h"
#include "blockfs/objects.h"
#include "blockfs/repo.h"
#include "vdisk/key.h"
#include "vdisk/manifest.h"

#define CATALOG_MAGIC      "CIRCCTLG"
#define CATALOG_FORMAT     1
#define CATALOG_HEADER_LEN 64
#define CATALOG_ENTRY_LEN  80 /* the fixed part of an entry */
#define CATALOG_MAX_LEN    REPO_CATALOG_MAX

struct catalog_entry {
	char name[REPO_NAME_MAX + 1];
	uint64_t version;           /* the newest, as its pointer says */
	uint64_t image_size;        /* of that version */
	uint64_t kernel_size;       /* its boot kit; 0: none */
	uint64_t initrd_size;       /* 0: none (always 0 without a kernel) */
	uint64_t created;           /* that version's creation time, Unix seconds */
	uint8_t key_id[KEY_ID_LEN]; /* who signed the image's pointer */
	char description[MANIFEST_DESC_MAX + 1];
};

struct catalog {
	uint64_t created; /* when the catalog was written */
	uint32_t n_entries;
	struct catalog_entry *entries; /* sorted by name, each name once */
	uint8_t key_id[KEY_ID_LEN];    /* who signed the catalog */
};

/* Appends a copy of e (the order does not matter: encoding sorts). */
CIRC_MUST_CHECK int catalog_add(struct catalog *c, const struct catalog_entry *e,
                                struct circ_err *err);
void catalog_release(struct catalog *c);

/*
 * Sorts c's entries by name and serialises and signs them with signer (whose
 * ID goes into the catalog). Refuses a name given twice, an invalid field, or
 * a catalog that would exceed CATALOG_MAX_LEN.
 */
CIRC_MUST_CHECK int catalog_encode(struct catalog *c, const struct key *signer, struct buf *out,
                                   struct circ_err *err);
/* Verifies the signature with pub, then parses. c is the caller's to release. */
CIRC_MUST_CHECK int catalog_decode(const uint8_t *data, size_t len, const struct key *pub,
                                   struct catalog *c, struct circ_err *err);
/* Parses without the signature; a refusal leaves nothing allocated. */
CIRC_MUST_CHECK int catalog_parse(const uint8_t *data, size_t len, struct catalog *c,
                                  struct circ_err *err);

#endif
