/* SPDX-License-Identifier: MIT */
/*
 * The file operations whose order and durability a crash can expose:
 * writes, syncs, truncations, creates, renames, removals, hole punches. Code
 * that must survive a power cut (the overlay, the cache, a local repo, the
 * state directory's commits) does them through a struct fileio, so that a
 * test can put a recorder in place of the system's and rebuild, from what
 * was recorded, every set of files a power cut could leave behind (as
 * SQLite's crash tests do with their test VFS). Reads are not recorded:
 * they change nothing a crash could lose.
 */
#ifndef CIRC_FILEIO_H
#define CIRC_FILEIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

struct fileio {
	/* openat(2), of a file or (O_DIRECTORY) a directory to sync; the descriptor or -errno. */
	int (*open)(void *ctx, int dirfd, const char *name, int flags, mode_t mode);
	int (*close)(void *ctx, int fd);
	/* The whole buffer at off, or -errno. */
	int (*pwrite)(void *ctx, int fd, const void *buf, size_t len, uint64_t off);
	/* writev(2) on an O_APPEND descriptor: the bytes written, or -errno. */
	ssize_t (*append)(void *ctx, int fd, const struct iovec *iov, int n);
	/* fdatasync(2) of a file or a directory: everything before it is durable. */
	int (*sync)(void *ctx, int fd);
	int (*truncate)(void *ctx, int fd, uint64_t len);
	/* fsync(2) of every file and directory of fd's file system (syncfs(2)). */
	int (*syncfs)(void *ctx, int fd);
	/* renameat(2) within one directory. */
	int (*rename)(void *ctx, int dirfd, const char *from, const char *to);
	int (*unlink)(void *ctx, int dirfd, const char *name);
	int (*mkdir)(void *ctx, int dirfd, const char *name, mode_t mode);
	/* Makes a range read as zeros, freeing its space (keeping the size). */
	int (*punch)(void *ctx, int fd, uint64_t off, uint64_t len);
	void *ctx;
};

/* The system's: the calls themselves. */
extern const struct fileio fileio_system;

#endif
