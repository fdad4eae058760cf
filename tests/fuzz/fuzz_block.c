/* SPDX-License-Identifier: MIT */
/*
 * block_decode_verified on an untrusted frame: input is a 32-byte block ID
 * followed by the frame. A success must hold content that really hashes to
 * the ID, and nothing may be written past block_size. block_check_stored
 * (a publish's recovery, any size) must agree with every success.
 */
#include <stdlib.h>
#include <string.h>

#include "blockfs/block.h"
#include "tests/fuzz/fuzz.h"

#define FUZZ_BLOCK_SIZE 4096
#define GUARD           64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct block_id id, got;
	struct circ_err err;
	uint8_t *exact, *guarded;
	int r1, r2, r3;

	if (size < BLOCK_ID_LEN)
		return 0;
	memcpy(id.b, data, BLOCK_ID_LEN);
	/*
	 * Two outputs: one of exactly block_size, where ASan sees an overrun by
	 * instrumented code, and one with a guard band, because libzstd is not
	 * instrumented and its stores past the end would go unseen.
	 */
	exact = malloc(FUZZ_BLOCK_SIZE);
	guarded = malloc(FUZZ_BLOCK_SIZE + GUARD);
	if (!exact || !guarded)
		abort();
	memset(guarded + FUZZ_BLOCK_SIZE, 0x5a, GUARD);
	r1 = block_decode_verified(&id, data + BLOCK_ID_LEN, size - BLOCK_ID_LEN, exact,
	                           FUZZ_BLOCK_SIZE, &err);
	r2 = block_decode_verified(&id, data + BLOCK_ID_LEN, size - BLOCK_ID_LEN, guarded,
	                           FUZZ_BLOCK_SIZE, &err);
	if (r1 != r2)
		abort();
	r3 = block_check_stored(&id, data + BLOCK_ID_LEN, size - BLOCK_ID_LEN, &err);
	if (r1 == 0 && r3 != 0)
		abort();
	for (size_t i = 0; i < GUARD; i++)
		if (guarded[FUZZ_BLOCK_SIZE + i] != 0x5a)
			abort();
	if (r1 == 0) {
		block_id_compute(&got, exact, FUZZ_BLOCK_SIZE);
		if (!block_id_equal(&got, &id) || memcmp(exact, guarded, FUZZ_BLOCK_SIZE) != 0)
			abort();
	}
	free(exact);
	free(guarded);
	return 0;
}
