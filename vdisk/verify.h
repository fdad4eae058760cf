/* SPDX-License-Identifier: MIT */
/*
 * Checking a published version end to end: every distinct block of its
 * image and boot kit is fetched and checked against its SHA-256, on a few
 * threads. A missing or damaged block is recorded and the check goes on,
 * so that one run names every bad block.
 */
#ifndef CIRC_VERIFY_H
#define CIRC_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "blockfs/block.h"
#include "blockfs/repo.h"
#include "vdisk/manifest.h"

struct verify_damage {
	/*
	 * The first block with this ID: the image's are numbered from 0, then
	 * the kernel's and the initrd's on after them (verify_locate says which).
	 */
	uint32_t index;
	struct block_id id;
	struct circ_err err; /* errnum ENOENT: missing; else damaged */
};

struct verify_result {
	size_t distinct;               /* non-zero blocks, each ID counted once */
	size_t zeros;                  /* all-zero blocks of the image, never stored */
	struct verify_damage *damaged; /* by index */
	size_t n_damaged;
};

struct verify_opts {
	unsigned threads; /* blocks checked at once; 0: one */
	/* Bytes checked so far, every 100 ms and at the end; may be NULL. */
	void (*progress)(void *ctx, uint64_t done, uint64_t total);
	void *progress_ctx;
};

/*
 * Checks every block of m in repo; a damaged block is a result, not an
 * error. Returns 0 (res filled: release it), or -1 with err set when the
 * check itself could not run.
 */
CIRC_MUST_CHECK int verify_blocks(struct repo *repo, const struct manifest *m,
                                  const struct verify_opts *o, struct verify_result *res,
                                  struct circ_err *err);
void verify_result_release(struct verify_result *res);

/* Which file of m a damage index falls in ("image", "kernel", "initrd") and its block there. */
const char *verify_locate(const struct manifest *m, uint32_t index, uint32_t *block);

#endif
