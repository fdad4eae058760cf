/* SPDX-License-Identifier: MIT */
/*
 * The local block cache: one directory for every image and version, where a
 * block is stored once whatever refers to it, bounded in size with
 * least-recently-used eviction.
 *
 *   CACHE/packs/<16 hex>.pack   blocks packed into files of 1/16 of the
 *                               bound (64 MiB at most; blockfs/pack.h)
 *   CACHE/lock                  flock: making and removing packs
 *
 * Each process appends to a pack of its own; all of them see every pack.
 * A block's SHA-256 is checked once, when it arrives; in the cache each
 * block carries an XXH3 checked the first time a process reads it, so that
 * a block torn by a crash or power loss is detected, dropped and fetched
 * again; it is never served. The bound holds for all processes using the
 * cache at once: removing the least recently used packs, each process
 * counts every pack, those the others are still writing at their full size.
 * A cache in the older layout (CACHE/XX/<64 hex>, one file per block) is
 * moved into packs when opened, once, saying so on its log.
 */
#ifndef CIRC_CACHE_H
#define CIRC_CACHE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "util/err.h"
#include "blockfs/block.h"

/*
 * Whatever its bound, the cache leaves the file system it lives on this
 * much free: 10% of it, or 1 GiB if that is less. Past that it evicts its
 * oldest entries, and with none left it keeps nothing more (a block is still
 * handed out, it is just not kept).
 */
#define CACHE_FLOOR_PERCENT 10
#define CACHE_FLOOR_MAX     (1ull << 30)

struct cache;

struct cache_stats {
	uint64_t hits, misses;
	uint64_t bytes;   /* held now */
	uint64_t entries; /* held now */
	uint64_t evictions;
	uint64_t dropped;   /* entries that failed verification */
	uint64_t refused;   /* blocks not kept: the file system was at its floor */
	uint64_t recreated; /* times the directory was found deleted and made again */
	uint64_t migrated;  /* blocks moved from the older layout when opened */
};

/* How often a process records its reads of a pack in the pack's mtime, for the others. */
#define CACHE_TOUCH_EVERY_S 10

struct fileio;

struct cache_options {
	uint64_t max_bytes;       /* the bound on its packs' bytes (0: none) */
	const struct fileio *fio; /* its writes through it (NULL: the system's) */
	FILE *log; /* what it does on its own: a migration, a rebuild (NULL: nowhere) */
};

/* Opens (creating) the cache in dir. */
CIRC_MUST_CHECK int cache_open_opts(const char *dir, const struct cache_options *o,
                                    struct cache **out, struct circ_err *err);
/* The same with a bound of max_bytes (0: no bound), its log stderr. */
CIRC_MUST_CHECK int cache_open(const char *dir, uint64_t max_bytes, struct cache **out,
                               struct circ_err *err);
/* The same, its writes through fio (NULL: the system's), as a crash test records them. */
CIRC_MUST_CHECK int cache_open_io(const char *dir, uint64_t max_bytes, const struct fileio *fio,
                                  struct cache **out, struct circ_err *err);
void cache_close(struct cache *c);

/*
 * Reads len bytes at off within block id (of block_size bytes) into out.
 * Returns 0 on a hit, -ENOENT on a miss (including an entry that failed
 * verification, which is forgotten), another -errno on error.
 */
int cache_read(struct cache *c, const struct block_id *id, size_t block_size, uint64_t off,
               size_t len, void *out);
/*
 * Stores a verified block; removes the least recently used packs beyond the
 * bound. Not synced: a power cut may lose or tear what was put, which reads
 * then fail their XXH3 and miss. -ENOSPC: not kept, the bound or the file
 * system's floor leaves no room (the block can be fetched again).
 */
int cache_put(struct cache *c, const struct block_id *id, const void *data, size_t block_size);
/*
 * 0 if block id is cached whole: its XXH3 checked once per process (a torn
 * entry, as a power cut may leave, is dropped: -ENOENT).
 */
int cache_verify(struct cache *c, const struct block_id *id, size_t block_size);
/* Makes every block put so far last a power cut (a base switch relies on them). */
CIRC_MUST_CHECK int cache_sync(struct cache *c);
bool cache_contains(struct cache *c, const struct block_id *id);
/* The size of block id if cached (looking at what other processes put), else -ENOENT. */
int cache_block_size(struct cache *c, const struct block_id *id, size_t *size);
/* False while the file system is at its floor: fetching ahead would only fetch twice. */
bool cache_has_room(struct cache *c);
void cache_get_stats(struct cache *c, struct cache_stats *st);
/* Where the cache says what it did on its own (its directory recreated); NULL: nowhere. */
void cache_set_log(struct cache *c, FILE *log);

#endif
