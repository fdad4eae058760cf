/* SPDX-License-Identifier: MIT */
/*
 * The block cache's insides, shared by cache.c (the index, reads and puts),
 * cache_pack.c (packs: finding them, appending, evicting) and
 * cache_migrate.c (the layout of one file per block, moved into packs).
 *
 * Locks, always taken in this order:
 *   wlock      one put at a time: puts append to this process's one pack
 *   scan_lock  the list of packs changes (a pack found, made or removed)
 *   STATE/cache/lock (flock)  the same across processes: making a pack and
 *              removing packs to keep the bound, so that the bound holds for
 *              all processes at once
 *   lock       the index, each pack's reader count, the stats
 * A read takes only lock, once and briefly; its pread runs outside it.
 */
#ifndef CIRC_CACHE_INT_H
#define CIRC_CACHE_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "blockfs/cache.h"
#include "blockfs/pack.h"

struct fileio;

struct cache_pack {
	uint64_t seq;
	ino_t ino; /* with seq, which file: a name may come back for another pack */
	int fd;
	struct pack_hdr hdr;
	uint32_t scanned; /* slots read (ours: written) */
	uint64_t used;    /* ours: payload bytes appended */
	uint64_t size;    /* the file's size when last looked at */
	int64_t last_use; /* ns since the epoch: the eviction order */
	int64_t touched;  /* when its mtime (last_use for other processes) was set */
	bool mine;        /* this process appends to it */
	bool final;       /* no writer: it gains no more slots */
	bool listed;      /* seen by the listing under way */
	/*
	 * Reads in flight, and PACK_DEAD once it is out of packs[]: whoever
	 * brings it to PACK_DEAD alone (the last read, or the drop) frees it.
	 * Taken under lock (where the index names the pack), let go without.
	 */
	uint32_t refs;
};

enum {
	ENTRY_EMPTY = 0,
	ENTRY_USED,
	ENTRY_TOMB
};

struct cache_entry {
	struct block_id id;
	struct cache_pack *pack;
	uint32_t off, len, slot;
	uint8_t state;
	bool verified; /* its XXH3 was checked by this process */
	uint64_t sum;
};

struct cache {
	char *path;
	int dirfd, packfd, lockfd;
	const struct fileio *fio;
	FILE *log;
	uint64_t max_bytes;

	pthread_mutex_t wlock;
	struct cache_pack *active; /* ours, appended to (under wlock) */
	bool full; /* the last put found no room: fetching ahead would be fetching twice */

	pthread_mutex_t scan_lock;
	struct timespec dir_mtime; /* of packs/ when last listed */
	int64_t listed_at;         /* ns: when */
	uint64_t next_seq;
	int64_t next_housekeeping; /* s: when a read next checks for packs removed */

	pthread_mutex_t lock;
	struct cache_entry *tab; /* open addressing, by the ID's first bytes */
	size_t cap, used, tombs;
	struct cache_pack **packs; /* those in packs/: changed under scan_lock and lock */
	size_t n_packs, packs_cap;
	struct cache_stats stats;
};

int64_t cache_now_ns(void);
CIRC_MUST_CHECK int cache_open_dirs(struct cache *c);

/* cache.c: the index (under lock). */
struct cache_entry *cache_index_find(struct cache *c, const struct block_id *id);
CIRC_MUST_CHECK int cache_index_add(struct cache *c, const struct pack_slot *s,
                                    struct cache_pack *p, uint32_t slot, bool verified);
void cache_index_remove(struct cache *c, struct cache_entry *e);

/* cache_pack.c: packs (under scan_lock unless said). */
CIRC_MUST_CHECK int cache_packs_list(struct cache *c, bool locked);
void cache_packs_refresh(struct cache *c);
#define PACK_DEAD (1u << 31)
void cache_pack_release(struct cache_pack *p);
void cache_pack_close_all(struct cache *c); /* no read in flight */
/* Under wlock: an active pack with room for one more block of block_size bytes. */
CIRC_MUST_CHECK int cache_pack_room(struct cache *c, size_t block_size);
/* Under wlock: appends a block to the active pack and indexes it. */
CIRC_MUST_CHECK int cache_pack_append(struct cache *c, const struct block_id *id, const void *data,
                                      size_t block_size);
/* Under wlock: removes the oldest packs until the file system has len + its floor free. */
CIRC_MUST_CHECK int cache_pack_make_floor(struct cache *c, size_t len);
/* Under wlock: this process's pack gains no more blocks. */
void cache_pack_seal(struct cache *c);
/* Removes the least recently used packs until the bound holds. */
void cache_pack_enforce_bound(struct cache *c);

/* cache_migrate.c */
CIRC_MUST_CHECK int cache_migrate(struct cache *c, struct circ_err *err);

#endif
