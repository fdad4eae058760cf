/* SPDX-License-Identifier: MIT */
#include "util/file.h"
#include "util/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

int file_read_all(const char *path, size_t max_len, struct buf *out, struct circ_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	buf_reset(out);
	if (fd < 0)
		return err_sys(err, errno, "%s", path);
	for (;;) {
		ssize_t n;

		if (buf_reserve(out, 4096)) {
			close(fd);
			return err_set(err, ENOMEM, "out of memory");
		}
		n = read(fd, out->data + out->len, out->cap - out->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err_sys(err, errno, "reading %s", path);
			close(fd);
			return -1;
		}
		if (n == 0)
			break;
		out->len += (size_t)n;
		if (out->len > max_len) {
			close(fd);
			buf_reset(out);
			return err_set(err, EFBIG, "%s is larger than %zu bytes", path, max_len);
		}
	}
	close(fd);
	return 0;
}

int file_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
                      struct circ_err *err)
{
	return file_write_atomic_io(NULL, path, data, len, mode, err);
}

int file_write_atomic_io(const struct fileio *fio, const char *path, const void *data, size_t len,
                         mode_t mode, struct circ_err *err)
{
	return file_write_atomic_at(fio, AT_FDCWD, path, data, len, mode, err);
}

int file_write_atomic_at(const struct fileio *fio, int dirfd, const char *path, const void *data,
                         size_t len, mode_t mode, struct circ_err *err)
{
	const char *slash = strrchr(path, '/');
	char *tmp = NULL, *dir = NULL;
	int fd, rc;

	if (!fio)
		fio = &fileio_system;
	/*
	 * Hidden, beside path, with a random name made with O_EXCL: writers in
	 * other processes (other PID namespaces too) never share one or remove
	 * each other's, and a repository's clean-up recognises the prefix of
	 * what a crash left.
	 */
	fd = -EEXIST;
	for (int attempt = 0; attempt < 8 && fd == -EEXIST; attempt++) {
		uint64_t r;

		free(tmp);
		tmp = NULL;
		if (getrandom(&r, sizeof(r), 0) != sizeof(r))
			r = (uint64_t)getpid() << 32 ^ (uint64_t)gettid() ^ (uint64_t)attempt;
		if (asprintf(&tmp, "%.*s" FILE_TMP_PREFIX "%ld-%016llx",
		             slash ? (int)(slash - path + 1) : 0, path, (long)getpid(),
		             (unsigned long long)r) < 0)
			return err_set(err, ENOMEM, "out of memory");
		fd = fio->open(fio->ctx, dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	}
	if (fd < 0) {
		rc = err_sys(err, -fd, "creating %s", tmp);
		goto out;
	}
	rc = fio->pwrite(fio->ctx, fd, data, len, 0);
	if (!rc)
		rc = fio->sync(fio->ctx, fd);
	fd = fio->close(fio->ctx, fd);
	if (rc || (rc = fd)) {
		err_sys(err, -rc, "writing %s", path);
		fio->unlink(fio->ctx, dirfd, tmp);
		goto out;
	}
	rc = fio->rename(fio->ctx, dirfd, tmp, path);
	if (rc) {
		err_sys(err, -rc, "renaming to %s", path);
		fio->unlink(fio->ctx, dirfd, tmp);
		goto out;
	}
	/* The rename itself must reach the disk before anyone relies on it. */
	if (asprintf(&dir, "%.*s", slash ? (slash == path ? 1 : (int)(slash - path)) : 1,
	             slash ? path : ".") < 0) {
		rc = err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	fd = fio->open(fio->ctx, dirfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	rc = fd < 0 ? fd : fio->sync(fio->ctx, fd);
	if (fd >= 0)
		fio->close(fio->ctx, fd);
	if (rc)
		err_sys(err, -rc, "syncing %s", dir);
out:
	free(tmp);
	free(dir);
	return rc ? -1 : 0;
}

int file_mkdirs(const char *path, mode_t mode, struct circ_err *err)
{
	char *p;

	if (!*path)
		return err_set(err, EINVAL, "empty path");
	p = strdup(path);
	if (!p)
		return err_set(err, ENOMEM, "out of memory");
	for (char *s = strchr(p + 1, '/');; s = strchr(s + 1, '/')) {
		if (s)
			*s = '\0';
		if (mkdir(p, mode) && errno != EEXIST) {
			err_sys(err, errno, "creating %s", p);
			free(p);
			return -1;
		}
		if (!s)
			break;
		*s = '/';
	}
	free(p);
	return 0;
}

int file_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = pread(fd, (uint8_t *)buf + got, len - got, (off_t)(off + got));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ENODATA;
		got += (size_t)n;
	}
	return 0;
}

int file_pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n =
		    pwrite(fd, (const uint8_t *)buf + done, len - done, (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		done += (size_t)n;
	}
	return 0;
}
