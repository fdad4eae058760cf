/* SPDX-License-Identifier: MIT */
#include "vdisk/manifest.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

/*
 * Manifest header (little-endian), MANIFEST_HEADER_LEN bytes:
 *   0 magic[8] | 8 format u32 | 12 header_len u32 | 16 version u64 | 24 parent u64
 *  32 created u64 | 40 image_size u64 | 48 block_size u32 | 52 n_blocks u32
 *  56 n_prefetch u32 | 60 name_len u32 | 64 key_id[32] | 96 reserved[32]
 * then name (padded to 8), n_blocks IDs of 32 bytes, n_prefetch u32 indices
 * (padded to 8), and a 64-byte Ed25519 signature over everything before it.
 */

static size_t pad8(size_t n)
{
	return (n + 7) & ~(size_t)7;
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
}

/* Signs b's contents and appends the signature. */
static int sign_append(const struct key *signer, struct buf *b, struct circ_err *err)
{
	uint8_t sig[KEY_SIG_LEN];

	if (key_sign(signer, b->data, b->len, sig, err))
		return -1;
	if (buf_append(b, sig, sizeof(sig)))
		return err_set(err, ENOMEM, "out of memory");
	return 0;
}

/*
 * Checks the signature that ends data. The key ID field is read unverified
 * only to say which key signed when it is not the one we trust.
 */
static int verify_trailer(const struct key *pub, const uint8_t *data, size_t len, size_t key_id_off,
                          const char *what, struct circ_err *err)
{
	uint8_t ours[KEY_ID_LEN];
	char a[17], b[17];

	if (key_verify(pub, data, len - KEY_SIG_LEN, data + len - KEY_SIG_LEN))
		return 0;
	key_id(pub, ours);
	if (memcmp(ours, data + key_id_off, KEY_ID_LEN) != 0) {
		key_id_short(data + key_id_off, a);
		key_id_short(ours, b);
		return err_set(err, EPERM, "%s is signed by key %s, not by the trusted key %s",
		               what, a, b);
	}
	return err_set(err, EPERM, "%s signature does not verify (tampered or corrupted)", what);
}

int manifest_encode(struct manifest *m, const struct key *signer, struct buf *out,
                    struct circ_err *err)
{
	size_t name_len = strlen(m->name);
	uint8_t h[MANIFEST_HEADER_LEN] = { 0 };

	if (!repo_name_valid(m->name))
		return err_set(err, EINVAL, "invalid image name '%s'", m->name);
	key_id(signer, m->key_id);
	memcpy(h, MANIFEST_MAGIC, 8);
	put_u32le(h + 8, MANIFEST_FORMAT);
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
	if (buf_append(out, h, sizeof(h)) || buf_append(out, m->name, name_len) ||
	    buf_append_zeros(out, pad8(name_len) - name_len) ||
	    buf_append(out, m->blocks, (size_t)m->n_blocks * sizeof(*m->blocks)))
		return err_set(err, ENOMEM, "out of memory");
	for (uint32_t i = 0; i < m->n_prefetch; i++)
		if (buf_append_u32le(out, m->prefetch[i]))
			return err_set(err, ENOMEM, "out of memory");
	if (buf_append_zeros(out, pad8(4 * (size_t)m->n_prefetch) - 4 * (size_t)m->n_prefetch))
		return err_set(err, ENOMEM, "out of memory");
	return sign_append(signer, out, err);
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

int manifest_parse(const uint8_t *d, size_t len, struct manifest *m, struct circ_err *err)
{
	uint32_t header_len, name_len;
	uint64_t want, blocks_needed;
	const uint8_t *p;

	memset(m, 0, sizeof(*m));
	if (len < MANIFEST_HEADER_LEN + KEY_SIG_LEN)
		return err_set(err, EBADMSG, "manifest truncated (%zu bytes)", len);
	if (len > MANIFEST_MAX_LEN)
		return err_set(err, EBADMSG, "manifest too large (%zu bytes)", len);
	if (memcmp(d, MANIFEST_MAGIC, 8) != 0)
		return err_set(err, EBADMSG, "not a circ manifest (bad magic)");
	if (get_u32le(d + 8) != MANIFEST_FORMAT)
		return err_set(err, EBADMSG, "manifest format %u is not supported (this is %u)",
		               get_u32le(d + 8), MANIFEST_FORMAT);
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
	if (!block_is_zero(d + 96, 32))
		return err_set(err, EBADMSG, "manifest reserved bytes are not zero");

	if (m->version == 0 || m->parent >= m->version)
		return err_set(err, EBADMSG, "manifest version %llu (parent %llu) is invalid",
		               (unsigned long long)m->version, (unsigned long long)m->parent);
	if (!block_size_valid(m->block_size))
		return err_set(err, EBADMSG, "manifest block size %u is invalid", m->block_size);
	if (m->image_size == 0)
		return err_set(err, EBADMSG, "manifest image size is zero");
	blocks_needed = m->image_size / m->block_size + (m->image_size % m->block_size != 0);
	if (blocks_needed != m->n_blocks || m->n_blocks > MANIFEST_MAX_BLOCKS)
		return err_set(err, EBADMSG, "manifest block count %u does not fit image size %llu",
		               m->n_blocks, (unsigned long long)m->image_size);
	if (m->n_prefetch > m->n_blocks)
		return err_set(err, EBADMSG, "manifest prefetch list longer than the image");
	if (name_len == 0 || name_len > REPO_NAME_MAX)
		return err_set(err, EBADMSG, "manifest name length %u out of range", name_len);
	/* All counts are bounded above, so this sum cannot overflow 64 bits. */
	want = MANIFEST_HEADER_LEN + pad8(name_len) + (uint64_t)m->n_blocks * BLOCK_ID_LEN +
	       pad8(4 * (size_t)m->n_prefetch) + KEY_SIG_LEN;
	if (want != len)
		return err_set(err, EBADMSG, "manifest is %zu bytes, its header says %llu", len,
		               (unsigned long long)want);

	p = d + MANIFEST_HEADER_LEN;
	if (parse_name(m->name, p, name_len, "manifest", err))
		return -1;
	p += pad8(name_len);
	m->blocks = malloc((size_t)m->n_blocks * sizeof(*m->blocks));
	m->prefetch = malloc((m->n_prefetch ? m->n_prefetch : 1) * sizeof(*m->prefetch));
	if (!m->blocks || !m->prefetch) {
		manifest_release(m);
		return err_set(err, ENOMEM, "out of memory");
	}
	memcpy(m->blocks, p, (size_t)m->n_blocks * BLOCK_ID_LEN);
	p += (size_t)m->n_blocks * BLOCK_ID_LEN;
	for (uint32_t i = 0; i < m->n_prefetch; i++) {
		m->prefetch[i] = get_u32le(p + 4 * (size_t)i);
		if (m->prefetch[i] >= m->n_blocks) {
			manifest_release(m);
			return err_set(err, EBADMSG, "manifest prefetch entry %u out of range", i);
		}
	}
	p += 4 * (size_t)m->n_prefetch;
	if (!block_is_zero(p, pad8(4 * (size_t)m->n_prefetch) - 4 * (size_t)m->n_prefetch)) {
		manifest_release(m);
		return err_set(err, EBADMSG, "manifest padding is not zero");
	}
	return 0;
}

int manifest_decode(const uint8_t *data, size_t len, const struct key *pub, struct manifest *m,
                    struct circ_err *err)
{
	memset(m, 0, sizeof(*m));
	if (len < MANIFEST_HEADER_LEN + KEY_SIG_LEN || memcmp(data, MANIFEST_MAGIC, 8) != 0)
		return manifest_parse(data, len, m, err);
	if (verify_trailer(pub, data, len, 64, "manifest", err))
		return -1;
	return manifest_parse(data, len, m, err);
}

/*
 * Pointer header (little-endian), POINTER_HEADER_LEN bytes:
 *   0 magic[8] | 8 format u32 | 12 header_len u32 | 16 version u64 | 24 created u64
 *  32 expires u64 | 40 manifest_sha256[32] | 72 name_len u32 | 76 reserved u32
 *  80 key_id[32]
 * then name (padded to 8) and a 64-byte Ed25519 signature.
 */

int pointer_encode(struct pointer *pt, const struct key *signer, struct buf *out,
                   struct circ_err *err)
{
	size_t name_len = strlen(pt->name);
	uint8_t h[POINTER_HEADER_LEN] = { 0 };

	if (!repo_name_valid(pt->name))
		return err_set(err, EINVAL, "invalid image name '%s'", pt->name);
	key_id(signer, pt->key_id);
	memcpy(h, POINTER_MAGIC, 8);
	put_u32le(h + 8, POINTER_FORMAT);
	put_u32le(h + 12, POINTER_HEADER_LEN);
	put_u64le(h + 16, pt->version);
	put_u64le(h + 24, pt->created);
	put_u64le(h + 32, pt->expires);
	memcpy(h + 40, pt->manifest_sha256, 32);
	put_u32le(h + 72, (uint32_t)name_len);
	memcpy(h + 80, pt->key_id, KEY_ID_LEN);
	buf_reset(out);
	if (buf_append(out, h, sizeof(h)) || buf_append(out, pt->name, name_len) ||
	    buf_append_zeros(out, pad8(name_len) - name_len))
		return err_set(err, ENOMEM, "out of memory");
	return sign_append(signer, out, err);
}

int pointer_parse(const uint8_t *d, size_t len, struct pointer *pt, struct circ_err *err)
{
	uint32_t name_len;

	memset(pt, 0, sizeof(*pt));
	if (len < POINTER_HEADER_LEN + KEY_SIG_LEN)
		return err_set(err, EBADMSG, "pointer truncated (%zu bytes)", len);
	if (len > POINTER_MAX_LEN)
		return err_set(err, EBADMSG, "pointer too large (%zu bytes)", len);
	if (memcmp(d, POINTER_MAGIC, 8) != 0)
		return err_set(err, EBADMSG, "not a circ pointer (bad magic)");
	if (get_u32le(d + 8) != POINTER_FORMAT)
		return err_set(err, EBADMSG, "pointer format %u is not supported (this is %u)",
		               get_u32le(d + 8), POINTER_FORMAT);
	if (get_u32le(d + 12) != POINTER_HEADER_LEN)
		return err_set(err, EBADMSG, "pointer header length %u is wrong",
		               get_u32le(d + 12));
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
	if (name_len == 0 || name_len > REPO_NAME_MAX)
		return err_set(err, EBADMSG, "pointer name length %u out of range", name_len);
	if (POINTER_HEADER_LEN + pad8(name_len) + KEY_SIG_LEN != len)
		return err_set(err, EBADMSG, "pointer is %zu bytes, its header says otherwise",
		               len);
	return parse_name(pt->name, d + POINTER_HEADER_LEN, name_len, "pointer", err);
}

int pointer_decode(const uint8_t *data, size_t len, const struct key *pub, struct pointer *pt,
                   struct circ_err *err)
{
	memset(pt, 0, sizeof(*pt));
	if (len < POINTER_HEADER_LEN + KEY_SIG_LEN || memcmp(data, POINTER_MAGIC, 8) != 0)
		return pointer_parse(data, len, pt, err);
	if (verify_trailer(pub, data, len, 80, "pointer", err))
		return -1;
	return pointer_parse(data, len, pt, err);
}
