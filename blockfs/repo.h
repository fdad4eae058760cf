/* SPDX-License-Identifier: MIT */
/*
 * A repository: the static files a publisher writes and any HTTP server
 * serves. Layout (docs/format.md):
 *
 *   blocks/XX/<64 hex>        one zstd frame per block, XX = first two hex digits
 *   images/NAME/N.manifest    the signed manifest of version N (immutable)
 *   images/NAME/latest        the signed pointer to the newest version (mutable)
 *
 * A repo is opened either as a local directory (readable and writable) or as
 * a set of mirror URLs (read-only).
 */
#ifndef CIRC_REPO_H
#define CIRC_REPO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/err.h"
#include "blockfs/block.h"
#include "blockfs/fetch.h"

#define REPO_PATH_MAX     256
#define REPO_NAME_MAX     64
#define REPO_LATEST       "latest"
#define REPO_MANIFEST_EXT ".manifest"

struct repo;

CIRC_MUST_CHECK int repo_open_dir(const char *dir, bool create, struct repo **out,
                                  struct circ_err *err);
/* The same, its writes through fio (NULL: the system's), as a crash test records them. */
struct fileio;
CIRC_MUST_CHECK int repo_open_dir_io(const char *dir, bool create, const struct fileio *fio,
                                     struct repo **out, struct circ_err *err);
CIRC_MUST_CHECK int repo_open_url(const struct fetch_config *cfg, struct repo **out,
                                  struct circ_err *err);
void repo_close(struct repo *r);
/* The directory or first URL, for messages. */
const char *repo_location(const struct repo *r);
/* NULL for a directory repo. */
struct fetch *repo_fetcher(struct repo *r);

/* Image names are [A-Za-z0-9._-]{1,64}, not starting with '.'. */
bool repo_name_valid(const char *name);
void repo_block_path(const struct block_id *id, char out[REPO_PATH_MAX]);
void repo_manifest_path(const char *name, uint64_t version, char out[REPO_PATH_MAX]);
void repo_pointer_path(const char *name, char out[REPO_PATH_MAX]);

/*
 * Reads a whole file (relative path) into out, refusing more than max_len
 * bytes. A missing file sets errnum ENOENT. flags are FETCH_* flags.
 */
CIRC_MUST_CHECK int repo_read_file(struct repo *r, const char *path, size_t max_len, unsigned flags,
                                   struct buf *out, struct circ_err *err);

/*
 * Reads block id into out (block_size bytes) and verifies it; comp is the
 * caller's scratch buffer. Over HTTP, a corrupted copy is fetched again from
 * the next mirror.
 */
CIRC_MUST_CHECK int repo_read_block(struct repo *r, const struct block_id *id, size_t block_size,
                                    void *out, struct buf *comp, struct circ_err *err);

/* --- writing: directory repos only --- */

/* Takes the repo's publisher lock (blocks while another publisher holds it). */
CIRC_MUST_CHECK int repo_lock(struct repo *r, struct circ_err *err);
bool repo_file_exists(struct repo *r, const char *path);
int repo_remove_file(struct repo *r, const char *path);
bool repo_has_block(struct repo *r, const struct block_id *id);
/*
 * Stores an encoded block under a temporary name and renames it into place.
 * Not synced: repo_sync makes all stored blocks durable at once.
 */
CIRC_MUST_CHECK int repo_store_block(struct repo *r, const struct block_id *id, const void *data,
                                     size_t len, struct circ_err *err);
int repo_remove_block(struct repo *r, const struct block_id *id);
/* Makes everything written to the repo's file system durable. */
CIRC_MUST_CHECK int repo_sync(struct repo *r, struct circ_err *err);
/* Writes a small file durably: temporary name, fsync, rename, fsync of the directory. */
CIRC_MUST_CHECK int repo_write_file(struct repo *r, const char *path, const void *data, size_t len,
                                    struct circ_err *err);
/*
 * Checks every block stored at or after since and removes those that do not
 * decode to their ID: what a power cut during a publish may have left short
 * or torn under a block's name, before the publish synced it. *removed
 * counts them. 0, or -1 when the repo cannot be read or changed.
 */
struct timespec;
CIRC_MUST_CHECK int repo_check_blocks_since(struct repo *r, const struct timespec *since,
                                            uint64_t *removed, struct circ_err *err);
/* Removes temporary files a crashed publisher left behind. */
void repo_clean_temporaries(struct repo *r);

#endif
