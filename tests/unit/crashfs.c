/* SPDX-License-Identifier: MIT */
#include "tests/unit/crashfs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/buf.h"
#include "tests/unit/testutil.h"

#define DEV_SECTOR 512 /* what a power cut may tear a write at */

enum op_kind {
	OP_WRITE,    /* ino, off, len, data */
	OP_TRUNC,    /* ino, len */
	OP_SYNC,     /* ino */
	OP_SYNC_DIR, /* name */
	OP_SYNC_ALL,
	OP_CREATE, /* name -> ino */
	OP_RENAME, /* name -> name2 */
	OP_UNLINK, /* name */
	OP_MKDIR   /* name */
};

struct op {
	enum op_kind kind;
	int ino;
	char *name, *name2;
	uint64_t off, len;
	uint8_t *data;
};

struct name {
	char *path;
	int ino; /* -1: a directory */
};

/* A namespace: files and directories by path below the root (""). */
struct names {
	struct name *v;
	size_t n, cap;
};

struct crashfs {
	pthread_mutex_t lock;
	char *root;
	size_t root_len;
	struct op *ops;
	size_t n, cap;
	struct names live;
	uint64_t *size; /* each file's length now, for appends */
	size_t n_inos, cap_inos, created;
	struct fd_info {
		int ino;   /* a file opened through the crashfs; -1: none */
		dev_t dev; /* and the inode it was, to tell a reused number */
		ino_t inode;
	} * fds;
	size_t n_fds;
	struct fileio fio;
};

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	ck_assert_ptr_nonnull(p);
	return p;
}

static char *xstrdup(const char *s)
{
	char *d = strdup(s);

	ck_assert_ptr_nonnull(d);
	return d;
}

static void parent_of(const char *path, char *out, size_t cap)
{
	const char *slash = strrchr(path, '/');

	snprintf(out, cap, "%.*s", slash ? (int)(slash - path) : 0, path);
}

static ssize_t names_find(const struct names *ns, const char *path)
{
	for (size_t i = 0; i < ns->n; i++)
		if (strcmp(ns->v[i].path, path) == 0)
			return (ssize_t)i;
	return -1;
}

/* Names path ino (or a directory), replacing what it named. */
static void names_set(struct names *ns, const char *path, int ino)
{
	ssize_t k = names_find(ns, path);

	if (k >= 0) {
		ns->v[k].ino = ino;
		return;
	}
	if (ns->n == ns->cap) {
		ns->cap = ns->cap ? ns->cap * 2 : 64;
		ns->v = xrealloc(ns->v, ns->cap * sizeof(*ns->v));
	}
	ns->v[ns->n++] = (struct name){ .path = xstrdup(path), .ino = ino };
}

/* Removes path; keeps the order of the rest (directories before what they hold). */
static void names_remove(struct names *ns, const char *path)
{
	ssize_t k = names_find(ns, path);

	if (k < 0)
		return;
	free(ns->v[k].path);
	memmove(&ns->v[k], &ns->v[k + 1], (ns->n - (size_t)k - 1) * sizeof(*ns->v));
	ns->n--;
}

static bool names_has_dir(const struct names *ns, const char *path)
{
	ssize_t k;

	if (!*path)
		return true;
	k = names_find(ns, path);
	return k >= 0 && ns->v[k].ino < 0;
}

static void names_free(struct names *ns)
{
	for (size_t i = 0; i < ns->n; i++)
		free(ns->v[i].path);
	free(ns->v);
	*ns = (struct names){ 0 };
}

static void push(struct crashfs *c, struct op op)
{
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 1024;
		c->ops = xrealloc(c->ops, c->cap * sizeof(*c->ops));
	}
	c->ops[c->n++] = op;
}

static void push_write(struct crashfs *c, int ino, uint64_t off, const void *data, size_t len,
                       bool keep_size)
{
	struct op op = { .kind = OP_WRITE, .ino = ino, .off = off, .len = len };

	op.data = xrealloc(NULL, len);
	memcpy(op.data, data, len);
	push(c, op);
	if (!keep_size && off + len > c->size[ino])
		c->size[ino] = off + len;
}

static int new_ino(struct crashfs *c)
{
	if (c->n_inos == c->cap_inos) {
		c->cap_inos = c->cap_inos ? c->cap_inos * 2 : 64;
		c->size = xrealloc(c->size, c->cap_inos * sizeof(*c->size));
	}
	c->size[c->n_inos] = 0;
	return (int)c->n_inos++;
}

static struct fd_info *fd_info(struct crashfs *c, int fd)
{
	if (fd < 0)
		return NULL;
	if ((size_t)fd >= c->n_fds) {
		size_t n = (size_t)fd + 16;

		c->fds = xrealloc(c->fds, n * sizeof(*c->fds));
		for (size_t i = c->n_fds; i < n; i++)
			c->fds[i] = (struct fd_info){ .ino = -1 };
		c->n_fds = n;
	}
	return &c->fds[fd];
}

/* A path below the root, from an absolute one (the root itself: ""). */
static char *below_root(struct crashfs *c, const char *abs)
{
	ck_assert_msg(strncmp(abs, c->root, c->root_len) == 0 &&
	                  (abs[c->root_len] == '/' || abs[c->root_len] == '\0'),
	              "%s is outside the recorded %s", abs, c->root);
	abs += c->root_len;
	while (*abs == '/')
		abs++;
	return xstrdup(abs);
}

/* The directory a descriptor is open on, as the kernel names it. */
static void dir_of_fd(int fd, char out[PATH_MAX])
{
	char link[64];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, out, PATH_MAX - 1);
	ck_assert_msg(n > 0, "descriptor %d: %s", fd, strerror(errno));
	out[n] = '\0';
}

/*
 * name (at dirfd, or absolute) as a path below the root, its directory
 * resolved by the kernel: names that reach the same file are the same path.
 */
static char *resolve(struct crashfs *c, int dirfd, const char *name)
{
	char dir[PATH_MAX], real[PATH_MAX], *full, *slash, *out;

	if (name[0] == '/') {
		full = xstrdup(name);
	} else {
		ck_assert_msg(dirfd != AT_FDCWD, "%s: relative to the working directory", name);
		dir_of_fd(dirfd, dir);
		ck_assert_int_ge(asprintf(&full, "%s/%s", dir, name), 0);
	}
	while (strlen(full) > 1 && full[strlen(full) - 1] == '/')
		full[strlen(full) - 1] = '\0';
	slash = strrchr(full, '/');
	*slash = '\0';
	ck_assert_msg(realpath(*full ? full : "/", real), "%s: %s", full, strerror(errno));
	if (strcmp(slash + 1, ".") == 0)
		ck_assert_int_ge(asprintf(&out, "%s", real), 0);
	else
		ck_assert_int_ge(asprintf(&out, "%s/%s", strcmp(real, "/") ? real : "", slash + 1),
		                 0);
	free(full);
	full = below_root(c, out);
	free(out);
	return full;
}

static int rec_open(void *ctx, int dirfd, const char *name, int flags, mode_t mode)
{
	struct crashfs *c = ctx;
	struct fd_info *f;
	struct stat st;
	char *path;
	ssize_t k;
	int fd;

	pthread_mutex_lock(&c->lock);
	fd = fileio_system.open(NULL, dirfd, name, flags, mode);
	if (fd < 0) {
		pthread_mutex_unlock(&c->lock);
		return fd;
	}
	f = fd_info(c, fd);
	*f = (struct fd_info){ .ino = -1 };
	if (flags & O_DIRECTORY) { /* known by what the kernel says it is, when synced */
		pthread_mutex_unlock(&c->lock);
		return fd;
	}
	path = resolve(c, dirfd, name);
	ck_assert_int_eq(fstat(fd, &st), 0);
	f->dev = st.st_dev;
	f->inode = st.st_ino;
	k = names_find(&c->live, path);
	if (k < 0) {
		int ino = new_ino(c);

		c->created++;
		names_set(&c->live, path, ino);
		push(c, (struct op){ .kind = OP_CREATE, .ino = ino, .name = path });
		f->ino = ino;
	} else {
		f->ino = c->live.v[k].ino;
		if (flags & O_TRUNC) {
			push(c, (struct op){ .kind = OP_TRUNC, .ino = f->ino, .len = 0 });
			c->size[f->ino] = 0;
		}
		free(path);
	}
	pthread_mutex_unlock(&c->lock);
	return fd;
}

static int rec_close(void *ctx, int fd)
{
	struct crashfs *c = ctx;
	struct fd_info *f;

	pthread_mutex_lock(&c->lock);
	f = fd_info(c, fd);
	if (f)
		*f = (struct fd_info){ .ino = -1 };
	pthread_mutex_unlock(&c->lock);
	return fileio_system.close(NULL, fd);
}

/* The file fd writes: one the crashfs opened, and still the same one. */
static int file_ino(struct crashfs *c, int fd)
{
	struct fd_info *f = fd_info(c, fd);
	struct stat st;

	ck_assert_msg(f && f->ino >= 0 && fstat(fd, &st) == 0 && st.st_dev == f->dev &&
	                  st.st_ino == f->inode,
	              "descriptor %d: not a file opened through the crashfs", fd);
	return f->ino;
}

static int rec_pwrite(void *ctx, int fd, const void *buf, size_t len, uint64_t off)
{
	struct crashfs *c = ctx;
	int rc;

	pthread_mutex_lock(&c->lock);
	rc = fileio_system.pwrite(NULL, fd, buf, len, off);
	if (!rc)
		push_write(c, file_ino(c, fd), off, buf, len, false);
	pthread_mutex_unlock(&c->lock);
	return rc;
}

static ssize_t rec_append(void *ctx, int fd, const struct iovec *iov, int n)
{
	struct crashfs *c = ctx;
	uint64_t off;
	ssize_t w;

	pthread_mutex_lock(&c->lock);
	off = c->size[file_ino(c, fd)];
	w = fileio_system.append(NULL, fd, iov, n);
	if (w > 0) {
		uint8_t *all = xrealloc(NULL, (size_t)w);
		size_t at = 0;

		for (int i = 0; i < n && at < (size_t)w; i++) {
			size_t take =
			    iov[i].iov_len < (size_t)w - at ? iov[i].iov_len : (size_t)w - at;

			memcpy(all + at, iov[i].iov_base, take);
			at += take;
		}
		push_write(c, file_ino(c, fd), off, all, (size_t)w, false);
		free(all);
	}
	pthread_mutex_unlock(&c->lock);
	return w;
}

static int rec_sync(void *ctx, int fd)
{
	struct crashfs *c = ctx;
	char dir[PATH_MAX];
	struct stat st;
	int rc;

	pthread_mutex_lock(&c->lock);
	rc = fileio_system.sync(NULL, fd);
	ck_assert_int_eq(fstat(fd, &st), 0);
	if (!rc && !S_ISDIR(st.st_mode)) {
		push(c, (struct op){ .kind = OP_SYNC, .ino = file_ino(c, fd) });
	} else if (!rc) {
		dir_of_fd(fd, dir);
		push(c, (struct op){ .kind = OP_SYNC_DIR, .name = below_root(c, dir) });
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

static int rec_syncfs(void *ctx, int fd)
{
	struct crashfs *c = ctx;
	int rc;

	pthread_mutex_lock(&c->lock);
	rc = fileio_system.syncfs(NULL, fd);
	if (!rc)
		push(c, (struct op){ .kind = OP_SYNC_ALL });
	pthread_mutex_unlock(&c->lock);
	return rc;
}

static int rec_truncate(void *ctx, int fd, uint64_t len)
{
	struct crashfs *c = ctx;
	int rc;

	pthread_mutex_lock(&c->lock);
	rc = fileio_system.truncate(NULL, fd, len);
	if (!rc) {
		int ino = file_ino(c, fd);

		push(c, (struct op){ .kind = OP_TRUNC, .ino = ino, .len = len });
		c->size[ino] = len;
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

static int rec_punch(void *ctx, int fd, uint64_t off, uint64_t len)
{
	struct crashfs *c = ctx;
	uint8_t *zeros;
	int rc;

	pthread_mutex_lock(&c->lock);
	rc = fileio_system.punch(NULL, fd, off, len);
	if (!rc) {
		zeros = calloc(1, len ? len : 1);
		ck_assert_ptr_nonnull(zeros);
		push_write(c, file_ino(c, fd), off, zeros, len, true);
		free(zeros);
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

static int rec_rename(void *ctx, int dirfd, const char *from, const char *to)
{
	struct crashfs *c = ctx;
	char pf[PATH_MAX], pt[PATH_MAX];
	int rc;

	pthread_mutex_lock(&c->lock);
	rc = fileio_system.rename(NULL, dirfd, from, to);
	if (!rc && strcmp(from, to) != 0) {
		struct op op = { .kind = OP_RENAME,
			         .name = resolve(c, dirfd, from),
			         .name2 = resolve(c, dirfd, to) };
		ssize_t k = names_find(&c->live, op.name);

		parent_of(op.name, pf, sizeof(pf));
		parent_of(op.name2, pt, sizeof(pt));
		ck_assert_msg(strcmp(pf, pt) == 0, "rename across directories: %s to %s", op.name,
		              op.name2);
		ck_assert_msg(k >= 0 && c->live.v[k].ino >= 0, "rename of %s: not a known file",
		              op.name);
		names_set(&c->live, op.name2, c->live.v[k].ino);
		names_remove(&c->live, op.name);
		push(c, op);
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

static int rec_unlink(void *ctx, int dirfd, const char *name)
{
	struct crashfs *c = ctx;
	int rc;

	pthread_mutex_lock(&c->lock);
	rc = fileio_system.unlink(NULL, dirfd, name);
	if (!rc) {
		struct op op = { .kind = OP_UNLINK, .name = resolve(c, dirfd, name) };

		names_remove(&c->live, op.name);
		push(c, op);
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

static int rec_mkdir(void *ctx, int dirfd, const char *name, mode_t mode)
{
	struct crashfs *c = ctx;
	int rc;

	pthread_mutex_lock(&c->lock);
	rc = fileio_system.mkdir(NULL, dirfd, name, mode);
	if (!rc) {
		struct op op = { .kind = OP_MKDIR, .name = resolve(c, dirfd, name) };

		names_set(&c->live, op.name, -1);
		push(c, op);
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

/* The start: what is under the root now, recorded as made and synced. */
static void record_tree(struct crashfs *c, const char *rel)
{
	char path[PATH_MAX + 64];
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "%s%s%s", c->root, *rel ? "/" : "", rel);
	d = opendir(path);
	ck_assert_msg(d != NULL, "%s: %s", path, strerror(errno));
	while ((de = readdir(d))) {
		char sub[PATH_MAX];
		struct stat st;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(sub, sizeof(sub), "%s%s%s", rel, *rel ? "/" : "", de->d_name);
		snprintf(path, sizeof(path), "%s/%s", c->root, sub);
		ck_assert_int_eq(lstat(path, &st), 0);
		if (S_ISDIR(st.st_mode)) {
			push(c, (struct op){ .kind = OP_MKDIR, .name = xstrdup(sub) });
			names_set(&c->live, sub, -1);
			record_tree(c, sub);
		} else if (S_ISREG(st.st_mode)) {
			struct buf b = { 0 };
			int ino = new_ino(c);

			read_file(path, &b);
			push(c, (struct op){ .kind = OP_CREATE, .ino = ino, .name = xstrdup(sub) });
			names_set(&c->live, sub, ino);
			if (b.len)
				push_write(c, ino, 0, b.data, b.len, false);
			buf_free(&b);
		}
	}
	closedir(d);
}

struct crashfs *crashfs_new(const char *root)
{
	struct crashfs *c = calloc(1, sizeof(*c));

	ck_assert_ptr_nonnull(c);
	pthread_mutex_init(&c->lock, NULL);
	c->root = realpath(root, NULL);
	ck_assert_msg(c->root != NULL, "%s: %s", root, strerror(errno));
	c->root_len = strlen(c->root);
	record_tree(c, "");
	push(c, (struct op){ .kind = OP_SYNC_ALL });
	c->fio = (struct fileio){ .open = rec_open,
		                  .close = rec_close,
		                  .pwrite = rec_pwrite,
		                  .append = rec_append,
		                  .sync = rec_sync,
		                  .syncfs = rec_syncfs,
		                  .truncate = rec_truncate,
		                  .rename = rec_rename,
		                  .unlink = rec_unlink,
		                  .mkdir = rec_mkdir,
		                  .punch = rec_punch,
		                  .ctx = c };
	return c;
}

void crashfs_free(struct crashfs *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++) {
		free(c->ops[i].name);
		free(c->ops[i].name2);
		free(c->ops[i].data);
	}
	free(c->ops);
	free(c->fds);
	free(c->size);
	names_free(&c->live);
	pthread_mutex_destroy(&c->lock);
	free(c->root);
	free(c);
}

const struct fileio *crashfs_io(struct crashfs *c)
{
	return &c->fio;
}

size_t crashfs_now(struct crashfs *c)
{
	size_t n;

	pthread_mutex_lock(&c->lock);
	n = c->n;
	pthread_mutex_unlock(&c->lock);
	return n;
}

size_t crashfs_files_created(struct crashfs *c)
{
	size_t n;

	pthread_mutex_lock(&c->lock);
	n = c->created;
	pthread_mutex_unlock(&c->lock);
	return n;
}

size_t crashfs_images(void)
{
	const char *env = getenv("CIRC_CRASH_IMAGES");

	return env ? strtoul(env, NULL, 10) : 1000;
}

uint64_t crashfs_draw(uint64_t *x)
{
	*x = *x * 6364136223846793005ull + 1442695040888963407ull;
	return *x >> 16;
}

/* --- crash images ------------------------------------------------------------------ */

struct file_img {
	struct buf durable;
	size_t *pending; /* op indices since its last sync */
	size_t n_pending, cap;
};

static void pending_push(struct file_img *f, size_t i)
{
	if (f->n_pending == f->cap) {
		f->cap = f->cap ? f->cap * 2 : 64;
		f->pending = xrealloc(f->pending, f->cap * sizeof(*f->pending));
	}
	f->pending[f->n_pending++] = i;
}

static void content_apply(struct buf *b, const struct op *op, uint64_t *x, bool tear)
{
	if (op->kind == OP_TRUNC) {
		if (op->len > b->len)
			ck_assert_int_eq(buf_append_zeros(b, op->len - b->len), 0);
		b->len = op->len;
		return;
	}
	if (op->off + op->len > b->len)
		ck_assert_int_eq(buf_append_zeros(b, op->off + op->len - b->len), 0);
	/* In pieces that end at the device's sector boundaries, counted from the file's start. */
	for (uint64_t i = 0, n; i < op->len; i += n) {
		n = DEV_SECTOR - (op->off + i) % DEV_SECTOR;
		if (n > op->len - i)
			n = op->len - i;
		if (tear && (crashfs_draw(x) & 3) == 0)
			continue; /* this device sector did not make it */
		memcpy(b->data + op->off + i, op->data + i, n);
	}
}

static void name_apply(struct names *ns, const struct op *op)
{
	char parent[PATH_MAX];
	ssize_t k;

	parent_of(op->name, parent, sizeof(parent));
	switch (op->kind) {
	case OP_MKDIR:
		if (names_has_dir(ns, parent))
			names_set(ns, op->name, -1);
		break;
	case OP_CREATE:
		if (names_has_dir(ns, parent))
			names_set(ns, op->name, op->ino);
		break;
	case OP_RENAME:
		k = names_find(ns, op->name);
		if (k >= 0 && strcmp(op->name, op->name2) != 0) { /* else its create was lost */
			int ino = ns->v[k].ino;

			names_remove(ns, op->name);
			names_set(ns, op->name2, ino);
		}
		break;
	case OP_UNLINK:
		names_remove(ns, op->name);
		break;
	default:
		break;
	}
}

void crashfs_image(struct crashfs *c, size_t k, uint64_t seed, const char *dir)
{
	struct file_img *files = calloc(c->n_inos ? c->n_inos : 1, sizeof(*files));
	size_t *ns_ops = xrealloc(NULL, (k + 1) * sizeof(*ns_ops)), n_ns = 0, n_unsynced = 0;
	bool *durable = calloc(k + 1, sizeof(*durable));
	struct names now = { 0 };
	uint64_t x = seed;
	size_t keep;

	ck_assert_ptr_nonnull(files);
	ck_assert_ptr_nonnull(durable);
	ck_assert_uint_le(k, c->n);
	for (size_t i = 0; i < k; i++) {
		const struct op *op = &c->ops[i];

		switch (op->kind) {
		case OP_WRITE:
		case OP_TRUNC:
			pending_push(&files[op->ino], i);
			break;
		case OP_SYNC: {
			struct file_img *f = &files[op->ino];

			for (size_t j = 0; j < f->n_pending; j++)
				content_apply(&f->durable, &c->ops[f->pending[j]], &x, false);
			f->n_pending = 0;
			break;
		}
		case OP_SYNC_ALL:
			for (size_t ino = 0; ino < c->n_inos; ino++) {
				struct file_img *f = &files[ino];

				for (size_t j = 0; j < f->n_pending; j++)
					content_apply(&f->durable, &c->ops[f->pending[j]], &x,
					              false);
				f->n_pending = 0;
			}
			for (size_t j = 0; j < n_ns; j++)
				durable[j] = true;
			break;
		case OP_SYNC_DIR:
			for (size_t j = 0; j < n_ns; j++) {
				char parent[PATH_MAX];

				parent_of(c->ops[ns_ops[j]].name, parent, sizeof(parent));
				if (strcmp(parent, op->name) == 0)
					durable[j] = true;
			}
			break;
		default:
			ns_ops[n_ns++] = i;
			break;
		}
	}
	/* The names: what was synced, and a prefix of the rest in their order. */
	for (size_t j = 0; j < n_ns; j++)
		n_unsynced += !durable[j];
	keep = crashfs_draw(&x) % (n_unsynced + 1);
	for (size_t j = 0, rank = 0; j < n_ns; j++) {
		if (!durable[j] && rank++ >= keep)
			continue;
		name_apply(&now, &c->ops[ns_ops[j]]);
	}
	for (size_t i = 0; i < now.n; i++) {
		char path[PATH_MAX + 64];
		struct file_img *f;
		struct buf b = { 0 };

		snprintf(path, sizeof(path), "%s/%s", dir, now.v[i].path);
		if (now.v[i].ino < 0) {
			make_dirs(path);
			continue;
		}
		f = &files[now.v[i].ino];
		ck_assert_int_eq(buf_append(&b, f->durable.data, f->durable.len), 0);
		for (size_t j = 0; j < f->n_pending; j++) {
			uint64_t r = crashfs_draw(&x);

			if (r & 1)
				continue; /* lost */
			content_apply(&b, &c->ops[f->pending[j]], &x, (r >> 1 & 3) == 0);
		}
		write_file(path, b.data, b.len);
		buf_free(&b);
	}
	for (size_t ino = 0; ino < c->n_inos; ino++) {
		buf_free(&files[ino].durable);
		free(files[ino].pending);
	}
	free(files);
	free(ns_ops);
	free(durable);
	names_free(&now);
}
