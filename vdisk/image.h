/* SPDX-License-Identifier: MIT */
/*
 * Loading a trusted image version from a repo: the pointer and the manifest,
 * each checked against the trusted key, the name asked for, the pointer's
 * expiry and the manifest hash the pointer names. Check, then use.
 */
#ifndef CIRC_IMAGE_H
#define CIRC_IMAGE_H

#include <stdint.h>

#include "blockfs/err.h"
#include "blockfs/repo.h"
#include "vdisk/key.h"
#include "vdisk/manifest.h"

/* Fetches (bypassing HTTP caches) and verifies NAME's pointer; refuses one expired at now. */
int image_load_pointer(struct repo *repo, const struct key *pub, const char *name, uint64_t now,
                       struct pointer *pt, struct circ_err *err);

/*
 * Fetches and verifies the manifest of `version` of the image pt names
 * (version 0: the pointer's own, whose file hash must then match). If raw is
 * not NULL it receives the manifest file's exact bytes.
 */
int image_load_manifest(struct repo *repo, const struct key *pub, const struct pointer *pt,
                        uint64_t version, struct manifest *m, struct buf *raw,
                        struct circ_err *err);

#endif
