/* SPDX-License-Identifier: MIT */
/* The signed catalog: round trips, tampering, and the parser's bounds. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vdisk/catalog.h"
#include "tests/unit/suites.h"
#include "tests/unit/testutil.h"

static void entry(struct catalog *c, const char *name, uint64_t version, uint64_t kernel,
                  uint64_t initrd, const char *desc)
{
	struct catalog_entry e = { 0 };
	struct circ_err err;

	snprintf(e.name, sizeof(e.name), "%s", name);
	e.version = version;
	e.image_size = version * 1000003;
	e.kernel_size = kernel;
	e.initrd_size = initrd;
	e.created = 1700000000 + version;
	memset(e.key_id, (int)version, KEY_ID_LEN);
	snprintf(e.description, sizeof(e.description), "%s", desc);
	ck_assert_msg(catalog_add(c, &e, &err) == 0, "%s", err.msg);
}

/* Three images given out of order; one with a kit, one with a kernel only. */
static void sample(struct catalog *c)
{
	memset(c, 0, sizeof(*c));
	c->created = 1712345678;
	entry(c, "zeta", 3, 0, 0, "");
	entry(c, "alpha", 12, 8 << 20, 30 << 20, "Lab image \xe2\x80\x94 \xc3\xa9t\xc3\xa9");
	entry(c, "Kiosk_2.1", 1, 5 << 20, 0, "kiosk");
}

static void encode(struct catalog *c, struct buf *out)
{
	struct circ_err err;

	ck_assert_msg(catalog_encode(c, signer, out, &err) == 0, "%s", err.msg);
}

static void encode_sample(struct buf *out)
{
	struct catalog c;

	sample(&c);
	encode(&c, out);
	catalog_release(&c);
}

static void assert_same(const struct catalog *a, const struct catalog *b)
{
	ck_assert_uint_eq(a->created, b->created);
	ck_assert_uint_eq(a->n_entries, b->n_entries);
	ck_assert_mem_eq(a->key_id, b->key_id, KEY_ID_LEN);
	for (uint32_t i = 0; i < a->n_entries; i++) {
		const struct catalog_entry *x = &a->entries[i], *y = &b->entries[i];

		ck_assert_str_eq(x->name, y->name);
		ck_assert_uint_eq(x->version, y->version);
		ck_assert_uint_eq(x->image_size, y->image_size);
		ck_assert_uint_eq(x->kernel_size, y->kernel_size);
		ck_assert_uint_eq(x->initrd_size, y->initrd_size);
		ck_assert_uint_eq(x->created, y->created);
		ck_assert_mem_eq(x->key_id, y->key_id, KEY_ID_LEN);
		ck_assert_str_eq(x->description, y->description);
	}
}

static void parse_fails(const uint8_t *d, size_t len, const char *why)
{
	struct catalog c;
	struct circ_err err = { 0 };

	ck_assert_int_eq(catalog_parse(d, len, &c, &err), -1);
	ck_assert_int_eq(err.errnum, EBADMSG);
	ck_assert_ptr_null(c.entries);
	if (why)
		ck_assert_err_has(&err, why);
}

START_TEST(test_round_trip)
{
	struct catalog c, back;
	struct buf enc = { 0 };
	uint8_t id[KEY_ID_LEN];
	struct circ_err err;

	sample(&c);
	encode(&c, &enc);
	/* Sorted by name, byte order. */
	ck_assert_str_eq(c.entries[0].name, "Kiosk_2.1");
	ck_assert_str_eq(c.entries[1].name, "alpha");
	ck_assert_str_eq(c.entries[2].name, "zeta");
	key_id(signer, id);
	ck_assert_mem_eq(c.key_id, id, KEY_ID_LEN);
	ck_assert_mem_eq(enc.data, CATALOG_MAGIC, 8);
	ck_assert_msg(catalog_decode(enc.data, enc.len, signer_pub, &back, &err) == 0, "%s",
	              err.msg);
	assert_same(&c, &back);
	catalog_release(&back);
	ck_assert_int_eq(catalog_parse(enc.data, enc.len, &back, &err), 0);
	assert_same(&c, &back);
	catalog_release(&back);
	catalog_release(&c);

	/* An empty repo has an empty catalog. */
	memset(&c, 0, sizeof(c));
	encode(&c, &enc);
	ck_assert_uint_eq(enc.len, CATALOG_HEADER_LEN + KEY_SIG_LEN);
	ck_assert_int_eq(catalog_decode(enc.data, enc.len, signer_pub, &back, &err), 0);
	ck_assert_uint_eq(back.n_entries, 0);
	catalog_release(&back);
	buf_free(&enc);
}
END_TEST

START_TEST(test_tampered)
{
	struct buf enc = { 0 };
	struct catalog c;
	struct circ_err err;

	encode_sample(&enc);
	for (size_t i = 0; i < enc.len; i++) {
		enc.data[i] ^= 0x08;
		ck_assert_msg(catalog_decode(enc.data, enc.len, signer_pub, &c, &err) == -1,
		              "accepted byte %zu flipped", i);
		ck_assert_ptr_null(c.entries);
		enc.data[i] ^= 0x08;
	}
	ck_assert_int_eq(catalog_decode(enc.data, enc.len, stranger_pub, &c, &err), -1);
	ck_assert_int_eq(err.errnum, EPERM);
	ck_assert_err_has(&err, "signed by key");
	enc.data[CATALOG_HEADER_LEN + 8] ^= 1;
	ck_assert_int_eq(catalog_decode(enc.data, enc.len, signer_pub, &c, &err), -1);
	ck_assert_err_has(&err, "does not verify");
	buf_free(&enc);
}
END_TEST

START_TEST(test_encode_refuses)
{
	struct catalog c = { 0 };
	struct buf enc = { 0 };
	struct circ_err err;
	char desc[MANIFEST_DESC_MAX + 1];

	entry(&c, "a", 1, 0, 0, "");
	entry(&c, "a", 2, 0, 0, "");
	ck_assert_int_eq(catalog_encode(&c, signer, &enc, &err), -1);
	ck_assert_err_has(&err, "twice");
	catalog_release(&c);
	entry(&c, "a", 1, 0, 5, "");
	ck_assert_int_eq(catalog_encode(&c, signer, &enc, &err), -1);
	ck_assert_err_has(&err, "boot kit");
	catalog_release(&c);
	entry(&c, "a", 1, 0, 0, "esc\x1b[31m");
	ck_assert_int_eq(catalog_encode(&c, signer, &enc, &err), -1);
	ck_assert_err_has(&err, "description");
	catalog_release(&c);
	entry(&c, "a", 0, 0, 0, "");
	ck_assert_int_eq(catalog_encode(&c, signer, &enc, &err), -1);
	catalog_release(&c);
	entry(&c, "a", 1, 0, 0, "");
	snprintf(c.entries[0].name, sizeof(c.entries[0].name), "../x");
	ck_assert_int_eq(catalog_encode(&c, signer, &enc, &err), -1);
	catalog_release(&c);

	/* Past 1 MiB: refused, not cut. */
	memset(desc, 'd', MANIFEST_DESC_MAX);
	desc[MANIFEST_DESC_MAX] = '\0';
	for (int i = 0; i < 1000; i++) {
		char name[16];

		snprintf(name, sizeof(name), "img%04d", i);
		entry(&c, name, 1, 0, 0, desc);
	}
	ck_assert_int_eq(catalog_encode(&c, signer, &enc, &err), -1);
	ck_assert_int_eq(err.errnum, EFBIG);
	catalog_release(&c);
	buf_free(&enc);
}
END_TEST

START_TEST(test_truncated_or_extended)
{
	struct buf enc = { 0 };
	struct catalog c;
	struct circ_err err;
	uint8_t *longer;

	encode_sample(&enc);
	for (size_t n = 0; n < enc.len; n++) {
		uint8_t *cut = malloc(n ? n : 1);

		memcpy(cut, enc.data, n);
		ck_assert_int_eq(catalog_parse(cut, n, &c, &err), -1);
		ck_assert_ptr_null(c.entries);
		ck_assert_int_eq(catalog_decode(cut, n, signer_pub, &c, &err), -1);
		free(cut);
	}
	longer = calloc(1, enc.len + 16);
	memcpy(longer, enc.data, enc.len);
	for (size_t extra = 1; extra <= 16; extra++)
		ck_assert_int_eq(catalog_parse(longer, enc.len + extra, &c, &err), -1);
	free(longer);
	buf_free(&enc);
}
END_TEST

START_TEST(test_parse_bounds)
{
	struct buf enc = { 0 };
	size_t len, e0 = CATALOG_HEADER_LEN;
	uint8_t *d, *big;

	encode_sample(&enc);
	len = enc.len;
	d = malloc(len);
#define RESET() memcpy(d, enc.data, len)
	RESET();
	d[7] = 'X';
	parse_fails(d, len, "magic");
	RESET();
	put_u32le(d + 8, 2);
	parse_fails(d, len, "format 2");
	RESET();
	put_u32le(d + 12, 72);
	parse_fails(d, len, "header length");
	RESET();
	put_u32le(d + 28, 1);
	parse_fails(d, len, "reserved");
	RESET();
	/* Counts: more than the bytes could hold, fewer or more than there are. */
	put_u32le(d + 24, UINT32_MAX);
	parse_fails(d, len, "cannot hold");
	put_u32le(d + 24, 2);
	parse_fails(d, len, "entries take");
	put_u32le(d + 24, 4);
	parse_fails(d, len, NULL);
	RESET();
	/* The first entry ("Kiosk_2.1", "kiosk"): its lengths, name and padding. */
	put_u32le(d + e0, 0);
	parse_fails(d, len, "name length");
	put_u32le(d + e0, REPO_NAME_MAX + 1);
	parse_fails(d, len, "name length");
	RESET();
	put_u32le(d + e0 + 4, MANIFEST_DESC_MAX + 1);
	parse_fails(d, len, "description length");
	put_u32le(d + e0 + 4, 9);
	parse_fails(d, len, NULL);
	RESET();
	d[e0 + CATALOG_ENTRY_LEN] = '/';
	parse_fails(d, len, "invalid image name");
	RESET();
	d[e0 + CATALOG_ENTRY_LEN + 9] = 'x';
	parse_fails(d, len, "padding");
	RESET();
	d[e0 + CATALOG_ENTRY_LEN + 16] = '\n';
	parse_fails(d, len, "invalid description");
	RESET();
	put_u64le(d + e0 + 8, 0);
	parse_fails(d, len, "version is zero");
	RESET();
	put_u64le(d + e0 + 24, 0);
	put_u64le(d + e0 + 32, 7);
	parse_fails(d, len, "boot kit");
	RESET();
	/* Out of order: the first entry renamed past the second. */
	d[e0 + CATALOG_ENTRY_LEN] = 'z';
	parse_fails(d, len, "not sorted");
#undef RESET
	big = calloc(1, CATALOG_MAX_LEN + 1);
	memcpy(big, enc.data, len);
	parse_fails(big, CATALOG_MAX_LEN + 1, "too large");
	free(big);
	free(d);
	buf_free(&enc);
}
END_TEST

Suite *catalog_suite(void)
{
	Suite *s = suite_create("catalog");
	TCase *tc = tcase_create("core");

	tcase_add_scratch(tc);
	tcase_add_checked_fixture(tc, test_keys_setup, test_keys_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_round_trip);
	tcase_add_test(tc, test_tampered);
	tcase_add_test(tc, test_encode_refuses);
	tcase_add_test(tc, test_truncated_or_extended);
	tcase_add_test(tc, test_parse_bounds);
	suite_add_tcase(s, tc);
	return s;
}
