/* SPDX-License-Identifier: MIT */
#include "blockfs/objects.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include <openssl/evp.h>

#define CACHE_IMMUTABLE "public, max-age=31536000, immutable"
/* The public files that change (pointers, the catalog): caches may hold them briefly. */
#define CACHE_POINTER "public, max-age=30"
/* A user's objects are theirs: shared caches must not keep them. */
#define CACHE_USER_IMMUTABLE "private, max-age=31536000, immutable"
#define CACHE_USER_MUTABLE   "private, no-cache"

#define BLOCK_OBJECT_MAX ZSTD_COMPRESSBOUND(BLOCK_SIZE_MAX)

/* clang-format off */
static const struct repo_object_kind kinds[] = {
	{ REPO_OBJ_BLOCK, "blocks/XX/<64 hex>",
	  BLOCK_OBJECT_MAX, false, CACHE_IMMUTABLE, REPO_WRITER_PUBLISHER },
	{ REPO_OBJ_MANIFEST, "images/NAME/N.manifest",
	  REPO_MANIFEST_MAX, false, CACHE_IMMUTABLE, REPO_WRITER_PUBLISHER },
	{ REPO_OBJ_POINTER, "images/NAME/latest",
	  REPO_POINTER_MAX, true, CACHE_POINTER, REPO_WRITER_PUBLISHER },
	{ REPO_OBJ_USER_KEYS, "users/USER/keys",
	  REPO_USER_KEYS_MAX, true, CACHE_USER_MUTABLE, REPO_WRITER_USER },
	{ REPO_OBJ_USER_BLOCK, "users/USER/blocks/XX/<64 hex>",
	  BLOCK_OBJECT_MAX + REPO_USER_BLOCK_OVERHEAD, false, CACHE_USER_IMMUTABLE, REPO_WRITER_USER },
	/* Immutable once the head names it; until then a new upload may replace it. */
	{ REPO_OBJ_USER_LAYER, "users/USER/DISK/N.layer",
	  REPO_USER_LAYER_MAX, false, CACHE_USER_MUTABLE, REPO_WRITER_USER },
	{ REPO_OBJ_USER_HEAD, "users/USER/DISK/head",
	  REPO_USER_HEAD_MAX, true, CACHE_USER_MUTABLE, REPO_WRITER_USER },
	{ REPO_OBJ_CATALOG, REPO_CATALOG,
	  REPO_CATALOG_MAX, true, CACHE_POINTER, REPO_WRITER_PUBLISHER },
};
/* clang-format on */

#define N_KINDS (sizeof(kinds) / sizeof(kinds[0]))

const struct repo_object_kind *repo_object_kinds(size_t *n)
{
	*n = N_KINDS;
	return kinds;
}

const struct repo_object_kind *repo_object_kind(enum repo_object_type type)
{
	for (size_t i = 0; i < N_KINDS; i++)
		if (kinds[i].type == type)
			return &kinds[i];
	return NULL;
}

/* Copies the segment at *p up to the next '/' (or the end) into out; advances *p past it. */
static bool take_segment(const char **p, char *out, size_t n)
{
	const char *end = strchr(*p, '/');
	size_t len = end ? (size_t)(end - *p) : strlen(*p);

	if (len == 0 || len >= n)
		return false;
	memcpy(out, *p, len);
	out[len] = '\0';
	*p += len + (end ? 1 : 0);
	return end != NULL || **p == '\0';
}

static bool is_lower_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[n] == '\0';
}

/* "XX/<64 hex>" with XX its first two digits, and nothing after it. */
static bool parse_block(const char *p, struct block_id *id)
{
	if (strlen(p) != 3 + BLOCK_ID_HEX_LEN || p[2] != '/' || !is_lower_hex(p + 3, 64) ||
	    p[0] != p[3] || p[1] != p[4])
		return false;
	return block_id_from_hex(id, p + 3) == 0;
}

/* "N" followed by ext: N decimal, 1..2^63, no leading zero. */
static bool parse_version(const char *seg, const char *ext, uint64_t *out)
{
	size_t n = strlen(seg), e = strlen(ext);
	uint64_t v = 0;

	if (n <= e || strcmp(seg + n - e, ext) != 0 || n - e > 19 || seg[0] == '0')
		return false;
	for (size_t i = 0; i < n - e; i++) {
		if (seg[i] < '0' || seg[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(seg[i] - '0');
	}
	*out = v;
	return v > 0;
}

static bool classify_user(const char *p, struct repo_object *o)
{
	char seg[REPO_NAME_MAX + 32];

	if (!take_segment(&p, o->user, sizeof(o->user)) || !repo_name_valid(o->user) || !*p)
		return false;
	if (strcmp(p, "keys") == 0) {
		o->kind = repo_object_kind(REPO_OBJ_USER_KEYS);
		return true;
	}
	if (strncmp(p, "blocks/", 7) == 0) {
		o->kind = repo_object_kind(REPO_OBJ_USER_BLOCK);
		return parse_block(p + 7, &o->id);
	}
	if (!take_segment(&p, o->name, sizeof(o->name)) || !repo_user_disk_name_valid(o->name) ||
	    !*p || strlen(p) >= sizeof(seg) || strchr(p, '/'))
		return false;
	snprintf(seg, sizeof(seg), "%s", p);
	if (strcmp(seg, "head") == 0) {
		o->kind = repo_object_kind(REPO_OBJ_USER_HEAD);
		return true;
	}
	o->kind = repo_object_kind(REPO_OBJ_USER_LAYER);
	return parse_version(seg, ".layer", &o->version);
}

bool repo_object_classify(const char *path, struct repo_object *o)
{
	const char *p = path;

	memset(o, 0, sizeof(*o));
	if (strcmp(p, REPO_CATALOG) == 0) {
		o->kind = repo_object_kind(REPO_OBJ_CATALOG);
		return true;
	}
	if (strncmp(p, "blocks/", 7) == 0) {
		o->kind = repo_object_kind(REPO_OBJ_BLOCK);
		return parse_block(p + 7, &o->id);
	}
	if (strncmp(p, "users/", 6) == 0)
		return classify_user(p + 6, o);
	if (strncmp(p, "images/", 7) != 0)
		return false;
	p += 7;
	if (!take_segment(&p, o->name, sizeof(o->name)) || !repo_name_valid(o->name) || !*p ||
	    strchr(p, '/'))
		return false;
	if (strcmp(p, REPO_LATEST) == 0) {
		o->kind = repo_object_kind(REPO_OBJ_POINTER);
		return true;
	}
	o->kind = repo_object_kind(REPO_OBJ_MANIFEST);
	return parse_version(p, REPO_MANIFEST_EXT, &o->version);
}

bool repo_user_disk_name_valid(const char *disk)
{
	return repo_name_valid(disk) && strcmp(disk, "blocks") != 0 && strcmp(disk, "keys") != 0;
}

void repo_user_keys_path(const char *user, char out[REPO_PATH_MAX])
{
	snprintf(out, REPO_PATH_MAX, "users/%s/keys", user);
}

void repo_user_block_path(const char *user, const struct block_id *name, char out[REPO_PATH_MAX])
{
	char hex[BLOCK_ID_HEX_LEN + 1];

	block_id_to_hex(name, hex);
	snprintf(out, REPO_PATH_MAX, "users/%s/blocks/%.2s/%s", user, hex, hex);
}

void repo_user_layer_path(const char *user, const char *disk, uint64_t n, char out[REPO_PATH_MAX])
{
	snprintf(out, REPO_PATH_MAX, "users/%s/%s/%" PRIu64 ".layer", user, disk, n);
}

void repo_user_head_path(const char *user, const char *disk, char out[REPO_PATH_MAX])
{
	snprintf(out, REPO_PATH_MAX, "users/%s/%s/head", user, disk);
}

void repo_content_etag(const void *data, size_t len, char out[REPO_ETAG_MAX])
{
	uint8_t md[32];

	EVP_Digest(data, len, md, NULL, EVP_sha256(), NULL);
	out[0] = '"';
	for (size_t i = 0; i < 16; i++)
		snprintf(out + 1 + 2 * i, 3, "%02x", md[i]);
	snprintf(out + 33, REPO_ETAG_MAX - 33, "\"");
}
