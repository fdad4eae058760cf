/* SPDX-License-Identifier: MIT */
/*
 * `circ serve`: a repo directory over HTTP (libmicrohttpd, a thread pool).
 * The public objects are static GET and HEAD only, so that nginx or any CDN
 * can stand in for them. With a users file, users' trees (users/USER/) are
 * readable and writable by their user only, through HTTP Basic (upload.h).
 */
#ifndef CIRC_SERVER_H
#define CIRC_SERVER_H

#include <stdint.h>
#include <stdio.h>

#include "util/err.h"

#define SERVER_DEFAULT_LISTEN "127.0.0.1:8080"

struct fileio;

struct server_config {
	const char *repo_dir;
	/*
	 * Instead of repo_dir: a client's block cache (STATE/cache, blockfs/cache.h),
	 * whose verified blocks are served as blocks/XX/<64 hex>, compressed as a
	 * repo stores them; every other path is 404. A lab machine's --mirror for
	 * its neighbours.
	 */
	const char *cache_dir;
	const char *listen;     /* HOST:PORT or [V6]:PORT; port 0 picks a free one */
	unsigned threads;       /* 0: a default */
	FILE *access_log;       /* one line per request; NULL for none */
	const char *users_file; /* htpasswd file (bcrypt) of who may upload; NULL: read-only */
	uint64_t quota;         /* bytes per user under users/USER/; 0: no limit */
	/*
	 * What keeps the server answering under many idle or slow connections
	 * (slowloris): the connections it holds at once, those from one client
	 * address, and how long one may stay silent. 0 picks the defaults.
	 */
	unsigned max_connections; /* SERVER_DEFAULT_MAX_CONNECTIONS */
	unsigned max_per_client;  /* SERVER_DEFAULT_MAX_PER_CLIENT */
	unsigned idle_timeout;    /* seconds; SERVER_DEFAULT_IDLE_TIMEOUT */
	const struct fileio
	    *fio; /* uploads' writes, as a crash test records them; NULL: the system's */
};

#define SERVER_DEFAULT_MAX_CONNECTIONS 4096
#define SERVER_DEFAULT_MAX_PER_CLIENT  64
#define SERVER_DEFAULT_IDLE_TIMEOUT    15

struct server;

CIRC_MUST_CHECK int server_start(const struct server_config *cfg, struct server **out,
                                 struct circ_err *err);
/* The bound port (useful after asking for port 0). */
uint16_t server_port(const struct server *s);
/*
 * Reads the users file again (SIGHUP), without stopping: see auth_reload.
 * *n_users: the users it now lists. -1 with err when it does not load (the
 * users stay as they were) or the server has none (--users not given).
 */
CIRC_MUST_CHECK int server_reload_users(struct server *s, size_t *n_users, struct circ_err *err);
/* Stops accepting, finishes requests in flight, frees s. */
void server_stop(struct server *s);

#endif
