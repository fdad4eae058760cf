/* SPDX-License-Identifier: MIT */
/*
 * The block cache's pack file: many blocks in one file, so that the cache
 * costs a few inodes, not one per block.
 *
 *   0        header (64 bytes)
 *   64       slot[n_slots], 64 bytes each: one per block, in the order put
 *   data_off payloads, each at a 4 KiB-aligned offset
 *
 * A pack has one writer, which appends a block's payload and then its slot.
 * Every slot carries an XXH3 of itself (seeded with the pack's sequence
 * number) and of its payload, so a slot or payload torn by a power cut, or
 * a slot not yet written (a hole: zeros), is told from a whole one without
 * any sync on the write path. Packs are never rewritten, only removed.
 */
#ifndef CIRC_PACK_H
#define CIRC_PACK_H

#include <stdbool.h>
#include <stdint.h>

#include "blockfs/block.h"

#define PACK_HDR_SIZE  64
#define PACK_SLOT_SIZE 64
#define PACK_ALIGN     4096u
/* Room for a pack of 4 GiB of 4 KiB blocks: any bound a 32-bit offset allows. */
#define PACK_SLOTS_MAX (1u << 20)
#define PACK_DATA_MAX  (UINT32_MAX - PACK_ALIGN + 1)
/* "<16 hex digits>.pack" */
#define PACK_NAME_LEN 21

enum pack_enc {
	PACK_ENC_RAW = 0, /* the block's bytes */
};

struct pack_hdr {
	uint64_t seq;      /* the file's name: unique, never reused */
	uint32_t n_slots;  /* blocks it can hold */
	uint64_t data_off; /* where payloads start */
	uint64_t capacity; /* payload bytes it can hold */
};

struct pack_slot {
	struct block_id id;
	uint32_t off; /* payload's, from data_off */
	uint32_t len; /* stored bytes */
	uint32_t block_size;
	uint8_t enc;
	uint64_t sum; /* XXH3-64 of the stored bytes */
};

/* Where the payloads of a pack of n_slots slots start. */
uint64_t pack_data_off(uint32_t n_slots);
/* Fills h for a new pack; -EINVAL if n_slots or capacity is out of range. */
CIRC_MUST_CHECK int pack_hdr_init(struct pack_hdr *h, uint64_t seq, uint32_t n_slots,
                                  uint64_t capacity);
void pack_hdr_encode(const struct pack_hdr *h, uint8_t out[PACK_HDR_SIZE]);
/* 0 and h filled if in is a whole, consistent header of pack seq; else -EBADMSG. */
CIRC_MUST_CHECK int pack_hdr_decode(const uint8_t in[PACK_HDR_SIZE], uint64_t seq,
                                    struct pack_hdr *h);

void pack_slot_encode(const struct pack_slot *s, const struct pack_hdr *h,
                      uint8_t out[PACK_SLOT_SIZE]);
/*
 * 0 and s filled if in is a whole slot of pack h whose payload lies inside
 * it; -ENOENT for a slot never written (all zeros); else -EBADMSG.
 */
CIRC_MUST_CHECK int pack_slot_decode(const uint8_t in[PACK_SLOT_SIZE], const struct pack_hdr *h,
                                     struct pack_slot *s);
/* XXH3-64 of a payload, as slots carry it. */
uint64_t pack_sum(const void *data, uint64_t len);

/* The file name of pack seq (PACK_NAME_LEN + 1 bytes); parses one back (-EINVAL if not). */
void pack_name(uint64_t seq, char out[PACK_NAME_LEN + 1]);
CIRC_MUST_CHECK int pack_name_parse(const char *name, uint64_t *seq);

#endif
