/* SPDX-License-Identifier: MIT */
/*
 * Writes the seed corpora under DIR/{manifest,pointer,block,catalog}: a few valid
 * objects (signed with a throwaway key) and a few malformed ones, each
 * aimed at one check of the parser. Not part of the build; to regenerate:
 *
 *   make build/libcirc.a
 *   cc -std=gnu11 -D_GNU_SOURCE -I. -o build/make-corpus tests/fuzz/make_corpus.c \
 *      build/libcirc.a $(pkg-config --libs fuse3 libcurl libzstd libcrypto libmicrohttpd)
 *   build/make-corpus tests/fuzz/corpus
 *
 * Valid seeds differ from run to run only in key and signature.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>

#include "blockfs/block.h"
#include "vdisk/catalog.h"
#include "vdisk/manifest.h"
#include "tests/fuzz/keys.h"

static const char *out_dir;

static void die(const char *what, const char *why)
{
	fprintf(stderr, "make_corpus: %s: %s\n", what, why);
	exit(1);
}

static void emit(const char *kind, const char *name, const void *data, size_t len)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", out_dir, kind);
	if (mkdir(path, 0755) && errno != EEXIST)
		die(path, strerror(errno));
	snprintf(path, sizeof(path), "%s/%s/%s", out_dir, kind, name);
	f = fopen(path, "we");
	if (!f || fwrite(data, 1, len, f) != len || fclose(f))
		die(path, strerror(errno));
}

static void fill(uint8_t *p, size_t len, uint64_t x)
{
	for (size_t i = 0; i < len; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		p[i] = (uint8_t)(x >> 56);
	}
}

static void encode_manifest(struct manifest *m, struct buf *out)
{
	struct circ_err err;

	if (manifest_encode(m, fuzz_priv, out, &err))
		die("manifest_encode", err.msg);
}

static void new_manifest(struct manifest *m, const char *name, uint64_t size, uint32_t bs)
{
	struct circ_err err;

	if (manifest_init(m, name, size, bs, &err))
		die("manifest_init", err.msg);
	/* The seeds below are aimed at format 1's offsets; manifests_v2 makes format 2's. */
	m->format = 1;
	m->version = 1;
	m->created = 1700000000;
	for (uint32_t i = 0; i < m->n_blocks; i++)
		if (i % 3 != 1)
			block_id_compute(&m->blocks[i], &i, sizeof(i));
}

/* Writes enc with one header field changed (the signature goes stale: parse-only). */
static void emit_u32(const char *name, const struct buf *enc, size_t off, uint32_t v)
{
	uint8_t *d = malloc(enc->len);

	memcpy(d, enc->data, enc->len);
	put_u32le(d + off, v);
	emit("manifest", name, d, enc->len);
	free(d);
}

static void emit_byte(const char *kind, const char *name, const struct buf *enc, size_t off,
                      uint8_t x)
{
	uint8_t *d = malloc(enc->len);

	memcpy(d, enc->data, enc->len);
	d[off] ^= x;
	emit(kind, name, d, enc->len);
	free(d);
}

static void emit_u64(const char *kind, const char *name, const struct buf *enc, size_t off,
                     uint64_t v)
{
	uint8_t *d = malloc(enc->len);

	memcpy(d, enc->data, enc->len);
	put_u64le(d + off, v);
	emit(kind, name, d, enc->len);
	free(d);
}

static void manifests(void)
{
	static const uint32_t prefetch[] = { 5, 0, 3 };
	struct buf enc = { 0 };
	struct manifest m;
	char name[REPO_NAME_MAX + 1];
	uint8_t *d;

	new_manifest(&m, "tiny", 100, 4096);
	encode_manifest(&m, &enc);
	emit("manifest", "valid-tiny", enc.data, enc.len);
	manifest_release(&m);

	new_manifest(&m, "debian-12.1_x", 5 * 4096 + 100, 4096);
	m.version = 7;
	m.parent = 6;
	m.n_prefetch = 3;
	m.prefetch = malloc(sizeof(prefetch));
	memcpy(m.prefetch, prefetch, sizeof(prefetch));
	encode_manifest(&m, &enc);
	manifest_release(&m);
	emit("manifest", "valid-prefetch", enc.data, enc.len);
	/* Field offsets: docs/format.md. */
	d = malloc(enc.len + 8);
	memcpy(d, enc.data, enc.len);
	memcpy(d, "CIRCMFSX", 8);
	emit("manifest", "bad-magic", d, enc.len);
	memcpy(d, enc.data, enc.len);
	d[MANIFEST_HEADER_LEN + 3] = '/';
	emit("manifest", "bad-name-slash", d, enc.len);
	memcpy(d, enc.data, enc.len);
	memset(d + enc.len, 0, 8);
	emit("manifest", "bad-extended", d, enc.len + 8);
	emit("manifest", "bad-truncated", d, enc.len / 2);
	free(d);
	emit_u32("bad-format", &enc, 8, 2);
	emit_u64("manifest", "bad-parent", &enc, 24, 7);
	emit_u64("manifest", "bad-image-size", &enc, 40, 6 * 4096 + 1);
	emit_u32("bad-prefetch-index", &enc, MANIFEST_HEADER_LEN + 16 + 6 * 32 + 4, 6);
	emit_u32("bad-name-len", &enc, 60, 65);
	emit_u32("bad-count-huge", &enc, 52, UINT32_MAX);

	new_manifest(&m, "big-blocks", 1 << 20, 64 << 10);
	m.version = 3;
	m.parent = 2;
	m.n_prefetch = m.n_blocks;
	m.prefetch = malloc(m.n_blocks * sizeof(*m.prefetch));
	for (uint32_t i = 0; i < m.n_blocks; i++)
		m.prefetch[i] = m.n_blocks - 1 - i;
	encode_manifest(&m, &enc);
	emit("manifest", "valid-64k", enc.data, enc.len);
	manifest_release(&m);

	memset(name, 'n', REPO_NAME_MAX);
	name[REPO_NAME_MAX] = '\0';
	new_manifest(&m, name, 4u << 20, 4u << 20);
	m.version = UINT64_MAX;
	m.parent = UINT64_MAX - 1;
	encode_manifest(&m, &enc);
	emit("manifest", "valid-long-name", enc.data, enc.len);
	manifest_release(&m);
	buf_free(&enc);
}

static void kit(struct manifest_file *f, uint64_t size, uint32_t bs, uint32_t seed)
{
	struct circ_err err;

	if (manifest_file_init(f, size, bs, &err))
		die("manifest_file_init", err.msg);
	for (uint32_t i = 0; i < f->n_blocks; i++) {
		uint32_t v = seed + i;

		if (i != 1)
			block_id_compute(&f->blocks[i], &v, sizeof(v));
	}
}

/* Format 2 (docs/format.md): header offsets 96..127 and the sections after the name. */
static void manifests_v2(void)
{
	static const uint32_t prefetch[] = { 9, 0, 3 };
	struct buf enc = { 0 };
	struct manifest m;
	size_t table_off;

	new_manifest(&m, "kiosk-1", 9 * 4096 + 10, 4096);
	m.format = 2;
	m.version = 4;
	m.parent = 3;
	m.n_prefetch = 3;
	m.prefetch = malloc(sizeof(prefetch));
	memcpy(m.prefetch, prefetch, sizeof(prefetch));
	kit(&m.kernel, 2 * 4096 + 2048, 4096, 1000);
	kit(&m.initrd, 1, 4096, 2000);
	snprintf(m.cmdline, sizeof(m.cmdline), "console=ttyS0 root=/dev/vda ro");
	snprintf(m.description, sizeof(m.description), "Lab \xc3\xa9t\xc3\xa9 \xe2\x80\x94 v4");
	encode_manifest(&m, &enc);
	manifest_release(&m);
	emit("manifest", "v2-valid-kit", enc.data, enc.len);
	/* After the name (8 bytes), the command line and description, each padded to 8. */
	table_off = MANIFEST_HEADER_LEN + 8 + ((get_u32le(enc.data + 112) + 7) & ~7u) +
	            ((get_u32le(enc.data + 116) + 7) & ~7u);
	emit_u32("v2-bad-table-len", &enc, 120, get_u32le(enc.data + 120) + 8);
	emit_u32("v2-bad-count", &enc, 52, 11);
	emit_u32("v2-bad-cmdline-len", &enc, 112, 4097);
	emit_u32("v2-bad-desc-len", &enc, 116, 1025);
	emit_u32("v2-bad-reserved", &enc, 124, 1);
	emit_u64("manifest", "v2-bad-kernel-huge", &enc, 96, UINT64_MAX);
	emit_u64("manifest", "v2-bad-initrd-no-kernel", &enc, 96, 0);
	emit_byte("manifest", "v2-bad-table-flip", &enc, table_off + 12, 0x20);
	emit_byte("manifest", "v2-bad-table-size", &enc, table_off + 5, 0x01);
	emit_byte("manifest", "v2-bad-cmdline-char", &enc, MANIFEST_HEADER_LEN + 8 + 3, 0x60);
	emit_byte("manifest", "v2-bad-desc-utf8", &enc, MANIFEST_HEADER_LEN + 8 + 32 + 4, 0x40);

	/* No kit, a description only; a kit without an initrd; a 64 KiB image of zeros. */
	new_manifest(&m, "desc-only", 100000, 4096);
	m.format = 2;
	snprintf(m.description, sizeof(m.description), "just words");
	encode_manifest(&m, &enc);
	emit("manifest", "v2-valid-desc-only", enc.data, enc.len);
	manifest_release(&m);
	new_manifest(&m, "kernel-only", 1 << 20, 64 << 10);
	m.format = 2;
	kit(&m.kernel, 200000, 64 << 10, 7);
	encode_manifest(&m, &enc);
	emit("manifest", "v2-valid-kernel-only", enc.data, enc.len);
	manifest_release(&m);
	new_manifest(&m, "zeros", 1u << 30, 64 << 10);
	memset(m.blocks, 0, (size_t)m.n_blocks * sizeof(*m.blocks));
	m.format = 2;
	encode_manifest(&m, &enc);
	emit("manifest", "v2-valid-1g-zeros", enc.data, enc.len);
	manifest_release(&m);
	buf_free(&enc);
}

static void catalogs(void)
{
	static const char *const names[] = { "zeta", "alpha", "Kiosk_2.1" };
	struct catalog c = { .created = 1712345678 };
	struct catalog_entry e = { 0 };
	struct buf enc = { 0 };
	struct circ_err err;
	uint8_t *d;

	for (int i = 0; i < 3; i++) {
		snprintf(e.name, sizeof(e.name), "%s", names[i]);
		e.version = (uint64_t)i + 1;
		e.image_size = 1000000 * ((uint64_t)i + 1);
		e.kernel_size = i ? 8u << 20 : 0;
		e.initrd_size = i == 1 ? 30u << 20 : 0;
		e.created = 1700000000 + (uint64_t)i;
		memset(e.key_id, i + 1, sizeof(e.key_id));
		snprintf(e.description, sizeof(e.description), "%s",
		         i == 1 ? "Lab \xe2\x80\x94 \xc3\xa9t\xc3\xa9" : "");
		if (catalog_add(&c, &e, &err))
			die("catalog_add", err.msg);
	}
	if (catalog_encode(&c, fuzz_priv, &enc, &err))
		die("catalog_encode", err.msg);
	emit("catalog", "valid-three", enc.data, enc.len);
	/* Sorted, the first entry is Kiosk_2.1: its name at 64 + 80, padded to 16. */
	emit_u64("catalog", "bad-count", &enc, 24, 4);
	emit_u64("catalog", "bad-count-huge", &enc, 24, UINT32_MAX);
	emit_byte("catalog", "bad-name-slash", &enc, 64 + 80, 'K' ^ '/');
	emit_byte("catalog", "bad-name-padding", &enc, 64 + 80 + 12, 1);
	emit_byte("catalog", "bad-unsorted", &enc, 64 + 80, 'K' ^ 'z');
	emit_byte("catalog", "bad-kernel-huge", &enc, 64 + 24 + 3, 0x80);
	emit_byte("catalog", "bad-magic", &enc, 0, 1);
	emit("catalog", "bad-truncated", enc.data, enc.len - 1);
	d = calloc(1, enc.len + 8);
	memcpy(d, enc.data, enc.len);
	emit("catalog", "bad-extended", d, enc.len + 8);
	free(d);
	catalog_release(&c);
	c = (struct catalog){ .created = 1 };
	if (catalog_encode(&c, fuzz_priv, &enc, &err))
		die("catalog_encode", err.msg);
	emit("catalog", "valid-empty", enc.data, enc.len);
	buf_free(&enc);
}

static void pointers(void)
{
	struct pointer p = { .version = 9, .created = 1700000000, .expires = 1702592000 };
	struct buf enc = { 0 };
	struct circ_err err;
	uint8_t *d;

	snprintf(p.name, sizeof(p.name), "debian-12.1_x");
	manifest_file_hash((const uint8_t *)"manifest", 8, p.manifest_sha256);
	/* Format 2: the manifest's size after the format 1 header. */
	p.manifest_size = 2200;
	if (pointer_encode(&p, fuzz_priv, &enc, &err))
		die("pointer_encode", err.msg);
	emit("pointer", "v2-valid", enc.data, enc.len);
	emit_u64("pointer", "v2-bad-size-zero", &enc, 112, 0);
	emit_u64("pointer", "v2-bad-size-huge", &enc, 112, UINT64_MAX);
	emit_u64("pointer", "v2-bad-format-1", &enc, 8, 1 | (uint64_t)POINTER_HEADER_LEN2 << 32);
	emit("pointer", "v2-bad-truncated", enc.data, enc.len - 8);

	/* The seeds below are format 1's. */
	p.format = 1;
	p.manifest_size = 0;
	if (pointer_encode(&p, fuzz_priv, &enc, &err))
		die("pointer_encode", err.msg);
	emit("pointer", "valid", enc.data, enc.len);
	emit_u64("pointer", "bad-version-zero", &enc, 16, 0);
	emit_u64("pointer", "valid-expired", &enc, 32, 0);
	d = calloc(1, POINTER_MAX_LEN + 1);
	memcpy(d, enc.data, enc.len);
	memcpy(d, "CIRCMFST", 8);
	emit("pointer", "bad-magic", d, enc.len);
	memcpy(d, enc.data, enc.len);
	put_u32le(d + 72, 0);
	emit("pointer", "bad-name-len-zero", d, enc.len);
	put_u32le(d + 72, 17);
	emit("pointer", "bad-name-len-17", d, enc.len);
	memcpy(d, enc.data, enc.len);
	d[POINTER_HEADER_LEN] = '.';
	emit("pointer", "bad-name-dot", d, enc.len);
	memcpy(d, enc.data, enc.len);
	put_u32le(d + 12, 120);
	emit("pointer", "bad-header-len", d, enc.len);
	emit("pointer", "bad-truncated", enc.data, enc.len - 1);
	memcpy(d, enc.data, enc.len);
	emit("pointer", "bad-too-long", d, POINTER_MAX_LEN + 1);
	free(d);

	memset(p.name, 'p', REPO_NAME_MAX);
	p.name[REPO_NAME_MAX] = '\0';
	p.format = 2;
	p.manifest_size = MANIFEST_MAX_LEN;
	p.version = UINT64_MAX;
	p.expires = UINT64_MAX;
	if (pointer_encode(&p, fuzz_priv, &enc, &err))
		die("pointer_encode", err.msg);
	emit("pointer", "valid-long-name", enc.data, enc.len);
	buf_free(&enc);
}

/* Writes ID followed by frame, the fuzz_block input layout. */
static void emit_block(const char *name, const struct block_id *id, const void *frame, size_t len)
{
	uint8_t *d = malloc(BLOCK_ID_LEN + len + 1);

	memcpy(d, id->b, BLOCK_ID_LEN);
	memcpy(d + BLOCK_ID_LEN, frame, len);
	emit("block", name, d, BLOCK_ID_LEN + len);
	free(d);
}

static void blocks(void)
{
	static uint8_t data[8192];
	struct block_encoder *enc = block_encoder_new(3);
	struct buf comp = { 0 };
	struct block_id id;
	struct circ_err err;
	ZSTD_CCtx *cctx = ZSTD_createCCtx();
	uint8_t frame[64];
	size_t n;

	if (!enc || !cctx)
		die("zstd", "out of memory");
	/* Half random, half text-like: exercises literals and matches. */
	fill(data, 2048, 1);
	for (size_t i = 2048; i < 4096; i++)
		data[i] = "the quick brown fox "[i % 20];
	block_id_compute(&id, data, 4096);
	if (block_encode(enc, data, 4096, &comp, &err))
		die("block_encode", err.msg);
	emit_block("valid-mixed", &id, comp.data, comp.len);
	emit_block("bad-truncated", &id, comp.data, comp.len / 2);
	id.b[0] ^= 1;
	emit_block("bad-wrong-id", &id, comp.data, comp.len);

	memset(data, 0, 4096);
	block_id_compute(&id, data, 4096);
	block_encode(enc, data, 4096, &comp, &err);
	emit_block("valid-zero", &id, comp.data, comp.len);

	fill(data, 4096, 2);
	block_id_compute(&id, data, 4096);
	block_encode(enc, data, 4096, &comp, &err);
	emit_block("valid-random", &id, comp.data, comp.len);

	/* No content size in the header. */
	for (size_t i = 0; i < 4096; i++)
		data[i] = (uint8_t)(i / 64);
	block_id_compute(&id, data, 4096);
	ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 0);
	ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
	buf_reset(&comp);
	buf_reserve(&comp, ZSTD_compressBound(4096));
	n = ZSTD_compress2(cctx, comp.data, comp.cap, data, 4096);
	if (ZSTD_isError(n))
		die("zstd", ZSTD_getErrorName(n));
	emit_block("valid-no-size-checksum", &id, comp.data, n);

	/* 8 KiB where 4 KiB is expected. */
	fill(data, 8192, 3);
	block_id_compute(&id, data, 4096);
	block_encode(enc, data, 8192, &comp, &err);
	emit_block("bad-too-big", &id, comp.data, comp.len);

	/* Hand-made: single segment, 8-byte size 2^40, one RLE block of 4096 x 0xaa. */
	memcpy(frame, "\x28\xb5\x2f\xfd\xe0", 5);
	put_u64le(frame + 5, 1ull << 40);
	frame[13] = (uint8_t)(4096 << 3 | 1 << 1 | 1);
	frame[14] = (uint8_t)((4096 << 3) >> 8);
	frame[15] = (uint8_t)((4096 << 3) >> 16);
	frame[16] = 0xaa;
	memset(data, 0xaa, 4096);
	block_id_compute(&id, data, 4096);
	emit_block("bad-huge-size", &id, frame, 17);
	put_u64le(frame + 5, 4096);
	emit_block("valid-rle", &id, frame, 17);

	fill(frame, sizeof(frame), 4);
	emit_block("bad-garbage", &id, frame, sizeof(frame));
	emit_block("bad-empty-frame", &id, frame, 0);
	emit("block", "bad-short", frame, 10);

	ZSTD_freeCCtx(cctx);
	block_encoder_free(enc);
	buf_free(&comp);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: make_corpus DIR\n");
		return 2;
	}
	out_dir = argv[1];
	if (mkdir(out_dir, 0755) && errno != EEXIST)
		die(out_dir, strerror(errno));
	fuzz_keys_init();
	manifests();
	manifests_v2();
	pointers();
	catalogs();
	blocks();
	return 0;
}
