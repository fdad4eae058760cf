/* SPDX-License-Identifier: MIT */
/*
 * A user's objects on untrusted bytes (the server holds them): a layer's
 * plain header and sealed body, a disk's head, a keys file. Must never read
 * outside the input, leak, run scrypt at a cost the file chose, or accept
 * what the encoders would not reproduce. Inputs are tried as a layer file,
 * as a layer's header and plaintext body, as a head and as a keys file.
 */
#include <stdlib.h>
#include <string.h>

#include "blockfs/objects.h"
#include "vdisk/head.h"
#include "vdisk/ukey.h"
#include "vdisk/ulayer.h"
#include "tests/fuzz/fuzz.h"
#include "tests/fuzz/ukeys.h"

static struct ukey *fuzz_ukey;

static void fuzz_ukey_init(void)
{
	struct circ_err err;

	if (!fuzz_ukey && ukey_import(fuzz_ukey_master, &fuzz_ukey, &err))
		abort();
}

static bool layer_valid(const struct ulayer *l)
{
	uint64_t count;

	if (!block_size_valid(l->block_size) || l->disk_size == 0 || l->version == 0 ||
	    l->parent != l->version - 1 || !repo_name_valid(l->user) ||
	    !repo_user_disk_name_valid(l->disk) || strlen(l->host) > HEAD_HOST_MAX)
		return false;
	if (l->base == ULAYER_BASE_IMAGE ? !repo_name_valid(l->base_image)
	                                 : l->base != ULAYER_BASE_BLANK || l->base_image[0])
		return false;
	count = l->disk_size / l->block_size + (l->disk_size % l->block_size != 0);
	if (count > UINT32_MAX || l->n_entries > ULAYER_MAX_ENTRIES || l->n_entries > count ||
	    (l->n_entries && !l->entries))
		return false;
	for (uint32_t i = 0; i < l->n_entries; i++) {
		const struct ulayer_entry *e = &l->entries[i];

		const struct ulayer_entry *before =
		    i && l->entries[i - 1].index == e->index - 1 ? e - 1 : NULL;

		if (e->index >= count || (i && e->index <= l->entries[i - 1].index) ||
		    block_id_is_zero(&e->name) != block_id_is_zero(&e->id) ||
		    ulayer_find(l, e->index) != e ||
		    (e->index && ulayer_find(l, e->index - 1) != before))
			return false;
	}
	return true;
}

/* Everything but the salt, which every encoding draws afresh. */
static bool layer_same(const struct ulayer *a, const struct ulayer *b)
{
	return strcmp(a->user, b->user) == 0 && strcmp(a->disk, b->disk) == 0 &&
	       a->version == b->version && a->parent == b->parent &&
	       memcmp(a->parent_sha256, b->parent_sha256, 32) == 0 && a->created == b->created &&
	       strcmp(a->machine, b->machine) == 0 && strcmp(a->host, b->host) == 0 &&
	       a->base == b->base && a->disk_size == b->disk_size &&
	       a->block_size == b->block_size && strcmp(a->base_image, b->base_image) == 0 &&
	       a->base_version == b->base_version &&
	       memcmp(a->base_manifest_sha256, b->base_manifest_sha256, 32) == 0 &&
	       strcmp(a->origin_disk, b->origin_disk) == 0 &&
	       a->origin_version == b->origin_version && a->bytes_uploaded == b->bytes_uploaded &&
	       a->bytes_total == b->bytes_total && a->n_entries == b->n_entries &&
	       (a->n_entries == 0 ||
	        memcmp(a->entries, b->entries, a->n_entries * sizeof(*a->entries)) == 0);
}

static void fuzz_layer(const uint8_t *data, size_t size)
{
	struct ulayer l, head, back;
	struct buf enc = { 0 };
	struct circ_err err;

	if (ulayer_parse_header(data, size, &head, &err) == 0 &&
	    (!repo_name_valid(head.user) || !repo_user_disk_name_valid(head.disk) ||
	     head.version == 0 || head.entries))
		abort();
	if (ulayer_decode(data, size, fuzz_ukey, &l, &err) != 0) {
		if (l.entries || l.n_entries)
			abort(); /* a refusal must leave nothing for the caller to free */
		return;
	}
	/* Only what the plain header allows can open, and the two agree. */
	if (!layer_valid(&l) || strcmp(l.user, head.user) != 0 || strcmp(l.disk, head.disk) != 0 ||
	    l.version != head.version || memcmp(l.salt, head.salt, UKEY_SALT_LEN) != 0)
		abort();
	if (ulayer_encode(&l, fuzz_ukey, &enc, &err) ||
	    ulayer_decode(enc.data, enc.len, fuzz_ukey, &back, &err) || enc.len != size ||
	    !layer_same(&l, &back))
		abort();
	ulayer_release(&back);
	ulayer_release(&l);
	buf_free(&enc);
}

/*
 * No input can forge a tag, so the body's parser is reached this way too:
 * the input is a header and a plaintext body, sealed here with the fixed key.
 */
static void fuzz_layer_body(const uint8_t *data, size_t size)
{
	struct buf sealed = { 0 }, file = { 0 };
	struct circ_err err;

	if (size < ULAYER_HEADER_LEN || size > REPO_USER_LAYER_MAX)
		return;
	if (ukey_layer_seal(fuzz_ukey, data + ULAYER_HEADER_LEN - UKEY_SALT_LEN, data,
	                    ULAYER_HEADER_LEN, data + ULAYER_HEADER_LEN, size - ULAYER_HEADER_LEN,
	                    &sealed, &err) ||
	    buf_append(&file, data, ULAYER_HEADER_LEN) ||
	    buf_append(&file, sealed.data, sealed.len))
		abort();
	fuzz_layer(file.data, file.len);
	buf_free(&sealed);
	buf_free(&file);
}

static void fuzz_head(const uint8_t *data, size_t size)
{
	struct user_head h, back;
	struct buf enc = { 0 };
	struct circ_err err;

	if (head_parse(data, size, &h, &err) != 0)
		return;
	if (h.version == 0 || (h.held != (h.token[0] != '\0')) ||
	    (h.held != (h.machine[0] != '\0')))
		abort();
	if (head_encode(&h, &enc, &err) || head_parse(enc.data, enc.len, &back, &err) ||
	    back.version != h.version || memcmp(back.layer_sha256, h.layer_sha256, 32) != 0 ||
	    back.held != h.held || strcmp(back.machine, h.machine) != 0 ||
	    strcmp(back.host, h.host) != 0 || strcmp(back.token, h.token) != 0 ||
	    (h.held && back.since != h.since))
		abort();
	buf_free(&enc);
}

static void fuzz_keys(const uint8_t *data, size_t size)
{
	struct ukey *k = NULL;
	struct circ_err err;

	/* Within bounds scrypt may still take a second: only the cheapest runs here. */
	if (size == UKEY_FILE_LEN && (get_u32le(data + 12) > 10 ||
	                              (uint64_t)get_u32le(data + 16) * get_u32le(data + 20) > 8))
		return;
	if (ukey_unwrap(data, size, FUZZ_UKEY_USER, FUZZ_UKEY_PASS, strlen(FUZZ_UKEY_PASS), &k,
	                &err) == 0) {
		if (size != UKEY_FILE_LEN || !k)
			abort();
	} else if (k) {
		abort();
	}
	ukey_free(k);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_ukey_init();
	fuzz_layer(data, size);
	fuzz_layer_body(data, size);
	fuzz_head(data, size);
	fuzz_keys(data, size);
	return 0;
}
