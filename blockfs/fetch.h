/* SPDX-License-Identifier: MIT */
/*
 * HTTP fetching of whole repository objects with libcurl: keep-alive
 * connections, HTTP/2 where offered, retries with backoff, mirrors with
 * failover. Thread-safe: any number of threads may call fetch_get at once.
 */
#ifndef CIRC_FETCH_H
#define CIRC_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/err.h"

struct fetch_config {
	const char *const *mirrors; /* base URLs, tried in order */
	size_t n_mirrors;
	long connect_timeout_ms; /* per attempt; 0 picks a default */
	/*
	 * fetch_get's retry window: every source is asked again, with backoff,
	 * until one answers or this passes; 0 picks a default (30 s).
	 */
	long deadline_ms;
	/* HTTP Basic credentials for every request, or NULL (copied; the password is wiped). */
	const char *user, *password;
};

/* Ask caches on the way not to answer from storage (pointers, refetches). */
#define FETCH_NO_CACHE 1u

/*
 * Checks a body before fetch_get accepts it. Returning -1 (with err set)
 * makes fetch_get try the next mirror, bypassing caches, so that one proxy's
 * corrupted copy is not the end of it.
 */
typedef int (*fetch_check_fn)(void *ctx, const struct buf *body, struct circ_err *err);

struct fetch_stats {
	uint64_t bytes;    /* body bytes received */
	uint64_t requests; /* HTTP requests made, retries included */
	uint64_t retries;  /* rounds that found no source answering, and paused */
	uint64_t failures; /* fetch_get calls that failed */
};

struct fetch;

struct fetch *fetch_new(const struct fetch_config *cfg, struct circ_err *err);
void fetch_free(struct fetch *f);

/*
 * Fetches MIRROR/path into out (replacing its contents). A body longer than
 * max_len is refused. A missing object sets errnum ENOENT; a server that could
 * not be reached, ENETUNREACH; a fetch that could not finish by the deadline,
 * ETIMEDOUT; a server that answered wrongly, EIO.
 */
CIRC_MUST_CHECK int fetch_get(struct fetch *f, const char *path, size_t max_len, unsigned flags,
                              fetch_check_fn check, void *check_ctx, struct buf *out,
                              struct circ_err *err);

/*
 * One request to the first mirror (uploads and compare-and-swap go to the
 * origin, never to a mirror), whatever its status: the caller judges it.
 * Transport failures and 5xx are retried until the deadline; PUTs must
 * therefore be idempotent.
 */
struct fetch_request {
	const char *method; /* "GET", "HEAD" or "PUT" */
	const void *body;   /* PUT */
	size_t body_len;
	const char *if_match;   /* an ETag: the request applies only to that version */
	bool if_none_match_any; /* "If-None-Match: *": only if it does not exist */
	const char *lease;      /* a fencing token, sent as Circ-Lease */
	size_t max_len;         /* response body bound */
};

struct fetch_response {
	long status;
	char etag[96];  /* "" when none */
	int64_t length; /* Content-Length, -1 when none (for HEAD) */
};

CIRC_MUST_CHECK int fetch_send(struct fetch *f, const char *path, const struct fetch_request *rq,
                               struct fetch_response *resp, struct buf *body, struct circ_err *err);

void fetch_get_stats(struct fetch *f, struct fetch_stats *st);

/* A download's body bytes so far and its size (0 when the server did not say). */
typedef void (*fetch_progress_fn)(void *ctx, uint64_t done, uint64_t total);
/*
 * Reports fetch_get's downloads from now on to fn, in the calling thread
 * (NULL: no more). Set it while no request is in flight: a command's single
 * large download (a manifest), not the block store's parallel reads.
 */
void fetch_set_progress(struct fetch *f, fetch_progress_fn fn, void *ctx);

#endif
