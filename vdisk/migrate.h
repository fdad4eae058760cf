/* SPDX-License-Identifier: MIT */
/*
 * Cold migration (docs/migration.md): a user's disk checked in to a server
 * as encrypted user layers and checked out on another machine under a
 * lease. A machine is a state directory: it has its own random ID.
 *
 * Secrets come through callbacks, asked only when needed: a disk checked
 * out here keeps its key and the server password in its secrets file.
 */
#ifndef CIRC_MIGRATE_H
#define CIRC_MIGRATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "util/err.h"
#include "vdisk/head.h"
#include "vdisk/state.h"

#define MIGRATE_SECRET_MAX 1024

struct migrate_prompt {
	/* The server password of user into out (NUL-terminated). */
	int (*password)(void *ctx, const char *user, char *out, size_t n, struct circ_err *err);
	/* The passphrase of user's key; confirm: a new key, ask twice. Returns its length. */
	int (*passphrase)(void *ctx, const char *user, bool confirm, char *out, size_t n,
	                  size_t *len, struct circ_err *err);
	void *ctx;
	/*
	 * The user named where the password is (a file): it replaces the one a
	 * disk keeps, which is how a changed server password reaches it.
	 */
	bool password_given;
};

struct push_options {
	const char *url;  /* NULL: the disk's own server */
	const char *user; /* NULL: the disk's own user */
	bool keep_lease;
	const struct state_net *net;
	struct migrate_prompt prompt;
	/* Called as the disk is scanned: bytes of it done of total. NULL: none. */
	void (*progress)(void *ctx, uint64_t done, uint64_t total);
	void *progress_ctx;
};

struct push_result {
	uint64_t version;        /* the check-in made (or the newest, if nothing changed) */
	uint64_t changed_blocks; /* blocks that differ from the base */
	uint64_t uploaded_blocks, uploaded_bytes;
	bool unchanged;                 /* nothing to check in */
	char branch[REPO_NAME_MAX + 1]; /* a stale check-in kept under this name ("" if not) */
};

/*
 * circ push: checks DISK in. A stale check-in (the lease was taken, or
 * another machine checked in since) is kept as the branch DISK.conflict-K,
 * named in res->branch, and push fails with EAGAIN saying so.
 */
CIRC_MUST_CHECK int migrate_push(const char *state, const char *disk, const struct push_options *o,
                                 struct push_result *res, struct circ_err *err);

struct checkout_options {
	const char *url, *user;
	uint64_t version; /* 0: the newest; N: check out N again, as a new check-in */
	bool steal;
	const char *key_path; /* the base image's publisher key, unless pinned already */
	const struct state_net *net;
	struct migrate_prompt prompt;
};

struct checkout_result {
	uint64_t version;
	bool created;                        /* a new local disk */
	char stolen_from[HEAD_HOST_MAX + 1]; /* "" unless --steal took a held lease */
};

/* circ checkout: takes DISK's lease and makes the local disk DISK (lazily). */
CIRC_MUST_CHECK int migrate_checkout(const char *state, const char *disk,
                                     const struct checkout_options *o, struct checkout_result *res,
                                     struct circ_err *err);

/* circ lease: the head of a checked-in DISK, as the server has it now. */
CIRC_MUST_CHECK int migrate_lease(const char *state, const char *disk, const struct state_net *net,
                                  struct user_head *head, struct circ_err *err);

/* One check-in, for circ log. */
struct migrate_log_entry {
	uint64_t version, created;
	char host[HEAD_HOST_MAX + 1];
	char machine[HEAD_MACHINE_HEX + 1];
	uint64_t bytes_uploaded;
	uint32_t blocks;
	char origin_disk[REPO_NAME_MAX + 1];
	uint64_t origin_version;
};

/* circ log: calls fn for each check-in of DISK, newest first. */
CIRC_MUST_CHECK int migrate_log(const char *state, const char *disk, const struct state_net *net,
                                int (*fn)(void *ctx, const struct migrate_log_entry *e), void *ctx,
                                struct circ_err *err);

/* circ create: a blank local disk of size bytes (reads as zeros, costs nothing). */
CIRC_MUST_CHECK int migrate_create_blank(const char *state, const char *disk, uint64_t size,
                                         uint32_t block_size, struct circ_err *err);

#endif
