/* SPDX-License-Identifier: MIT */
/*
 * A user disk's head on the server (users/USER/DISK/head, docs/format.md):
 * the newest check-in and the lease. The only mutable object of a user's
 * tree, replaced by compare-and-swap; the server reads it to enforce the
 * lease, the client to find the newest layer. Text, one field a line:
 *
 *   circ-head 1
 *   version N                      newest check-in (N.layer), >= 1
 *   layer <64 hex>                 SHA-256 of the whole N.layer file
 *   holder <32 hex> <host>         the machine holding the lease, or "holder -"
 *   since <unix seconds>           when it took the lease (0 when free)
 *   token <32 hex>                 the fencing token, or "token -"
 *
 * The head is not secret and not trusted for integrity: the layer it names
 * is authenticated by the user's key, and its hash and version are checked.
 */
#ifndef CIRC_HEAD_H
#define CIRC_HEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/err.h"

#define HEAD_MACHINE_HEX 32 /* a machine ID: 16 random bytes */
#define HEAD_TOKEN_HEX   32
#define HEAD_HOST_MAX    64

struct user_head {
	uint64_t version;
	uint8_t layer_sha256[32];
	bool held;
	char machine[HEAD_MACHINE_HEX + 1]; /* "" when free */
	char host[HEAD_HOST_MAX + 1];
	uint64_t since;
	char token[HEAD_TOKEN_HEX + 1]; /* "" when free */
};

/* Strict: every line in order, nothing else; bounded by REPO_USER_HEAD_MAX. */
CIRC_MUST_CHECK int head_parse(const uint8_t *data, size_t len, struct user_head *h,
                               struct circ_err *err);
CIRC_MUST_CHECK int head_encode(const struct user_head *h, struct buf *out, struct circ_err *err);

/* A host name as a head may carry it: [A-Za-z0-9._-], at most HEAD_HOST_MAX ("-" if empty). */
void head_sanitize_host(const char *in, char out[HEAD_HOST_MAX + 1]);

#endif
