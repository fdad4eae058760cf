/* SPDX-License-Identifier: MIT */
/*
 * Manifest and pointer format 2: the boot kit, the description, the
 * compressed block table, the pointer's manifest size; that format 1 still
 * reads; and writing a boot file out of the block store.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>

#include "vdisk/image.h"
#include "vdisk/manifest.h"
#include "tests/unit/suites.h"
#include "tests/unit/testutil.h"

#include "tests/unit/format2_fixture.h"

/* Header offsets (docs/format.md). */
#define OFF_FORMAT      8
#define OFF_N_BLOCKS    52
#define OFF_KERNEL_SIZE 96
#define OFF_INITRD_SIZE 104
#define OFF_CMDLINE_LEN 112
#define OFF_DESC_LEN    116
#define OFF_TABLE_LEN   120
#define OFF_RESERVED2   124
#define OFF_NAME        MANIFEST_HEADER_LEN
#define OFF_CMDLINE     (OFF_NAME + 8)

void ids(struct manifest_file *f, uint64_t size, uint32_t seed, int zero_every)
{
	struct circ_err err;

	ck_assert_msg(manifest_file_init(f, size, BS, &err) == 0, "%s", err.msg);
	for (uint32_t i = 0; i < f->n_blocks; i++) {
		uint32_t v = seed + i;

		if (zero_every && i % zero_every == 1)
			continue;
		block_id_compute(&f->blocks[i], &v, sizeof(v));
	}
}

/* Every format 2 field set; zero blocks in the table and in the kernel. */
void sample(struct manifest *m)
{
	static const uint32_t prefetch[] = { 9, 0, 3 };
	struct circ_err err;

	ck_assert_msg(manifest_init(m, NAME, IMAGE_SIZE, BS, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(m->format, MANIFEST_FORMAT);
	m->version = 4;
	m->parent = 3;
	m->created = 1700000000;
	for (uint32_t i = 0; i < m->n_blocks; i++)
		if (i % 3 != 1)
			block_id_compute(&m->blocks[i], &i, sizeof(i));
	m->n_prefetch = 3;
	m->prefetch = malloc(sizeof(prefetch));
	ck_assert_ptr_nonnull(m->prefetch);
	memcpy(m->prefetch, prefetch, sizeof(prefetch));
	ids(&m->kernel, KERNEL_SIZE, 1000, 2);
	ids(&m->initrd, INITRD_SIZE, 2000, 0);
	snprintf(m->cmdline, sizeof(m->cmdline), "%s", CMDLINE);
	snprintf(m->description, sizeof(m->description), "%s", DESC);
}

void encode(struct manifest *m, struct buf *out)
{
	struct circ_err err;

	ck_assert_msg(manifest_encode(m, signer, out, &err) == 0, "%s", err.msg);
}

static void encode_sample(struct buf *out)
{
	struct manifest m;

	sample(&m);
	encode(&m, out);
	manifest_release(&m);
}

void assert_file_same(const struct manifest_file *a, const struct manifest_file *b)
{
	ck_assert_uint_eq(a->size, b->size);
	ck_assert_uint_eq(a->n_blocks, b->n_blocks);
	if (a->n_blocks)
		ck_assert_mem_eq(a->blocks, b->blocks, (size_t)a->n_blocks * BLOCK_ID_LEN);
	else
		ck_assert_ptr_null(b->blocks);
}

void assert_same(const struct manifest *a, const struct manifest *b)
{
	ck_assert_str_eq(a->name, b->name);
	ck_assert_uint_eq(a->format, b->format);
	ck_assert_uint_eq(a->version, b->version);
	ck_assert_uint_eq(a->parent, b->parent);
	ck_assert_uint_eq(a->created, b->created);
	ck_assert_uint_eq(a->image_size, b->image_size);
	ck_assert_uint_eq(a->block_size, b->block_size);
	ck_assert_uint_eq(a->n_blocks, b->n_blocks);
	ck_assert_mem_eq(a->blocks, b->blocks, (size_t)a->n_blocks * sizeof(*a->blocks));
	ck_assert_uint_eq(a->n_prefetch, b->n_prefetch);
	if (a->n_prefetch)
		ck_assert_mem_eq(a->prefetch, b->prefetch, a->n_prefetch * sizeof(*a->prefetch));
	ck_assert_mem_eq(a->key_id, b->key_id, KEY_ID_LEN);
	assert_file_same(&a->kernel, &b->kernel);
	assert_file_same(&a->initrd, &b->initrd);
	ck_assert_str_eq(a->cmdline, b->cmdline);
	ck_assert_str_eq(a->description, b->description);
}

/* Nothing allocated after a refusal. */
static void assert_refused(int r, const struct manifest *m)
{
	ck_assert_int_eq(r, -1);
	ck_assert_ptr_null(m->blocks);
	ck_assert_ptr_null(m->prefetch);
	ck_assert_ptr_null(m->kernel.blocks);
	ck_assert_ptr_null(m->initrd.blocks);
}

static void parse_fails(const uint8_t *d, size_t len, const char *why)
{
	struct manifest m;
	struct circ_err err = { 0 };

	assert_refused(manifest_parse(d, len, &m, &err), &m);
	ck_assert_int_eq(err.errnum, EBADMSG);
	if (why)
		ck_assert_err_has(&err, why);
}

static void parse_ok(const uint8_t *d, size_t len)
{
	struct manifest m;
	struct circ_err err;

	ck_assert_msg(manifest_parse(d, len, &m, &err) == 0, "%s", err.msg);
	manifest_release(&m);
}

START_TEST(test_round_trip)
{
	struct manifest m, back;
	struct buf enc = { 0 };
	struct circ_err err;

	sample(&m);
	encode(&m, &enc);
	ck_assert_uint_eq(get_u32le(enc.data + OFF_FORMAT), 2);
	ck_assert_uint_eq(m.format, 2);
	ck_assert_msg(manifest_decode(enc.data, enc.len, signer_pub, &back, &err) == 0, "%s",
	              err.msg);
	assert_same(&m, &back);
	ck_assert_uint_eq(back.kernel.n_blocks, 3);
	ck_assert(block_id_is_zero(&back.kernel.blocks[1]));
	ck_assert_uint_eq(back.initrd.n_blocks, 1);
	manifest_release(&back);
	ck_assert_int_eq(manifest_parse(enc.data, enc.len, &back, &err), 0);
	assert_same(&m, &back);
	manifest_release(&back);
	manifest_release(&m);
	buf_free(&enc);
}
END_TEST

/* No kit; a kernel alone; a description alone; empty strings; one block. */
START_TEST(test_round_trip_shapes)
{
	struct manifest m, back;
	struct buf enc = { 0 };
	struct circ_err err;

	for (int shape = 0; shape < 4; shape++) {
		ck_assert_int_eq(manifest_init(&m, "a", shape == 3 ? 1 : 5 * BS, BS, &err), 0);
		m.version = 1;
		block_id_compute(&m.blocks[0], "x", 1);
		if (shape == 1)
			ids(&m.kernel, 7 * BS, 5, 0);
		if (shape == 2)
			memset(m.description, 'd', MANIFEST_DESC_MAX);
		if (shape == 3) {
			ids(&m.kernel, MANIFEST_BOOTFILE_MAX, 9, 0);
			memset(m.cmdline, '~', MANIFEST_CMDLINE_MAX);
		}
		encode(&m, &enc);
		ck_assert_msg(manifest_decode(enc.data, enc.len, signer_pub, &back, &err) == 0,
		              "shape %d: %s", shape, err.msg);
		assert_same(&m, &back);
		manifest_release(&back);
		manifest_release(&m);
	}
	buf_free(&enc);
}
END_TEST

/* The point of compressing: a 1 GiB image's table of mostly zero IDs is no longer 512 KiB. */
START_TEST(test_table_compressed)
{
	struct manifest m, back;
	struct buf enc = { 0 };
	struct circ_err err;

	ck_assert_int_eq(manifest_init(&m, "big", 1ull << 30, 64u << 10, &err), 0);
	m.version = 1;
	for (uint32_t i = 0; i < m.n_blocks; i += 16)
		block_id_compute(&m.blocks[i], &i, sizeof(i));
	encode(&m, &enc);
	/* 1024 random IDs (32 KiB) cannot shrink; the 15360 zero ones nearly vanish. */
	ck_assert_uint_lt(enc.len, 40u << 10);
	ck_assert_msg(manifest_decode(enc.data, enc.len, signer_pub, &back, &err) == 0, "%s",
	              err.msg);
	assert_same(&m, &back);
	manifest_release(&back);
	m.format = 1;
	encode(&m, &enc);
	ck_assert_uint_gt(enc.len, 512u << 10);
	manifest_release(&m);
	buf_free(&enc);
}
END_TEST

/* Clients read both formats: a format 1 manifest reads as one with no kit. */
START_TEST(test_format1_still_read)
{
	struct manifest m, back;
	struct buf enc = { 0 };
	struct circ_err err;

	ck_assert_int_eq(manifest_init(&m, NAME, IMAGE_SIZE, BS, &err), 0);
	m.version = 2;
	m.parent = 1;
	block_id_compute(&m.blocks[2], "y", 1);
	m.format = 1;
	encode(&m, &enc);
	ck_assert_uint_eq(get_u32le(enc.data + OFF_FORMAT), 1);
	ck_assert_uint_eq(enc.len, MANIFEST_HEADER_LEN + 8 + 10 * BLOCK_ID_LEN + KEY_SIG_LEN);
	ck_assert_msg(manifest_decode(enc.data, enc.len, signer_pub, &back, &err) == 0, "%s",
	              err.msg);
	assert_same(&m, &back);
	ck_assert_uint_eq(back.format, 1);
	ck_assert_uint_eq(back.kernel.size, 0);
	ck_assert_str_eq(back.cmdline, "");
	ck_assert_str_eq(back.description, "");
	manifest_release(&back);
	manifest_release(&m);
	buf_free(&enc);
}
END_TEST

static void encode_fails(struct manifest *m, int errnum, const char *why)
{
	struct buf enc = { 0 };
	struct circ_err err = { 0 };

	ck_assert_msg(manifest_encode(m, signer, &enc, &err) == -1, "accepted (%s)", why);
	ck_assert_int_eq(err.errnum, errnum);
	ck_assert_err_has(&err, why);
	buf_free(&enc);
}

START_TEST(test_encode_refuses)
{
	struct manifest m;
	uint64_t size;

	sample(&m);
	m.format = 1;
	encode_fails(&m, EINVAL, "format 1");
	m.format = 3;
	encode_fails(&m, EINVAL, "format 3");
	m.format = 2;
	m.cmdline[3] = '\n';
	encode_fails(&m, EINVAL, "command line");
	snprintf(m.cmdline, sizeof(m.cmdline), "caf\xc3\xa9");
	encode_fails(&m, EINVAL, "command line");
	snprintf(m.cmdline, sizeof(m.cmdline), "%s", CMDLINE);
	snprintf(m.description, sizeof(m.description), "bell\a");
	encode_fails(&m, EINVAL, "description");
	snprintf(m.description, sizeof(m.description), "\xc3(");
	encode_fails(&m, EINVAL, "description");
	snprintf(m.description, sizeof(m.description), "ok");
	m.kernel.n_blocks--;
	encode_fails(&m, EINVAL, "kernel has 2 blocks");
	m.kernel.n_blocks++;
	size = m.kernel.size;
	m.kernel.size = MANIFEST_BOOTFILE_MAX + 1;
	encode_fails(&m, EFBIG, "kernel");
	m.kernel.size = size;
	manifest_file_release(&m.kernel);
	encode_fails(&m, EINVAL, "needs a kernel");
	manifest_file_release(&m.initrd);
	encode_fails(&m, EINVAL, "needs a kernel");
	m.cmdline[0] = '\0';
	{
		struct buf enc = { 0 };
		struct circ_err err;

		/* A description needs no kernel. */
		ck_assert_msg(manifest_encode(&m, signer, &enc, &err) == 0, "%s", err.msg);
		buf_free(&enc);
	}
	manifest_release(&m);
}
END_TEST

START_TEST(test_text_validation)
{
	static const char *const good_desc[] = {
		"", "plain", "caf\xc3\xa9", "\xe2\x82\xac 5", "\xf0\x9f\x90\xa7", "\xef\xbf\xbd"
	};
	static const char *const bad_desc[] = {
		"tab\there", "nl\n",         "del\x7f",      "\xc3",
		"\xc0\xaf",  "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
		"\xc2\x85",  "\xff",         "\x80",         "\xf0\x9f\x90",
	};

	for (size_t i = 0; i < sizeof(good_desc) / sizeof(good_desc[0]); i++)
		ck_assert_msg(manifest_description_valid(good_desc[i], strlen(good_desc[i])),
		              "refused good %zu", i);
	for (size_t i = 0; i < sizeof(bad_desc) / sizeof(bad_desc[0]); i++)
		ck_assert_msg(!manifest_description_valid(bad_desc[i], strlen(bad_desc[i])),
		              "accepted bad %zu", i);
	ck_assert(!manifest_description_valid("a\0b", 3));
	ck_assert(manifest_cmdline_valid(CMDLINE, strlen(CMDLINE)));
	ck_assert(manifest_cmdline_valid("", 0));
	ck_assert(!manifest_cmdline_valid("a\tb", 3));
	ck_assert(!manifest_cmdline_valid("a\0b", 3));
	ck_assert(!manifest_cmdline_valid("\xc3\xa9", 2));
}
END_TEST

START_TEST(test_decode_flipped_bytes)
{
	struct buf enc = { 0 };
	struct manifest m;
	struct circ_err err;

	encode_sample(&enc);
	for (size_t i = 0; i < enc.len; i++) {
		enc.data[i] ^= 0x41;
		ck_assert_msg(manifest_decode(enc.data, enc.len, signer_pub, &m, &err) == -1,
		              "accepted byte %zu flipped", i);
		assert_refused(-1, &m);
		enc.data[i] ^= 0x41;
	}
	ck_assert_int_eq(manifest_decode(enc.data, enc.len, stranger_pub, &m, &err), -1);
	ck_assert_err_has(&err, "signed by key");
	buf_free(&enc);
}
END_TEST

START_TEST(test_truncated_or_extended)
{
	struct buf enc = { 0 };
	struct manifest m;
	struct circ_err err;
	uint8_t *longer;

	encode_sample(&enc);
	for (size_t n = 0; n < enc.len; n++) {
		/* Exactly n bytes, so that ASan sees a read past the end. */
		uint8_t *cut = malloc(n ? n : 1);

		memcpy(cut, enc.data, n);
		assert_refused(manifest_parse(cut, n, &m, &err), &m);
		assert_refused(manifest_decode(cut, n, signer_pub, &m, &err), &m);
		free(cut);
	}
	longer = calloc(1, enc.len + 8);
	memcpy(longer, enc.data, enc.len);
	for (size_t extra = 1; extra <= 8; extra++)
		assert_refused(manifest_parse(longer, enc.len + extra, &m, &err), &m);
	free(longer);
	buf_free(&enc);
}
END_TEST

START_TEST(test_parse_bounds)
{
	struct buf enc = { 0 };
	uint8_t *d;
	size_t len;

	encode_sample(&enc);
	len = enc.len;
	d = malloc(len);
#define RESET() memcpy(d, enc.data, len)
	RESET();
	parse_ok(d, len);
	put_u32le(d + OFF_FORMAT, 3);
	parse_fails(d, len, "format 3");
	RESET();
	put_u32le(d + OFF_RESERVED2, 1);
	parse_fails(d, len, "reserved");
	RESET();
	put_u64le(d + OFF_KERNEL_SIZE, MANIFEST_BOOTFILE_MAX + 1);
	parse_fails(d, len, "larger than");
	RESET();
	put_u64le(d + OFF_INITRD_SIZE, UINT64_MAX);
	parse_fails(d, len, "larger than");
	RESET();
	put_u64le(d + OFF_KERNEL_SIZE, 0);
	parse_fails(d, len, "no kernel");
	RESET();
	put_u32le(d + OFF_CMDLINE_LEN, MANIFEST_CMDLINE_MAX + 1);
	parse_fails(d, len, "command line length");
	put_u32le(d + OFF_CMDLINE_LEN, UINT32_MAX);
	parse_fails(d, len, "command line length");
	RESET();
	put_u32le(d + OFF_DESC_LEN, MANIFEST_DESC_MAX + 1);
	parse_fails(d, len, "description length");
	RESET();
	put_u32le(d + OFF_TABLE_LEN, 0);
	parse_fails(d, len, "table length");
	put_u32le(d + OFF_TABLE_LEN, UINT32_MAX);
	parse_fails(d, len, "table length");
	RESET();
	/* Lengths consistent with each other but not with the file. */
	put_u64le(d + OFF_KERNEL_SIZE, KERNEL_SIZE + BS);
	parse_fails(d, len, "header says");
	RESET();
	put_u32le(d + OFF_CMDLINE_LEN, (uint32_t)strlen(CMDLINE) + 8);
	parse_fails(d, len, "header says");
	RESET();
	/* The text fields: characters and padding. */
	d[OFF_CMDLINE + 2] = '\t';
	parse_fails(d, len, "command line has invalid");
	RESET();
	d[OFF_CMDLINE + strlen(CMDLINE)] = 'x';
	parse_fails(d, len, "padding after the kernel command line");
	RESET();
	d[OFF_CMDLINE + 40] = 0x1b; /* ESC, inside the description */
	parse_fails(d, len, "description has invalid");
#undef RESET
	free(d);
	buf_free(&enc);
}
END_TEST

/*
 * A format 2 manifest built by hand around a given table section, unsigned
 * (a zero signature): what only manifest_parse sees, as a fuzzer would.
 */
static size_t hand_made(uint8_t *out, uint32_t n_blocks, const void *table, uint32_t table_len)
{
	uint8_t *p = out;

	memset(out, 0, MANIFEST_HEADER_LEN);
	memcpy(out, MANIFEST_MAGIC, 8);
	put_u32le(out + 8, 2);
	put_u32le(out + 12, MANIFEST_HEADER_LEN);
	put_u64le(out + 16, 1);
	put_u64le(out + 40, (uint64_t)n_blocks * BS);
	put_u32le(out + 48, BS);
	put_u32le(out + 52, n_blocks);
	put_u32le(out + 60, 1);
	put_u32le(out + OFF_TABLE_LEN, table_len);
	p += MANIFEST_HEADER_LEN;
	memset(p, 0, 8);
	p[0] = 'h';
	p += 8;
	memcpy(p, table, table_len);
	memset(p + table_len, 0, ((table_len + 7) & ~7u) - table_len);
	p += (table_len + 7) & ~7u;
	memset(p, 0, KEY_SIG_LEN);
	return (size_t)(p - out) + KEY_SIG_LEN;
}

static size_t zframe(void *out, size_t cap, const void *src, size_t len, int checksum, int size)
{
	ZSTD_CCtx *c = ZSTD_createCCtx();
	size_t n;

	ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, checksum);
	ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, size);
	n = ZSTD_compress2(c, out, cap, src, len);
	ck_assert(!ZSTD_isError(n));
	ZSTD_freeCCtx(c);
	return n;
}

/* Compressed tables that must be refused before or while decoding, never trusted. */
START_TEST(test_damaged_tables)
{
	static uint8_t table[16 * BLOCK_ID_LEN], z[4096], d[8192], z2[4096];
	size_t zl, zl2, len;

	for (uint32_t i = 0; i < 16; i += 2)
		block_id_compute((struct block_id *)(table + i * BLOCK_ID_LEN), &i, sizeof(i));
	zl = zframe(z, sizeof(z), table, sizeof(table), 1, 1);
	len = hand_made(d, 16, z, (uint32_t)zl);
	parse_ok(d, len);

	/* A frame of the wrong size, declared or real, for the block count. */
	len = hand_made(d, 15, z, (uint32_t)zl);
	parse_fails(d, len, "not a zstd frame of 480 bytes");
	len = hand_made(d, 17, z, (uint32_t)zl);
	parse_fails(d, len, "not a zstd frame of 544 bytes");
	/* No declared size: refused without decoding. */
	zl2 = zframe(z2, sizeof(z2), table, sizeof(table), 1, 0);
	len = hand_made(d, 16, z2, (uint32_t)zl2);
	parse_fails(d, len, "not a zstd frame");
	/* Two frames, or trailing bytes. */
	memcpy(z2, z, zl);
	memcpy(z2 + zl, z, zl);
	len = hand_made(d, 16, z2, (uint32_t)(2 * zl));
	parse_fails(d, len, "block table");
	z2[zl] = 0;
	len = hand_made(d, 16, z2, (uint32_t)(zl + 1));
	parse_fails(d, len, "exactly one zstd frame");
	/* Truncated. */
	len = hand_made(d, 16, z, (uint32_t)zl - 3);
	parse_fails(d, len, "block table");
	/*
	 * Damaged content: the checksum or the decoder refuses it, or (a bit the
	 * format leaves unused) it decodes to the very same table: never to another.
	 */
	for (size_t i = 0; i < zl; i++) {
		for (int bit = 0; bit < 8; bit++) {
			struct manifest m;
			struct circ_err err;

			memcpy(z2, z, zl);
			z2[i] ^= (uint8_t)(1u << bit);
			len = hand_made(d, 16, z2, (uint32_t)zl);
			if (manifest_parse(d, len, &m, &err) == 0) {
				ck_assert_mem_eq(m.blocks, table, sizeof(table));
				manifest_release(&m);
			} else {
				assert_refused(-1, &m);
			}
		}
	}
	/* A skippable frame, garbage. */
	memset(z2, 0, 16);
	put_u32le(z2, 0x184D2A50);
	put_u32le(z2 + 4, 8);
	len = hand_made(d, 16, z2, 16);
	parse_fails(d, len, "block table");
	memset(z2, 0xa5, 64);
	len = hand_made(d, 16, z2, 64);
	parse_fails(d, len, "block table");
	/* Non-zero padding after the table. */
	len = hand_made(d, 16, z, (uint32_t)zl);
	if (zl % 8) {
		d[MANIFEST_HEADER_LEN + 8 + zl] = 1;
		parse_fails(d, len, "padding after the block table");
	}
}
END_TEST

/* A frame that declares the right size but holds less must not pass as a short table. */
START_TEST(test_table_declares_more_than_it_holds)
{
	static uint8_t table[16 * BLOCK_ID_LEN], z[4096], d[8192];
	size_t zl, len;

	zl = zframe(z, sizeof(z), table, 15 * BLOCK_ID_LEN, 0, 1);
	len = hand_made(d, 15, z, (uint32_t)zl);
	parse_ok(d, len);
	/*
	 * Single segment, no dictionary, a 2-byte content size (stored minus 256)
	 * right after the descriptor: make it declare 16 blocks' worth.
	 */
	ck_assert_uint_eq(z[4] & 0x20, 0x20);
	ck_assert_uint_eq(z[4] & 0x03, 0);
	ck_assert_uint_eq(z[4] >> 6, 1);
	ck_assert_uint_eq(get_u16le(z + 5) + 256, 15 * BLOCK_ID_LEN);
	put_u16le(z + 5, 16 * BLOCK_ID_LEN - 256);
	len = hand_made(d, 16, z, (uint32_t)zl);
	parse_fails(d, len, "block table");
}
END_TEST

/* --- pointer format 2 --- */

Suite *format2_suite(void)
{
	Suite *s = suite_create("format2");
	TCase *tc = tcase_create("manifest");

	tcase_add_scratch(tc);
	tcase_add_checked_fixture(tc, test_keys_setup, test_keys_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_round_trip);
	tcase_add_test(tc, test_round_trip_shapes);
	tcase_add_test(tc, test_table_compressed);
	tcase_add_test(tc, test_format1_still_read);
	tcase_add_test(tc, test_encode_refuses);
	tcase_add_test(tc, test_text_validation);
	tcase_add_test(tc, test_decode_flipped_bytes);
	tcase_add_test(tc, test_truncated_or_extended);
	tcase_add_test(tc, test_parse_bounds);
	tcase_add_test(tc, test_damaged_tables);
	tcase_add_test(tc, test_table_declares_more_than_it_holds);
	suite_add_tcase(s, tc);
	return s;
}
