/* SPDX-License-Identifier: MIT */
/* A growable byte buffer with one owner. */
#ifndef CIRC_BUF_H
#define CIRC_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

struct buf {
	uint8_t *data;
	size_t len;
	size_t cap;
};

/* Ensures room for `extra` more bytes; returns 0 or -ENOMEM. */
CIRC_MUST_CHECK int buf_reserve(struct buf *b, size_t extra);
CIRC_MUST_CHECK int buf_append(struct buf *b, const void *data, size_t len);
CIRC_MUST_CHECK int buf_append_zeros(struct buf *b, size_t len);
CIRC_MUST_CHECK int buf_append_u32le(struct buf *b, uint32_t v);
CIRC_MUST_CHECK int buf_append_u64le(struct buf *b, uint64_t v);
void buf_reset(struct buf *b);
void buf_free(struct buf *b);

static inline uint16_t get_u16le(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static inline void put_u16le(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline uint32_t get_u32le(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t get_u64le(const uint8_t *p)
{
	return (uint64_t)get_u32le(p) | (uint64_t)get_u32le(p + 4) << 32;
}

static inline void put_u32le(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static inline void put_u64le(uint8_t *p, uint64_t v)
{
	put_u32le(p, (uint32_t)v);
	put_u32le(p + 4, (uint32_t)(v >> 32));
}

#endif
