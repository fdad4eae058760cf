/* SPDX-License-Identifier: MIT */
/* The publisher's part in the catalog (docs/format.md): for publish.c only. */
#ifndef CIRC_PUBLISH_CATALOG_H
#define CIRC_PUBLISH_CATALOG_H

#include <stdint.h>

#include "util/buf.h"
#include "util/err.h"
#include "blockfs/repo.h"
#include "vdisk/key.h"
#include "vdisk/manifest.h"
#include "vdisk/publish.h"

/*
 * The repo's catalog with this version in it, encoded and signed: the new
 * manifest and pointer (not written yet) for this image, every other image
 * as the repo holds it. An image that does not read is left out (counted in
 * res) rather than holding up the publish.
 */
int publish_make_catalog(struct repo *repo, const char *repo_dir, const struct manifest *m,
                         const struct pointer *pt, const struct key *key, uint64_t now,
                         struct buf *out, struct publish_result *res, struct circ_err *err);

/*
 * The catalog's temporaries land in the repo's root, which
 * repo_clean_temporaries does not look at: what a crash left there goes here.
 */
void publish_clean_root_temporaries(const char *repo_dir);

#endif
