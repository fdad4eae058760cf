/* SPDX-License-Identifier: MIT */
/*
 * A block cache's pack file on untrusted bytes: the header and slot
 * decoders (with a round-trip oracle and their bounds), then the cache
 * itself opening a directory whose one pack is the input and reading every
 * block a slot names: a block read back always matches its slot's XXH3.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blockfs/cache.h"
#include "blockfs/pack.h"
#include "tests/fuzz/fuzz.h"
#include "tests/fuzz/scratch.h"

static void check_slots(const uint8_t *data, size_t size, const struct pack_hdr *h)
{
	for (size_t at = PACK_HDR_SIZE; at + PACK_SLOT_SIZE <= size; at += PACK_SLOT_SIZE) {
		uint8_t again[PACK_SLOT_SIZE];
		struct pack_slot s;

		if (pack_slot_decode(data + at, h, &s))
			continue;
		if (s.off % PACK_ALIGN || s.len == 0 || s.len > BLOCK_SIZE_MAX ||
		    (uint64_t)s.off + s.len > h->capacity)
			abort();
		pack_slot_encode(&s, h, again);
		if (memcmp(again, data + at, PACK_SLOT_SIZE))
			abort();
	}
}

/* Opens a cache whose one pack is the input and reads what it indexed. */
static void check_cache(const uint8_t *data, size_t size, const struct pack_hdr *h)
{
	char dir[PATH_MAX + 8], packs[PATH_MAX + 16], path[PATH_MAX + 48];
	struct cache *c;
	struct circ_err err;
	uint8_t *back;

	snprintf(dir, sizeof(dir), "%s/cache", fuzz_scratch_dir());
	snprintf(packs, sizeof(packs), "%s/packs", dir);
	mkdir(dir, 0755);
	mkdir(packs, 0755);
	fuzz_write_file("cache/packs/0000000000000000.pack", data, size);
	snprintf(path, sizeof(path), "%s/0000000000000000.pack", packs);
	back = malloc(BLOCK_SIZE_MAX);
	if (!back)
		abort();
	if (cache_open(dir, 0, &c, &err) == 0) {
		for (size_t at = PACK_HDR_SIZE; at + PACK_SLOT_SIZE <= size; at += PACK_SLOT_SIZE) {
			struct pack_slot s;

			if (pack_slot_decode(data + at, h, &s))
				continue;
			if (cache_read(c, &s.id, s.block_size, 0, s.block_size, back) == 0 &&
			    pack_sum(back, s.block_size) != s.sum)
				abort();
		}
		cache_close(c);
	}
	free(back);
	unlink(path);
	rmdir(packs);
	snprintf(path, sizeof(path), "%s/lock", dir);
	unlink(path);
	rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t again[PACK_HDR_SIZE];
	struct pack_hdr h;

	if (size < PACK_HDR_SIZE)
		return 0;
	if (pack_hdr_decode(data, 0, &h) == 0) {
		if (h.n_slots == 0 || h.n_slots > PACK_SLOTS_MAX || h.capacity % PACK_ALIGN ||
		    h.data_off != pack_data_off(h.n_slots) || h.data_off % PACK_ALIGN)
			abort();
		pack_hdr_encode(&h, again);
		if (memcmp(again, data, PACK_HDR_SIZE))
			abort();
		check_slots(data, size, &h);
		/* Files the cache opens: kept small, as the slot region is read whole. */
		if (size <= (1u << 20))
			check_cache(data, size, &h);
	} else {
		struct pack_hdr any;

		if (pack_hdr_init(&any, 0, 16, 1u << 16))
			abort();
		check_slots(data, size, &any);
	}
	return 0;
}
