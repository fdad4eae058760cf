/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "vdisk/ukey.h"
#include "vdisk/ulayer.h"
#include "tests/unit/suites.h"
#include "tests/unit/testutil.h"

/* Offsets from docs/format.md, so the tests hold the document to the code. */
#define HDR            ULAYER_HEADER_LEN
#define BODY_FIXED     368
#define ENTRY          68
#define OFF_USER_LEN   24
#define OFF_USER       32
#define OFF_DISK       96
#define OFF_SALT       160
#define B_PARENT       0
#define B_MACHINE      48
#define B_HOST_LEN     80
#define B_HOST         84
#define B_BASE         148
#define B_DISK_SIZE    152
#define B_BLOCK_SIZE   160
#define B_N_ENTRIES    164
#define B_BASE_LEN     168
#define B_BASE_NAME    172
#define B_BASE_VERSION 236
#define B_ORIGIN_LEN   276
#define B_ORIGIN       280

#define BS     65536u
#define BLOCKS 1001u

static struct ukey *new_key(void)
{
	struct ukey *k = NULL;
	struct circ_err err;

	ck_assert_msg(ukey_create(&k, &err) == 0, "%s", err.msg);
	return k;
}

/* Version 3 of alice/laptop over debian v7, branched from old-laptop v9: n entries. */
static void fill_layer(struct ulayer *l, uint32_t n)
{
	memset(l, 0, sizeof(*l));
	snprintf(l->user, sizeof(l->user), "alice");
	snprintf(l->disk, sizeof(l->disk), "laptop");
	l->version = 3;
	l->parent = 2;
	fill_random(l->parent_sha256, 32, 1);
	l->created = 1700000000;
	snprintf(l->machine, sizeof(l->machine), "0123456789abcdef0123456789abcdef");
	snprintf(l->host, sizeof(l->host), "desk-1.example_org");
	l->base = ULAYER_BASE_IMAGE;
	l->disk_size = (uint64_t)(BLOCKS - 1) * BS + 123;
	l->block_size = BS;
	snprintf(l->base_image, sizeof(l->base_image), "debian-12");
	l->base_version = 7;
	fill_random(l->base_manifest_sha256, 32, 2);
	snprintf(l->origin_disk, sizeof(l->origin_disk), "old-laptop");
	l->origin_version = 9;
	l->bytes_uploaded = 12345;
	l->bytes_total = 67890;
	l->n_entries = n;
	l->entries = n ? calloc(n, sizeof(*l->entries)) : NULL;
	for (uint32_t i = 0; i < n; i++) {
		l->entries[i].index = i * 7;
		/* Every fifth a zero block over a non-zero base block. */
		if (i % 5 == 4)
			continue;
		fill_random(l->entries[i].name.b, BLOCK_ID_LEN, 100 + i);
		fill_random(l->entries[i].id.b, BLOCK_ID_LEN, 1000 + i);
	}
}

static void encode(struct ulayer *l, const struct ukey *k, struct buf *out)
{
	struct circ_err err;

	ck_assert_msg(ulayer_encode(l, k, out, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(out->len, HDR + BODY_FIXED + (size_t)ENTRY * l->n_entries + UKEY_TAG_LEN);
}

static void assert_same(const struct ulayer *a, const struct ulayer *b)
{
	ck_assert_str_eq(a->user, b->user);
	ck_assert_str_eq(a->disk, b->disk);
	ck_assert_uint_eq(a->version, b->version);
	ck_assert_mem_eq(a->salt, b->salt, UKEY_SALT_LEN);
	ck_assert_uint_eq(a->parent, b->parent);
	ck_assert_mem_eq(a->parent_sha256, b->parent_sha256, 32);
	ck_assert_uint_eq(a->created, b->created);
	ck_assert_str_eq(a->machine, b->machine);
	ck_assert_str_eq(a->host, b->host);
	ck_assert_int_eq(a->base, b->base);
	ck_assert_uint_eq(a->disk_size, b->disk_size);
	ck_assert_uint_eq(a->block_size, b->block_size);
	ck_assert_str_eq(a->base_image, b->base_image);
	ck_assert_uint_eq(a->base_version, b->base_version);
	ck_assert_mem_eq(a->base_manifest_sha256, b->base_manifest_sha256, 32);
	ck_assert_str_eq(a->origin_disk, b->origin_disk);
	ck_assert_uint_eq(a->origin_version, b->origin_version);
	ck_assert_uint_eq(a->bytes_uploaded, b->bytes_uploaded);
	ck_assert_uint_eq(a->bytes_total, b->bytes_total);
	ck_assert_uint_eq(a->n_entries, b->n_entries);
	if (a->n_entries)
		ck_assert_mem_eq(a->entries, b->entries, a->n_entries * sizeof(*a->entries));
}

static void round_trip(struct ulayer *l)
{
	struct ukey *k = new_key();
	struct buf file = { 0 };
	struct ulayer back, head;
	struct circ_err err;

	encode(l, k, &file);
	ck_assert_msg(ulayer_decode(file.data, file.len, k, &back, &err) == 0, "%s", err.msg);
	assert_same(l, &back);
	/* The server's view: the plain header only, no key. */
	ck_assert_int_eq(ulayer_parse_header(file.data, file.len, &head, &err), 0);
	ck_assert_str_eq(head.user, l->user);
	ck_assert_str_eq(head.disk, l->disk);
	ck_assert_uint_eq(head.version, l->version);
	ck_assert_mem_eq(head.salt, l->salt, UKEY_SALT_LEN);
	ck_assert_ptr_null(head.entries);
	ulayer_release(&back);
	ukey_free(k);
	buf_free(&file);
}

START_TEST(test_round_trip_image)
{
	struct ulayer l;

	fill_layer(&l, 20);
	round_trip(&l);
	ulayer_release(&l);
}
END_TEST

START_TEST(test_round_trip_blank_first)
{
	struct ulayer l;

	fill_layer(&l, 0);
	l.version = 1;
	l.parent = 0;
	memset(l.parent_sha256, 0, 32);
	l.machine[0] = '\0';
	l.host[0] = '\0';
	l.base = ULAYER_BASE_BLANK;
	l.base_image[0] = '\0';
	l.base_version = 0;
	memset(l.base_manifest_sha256, 0, 32);
	l.origin_disk[0] = '\0';
	l.origin_version = 0;
	round_trip(&l);
}
END_TEST

START_TEST(test_round_trip_edges)
{
	struct ulayer l;

	/* Longest names and host, the last block an entry, a 4 MiB block disk. */
	fill_layer(&l, 3);
	memset(l.user, 'u', REPO_NAME_MAX);
	memset(l.disk, 'd', REPO_NAME_MAX);
	memset(l.host, 'h', HEAD_HOST_MAX);
	memset(l.base_image, 'b', REPO_NAME_MAX);
	memset(l.origin_disk, 'o', REPO_NAME_MAX);
	/* Branched before the origin's first check-in. */
	l.origin_version = 0;
	l.block_size = 4u << 20;
	l.disk_size = UINT64_C(1) << 40;
	l.entries[2].index = (uint32_t)(l.disk_size / l.block_size) - 1;
	l.version = UINT64_MAX;
	l.parent = UINT64_MAX - 1;
	round_trip(&l);
	ulayer_release(&l);
}
END_TEST

START_TEST(test_fresh_salt)
{
	struct ukey *k = new_key();
	struct buf a = { 0 }, b = { 0 };
	struct ulayer l;
	uint8_t salt[UKEY_SALT_LEN];

	fill_layer(&l, 2);
	encode(&l, k, &a);
	memcpy(salt, l.salt, sizeof(salt));
	encode(&l, k, &b);
	ck_assert(memcmp(salt, l.salt, sizeof(salt)) != 0);
	ck_assert_mem_eq(b.data + OFF_SALT, l.salt, UKEY_SALT_LEN);
	ck_assert(memcmp(a.data + HDR, b.data + HDR, a.len - HDR) != 0);
	ulayer_release(&l);
	ukey_free(k);
	buf_free(&a);
	buf_free(&b);
}
END_TEST

START_TEST(test_tamper_every_byte)
{
	struct ukey *k = new_key();
	struct buf file = { 0 };
	struct ulayer l, back;
	struct circ_err err;
	uint8_t *copy;

	fill_layer(&l, 5);
	encode(&l, k, &file);
	copy = malloc(file.len);
	for (size_t i = 0; i < file.len; i++) {
		memcpy(copy, file.data, file.len);
		copy[i] ^= (uint8_t)(1u << (i % 8));
		ck_assert_msg(ulayer_decode(copy, file.len, k, &back, &err) == -1,
		              "byte %zu flipped still decodes", i);
		ck_assert_int_eq(err.errnum, EBADMSG);
		ck_assert_ptr_null(back.entries);
	}
	free(copy);
	ulayer_release(&l);
	ukey_free(k);
	buf_free(&file);
}
END_TEST

START_TEST(test_other_key_or_user)
{
	struct ukey *k = new_key(), *other = new_key();
	struct buf file = { 0 };
	struct ulayer l, back;
	struct circ_err err;

	fill_layer(&l, 4);
	encode(&l, k, &file);
	ck_assert_int_eq(ulayer_decode(file.data, file.len, other, &back, &err), -1);
	ck_assert_int_eq(err.errnum, EBADMSG);
	ck_assert_err_has(&err, "does not authenticate");
	/* Relabelled for another user or disk, the header no longer authenticates. */
	memcpy(file.data + OFF_USER, "alicf", 5);
	ck_assert_int_eq(ulayer_parse_header(file.data, file.len, &back, &err), 0);
	ck_assert_int_eq(ulayer_decode(file.data, file.len, k, &back, &err), -1);
	memcpy(file.data + OFF_USER, "alice", 5);
	memcpy(file.data + OFF_DISK, "lapTop", 6);
	ck_assert_int_eq(ulayer_decode(file.data, file.len, k, &back, &err), -1);
	ulayer_release(&l);
	ukey_free(k);
	ukey_free(other);
	buf_free(&file);
}
END_TEST

START_TEST(test_truncated_extended)
{
	static const long deltas[] = { -1, 1, -ENTRY, ENTRY, -16, 16, 2 * ENTRY };
	struct ukey *k = new_key();
	struct buf file = { 0 };
	struct ulayer l, back;
	struct circ_err err;
	uint8_t *copy;

	fill_layer(&l, 3);
	encode(&l, k, &file);
	copy = calloc(1, file.len + 2 * ENTRY);
	memcpy(copy, file.data, file.len);
	for (size_t i = 0; i < sizeof(deltas) / sizeof(deltas[0]); i++) {
		ck_assert_int_eq(
		    ulayer_decode(copy, (size_t)((long)file.len + deltas[i]), k, &back, &err), -1);
		ck_assert_int_eq(err.errnum, EBADMSG);
	}
	for (size_t n = 0; n < HDR + BODY_FIXED + UKEY_TAG_LEN; n += 7)
		ck_assert_int_eq(ulayer_decode(copy, n, k, &back, &err), -1);
	ck_assert_int_eq(ulayer_parse_header(copy, HDR - 1, &back, &err), -1);
	ck_assert_int_eq(ulayer_parse_header(copy, HDR, &back, &err), 0);
	free(copy);
	ulayer_release(&l);
	ukey_free(k);
	buf_free(&file);
}
END_TEST

/* A caller's layer that breaks one rule; false past the last case. */
static bool break_layer(struct ulayer *l, int c)
{
	if (c == 0) /* unsorted */
		l->entries[1].index = 20;
	else if (c == 1) /* duplicate */
		l->entries[2].index = l->entries[1].index;
	else if (c == 2) /* out of range */
		l->entries[4].index = BLOCKS;
	else if (c == 3) /* a zero name with a real ID, and the other way round */
		memset(&l->entries[0].name, 0, sizeof(l->entries[0].name));
	else if (c == 4)
		memset(&l->entries[4].name, 1, sizeof(l->entries[4].name));
	else if (c == 5) {
		l->version = 0;
		l->parent = UINT64_MAX;
	} else if (c == 6)
		l->parent = 1;
	else if (c == 7) { /* a first layer with a parent's hash */
		l->version = 1;
		l->parent = 0;
	} else if (c == 8)
		l->base = ULAYER_BASE_BLANK;
	else if (c == 9)
		l->base_image[0] = '\0';
	else if (c == 10)
		l->base_version = 0;
	else if (c == 11)
		l->base = (enum ulayer_base)2;
	else if (c == 12)
		snprintf(l->host, sizeof(l->host), "a host");
	else if (c == 13)
		snprintf(l->machine, sizeof(l->machine), "0123456789ABCDEF0123456789abcdef");
	else if (c == 14)
		snprintf(l->machine, sizeof(l->machine), "0123");
	else if (c == 15)
		snprintf(l->disk, sizeof(l->disk), "blocks");
	else if (c == 16)
		snprintf(l->user, sizeof(l->user), "..");
	else if (c == 17)
		l->user[0] = '\0';
	else if (c == 18) /* not terminated */
		memset(l->disk, 'd', sizeof(l->disk));
	else if (c == 19)
		l->block_size = 3000;
	else if (c == 20)
		l->disk_size = 0;
	else if (c == 21) /* more entries than blocks */
		l->disk_size = 4 * BS;
	else if (c == 22)
		snprintf(l->origin_disk, sizeof(l->origin_disk), "keys");
	else if (c == 23)
		l->origin_disk[0] = '\0';
	else if (c == 24) { /* 2^32 blocks */
		l->block_size = 4096;
		l->disk_size = UINT64_C(4096) << 32;
	} else if (c == 25) { /* entries counted but missing */
		free(l->entries);
		l->entries = NULL;
	} else
		return false;
	return true;
}

START_TEST(test_encode_refuses)
{
	struct ukey *k = new_key();
	struct buf file = { 0 };
	struct ulayer l;
	struct circ_err err;
	int c = 0;

	for (;; c++) {
		fill_layer(&l, 5);
		if (!break_layer(&l, c))
			break;
		ck_assert_msg(ulayer_encode(&l, k, &file, &err) == -1, "case %d encoded", c);
		ck_assert_int_eq(err.errnum, EINVAL);
		ck_assert_err_has(&err, "encoding: layer: ");
		ck_assert_uint_eq(file.len, 0);
		ulayer_release(&l);
	}
	ck_assert_int_eq(c, 26);
	ulayer_release(&l);
	ukey_free(k);
	buf_free(&file);
}
END_TEST

/*
 * A body its author sealed properly but wrongly: the decoder must not trust
 * the key's holder more than the format. Opens file's body, lets mutate
 * change it, and seals it again under the same header.
 */
static void reseal(struct buf *file, const struct ukey *k, size_t off, unsigned width,
                   uint64_t value)
{
	struct buf body = { 0 }, sealed = { 0 };
	struct circ_err err;

	ck_assert_int_eq(ukey_layer_open(k, file->data + OFF_SALT, file->data, HDR,
	                                 file->data + HDR, file->len - HDR, &body, &err),
	                 0);
	ck_assert_uint_lt(off + width, body.len + 1);
	if (width == 1)
		body.data[off] = (uint8_t)value;
	else if (width == 4)
		put_u32le(body.data + off, (uint32_t)value);
	else
		put_u64le(body.data + off, value);
	ck_assert_int_eq(ukey_layer_seal(k, file->data + OFF_SALT, file->data, HDR, body.data,
	                                 body.len, &sealed, &err),
	                 0);
	file->len = HDR;
	ck_assert_int_eq(buf_append(file, sealed.data, sealed.len), 0);
	buf_free(&body);
	buf_free(&sealed);
}

START_TEST(test_decode_refuses_sealed_nonsense)
{
	static const struct {
		size_t off;
		unsigned width;
		uint64_t value;
	} bad[] = {
		{ B_PARENT, 8, 1 },
		{ B_MACHINE, 1, 'A' },
		{ B_MACHINE + 31, 1, 0 },
		{ B_HOST, 1, ' ' },
		{ B_HOST + 40, 1, 'x' },
		{ B_HOST_LEN, 4, 65 },
		{ B_HOST_LEN, 4, UINT32_MAX },
		{ B_BASE, 4, 2 },
		{ B_DISK_SIZE, 8, 0 },
		{ B_DISK_SIZE, 8, 4 * BS },
		{ B_BLOCK_SIZE, 4, 3000 },
		{ B_BLOCK_SIZE, 4, 0 },
		{ B_N_ENTRIES, 4, 4 },
		{ B_N_ENTRIES, 4, 6 },
		{ B_BASE_LEN, 4, 0 },
		{ B_BASE_LEN, 4, 65 },
		{ B_BASE_NAME, 1, '/' },
		{ B_BASE_NAME + 2, 1, 0 },
		{ B_BASE_VERSION, 8, 0 },
		{ B_ORIGIN_LEN, 4, 0 },
		{ B_ORIGIN, 1, '.' },
		{ B_ORIGIN_LEN, 4, 3 },
		{ BODY_FIXED + ENTRY, 4, 0 },          /* entry 1 repeats entry 0's index */
		{ BODY_FIXED + 2 * ENTRY, 4, 1 },      /* out of order */
		{ BODY_FIXED + 4 * ENTRY, 4, BLOCKS }, /* out of range */
		{ BODY_FIXED + 4 * ENTRY, 4, UINT32_MAX },
		{ BODY_FIXED + 4 + 5, 1, 0 }, /* a name partly zero is fine... */
	};
	struct ukey *k = new_key();
	struct buf file = { 0 }, orig = { 0 };
	struct ulayer l, back;
	struct circ_err err;
	size_t n = sizeof(bad) / sizeof(bad[0]);

	fill_layer(&l, 5);
	encode(&l, k, &orig);
	/* ...so the last case must decode: the resealing itself is sound. */
	ck_assert_int_eq(buf_append(&file, orig.data, orig.len), 0);
	reseal(&file, k, bad[n - 1].off, bad[n - 1].width, bad[n - 1].value);
	ck_assert_msg(ulayer_decode(file.data, file.len, k, &back, &err) == 0, "%s", err.msg);
	ulayer_release(&back);
	for (size_t i = 0; i + 1 < n; i++) {
		buf_reset(&file);
		ck_assert_int_eq(buf_append(&file, orig.data, orig.len), 0);
		reseal(&file, k, bad[i].off, bad[i].width, bad[i].value);
		ck_assert_msg(ulayer_decode(file.data, file.len, k, &back, &err) == -1,
		              "case %zu (offset %zu) decoded", i, bad[i].off);
		ck_assert_int_eq(err.errnum, EBADMSG);
		ck_assert_ptr_null(back.entries);
	}
	/* Entry 4 is a zero block: half of it zero is not. */
	buf_reset(&file);
	ck_assert_int_eq(buf_append(&file, orig.data, orig.len), 0);
	reseal(&file, k, BODY_FIXED + 4 * ENTRY + 4 + 32, 1, 9);
	ck_assert_int_eq(ulayer_decode(file.data, file.len, k, &back, &err), -1);
	ck_assert_err_has(&err, "zero block");
	ulayer_release(&l);
	ukey_free(k);
	buf_free(&file);
	buf_free(&orig);
}
END_TEST

START_TEST(test_parse_header_refuses)
{
	static const struct {
		size_t off;
		unsigned width;
		uint64_t value;
	} bad[] = {
		{ 0, 1, 'X' },
		{ 8, 4, 2 },
		{ 12, 4, 200 },
		{ 16, 8, 0 },
		{ OFF_USER_LEN, 4, 0 },
		{ OFF_USER_LEN, 4, 65 },
		{ OFF_USER_LEN, 4, 4 },
		{ OFF_USER_LEN, 4, 6 },
		{ OFF_USER + 1, 1, 0 },
		{ OFF_USER, 1, '.' },
		{ OFF_USER + 63, 1, 'x' },
		{ 28, 4, 0 },
		{ OFF_DISK + 2, 1, '/' },
		{ OFF_DISK + 63, 1, 1 },
	};
	struct ukey *k = new_key();
	struct buf file = { 0 };
	struct ulayer l, back;
	struct circ_err err;
	uint8_t *copy;

	fill_layer(&l, 1);
	encode(&l, k, &file);
	copy = malloc(file.len);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memcpy(copy, file.data, file.len);
		if (bad[i].width == 1)
			copy[bad[i].off] = (uint8_t)bad[i].value;
		else if (bad[i].width == 4)
			put_u32le(copy + bad[i].off, (uint32_t)bad[i].value);
		else
			put_u64le(copy + bad[i].off, bad[i].value);
		ck_assert_msg(ulayer_parse_header(copy, file.len, &back, &err) == -1,
		              "case %zu parsed", i);
		ck_assert_int_eq(err.errnum, EBADMSG);
		ck_assert_int_eq(ulayer_decode(copy, file.len, k, &back, &err), -1);
	}
	/* A disk named like the user's own directories. */
	memcpy(copy, file.data, file.len);
	put_u32le(copy + 28, 4);
	memcpy(copy + OFF_DISK, "keys\0\0", 6);
	ck_assert_int_eq(ulayer_parse_header(copy, file.len, &back, &err), -1);
	free(copy);
	ulayer_release(&l);
	ukey_free(k);
	buf_free(&file);
}
END_TEST

START_TEST(test_find)
{
	struct ulayer l, empty;

	fill_layer(&l, 50);
	for (uint32_t i = 0; i < 50; i++) {
		const struct ulayer_entry *e = ulayer_find(&l, i * 7);

		ck_assert_ptr_eq(e, &l.entries[i]);
		ck_assert_ptr_null(ulayer_find(&l, i * 7 + 1));
		ck_assert_ptr_null(ulayer_find(&l, i * 7 + 6));
	}
	ck_assert_ptr_null(ulayer_find(&l, 49 * 7 + 7));
	ck_assert_ptr_null(ulayer_find(&l, UINT32_MAX));
	fill_layer(&empty, 0);
	ck_assert_ptr_null(ulayer_find(&empty, 0));
	ulayer_release(&l);
}
END_TEST

/* The largest layer round-trips; one entry more is refused both ways. */
START_TEST(test_max_entries)
{
	struct ukey *k = new_key();
	struct buf file = { 0 };
	struct ulayer l, back;
	struct circ_err err;

	fill_layer(&l, 0);
	l.block_size = 4096;
	l.disk_size = (uint64_t)(ULAYER_MAX_ENTRIES + 1) * 4096;
	l.n_entries = ULAYER_MAX_ENTRIES + 1;
	l.entries = calloc(l.n_entries, sizeof(*l.entries));
	ck_assert_ptr_nonnull(l.entries);
	for (uint32_t i = 0; i < l.n_entries; i++) {
		l.entries[i].index = i;
		memcpy(l.entries[i].name.b, &i, sizeof(i));
		memcpy(l.entries[i].id.b, &i, sizeof(i));
		l.entries[i].id.b[31] = 1;
		l.entries[i].name.b[31] = 1;
	}
	ck_assert_int_eq(ulayer_encode(&l, k, &file, &err), -1);
	ck_assert_int_eq(err.errnum, EINVAL);
	l.n_entries = ULAYER_MAX_ENTRIES;
	encode(&l, k, &file);
	ck_assert_msg(ulayer_decode(file.data, file.len, k, &back, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(back.n_entries, ULAYER_MAX_ENTRIES);
	ck_assert_ptr_eq(ulayer_find(&back, 777777), &back.entries[777777]);
	ulayer_release(&back);
	/* One entry's worth more is refused by its length, before any decryption. */
	ck_assert_int_eq(buf_append_zeros(&file, ENTRY), 0);
	ck_assert_int_eq(ulayer_decode(file.data, file.len, k, &back, &err), -1);
	ck_assert_err_has(&err, "more than");
	ulayer_release(&l);
	ukey_free(k);
	buf_free(&file);
}
END_TEST

Suite *ulayer_suite(void)
{
	Suite *s = suite_create("ulayer");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_round_trip_image);
	tcase_add_test(tc, test_round_trip_blank_first);
	tcase_add_test(tc, test_round_trip_edges);
	tcase_add_test(tc, test_fresh_salt);
	tcase_add_test(tc, test_tamper_every_byte);
	tcase_add_test(tc, test_other_key_or_user);
	tcase_add_test(tc, test_truncated_extended);
	tcase_add_test(tc, test_encode_refuses);
	tcase_add_test(tc, test_decode_refuses_sealed_nonsense);
	tcase_add_test(tc, test_parse_header_refuses);
	tcase_add_test(tc, test_find);
	tcase_add_test(tc, test_max_entries);
	suite_add_tcase(s, tc);
	return s;
}
