/* SPDX-License-Identifier: MIT */
/*
 * Hoarding, as Internet Suspend/Resume called it: a disk's version held
 * whole in the cache, so that it reads, and boots, without the network.
 */
#ifndef CIRC_HOARD_H
#define CIRC_HOARD_H

#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"
#include "vdisk/disk.h"

#define HOARD_THREADS 8 /* requests in flight */

struct hoard_result {
	uint64_t blocks;  /* blocks to have (the disk's, or its boot set), boot kit included */
	uint64_t already; /* of those, cached before */
	uint64_t fetched_bytes; /* what came over the wire */
	uint64_t missing;       /* still not here (hoard_count) */
};

/*
 * circ fetch: every block of vd's version that is not cached yet (boot_only:
 * only the blocks its manifest lists as read by a boot), and its boot kit.
 * Resumable: what is cached is not fetched again. progress is called with
 * blocks done of total, from one thread.
 */
CIRC_MUST_CHECK int hoard_fetch(struct vdisk *vd, bool boot_only,
                                void (*progress)(void *ctx, uint64_t done, uint64_t total),
                                void *ctx, struct hoard_result *res, struct circ_err *err);

/* How many of vd's blocks (and boot kit blocks) are not in the cache. */
void hoard_count(struct vdisk *vd, struct hoard_result *res);

#endif
