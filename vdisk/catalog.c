/* SPDX-License-Identifier: MIT */
#include "vdisk/catalog.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/*
 * Catalog (little-endian): a CATALOG_HEADER_LEN-byte header
 *   0 magic[8] | 8 format u32 | 12 header_len u32 | 16 created u64
 *  24 n_entries u32 | 28 reserved u32 | 32 key_id[32]
 * then n_entries entries, each CATALOG_ENTRY_LEN fixed bytes
 *   0 name_len u32 | 4 desc_len u32 | 8 version u64 | 16 image_size u64
 *  24 kernel_size u64 | 32 initrd_size u64 | 40 created u64 | 48 key_id[32]
 * followed by the name and the description, each padded to 8; then a 64-byte
 * Ed25519 signature over everything before it.
 */

/* The smallest entry: the fixed part and a name of at most 8 bytes. */
#define ENTRY_MIN (CATALOG_ENTRY_LEN + 8)

static size_t pad8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

int catalog_add(struct catalog *c, const struct catalog_entry *e, struct circ_err *err)
{
	struct catalog_entry *p;

	if (c->n_entries >= (CATALOG_MAX_LEN - CATALOG_HEADER_LEN) / ENTRY_MIN)
		return err_set(err, EFBIG, "too many images for one catalog");
	p = realloc(c->entries, ((size_t)c->n_entries + 1) * sizeof(*p));
	if (!p)
		return err_set(err, ENOMEM, "out of memory");
	c->entries = p;
	c->entries[c->n_entries++] = *e;
	return 0;
}

void catalog_release(struct catalog *c)
{
	free(c->entries);
	c->entries = NULL;
	c->n_entries = 0;
}

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct catalog_entry *)a)->name,
	              ((const struct catalog_entry *)b)->name);
}

/* What every entry must be, whether we write it or read it. */
static int check_entry(const struct catalog_entry *e, int errnum, struct circ_err *err)
{
	if (e->version == 0)
		return err_set(err, errnum, "catalog entry '%s': version is zero", e->name);
	if (e->image_size == 0)
		return err_set(err, errnum, "catalog entry '%s': image size is zero", e->name);
	if (e->kernel_size > MANIFEST_BOOTFILE_MAX || e->initrd_size > MANIFEST_BOOTFILE_MAX ||
	    (e->kernel_size == 0 && e->initrd_size))
		return err_set(err, errnum, "catalog entry '%s': bad boot kit sizes", e->name);
	return 0;
}

int catalog_encode(struct catalog *c, const struct key *signer, struct buf *out,
                   struct circ_err *err)
{
	uint8_t h[CATALOG_HEADER_LEN] = { 0 };

	if (c->n_entries)
		qsort(c->entries, c->n_entries, sizeof(*c->entries), entry_cmp);
	key_id(signer, c->key_id);
	memcpy(h, CATALOG_MAGIC, 8);
	put_u32le(h + 8, CATALOG_FORMAT);
	put_u32le(h + 12, CATALOG_HEADER_LEN);
	put_u64le(h + 16, c->created);
	put_u32le(h + 24, c->n_entries);
	memcpy(h + 32, c->key_id, KEY_ID_LEN);
	buf_reset(out);
	if (buf_append(out, h, sizeof(h)))
		return err_set(err, ENOMEM, "out of memory");
	for (uint32_t i = 0; i < c->n_entries; i++) {
		const struct catalog_entry *e = &c->entries[i];
		size_t nlen = strlen(e->name), dlen = strlen(e->description);
		uint8_t f[CATALOG_ENTRY_LEN] = { 0 };

		if (!repo_name_valid(e->name))
			return err_set(err, EINVAL, "invalid image name '%s'", e->name);
		if (i && strcmp(c->entries[i - 1].name, e->name) == 0)
			return err_set(err, EINVAL, "image '%s' listed twice", e->name);
		if (!manifest_description_valid(e->description, dlen))
			return err_set(err, EINVAL, "catalog entry '%s': invalid description",
			               e->name);
		if (check_entry(e, EINVAL, err))
			return -1;
		put_u32le(f, (uint32_t)nlen);
		put_u32le(f + 4, (uint32_t)dlen);
		put_u64le(f + 8, e->version);
		put_u64le(f + 16, e->image_size);
		put_u64le(f + 24, e->kernel_size);
		put_u64le(f + 32, e->initrd_size);
		put_u64le(f + 40, e->created);
		memcpy(f + 48, e->key_id, KEY_ID_LEN);
		if (buf_append(out, f, sizeof(f)) || buf_append(out, e->name, nlen) ||
		    buf_append_zeros(out, pad8(nlen) - nlen) ||
		    buf_append(out, e->description, dlen) ||
		    buf_append_zeros(out, pad8(dlen) - dlen))
			return err_set(err, ENOMEM, "out of memory");
	}
	if (out->len + KEY_SIG_LEN > CATALOG_MAX_LEN)
		return err_set(err, EFBIG, "the catalog of %u images would exceed %u bytes",
		               c->n_entries, CATALOG_MAX_LEN);
	return key_seal(signer, out, err);
}

/* One entry at d, with `left` bytes before the signature; sets *used. */
static int parse_entry(const uint8_t *d, size_t left, uint32_t i, struct catalog_entry *e,
                       size_t *used, struct circ_err *err)
{
	uint32_t nlen, dlen;
	size_t need;

	if (left < CATALOG_ENTRY_LEN)
		return err_set(err, EBADMSG, "catalog entry %u truncated", i);
	nlen = get_u32le(d);
	dlen = get_u32le(d + 4);
	if (nlen == 0 || nlen > REPO_NAME_MAX)
		return err_set(err, EBADMSG, "catalog entry %u: name length %u out of range", i,
		               nlen);
	if (dlen > MANIFEST_DESC_MAX)
		return err_set(err, EBADMSG, "catalog entry %u: description length %u out of range",
		               i, dlen);
	need = CATALOG_ENTRY_LEN + pad8(nlen) + pad8(dlen);
	if (left < need)
		return err_set(err, EBADMSG, "catalog entry %u truncated", i);
	memset(e, 0, sizeof(*e));
	e->version = get_u64le(d + 8);
	e->image_size = get_u64le(d + 16);
	e->kernel_size = get_u64le(d + 24);
	e->initrd_size = get_u64le(d + 32);
	e->created = get_u64le(d + 40);
	memcpy(e->key_id, d + 48, KEY_ID_LEN);
	d += CATALOG_ENTRY_LEN;
	memcpy(e->name, d, nlen);
	/* One encoding per catalog: no NUL inside a field, zeros in its padding. */
	if (strlen(e->name) != nlen || !repo_name_valid(e->name))
		return err_set(err, EBADMSG, "catalog entry %u: invalid image name", i);
	if (!block_is_zero(d + nlen, pad8(nlen) - nlen))
		return err_set(err, EBADMSG, "catalog entry %u: padding is not zero", i);
	d += pad8(nlen);
	if (!manifest_description_valid((const char *)d, dlen))
		return err_set(err, EBADMSG, "catalog entry '%s': invalid description", e->name);
	memcpy(e->description, d, dlen);
	if (!block_is_zero(d + dlen, pad8(dlen) - dlen))
		return err_set(err, EBADMSG, "catalog entry %u: padding is not zero", i);
	if (check_entry(e, EBADMSG, err))
		return -1;
	*used = need;
	return 0;
}

int catalog_parse(const uint8_t *d, size_t len, struct catalog *c, struct circ_err *err)
{
	size_t off = CATALOG_HEADER_LEN, body;
	uint32_t n;

	memset(c, 0, sizeof(*c));
	if (len < CATALOG_HEADER_LEN + KEY_SIG_LEN)
		return err_set(err, EBADMSG, "catalog truncated (%zu bytes)", len);
	if (len > CATALOG_MAX_LEN)
		return err_set(err, EBADMSG, "catalog too large (%zu bytes)", len);
	if (memcmp(d, CATALOG_MAGIC, 8) != 0)
		return err_set(err, EBADMSG, "not a circ catalog (bad magic)");
	if (get_u32le(d + 8) != CATALOG_FORMAT)
		return err_set(err, EBADMSG, "catalog format %u is not supported (this is %u)",
		               get_u32le(d + 8), CATALOG_FORMAT);
	if (get_u32le(d + 12) != CATALOG_HEADER_LEN)
		return err_set(err, EBADMSG, "catalog header length %u is wrong",
		               get_u32le(d + 12));
	if (get_u32le(d + 28) != 0)
		return err_set(err, EBADMSG, "catalog reserved bytes are not zero");
	c->created = get_u64le(d + 16);
	n = get_u32le(d + 24);
	memcpy(c->key_id, d + 32, KEY_ID_LEN);
	body = len - CATALOG_HEADER_LEN - KEY_SIG_LEN;
	/* Bounded by the bytes at hand before anything is allocated. */
	if (n > body / ENTRY_MIN)
		return err_set(err, EBADMSG, "catalog of %zu bytes cannot hold %u entries", len, n);
	if (n) {
		c->entries = calloc(n, sizeof(*c->entries));
		if (!c->entries)
			return err_set(err, ENOMEM, "out of memory");
	}
	for (uint32_t i = 0; i < n; i++) {
		size_t used = 0;

		if (parse_entry(d + off, len - KEY_SIG_LEN - off, i, &c->entries[i], &used, err))
			goto fail;
		if (i && strcmp(c->entries[i - 1].name, c->entries[i].name) >= 0) {
			err_set(err, EBADMSG, "catalog entries are not sorted by name at '%s'",
			        c->entries[i].name);
			goto fail;
		}
		off += used;
		c->n_entries = i + 1;
	}
	if (off != len - KEY_SIG_LEN) {
		err_set(err, EBADMSG, "catalog is %zu bytes, its entries take %zu", len,
		        off + KEY_SIG_LEN);
		goto fail;
	}
	return 0;
fail:
	catalog_release(c);
	return -1;
}

int catalog_decode(const uint8_t *data, size_t len, const struct key *pub, struct catalog *c,
                   struct circ_err *err)
{
	memset(c, 0, sizeof(*c));
	if (len < CATALOG_HEADER_LEN + KEY_SIG_LEN || len > CATALOG_MAX_LEN ||
	    memcmp(data, CATALOG_MAGIC, 8) != 0)
		return catalog_parse(data, len, c, err);
	if (key_open(pub, data, len, 32, "catalog", err))
		return -1;
	return catalog_parse(data, len, c, err);
}
