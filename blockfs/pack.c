/* SPDX-License-Identifier: MIT */
#include "blockfs/pack.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

#include "util/buf.h"

#define PACK_MAGIC     "CIRCPAK1"
#define PACK_VERSION   1
#define HDR_CHECK_OFF  56
#define SLOT_CHECK_OFF 56

uint64_t pack_data_off(uint32_t n_slots)
{
	uint64_t end = PACK_HDR_SIZE + (uint64_t)n_slots * PACK_SLOT_SIZE;

	return (end + PACK_ALIGN - 1) / PACK_ALIGN * PACK_ALIGN;
}

int pack_hdr_init(struct pack_hdr *h, uint64_t seq, uint32_t n_slots, uint64_t capacity)
{
	if (n_slots == 0 || n_slots > PACK_SLOTS_MAX || capacity < PACK_ALIGN ||
	    capacity > PACK_DATA_MAX || capacity % PACK_ALIGN)
		return -EINVAL;
	h->seq = seq;
	h->n_slots = n_slots;
	h->data_off = pack_data_off(n_slots);
	h->capacity = capacity;
	return 0;
}

void pack_hdr_encode(const struct pack_hdr *h, uint8_t out[PACK_HDR_SIZE])
{
	memset(out, 0, PACK_HDR_SIZE);
	memcpy(out, PACK_MAGIC, 8);
	put_u32le(out + 8, PACK_VERSION);
	put_u32le(out + 12, PACK_SLOT_SIZE);
	put_u64le(out + 16, h->seq);
	put_u32le(out + 24, h->n_slots);
	put_u64le(out + 32, h->data_off);
	put_u64le(out + 40, h->capacity);
	put_u64le(out + HDR_CHECK_OFF, XXH3_64bits(out, HDR_CHECK_OFF));
}

int pack_hdr_decode(const uint8_t in[PACK_HDR_SIZE], uint64_t seq, struct pack_hdr *h)
{
	struct pack_hdr got;

	if (memcmp(in, PACK_MAGIC, 8) || get_u32le(in + 8) != PACK_VERSION ||
	    get_u32le(in + 12) != PACK_SLOT_SIZE ||
	    get_u64le(in + HDR_CHECK_OFF) != XXH3_64bits(in, HDR_CHECK_OFF))
		return -EBADMSG;
	if (get_u64le(in + 16) != seq ||
	    pack_hdr_init(&got, seq, get_u32le(in + 24), get_u64le(in + 40)) ||
	    got.data_off != get_u64le(in + 32))
		return -EBADMSG;
	*h = got;
	return 0;
}

void pack_slot_encode(const struct pack_slot *s, const struct pack_hdr *h,
                      uint8_t out[PACK_SLOT_SIZE])
{
	memset(out, 0, PACK_SLOT_SIZE);
	memcpy(out, s->id.b, BLOCK_ID_LEN);
	put_u32le(out + 32, s->off);
	put_u32le(out + 36, s->len);
	put_u32le(out + 40, s->block_size);
	out[44] = s->enc;
	put_u64le(out + 48, s->sum);
	/* Seeded with the pack: a slot is valid only in the pack that wrote it. */
	put_u64le(out + SLOT_CHECK_OFF, XXH3_64bits_withSeed(out, SLOT_CHECK_OFF, h->seq));
}

int pack_slot_decode(const uint8_t in[PACK_SLOT_SIZE], const struct pack_hdr *h,
                     struct pack_slot *s)
{
	static const uint8_t zeros[PACK_SLOT_SIZE];
	struct pack_slot got;

	if (memcmp(in, zeros, PACK_SLOT_SIZE) == 0)
		return -ENOENT;
	if (get_u64le(in + SLOT_CHECK_OFF) != XXH3_64bits_withSeed(in, SLOT_CHECK_OFF, h->seq))
		return -EBADMSG;
	memcpy(got.id.b, in, BLOCK_ID_LEN);
	got.off = get_u32le(in + 32);
	got.len = get_u32le(in + 36);
	got.block_size = get_u32le(in + 40);
	got.enc = in[44];
	got.sum = get_u64le(in + 48);
	if (in[45] || in[46] || in[47] || got.enc != PACK_ENC_RAW || got.block_size == 0 ||
	    got.block_size > BLOCK_SIZE_MAX || got.len != got.block_size || got.off % PACK_ALIGN ||
	    got.off > h->capacity || got.len > h->capacity - got.off)
		return -EBADMSG;
	*s = got;
	return 0;
}

uint64_t pack_sum(const void *data, uint64_t len)
{
	return XXH3_64bits(data, len);
}

void pack_name(uint64_t seq, char out[PACK_NAME_LEN + 1])
{
	snprintf(out, PACK_NAME_LEN + 1, "%016" PRIx64 ".pack", seq);
}

int pack_name_parse(const char *name, uint64_t *seq)
{
	uint64_t v = 0;

	if (strlen(name) != PACK_NAME_LEN || strcmp(name + 16, ".pack"))
		return -EINVAL;
	for (int i = 0; i < 16; i++) {
		char ch = name[i];

		if (ch >= '0' && ch <= '9')
			v = v << 4 | (uint64_t)(ch - '0');
		else if (ch >= 'a' && ch <= 'f')
			v = v << 4 | (uint64_t)(ch - 'a' + 10);
		else
			return -EINVAL;
	}
	*seq = v;
	return 0;
}
