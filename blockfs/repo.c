/* SPDX-License-Identifier: MIT */
#include "blockfs/repo.h"
#include "util/file.h"
#include "util/fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define TMP_PREFIX FILE_TMP_PREFIX

struct repo {
	char *location;
	int dirfd;                /* directory repos */
	const struct fileio *fio; /* their writes, as a crash test may record them */
	int lockfd;               /* held while publishing */
	struct fetch *fetch;      /* URL repos */
	atomic_uint tmp_seq;
};

int repo_open_dir(const char *dir, bool create, struct repo **out, struct circ_err *err)
{
	return repo_open_dir_io(dir, create, NULL, out, err);
}

int repo_open_dir_io(const char *dir, bool create, const struct fileio *fio, struct repo **out,
                     struct circ_err *err)
{
	struct repo *r;

	if (create && mkdir(dir, 0755) && errno != EEXIST)
		return err_sys(err, errno, "creating repo %s", dir);
	r = calloc(1, sizeof(*r));
	if (!r)
		return err_set(err, ENOMEM, "out of memory");
	r->lockfd = -1;
	r->fio = fio ? fio : &fileio_system;
	r->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r->dirfd < 0) {
		err_sys(err, errno, "opening repo %s", dir);
		free(r);
		return -1;
	}
	r->location = strdup(dir);
	if (!r->location) {
		repo_close(r);
		return err_set(err, ENOMEM, "out of memory");
	}
	*out = r;
	return 0;
}

int repo_open_url(const struct fetch_config *cfg, struct repo **out, struct circ_err *err)
{
	struct repo *r = calloc(1, sizeof(*r));

	if (!r)
		return err_set(err, ENOMEM, "out of memory");
	r->dirfd = r->lockfd = -1;
	r->fetch = fetch_new(cfg, err);
	if (!r->fetch) {
		free(r);
		return -1;
	}
	r->location = strdup(cfg->mirrors[0]);
	if (!r->location) {
		repo_close(r);
		return err_set(err, ENOMEM, "out of memory");
	}
	*out = r;
	return 0;
}

void repo_close(struct repo *r)
{
	if (!r)
		return;
	if (r->dirfd >= 0)
		close(r->dirfd);
	if (r->lockfd >= 0)
		close(r->lockfd);
	fetch_free(r->fetch);
	free(r->location);
	free(r);
}

const char *repo_location(const struct repo *r)
{
	return r->location;
}

struct fetch *repo_fetcher(struct repo *r)
{
	return r->fetch;
}

bool repo_name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > REPO_NAME_MAX || name[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

void repo_block_path(const struct block_id *id, char out[REPO_PATH_MAX])
{
	char hex[BLOCK_ID_HEX_LEN + 1];

	block_id_to_hex(id, hex);
	snprintf(out, REPO_PATH_MAX, "blocks/%.2s/%s", hex, hex);
}

void repo_manifest_path(const char *name, uint64_t version, char out[REPO_PATH_MAX])
{
	snprintf(out, REPO_PATH_MAX, "images/%s/%llu" REPO_MANIFEST_EXT, name,
	         (unsigned long long)version);
}

void repo_pointer_path(const char *name, char out[REPO_PATH_MAX])
{
	snprintf(out, REPO_PATH_MAX, "images/%s/" REPO_LATEST, name);
}

static int read_local(struct repo *r, const char *path, size_t max_len, struct buf *out,
                      struct circ_err *err)
{
	struct stat st;
	int fd, ret = -1;

	buf_reset(out);
	fd = openat(r->dirfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_sys(err, errno, "%s/%s", r->location, path);
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		err_set(err, EINVAL, "%s/%s: not a regular file", r->location, path);
		goto out;
	}
	if ((uint64_t)st.st_size > max_len) {
		err_set(err, EFBIG, "%s/%s: larger than %zu bytes", r->location, path, max_len);
		goto out;
	}
	if (buf_reserve(out, (size_t)st.st_size + 1)) {
		err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	/* Read to EOF, not to st_size: the file may change under us; still bounded. */
	for (;;) {
		ssize_t n;

		if (out->len == out->cap && buf_reserve(out, 4096)) {
			err_set(err, ENOMEM, "out of memory");
			goto out;
		}
		n = read(fd, out->data + out->len, out->cap - out->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err_sys(err, errno, "reading %s/%s", r->location, path);
			goto out;
		}
		if (n == 0)
			break;
		out->len += (size_t)n;
		if (out->len > max_len) {
			err_set(err, EFBIG, "%s/%s: larger than %zu bytes", r->location, path,
			        max_len);
			goto out;
		}
	}
	ret = 0;
out:
	if (ret)
		buf_reset(out);
	close(fd);
	return ret;
}

int repo_read_file(struct repo *r, const char *path, size_t max_len, unsigned flags,
                   struct buf *out, struct circ_err *err)
{
	if (r->fetch)
		return fetch_get(r->fetch, path, max_len, flags, NULL, NULL, out, err);
	return read_local(r, path, max_len, out, err);
}

struct block_check {
	const struct block_id *id;
	size_t block_size;
	void *out;
};

static int block_check(void *ctx, const struct buf *body, struct circ_err *err)
{
	struct block_check *c = ctx;

	return block_decode_verified(c->id, body->data, body->len, c->out, c->block_size, err);
}

int repo_read_block(struct repo *r, const struct block_id *id, size_t block_size, void *out,
                    struct buf *comp, struct circ_err *err)
{
	struct block_check check = { .id = id, .block_size = block_size, .out = out };
	size_t max = block_encoded_bound(block_size);
	char path[REPO_PATH_MAX];

	repo_block_path(id, path);
	if (r->fetch)
		return fetch_get(r->fetch, path, max, 0, block_check, &check, comp, err);
	if (read_local(r, path, max, comp, err))
		return -1;
	if (block_check(&check, comp, err))
		return err_prefix(err, "%s/%s", r->location, path);
	return 0;
}

int repo_lock(struct repo *r, struct circ_err *err)
{
	if (r->dirfd < 0)
		return err_set(err, EROFS, "%s: cannot publish to a URL", r->location);
	r->lockfd = openat(r->dirfd, ".lock", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (r->lockfd < 0)
		return err_sys(err, errno, "%s/.lock", r->location);
	if (flock(r->lockfd, LOCK_EX))
		return err_sys(err, errno, "locking %s", r->location);
	return 0;
}

bool repo_file_exists(struct repo *r, const char *path)
{
	struct stat st;

	return fstatat(r->dirfd, path, &st, 0) == 0 && S_ISREG(st.st_mode);
}

int repo_remove_file(struct repo *r, const char *path)
{
	return r->fio->unlink(r->fio->ctx, r->dirfd, path);
}

bool repo_has_block(struct repo *r, const struct block_id *id)
{
	char path[REPO_PATH_MAX];

	repo_block_path(id, path);
	return repo_file_exists(r, path);
}

/* Syncs the directory holding path (the repo's own for a top-level name). */
static int sync_parent(struct repo *r, const char *path)
{
	const char *slash = strrchr(path, '/');
	char dir[REPO_PATH_MAX];
	int fd, rc;

	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
	fd = r->fio->open(r->fio->ctx, r->dirfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	rc = fd < 0 ? fd : r->fio->sync(r->fio->ctx, fd);
	if (fd >= 0)
		r->fio->close(r->fio->ctx, fd);
	return rc;
}

/*
 * Makes the directories above path. For a durable file each new one's own
 * name is synced too: a synced file in a directory whose name a power cut
 * took is as lost as an unsynced one.
 */
static int mkdirs_for(struct repo *r, const char *path, bool durable, struct circ_err *err)
{
	char dir[REPO_PATH_MAX];
	int rc;

	snprintf(dir, sizeof(dir), "%s", path);
	for (char *p = strchr(dir, '/'); p; p = strchr(p + 1, '/')) {
		*p = '\0';
		rc = r->fio->mkdir(r->fio->ctx, r->dirfd, dir, 0755);
		if (!rc && durable)
			rc = sync_parent(r, dir);
		if (rc && rc != -EEXIST)
			return err_sys(err, -rc, "creating %s/%s", r->location, dir);
		*p = '/';
	}
	return 0;
}

/* Writes data to a temporary beside path; on success *tmp names it. */
static int write_temporary(struct repo *r, const char *path, const void *data, size_t len,
                           bool durable, char tmp[REPO_PATH_MAX], struct circ_err *err)
{
	const char *slash = strrchr(path, '/');
	int dirlen = slash ? (int)(slash - path + 1) : 0;
	int fd, rc;

	snprintf(tmp, REPO_PATH_MAX, "%.*s" TMP_PREFIX "%ld-%u", dirlen, path, (long)getpid(),
	         atomic_fetch_add(&r->tmp_seq, 1));
	fd =
	    r->fio->open(r->fio->ctx, r->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	/* Directories are made on demand: most writes land in one that exists. */
	if (fd == -ENOENT) {
		if (mkdirs_for(r, path, durable, err))
			return -1;
		fd = r->fio->open(r->fio->ctx, r->dirfd, tmp,
		                  O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	}
	if (fd < 0)
		return err_sys(err, -fd, "creating %s/%s", r->location, tmp);
	rc = r->fio->pwrite(r->fio->ctx, fd, data, len, 0);
	if (!rc && durable)
		rc = r->fio->sync(r->fio->ctx, fd);
	fd = r->fio->close(r->fio->ctx, fd);
	if (fd && !rc)
		rc = fd;
	if (rc) {
		r->fio->unlink(r->fio->ctx, r->dirfd, tmp);
		return err_sys(err, -rc, "writing %s/%s", r->location, path);
	}
	return 0;
}

int repo_store_block(struct repo *r, const struct block_id *id, const void *data, size_t len,
                     struct circ_err *err)
{
	char path[REPO_PATH_MAX], tmp[REPO_PATH_MAX];

	repo_block_path(id, path);
	int rc;

	if (write_temporary(r, path, data, len, false, tmp, err))
		return -1;
	rc = r->fio->rename(r->fio->ctx, r->dirfd, tmp, path);
	if (rc) {
		r->fio->unlink(r->fio->ctx, r->dirfd, tmp);
		return err_sys(err, -rc, "renaming into %s/%s", r->location, path);
	}
	return 0;
}

int repo_remove_block(struct repo *r, const struct block_id *id)
{
	char path[REPO_PATH_MAX];

	repo_block_path(id, path);
	return repo_remove_file(r, path);
}

int repo_sync(struct repo *r, struct circ_err *err)
{
	int rc = r->fio->syncfs(r->fio->ctx, r->dirfd);

	return rc ? err_sys(err, -rc, "syncing %s", r->location) : 0;
}

int repo_write_file(struct repo *r, const char *path, const void *data, size_t len,
                    struct circ_err *err)
{
	if (mkdirs_for(r, path, true, err))
		return -1;
	if (file_write_atomic_at(r->fio, r->dirfd, path, data, len, 0644, err))
		return err_prefix(err, "%s", r->location);
	return 0;
}

static bool is_dir(int dirfd, const struct dirent *de)
{
	struct stat st;

	if (de->d_type != DT_UNKNOWN)
		return de->d_type == DT_DIR;
	/* Some file systems leave d_type unknown: ask the inode. */
	return fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

static void clean_dir(int dirfd, const char *sub)
{
	int fd = openat(dirfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *de;
	DIR *d;

	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' &&
		    (de->d_name[1] == '\0' || strcmp(de->d_name, "..") == 0))
			continue;
		if (strncmp(de->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) == 0)
			unlinkat(fd, de->d_name, 0);
		else if (is_dir(fd, de))
			clean_dir(fd, de->d_name);
	}
	closedir(d);
}

/* Checks the blocks of one fan-out directory stored at or after since. */
static int check_blocks_in(struct repo *r, const char *sub, const struct timespec *since,
                           uint64_t *removed, struct circ_err *err)
{
	int fd = openat(r->dirfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct buf b = { 0 };
	struct dirent *de;
	int rc = 0;
	DIR *d;

	if (fd < 0)
		return errno == ENOENT ? 0 : err_sys(err, errno, "%s/%s", r->location, sub);
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return err_sys(err, errno, "%s/%s", r->location, sub);
	}
	while (!rc && (de = readdir(d))) {
		char path[REPO_PATH_MAX];
		struct block_id id;
		struct circ_err why;
		struct stat st;

		if (de->d_name[0] == '.' || block_id_from_hex(&id, de->d_name) ||
		    fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) || !S_ISREG(st.st_mode))
			continue;
		if (st.st_mtim.tv_sec < since->tv_sec ||
		    (st.st_mtim.tv_sec == since->tv_sec && st.st_mtim.tv_nsec < since->tv_nsec))
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", sub, de->d_name) >= (int)sizeof(path))
			continue;
		if (repo_read_file(r, path, block_encoded_bound(BLOCK_SIZE_MAX), 0, &b, &why) ==
		        0 &&
		    block_check_stored(&id, b.data, b.len, &why) == 0)
			continue;
		/* Only what was read and found damaged (or too large to be a block) goes. */
		if (why.errnum != EBADMSG && why.errnum != EFBIG) {
			rc = err_set(err, why.errnum, "checking %s/%s: %s", r->location, path,
			             why.msg);
			break;
		}
		rc = r->fio->unlink(r->fio->ctx, r->dirfd, path);
		if (rc)
			rc = err_sys(err, -rc, "removing the damaged block %s/%s", r->location,
			             path);
		else
			(*removed)++;
	}
	buf_free(&b);
	closedir(d);
	return rc;
}

int repo_check_blocks_since(struct repo *r, const struct timespec *since, uint64_t *removed,
                            struct circ_err *err)
{
	*removed = 0;
	for (int i = 0; i < 256; i++) {
		char sub[16];

		snprintf(sub, sizeof(sub), "blocks/%02x", i);
		if (check_blocks_in(r, sub, since, removed, err))
			return -1;
	}
	return 0;
}

void repo_clean_temporaries(struct repo *r)
{
	clean_dir(r->dirfd, "blocks");
	clean_dir(r->dirfd, "images");
}
