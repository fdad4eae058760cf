/* SPDX-License-Identifier: MIT */
/*
 * The disk API both front ends use (FUSE and the hypervisor's virtio-blk):
 * a stack of the image's base version, fetched lazily through the verified
 * block store, under the local copy-on-write overlay. Byte offsets; every
 * call returns 0 or a negative errno (-EIO when a block cannot be had).
 */
#ifndef CIRC_DISK_H
#define CIRC_DISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "util/err.h"
#include "blockfs/store.h"
#include "vdisk/manifest.h"
#include "vdisk/state.h"
#include "vdisk/ulayer.h"

#define VDISK_DEFAULT_CACHE_SIZE STATE_DEFAULT_CACHE_SIZE
/* Blocks fetched ahead of a sequential reader: 2 MiB, above the kernel's own 1 MiB. */
#define VDISK_DEFAULT_READAHEAD 32
#define VDISK_DEFAULT_WORKERS   8

struct vdisk_options {
	struct state_net net;
	uint64_t cache_size; /* 0: VDISK_DEFAULT_CACHE_SIZE */
	unsigned readahead;  /* 0: none */
	unsigned workers;    /* background fetchers; 0: VDISK_DEFAULT_WORKERS */
	bool read_only;
	FILE *log; /* blocks that cannot be had are named here; NULL: stderr */
	/*
	 * If set, the base blocks read are recorded, in the order of their first
	 * read, and written to this file (one index a line) when the disk closes:
	 * a boot's working set, for `circ publish --prefetch`.
	 */
	const char *record_reads;
};

#define VDISK_PREFETCH_THREADS 8 /* requests in flight while prefetching */

struct vdisk;

/* Opens DISK under state; holds its lock until vdisk_close. */
CIRC_MUST_CHECK int vdisk_open(const char *state, const char *disk,
                               const struct vdisk_options *opts, struct vdisk **out,
                               struct circ_err *err);
/* Flushes, saves statistics and frees vd: 0, or the flush's -errno (writes may be lost). */
CIRC_MUST_CHECK int vdisk_close(struct vdisk *vd);
/*
 * vdisk_close for a caller whose work ended with rc (0 or -1, err set):
 * rc, or -1 with err set if the close failed after work that succeeded.
 */
CIRC_MUST_CHECK int vdisk_close_after(struct vdisk *vd, int rc, struct circ_err *err);

uint64_t vdisk_size(const struct vdisk *vd);
bool vdisk_read_only(const struct vdisk *vd);
CIRC_MUST_CHECK int vdisk_read(struct vdisk *vd, void *buf, size_t len, uint64_t off);
CIRC_MUST_CHECK int vdisk_write(struct vdisk *vd, const void *buf, size_t len, uint64_t off);
CIRC_MUST_CHECK int vdisk_flush(struct vdisk *vd);
CIRC_MUST_CHECK int vdisk_discard(struct vdisk *vd, uint64_t off, uint64_t len);
/*
 * Fetches the blocks the manifest lists for prefetching, in the background,
 * several at a time, in the list's order; ends by itself, or at vdisk_close.
 */
CIRC_MUST_CHECK int vdisk_prefetch(struct vdisk *vd);
/* This disk's statistics, earlier sessions included; and saving them for `circ stats`. */
void vdisk_get_stats(struct vdisk *vd, struct disk_stats *st);
void vdisk_save_stats(struct vdisk *vd);
/* The image and version at the base, for messages. */
const char *vdisk_image(const struct vdisk *vd);
uint64_t vdisk_version(const struct vdisk *vd);
/* When the base version was published (Unix seconds; 0 for a blank base). */
uint64_t vdisk_created(const struct vdisk *vd);

/* --- for check-in (push.c): the stack's geometry and what differs from the base --- */

uint32_t vdisk_block_size(const struct vdisk *vd);
uint64_t vdisk_block_count(const struct vdisk *vd);
const struct disk_conf *vdisk_conf(const struct vdisk *vd);
const char *vdisk_dir(const struct vdisk *vd);
/* The base's block idx: its ID, all-zero for a zero block or a blank base. */
void vdisk_base_block(const struct vdisk *vd, uint64_t idx, struct block_id *id);
/* Whether the overlay holds any sector of block idx. */
bool vdisk_overlay_touches(struct vdisk *vd, uint64_t idx);
/* The pulled user layer's map, or NULL. */
const struct ulayer *vdisk_user_layer(const struct vdisk *vd);
/* Keeps a block's plaintext in the cache (a pushed block stays readable offline). */
void vdisk_cache_block(struct vdisk *vd, const struct block_id *id, const void *data);
/* Drops the overlay (durably): its writes now live in the user layer. */
CIRC_MUST_CHECK int vdisk_drop_overlay(struct vdisk *vd);

/* --- for hoarding and kiosks --- */

/*
 * Whether block idx can be read without the network: a zero block, or the
 * block of the layer that holds it is in the cache. (The overlay is not
 * asked: what it holds may cover part of a block only.)
 */
bool vdisk_block_local(struct vdisk *vd, uint64_t idx);
/*
 * The same, a cached block hashed once per process (a torn one is dropped):
 * for what must read offline later, not for counting.
 */
bool vdisk_block_local_verified(struct vdisk *vd, uint64_t idx);
/* Bytes of the disk that local writes changed (sectors not reading the layers beneath). */
uint64_t vdisk_local_writes(struct vdisk *vd);
/* The base version's manifest (boot kit, prefetch list), or NULL for a blank base. */
const struct manifest *vdisk_manifest(const struct vdisk *vd);
/* Whether block id is in the cache (the shared one: any image's, any layer's). */
bool vdisk_base_cached(struct vdisk *vd, const struct block_id *id);
/* Makes the cached blocks last a power cut: 0 or -errno. */
CIRC_MUST_CHECK int vdisk_sync_cache(struct vdisk *vd);
/* The verified store of the base's blocks (NULL for a blank base). */
struct store *vdisk_base_store(struct vdisk *vd);

#endif
