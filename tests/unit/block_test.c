/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "blockfs/block.h"
#include "tests/unit/suites.h"
#include "tests/unit/testutil.h"

/* sha256sum of 4096 zero bytes, of "abc" and of nothing. */
#define SHA256_ZERO4K "ad7facb2586fc6e966c004d7d1d16b024f5805ff7cb47c7a85dabd8b48892ca7"
#define SHA256_ABC    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define SHA256_EMPTY  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

#define GUARD 64

/*
 * Decodes twice: into exactly block_size bytes (so ASan sees any overrun)
 * and into a buffer with a guard band (so a plain build sees it too).
 */
static int decode_checked(const struct block_id *id, const void *comp, size_t comp_len,
                          size_t block_size, uint8_t *copy_out, struct circ_err *err)
{
	uint8_t *exact = malloc(block_size);
	uint8_t *guarded = malloc(block_size + GUARD);
	struct circ_err err2;
	int r1, r2;

	ck_assert_ptr_nonnull(exact);
	ck_assert_ptr_nonnull(guarded);
	memset(guarded + block_size, 0x5a, GUARD);
	r1 = block_decode_verified(id, comp, comp_len, exact, block_size, err);
	r2 = block_decode_verified(id, comp, comp_len, guarded, block_size, &err2);
	ck_assert_int_eq(r1, r2);
	for (size_t i = 0; i < GUARD; i++)
		ck_assert_msg(guarded[block_size + i] == 0x5a, "decode wrote past block_size");
	if (r1 == 0 && copy_out)
		memcpy(copy_out, exact, block_size);
	if (r1)
		ck_assert_int_eq(err->errnum, EBADMSG);
	free(exact);
	free(guarded);
	return r1;
}

static void encode(const void *data, size_t len, struct buf *out)
{
	struct block_encoder *enc = block_encoder_new(3);
	struct circ_err err;

	ck_assert_ptr_nonnull(enc);
	ck_assert_msg(block_encode(enc, data, len, out, &err) == 0, "%s", err.msg);
	block_encoder_free(enc);
}

/* A zstd frame whose header states no content size. */
static void encode_unknown_size(const void *data, size_t len, struct buf *out)
{
	ZSTD_CCtx *cctx = ZSTD_createCCtx();
	size_t n;

	ck_assert_ptr_nonnull(cctx);
	ck_assert(!ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 0)));
	buf_reset(out);
	ck_assert_int_eq(buf_reserve(out, ZSTD_compressBound(len)), 0);
	n = ZSTD_compress2(cctx, out->data, out->cap, data, len);
	ck_assert(!ZSTD_isError(n));
	out->len = n;
	ZSTD_freeCCtx(cctx);
	ck_assert_uint_eq(ZSTD_getFrameContentSize(out->data, out->len), ZSTD_CONTENTSIZE_UNKNOWN);
}

/*
 * Hand-built frame: a header declaring `declared` bytes (or no size when
 * declared is UINT64_MAX), then n_blocks blocks of `type` (0 raw, 1 RLE)
 * each regenerating block_len bytes. Lets a test lie in the header.
 */
static void craft_frame(struct buf *out, uint64_t declared, unsigned type, size_t block_len,
                        unsigned n_blocks)
{
	static const uint8_t magic[] = { 0x28, 0xb5, 0x2f, 0xfd };
	uint8_t hdr[3];

	buf_reset(out);
	ck_assert_int_eq(buf_append(out, magic, sizeof(magic)), 0);
	if (declared == UINT64_MAX) {
		/* No single segment, no size; window descriptor 2^17. */
		const uint8_t fhd[] = { 0x00, 7 << 3 };

		ck_assert_int_eq(buf_append(out, fhd, sizeof(fhd)), 0);
	} else {
		/* Single segment, 8-byte content size. */
		const uint8_t fhd = 0xe0;

		ck_assert_int_eq(buf_append(out, &fhd, 1), 0);
		ck_assert_int_eq(buf_append_u64le(out, declared), 0);
	}
	for (unsigned i = 0; i < n_blocks; i++) {
		uint32_t h = (uint32_t)block_len << 3 | type << 1 | (i + 1 == n_blocks);

		hdr[0] = (uint8_t)h;
		hdr[1] = (uint8_t)(h >> 8);
		hdr[2] = (uint8_t)(h >> 16);
		ck_assert_int_eq(buf_append(out, hdr, 3), 0);
		if (type == 0) {
			size_t at = out->len;

			ck_assert_int_eq(buf_append_zeros(out, block_len), 0);
			fill_random(out->data + at, block_len, i);
		} else {
			ck_assert_int_eq(buf_append(out, "\xaa", 1), 0);
		}
	}
}

static void id_from_hex(struct block_id *id, const char *hex)
{
	ck_assert_int_eq(block_id_from_hex(id, hex), 0);
}

START_TEST(test_id_sha256_vectors)
{
	static uint8_t zeros[4096];
	struct block_id id, want;

	block_id_compute(&id, zeros, sizeof(zeros));
	id_from_hex(&want, SHA256_ZERO4K);
	ck_assert(block_id_equal(&id, &want));
	block_id_compute(&id, "abc", 3);
	id_from_hex(&want, SHA256_ABC);
	ck_assert(block_id_equal(&id, &want));
	block_id_compute(&id, "", 0);
	id_from_hex(&want, SHA256_EMPTY);
	ck_assert(block_id_equal(&id, &want));
}
END_TEST

START_TEST(test_id_hex_round_trip)
{
	char hex[BLOCK_ID_HEX_LEN + 1];
	struct block_id id, back;

	block_id_compute(&id, "abc", 3);
	memset(hex, 'x', sizeof(hex));
	block_id_to_hex(&id, hex);
	/* Repo paths are built from this text: lowercase, terminated, exact. */
	ck_assert_str_eq(hex, SHA256_ABC);
	ck_assert_int_eq(block_id_from_hex(&back, hex), 0);
	ck_assert(block_id_equal(&id, &back));
	for (int i = 0; i < BLOCK_ID_LEN; i++)
		id.b[i] = (uint8_t)(0xff - i);
	block_id_to_hex(&id, hex);
	ck_assert_int_eq(block_id_from_hex(&back, hex), 0);
	ck_assert_mem_eq(back.b, id.b, BLOCK_ID_LEN);
}
END_TEST

START_TEST(test_id_from_hex_rejects)
{
	static const char junk[] = { 'g', 'G', ' ', '/', '.', '-', 'x', ':', '@', '`' };
	char bad[BLOCK_ID_HEX_LEN + 2];
	struct block_id id;

	ck_assert_int_eq(block_id_from_hex(&id, ""), -EINVAL);
	/* One short, one long. */
	snprintf(bad, sizeof(bad), "%.63s", SHA256_ABC);
	ck_assert_int_eq(block_id_from_hex(&id, bad), -EINVAL);
	snprintf(bad, sizeof(bad), "%s0", SHA256_ABC);
	ck_assert_int_eq(block_id_from_hex(&id, bad), -EINVAL);
	/* One path per block: the uppercase spelling is not another name for it. */
	snprintf(bad, sizeof(bad), "%s", SHA256_ABC);
	bad[0] = 'B';
	ck_assert_int_eq(block_id_from_hex(&id, bad), -EINVAL);
	for (size_t pos = 0; pos < BLOCK_ID_HEX_LEN; pos++) {
		for (size_t j = 0; j < sizeof(junk); j++) {
			snprintf(bad, sizeof(bad), "%s", SHA256_ABC);
			bad[pos] = junk[j];
			ck_assert_msg(block_id_from_hex(&id, bad) == -EINVAL, "accepted '%s'", bad);
		}
	}
}
END_TEST

START_TEST(test_id_zero_and_equal)
{
	static uint8_t zeros[4096];
	struct block_id a = { { 0 } }, b = { { 0 } };

	ck_assert(block_id_is_zero(&a));
	ck_assert(block_id_equal(&a, &b));
	for (int i = 0; i < BLOCK_ID_LEN; i++) {
		b = a;
		b.b[i] = 1;
		ck_assert(!block_id_is_zero(&b));
		ck_assert(!block_id_equal(&a, &b));
	}
	/* The zero marker never collides with a real all-zero block's ID. */
	block_id_compute(&a, zeros, sizeof(zeros));
	ck_assert(!block_id_is_zero(&a));
}
END_TEST

/* The word-at-a-time loop must also see bytes in the tail and at every offset. */
START_TEST(test_block_is_zero)
{
	uint8_t buf[4096 + 9] = { 0 };

	ck_assert(block_is_zero(buf, 0));
	ck_assert(block_is_zero(buf, sizeof(buf)));
	for (size_t len = 1; len <= 40; len++) {
		ck_assert(block_is_zero(buf, len));
		for (size_t pos = 0; pos < len; pos++) {
			buf[pos] = 0x80;
			ck_assert_msg(!block_is_zero(buf, len), "len %zu pos %zu", len, pos);
			/* A byte just past len is not part of the block. */
			ck_assert_msg(pos + 1 == len || block_is_zero(buf + pos + 1, len - pos - 1),
			              "len %zu pos %zu", len, pos);
			buf[pos] = 0;
		}
	}
	buf[4096 + 8] = 1;
	ck_assert(!block_is_zero(buf, sizeof(buf)));
	ck_assert(block_is_zero(buf, 4096 + 8));
	/* Unaligned start. */
	ck_assert(!block_is_zero(buf + 3, 4096 + 6));
	ck_assert(block_is_zero(buf + 3, 4096 + 5));
}
END_TEST

START_TEST(test_block_size_valid)
{
	ck_assert(!block_size_valid(0));
	ck_assert(!block_size_valid(2048));
	ck_assert(!block_size_valid(4095));
	ck_assert(block_size_valid(4096));
	ck_assert(!block_size_valid(4097));
	ck_assert(block_size_valid(8192));
	ck_assert(!block_size_valid(12288));
	ck_assert(block_size_valid(64 << 10));
	ck_assert(!block_size_valid((64 << 10) + 4096));
	ck_assert(block_size_valid(4 << 20));
	ck_assert(!block_size_valid((4 << 20) + 1));
	ck_assert(!block_size_valid(8 << 20));
	ck_assert(!block_size_valid(1ull << 32));
	ck_assert(!block_size_valid((1ull << 32) + 4096));
	ck_assert(!block_size_valid(1ull << 63));
	ck_assert(!block_size_valid(UINT64_MAX));
	ck_assert(block_size_valid(BLOCK_SIZE_DEFAULT));
}
END_TEST

START_TEST(test_encode_decode_round_trip)
{
	static const int levels[] = { 1, 3, 19 };
	static const size_t sizes[] = { 4096, 64 << 10, 4 << 20 };
	struct buf comp = { 0 };

	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		size_t bs = sizes[s];
		uint8_t *data = malloc(bs), *back = malloc(bs);
		struct block_id id;
		struct circ_err err;

		ck_assert_ptr_nonnull(data);
		ck_assert_ptr_nonnull(back);
		/* Half random, half runs: compressible yet not trivial. */
		fill_random(data, bs / 2, s);
		memset(data + bs / 2, 'r', bs / 2);
		block_id_compute(&id, data, bs);
		for (size_t l = 0; l < sizeof(levels) / sizeof(levels[0]); l++) {
			struct block_encoder *enc = block_encoder_new(levels[l]);

			if (bs > (64 << 10) && levels[l] > 3) {
				block_encoder_free(enc);
				continue; /* slow and adds nothing */
			}
			ck_assert_ptr_nonnull(enc);
			ck_assert_int_eq(block_encode(enc, data, bs, &comp, &err), 0);
			ck_assert_uint_lt(comp.len, bs);
			ck_assert_uint_le(comp.len, block_encoded_bound(bs));
			memset(back, 0, bs);
			ck_assert_msg(decode_checked(&id, comp.data, comp.len, bs, back, &err) == 0,
			              "%s", err.msg);
			ck_assert_mem_eq(back, data, bs);
			block_encoder_free(enc);
		}
		free(data);
		free(back);
	}
	buf_free(&comp);
}
END_TEST

/* Stored objects larger than the bound are refused as corrupt: real ones never are. */
START_TEST(test_encoded_bound_holds_incompressible)
{
	static uint8_t data[64 << 10];
	struct block_encoder *enc = block_encoder_new(19);
	struct buf comp = { 0 };
	struct circ_err err;

	ck_assert_ptr_nonnull(enc);
	fill_random(data, sizeof(data), 99);
	ck_assert_int_eq(block_encode(enc, data, sizeof(data), &comp, &err), 0);
	ck_assert_uint_le(comp.len, block_encoded_bound(sizeof(data)));
	ck_assert_uint_ge(block_encoded_bound(sizeof(data)), sizeof(data));
	block_encoder_free(enc);
	buf_free(&comp);
}
END_TEST

/* One encoder serves a whole publish run: each call replaces out. */
START_TEST(test_encoder_reuse_replaces_output)
{
	static uint8_t a[4096], b[4096];
	struct block_encoder *enc = block_encoder_new(3);
	struct buf comp = { 0 };
	struct block_id id_b;
	struct circ_err err;

	fill_random(a, sizeof(a), 1);
	fill_random(b, sizeof(b) / 4, 2);
	block_id_compute(&id_b, b, sizeof(b));
	ck_assert_int_eq(block_encode(enc, a, sizeof(a), &comp, &err), 0);
	ck_assert_int_eq(block_encode(enc, b, sizeof(b), &comp, &err), 0);
	ck_assert_int_eq(decode_checked(&id_b, comp.data, comp.len, sizeof(b), NULL, &err), 0);
	block_encoder_free(enc);
	buf_free(&comp);
}
END_TEST

START_TEST(test_decode_wrong_size)
{
	static uint8_t data[8192];
	struct buf comp = { 0 };
	struct block_id id;
	struct circ_err err;

	fill_random(data, sizeof(data), 5);
	/* A 4 KiB block read as an 8 KiB one. */
	block_id_compute(&id, data, 4096);
	encode(data, 4096, &comp);
	ck_assert_int_eq(decode_checked(&id, comp.data, comp.len, 8192, NULL, &err), -1);
	ck_assert_err_has(&err, "4096");
	/* An 8 KiB frame offered for a 4 KiB block must not spill. */
	block_id_compute(&id, data, 8192);
	encode(data, 8192, &comp);
	ck_assert_int_eq(decode_checked(&id, comp.data, comp.len, 4096, NULL, &err), -1);
	/* The same without a size in the header: only decoding can tell. */
	encode_unknown_size(data, 8192, &comp);
	ck_assert_int_eq(decode_checked(&id, comp.data, comp.len, 4096, NULL, &err), -1);
	block_id_compute(&id, data, 2048);
	encode_unknown_size(data, 2048, &comp);
	ck_assert_int_eq(decode_checked(&id, comp.data, comp.len, 4096, NULL, &err), -1);
	ck_assert_err_has(&err, "2048");
	buf_free(&comp);
}
END_TEST

/* A frame without a declared size is still fine when it is the right block. */
START_TEST(test_decode_unknown_size_ok)
{
	static uint8_t data[4096], back[4096];
	struct buf comp = { 0 };
	struct block_id id;
	struct circ_err err;

	fill_random(data, sizeof(data), 6);
	block_id_compute(&id, data, sizeof(data));
	encode_unknown_size(data, sizeof(data), &comp);
	ck_assert_int_eq(decode_checked(&id, comp.data, comp.len, sizeof(data), back, &err), 0);
	ck_assert_mem_eq(back, data, sizeof(data));
	buf_free(&comp);
}
END_TEST

START_TEST(test_decode_garbage)
{
	static uint8_t junk[5000];
	struct buf comp = { 0 };
	struct block_id id;
	struct circ_err err;

	block_id_compute(&id, junk, 4096);
	ck_assert_int_eq(decode_checked(&id, junk, 0, 4096, NULL, &err), -1);
	ck_assert_int_eq(decode_checked(&id, junk, 3, 4096, NULL, &err), -1);
	for (uint64_t seed = 0; seed < 64; seed++) {
		fill_random(junk, sizeof(junk), seed);
		ck_assert_int_eq(decode_checked(&id, junk, 1 + seed * 70, 4096, NULL, &err), -1);
	}
	/* Right magic, random rest. */
	fill_random(junk, sizeof(junk), 1000);
	memcpy(junk, "\x28\xb5\x2f\xfd", 4);
	ck_assert_int_eq(decode_checked(&id, junk, sizeof(junk), 4096, NULL, &err), -1);
	/* Every truncation of a good frame. */
	encode(junk + 8, 4096, &comp);
	block_id_compute(&id, junk + 8, 4096);
	ck_assert_int_eq(decode_checked(&id, comp.data, comp.len, 4096, NULL, &err), 0);
	for (size_t n = 0; n < comp.len; n++)
		ck_assert_msg(decode_checked(&id, comp.data, n, 4096, NULL, &err) == -1,
		              "accepted a frame cut to %zu of %zu bytes", n, comp.len);
	buf_free(&comp);
}
END_TEST

START_TEST(test_decode_wrong_id)
{
	static uint8_t data[4096], back[4096];
	struct buf comp = { 0 };
	struct block_id id;
	struct circ_err err;

	fill_random(data, sizeof(data), 7);
	encode(data, sizeof(data), &comp);
	block_id_compute(&id, data, sizeof(data));
	id.b[31] ^= 1;
	ck_assert_int_eq(decode_checked(&id, comp.data, comp.len, sizeof(data), NULL, &err), -1);
	ck_assert_err_has(&err, "does not match");
	memset(&id, 0, sizeof(id));
	ck_assert_int_eq(decode_checked(&id, comp.data, comp.len, sizeof(data), NULL, &err), -1);
	/*
	 * A damaged frame may only ever be accepted if it still decodes to the
	 * very block (zstd may ignore some bits); anything else must fail.
	 */
	block_id_compute(&id, data, sizeof(data));
	for (size_t i = 0; i < comp.len; i++) {
		uint8_t flip = (uint8_t)(1u << (i % 8));

		comp.data[i] ^= flip;
		if (decode_checked(&id, comp.data, comp.len, sizeof(data), back, &err) == 0)
			ck_assert_msg(memcmp(back, data, sizeof(data)) == 0,
			              "byte %zu ^ 0x%02x: verified wrong content", i, flip);
		comp.data[i] ^= flip;
	}
	buf_free(&comp);
}
END_TEST

/* The frame header is untrusted: a claimed size must not drive the write. */
START_TEST(test_decode_lying_headers)
{
	struct buf f = { 0 };
	struct block_id id = { { 1 } };
	struct circ_err err;

	craft_frame(&f, 1ull << 40, 0, 4096, 1);
	ck_assert_int_eq(decode_checked(&id, f.data, f.len, 4096, NULL, &err), -1);
	craft_frame(&f, UINT64_MAX - 3, 0, 4096, 1);
	ck_assert_int_eq(decode_checked(&id, f.data, f.len, 4096, NULL, &err), -1);
	/* Declares block_size, carries twice that. */
	craft_frame(&f, 4096, 0, 4096, 2);
	ck_assert_int_eq(decode_checked(&id, f.data, f.len, 4096, NULL, &err), -1);
	craft_frame(&f, 4096, 0, 8192, 1);
	ck_assert_int_eq(decode_checked(&id, f.data, f.len, 4096, NULL, &err), -1);
	craft_frame(&f, 4096, 1, 100000, 1);
	ck_assert_int_eq(decode_checked(&id, f.data, f.len, 4096, NULL, &err), -1);
	/* No declared size: raw blocks and RLE bombs far beyond block_size. */
	craft_frame(&f, UINT64_MAX, 0, 4000, 3);
	ck_assert_int_eq(decode_checked(&id, f.data, f.len, 4096, NULL, &err), -1);
	craft_frame(&f, UINT64_MAX, 1, 128 << 10, 64);
	ck_assert_int_eq(decode_checked(&id, f.data, f.len, 4096, NULL, &err), -1);
	/* Declares less than it is. */
	craft_frame(&f, 4095, 0, 4096, 1);
	ck_assert_int_eq(decode_checked(&id, f.data, f.len, 4096, NULL, &err), -1);
	buf_free(&f);
}
END_TEST

/* The crafted frames above are only meaningful if a truthful one decodes. */
START_TEST(test_decode_crafted_frame_ok)
{
	struct buf f = { 0 };
	struct block_id id;
	struct circ_err err;
	uint8_t back[4096], want[4096];

	craft_frame(&f, 4096, 0, 4096, 1);
	fill_random(want, sizeof(want), 0);
	block_id_compute(&id, want, sizeof(want));
	ck_assert_msg(decode_checked(&id, f.data, f.len, 4096, back, &err) == 0, "%s", err.msg);
	ck_assert_mem_eq(back, want, sizeof(want));
	craft_frame(&f, UINT64_MAX, 1, 4096, 1);
	memset(want, 0xaa, sizeof(want));
	block_id_compute(&id, want, sizeof(want));
	ck_assert_msg(decode_checked(&id, f.data, f.len, 4096, back, &err) == 0, "%s", err.msg);
	ck_assert_mem_eq(back, want, sizeof(want));
	buf_free(&f);
}
END_TEST

Suite *block_suite(void)
{
	Suite *s = suite_create("block");
	TCase *id = tcase_create("id");
	TCase *codec = tcase_create("codec");

	tcase_add_test(id, test_id_sha256_vectors);
	tcase_add_test(id, test_id_hex_round_trip);
	tcase_add_test(id, test_id_from_hex_rejects);
	tcase_add_test(id, test_id_zero_and_equal);
	tcase_add_test(id, test_block_is_zero);
	tcase_add_test(id, test_block_size_valid);
	suite_add_tcase(s, id);

	tcase_set_timeout(codec, 60);
	tcase_add_test(codec, test_encode_decode_round_trip);
	tcase_add_test(codec, test_encoded_bound_holds_incompressible);
	tcase_add_test(codec, test_encoder_reuse_replaces_output);
	tcase_add_test(codec, test_decode_wrong_size);
	tcase_add_test(codec, test_decode_unknown_size_ok);
	tcase_add_test(codec, test_decode_garbage);
	tcase_add_test(codec, test_decode_wrong_id);
	tcase_add_test(codec, test_decode_lying_headers);
	tcase_add_test(codec, test_decode_crafted_frame_ok);
	suite_add_tcase(s, codec);
	return s;
}
