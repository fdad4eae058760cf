/* SPDX-License-Identifier: MIT */
#include "server/upload.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <microhttpd.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "util/fileio.h"
#include "vdisk/head.h"
#include "vdisk/ukey.h"
#include "vdisk/ulayer.h"

#define HEADER_LEASE "Circ-Lease"
/* users/U/blocks/XX/file is the deepest a user's tree goes; more is not ours to count. */
#define WALK_DEPTH_MAX 4

/* What the checks of one PUT found out about the file it replaces. */
struct put {
	char dir[REPO_PATH_MAX];      /* the directory of rq->rel */
	char tmp[REPO_PATH_MAX + 32]; /* the written temporary, or "" */
	bool exists;                  /* rq->rel exists now */
	uint64_t old_size;
	bool keep; /* leave the existing file as it is (a block already stored) */
};

static const char *header(struct MHD_Connection *con, const char *name)
{
	return MHD_lookup_connection_value(con, MHD_HEADER_KIND, name);
}

unsigned upload_begin(struct MHD_Connection *con, struct request *rq)
{
	const char *cl = header(con, MHD_HTTP_HEADER_CONTENT_LENGTH);
	const char *inm = header(con, MHD_HTTP_HEADER_IF_NONE_MATCH);
	enum repo_object_type type = rq->obj.kind->type;
	uint64_t max = rq->obj.kind->max_len;
	unsigned long long n;
	char *end;

	/* Refused before a byte is read: with Expect: 100-continue the client never sends it. */
	if ((type == REPO_OBJ_USER_KEYS || type == REPO_OBJ_USER_HEAD) &&
	    !header(con, MHD_HTTP_HEADER_IF_MATCH) && !(inm && strcmp(inm, "*") == 0))
		return request_note(rq, MHD_HTTP_PRECONDITION_REQUIRED,
		                    "refused: needs If-None-Match: * or If-Match");
	if (cl) {
		errno = 0;
		n = strtoull(cl, &end, 10);
		if (errno || *end || end == cl)
			return request_note(rq, MHD_HTTP_BAD_REQUEST,
			                    "refused: bad Content-Length");
		if (n > max)
			return request_note(rq, MHD_HTTP_CONTENT_TOO_LARGE,
			                    "refused: body over %" PRIu64 " bytes", max);
	}
	rq->put = true;
	return 0;
}

unsigned upload_feed(struct request *rq, const char *data, size_t len)
{
	uint64_t max = rq->obj.kind->max_len;

	if (rq->body.len + len > max) {
		rq->put_too_large = true;
		return request_note(rq, MHD_HTTP_CONTENT_TOO_LARGE,
		                    "refused: body over %" PRIu64 " bytes", max);
	}
	if (buf_append(&rq->body, data, len))
		return request_note(rq, MHD_HTTP_INTERNAL_SERVER_ERROR, "error: out of memory");
	rq->bytes = rq->body.len;
	return 0;
}

/* Reads a file of at most max bytes: 0, or -errno (-ENOENT: absent, -EFBIG: larger). */
static int read_at(int dirfd, const char *rel, size_t max, struct buf *out)
{
	int fd = openat(dirfd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	int rc = 0;

	buf_reset(out);
	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t n;

		if (buf_reserve(out, 4096)) {
			rc = -ENOMEM;
			break;
		}
		n = read(fd, out->data + out->len, out->cap - out->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : 0;
			break;
		}
		out->len += (size_t)n;
		if (out->len > max) {
			rc = -EFBIG;
			break;
		}
	}
	close(fd);
	return rc;
}

/*
 * Whether the block at rel holds exactly data. A block's name is a keyed hash
 * of its content, but a file of the right length may still be damaged (a
 * power cut's torn write on a file system that allows one): only its bytes
 * say it is this block.
 */
static bool block_stored(int dirfd, const char *rel, const void *data, size_t len)
{
	struct buf b = { 0 };
	bool same;

	same = read_at(dirfd, rel, len, &b) == 0 && b.len == len && memcmp(b.data, data, len) == 0;
	buf_free(&b);
	return same;
}

/* SHA-256 of a whole file, streamed (layers reach 72 MiB): 0 or -errno. */
static int sha256_at(int dirfd, const char *rel, uint8_t out[32])
{
	int fd = openat(dirfd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	EVP_MD_CTX *ctx;
	uint8_t *chunk;
	int rc = 0;

	if (fd < 0)
		return -errno;
	ctx = EVP_MD_CTX_new();
	chunk = malloc(1u << 16);
	if (!ctx || !chunk || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
		rc = -ENOMEM;
	while (!rc) {
		ssize_t n = read(fd, chunk, 1u << 16);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			rc = -errno;
		else if (n == 0)
			break;
		else if (EVP_DigestUpdate(ctx, chunk, (size_t)n) != 1)
			rc = -ENOMEM;
	}
	if (!rc && EVP_DigestFinal_ex(ctx, out, NULL) != 1)
		rc = -ENOMEM;
	EVP_MD_CTX_free(ctx);
	free(chunk);
	close(fd);
	return rc;
}

static int fsync_dir_at(const struct server *s, const char *rel)
{
	const struct fileio *io = s->fio;
	int fd =
	    io->open(io->ctx, s->dirfd, *rel ? rel : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	int rc;

	if (fd < 0)
		return fd;
	rc = io->sync(io->ctx, fd);
	io->close(io->ctx, fd);
	return rc;
}

/* mkdir -p of rel in the repo (0755); a directory made is made durable in its parent. */
static int mkdirs_at(const struct server *s, const char *rel)
{
	char path[REPO_PATH_MAX];
	int rc;

	snprintf(path, sizeof(path), "%s", rel);
	for (char *p = strchr(path, '/');; p = strchr(p + 1, '/')) {
		if (p)
			*p = '\0';
		rc = s->fio->mkdir(s->fio->ctx, s->dirfd, path, 0755);
		if (rc == 0) {
			char *slash = strrchr(path, '/');

			if (slash)
				*slash = '\0';
			rc = fsync_dir_at(s, slash ? path : "");
			if (slash)
				*slash = '/';
			if (rc)
				return rc;
		} else if (rc != -EEXIST) {
			return rc;
		}
		if (!p)
			return 0;
		*p = '/';
	}
}

/*
 * Writes data to a new ".tmp-" file in dir (never served: not a name of the
 * format); synced if sync.
 */
static int write_temp(const struct server *s, struct put *p, const void *data, size_t len,
                      bool sync)
{
	const struct fileio *io = s->fio;
	uint8_t rnd[8];
	int fd, rc;

	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return -EIO;
	snprintf(p->tmp, sizeof(p->tmp), "%s/.tmp-%02x%02x%02x%02x%02x%02x%02x%02x", p->dir, rnd[0],
	         rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
	fd = io->open(io->ctx, s->dirfd, p->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		p->tmp[0] = '\0';
		return fd;
	}
	rc = io->pwrite(io->ctx, fd, data, len, 0);
	if (!rc && sync)
		rc = io->sync(io->ctx, fd);
	fd = io->close(io->ctx, fd);
	return rc ? rc : fd;
}

/* Sums the sizes of the files under rel; names starting with '.' (temporaries) do not count. */
static int walk_usage(int dirfd, const char *rel, unsigned depth, uint64_t *sum)
{
	int fd = openat(dirfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	struct dirent *de;
	DIR *d;
	int rc = 0;

	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	d = fdopendir(fd);
	if (!d) {
		rc = -errno;
		close(fd);
		return rc;
	}
	while (!rc && (errno = 0, de = readdir(d))) {
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW))
			rc = errno == ENOENT ? 0 : -errno;
		else if (S_ISREG(st.st_mode))
			*sum += (uint64_t)st.st_size;
		else if (S_ISDIR(st.st_mode) && depth < WALK_DEPTH_MAX)
			rc = walk_usage(fd, de->d_name, depth + 1, sum);
	}
	if (!rc && errno)
		rc = -errno;
	closedir(d);
	return rc;
}

static const char *lease_header(struct MHD_Connection *con)
{
	const char *v = header(con, HEADER_LEASE);

	return v ? v : "";
}

/* Reads and parses the disk's head, if there is one: 0 with *exists, or a status. */
static unsigned read_head(struct server *s, struct request *rq, const char *disk_dir, bool *exists,
                          struct user_head *h, struct buf *raw)
{
	char path[REPO_PATH_MAX];
	struct circ_err err;
	int rc;

	snprintf(path, sizeof(path), "%s/head", disk_dir);
	rc = read_at(s->dirfd, path, REPO_USER_HEAD_MAX, raw);
	*exists = rc != -ENOENT;
	if (rc == -ENOENT)
		return 0;
	if (rc)
		return request_note(rq, MHD_HTTP_INTERNAL_SERVER_ERROR, "error: reading %s: %s",
		                    path, strerror(-rc));
	if (head_parse(raw->data, raw->len, h, &err))
		return request_note(rq, MHD_HTTP_INTERNAL_SERVER_ERROR, "error: %s: %s", path,
		                    err.msg);
	return 0;
}

/* N.layer of the disk exists and its SHA-256 is sha: 0, or 409 saying why not. */
static unsigned check_layer_hash(struct server *s, struct request *rq, uint64_t n,
                                 const uint8_t sha[32])
{
	char path[REPO_PATH_MAX];
	uint8_t got[32];
	int rc;

	repo_user_layer_path(rq->obj.user, rq->obj.name, n, path);
	rc = sha256_at(s->dirfd, path, got);
	if (rc == -ENOENT)
		return request_note(rq, MHD_HTTP_CONFLICT, "refused: %" PRIu64 ".layer is missing",
		                    n);
	if (rc)
		return request_note(rq, MHD_HTTP_INTERNAL_SERVER_ERROR, "error: reading %s: %s",
		                    path, strerror(-rc));
	if (memcmp(got, sha, 32) != 0)
		return request_note(rq, MHD_HTTP_CONFLICT,
		                    "refused: %" PRIu64 ".layer does not match the head", n);
	return 0;
}

/* The lease of h, if held, is the request's (header Circ-Lease): 0 or 409. */
static unsigned check_lease(struct MHD_Connection *con, struct request *rq,
                            const struct user_head *h)
{
	if (h->held && strcmp(lease_header(con), h->token) != 0)
		return request_note(rq, MHD_HTTP_CONFLICT, "refused: lease held by %s", h->host);
	return 0;
}

/* From the body alone, no lock: 0 or the status (400: not an object of its kind). */
static unsigned check_body(struct request *rq)
{
	const uint8_t *b = rq->body.data;
	size_t len = rq->body.len;
	struct user_head h;
	struct ulayer l;
	struct circ_err err;

	if (len == 0) /* no object of the format is empty */
		return request_note(rq, MHD_HTTP_BAD_REQUEST, "refused: empty body");
	switch (rq->obj.kind->type) {
	case REPO_OBJ_USER_BLOCK:
		if (len < 1 + UKEY_TAG_LEN || b[0] != UKEY_BLOCK_FORMAT)
			return request_note(rq, MHD_HTTP_BAD_REQUEST,
			                    "refused: not a sealed block");
		return 0;
	case REPO_OBJ_USER_KEYS:
		if (len != UKEY_FILE_LEN || memcmp(b, UKEY_FILE_MAGIC, 8) != 0)
			return request_note(rq, MHD_HTTP_BAD_REQUEST, "refused: not a keys file");
		return 0;
	case REPO_OBJ_USER_LAYER:
		/* Only the plain header: the rest is sealed with a key the server never has. */
		if (ulayer_parse_header(b, len, &l, &err))
			return request_note(rq, MHD_HTTP_BAD_REQUEST, "refused: %s", err.msg);
		if (strcmp(l.user, rq->obj.user) != 0 || strcmp(l.disk, rq->obj.name) != 0 ||
		    l.version != rq->obj.version)
			return request_note(rq, MHD_HTTP_BAD_REQUEST,
			                    "refused: the layer's header names %s/%s/%" PRIu64,
			                    l.user, l.disk, l.version);
		return 0;
	case REPO_OBJ_USER_HEAD:
		if (head_parse(b, len, &h, &err))
			return request_note(rq, MHD_HTTP_BAD_REQUEST, "refused: %s", err.msg);
		return 0;
	default:
		return request_note(rq, MHD_HTTP_METHOD_NOT_ALLOWED, "refused: not writable");
	}
}

/* The conditional headers of a keys or head PUT: If-None-Match: * or If-Match. */
static unsigned check_preconditions(struct MHD_Connection *con, struct request *rq, bool exists,
                                    const char *etag)
{
	const char *im = header(con, MHD_HTTP_HEADER_IF_MATCH);
	const char *inm = header(con, MHD_HTTP_HEADER_IF_NONE_MATCH);
	bool create = inm && strcmp(inm, "*") == 0;

	if (!im && !create)
		return request_note(rq, MHD_HTTP_PRECONDITION_REQUIRED,
		                    "refused: needs If-None-Match: * or If-Match");
	if (im && (!exists || strcmp(im, etag) != 0))
		return request_note(rq, MHD_HTTP_PRECONDITION_FAILED,
		                    exists ? "refused: stale ETag" : "refused: nothing to match");
	if (create && exists)
		return request_note(rq, MHD_HTTP_PRECONDITION_FAILED, "refused: exists");
	return 0;
}

static unsigned check_keys(struct server *s, struct MHD_Connection *con, struct request *rq)
{
	struct buf cur = { 0 };
	char etag[SERVER_ETAG_MAX] = "";
	unsigned status = 0;
	int rc = read_at(s->dirfd, rq->rel, REPO_USER_KEYS_MAX, &cur);

	if (rc && rc != -ENOENT)
		status = request_note(rq, MHD_HTTP_INTERNAL_SERVER_ERROR, "error: reading keys: %s",
		                      strerror(-rc));
	if (!rc)
		repo_content_etag(cur.data, cur.len, etag);
	if (!status)
		status = check_preconditions(con, rq, rc == 0, etag);
	buf_free(&cur);
	return status;
}

static unsigned check_layer(struct server *s, struct MHD_Connection *con, struct request *rq,
                            struct put *p)
{
	struct buf raw = { 0 };
	struct user_head h;
	bool has_head;
	unsigned status = read_head(s, rq, p->dir, &has_head, &h, &raw);
	uint64_t n = rq->obj.version;

	buf_free(&raw);
	if (status)
		return status;
	if (!has_head)
		return n == 1
		           ? 0
		           : request_note(rq, MHD_HTTP_CONFLICT,
		                          "refused: the disk has no head, so its first layer is 1");
	/* Committed layers are immutable: the head and other machines' caches rely on them. */
	if (n <= h.version)
		return request_note(rq, MHD_HTTP_CONFLICT,
		                    "refused: version %" PRIu64 " is committed", n);
	if (n != h.version + 1)
		return request_note(rq, MHD_HTTP_CONFLICT, "refused: the next version is %" PRIu64,
		                    h.version + 1);
	return check_lease(con, rq, &h);
}

static unsigned check_head(struct server *s, struct MHD_Connection *con, struct request *rq,
                           struct put *p)
{
	struct buf raw = { 0 };
	struct user_head cur, nw;
	char etag[SERVER_ETAG_MAX] = "";
	bool exists;
	unsigned status = read_head(s, rq, p->dir, &exists, &cur, &raw);

	if (!status && exists)
		repo_content_etag(raw.data, raw.len, etag);
	buf_free(&raw);
	if (!status)
		status = check_preconditions(con, rq, exists, etag);
	if (status)
		return status;
	/* check_body has parsed it already; a failure here is a bug, refused all the same. */
	if (head_parse(rq->body.data, rq->body.len, &nw, NULL))
		return request_note(rq, MHD_HTTP_BAD_REQUEST, "refused: the head does not parse");
	if (!exists) {
		if (nw.version != 1)
			return request_note(rq, MHD_HTTP_CONFLICT,
			                    "refused: a disk's first head names version 1");
		status = check_layer_hash(s, rq, 1, nw.layer_sha256);
		if (!status && nw.held)
			request_note(rq, 0, "lease taken by %s", nw.host);
		return status;
	}
	if (nw.version == cur.version) {
		if (memcmp(nw.layer_sha256, cur.layer_sha256, 32) != 0)
			return request_note(rq, MHD_HTTP_CONFLICT,
			                    "refused: version %" PRIu64 " names another layer",
			                    nw.version);
		/* A lease change only: any of the user's machines may take, release or steal it. */
		if (!cur.held && nw.held)
			request_note(rq, 0, "lease taken by %s", nw.host);
		else if (cur.held && !nw.held)
			request_note(rq, 0, "lease released");
		else if (cur.held && strcmp(cur.token, nw.token) != 0)
			request_note(rq, 0, "lease stolen from %s by %s", cur.host, nw.host);
		return 0;
	}
	if (nw.version != cur.version + 1)
		return request_note(rq, MHD_HTTP_CONFLICT,
		                    "refused: version %" PRIu64 " after %" PRIu64, nw.version,
		                    cur.version);
	status = check_layer_hash(s, rq, nw.version, nw.layer_sha256);
	if (!status)
		status = check_lease(con, rq, &cur);
	if (!status)
		request_note(rq, 0, "committed version %" PRIu64, nw.version);
	return status;
}

/* Under the tree lock: the user's usage, walked from the disk the first time. */
static unsigned usage_ensure(struct server *s, struct request *rq, struct user_tree *t)
{
	char path[REPO_PATH_MAX];
	uint64_t sum = 0;
	int rc;

	if (t->usage_known)
		return 0;
	snprintf(path, sizeof(path), "users/%s", rq->obj.user);
	rc = walk_usage(s->dirfd, path, 1, &sum);
	if (rc)
		return request_note(rq, MHD_HTTP_INTERNAL_SERVER_ERROR, "error: walking %s: %s",
		                    path, strerror(-rc));
	t->usage = sum;
	t->usage_known = true;
	return 0;
}

/* Under the tree lock: every check against the tree, then the rename. */
static unsigned store_locked(struct server *s, struct MHD_Connection *con, struct request *rq,
                             struct put *p)
{
	struct user_tree *t = &rq->user->tree;
	uint64_t len = rq->body.len;
	unsigned status = usage_ensure(s, rq, t);
	struct stat st;
	int rc;

	if (status)
		return status;
	p->exists = fstatat(s->dirfd, rq->rel, &st, AT_SYMLINK_NOFOLLOW) == 0;
	p->old_size = p->exists ? (uint64_t)st.st_size : 0;
	switch (rq->obj.kind->type) {
	case REPO_OBJ_USER_BLOCK:
		/*
		 * Blocks are stored unsynced until the next head (see upload_finish):
		 * a power cut may leave one short, which is replaced (so a password
		 * alone can swap a block for one of another length: the seal makes
		 * that a read that fails, never one that lies). One of the same
		 * length is kept if it holds these bytes, and otherwise not
		 * rewritten: the client is told, and stops before a head could name
		 * the damaged copy.
		 */
		if (p->exists && p->old_size == len) {
			p->keep = block_stored(s->dirfd, rq->rel, rq->body.data, rq->body.len);
			if (!p->keep)
				status = request_note(rq, MHD_HTTP_CONFLICT,
				                      "refused: other bytes are stored under this "
				                      "block's name (damaged?); a block is never "
				                      "rewritten");
		}
		break;
	case REPO_OBJ_USER_KEYS:
		status = check_keys(s, con, rq);
		break;
	case REPO_OBJ_USER_LAYER:
		status = check_layer(s, con, rq, p);
		break;
	default:
		status = check_head(s, con, rq, p);
		break;
	}
	if (status || p->keep)
		return status;
	/* A write that shrinks the tree is always allowed, so a user over quota can recover. */
	if (s->quota && len > p->old_size && t->usage - p->old_size + len > s->quota)
		return request_note(rq, MHD_HTTP_INSUFFICIENT_STORAGE,
		                    "refused: quota of %s exceeded", rq->obj.user);
	rc = s->fio->rename(s->fio->ctx, s->dirfd, p->tmp, rq->rel);
	if (rc)
		return request_note(rq, MHD_HTTP_INTERNAL_SERVER_ERROR, "error: storing %s: %s",
		                    rq->rel, strerror(-rc));
	p->tmp[0] = '\0';
	t->usage = t->usage - p->old_size + len;
	rc = rq->obj.kind->is_mutable ? fsync_dir_at(s, p->dir) : 0;
	if (rc)
		return request_note(rq, MHD_HTTP_INTERNAL_SERVER_ERROR, "error: syncing %s: %s",
		                    p->dir, strerror(-rc));
	return p->exists ? MHD_HTTP_OK : MHD_HTTP_CREATED;
}

unsigned upload_finish(struct server *s, struct MHD_Connection *con, struct request *rq)
{
	struct put p = { 0 };
	struct stat st;
	unsigned status = check_body(rq);
	char *slash;
	int rc;

	if (status)
		return status;
	snprintf(p.dir, sizeof(p.dir), "%s", rq->rel);
	slash = strrchr(p.dir, '/');
	*slash = '\0'; /* a user object's path always has a directory */
	if (rq->obj.kind->type == REPO_OBJ_USER_BLOCK &&
	    fstatat(s->dirfd, rq->rel, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    (uint64_t)st.st_size == rq->body.len &&
	    block_stored(s->dirfd, rq->rel, rq->body.data, rq->body.len))
		return request_note(rq, MHD_HTTP_OK, "exists");
	/*
	 * Blocks and layers are renamed into place unsynced, as the publisher
	 * stores blocks: nothing refers to them until a head does, and before a
	 * head (or the keys) is replaced, syncfs makes everything stored so far
	 * durable at once, so a power cut never leaves a head naming a missing
	 * object. One sync per check-in, not two per block. Data is written
	 * before the lock: only the checks and the rename wait.
	 */
	rc = mkdirs_at(s, p.dir);
	if (!rc && rq->obj.kind->is_mutable)
		rc = s->fio->syncfs(s->fio->ctx, s->dirfd);
	if (!rc)
		rc = write_temp(s, &p, rq->body.data, rq->body.len, rq->obj.kind->is_mutable);
	if (rc)
		status = request_note(rq, MHD_HTTP_INTERNAL_SERVER_ERROR, "error: writing %s: %s",
		                      rq->rel, strerror(-rc));
	if (!status) {
		pthread_mutex_lock(&rq->user->tree.lock);
		status = store_locked(s, con, rq, &p);
		pthread_mutex_unlock(&rq->user->tree.lock);
	}
	if (p.tmp[0])
		s->fio->unlink(s->fio->ctx, s->dirfd, p.tmp);
	if (p.keep)
		return request_note(rq, MHD_HTTP_OK, "exists");
	/* The new ETag, so that the client's next compare-and-swap needs no GET. */
	if ((status == MHD_HTTP_OK || status == MHD_HTTP_CREATED) && rq->obj.kind->is_mutable)
		repo_content_etag(rq->body.data, rq->body.len, rq->etag);
	return status;
}
