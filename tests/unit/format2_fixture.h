/* SPDX-License-Identifier: MIT */
/* What the format 2 suites share: a sample manifest with a boot kit, and checks. */
#ifndef CIRC_FORMAT2_FIXTURE_H
#define CIRC_FORMAT2_FIXTURE_H

#include <stdint.h>

#include "util/buf.h"
#include "vdisk/manifest.h"

#define NAME "kiosk-1"
#define BS   4096u
/* Ten blocks, the last partial; a kernel of 2.5 blocks, an initrd of one byte. */
#define IMAGE_SIZE  (9 * BS + 10)
#define KERNEL_SIZE (2 * BS + BS / 2)
#define INITRD_SIZE 1
#define CMDLINE     "console=ttyS0 root=/dev/vda ro quiet"
#define DESC        "Lab image \xc3\xa9t\xc3\xa9 2024 \xe2\x80\x94 \xf0\x9f\x90\xa7"

/* A boot file of size bytes: block IDs from seed, every zero_every-th zero (0: none). */
void ids(struct manifest_file *f, uint64_t size, uint32_t seed, int zero_every);
/* A format 2 manifest with every field set. */
void sample(struct manifest *m);
/* Encodes m, signed by the suites' signer. */
void encode(struct manifest *m, struct buf *out);
void assert_file_same(const struct manifest_file *a, const struct manifest_file *b);
void assert_same(const struct manifest *a, const struct manifest *b);

#endif
