/* SPDX-License-Identifier: MIT */
#include "blockfs/block.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <zstd.h>

bool block_id_is_zero(const struct block_id *id)
{
	return block_is_zero(id->b, sizeof(id->b));
}

bool block_id_equal(const struct block_id *a, const struct block_id *b)
{
	return memcmp(a->b, b->b, sizeof(a->b)) == 0;
}

void block_id_compute(struct block_id *id, const void *data, size_t len)
{
	unsigned int n = 0;

	/* One-shot EVP_Digest picks the SHA-NI implementation where present. */
	EVP_Digest(data, len, id->b, &n, EVP_sha256(), NULL);
}

void block_id_to_hex(const struct block_id *id, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < BLOCK_ID_LEN; i++) {
		out[2 * i] = digits[id->b[i] >> 4];
		out[2 * i + 1] = digits[id->b[i] & 15];
	}
	out[BLOCK_ID_HEX_LEN] = '\0';
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int block_id_from_hex(struct block_id *id, const char *hex)
{
	for (size_t i = 0; i < BLOCK_ID_LEN; i++) {
		int hi = hex_value(hex[2 * i]);
		int lo = hi < 0 ? -1 : hex_value(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		id->b[i] = (uint8_t)(hi << 4 | lo);
	}
	return hex[BLOCK_ID_HEX_LEN] == '\0' ? 0 : -EINVAL;
}

bool block_is_zero(const void *data, size_t len)
{
	const uint8_t *p = data;
	size_t i = 0;
	uint64_t acc = 0;

	/* Word-at-a-time; images are mostly zeros so this is on the hot path. */
	for (; i + 8 <= len; i += 8) {
		uint64_t w;

		memcpy(&w, p + i, 8);
		acc |= w;
		if (acc)
			return false;
	}
	for (; i < len; i++)
		acc |= p[i];
	return acc == 0;
}

bool block_size_valid(uint64_t size)
{
	return size >= BLOCK_SIZE_MIN && size <= BLOCK_SIZE_MAX && (size & (size - 1)) == 0;
}

struct block_encoder {
	ZSTD_CCtx *cctx;
	int level;
};

struct block_encoder *block_encoder_new(int level)
{
	struct block_encoder *enc = calloc(1, sizeof(*enc));

	if (!enc)
		return NULL;
	enc->cctx = ZSTD_createCCtx();
	if (!enc->cctx) {
		free(enc);
		return NULL;
	}
	enc->level = level;
	return enc;
}

void block_encoder_free(struct block_encoder *enc)
{
	if (!enc)
		return;
	ZSTD_freeCCtx(enc->cctx);
	free(enc);
}

size_t block_encoded_bound(size_t block_size)
{
	return ZSTD_compressBound(block_size);
}

int block_encode(struct block_encoder *enc, const void *data, size_t len, struct buf *out,
                 struct circ_err *err)
{
	size_t bound = ZSTD_compressBound(len), n;

	buf_reset(out);
	if (buf_reserve(out, bound))
		return err_set(err, ENOMEM, "out of memory compressing a block");
	n = ZSTD_compressCCtx(enc->cctx, out->data, bound, data, len, enc->level);
	if (ZSTD_isError(n))
		return err_set(err, EIO, "zstd: %s", ZSTD_getErrorName(n));
	out->len = n;
	return 0;
}

int block_decode_verified(const struct block_id *id, const void *comp, size_t comp_len, void *out,
                          size_t block_size, struct circ_err *err)
{
	unsigned long long content = ZSTD_getFrameContentSize(comp, comp_len);
	struct block_id got;
	size_t n;

	/* The frame header is untrusted: refuse a declared size we did not ask for. */
	memset(out, 0, block_size);
	if (content == ZSTD_CONTENTSIZE_ERROR)
		return err_set(err, EBADMSG, "block is not a zstd frame");
	if (content != ZSTD_CONTENTSIZE_UNKNOWN && content != block_size)
		return err_set(err, EBADMSG, "block decodes to %llu bytes, expected %zu", content,
		               block_size);
	n = ZSTD_decompress(out, block_size, comp, comp_len);
	if (ZSTD_isError(n))
		return err_set(err, EBADMSG, "block does not decompress: %s", ZSTD_getErrorName(n));
	if (n != block_size)
		return err_set(err, EBADMSG, "block decodes to %zu bytes, expected %zu", n,
		               block_size);
	block_id_compute(&got, out, block_size);
	if (!block_id_equal(&got, id)) {
		memset(out, 0, block_size);
		return err_set(err, EBADMSG, "block content does not match its ID");
	}
	return 0;
}

int block_check_stored(const struct block_id *id, const void *comp, size_t comp_len,
                       struct circ_err *err)
{
	unsigned long long content = ZSTD_getFrameContentSize(comp, comp_len);
	size_t cap, n;
	struct block_id got;
	void *out;

	if (content == ZSTD_CONTENTSIZE_ERROR)
		return err_set(err, EBADMSG, "block is not a zstd frame");
	/* A frame need not declare its size: then it may be up to the largest block. */
	if (content == ZSTD_CONTENTSIZE_UNKNOWN)
		cap = BLOCK_SIZE_MAX;
	else if (content == 0 || content > BLOCK_SIZE_MAX)
		return err_set(err, EBADMSG, "block declares %llu bytes", content);
	else
		cap = (size_t)content;
	out = malloc(cap);
	if (!out)
		return err_set(err, ENOMEM, "out of memory");
	n = ZSTD_decompress(out, cap, comp, comp_len);
	if (ZSTD_isError(n) || n == 0 || (content != ZSTD_CONTENTSIZE_UNKNOWN && n != content)) {
		free(out);
		return err_set(err, EBADMSG, "block does not decompress whole");
	}
	block_id_compute(&got, out, n);
	free(out);
	if (!block_id_equal(&got, id))
		return err_set(err, EBADMSG, "block content does not match its ID");
	return 0;
}
