/* SPDX-License-Identifier: MIT */
/*
 * catalog_parse on untrusted bytes: must never read outside the input or
 * leak; what parses must be sorted, valid, and survive our own encode, sign
 * and verify unchanged.
 */
#include <stdlib.h>
#include <string.h>

#include "vdisk/catalog.h"
#include "tests/fuzz/fuzz.h"
#include "tests/fuzz/keys.h"

static void check_entry(const struct catalog_entry *e)
{
	if (!repo_name_valid(e->name) || e->version == 0 || e->image_size == 0 ||
	    e->kernel_size > MANIFEST_BOOTFILE_MAX || e->initrd_size > MANIFEST_BOOTFILE_MAX ||
	    (!e->kernel_size && e->initrd_size) ||
	    !manifest_description_valid(e->description, strlen(e->description)))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct catalog c, back;
	struct buf enc = { 0 };
	struct circ_err err;

	fuzz_keys_init();
	if (catalog_parse(data, size, &c, &err) == 0) {
		for (uint32_t i = 0; i < c.n_entries; i++) {
			check_entry(&c.entries[i]);
			if (i && strcmp(c.entries[i - 1].name, c.entries[i].name) >= 0)
				abort();
		}
		if (catalog_encode(&c, fuzz_priv, &enc, &err) ||
		    catalog_decode(enc.data, enc.len, fuzz_pub, &back, &err))
			abort();
		/* Sorted already, so encoding keeps the order: compare field by field. */
		if (back.n_entries != c.n_entries || back.created != c.created)
			abort();
		for (uint32_t i = 0; i < c.n_entries; i++) {
			const struct catalog_entry *a = &c.entries[i], *b = &back.entries[i];

			if (strcmp(a->name, b->name) != 0 || a->version != b->version ||
			    a->image_size != b->image_size || a->kernel_size != b->kernel_size ||
			    a->initrd_size != b->initrd_size || a->created != b->created ||
			    memcmp(a->key_id, b->key_id, KEY_ID_LEN) != 0 ||
			    strcmp(a->description, b->description) != 0)
				abort();
		}
		/* Byte for byte, but for the signer's ID and the signature. */
		if (enc.len != size || memcmp(enc.data, data, 32) != 0 ||
		    memcmp(enc.data + 64, data + 64, size - 64 - KEY_SIG_LEN) != 0)
			abort();
		catalog_release(&back);
		buf_free(&enc);
	} else if (c.entries) {
		abort(); /* a refusal must leave nothing for the caller to free */
	}
	catalog_release(&c);
	/* The key is made at run time, so no input can carry a valid signature. */
	if (catalog_decode(data, size, fuzz_pub, &c, &err) == 0)
		abort();
	catalog_release(&c);
	return 0;
}
