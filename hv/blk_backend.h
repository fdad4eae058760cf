/* SPDX-License-Identifier: MIT */
/*
 * What a virtio-blk device stores its sectors in: a raw file or block
 * device, a circ vdisk (the lazy, verified, copy-on-write disk), or host
 * memory (tests and benchmarks). Byte offsets; every call returns 0 or a
 * negative errno. Calls come from one thread at a time (the device's).
 */
#ifndef CIRC_HV_BLK_BACKEND_H
#define CIRC_HV_BLK_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define BLK_BACKEND_SERIAL_LEN 20 /* virtio-blk GET_ID: 20 bytes, NUL-padded, not terminated */

struct vdisk;

struct blk_backend_ops {
	int (*read)(void *ctx, void *buf, size_t len, uint64_t off);
	int (*write)(void *ctx, const void *buf, size_t len, uint64_t off);
	int (*flush)(void *ctx);                               /* NULL: nothing is cached */
	int (*discard)(void *ctx, uint64_t off, uint64_t len); /* NULL: not offered to the guest */
	void (*close)(void *ctx); /* frees ctx; NULL: nothing to free */
};

struct blk_backend {
	const struct blk_backend_ops *ops;
	void *ctx;
	uint64_t size; /* bytes; the guest sees size / 512 sectors */
	bool read_only;
	char serial[BLK_BACKEND_SERIAL_LEN];
};

/*
 * A raw image file or block device: pread/pwrite, fdatasync for flush,
 * hole punching for discard (a file system that cannot punch holes makes
 * discard a no-op, which the guest cannot tell from a slow one).
 */
CIRC_MUST_CHECK int blk_backend_open_file(const char *path, bool read_only, struct blk_backend *out,
                                          struct circ_err *err);
/* Wraps vd, which the caller still owns and closes after blk_backend_close. */
CIRC_MUST_CHECK int blk_backend_from_vdisk(struct vdisk *vd, struct blk_backend *out);
/* size bytes of zeroed host memory, allocated lazily. Returns 0 or -errno. */
CIRC_MUST_CHECK int blk_backend_open_memory(uint64_t size, struct blk_backend *out);
/* Releases what the constructor took; safe on a zeroed or already closed backend. */
void blk_backend_close(struct blk_backend *be);

#endif
