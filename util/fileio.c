/* SPDX-License-Identifier: MIT */
#include "util/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/file.h"

static int sys_open(void *ctx, int dirfd, const char *name, int flags, mode_t mode)
{
	int fd;

	(void)ctx;
	fd = openat(dirfd, name, flags, mode);
	return fd < 0 ? -errno : fd;
}

static int sys_close(void *ctx, int fd)
{
	(void)ctx;
	return close(fd) ? -errno : 0;
}

static int sys_pwrite(void *ctx, int fd, const void *buf, size_t len, uint64_t off)
{
	(void)ctx;
	return file_pwrite_full(fd, buf, len, off);
}

static ssize_t sys_append(void *ctx, int fd, const struct iovec *iov, int n)
{
	ssize_t w;

	(void)ctx;
	w = writev(fd, iov, n);
	return w < 0 ? -errno : w;
}

/* fdatasync: a file's data and size (all recovery needs), not its times. */
static int sys_sync(void *ctx, int fd)
{
	(void)ctx;
	return fdatasync(fd) ? -errno : 0;
}

static int sys_truncate(void *ctx, int fd, uint64_t len)
{
	(void)ctx;
	return ftruncate(fd, (off_t)len) ? -errno : 0;
}

static int sys_rename(void *ctx, int dirfd, const char *from, const char *to)
{
	(void)ctx;
	return renameat(dirfd, from, dirfd, to) ? -errno : 0;
}

static int sys_syncfs(void *ctx, int fd)
{
	(void)ctx;
	return syncfs(fd) ? -errno : 0;
}

static int sys_unlink(void *ctx, int dirfd, const char *name)
{
	(void)ctx;
	return unlinkat(dirfd, name, 0) ? -errno : 0;
}

static int sys_mkdir(void *ctx, int dirfd, const char *name, mode_t mode)
{
	(void)ctx;
	return mkdirat(dirfd, name, mode) ? -errno : 0;
}

static int sys_punch(void *ctx, int fd, uint64_t off, uint64_t len)
{
	(void)ctx;
	return fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len)
	           ? -errno
	           : 0;
}

const struct fileio fileio_system = {
	.open = sys_open,
	.close = sys_close,
	.pwrite = sys_pwrite,
	.append = sys_append,
	.sync = sys_sync,
	.truncate = sys_truncate,
	.syncfs = sys_syncfs,
	.rename = sys_rename,
	.unlink = sys_unlink,
	.mkdir = sys_mkdir,
	.punch = sys_punch,
};
