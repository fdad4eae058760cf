/* SPDX-License-Identifier: MIT */
/*
 * block_decode_verified on frames that are nearly right, which raw bytes
 * seldom are: the input is a recipe. Its content is compressed into a real
 * frame (block_encode) and its ID computed; then the recipe flips bytes of
 * the frame or the ID, cuts the frame or grows it. Unchanged, the block must
 * decode to exactly its content; changed, it must decode to exactly the
 * content or fail, with nothing written past the block.
 *
 * Input: [level & flags u8][n_edits u8][edits: pos u16le, xor u8]...[content]
 */
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "blockfs/block.h"
#include "tests/fuzz/fuzz.h"

#define FUZZ_BLOCK_SIZE 4096
#define GUARD           64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t content[FUZZ_BLOCK_SIZE], out[FUZZ_BLOCK_SIZE + GUARD];
	struct block_encoder *enc;
	struct buf frame = { 0 };
	struct block_id id;
	struct circ_err err;
	size_t n_edits, pos = 2, len;
	bool changed = false;
	uint8_t flags;
	int rc;

	if (size < 2)
		return 0;
	flags = data[0];
	n_edits = data[1];
	if (size < pos + 3 * n_edits)
		return 0;
	/* The content: the rest, repeated to fill the block (a compressible one). */
	len = size - pos - 3 * n_edits;
	for (size_t i = 0; i < FUZZ_BLOCK_SIZE; i++)
		content[i] = len ? data[pos + 3 * n_edits + i % len] : 0;
	enc = block_encoder_new(1 + (flags & 7));
	if (!enc || block_encode(enc, content, FUZZ_BLOCK_SIZE, &frame, &err))
		abort();
	block_id_compute(&id, content, FUZZ_BLOCK_SIZE);
	for (size_t e = 0; e < n_edits; e++) {
		const uint8_t *ed = data + pos + 3 * e;
		size_t at = (size_t)(ed[0] | ed[1] << 8);

		if (ed[2] == 0)
			continue;
		if (at & 0x8000) { /* the ID */
			id.b[at % BLOCK_ID_LEN] ^= ed[2];
		} else if (frame.len) {
			frame.data[at % frame.len] ^= ed[2];
		}
		changed = true;
	}
	if (flags & 0x10 && frame.len) { /* cut */
		frame.len -= 1 + data[0] % frame.len;
		changed = true;
	}
	if (flags & 0x20) { /* grow with garbage */
		if (buf_append(&frame, data, size < 64 ? size : 64))
			abort();
		changed = true;
	}
	memset(out + FUZZ_BLOCK_SIZE, 0x5a, GUARD);
	rc = block_decode_verified(&id, frame.data, frame.len, out, FUZZ_BLOCK_SIZE, &err);
	for (size_t i = 0; i < GUARD; i++)
		if (out[FUZZ_BLOCK_SIZE + i] != 0x5a)
			abort();
	if (!changed && rc != 0)
		abort(); /* a true block must decode */
	if (rc == 0 && memcmp(out, content, FUZZ_BLOCK_SIZE) != 0)
		abort(); /* what verifies is exactly the content */
	buf_free(&frame);
	block_encoder_free(enc);
	return 0;
}
