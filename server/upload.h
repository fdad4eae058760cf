/* SPDX-License-Identifier: MIT */
/*
 * `circ serve --users`: PUT of a user's objects (users/USER/...), each
 * kind with its own rules (docs/format.md, blockfs/objects.h):
 *
 *   blocks/XX/HEX   sealed blocks: stored once, never rewritten
 *   keys            created with If-None-Match: *, replaced with If-Match
 *   DISK/N.layer    only the next check-in after the head, under its lease
 *   DISK/head       compare-and-swap on its ETag; a new version needs its layer
 *
 * Every check of the tree and the write that follows it happen under the
 * user's lock, so two machines of one user cannot both commit. Writes are
 * atomic and durable: a ".tmp-" file, fsync, rename, fsync of the directory.
 */
#ifndef CIRC_UPLOAD_H
#define CIRC_UPLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "server/server_int.h"

struct MHD_Connection;

/*
 * From the headers alone: 0 to go on and read the body, or the status to
 * answer at once (a body larger than the kind allows: 413).
 */
unsigned upload_begin(struct MHD_Connection *con, struct request *rq);
/* Appends a piece of the body: 0, or the status to answer (413, 500). */
unsigned upload_feed(struct request *rq, const char *data, size_t len);
/* The whole body is in: checks it against the tree and stores it; returns the status. */
unsigned upload_finish(struct server *s, struct MHD_Connection *con, struct request *rq);

#endif
