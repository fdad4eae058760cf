/* SPDX-License-Identifier: MIT */
/*
 * The repository's object kinds in one table: what each path names, how
 * large it may be, whether it ever changes, how HTTP caches may keep it and
 * who may write it. The server decides what to serve and accept from it; the
 * client builds its paths and bounds its reads from it (docs/format.md).
 *
 *   blocks/XX/<64 hex>              a public block (publisher)
 *   images/NAME/N.manifest          a signed manifest (publisher)
 *   images/NAME/latest              a signed pointer, the image's only mutable file
 *   users/USER/keys                 USER's wrapped master key (USER)
 *   users/USER/blocks/XX/<64 hex>   an encrypted block, named by a keyed hash (USER)
 *   users/USER/DISK/N.layer         check-in N of DISK, encrypted (USER)
 *   users/USER/DISK/head            DISK's newest check-in and lease (USER, by CAS)
 *   catalog                         the signed list of the repo's images (publisher)
 */
#ifndef CIRC_OBJECTS_H
#define CIRC_OBJECTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blockfs/block.h"
#include "blockfs/repo.h"

/* Bounds of the users/ objects (a layer: 1 Mi entries, 64 GiB of 64 KiB blocks). */
#define REPO_USER_KEYS_MAX  4096u
#define REPO_USER_HEAD_MAX  4096u
#define REPO_USER_LAYER_MAX (72u << 20)
/* An encrypted block: a format byte and an AEAD tag around the zstd frame. */
#define REPO_USER_BLOCK_OVERHEAD 64u
#define REPO_MANIFEST_MAX        (256u << 20)
#define REPO_POINTER_MAX         4096u
/* The catalog: an entry is at most 1168 bytes, so room for about 900 images. */
#define REPO_CATALOG_MAX (1u << 20)
#define REPO_CATALOG     "catalog"

enum repo_object_type {
	REPO_OBJ_BLOCK,
	REPO_OBJ_MANIFEST,
	REPO_OBJ_POINTER,
	REPO_OBJ_USER_KEYS,
	REPO_OBJ_USER_BLOCK,
	REPO_OBJ_USER_LAYER,
	REPO_OBJ_USER_HEAD,
	REPO_OBJ_CATALOG,
};

enum repo_writer {
	REPO_WRITER_PUBLISHER, /* written to the directory by `circ publish`, never uploaded */
	REPO_WRITER_USER,      /* uploaded by the user the path names, authenticated */
};

struct repo_object_kind {
	enum repo_object_type type;
	const char *pattern;       /* for docs and messages */
	uint64_t max_len;          /* the largest legitimate object */
	bool is_mutable;           /* replaced in place (atomically) */
	const char *cache_control; /* what a server sends with it */
	enum repo_writer writer;
};

/* What a path names: its kind and the names and number in it. */
struct repo_object {
	const struct repo_object_kind *kind;
	char user[REPO_NAME_MAX + 1]; /* users/ objects */
	char name[REPO_NAME_MAX + 1]; /* the image or the disk */
	uint64_t version;             /* manifests and layers: N >= 1 */
	struct block_id id;           /* blocks */
};

/* Every kind, in the order of the list above. */
const struct repo_object_kind *repo_object_kinds(size_t *n);
const struct repo_object_kind *repo_object_kind(enum repo_object_type type);

/*
 * Classifies a path relative to the repository's root ("blocks/ab/ab12..."):
 * true if it names an object of the format, with every name checked
 * (repo_name_valid) and the block ID lower-case hex whose first two digits
 * are its directory. Anything else (hidden files, temporaries, keys left in
 * the directory, "..") is not part of the format.
 */
bool repo_object_classify(const char *path, struct repo_object *out);

/*
 * A user's disk name on a server: a valid name that is not one of the
 * user's own directories ("blocks", "keys").
 */
bool repo_user_disk_name_valid(const char *disk);

/*
 * The ETag of a user's object as a server gives it for keys, heads and
 * blocks: quoted hex of the first 16 bytes of SHA-256(content). Mutable
 * objects are replaced by compare-and-swap on it; a block's tells a client
 * whether the copy a server holds is whole (a power cut may tear one).
 */
#define REPO_ETAG_MAX 40
void repo_content_etag(const void *data, size_t len, char out[REPO_ETAG_MAX]);

/* Paths of the users/ objects; names must be valid (repo_name_valid). */
void repo_user_keys_path(const char *user, char out[REPO_PATH_MAX]);
void repo_user_block_path(const char *user, const struct block_id *name, char out[REPO_PATH_MAX]);
void repo_user_layer_path(const char *user, const char *disk, uint64_t n, char out[REPO_PATH_MAX]);
void repo_user_head_path(const char *user, const char *disk, char out[REPO_PATH_MAX]);

#endif
