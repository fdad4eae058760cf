/* SPDX-License-Identifier: MIT */
/*
 * manifest_parse on untrusted bytes: must never read outside the input,
 * leak, or accept a manifest that its own encoder would not reproduce.
 */
#include <stdlib.h>
#include <string.h>

#include "vdisk/manifest.h"
#include "tests/fuzz/fuzz.h"
#include "tests/fuzz/keys.h"

static void check_invariants(const struct manifest *m)
{
	uint64_t need = m->image_size / m->block_size + (m->image_size % m->block_size != 0);

	if (!block_size_valid(m->block_size) || m->image_size == 0 || need != m->n_blocks ||
	    m->n_blocks > MANIFEST_MAX_BLOCKS || m->version == 0 || m->parent >= m->version ||
	    !repo_name_valid(m->name) || m->n_prefetch > m->n_blocks)
		abort();
	for (uint32_t i = 0; i < m->n_prefetch; i++)
		if (m->prefetch[i] >= m->n_blocks)
			abort();
}

static void check_same(const struct manifest *a, const struct manifest *b)
{
	if (strcmp(a->name, b->name) != 0 || a->version != b->version || a->parent != b->parent ||
	    a->created != b->created || a->image_size != b->image_size ||
	    a->block_size != b->block_size || a->n_blocks != b->n_blocks ||
	    a->n_prefetch != b->n_prefetch ||
	    memcmp(a->blocks, b->blocks, (size_t)a->n_blocks * sizeof(*a->blocks)) != 0 ||
	    memcmp(a->prefetch, b->prefetch, (size_t)a->n_prefetch * sizeof(*a->prefetch)) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct manifest m, back;
	struct buf enc = { 0 };
	struct circ_err err;

	fuzz_keys_init();
	if (manifest_parse(data, size, &m, &err) == 0) {
		check_invariants(&m);
		/* What parses must survive our own encode, sign and verify unchanged. */
		if (manifest_encode(&m, fuzz_priv, &enc, &err) ||
		    manifest_decode(enc.data, enc.len, fuzz_pub, &back, &err))
			abort();
		check_same(&m, &back);
		manifest_release(&back);
		buf_free(&enc);
	} else if (m.blocks || m.prefetch) {
		abort(); /* a refusal must leave nothing for the caller to free */
	}
	manifest_release(&m);

	/* The key is made at run time, so no input can carry a valid signature. */
	if (manifest_decode(data, size, fuzz_pub, &m, &err) == 0)
		abort();
	manifest_release(&m);
	return 0;
}
