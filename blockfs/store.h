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

#include "blockfs/block.h"
#include "blockfs/cache.h"
#include "blockfs/err.h"
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

/* repo and cache stay the caller's and must outlive the store. */
int store_new(struct repo *repo, struct cache *cache, unsigned workers, struct store **out,
              struct circ_err *err);
void store_free(struct store *s);

/* Reads len bytes at off of block id (block_size bytes long). */
int store_read(struct store *s, const struct block_id *id, size_t block_size, uint64_t off,
               size_t len, void *out, struct circ_err *err);
/* Makes sure id is cached, fetching it if needed; counts as no reader hit or miss. */
int store_ensure(struct store *s, const struct block_id *id, size_t block_size,
                 struct circ_err *err);
/* Queues a background fetch; dropped if the queue is full or the block is at hand. */
void store_prefetch(struct store *s, const struct block_id *id, size_t block_size);
/* Waits until the background queue is empty and its fetches are done. */
void store_drain(struct store *s);
void store_get_stats(struct store *s, struct store_stats *st);

#endif
