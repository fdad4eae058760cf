/* SPDX-License-Identifier: MIT */
#include "vdisk/ulayer.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "blockfs/objects.h"

/* The plain header (docs/format.md), authenticated as the body's associated data. */
#define H_MAGIC    0
#define H_FORMAT   8
#define H_HLEN     12
#define H_VERSION  16
#define H_USER_LEN 24
#define H_DISK_LEN 28
#define H_USER     32
#define H_DISK     (H_USER + REPO_NAME_MAX)
#define H_SALT     (H_DISK + REPO_NAME_MAX)
_Static_assert(H_SALT + UKEY_SALT_LEN == ULAYER_HEADER_LEN, "the header is exactly 192 bytes");

/* The sealed body's fixed part, then n_entries entries. */
#define B_PARENT         0
#define B_PARENT_SHA     8
#define B_CREATED        40
#define B_MACHINE        48
#define B_HOST_LEN       (B_MACHINE + HEAD_MACHINE_HEX)
#define B_HOST           (B_HOST_LEN + 4)
#define B_BASE           (B_HOST + HEAD_HOST_MAX)
#define B_DISK_SIZE      (B_BASE + 4)
#define B_BLOCK_SIZE     (B_DISK_SIZE + 8)
#define B_N_ENTRIES      (B_BLOCK_SIZE + 4)
#define B_BASE_LEN       (B_N_ENTRIES + 4)
#define B_BASE_NAME      (B_BASE_LEN + 4)
#define B_BASE_VERSION   (B_BASE_NAME + REPO_NAME_MAX)
#define B_BASE_SHA       (B_BASE_VERSION + 8)
#define B_ORIGIN_LEN     (B_BASE_SHA + 32)
#define B_ORIGIN         (B_ORIGIN_LEN + 4)
#define B_ORIGIN_VERSION (B_ORIGIN + REPO_NAME_MAX)
#define B_UPLOADED       (B_ORIGIN_VERSION + 8)
#define B_TOTAL          (B_UPLOADED + 8)
#define BODY_FIXED_LEN   (B_TOTAL + 8)
_Static_assert(BODY_FIXED_LEN == 368, "docs/format.md gives the body's fixed part as 368 bytes");

#define E_INDEX   0
#define E_NAME    4
#define E_ID      (E_NAME + BLOCK_ID_LEN)
#define ENTRY_LEN (E_ID + BLOCK_ID_LEN)

/* The smallest layer file: a header, an empty body and the tag. */
#define FILE_MIN_LEN (ULAYER_HEADER_LEN + BODY_FIXED_LEN + UKEY_TAG_LEN)
_Static_assert(FILE_MIN_LEN + (uint64_t)ENTRY_LEN * ULAYER_MAX_ENTRIES <= REPO_USER_LAYER_MAX,
               "the largest layer fits the server's bound");

static bool all_zero(const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

static bool host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

/* A machine ID as the head writes it: lower-case hex, or "" for none. */
static bool machine_valid(const char *m)
{
	size_t n = strnlen(m, HEAD_MACHINE_HEX + 1);

	if (n == 0)
		return true;
	if (n != HEAD_MACHINE_HEX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((m[i] >= '0' && m[i] <= '9') || (m[i] >= 'a' && m[i] <= 'f')))
			return false;
	return true;
}

static bool host_valid(const char *h)
{
	size_t n = strnlen(h, HEAD_HOST_MAX + 1);

	if (n > HEAD_HOST_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!host_char(h[i]))
			return false;
	return true;
}

/* A name field that must be terminated within its array (an encoder's input is the caller's). */
static bool bounded(const char *s, size_t size)
{
	return strnlen(s, size) < size;
}

static uint64_t block_count(const struct ulayer *l)
{
	return l->disk_size / l->block_size + (l->disk_size % l->block_size != 0);
}

static int check_entries(const struct ulayer *l, uint64_t count, int bad, struct circ_err *err)
{
	if (l->n_entries > ULAYER_MAX_ENTRIES || l->n_entries > count)
		return err_set(err, bad, "layer: %" PRIu32 " entries for %" PRIu64 " blocks",
		               l->n_entries, count);
	if (l->n_entries && !l->entries)
		return err_set(err, bad, "layer: %" PRIu32 " entries but no table", l->n_entries);
	for (uint32_t i = 0; i < l->n_entries; i++) {
		const struct ulayer_entry *e = &l->entries[i];

		if (e->index >= count)
			return err_set(err, bad,
			               "layer: entry %" PRIu32 " names block %" PRIu32
			               " of %" PRIu64,
			               i, e->index, count);
		if (i > 0 && e->index <= l->entries[i - 1].index)
			return err_set(err, bad,
			               "layer: entry %" PRIu32 " (block %" PRIu32
			               ") is out of order or repeated",
			               i, e->index);
		if (block_id_is_zero(&e->name) != block_id_is_zero(&e->id))
			return err_set(err, bad,
			               "layer: block %" PRIu32
			               " is a zero block by one of its name and ID only",
			               e->index);
	}
	return 0;
}

/*
 * Every rule of docs/format.md on the decoded fields; the encoder holds
 * itself to them too (bad: the errnum, EINVAL for a caller's layer).
 */
static int check_layer(const struct ulayer *l, int bad, struct circ_err *err)
{
	if (!bounded(l->user, sizeof(l->user)) || !repo_name_valid(l->user))
		return err_set(err, bad, "layer: invalid user name");
	if (!bounded(l->disk, sizeof(l->disk)) || !repo_user_disk_name_valid(l->disk))
		return err_set(err, bad, "layer: invalid disk name");
	if (l->version == 0 || l->parent != l->version - 1)
		return err_set(err, bad,
		               "layer: version %" PRIu64 " with parent %" PRIu64 " (must be N-1)",
		               l->version, l->parent);
	if ((l->version == 1) != all_zero(l->parent_sha256, sizeof(l->parent_sha256)))
		return err_set(err, bad, "layer: the parent's hash must be zero iff N is 1");
	if (!machine_valid(l->machine))
		return err_set(err, bad, "layer: invalid machine ID");
	if (!host_valid(l->host))
		return err_set(err, bad, "layer: invalid host name");
	if (l->base == ULAYER_BASE_IMAGE) {
		if (!bounded(l->base_image, sizeof(l->base_image)) ||
		    !repo_name_valid(l->base_image) || l->base_version == 0)
			return err_set(err, bad, "layer: invalid base image or version");
	} else if (l->base == ULAYER_BASE_BLANK) {
		if (!bounded(l->base_image, sizeof(l->base_image)) || l->base_image[0] ||
		    l->base_version ||
		    !all_zero(l->base_manifest_sha256, sizeof(l->base_manifest_sha256)))
			return err_set(err, bad, "layer: a blank base names an image");
	} else {
		return err_set(err, bad, "layer: unknown base kind %d", (int)l->base);
	}
	if (!bounded(l->origin_disk, sizeof(l->origin_disk)))
		return err_set(err, bad, "layer: invalid origin disk");
	/* A branch may come from a disk's version 0: made before its first check-in landed. */
	if (l->origin_disk[0] ? !repo_user_disk_name_valid(l->origin_disk) : l->origin_version != 0)
		return err_set(err, bad, "layer: invalid origin disk or version");
	if (!block_size_valid(l->block_size) || l->disk_size == 0)
		return err_set(err, bad, "layer: disk of %" PRIu64 " bytes in blocks of %" PRIu32,
		               l->disk_size, l->block_size);
	if (block_count(l) > UINT32_MAX)
		return err_set(err, bad, "layer: %" PRIu64 " blocks, too many", block_count(l));
	return check_entries(l, block_count(l), bad, err);
}

void ulayer_release(struct ulayer *l)
{
	free(l->entries);
	l->entries = NULL;
	l->n_entries = 0;
}

/* A length-prefixed name in a zero-padded field. */
static void put_name(uint8_t *len_at, uint8_t *field, const char *s)
{
	size_t n = strlen(s);

	put_u32le(len_at, (uint32_t)n);
	memcpy(field, s, n);
}

static void encode_body(const struct ulayer *l, uint8_t *b)
{
	put_u64le(b + B_PARENT, l->parent);
	memcpy(b + B_PARENT_SHA, l->parent_sha256, 32);
	put_u64le(b + B_CREATED, l->created);
	memcpy(b + B_MACHINE, l->machine, strlen(l->machine));
	put_name(b + B_HOST_LEN, b + B_HOST, l->host);
	put_u32le(b + B_BASE, (uint32_t)l->base);
	put_u64le(b + B_DISK_SIZE, l->disk_size);
	put_u32le(b + B_BLOCK_SIZE, l->block_size);
	put_u32le(b + B_N_ENTRIES, l->n_entries);
	put_name(b + B_BASE_LEN, b + B_BASE_NAME, l->base_image);
	put_u64le(b + B_BASE_VERSION, l->base_version);
	memcpy(b + B_BASE_SHA, l->base_manifest_sha256, 32);
	put_name(b + B_ORIGIN_LEN, b + B_ORIGIN, l->origin_disk);
	put_u64le(b + B_ORIGIN_VERSION, l->origin_version);
	put_u64le(b + B_UPLOADED, l->bytes_uploaded);
	put_u64le(b + B_TOTAL, l->bytes_total);
	for (uint32_t i = 0; i < l->n_entries; i++) {
		uint8_t *e = b + BODY_FIXED_LEN + (size_t)i * ENTRY_LEN;

		put_u32le(e + E_INDEX, l->entries[i].index);
		memcpy(e + E_NAME, l->entries[i].name.b, BLOCK_ID_LEN);
		memcpy(e + E_ID, l->entries[i].id.b, BLOCK_ID_LEN);
	}
}

int ulayer_encode(struct ulayer *l, const struct ukey *k, struct buf *out, struct circ_err *err)
{
	uint8_t header[ULAYER_HEADER_LEN] = { 0 };
	struct buf body = { 0 }, sealed = { 0 };
	int ret = -1;

	buf_reset(out);
	if (check_layer(l, EINVAL, err))
		return err_prefix(err, "encoding");
	if (ukey_random(l->salt, sizeof(l->salt), err))
		return -1;
	memcpy(header + H_MAGIC, ULAYER_MAGIC, 8);
	put_u32le(header + H_FORMAT, ULAYER_FORMAT);
	put_u32le(header + H_HLEN, ULAYER_HEADER_LEN);
	put_u64le(header + H_VERSION, l->version);
	put_name(header + H_USER_LEN, header + H_USER, l->user);
	put_name(header + H_DISK_LEN, header + H_DISK, l->disk);
	memcpy(header + H_SALT, l->salt, UKEY_SALT_LEN);
	if (buf_append_zeros(&body, BODY_FIXED_LEN + (size_t)l->n_entries * ENTRY_LEN)) {
		err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	encode_body(l, body.data);
	if (ukey_layer_seal(k, l->salt, header, sizeof(header), body.data, body.len, &sealed, err))
		goto out;
	if (buf_append(out, header, sizeof(header)) || buf_append(out, sealed.data, sealed.len)) {
		buf_reset(out);
		err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	ret = 0;
out:
	if (body.data)
		OPENSSL_cleanse(body.data, body.len);
	buf_free(&body);
	buf_free(&sealed);
	return ret;
}

/*
 * Reads a length-prefixed name from its field: the length bounded by the
 * field, no NUL inside it, zeros after it.
 */
static int get_name(const uint8_t *len_at, const uint8_t *field, size_t size, char *out,
                    const char *what, struct circ_err *err)
{
	uint32_t n = get_u32le(len_at);

	if (n > size || memchr(field, 0, n) || !all_zero(field + n, size - n))
		return err_set(err, EBADMSG, "layer: malformed %s field", what);
	memcpy(out, field, n);
	out[n] = '\0';
	return 0;
}

int ulayer_parse_header(const uint8_t *data, size_t len, struct ulayer *l, struct circ_err *err)
{
	memset(l, 0, sizeof(*l));
	if (len < ULAYER_HEADER_LEN)
		return err_set(err, EBADMSG, "layer: %zu bytes, shorter than its header", len);
	if (memcmp(data + H_MAGIC, ULAYER_MAGIC, 8) != 0)
		return err_set(err, EBADMSG, "layer: bad magic");
	if (get_u32le(data + H_FORMAT) != ULAYER_FORMAT)
		return err_set(err, EBADMSG, "layer: unknown format %" PRIu32,
		               get_u32le(data + H_FORMAT));
	if (get_u32le(data + H_HLEN) != ULAYER_HEADER_LEN)
		return err_set(err, EBADMSG, "layer: header length %" PRIu32,
		               get_u32le(data + H_HLEN));
	l->version = get_u64le(data + H_VERSION);
	if (l->version == 0)
		return err_set(err, EBADMSG, "layer: version 0");
	if (get_name(data + H_USER_LEN, data + H_USER, REPO_NAME_MAX, l->user, "user", err) ||
	    get_name(data + H_DISK_LEN, data + H_DISK, REPO_NAME_MAX, l->disk, "disk", err))
		return -1;
	if (!repo_name_valid(l->user))
		return err_set(err, EBADMSG, "layer: invalid user name");
	if (!repo_user_disk_name_valid(l->disk))
		return err_set(err, EBADMSG, "layer: invalid disk name");
	memcpy(l->salt, data + H_SALT, UKEY_SALT_LEN);
	return 0;
}

static int decode_body(const uint8_t *b, uint32_t n_entries, struct ulayer *l, struct circ_err *err)
{
	l->parent = get_u64le(b + B_PARENT);
	memcpy(l->parent_sha256, b + B_PARENT_SHA, 32);
	l->created = get_u64le(b + B_CREATED);
	if (!all_zero(b + B_MACHINE, HEAD_MACHINE_HEX)) {
		memcpy(l->machine, b + B_MACHINE, HEAD_MACHINE_HEX);
		if (!machine_valid(l->machine))
			return err_set(err, EBADMSG, "layer: invalid machine ID");
	}
	if (get_name(b + B_HOST_LEN, b + B_HOST, HEAD_HOST_MAX, l->host, "host", err))
		return -1;
	switch (get_u32le(b + B_BASE)) {
	case ULAYER_BASE_BLANK:
		l->base = ULAYER_BASE_BLANK;
		break;
	case ULAYER_BASE_IMAGE:
		l->base = ULAYER_BASE_IMAGE;
		break;
	default:
		return err_set(err, EBADMSG, "layer: unknown base kind %" PRIu32,
		               get_u32le(b + B_BASE));
	}
	l->disk_size = get_u64le(b + B_DISK_SIZE);
	l->block_size = get_u32le(b + B_BLOCK_SIZE);
	if (get_u32le(b + B_N_ENTRIES) != n_entries)
		return err_set(err, EBADMSG,
		               "layer: %" PRIu32 " entries in a file sized for %" PRIu32,
		               get_u32le(b + B_N_ENTRIES), n_entries);
	if (get_name(b + B_BASE_LEN, b + B_BASE_NAME, REPO_NAME_MAX, l->base_image, "base image",
	             err))
		return -1;
	l->base_version = get_u64le(b + B_BASE_VERSION);
	memcpy(l->base_manifest_sha256, b + B_BASE_SHA, 32);
	if (get_name(b + B_ORIGIN_LEN, b + B_ORIGIN, REPO_NAME_MAX, l->origin_disk, "origin disk",
	             err))
		return -1;
	l->origin_version = get_u64le(b + B_ORIGIN_VERSION);
	l->bytes_uploaded = get_u64le(b + B_UPLOADED);
	l->bytes_total = get_u64le(b + B_TOTAL);
	if (n_entries == 0)
		return 0;
	l->entries = calloc(n_entries, sizeof(*l->entries));
	if (!l->entries)
		return err_set(err, ENOMEM, "out of memory");
	l->n_entries = n_entries;
	for (uint32_t i = 0; i < n_entries; i++) {
		const uint8_t *e = b + BODY_FIXED_LEN + (size_t)i * ENTRY_LEN;

		l->entries[i].index = get_u32le(e + E_INDEX);
		memcpy(l->entries[i].name.b, e + E_NAME, BLOCK_ID_LEN);
		memcpy(l->entries[i].id.b, e + E_ID, BLOCK_ID_LEN);
	}
	return 0;
}

int ulayer_decode(const uint8_t *data, size_t len, const struct ukey *k, struct ulayer *l,
                  struct circ_err *err)
{
	struct buf body = { 0 };
	size_t rest;
	uint32_t n;
	int ret = -1;

	if (ulayer_parse_header(data, len, l, err))
		return -1;
	/* The file's length alone fixes the entry count: bound it before any decryption. */
	if (len < FILE_MIN_LEN)
		return err_set(err, EBADMSG, "layer: %zu bytes, too short", len);
	rest = len - FILE_MIN_LEN;
	if (rest % ENTRY_LEN)
		return err_set(err, EBADMSG, "layer: %zu bytes, not a whole number of entries",
		               len);
	if (rest / ENTRY_LEN > ULAYER_MAX_ENTRIES)
		return err_set(err, EBADMSG, "layer: %zu bytes, more than %u entries", len,
		               ULAYER_MAX_ENTRIES);
	n = (uint32_t)(rest / ENTRY_LEN);
	if (ukey_layer_open(k, l->salt, data, ULAYER_HEADER_LEN, data + ULAYER_HEADER_LEN,
	                    len - ULAYER_HEADER_LEN, &body, err)) {
		err_prefix(err, "layer %s/%s/%" PRIu64, l->user, l->disk, l->version);
		goto out;
	}
	if (body.len != BODY_FIXED_LEN + (size_t)n * ENTRY_LEN) {
		err_set(err, EBADMSG, "layer: body of %zu bytes", body.len);
		goto out;
	}
	if (decode_body(body.data, n, l, err) || check_layer(l, EBADMSG, err))
		goto out;
	ret = 0;
out:
	if (ret)
		ulayer_release(l);
	if (body.data)
		OPENSSL_cleanse(body.data, body.len);
	buf_free(&body);
	return ret;
}

const struct ulayer_entry *ulayer_find(const struct ulayer *l, uint32_t index)
{
	size_t lo = 0, hi = l->n_entries;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (l->entries[mid].index == index)
			return &l->entries[mid];
		if (l->entries[mid].index < index)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}
