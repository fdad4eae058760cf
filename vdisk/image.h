/* SPDX-License-Identifier: MIT */
/*
 * Loading a trusted image version from a repo: the pointer and the manifest,
 * each checked against the trusted key, the name asked for, the pointer's
 * expiry and the manifest hash the pointer names. Check, then use.
 */
#ifndef CIRC_IMAGE_H
#define CIRC_IMAGE_H

#include <stdint.h>

#include "util/err.h"
#include "blockfs/repo.h"
#include "blockfs/store.h"
#include "vdisk/key.h"
#include "vdisk/manifest.h"

/* Fetches (bypassing HTTP caches) and verifies NAME's pointer; refuses one expired at now. */
CIRC_MUST_CHECK int image_load_pointer(struct repo *repo, const struct key *pub, const char *name,
                                       uint64_t now, struct pointer *pt, struct circ_err *err);

/*
 * Fetches and verifies the manifest of `version` of the image pt names
 * (version 0: the pointer's own, whose file hash must then match, and whose
 * size too if the pointer records it: then no more than that is read). If raw
 * is not NULL it receives the manifest file's exact bytes.
 */
CIRC_MUST_CHECK int image_load_manifest(struct repo *repo, const struct key *pub,
                                        const struct pointer *pt, uint64_t version,
                                        struct manifest *m, struct buf *raw, struct circ_err *err);

/*
 * Writes a file of m's boot kit (&m->kernel or &m->initrd) to path, its exact
 * bytes, each block read through s (so verified against its ID and cached).
 * Written to a temporary beside path and renamed over it, mode 0644: path is
 * never seen half written.
 */
CIRC_MUST_CHECK int image_write_bootfile(struct store *s, const struct manifest *m,
                                         const struct manifest_file *f, const char *path,
                                         struct circ_err *err);

#endif
