/* SPDX-License-Identifier: MIT */
/*
 * Inside a vdisk: the layer stack and its locks, shared by disk.c (opening,
 * reading through the layers) and disk_write.c (writes and discards). Not
 * for use outside vdisk/.
 */
#ifndef CIRC_DISK_INT_H
#define CIRC_DISK_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "vdisk/disk.h"
#include "vdisk/manifest.h"
#include "vdisk/readahead.h"
#include "vdisk/state.h"

#define SECTOR_LOCKS 64 /* stripes: writers of one sector take the same lock */
#define MAX_LAYERS   3  /* overlay, user layer, base */

/*
 * What a layer holds at a byte offset, for the run of bytes that share it:
 * its own data, zeros, or nothing (read the layers beneath).
 */
enum layer_state {
	LAYER_DATA,
	LAYER_ZERO,
	LAYER_BELOW,
};

struct vdisk;

/*
 * A layer of the stack. map() says what [off, off + len) holds, for a first
 * run of *run bytes (0 < *run <= len) that a single read() may then serve:
 * a read asks each layer once per run, never once per sector.
 */
struct layer_ops {
	const char *name;
	int (*map)(struct vdisk *vd, uint64_t off, uint64_t len, enum layer_state *st,
	           uint64_t *run);
	int (*read)(struct vdisk *vd, void *buf, size_t len, uint64_t off);
};

struct vdisk {
	char *dir;
	int lockfd;
	bool read_only;
	FILE *log;
	struct disk_conf conf;
	uint64_t size;
	uint32_t block_size;
	uint64_t n_blocks;
	const struct layer_ops *layers[MAX_LAYERS]; /* top first */
	unsigned n_layers;
	struct manifest m; /* an image base's */
	struct repo *repo;
	struct cache *cache;
	struct store *store;     /* an image base's blocks */
	struct user_layer *user; /* the pulled user layer, or NULL */
	struct overlay *ov;
	unsigned readahead;
	/* A partial-sector write is read-modify-write: no other write to that sector between. */
	pthread_mutex_t sector_locks[SECTOR_LOCKS];

	/* Background prefetch of the manifest's list. */
	pthread_t prefetchers[VDISK_PREFETCH_THREADS];
	unsigned n_prefetchers;
	atomic_uint prefetch_next;
	atomic_bool prefetch_stop;

	pthread_mutex_t lock; /* guards the fields below */
	struct readahead ra;  /* of the base blocks */
	char *record_path;    /* recording the blocks read, when set */
	uint8_t *recorded;    /* a bit per block: read already */
	uint32_t *trace;      /* block indices in the order of their first read */
	size_t n_trace;
	struct disk_stats saved; /* statistics of earlier sessions */
	time_t stats_saved_at;
};

#endif
