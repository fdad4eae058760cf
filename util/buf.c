/* SPDX-License-Identifier: MIT */
#include "util/buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int buf_reserve(struct buf *b, size_t extra)
{
	size_t need, cap;
	uint8_t *p;

	if (extra > SIZE_MAX - b->len)
		return -ENOMEM;
	need = b->len + extra;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	p = realloc(b->data, cap);
	if (!p)
		return -ENOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

int buf_append(struct buf *b, const void *data, size_t len)
{
	int r = buf_reserve(b, len);

	if (r)
		return r;
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	return 0;
}

int buf_append_zeros(struct buf *b, size_t len)
{
	int r = buf_reserve(b, len);

	if (r)
		return r;
	if (len)
		memset(b->data + b->len, 0, len);
	b->len += len;
	return 0;
}

int buf_append_u32le(struct buf *b, uint32_t v)
{
	uint8_t p[4];

	put_u32le(p, v);
	return buf_append(b, p, sizeof(p));
}

int buf_append_u64le(struct buf *b, uint64_t v)
{
	uint8_t p[8];

	put_u64le(p, v);
	return buf_append(b, p, sizeof(p));
}

void buf_reset(struct buf *b)
{
	b->len = 0;
}

void buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}
