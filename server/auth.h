/* SPDX-License-Identifier: MIT */
/*
 * `circ serve --users FILE`: who may upload. FILE is an htpasswd file of
 * bcrypt hashes (`htpasswd -B`), read at start and again on auth_reload
 * (SIGHUP). A password is checked
 * with bcrypt the first time; afterwards against a salted SHA-256 kept in
 * memory, because bcrypt costs milliseconds and a client sends the same
 * credentials with every block it uploads.
 */
#ifndef CIRC_AUTH_H
#define CIRC_AUTH_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"
#include "blockfs/repo.h"

/* A bcrypt hash: "$2y$NN$" and 53 characters of salt and digest. */
#define AUTH_BCRYPT_LEN 60

/* A user's tree on the server: its writes are serialized here (upload.c). */
struct user_tree {
	pthread_mutex_t lock; /* held across every check-and-write of users/USER/ */
	bool usage_known;     /* usage walked from the disk yet? */
	uint64_t usage;       /* bytes of the files under users/USER/ */
};

struct auth_user {
	char name[REPO_NAME_MAX + 1];
	char hash[AUTH_BCRYPT_LEN + 1]; /* under the auth lock: a reload may change it */
	bool disabled;                  /* under the auth lock: a reload took the user out */
	/* Under the auth lock: the last password bcrypt accepted, and for which hash. */
	bool cached;
	uint8_t cache_digest[32];
	char cache_hash[AUTH_BCRYPT_LEN + 1];
	struct user_tree tree;
};

enum auth_result {
	AUTH_OK,
	AUTH_UNKNOWN_USER,
	AUTH_WRONG_PASSWORD,
	AUTH_ERROR, /* out of memory, or crypt failed */
};

struct auth;

/*
 * Loads an htpasswd file: lines "user:hash", blank lines and "#" comments
 * skipped. User names must be valid repo names; hashes must be bcrypt. An
 * error names the line, never the hash.
 */
CIRC_MUST_CHECK int auth_load(const char *path, struct auth **out, struct circ_err *err);
/*
 * Reads path again: users added can log in, users removed no longer can
 * (requests already under way finish), a changed hash takes effect at the
 * next request. A file that does not load changes nothing. *n_users: the
 * users the file now lists. Thread-safe beside auth_check.
 */
CIRC_MUST_CHECK int auth_reload(struct auth *a, const char *path, size_t *n_users,
                                struct circ_err *err);
void auth_free(struct auth *a);

/* Checks user's password; on AUTH_OK, *out is the user. Thread-safe. */
enum auth_result auth_check(struct auth *a, const char *user, const char *pass,
                            struct auth_user **out);

#endif
