/* SPDX-License-Identifier: MIT */
/*
 * A disk's pulled user layer, as the disk reads it: the layer's map opened
 * with the user's key, and its blocks fetched from users/USER/blocks/ on
 * first read, opened, verified against the plaintext SHA-256 the
 * authenticated layer names, and cached like any block.
 */
#ifndef CIRC_USERLAYER_H
#define CIRC_USERLAYER_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "blockfs/cache.h"
#include "blockfs/store.h"
#include "vdisk/state.h"
#include "vdisk/ukey.h"
#include "vdisk/ulayer.h"

struct user_layer;

/* Opens layer c->layer of the disk in disk_dir; cache stays the caller's. */
CIRC_MUST_CHECK int user_layer_open(const char *disk_dir, const struct disk_conf *c,
                                    const struct state_net *net, struct cache *cache,
                                    unsigned workers, struct user_layer **out,
                                    struct circ_err *err);
void user_layer_close(struct user_layer *ul);

const struct ulayer *user_layer_map(const struct user_layer *ul);
/* Reads len bytes at off within entry e's block. */
CIRC_MUST_CHECK int user_layer_read(struct user_layer *ul, const struct ulayer_entry *e, void *buf,
                                    size_t len, uint64_t off, struct circ_err *err);
void user_layer_prefetch(struct user_layer *ul, const struct ulayer_entry *e);
void user_layer_get_stats(struct user_layer *ul, struct store_stats *st);

/*
 * Reads and opens a layer file: its bytes' SHA-256 into sha (if not NULL),
 * and checks it names user, disk and version n.
 */
CIRC_MUST_CHECK int user_layer_load(const char *path, const struct ukey *k, const char *user,
                                    const char *disk, uint64_t n, struct ulayer *l, uint8_t sha[32],
                                    struct circ_err *err);

/* A user repository at url with the credentials: reads and writes under users/USER/. */
CIRC_MUST_CHECK int user_repo_open(const char *url, const char *user, const char *password,
                                   const struct state_net *net, struct repo **out,
                                   struct circ_err *err);

#endif
