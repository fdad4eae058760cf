/* SPDX-License-Identifier: MIT */
#include "blockfs/fetch.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#define FETCH_DEFAULT_CONNECT_MS  5000
#define FETCH_DEFAULT_DEADLINE_MS 30000
#define FETCH_BACKOFF_FIRST_MS    100
#define FETCH_BACKOFF_MAX_MS      2000
#define FETCH_DOWN_WINDOW_MS      1000
#define FETCH_ATTEMPT_MIN_MS      1000 /* the least one source's turn takes, where several are open */

struct fetch {
	char **mirrors;
	size_t n_mirrors;
	long connect_timeout_ms;
	long deadline_ms;
	char *user, *password;

	pthread_mutex_t lock; /* guards idle and stats */
	CURL **idle;          /* easy handles kept for their open connections */
	size_t n_idle, cap_idle;
	struct fetch_stats stats;
	fetch_progress_fn progress;
	void *progress_ctx;
	/*
	 * A fetch_get found no source answering in its whole window: until one
	 * answers again, later ones try for a short window only (1 s, or three
	 * times the slowest recent request on a slow link). A reader
	 * asking again at once (the kernel reads a page itself after its
	 * read-ahead of it failed) does not wait a second whole window, and
	 * one that asks after the server is back is answered. Guarded by lock.
	 */
	bool down;
	long slow_ms; /* a decaying maximum of successful requests' times */
};

struct sink {
	struct buf *out;
	size_t max_len;
	bool too_big;
	const struct fetch *f; /* for its progress callback; NULL for fetch_send */
	CURL *h;
};

static size_t sink_write(char *data, size_t size, size_t nmemb, void *user)
{
	struct sink *s = user;
	size_t n = size * nmemb;

	if (n > s->max_len - s->out->len) {
		s->too_big = true;
		return 0; /* aborts the transfer */
	}
	if (buf_append(s->out, data, n))
		return 0;
	if (s->f && s->f->progress) {
		curl_off_t total = -1;

		curl_easy_getinfo(s->h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &total);
		s->f->progress(s->f->progress_ctx, s->out->len, total > 0 ? (uint64_t)total : 0);
	}
	return n;
}

/*
 * Whether curl failed to reach the server at all (ENETUNREACH, ETIMEDOUT)
 * or reached something that answered wrongly (EIO: TLS refused, bad
 * protocol): only the former means "offline" to a caller.
 */
static int transport_errnum(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
		return ENETUNREACH;
	case CURLE_OPERATION_TIMEDOUT:
		return ETIMEDOUT;
	default:
		return EIO;
	}
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct fetch *fetch_new(const struct fetch_config *cfg, struct circ_err *err)
{
	struct fetch *f;

	if (!cfg->n_mirrors) {
		err_set(err, EINVAL, "no URL to fetch from");
		return NULL;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
		err_set(err, EIO, "libcurl failed to initialise");
		return NULL;
	}
	f = calloc(1, sizeof(*f));
	if (!f)
		goto nomem;
	/* First, so that every failure below can go through fetch_free. */
	pthread_mutex_init(&f->lock, NULL);
	f->mirrors = calloc(cfg->n_mirrors, sizeof(*f->mirrors));
	if (!f->mirrors)
		goto nomem;
	f->n_mirrors = cfg->n_mirrors;
	for (size_t i = 0; i < cfg->n_mirrors; i++) {
		size_t n = strlen(cfg->mirrors[i]);

		/* Strip trailing slashes so "URL/" and "URL" name the same repo. */
		while (n > 0 && cfg->mirrors[i][n - 1] == '/')
			n--;
		f->mirrors[i] = strndup(cfg->mirrors[i], n);
		if (!f->mirrors[i])
			goto nomem;
	}
	f->connect_timeout_ms =
	    cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : FETCH_DEFAULT_CONNECT_MS;
	f->deadline_ms = cfg->deadline_ms > 0 ? cfg->deadline_ms : FETCH_DEFAULT_DEADLINE_MS;
	if (cfg->user) {
		f->user = strdup(cfg->user);
		f->password = strdup(cfg->password ? cfg->password : "");
		if (!f->user || !f->password)
			goto nomem;
	}
	return f;
nomem:
	fetch_free(f);
	err_set(err, ENOMEM, "out of memory");
	return NULL;
}

void fetch_free(struct fetch *f)
{
	if (!f)
		return;
	free(f->user);
	if (f->password) {
		explicit_bzero(f->password, strlen(f->password));
		free(f->password);
	}
	if (f->mirrors) {
		for (size_t i = 0; i < f->n_mirrors; i++)
			free(f->mirrors[i]);
		free(f->mirrors);
	}
	for (size_t i = 0; i < f->n_idle; i++)
		curl_easy_cleanup(f->idle[i]);
	free(f->idle);
	pthread_mutex_destroy(&f->lock);
	free(f);
	curl_global_cleanup();
}

static CURL *handle_take(struct fetch *f)
{
	CURL *h = NULL;

	pthread_mutex_lock(&f->lock);
	if (f->n_idle)
		h = f->idle[--f->n_idle];
	pthread_mutex_unlock(&f->lock);
	if (h)
		return h;
	h = curl_easy_init();
	if (!h)
		return NULL;
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_USERAGENT, "circ/1");
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink_write);
	if (f->user) {
		/* curl sends them to the first host only, never after a redirect elsewhere. */
		curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(h, CURLOPT_USERNAME, f->user);
		curl_easy_setopt(h, CURLOPT_PASSWORD, f->password);
	}
	return h;
}

static void handle_give(struct fetch *f, CURL *h)
{
	pthread_mutex_lock(&f->lock);
	if (f->n_idle == f->cap_idle) {
		size_t cap = f->cap_idle ? f->cap_idle * 2 : 8;
		CURL **p = realloc(f->idle, cap * sizeof(*p));

		if (!p) {
			pthread_mutex_unlock(&f->lock);
			curl_easy_cleanup(h);
			return;
		}
		f->idle = p;
		f->cap_idle = cap;
	}
	f->idle[f->n_idle++] = h;
	pthread_mutex_unlock(&f->lock);
}

enum attempt_result {
	ATTEMPT_OK,
	ATTEMPT_TRANSIENT, /* nobody answered, or "later" (5xx, 429, a cut body): try again */
	ATTEMPT_ANSWERED,  /* this source's answer stands (404, 403, too big): not again */
	ATTEMPT_FATAL
};

/* One request, given limit_ms in all; *status is the HTTP answer's (0: none came). */
static enum attempt_result attempt(struct fetch *f, CURL *h, const char *url, size_t max_len,
                                   unsigned flags, long limit_ms, struct buf *out, long *status,
                                   struct circ_err *err)
{
	struct sink sink = { .out = out, .max_len = max_len, .f = f, .h = h };
	struct curl_slist *headers = NULL;
	CURLcode rc;

	buf_reset(out);
	if (flags & FETCH_NO_CACHE)
		headers = curl_slist_append(NULL, "Cache-Control: no-cache");
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
	                 limit_ms < f->connect_timeout_ms ? limit_ms : f->connect_timeout_ms);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, limit_ms);
	rc = curl_easy_perform(h);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(headers);
	*status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);

	pthread_mutex_lock(&f->lock);
	f->stats.requests++;
	f->stats.bytes += out->len;
	pthread_mutex_unlock(&f->lock);

	if (sink.too_big) {
		err_set(err, EFBIG, "%s: response larger than %zu bytes", url, max_len);
		return ATTEMPT_ANSWERED;
	}
	if (rc != CURLE_OK) {
		err_set(err, transport_errnum(rc), "%s: %s", url, curl_easy_strerror(rc));
		return rc == CURLE_OUT_OF_MEMORY ? ATTEMPT_FATAL : ATTEMPT_TRANSIENT;
	}
	if (*status == 200)
		return ATTEMPT_OK;
	if (*status == 404 || *status == 410) {
		err_set(err, ENOENT, "%s: not found (HTTP %ld)", url, *status);
		return ATTEMPT_ANSWERED;
	}
	err_set(err, EIO, "%s: HTTP %ld", url, *status);
	return *status >= 500 || *status == 429 ? ATTEMPT_TRANSIENT : ATTEMPT_ANSWERED;
}

/*
 * The pause before the next round: doubling from FETCH_BACKOFF_FIRST_MS up
 * to FETCH_BACKOFF_MAX_MS, each drawn from [d/2, d] so that clients that
 * lost the same server do not come back in step.
 */
static long backoff_ms(unsigned round, uint64_t *seed)
{
	long d = FETCH_BACKOFF_FIRST_MS;

	for (unsigned i = 0; i < round && d < FETCH_BACKOFF_MAX_MS; i++)
		d *= 2;
	if (d > FETCH_BACKOFF_MAX_MS)
		d = FETCH_BACKOFF_MAX_MS;
	/* xorshift64: jitter needs no quality, only independence between clients. */
	*seed ^= *seed << 13;
	*seed ^= *seed >> 7;
	*seed ^= *seed << 17;
	return d / 2 + (long)(*seed % (uint64_t)(d / 2 + 1));
}

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* What a source said for good within one fetch_get. */
enum source_state {
	SOURCE_OPEN,    /* not asked yet, or said "later": ask again */
	SOURCE_MISSING, /* 404 */
	SOURCE_REFUSED  /* another answer that stands: 403, too big, bad bytes */
};

/*
 * The window while the sources are down: long enough for one request on
 * this client's slowest recent link (a TLS handshake far away), else 1 s.
 */
static long down_window_ms(const struct fetch *f)
{
	long w = 3 * f->slow_ms;

	if (w < FETCH_DOWN_WINDOW_MS)
		w = FETCH_DOWN_WINDOW_MS;
	return w < f->deadline_ms ? w : f->deadline_ms;
}

/* A source answered (with any HTTP status): the sources are not down. */
static void note_answer(struct fetch *f, long status, long took_ms)
{
	pthread_mutex_lock(&f->lock);
	f->down = false;
	if (status == 200)
		f->slow_ms = took_ms > f->slow_ms * 7 / 8 ? took_ms : f->slow_ms * 7 / 8;
	pthread_mutex_unlock(&f->lock);
}

int fetch_get(struct fetch *f, const char *path, size_t max_len, unsigned flags,
              fetch_check_fn check, void *check_ctx, struct buf *out, struct circ_err *err)
{
	enum source_state *sources;
	struct circ_err local;
	struct timespec ts;
	bool tried = false, answered = false;
	long window, deadline;
	char *url = NULL;
	uint64_t seed;
	CURL *h;
	int ret = -1;

	if (!err)
		err = &local;
	pthread_mutex_lock(&f->lock);
	window = f->down ? down_window_ms(f) : f->deadline_ms;
	pthread_mutex_unlock(&f->lock);
	deadline = now_ms() + window;
	clock_gettime(CLOCK_REALTIME, &ts);
	seed = ((uint64_t)ts.tv_nsec ^ (uint64_t)(uintptr_t)&ts ^ (uint64_t)getpid() << 32) | 1;
	h = handle_take(f);
	sources = calloc(f->n_mirrors, sizeof(*sources));
	if (!h || !sources) {
		err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	/*
	 * A retry window, not a retry count: every source is asked in turn, round
	 * after round, until one answers or the deadline passes. A server that
	 * restarts within the window costs the reader a delay, never an error.
	 */
	for (unsigned round = 0;; round++) {
		size_t open = 0, missing = 0;
		long pause, remaining;

		for (size_t m = 0; m < f->n_mirrors; m++)
			open += sources[m] == SOURCE_OPEN;
		for (size_t m = 0; m < f->n_mirrors; m++) {
			enum attempt_result r;
			long status, limit, t0;

			if (sources[m] != SOURCE_OPEN)
				continue;
			remaining = deadline - now_ms();
			if (remaining <= 0)
				goto timed_out;
			/* A source that hangs must not take the others' turn: each gets a share. */
			limit = open > 1 ? remaining / (long)open : remaining;
			if (limit < FETCH_ATTEMPT_MIN_MS)
				limit = remaining < FETCH_ATTEMPT_MIN_MS ? remaining
				                                         : FETCH_ATTEMPT_MIN_MS;
			free(url);
			if (asprintf(&url, "%s/%s", f->mirrors[m], path) < 0) {
				url = NULL;
				err_set(err, ENOMEM, "out of memory");
				goto out;
			}
			tried = true;
			t0 = now_ms();
			r = attempt(f, h, url, max_len, flags, limit, out, &status, err);
			if (status) {
				answered = true;
				note_answer(f, status, now_ms() - t0);
			}
			if (r == ATTEMPT_OK) {
				if (!check || check(check_ctx, out, err) == 0) {
					ret = 0;
					goto out;
				}
				err_prefix(err, "%s", url);
				/* Bad bytes: the next source, past any cache; this one is done. */
				flags |= FETCH_NO_CACHE;
				sources[m] = SOURCE_REFUSED;
			} else if (r == ATTEMPT_FATAL) {
				goto out;
			} else if (r == ATTEMPT_ANSWERED) {
				sources[m] =
				    err->errnum == ENOENT ? SOURCE_MISSING : SOURCE_REFUSED;
			}
		}
		open = 0;
		for (size_t m = 0; m < f->n_mirrors; m++) {
			open += sources[m] == SOURCE_OPEN;
			missing += sources[m] == SOURCE_MISSING;
		}
		if (!open) {
			/* Every source has answered for good: the last answer is the error. */
			if (missing == f->n_mirrors)
				err->errnum = ENOENT;
			goto out;
		}
		pause = backoff_ms(round, &seed);
		remaining = deadline - now_ms();
		if (remaining <= 0)
			goto timed_out;
		sleep_ms(pause < remaining ? pause : remaining);
		pthread_mutex_lock(&f->lock);
		f->stats.retries++;
		pthread_mutex_unlock(&f->lock);
	}
timed_out:
	if (!tried) {
		err_set(err, ETIMEDOUT, "%s: no time left to ask a source (%ld ms)", path, window);
	} else {
		char last[CIRC_ERR_MSG_MAX];

		snprintf(last, sizeof(last), "%s", err->msg);
		/*
		 * A source that answered, if only with errors, is up: that is a
		 * failing server (EIO), not an unreachable one, and no reason to
		 * shorten the next reads' window.
		 */
		if (answered) {
			err_set(err, EIO, "%s: no good answer within %ld ms (last: %s)", path,
			        window, last);
		} else {
			err_set(err, ETIMEDOUT, "%s: no source answered within %ld ms (last: %s)",
			        path, window, last);
			pthread_mutex_lock(&f->lock);
			f->down = true;
			pthread_mutex_unlock(&f->lock);
		}
	}
out:
	free(url);
	free(sources);
	if (ret) {
		buf_reset(out);
		pthread_mutex_lock(&f->lock);
		f->stats.failures++;
		pthread_mutex_unlock(&f->lock);
	}
	if (h)
		handle_give(f, h);
	return ret;
}

struct header_sink {
	struct fetch_response *resp;
};

static size_t header_write(char *data, size_t size, size_t nmemb, void *user)
{
	struct header_sink *hs = user;
	size_t n = size * nmemb, v;

	if (n > 5 && strncasecmp(data, "ETag:", 5) == 0) {
		for (v = 5; v < n && (data[v] == ' ' || data[v] == '\t'); v++)
			;
		while (n > v && (data[n - 1] == '\r' || data[n - 1] == '\n' || data[n - 1] == ' '))
			n--;
		if (n - v < sizeof(hs->resp->etag)) {
			memcpy(hs->resp->etag, data + v, n - v);
			hs->resp->etag[n - v] = '\0';
		}
	}
	return size * nmemb;
}

/* One attempt of fetch_send; the handle is left as a plain GET for the pool. */
static CURLcode send_once(CURL *h, const char *url, const struct fetch_request *rq,
                          long remaining_ms, long connect_ms, struct fetch_response *resp,
                          struct sink *sink)
{
	struct header_sink hs = { .resp = resp };
	struct curl_slist *headers = NULL;
	char line[160];
	CURLcode rc;

	resp->status = 0;
	resp->etag[0] = '\0';
	buf_reset(sink->out);
	/* No "100 continue" round trip: bodies here are small or already expected. */
	headers = curl_slist_append(headers, "Expect:");
	if (rq->if_match) {
		snprintf(line, sizeof(line), "If-Match: %s", rq->if_match);
		headers = curl_slist_append(headers, line);
	}
	if (rq->if_none_match_any)
		headers = curl_slist_append(headers, "If-None-Match: *");
	if (rq->lease) {
		snprintf(line, sizeof(line), "Circ-Lease: %s", rq->lease);
		headers = curl_slist_append(headers, line);
	}
	headers = curl_slist_append(headers, "Cache-Control: no-cache");
	if (strcmp(rq->method, "PUT") == 0) {
		headers = curl_slist_append(headers, "Content-Type: application/octet-stream");
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PUT");
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, rq->body ? rq->body : "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
	} else if (strcmp(rq->method, "HEAD") == 0) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, sink);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_write);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, &hs);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
	                 remaining_ms < connect_ms ? remaining_ms : connect_ms);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, remaining_ms);
	rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
	{
		curl_off_t cl = -1;

		curl_easy_getinfo(h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
		resp->length = cl;
	}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, NULL);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, NULL);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, NULL);
	curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	curl_slist_free_all(headers);
	return rc;
}

int fetch_send(struct fetch *f, const char *path, const struct fetch_request *rq,
               struct fetch_response *resp, struct buf *body, struct circ_err *err)
{
	long deadline = now_ms() + f->deadline_ms, backoff = FETCH_BACKOFF_FIRST_MS;
	struct buf scratch = { 0 };
	struct sink sink = { .out = body ? body : &scratch, .max_len = rq->max_len };
	char *url;
	CURL *h;
	int ret = -1;

	if (asprintf(&url, "%s/%s", f->mirrors[0], path) < 0)
		return err_set(err, ENOMEM, "out of memory");
	h = handle_take(f);
	if (!h) {
		free(url);
		return err_set(err, ENOMEM, "out of memory");
	}
	for (;;) {
		long remaining = deadline - now_ms();
		CURLcode rc;

		if (remaining <= 0) {
			err_set(err, ETIMEDOUT, "%s: no answer within %ld ms", url, f->deadline_ms);
			break;
		}
		sink.too_big = false;
		rc = send_once(h, url, rq, remaining, f->connect_timeout_ms, resp, &sink);
		pthread_mutex_lock(&f->lock);
		f->stats.requests++;
		f->stats.bytes += sink.out->len;
		pthread_mutex_unlock(&f->lock);
		if (sink.too_big) {
			err_set(err, EFBIG, "%s: response larger than %zu bytes", url, rq->max_len);
			break;
		}
		/* An answer is final unless the server says it may go better later. */
		if (rc == CURLE_OK && resp->status != 429 && resp->status != 500 &&
		    resp->status != 502 && resp->status != 503 && resp->status != 504) {
			ret = 0;
			break;
		}
		if (rc == CURLE_OK)
			err_set(err, EIO, "%s: HTTP %ld", url, resp->status);
		else
			err_set(err, transport_errnum(rc), "%s: %s", url, curl_easy_strerror(rc));
		if (rc == CURLE_OUT_OF_MEMORY || backoff > deadline - now_ms())
			break;
		{
			struct timespec ts = { .tv_sec = backoff / 1000,
				               .tv_nsec = (backoff % 1000) * 1000000 };

			nanosleep(&ts, NULL);
		}
		backoff = backoff * 2 > FETCH_BACKOFF_MAX_MS ? FETCH_BACKOFF_MAX_MS : backoff * 2;
	}
	handle_give(f, h);
	buf_free(&scratch);
	free(url);
	return ret;
}

void fetch_get_stats(struct fetch *f, struct fetch_stats *st)
{
	pthread_mutex_lock(&f->lock);
	*st = f->stats;
	pthread_mutex_unlock(&f->lock);
}

void fetch_set_progress(struct fetch *f, fetch_progress_fn fn, void *ctx)
{
	f->progress = fn;
	f->progress_ctx = ctx;
}
