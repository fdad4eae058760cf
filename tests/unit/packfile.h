/* SPDX-License-Identifier: MIT */
/*
 * Reading a block cache's packs from outside the cache, as a test (or a
 * person with dd) damages or removes one block's record: where each whole
 * record lies. Shared by the unit tests and tests/tools/cachetool.
 */
#ifndef CIRC_TEST_PACKFILE_H
#define CIRC_TEST_PACKFILE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blockfs/block.h"

struct pack_record {
	struct block_id id;
	char path[PATH_MAX]; /* the pack file */
	uint64_t payload_off, slot_off;
	uint32_t len;
};

/* Every whole record in the packs of cache directory dir, in pack then slot order (malloc'd). */
size_t pack_records(const char *dir, struct pack_record **out);
/* The record of id (the first whole one); false if none. */
bool pack_record_find(const char *dir, const struct block_id *id, struct pack_record *out);
/* Removes id's record from dir (zeroes its slot, as a cache that found it damaged does). */
bool pack_record_forget(const char *dir, const struct block_id *id);
/* The bytes of dir's pack files, and (if n) how many there are. */
uint64_t pack_files_bytes(const char *dir, size_t *n);

#endif
