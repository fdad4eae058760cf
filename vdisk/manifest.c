/* SPDX-License-Identifier: MIT */
#include "vdisk/manifest.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <zstd.h>

/*
 * Manifest header (little-endian), MANIFEST_HEADER_LEN bytes:
 *   0 magic[8] | 8 format u32 | 12 header_len u32 | 16 version u64 | 24 parent u64
 *  32 created u64 | 40 image_size u64 | 48 block_size u32 | 52 n_blocks u32
 *  56 n_prefetch u32 | 60 name_len u32 | 64 key_id[32] | 96 reserved[32]
 * Format 1: then name (padded to 8), n_blocks IDs of 32 bytes, n_prefetch u32
 * indices (padded to 8), and a 64-byte Ed25519 signature over everything before it.
 *
 * Format 2 uses the reserved bytes:
 *  96 kernel_size u64 | 104 initrd_size u64 | 112 cmdline_len u32 | 116 desc_len u32
 * 120 table_len u32 | 124 reserved u32
 * then name, command line, description and the block table as one zstd frame
 * (table_len bytes), each padded to 8; the kernel's and the initrd's block IDs;
 * the prefetch list (padded to 8); the signature.
 */

#define OFF_KERNEL_SIZE 96
#define OFF_INITRD_SIZE 104
#define OFF_CMDLINE_LEN 112
#define OFF_DESC_LEN    116
#define OFF_TABLE_LEN   120
#define OFF_RESERVED2   124
/* The level a publisher compresses the block table with: zero entries vanish at any. */
#define TABLE_LEVEL 3

static size_t pad8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

static uint64_t blocks_for(uint64_t size, uint32_t block_size)
{
	return size / block_size + (size % block_size != 0);
}

bool manifest_cmdline_valid(const char *s, size_t len)
{
	if (len > MANIFEST_CMDLINE_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			return false;
	return true;
}

/*
 * Strict UTF-8 (no overlong forms, surrogates or code points past U+10FFFF)
 * without control characters, C0, DEL or C1: a description is printed on
 * terminals, and must not be able to move the cursor or change colours.
 */
bool manifest_description_valid(const char *str, size_t len)
{
	const uint8_t *s = (const uint8_t *)str;
	size_t i = 0;

	if (len > MANIFEST_DESC_MAX)
		return false;
	while (i < len) {
		uint32_t c = s[i], min;
		size_t n;

		if (c < 0x80) {
			if (c < 0x20 || c == 0x7f)
				return false;
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1, c &= 0x1f, min = 0x80;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2, c &= 0x0f, min = 0x800;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3, c &= 0x07, min = 0x10000;
		} else {
			return false;
		}
		if (len - i - 1 < n)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			c = c << 6 | (s[i + k] & 0x3f);
		}
		if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff) ||
		    (c >= 0x80 && c <= 0x9f))
			return false;
		i += n + 1;
	}
	return true;
}

int manifest_file_init(struct manifest_file *f, uint64_t size, uint32_t block_size,
                       struct circ_err *err)
{
	uint64_t n;

	memset(f, 0, sizeof(*f));
	if (size == 0)
		return 0;
	if (!block_size_valid(block_size))
		return err_set(err, EINVAL, "invalid block size %u", block_size);
	if (size > MANIFEST_BOOTFILE_MAX)
		return err_set(err, EFBIG, "a boot file of %llu bytes is larger than %llu",
		               (unsigned long long)size, (unsigned long long)MANIFEST_BOOTFILE_MAX);
	n = blocks_for(size, block_size);
	f->blocks = calloc(n, sizeof(*f->blocks));
	if (!f->blocks)
		return err_set(err, ENOMEM, "out of memory");
	f->size = size;
	f->n_blocks = (uint32_t)n;
	return 0;
}

void manifest_file_release(struct manifest_file *f)
{
	free(f->blocks);
	memset(f, 0, sizeof(*f));
}

void manifest_file_hash(const uint8_t *data, size_t len, uint8_t out[32])
{
	EVP_Digest(data, len, out, NULL, EVP_sha256(), NULL);
}

int manifest_init(struct manifest *m, const char *name, uint64_t image_size, uint32_t block_size,
                  struct circ_err *err)
{
	uint64_t n;

	memset(m, 0, sizeof(*m));
	if (!repo_name_valid(name))
		return err_set(err, EINVAL, "invalid image name '%s'", name);
	if (!block_size_valid(block_size))
		return err_set(err, EINVAL, "invalid block size %u", block_size);
	if (image_size == 0)
		return err_set(err, EINVAL, "image is empty");
	n = image_size / block_size + (image_size % block_size != 0);
	if (n > MANIFEST_MAX_BLOCKS)
		return err_set(err, EFBIG,
		               "image has %llu blocks, more than %u: use a larger block size",
		               (unsigned long long)n, MANIFEST_MAX_BLOCKS);
	m->blocks = calloc(n ? n : 1, sizeof(*m->blocks));
	if (!m->blocks)
		return err_set(err, ENOMEM, "out of memory");
	snprintf(m->name, sizeof(m->name), "%s", name);
	m->format = MANIFEST_FORMAT;
	m->image_size = image_size;
	m->block_size = block_size;
	m->n_blocks = (uint32_t)n;
	return 0;
}

void manifest_release(struct manifest *m)
{
	free(m->blocks);
	free(m->prefetch);
	m->blocks = NULL;
	m->prefetch = NULL;
	manifest_file_release(&m->kernel);
	manifest_file_release(&m->initrd);
}

/* A boot file as the encoder is handed it: consistent with its size and the block size. */
static int check_file(const struct manifest_file *f, uint32_t block_size, const char *what,
                      struct circ_err *err)
{
	if (f->size == 0)
		return f->n_blocks == 0
		           ? 0
		           : err_set(err, EINVAL, "absent %s with %u blocks", what, f->n_blocks);
	if (f->size > MANIFEST_BOOTFILE_MAX)
		return err_set(err, EFBIG, "%s of %llu bytes is larger than %llu", what,
		               (unsigned long long)f->size,
		               (unsigned long long)MANIFEST_BOOTFILE_MAX);
	if (f->n_blocks != blocks_for(f->size, block_size) || !f->blocks)
		return err_set(err, EINVAL, "%s has %u blocks for %llu bytes", what, f->n_blocks,
		               (unsigned long long)f->size);
	return 0;
}

/*
 * Checks the boot kit and text fields of a format 2 manifest, compresses its
 * block table into *z and fills in the header's format 2 fields.
 */
static int encode_v2_prepare(const struct manifest *m, uint8_t *h, uint8_t **z, size_t *zlen,
                             struct circ_err *err)
{
	size_t clen = strlen(m->cmdline), dlen = strlen(m->description);
	size_t raw = (size_t)m->n_blocks * BLOCK_ID_LEN, bound = ZSTD_compressBound(raw);
	ZSTD_CCtx *cctx = NULL;

	if (check_file(&m->kernel, m->block_size, "kernel", err) ||
	    check_file(&m->initrd, m->block_size, "initrd", err))
		return -1;
	if (m->kernel.size == 0 && (m->initrd.size || clen))
		return err_set(err, EINVAL, "an initrd or command line needs a kernel");
	if (!manifest_cmdline_valid(m->cmdline, clen))
		return err_set(err, EINVAL,
		               "kernel command line: at most %d printable ASCII characters",
		               MANIFEST_CMDLINE_MAX);
	if (!manifest_description_valid(m->description, dlen))
		return err_set(err, EINVAL,
		               "description: at most %d bytes of UTF-8 without control characters",
		               MANIFEST_DESC_MAX);
	cctx = ZSTD_createCCtx();
	*z = malloc(bound);
	if (!cctx || !*z) {
		err_set(err, ENOMEM, "out of memory");
		goto fail;
	}
	/*
	 * One frame that records its content size, so that the reader's bound is
	 * exact, and a checksum, so that damage shows even before the signature
	 * is checked (the fuzzers parse unsigned manifests).
	 */
	ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, TABLE_LEVEL);
	ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
	*zlen = ZSTD_compress2(cctx, *z, bound, m->blocks, raw);
	ZSTD_freeCCtx(cctx);
	cctx = NULL;
	if (ZSTD_isError(*zlen)) {
		err_set(err, EIO, "compressing the block table: %s", ZSTD_getErrorName(*zlen));
		goto fail;
	}
	put_u64le(h + OFF_KERNEL_SIZE, m->kernel.size);
	put_u64le(h + OFF_INITRD_SIZE, m->initrd.size);
	put_u32le(h + OFF_CMDLINE_LEN, (uint32_t)clen);
	put_u32le(h + OFF_DESC_LEN, (uint32_t)dlen);
	put_u32le(h + OFF_TABLE_LEN, (uint32_t)*zlen);
	return 0;
fail:
	ZSTD_freeCCtx(cctx);
	free(*z);
	*z = NULL;
	return -1;
}

static int append_padded(struct buf *out, const void *p, size_t n)
{
	return buf_append(out, p, n) || buf_append_zeros(out, pad8(n) - n) ? -1 : 0;
}

int manifest_encode(struct manifest *m, const struct key *signer, struct buf *out,
                    struct circ_err *err)
{
	size_t name_len = strlen(m->name), zlen = 0;
	uint32_t format = m->format ? m->format : MANIFEST_FORMAT;
	uint8_t h[MANIFEST_HEADER_LEN] = { 0 }, *z = NULL;
	int ret = -1;

	if (!repo_name_valid(m->name))
		return err_set(err, EINVAL, "invalid image name '%s'", m->name);
	if (format != 1 && format != 2)
		return err_set(err, EINVAL, "manifest format %u is not supported", format);
	if (format == 1 && (m->kernel.size || m->initrd.size || m->cmdline[0] || m->description[0]))
		return err_set(err, EINVAL,
		               "a manifest of format 1 has no boot kit and no description");
	if (format == 2 && encode_v2_prepare(m, h, &z, &zlen, err))
		return -1;
	m->format = format;
	key_id(signer, m->key_id);
	memcpy(h, MANIFEST_MAGIC, 8);
	put_u32le(h + 8, format);
	put_u32le(h + 12, MANIFEST_HEADER_LEN);
	put_u64le(h + 16, m->version);
	put_u64le(h + 24, m->parent);
	put_u64le(h + 32, m->created);
	put_u64le(h + 40, m->image_size);
	put_u32le(h + 48, m->block_size);
	put_u32le(h + 52, m->n_blocks);
	put_u32le(h + 56, m->n_prefetch);
	put_u32le(h + 60, (uint32_t)name_len);
	memcpy(h + 64, m->key_id, KEY_ID_LEN);

	buf_reset(out);
	if (buf_append(out, h, sizeof(h)) || append_padded(out, m->name, name_len))
		goto oom;
	if (format == 2) {
		if (append_padded(out, m->cmdline, strlen(m->cmdline)) ||
		    append_padded(out, m->description, strlen(m->description)) ||
		    append_padded(out, z, zlen) ||
		    buf_append(out, m->kernel.blocks, (size_t)m->kernel.n_blocks * BLOCK_ID_LEN) ||
		    buf_append(out, m->initrd.blocks, (size_t)m->initrd.n_blocks * BLOCK_ID_LEN))
			goto oom;
	} else if (buf_append(out, m->blocks, (size_t)m->n_blocks * sizeof(*m->blocks))) {
		goto oom;
	}
	for (uint32_t i = 0; i < m->n_prefetch; i++)
		if (buf_append_u32le(out, m->prefetch[i]))
			goto oom;
	if (buf_append_zeros(out, pad8(4 * (size_t)m->n_prefetch) - 4 * (size_t)m->n_prefetch))
		goto oom;
	ret = key_seal(signer, out, err);
	goto out;
oom:
	err_set(err, ENOMEM, "out of memory");
out:
	free(z);
	return ret;
}

static int parse_name(char *name, const uint8_t *p, uint32_t len, const char *what,
                      struct circ_err *err)
{
	if (len == 0 || len > REPO_NAME_MAX)
		return err_set(err, EBADMSG, "%s: name length %u out of range", what, len);
	memcpy(name, p, len);
	name[len] = '\0';
	/* One encoding per file: no NUL inside the name, zeros in its padding. */
	if (strlen(name) != len || !repo_name_valid(name))
		return err_set(err, EBADMSG, "%s: invalid image name", what);
	if (!block_is_zero(p + len, pad8(len) - len))
		return err_set(err, EBADMSG, "%s: padding after the name is not zero", what);
	return 0;
}

/* A text field of a format 2 manifest: len bytes, then zeros to the next 8. */
static int parse_text(char *out, const uint8_t *p, uint32_t len, bool cmdline, struct circ_err *err)
{
	const char *what = cmdline ? "kernel command line" : "description";

	if (cmdline ? !manifest_cmdline_valid((const char *)p, len)
	            : !manifest_description_valid((const char *)p, len))
		return err_set(err, EBADMSG, "manifest %s has invalid characters", what);
	if (!block_is_zero(p + len, pad8(len) - len))
		return err_set(err, EBADMSG, "manifest padding after the %s is not zero", what);
	memcpy(out, p, len);
	out[len] = '\0';
	return 0;
}

/*
 * The block table: exactly one zstd frame that declares exactly raw bytes and
 * decodes to them. The declared size is checked before decoding, and the
 * output buffer is exactly raw bytes, so no frame can make us write more.
 */
static int parse_table(const uint8_t *z, size_t zlen, struct block_id *out, size_t raw,
                       struct circ_err *err)
{
	unsigned long long declared = ZSTD_getFrameContentSize(z, zlen);
	size_t frame, got;

	if (declared != raw)
		return err_set(err, EBADMSG,
		               "manifest block table is not a zstd frame of %zu bytes", raw);
	frame = ZSTD_findFrameCompressedSize(z, zlen);
	if (ZSTD_isError(frame) || frame != zlen)
		return err_set(err, EBADMSG, "manifest block table is not exactly one zstd frame");
	got = ZSTD_decompress(out, raw, z, zlen);
	if (ZSTD_isError(got))
		return err_set(err, EBADMSG, "manifest block table is damaged: %s",
		               ZSTD_getErrorName(got));
	if (got != raw)
		return err_set(err, EBADMSG, "manifest block table decodes to %zu bytes, not %zu",
		               got, raw);
	return 0;
}

static int parse_file_ids(struct manifest_file *f, uint64_t size, uint32_t block_size,
                          const uint8_t *p, struct circ_err *err)
{
	/* Sizes were checked: only memory can fail here. */
	if (manifest_file_init(f, size, block_size, err))
		return -1;
	if (f->n_blocks)
		memcpy(f->blocks, p, (size_t)f->n_blocks * BLOCK_ID_LEN);
	return 0;
}

int manifest_parse(const uint8_t *d, size_t len, struct manifest *m, struct circ_err *err)
{
	uint32_t header_len, name_len, cmdline_len = 0, desc_len = 0, table_len = 0;
	uint64_t want, blocks_needed, kernel_size = 0, initrd_size = 0, kn = 0, in = 0;
	uint64_t table_bytes;
	const uint8_t *p;

	memset(m, 0, sizeof(*m));
	if (len < MANIFEST_HEADER_LEN + KEY_SIG_LEN)
		return err_set(err, EBADMSG, "manifest truncated (%zu bytes)", len);
	if (len > MANIFEST_MAX_LEN)
		return err_set(err, EBADMSG, "manifest too large (%zu bytes)", len);
	if (memcmp(d, MANIFEST_MAGIC, 8) != 0)
		return err_set(err, EBADMSG, "not a circ manifest (bad magic)");
	m->format = get_u32le(d + 8);
	if (m->format != 1 && m->format != 2)
		return err_set(err, EBADMSG,
		               "manifest format %u is not supported (this reads 1 and 2)",
		               m->format);
	header_len = get_u32le(d + 12);
	if (header_len != MANIFEST_HEADER_LEN)
		return err_set(err, EBADMSG, "manifest header length %u is wrong", header_len);
	m->version = get_u64le(d + 16);
	m->parent = get_u64le(d + 24);
	m->created = get_u64le(d + 32);
	m->image_size = get_u64le(d + 40);
	m->block_size = get_u32le(d + 48);
	m->n_blocks = get_u32le(d + 52);
	m->n_prefetch = get_u32le(d + 56);
	name_len = get_u32le(d + 60);
	memcpy(m->key_id, d + 64, KEY_ID_LEN);
	if (m->format == 1) {
		if (!block_is_zero(d + 96, 32))
			return err_set(err, EBADMSG, "manifest reserved bytes are not zero");
	} else {
		kernel_size = get_u64le(d + OFF_KERNEL_SIZE);
		initrd_size = get_u64le(d + OFF_INITRD_SIZE);
		cmdline_len = get_u32le(d + OFF_CMDLINE_LEN);
		desc_len = get_u32le(d + OFF_DESC_LEN);
		table_len = get_u32le(d + OFF_TABLE_LEN);
		if (get_u32le(d + OFF_RESERVED2) != 0)
			return err_set(err, EBADMSG, "manifest reserved bytes are not zero");
	}

	if (m->version == 0 || m->parent >= m->version)
		return err_set(err, EBADMSG, "manifest version %llu (parent %llu) is invalid",
		               (unsigned long long)m->version, (unsigned long long)m->parent);
	if (!block_size_valid(m->block_size))
		return err_set(err, EBADMSG, "manifest block size %u is invalid", m->block_size);
	if (m->image_size == 0)
		return err_set(err, EBADMSG, "manifest image size is zero");
	blocks_needed = blocks_for(m->image_size, m->block_size);
	if (blocks_needed != m->n_blocks || m->n_blocks > MANIFEST_MAX_BLOCKS)
		return err_set(err, EBADMSG, "manifest block count %u does not fit image size %llu",
		               m->n_blocks, (unsigned long long)m->image_size);
	if (m->n_prefetch > m->n_blocks)
		return err_set(err, EBADMSG, "manifest prefetch list longer than the image");
	if (name_len == 0 || name_len > REPO_NAME_MAX)
		return err_set(err, EBADMSG, "manifest name length %u out of range", name_len);
	table_bytes = (uint64_t)m->n_blocks * BLOCK_ID_LEN;
	if (m->format == 2) {
		if (kernel_size > MANIFEST_BOOTFILE_MAX || initrd_size > MANIFEST_BOOTFILE_MAX)
			return err_set(err, EBADMSG, "manifest boot file larger than %llu bytes",
			               (unsigned long long)MANIFEST_BOOTFILE_MAX);
		if (kernel_size == 0 && (initrd_size || cmdline_len))
			return err_set(err, EBADMSG,
			               "manifest has an initrd or command line but no kernel");
		if (cmdline_len > MANIFEST_CMDLINE_MAX)
			return err_set(err, EBADMSG, "manifest command line length %u out of range",
			               cmdline_len);
		if (desc_len > MANIFEST_DESC_MAX)
			return err_set(err, EBADMSG, "manifest description length %u out of range",
			               desc_len);
		if (table_len == 0 || table_len > ZSTD_COMPRESSBOUND(table_bytes))
			return err_set(err, EBADMSG, "manifest block table length %u out of range",
			               table_len);
		kn = blocks_for(kernel_size, m->block_size);
		in = blocks_for(initrd_size, m->block_size);
		want = MANIFEST_HEADER_LEN + pad8(name_len) + pad8(cmdline_len) + pad8(desc_len) +
		       pad8(table_len) + (kn + in) * BLOCK_ID_LEN;
	} else {
		want = MANIFEST_HEADER_LEN + pad8(name_len) + table_bytes;
	}
	/* All counts are bounded above, so this sum cannot overflow 64 bits. */
	want += pad8(4 * (size_t)m->n_prefetch) + KEY_SIG_LEN;
	if (want != len)
		return err_set(err, EBADMSG, "manifest is %zu bytes, its header says %llu", len,
		               (unsigned long long)want);

	p = d + MANIFEST_HEADER_LEN;
	if (parse_name(m->name, p, name_len, "manifest", err))
		return -1;
	p += pad8(name_len);
	m->blocks = malloc(table_bytes);
	m->prefetch = malloc((m->n_prefetch ? m->n_prefetch : 1) * sizeof(*m->prefetch));
	if (!m->blocks || !m->prefetch) {
		err_set(err, ENOMEM, "out of memory");
		goto fail;
	}
	if (m->format == 2) {
		if (parse_text(m->cmdline, p, cmdline_len, true, err))
			goto fail;
		p += pad8(cmdline_len);
		if (parse_text(m->description, p, desc_len, false, err))
			goto fail;
		p += pad8(desc_len);
		if (parse_table(p, table_len, m->blocks, table_bytes, err))
			goto fail;
		if (!block_is_zero(p + table_len, pad8(table_len) - table_len)) {
			err_set(err, EBADMSG, "manifest padding after the block table is not zero");
			goto fail;
		}
		p += pad8(table_len);
		if (parse_file_ids(&m->kernel, kernel_size, m->block_size, p, err))
			goto fail;
		p += kn * BLOCK_ID_LEN;
		if (parse_file_ids(&m->initrd, initrd_size, m->block_size, p, err))
			goto fail;
		p += in * BLOCK_ID_LEN;
	} else {
		memcpy(m->blocks, p, table_bytes);
		p += table_bytes;
	}
	for (uint32_t i = 0; i < m->n_prefetch; i++) {
		m->prefetch[i] = get_u32le(p + 4 * (size_t)i);
		if (m->prefetch[i] >= m->n_blocks) {
			err_set(err, EBADMSG, "manifest prefetch entry %u out of range", i);
			goto fail;
		}
	}
	p += 4 * (size_t)m->n_prefetch;
	if (!block_is_zero(p, pad8(4 * (size_t)m->n_prefetch) - 4 * (size_t)m->n_prefetch)) {
		err_set(err, EBADMSG, "manifest padding is not zero");
		goto fail;
	}
	return 0;
fail:
	manifest_release(m);
	return -1;
}

int manifest_decode(const uint8_t *data, size_t len, const struct key *pub, struct manifest *m,
                    struct circ_err *err)
{
	memset(m, 0, sizeof(*m));
	if (len < MANIFEST_HEADER_LEN + KEY_SIG_LEN || memcmp(data, MANIFEST_MAGIC, 8) != 0)
		return manifest_parse(data, len, m, err);
	if (key_open(pub, data, len, 64, "manifest", err))
		return -1;
	return manifest_parse(data, len, m, err);
}

/*
 * Pointer header (little-endian), POINTER_HEADER_LEN bytes in format 1:
 *   0 magic[8] | 8 format u32 | 12 header_len u32 | 16 version u64 | 24 created u64
 *  32 expires u64 | 40 manifest_sha256[32] | 72 name_len u32 | 76 reserved u32
 *  80 key_id[32]
 * Format 2 (POINTER_HEADER_LEN2 bytes) adds 112 manifest_size u64.
 * Then name (padded to 8) and a 64-byte Ed25519 signature.
 */

int pointer_encode(struct pointer *pt, const struct key *signer, struct buf *out,
                   struct circ_err *err)
{
	size_t name_len = strlen(pt->name);
	uint32_t format = pt->format ? pt->format : POINTER_FORMAT;
	uint32_t header_len = format == 1 ? POINTER_HEADER_LEN : POINTER_HEADER_LEN2;
	uint8_t h[POINTER_HEADER_LEN2] = { 0 };

	if (!repo_name_valid(pt->name))
		return err_set(err, EINVAL, "invalid image name '%s'", pt->name);
	if (format != 1 && format != 2)
		return err_set(err, EINVAL, "pointer format %u is not supported", format);
	if (format == 1 && pt->manifest_size)
		return err_set(err, EINVAL, "a pointer of format 1 has no manifest size");
	if (format == 2 && (pt->manifest_size < MANIFEST_HEADER_LEN + KEY_SIG_LEN ||
	                    pt->manifest_size > MANIFEST_MAX_LEN))
		return err_set(err, EINVAL, "manifest size %llu out of range",
		               (unsigned long long)pt->manifest_size);
	pt->format = format;
	key_id(signer, pt->key_id);
	memcpy(h, POINTER_MAGIC, 8);
	put_u32le(h + 8, format);
	put_u32le(h + 12, header_len);
	put_u64le(h + 16, pt->version);
	put_u64le(h + 24, pt->created);
	put_u64le(h + 32, pt->expires);
	memcpy(h + 40, pt->manifest_sha256, 32);
	put_u32le(h + 72, (uint32_t)name_len);
	memcpy(h + 80, pt->key_id, KEY_ID_LEN);
	if (format == 2)
		put_u64le(h + 112, pt->manifest_size);
	buf_reset(out);
	if (buf_append(out, h, header_len) || buf_append(out, pt->name, name_len) ||
	    buf_append_zeros(out, pad8(name_len) - name_len))
		return err_set(err, ENOMEM, "out of memory");
	return key_seal(signer, out, err);
}

int pointer_parse(const uint8_t *d, size_t len, struct pointer *pt, struct circ_err *err)
{
	uint32_t name_len, header_len;

	memset(pt, 0, sizeof(*pt));
	if (len < POINTER_HEADER_LEN + KEY_SIG_LEN)
		return err_set(err, EBADMSG, "pointer truncated (%zu bytes)", len);
	if (len > POINTER_MAX_LEN)
		return err_set(err, EBADMSG, "pointer too large (%zu bytes)", len);
	if (memcmp(d, POINTER_MAGIC, 8) != 0)
		return err_set(err, EBADMSG, "not a circ pointer (bad magic)");
	pt->format = get_u32le(d + 8);
	if (pt->format != 1 && pt->format != 2)
		return err_set(err, EBADMSG,
		               "pointer format %u is not supported (this reads 1 and 2)",
		               pt->format);
	header_len = pt->format == 1 ? POINTER_HEADER_LEN : POINTER_HEADER_LEN2;
	if (get_u32le(d + 12) != header_len)
		return err_set(err, EBADMSG, "pointer header length %u is wrong",
		               get_u32le(d + 12));
	/* Format 2's header is longer than the shortest format 1 pointer. */
	if (len < header_len + KEY_SIG_LEN)
		return err_set(err, EBADMSG, "pointer truncated (%zu bytes)", len);
	pt->version = get_u64le(d + 16);
	pt->created = get_u64le(d + 24);
	pt->expires = get_u64le(d + 32);
	memcpy(pt->manifest_sha256, d + 40, 32);
	name_len = get_u32le(d + 72);
	memcpy(pt->key_id, d + 80, KEY_ID_LEN);
	if (get_u32le(d + 76) != 0)
		return err_set(err, EBADMSG, "pointer reserved bytes are not zero");
	if (pt->version == 0)
		return err_set(err, EBADMSG, "pointer version is zero");
	if (pt->format == 2) {
		pt->manifest_size = get_u64le(d + 112);
		if (pt->manifest_size < MANIFEST_HEADER_LEN + KEY_SIG_LEN ||
		    pt->manifest_size > MANIFEST_MAX_LEN)
			return err_set(err, EBADMSG, "pointer manifest size %llu out of range",
			               (unsigned long long)pt->manifest_size);
	}
	if (name_len == 0 || name_len > REPO_NAME_MAX)
		return err_set(err, EBADMSG, "pointer name length %u out of range", name_len);
	if (header_len + pad8(name_len) + KEY_SIG_LEN != len)
		return err_set(err, EBADMSG, "pointer is %zu bytes, its header says otherwise",
		               len);
	return parse_name(pt->name, d + header_len, name_len, "pointer", err);
}

int pointer_decode(const uint8_t *data, size_t len, const struct key *pub, struct pointer *pt,
                   struct circ_err *err)
{
	memset(pt, 0, sizeof(*pt));
	if (len < POINTER_HEADER_LEN + KEY_SIG_LEN || memcmp(data, POINTER_MAGIC, 8) != 0)
		return pointer_parse(data, len, pt, err);
	if (key_open(pub, data, len, 80, "pointer", err))
		return -1;
	return pointer_parse(data, len, pt, err);
}
