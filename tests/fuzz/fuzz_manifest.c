/* SPDX-License-Identifier: MIT */
/*
 * manifest_parse on untrusted bytes, formats 1 and 2: must never read outside
 * the input, leak, or accept a manifest that its own encoder would not
 * reproduce (in the same format; a compressed table may be encoded anew, the
 * fields must come back the same).
 */
#include <stdlib.h>
#include <string.h>

#include "vdisk/manifest.h"
#include "tests/fuzz/fuzz.h"
#include "tests/fuzz/keys.h"

static void check_file(const struct manifest_file *f, uint32_t block_size)
{
	if (f->size > MANIFEST_BOOTFILE_MAX ||
	    f->n_blocks != f->size / block_size + (f->size % block_size != 0) ||
	    (f->n_blocks != 0) != (f->blocks != NULL))
		abort();
}

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
	/* Format 2's boot kit and text; format 1 has none of them. */
	if (m->format != 1 && m->format != 2)
		abort();
	check_file(&m->kernel, m->block_size);
	check_file(&m->initrd, m->block_size);
	if (!manifest_cmdline_valid(m->cmdline, strlen(m->cmdline)) ||
	    !manifest_description_valid(m->description, strlen(m->description)))
		abort();
	if (!m->kernel.size && (m->initrd.size || m->cmdline[0]))
		abort();
	if (m->format == 1 &&
	    (m->kernel.size || m->initrd.size || m->cmdline[0] || m->description[0]))
		abort();
}

static void check_same_file(const struct manifest_file *a, const struct manifest_file *b)
{
	if (a->size != b->size || a->n_blocks != b->n_blocks ||
	    (a->n_blocks &&
	     memcmp(a->blocks, b->blocks, (size_t)a->n_blocks * sizeof(*a->blocks)) != 0))
		abort();
}

static void check_same(const struct manifest *a, const struct manifest *b)
{
	if (strcmp(a->name, b->name) != 0 || a->version != b->version || a->parent != b->parent ||
	    a->created != b->created || a->image_size != b->image_size ||
	    a->block_size != b->block_size || a->n_blocks != b->n_blocks ||
	    a->n_prefetch != b->n_prefetch ||
	    memcmp(a->blocks, b->blocks, (size_t)a->n_blocks * sizeof(*a->blocks)) != 0 ||
	    memcmp(a->prefetch, b->prefetch, (size_t)a->n_prefetch * sizeof(*a->prefetch)) != 0 ||
	    a->format != b->format || strcmp(a->cmdline, b->cmdline) != 0 ||
	    strcmp(a->description, b->description) != 0)
		abort();
	check_same_file(&a->kernel, &b->kernel);
	check_same_file(&a->initrd, &b->initrd);
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
	} else if (m.blocks || m.prefetch || m.kernel.blocks || m.initrd.blocks) {
		abort(); /* a refusal must leave nothing for the caller to free */
	}
	manifest_release(&m);

	/* The key is made at run time, so no input can carry a valid signature. */
	if (manifest_decode(data, size, fuzz_pub, &m, &err) == 0)
		abort();
	manifest_release(&m);
	return 0;
}
