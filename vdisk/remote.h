/* SPDX-License-Identifier: MIT */
/*
 * What push, checkout, log and lease share: a user's tree on a server
 * (HTTP with the user's credentials), the machine's identity, the head,
 * the user's key and the highest check-in seen (rollback protection).
 */
#ifndef CIRC_REMOTE_H
#define CIRC_REMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/err.h"
#include "blockfs/fetch.h"
#include "blockfs/objects.h"
#include "blockfs/repo.h"
#include "vdisk/head.h"
#include "vdisk/migrate.h"
#include "vdisk/ukey.h"
#include "vdisk/userlayer.h"

struct remote {
	const char *url, *user;
	struct repo *repo; /* with the user's credentials */
	struct fetch *fetch;
	char machine[HEAD_MACHINE_HEX + 1]; /* this state directory's ID */
	char host[HEAD_HOST_MAX + 1];
};

/* Opens url for user, the password from the disk's secrets or asked for. */
CIRC_MUST_CHECK int remote_open(struct remote *r, const char *state, const char *url,
                                const char *user, const char *password, const struct state_net *net,
                                struct circ_err *err);
void remote_close(struct remote *r);

/* The state directory's machine ID (STATE/machine-id), made on first use. */
CIRC_MUST_CHECK int remote_machine_id(const char *state, char out[HEAD_MACHINE_HEX + 1],
                                      struct circ_err *err);

/* DISK's head and its ETag; *exists false (and 0 returned) when it has none. */
CIRC_MUST_CHECK int remote_get_head(struct remote *r, const char *disk, struct user_head *h,
                                    char *etag, size_t etag_len, bool *exists,
                                    struct circ_err *err);
/* GETs a users/ object; ENOENT when missing. */
CIRC_MUST_CHECK int remote_get(struct remote *r, const char *path, size_t max_len, struct buf *out,
                               struct circ_err *err);
/*
 * Whether a users/ object exists (HEAD), its length (-1 if the server did not
 * say) and its ETag ("" if none).
 */
int remote_exists(struct remote *r, const char *path, bool *exists, int64_t *length,
                  char etag[REPO_ETAG_MAX], struct circ_err *err);
/* PUTs an object; *status is the server's answer, judged by the caller. */
CIRC_MUST_CHECK int remote_put(struct remote *r, const char *path, const void *data, size_t len,
                               const char *if_match, bool if_none_match, const char *lease,
                               long *status, struct circ_err *err);
/* Sets err for an unexpected status of a request about what. */
int remote_status_error(const struct remote *r, long status, const char *what,
                        struct circ_err *err);

/*
 * The user's key: opened from users/USER/keys with the passphrase, or, if
 * the user has none yet and create is set, made and uploaded (the
 * passphrase asked twice).
 */
CIRC_MUST_CHECK int remote_unlock_key(struct remote *r, const struct migrate_prompt *p, bool create,
                                      struct ukey **out, struct circ_err *err);

/* The highest check-in of user's disk ever accepted here (STATE/users/USER/DISK.seen). */
CIRC_MUST_CHECK int remote_seen_load(const char *state, const char *user, const char *disk,
                                     uint64_t *seen, struct circ_err *err);
CIRC_MUST_CHECK int remote_seen_raise(const char *state, const char *user, const char *disk,
                                      uint64_t version, struct circ_err *err);

/* A fresh random token in hex. */
CIRC_MUST_CHECK int remote_new_token(char out[HEAD_TOKEN_HEX + 1], struct circ_err *err);

#endif
