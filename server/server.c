/* SPDX-License-Identifier: MIT */
#include "server/server.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/openat2.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "util/file.h"
#include "util/fileio.h"
#include "blockfs/block.h"
#include "blockfs/cache.h"
#include "server/auth.h"
#include "server/path.h"
#include "server/server_int.h"
#include "server/upload.h"

#define DEFAULT_THREADS 8
#define AUTH_REALM      "Basic realm=\"circ\""
#define ALLOW_READ      "GET, HEAD"
#define ALLOW_WRITE     "GET, HEAD, PUT"
/* A cache server compresses blocks as `circ publish` stores them by default. */
#define CACHE_BLOCK_LEVEL 3

unsigned request_note(struct request *rq, unsigned status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rq->note_buf, sizeof(rq->note_buf), fmt, ap);
	va_end(ap);
	rq->note = rq->note_buf;
	return status;
}

static double elapsed_ms(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start->tv_sec) * 1e3 +
	       (double)(now.tv_nsec - start->tv_nsec) / 1e6;
}

static void *request_begin(void *cls, const char *uri, struct MHD_Connection *con)
{
	struct request *rq = calloc(1, sizeof(*rq));

	(void)cls;
	(void)con;
	if (!rq)
		return NULL;
	clock_gettime(CLOCK_MONOTONIC, &rq->start);
	rq->uri = strdup(uri);
	snprintf(rq->method, sizeof(rq->method), "-");
	return rq;
}

static void client_address(struct MHD_Connection *con, char *out, size_t n)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(con, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;
	socklen_t len = 0;

	snprintf(out, n, "-");
	if (!sa)
		return;
	len = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	getnameinfo(sa, len, out, (socklen_t)n, NULL, 0, NI_NUMERICHOST);
}

static void request_end(void *cls, struct MHD_Connection *con, void **con_cls,
                        enum MHD_RequestTerminationCode toe)
{
	struct server *s = cls;
	struct request *rq = *con_cls;
	char addr[64];

	if (!rq)
		return;
	if (s->log) {
		client_address(con, addr, sizeof(addr));
		/* One fprintf per line: stdio locks the stream, so lines never interleave. */
		fprintf(s->log, "%s %s %s %u %" PRIu64 " %.3fms%s%s\n", addr, rq->method,
		        rq->uri ? rq->uri : "-", rq->status, rq->bytes, elapsed_ms(&rq->start),
		        rq->note ? " " : (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " "),
		        rq->note ? rq->note
		                 : (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : "aborted"));
		fflush(s->log);
	}
	free(rq->uri);
	buf_free(&rq->body);
	free(rq);
	*con_cls = NULL;
}

/* An answer without a body; the headers a status needs (Allow, WWW-Authenticate, ETag). */
static enum MHD_Result reply_status(struct MHD_Connection *con, struct request *rq, unsigned status)
{
	static const char body[] = "";
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(0, (void *)body, MHD_RESPMEM_PERSISTENT);
	enum MHD_Result ret;

	if (!r)
		return MHD_NO;
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW,
		                        rq->allow ? rq->allow : ALLOW_READ);
	if (status == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, AUTH_REALM);
	if (rq->etag[0])
		MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, rq->etag);
	rq->status = status;
	ret = MHD_queue_response(con, status, r);
	MHD_destroy_response(r);
	return ret;
}

/*
 * What a failed open answers: 403 for a way out, 404 only for what is not
 * there, and 503 for the rest (out of descriptors or memory, an I/O error),
 * which clients take as "later" where a 404 would be final.
 */
static unsigned open_failure_status(struct request *rq, int e, const char *what)
{
	if (e == EXDEV || e == ELOOP)
		return request_note(rq, MHD_HTTP_FORBIDDEN, "refused: leads outside the %s", what);
	if (e == ENOENT || e == ENOTDIR)
		return MHD_HTTP_NOT_FOUND;
	return request_note(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "cannot open: %s", strerror(e));
}

/* Opens rel beneath the repo; a symlink leading out fails with EXDEV. */
static int open_beneath(struct server *s, const char *rel)
{
	struct open_how how = {
		.flags = O_RDONLY | O_CLOEXEC,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
	};
	char proc[64], real[PATH_MAX];
	size_t rootlen = strlen(s->root);
	ssize_t n;
	int fd;

	fd = (int)syscall(SYS_openat2, s->dirfd, rel, &how, sizeof(how));
	if (fd >= 0 || errno != ENOSYS)
		return fd;
	/* Kernels before 5.6: open, then check where the descriptor really points. */
	fd = openat(s->dirfd, rel, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	n = readlink(proc, real, sizeof(real) - 1);
	if (n < 0 || (size_t)n <= rootlen || strncmp(real, s->root, rootlen) != 0 ||
	    real[rootlen] != '/') {
		close(fd);
		errno = EXDEV;
		return -1;
	}
	return fd;
}

/*
 * The credentials of the request must be those of the user whose tree it
 * names (rq->obj.user): 0, or 401 (none, or wrong) or 403 (another user's).
 */
static unsigned authenticate(struct server *s, struct MHD_Connection *con, struct request *rq,
                             bool write)
{
	char *pass = NULL;
	char *user = MHD_basic_auth_get_username_password(con, &pass);
	struct auth_user *u = NULL;
	unsigned status = 0;

	if (!user || !pass)
		status = request_note(rq, MHD_HTTP_UNAUTHORIZED, "refused: no credentials");
	else
		switch (auth_check(s->auth, user, pass, &u)) {
		case AUTH_OK:
			break;
		case AUTH_UNKNOWN_USER:
			/* Not named: a password typed into the user field would land in the log. */
			status = request_note(rq, MHD_HTTP_UNAUTHORIZED, "refused: unknown user");
			break;
		case AUTH_WRONG_PASSWORD:
			status = request_note(rq, MHD_HTTP_UNAUTHORIZED,
			                      "refused: wrong password for %s", user);
			break;
		default:
			status = request_note(rq, MHD_HTTP_INTERNAL_SERVER_ERROR,
			                      "error: cannot check a password");
			break;
		}
	if (!status && strcmp(u->name, rq->obj.user) != 0)
		status = request_note(rq, MHD_HTTP_FORBIDDEN, "refused: %s may not %s %s's tree",
		                      u->name, write ? "write" : "read", rq->obj.user);
	if (!status)
		rq->user = u;
	if (pass) {
		explicit_bzero(pass, strlen(pass));
		MHD_free(pass);
	}
	if (user)
		MHD_free(user);
	return status;
}

/*
 * Decides a request from its headers: 0 to go on, or the status to answer.
 * Only objects of the format are served (blockfs/objects.h), so nothing
 * else left in the directory (a private key, a temporary) ever is.
 */
static unsigned route(struct server *s, struct MHD_Connection *con, struct request *rq,
                      const char *url, const char *method)
{
	bool read =
	    strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
	bool put = strcmp(method, MHD_HTTP_METHOD_PUT) == 0;
	unsigned status = server_path_to_rel(url, rq->rel, sizeof(rq->rel));
	bool known = !status && repo_object_classify(rq->rel, &rq->obj);
	bool user_obj = known && rq->obj.kind->writer == REPO_WRITER_USER;

	/* Without --users the server is read-only whatever the path, as a static server is. */
	if (!read && !(put && s->auth)) {
		rq->allow = s->auth && user_obj ? ALLOW_WRITE : ALLOW_READ;
		return request_note(rq, MHD_HTTP_METHOD_NOT_ALLOWED, "refused: %s not allowed",
		                    method);
	}
	/* MHD decodes %00 into a NUL that would cut the path short: another object's name. */
	if (rq->uri && strstr(rq->uri, "%00"))
		return request_note(rq, MHD_HTTP_BAD_REQUEST, "refused: %%00 in the path");
	if (status == MHD_HTTP_FORBIDDEN)
		return request_note(rq, status, "refused: path traversal");
	if (status)
		return status;
	if (!known || (user_obj && !s->auth))
		return MHD_HTTP_NOT_FOUND;
	/* A cache holds blocks only: pointers and manifests come from the next mirror. */
	if (s->cache && rq->obj.kind->type != REPO_OBJ_BLOCK)
		return MHD_HTTP_NOT_FOUND;
	if (!user_obj) {
		if (!put)
			return 0;
		rq->allow = ALLOW_READ;
		return request_note(rq, MHD_HTTP_METHOD_NOT_ALLOWED, "refused: public, read-only");
	}
	rq->allow = ALLOW_WRITE;
	status = authenticate(s, con, rq, put);
	if (!status && put)
		status = upload_begin(con, rq);
	return status;
}

/* Reads a file whole from fd: keys and heads (a few KiB), a cache's blocks (4 MiB at most). */
static int read_small(int fd, uint64_t size, struct buf *out)
{
	int rc;

	if (buf_reserve(out, (size_t)size))
		return -ENOMEM;
	rc = file_pread_full(fd, out->data, (size_t)size, 0);
	if (!rc)
		out->len = (size_t)size;
	return rc;
}

static enum MHD_Result serve_file(struct server *s, struct MHD_Connection *con, struct request *rq,
                                  const char *method)
{
	const struct repo_object_kind *kind = rq->obj.kind;
	struct MHD_Response *r;
	char etag[64];
	const char *inm;
	struct buf content = { 0 };
	struct stat st;
	unsigned status;
	enum MHD_Result ret;
	int fd = open_beneath(s, rq->rel);

	if (fd < 0) {
		status = open_failure_status(rq, errno, "repo");
		return reply_status(con, rq, status);
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		close(fd);
		return reply_status(con, rq, MHD_HTTP_NOT_FOUND);
	}
	/*
	 * A user's mutable objects are replaced by compare-and-swap on their
	 * ETag, so it must change with every write, even two in one second
	 * that keep the size: a hash of the content (repo_content_etag). A
	 * block's tells a pushing client whether the copy here is whole.
	 */
	if (kind->writer == REPO_WRITER_USER &&
	    (kind->is_mutable || kind->type == REPO_OBJ_USER_BLOCK) &&
	    (uint64_t)st.st_size <= kind->max_len) {
		if (read_small(fd, (uint64_t)st.st_size, &content)) {
			close(fd);
			buf_free(&content);
			return reply_status(con, rq, MHD_HTTP_INTERNAL_SERVER_ERROR);
		}
		repo_content_etag(content.data, content.len, etag);
	} else {
		snprintf(etag, sizeof(etag), "\"%" PRIx64 "-%" PRIx64 "-%" PRIx64 "\"",
		         (uint64_t)st.st_ino, (uint64_t)st.st_size,
		         (uint64_t)st.st_mtim.tv_sec * 1000000000u + (uint64_t)st.st_mtim.tv_nsec);
	}
	inm = MHD_lookup_connection_value(con, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
	if (inm && strcmp(inm, etag) == 0) {
		close(fd);
		r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
		status = MHD_HTTP_NOT_MODIFIED;
	} else {
		if (content.data) {
			close(fd);
			r = MHD_create_response_from_buffer(content.len, content.data,
			                                    MHD_RESPMEM_MUST_COPY);
		} else {
			/* MHD owns fd from here, and uses sendfile for it. */
			r = MHD_create_response_from_fd64((uint64_t)st.st_size, fd);
			if (!r)
				close(fd);
		}
		status = MHD_HTTP_OK;
		rq->bytes = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0 ? 0 : (uint64_t)st.st_size;
	}
	buf_free(&content);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, etag);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, kind->cache_control);
	if (status == MHD_HTTP_OK)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
		                        "application/octet-stream");
	rq->status = status;
	ret = MHD_queue_response(con, status, r);
	MHD_destroy_response(r);
	return ret;
}

static struct block_encoder *encoder_take(struct server *s)
{
	struct block_encoder *enc = NULL;

	pthread_mutex_lock(&s->enc_lock);
	if (s->n_enc)
		enc = s->enc[--s->n_enc];
	pthread_mutex_unlock(&s->enc_lock);
	return enc ? enc : block_encoder_new(CACHE_BLOCK_LEVEL);
}

static void encoder_give(struct server *s, struct block_encoder *enc)
{
	pthread_mutex_lock(&s->enc_lock);
	if (s->n_enc < SERVER_ENCODERS) {
		s->enc[s->n_enc++] = enc;
		enc = NULL;
	}
	pthread_mutex_unlock(&s->enc_lock);
	block_encoder_free(enc);
}

/*
 * --cache: block rq->obj.id from a client's cache (blockfs/cache.h), which
 * checks each block's XXH3 before it first serves it, so a torn or damaged
 * entry is never sent (404: the client moves on to its next mirror); then
 * it is compressed as a repo stores it. Clients verify every block by its
 * ID whatever the source, so a cache server cannot inject anything: the
 * check here only spares them a useless transfer.
 */
static enum MHD_Result serve_cached_block(struct server *s, struct MHD_Connection *con,
                                          struct request *rq, const char *method)
{
	char hex[BLOCK_ID_HEX_LEN + 1], etag[BLOCK_ID_HEX_LEN + 3];
	struct buf raw = { 0 }, comp = { 0 };
	struct block_encoder *enc;
	struct MHD_Response *r;
	struct circ_err err;
	const char *inm;
	unsigned status;
	enum MHD_Result ret;
	size_t size;
	int rc;

	block_id_to_hex(&rq->obj.id, hex);
	if (cache_block_size(s->blocks, &rq->obj.id, &size))
		return reply_status(con, rq, MHD_HTTP_NOT_FOUND);
	rc = buf_reserve(&raw, size);
	if (!rc)
		rc = cache_read(s->blocks, &rq->obj.id, size, 0, size, raw.data);
	if (rc) {
		buf_free(&raw);
		if (rc == -ENOENT)
			return reply_status(
			    con, rq,
			    request_note(rq, MHD_HTTP_NOT_FOUND, "refused: damaged cache entry"));
		return reply_status(con, rq,
		                    request_note(rq, MHD_HTTP_NOT_FOUND,
		                                 "refused: unreadable cache entry: %s",
		                                 strerror(rc < 0 ? -rc : ENOMEM)));
	}
	raw.len = size;
	/* The name is the hash of the content: a strong validator on any server. */
	snprintf(etag, sizeof(etag), "\"%s\"", hex);
	inm = MHD_lookup_connection_value(con, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
	if (inm && strcmp(inm, etag) == 0) {
		r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
		status = MHD_HTTP_NOT_MODIFIED;
	} else {
		enc = encoder_take(s);
		if (!enc || block_encode(enc, raw.data, raw.len, &comp, &err)) {
			if (enc)
				encoder_give(s, enc);
			buf_free(&raw);
			buf_free(&comp);
			return reply_status(con, rq,
			                    request_note(rq, MHD_HTTP_INTERNAL_SERVER_ERROR,
			                                 "error: %s",
			                                 enc ? err.msg : "out of memory"));
		}
		encoder_give(s, enc);
		r = MHD_create_response_from_buffer(comp.len, comp.data, MHD_RESPMEM_MUST_COPY);
		status = MHD_HTTP_OK;
		rq->bytes = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0 ? 0 : comp.len;
	}
	buf_free(&raw);
	buf_free(&comp);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, etag);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, rq->obj.kind->cache_control);
	if (status == MHD_HTTP_OK)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
		                        "application/octet-stream");
	rq->status = status;
	ret = MHD_queue_response(con, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *con, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls)
{
	struct server *s = cls;
	struct request *rq = *con_cls;
	unsigned status;

	(void)version;
	if (!rq)
		return MHD_NO;
	/*
	 * MHD keeps a connection alive only if the reply is queued after the
	 * whole request has been read: the first call decides from the headers
	 * and waits. Only a refused upload is answered at once, so that its
	 * body is never read (nor, with Expect: 100-continue, even sent).
	 */
	if (!rq->headers_seen) {
		rq->headers_seen = true;
		snprintf(rq->method, sizeof(rq->method), "%s", method);
		rq->early = route(s, con, rq, url, method);
		if (rq->early && strcmp(method, MHD_HTTP_METHOD_PUT) == 0)
			return reply_status(con, rq, rq->early);
		return MHD_YES;
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;

		*upload_data_size = 0; /* what is not an accepted upload is read and dropped */
		if (rq->put && !rq->early) {
			status = upload_feed(rq, upload_data, n);
			if (status) {
				rq->early = status;
				buf_free(&rq->body);
			}
		} else if (rq->put_too_large) {
			/*
			 * MHD 0.9.75 takes no reply in the middle of a body, so a body
			 * without Content-Length that outgrows its bound is drained
			 * and refused at its end; a client going on for as long again
			 * is cut off instead.
			 */
			rq->dropped += n;
			if (rq->dropped > rq->obj.kind->max_len) {
				request_note(rq, 0, "refused: body over %" PRIu64 " bytes, cut off",
				             rq->obj.kind->max_len);
				return MHD_NO;
			}
		}
		return MHD_YES;
	}
	if (rq->early)
		return reply_status(con, rq, rq->early);
	if (rq->put)
		return reply_status(con, rq, upload_finish(s, con, rq));
	if (s->cache)
		return serve_cached_block(s, con, rq, method);
	return serve_file(s, con, rq, method);
}

static int parse_listen(const char *listen, struct sockaddr_storage *ss, struct circ_err *err)
{
	struct addrinfo hints = { .ai_flags = AI_NUMERICSERV, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL;
	char host[256];
	const char *colon = strrchr(listen, ':'), *h = listen;
	size_t hl;
	int rc;

	if (!colon || colon[1] == '\0')
		return err_set(err, EINVAL, "listen address '%s' is not HOST:PORT", listen);
	hl = (size_t)(colon - listen);
	if (hl >= 2 && listen[0] == '[' && listen[hl - 1] == ']') {
		h = listen + 1;
		hl -= 2;
	}
	if (hl >= sizeof(host))
		return err_set(err, EINVAL, "listen address '%s' is too long", listen);
	memcpy(host, h, hl);
	host[hl] = '\0';
	rc = getaddrinfo(hl ? host : NULL, colon + 1, &hints, &res);
	if (rc)
		return err_set(err, EINVAL, "listen address '%s': %s", listen, gai_strerror(rc));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	return 0;
}

/*
 * Each connection takes descriptors: the soft limit (often 1024) is raised
 * toward the hard one. Where the hard limit is lower than asked, the
 * connection limit comes down to fit, rather than accept() failing later.
 */
static int raise_fd_limit(unsigned *max_conn, unsigned threads, struct circ_err *err)
{
	/* Each worker's epoll and its wake-up; the repo, the log, the listener. */
	const rlim_t spare = 2 * (rlim_t)threads + 64;
	struct rlimit rl;
	rlim_t want;

	/* A connection sending a file holds two: its socket and the file's. */
	want = 2 * (rlim_t)*max_conn + spare;
	if (getrlimit(RLIMIT_NOFILE, &rl))
		return err_sys(err, errno, "getrlimit");
	if (rl.rlim_cur < want) {
		rl.rlim_cur =
		    rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl))
			return err_sys(err, errno, "raising the open file limit");
	}
	if (rl.rlim_cur < want) {
		if (rl.rlim_cur <= spare + 2)
			return err_set(err, EMFILE,
			               "the open file limit (%llu) leaves no room for connections",
			               (unsigned long long)rl.rlim_cur);
		*max_conn = (unsigned)((rl.rlim_cur - spare) / 2);
	}
	return 0;
}

int server_start(const struct server_config *cfg, struct server **out, struct circ_err *err)
{
	struct sockaddr_storage ss = { 0 };
	const union MHD_DaemonInfo *info;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL;
	const char *dir = cfg->cache_dir ? cfg->cache_dir : cfg->repo_dir;
	const char *what = cfg->cache_dir ? "cache" : "repo";
	unsigned max_conn;
	struct server *s;

	if (!dir || (cfg->cache_dir && cfg->repo_dir))
		return err_set(err, EINVAL, "serve a repo or a cache, one of them");
	if (cfg->cache_dir && cfg->users_file)
		return err_set(err, EINVAL, "a cache server takes no users (they need a repo)");
	if (parse_listen(cfg->listen ? cfg->listen : SERVER_DEFAULT_LISTEN, &ss, err))
		return -1;
	s = calloc(1, sizeof(*s));
	if (!s)
		return err_set(err, ENOMEM, "out of memory");
	s->log = cfg->access_log;
	s->quota = cfg->quota;
	s->cache = cfg->cache_dir != NULL;
	if (cfg->users_file && auth_load(cfg->users_file, &s->auth, err)) {
		free(s);
		return -1;
	}
	s->fio = cfg->fio ? cfg->fio : &fileio_system;
	if (cfg->cache_dir) {
		struct cache_options co = { .log = stderr };

		if (cache_open_opts(cfg->cache_dir, &co, &s->blocks, err)) {
			auth_free(s->auth);
			free(s);
			return -1;
		}
	}
	s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0) {
		err_sys(err, errno, "%s %s", what, dir);
		cache_close(s->blocks);
		auth_free(s->auth);
		free(s);
		return -1;
	}
	pthread_mutex_init(&s->enc_lock, NULL);
	s->root = realpath(dir, NULL);
	if (!s->root) {
		err_sys(err, errno, "%s %s", what, dir);
		goto fail;
	}
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	max_conn = cfg->max_connections ? cfg->max_connections : SERVER_DEFAULT_MAX_CONNECTIONS;
	if (raise_fd_limit(&max_conn, cfg->threads ? cfg->threads : DEFAULT_THREADS, err))
		goto fail;
	/* epoll: a connection that trickles holds a slot, never a thread. */
	s->daemon = MHD_start_daemon(
	    flags, 0, NULL, NULL, handle, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
	    MHD_OPTION_THREAD_POOL_SIZE, cfg->threads ? cfg->threads : DEFAULT_THREADS,
	    MHD_OPTION_URI_LOG_CALLBACK, request_begin, s, MHD_OPTION_NOTIFY_COMPLETED, request_end,
	    s, MHD_OPTION_CONNECTION_LIMIT, max_conn, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
	    cfg->max_per_client ? cfg->max_per_client : SERVER_DEFAULT_MAX_PER_CLIENT,
	    MHD_OPTION_CONNECTION_TIMEOUT,
	    cfg->idle_timeout ? cfg->idle_timeout : SERVER_DEFAULT_IDLE_TIMEOUT,
	    MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_END);
	if (!s->daemon) {
		err_set(err, EADDRINUSE, "cannot listen on %s (in use, or not an address here?)",
		        cfg->listen ? cfg->listen : SERVER_DEFAULT_LISTEN);
		goto fail;
	}
	info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
	s->port = info ? info->port : 0;
	if (cfg->users_file && !(s->users_file = strdup(cfg->users_file))) {
		err_set(err, ENOMEM, "out of memory");
		MHD_stop_daemon(s->daemon);
		goto fail;
	}
	*out = s;
	return 0;
fail:
	close(s->dirfd);
	cache_close(s->blocks);
	pthread_mutex_destroy(&s->enc_lock);
	free(s->root);
	auth_free(s->auth);
	free(s);
	return -1;
}

uint16_t server_port(const struct server *s)
{
	return s->port;
}

int server_reload_users(struct server *s, size_t *n_users, struct circ_err *err)
{
	if (!s->auth)
		return err_set(err, ENOENT, "no users file to read again (serve without --users)");
	return auth_reload(s->auth, s->users_file, n_users, err);
}

void server_stop(struct server *s)
{
	if (!s)
		return;
	MHD_stop_daemon(s->daemon);
	while (s->n_enc)
		block_encoder_free(s->enc[--s->n_enc]);
	pthread_mutex_destroy(&s->enc_lock);
	close(s->dirfd);
	cache_close(s->blocks);
	free(s->root);
	auth_free(s->auth);
	free(s->users_file);
	free(s);
}
