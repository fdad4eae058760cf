/* SPDX-License-Identifier: MIT */
/*
 * The verified block store: the local cache in front of a repo. A block is
 * read from the cache, else fetched once however many readers want it at the
 * same moment, checked against its ID, cached and handed out. Background
 * workers fetch blocks asked for ahead of time (read-ahead, prefetch lists).
 */
#ifndef CIRC_STORE_H
#define CIRC_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "blockfs/block.h"
#include "blockfs/cache.h"
#include "blockfs/repo.h"

struct store;

struct store_stats {
	uint64_t fetched_bytes; /* compressed bytes received for blocks */
	uint64_t fetched_blocks;
	uint64_t requests;     /* HTTP requests, retries included */
	uint64_t hits, misses; /* cache lookups by readers */
	uint64_t collapsed;    /* readers that waited on another's fetch */
	uint64_t failures;
};

/*
 * Where a store gets a block it does not hold: reads block id into out
 * (block_size bytes), verified against id, leaving in comp what came over the
 * wire (its length is counted as fetched). fetch is the source's fetcher, for
 * request counts, or NULL.
 */
struct store_source {
	int (*read_block)(void *ctx, const struct block_id *id, size_t block_size, void *out,
	                  struct buf *comp, struct circ_err *err);
	void *ctx;
	struct fetch *fetch;
};

/* repo and cache stay the caller's and must outlive the store. */
CIRC_MUST_CHECK int store_new(struct repo *repo, struct cache *cache, unsigned workers,
                              struct store **out, struct circ_err *err);
/* The same, from another source (a user's encrypted blocks); ctx outlives the store. */
CIRC_MUST_CHECK int store_new_source(const struct store_source *src, struct cache *cache,
                                     unsigned workers, struct store **out, struct circ_err *err);
void store_free(struct store *s);

/* Reads len bytes at off of block id (block_size bytes long). */
CIRC_MUST_CHECK int store_read(struct store *s, const struct block_id *id, size_t block_size,
                               uint64_t off, size_t len, void *out, struct circ_err *err);
/* Makes sure id is cached, fetching it if needed; counts as no reader hit or miss. */
CIRC_MUST_CHECK int store_ensure(struct store *s, const struct block_id *id, size_t block_size,
                                 struct circ_err *err);
/* Queues a background fetch; dropped if the queue is full or the block is at hand. */
void store_prefetch(struct store *s, const struct block_id *id, size_t block_size);
/* Waits until the background queue is empty and its fetches are done. */
void store_drain(struct store *s);
void store_get_stats(struct store *s, struct store_stats *st);

#endif
