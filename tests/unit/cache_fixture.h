/* SPDX-License-Identifier: MIT */
/* The block cache's tests: blocks derived from their index, the test's cache. */
#ifndef CIRC_TEST_CACHE_FIXTURE_H
#define CIRC_TEST_CACHE_FIXTURE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blockfs/cache.h"

#define BS 4096u
/* A pack of one 4 KiB block: its header page and the block. A bound under 64 KiB gives each block
 * its own. */
#define ONE (2 * BS)

/* Block i's bytes and ID: every test derives a block's content from its index. */
void block_of(uint64_t i, uint8_t *data, size_t bs, struct block_id *id);
/* The test's cache (its scratch directory's "cache"), with a bound of max_bytes. */
struct cache *open_cache(uint64_t max_bytes);
void cache_dir(char out[PATH_MAX]);
void put_block(struct cache *c, uint64_t i);
/* Whether block i reads back from the cache with the right bytes. */
bool hits(struct cache *c, uint64_t i);

#endif
