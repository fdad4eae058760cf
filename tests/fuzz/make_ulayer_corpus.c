/* SPDX-License-Identifier: MIT */
/*
 * Writes the seed corpus of fuzz_ulayer under DIR/ulayer: layers sealed with
 * the fixed key of tests/fuzz/ukeys.h (and, as plain-*, their headers and
 * plaintext bodies), heads, keys files, and damaged copies of them, each
 * aimed at one check. Not part of the build; to regenerate:
 *
 *   make build/libcirc.a
 *   cc -std=gnu11 -D_GNU_SOURCE -I. -o build/make-ulayer-corpus \
 *      tests/fuzz/make_ulayer_corpus.c build/libcirc.a \
 *      $(pkg-config --libs fuse3 libcurl libzstd libcrypto libmicrohttpd libcrypt) -pthread
 *   build/make-ulayer-corpus tests/fuzz/corpus
 *
 * Valid seeds differ from run to run only in their random salts.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "vdisk/head.h"
#include "vdisk/ukey.h"
#include "vdisk/ulayer.h"
#include "tests/fuzz/ukeys.h"

static const char *out_dir;

static void die(const char *what, const char *why)
{
	fprintf(stderr, "make_ulayer_corpus: %s: %s\n", what, why);
	exit(1);
}

static void emit(const char *name, const void *data, size_t len)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/ulayer", out_dir);
	if (mkdir(path, 0755) && errno != EEXIST)
		die(path, strerror(errno));
	snprintf(path, sizeof(path), "%s/ulayer/%s", out_dir, name);
	f = fopen(path, "we");
	if (!f || fwrite(data, 1, len, f) != len || fclose(f))
		die(path, strerror(errno));
}

/* Writes data with one byte changed. */
static void emit_byte(const char *name, const struct buf *b, size_t off, uint8_t v)
{
	uint8_t *d = malloc(b->len);

	if (!d)
		die(name, "out of memory");
	memcpy(d, b->data, b->len);
	d[off] = v;
	emit(name, d, b->len);
	free(d);
}

static void emit_u32(const char *name, const struct buf *b, size_t off, uint32_t v)
{
	uint8_t *d = malloc(b->len);

	if (!d)
		die(name, "out of memory");
	memcpy(d, b->data, b->len);
	put_u32le(d + off, v);
	emit(name, d, b->len);
	free(d);
}

static void new_layer(struct ulayer *l, uint32_t n, bool image)
{
	memset(l, 0, sizeof(*l));
	snprintf(l->user, sizeof(l->user), FUZZ_UKEY_USER);
	snprintf(l->disk, sizeof(l->disk), "laptop");
	l->version = 1;
	l->created = 1700000000;
	l->block_size = 4096;
	l->disk_size = 64 * 4096 - 100;
	if (image) {
		l->version = 5;
		l->parent = 4;
		memset(l->parent_sha256, 0x5a, 32);
		snprintf(l->machine, sizeof(l->machine), "00112233445566778899aabbccddeeff");
		snprintf(l->host, sizeof(l->host), "desk-1");
		l->base = ULAYER_BASE_IMAGE;
		snprintf(l->base_image, sizeof(l->base_image), "debian-12");
		l->base_version = 3;
		memset(l->base_manifest_sha256, 0xa5, 32);
		snprintf(l->origin_disk, sizeof(l->origin_disk), "old-laptop");
		l->origin_version = 2;
		l->bytes_uploaded = 4096;
		l->bytes_total = 3 * 4096;
	}
	l->n_entries = n;
	l->entries = n ? calloc(n, sizeof(*l->entries)) : NULL;
	if (n && !l->entries)
		die("layer", "out of memory");
	for (uint32_t i = 0; i < n; i++) {
		l->entries[i].index = i * 3;
		if (i % 4 == 3)
			continue; /* a zero block */
		block_id_compute(&l->entries[i].name, &i, sizeof(i));
		l->entries[i].name.b[0] ^= 0x80;
		block_id_compute(&l->entries[i].id, &i, sizeof(i));
	}
}

/* Encodes l, and writes its header and plaintext body as "plain-NAME" for fuzz_layer_body. */
static void encode_layer(struct ulayer *l, const struct ukey *k, const char *name, struct buf *out)
{
	struct buf body = { 0 }, plain = { 0 };
	struct circ_err err;
	char plain_name[256];

	if (ulayer_encode(l, k, out, &err))
		die("ulayer_encode", err.msg);
	if (ukey_layer_open(k, l->salt, out->data, ULAYER_HEADER_LEN, out->data + ULAYER_HEADER_LEN,
	                    out->len - ULAYER_HEADER_LEN, &body, &err))
		die("ukey_layer_open", err.msg);
	if (buf_append(&plain, out->data, ULAYER_HEADER_LEN) ||
	    buf_append(&plain, body.data, body.len))
		die(name, "out of memory");
	emit(name, out->data, out->len);
	snprintf(plain_name, sizeof(plain_name), "plain-%s", name);
	emit(plain_name, plain.data, plain.len);
	buf_free(&body);
	buf_free(&plain);
}

static void layers(const struct ukey *k)
{
	struct buf enc = { 0 };
	struct ulayer l;
	uint8_t *d;

	new_layer(&l, 0, false);
	encode_layer(&l, k, "layer-valid-blank", &enc);
	emit("layer-bad-header-only", enc.data, ULAYER_HEADER_LEN);

	new_layer(&l, 5, true);
	encode_layer(&l, k, "layer-valid-image", &enc);
	ulayer_release(&l);
	/* Offsets: docs/format.md. */
	emit("layer-bad-truncated", enc.data, enc.len - 1);
	emit("layer-bad-entry-short", enc.data, enc.len - 68);
	d = calloc(1, enc.len + 68);
	if (!d)
		die("layer", "out of memory");
	memcpy(d, enc.data, enc.len);
	emit("layer-bad-extended", d, enc.len + 68);
	free(d);
	emit_byte("layer-bad-magic", &enc, 7, 'X');
	emit_u32("layer-bad-format", &enc, 8, 2);
	emit_u32("layer-bad-header-len", &enc, 12, 200);
	emit_u32("layer-bad-user-len", &enc, 24, 65);
	emit_byte("layer-bad-user-dot", &enc, 32, '.');
	emit_byte("layer-bad-disk-padding", &enc, 96 + 63, 'x');
	emit_byte("layer-bad-salt", &enc, 160, enc.data[160] ^ 1);
	emit_byte("layer-bad-body", &enc, ULAYER_HEADER_LEN + 10,
	          enc.data[ULAYER_HEADER_LEN + 10] ^ 4);
	emit_byte("layer-bad-tag", &enc, enc.len - 1, enc.data[enc.len - 1] ^ 0x80);

	new_layer(&l, 300, true);
	memset(l.user, 'u', REPO_NAME_MAX);
	memset(l.disk, 'd', REPO_NAME_MAX);
	memset(l.host, 'h', HEAD_HOST_MAX);
	l.machine[0] = '\0';
	l.origin_disk[0] = '\0';
	l.origin_version = 0;
	l.disk_size = 1024 * 4096;
	encode_layer(&l, k, "layer-valid-long", &enc);
	ulayer_release(&l);
	buf_free(&enc);
}

static void heads(void)
{
	struct user_head h = { .version = 5 };
	struct buf enc = { 0 };
	struct circ_err err;
	static const char no_holder_token[] =
	    "circ-head 1\nversion 5\n"
	    "layer 0000000000000000000000000000000000000000000000000000000000000000\n"
	    "holder -\nsince 0\ntoken 00112233445566778899aabbccddeeff\n";

	memset(h.layer_sha256, 0x3c, 32);
	if (head_encode(&h, &enc, &err))
		die("head_encode", err.msg);
	emit("head-valid-free", enc.data, enc.len);
	emit("head-bad-truncated", enc.data, enc.len - 1);
	h.held = true;
	snprintf(h.machine, sizeof(h.machine), "00112233445566778899aabbccddeeff");
	snprintf(h.host, sizeof(h.host), "desk-1.example");
	h.since = 1700000000;
	snprintf(h.token, sizeof(h.token), "ffeeddccbbaa99887766554433221100");
	if (head_encode(&h, &enc, &err))
		die("head_encode", err.msg);
	emit("head-valid-held", enc.data, enc.len);
	emit("head-bad-token-without-holder", no_holder_token, sizeof(no_holder_token) - 1);
	buf_free(&enc);
}

static void keys(const struct ukey *k)
{
	struct ukey_kdf kdf = { .log2_n = 10, .r = 1, .p = 1 };
	struct buf enc = { 0 };
	struct circ_err err;

	if (ukey_wrap(k, FUZZ_UKEY_USER, FUZZ_UKEY_PASS, strlen(FUZZ_UKEY_PASS), kdf, &enc, &err))
		die("ukey_wrap", err.msg);
	emit("keys-valid", enc.data, enc.len);
	emit("keys-bad-truncated", enc.data, enc.len - 1);
	emit_byte("keys-bad-magic", &enc, 0, 'X');
	emit_u32("keys-bad-format", &enc, 8, 2);
	emit_u32("keys-bad-huge-n", &enc, 12, 30);
	emit_u32("keys-bad-huge-r", &enc, 16, 1000);
	emit_u32("keys-bad-zero-p", &enc, 20, 0);
	emit_byte("keys-bad-salt", &enc, 24, enc.data[24] ^ 1);
	emit_byte("keys-bad-sealed", &enc, 60, enc.data[60] ^ 1);
	buf_free(&enc);
}

int main(int argc, char **argv)
{
	struct ukey *k;
	struct circ_err err;

	if (argc != 2) {
		fprintf(stderr, "usage: make_ulayer_corpus DIR\n");
		return 2;
	}
	out_dir = argv[1];
	if (mkdir(out_dir, 0755) && errno != EEXIST)
		die(out_dir, strerror(errno));
	if (ukey_import(fuzz_ukey_master, &k, &err))
		die("ukey_import", err.msg);
	layers(k);
	heads();
	keys(k);
	ukey_free(k);
	return 0;
}
