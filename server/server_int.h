/* SPDX-License-Identifier: MIT */
/* What server.c shares with upload.c: the server and one request's record. */
#ifndef CIRC_SERVER_INT_H
#define CIRC_SERVER_INT_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "util/buf.h"
#include "blockfs/objects.h"
#include "blockfs/repo.h"
#include "server/auth.h"

struct MHD_Daemon;
struct block_encoder;

/* Compression contexts kept for reuse by a cache server (--cache). */
#define SERVER_ENCODERS 16

struct server {
	struct MHD_Daemon *daemon;
	int dirfd;
	const struct fileio *fio; /* what an upload writes goes through it */
	char *root;               /* realpath of the repo, for the fallback containment check */
	FILE *log;
	uint16_t port;
	struct auth *auth; /* NULL: read-only, and users/ does not exist */
	char *users_file;  /* where auth came from, for server_reload_users */
	uint64_t quota;    /* per user, bytes; 0: none */
	bool cache; /* dirfd is a client's block cache: blocks only, compressed per request */
	struct cache *blocks;     /* that cache, opened */
	pthread_mutex_t enc_lock; /* guards enc and n_enc */
	struct block_encoder *enc[SERVER_ENCODERS];
	size_t n_enc;
};

/* Quoted hex of the first 16 bytes of a SHA-256: 2 + 32 characters. */
#define SERVER_ETAG_MAX REPO_ETAG_MAX

/* Per-request record, created when the request line arrives. */
struct request {
	struct timespec start;
	char method[12];
	char *uri; /* as received, still percent-encoded */
	unsigned status;
	uint64_t bytes;   /* sent, or for a PUT received */
	const char *note; /* why a request was refused, or what it changed, for the log */
	char note_buf[192];
	bool headers_seen;
	unsigned early;     /* a refusal decided from the headers, sent once the request is read */
	const char *allow;  /* the Allow header of a 405 */
	bool put;           /* a PUT accepted so far: its body is read into body */
	bool put_too_large; /* the body passed the kind's bound */
	uint64_t dropped;   /* bytes of it read and dropped since */
	char rel[REPO_PATH_MAX];
	struct repo_object obj;
	struct auth_user *user; /* the authenticated user, or NULL */
	struct buf body;
	char etag[SERVER_ETAG_MAX]; /* of what a PUT stored, or "" */
};

/* Sets rq's log note from a format; returns status, for `return request_note(...)`. */
unsigned request_note(struct request *rq, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
