/* SPDX-License-Identifier: MIT */
/* Whole-file reads with a bound, and durable atomic replacement of small files. */
#ifndef CIRC_FILE_H
#define CIRC_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/buf.h"
#include "util/err.h"

/* Reads path into out (replacing it); more than max_len bytes is an error (EFBIG). */
CIRC_MUST_CHECK int file_read_all(const char *path, size_t max_len, struct buf *out,
                                  struct circ_err *err);
/* Replaces path with data: temporary file, fsync, rename, fsync of the directory. */
CIRC_MUST_CHECK int file_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
                                      struct circ_err *err);
/* The same through fio (NULL: the system's), as a crash test records it. */
struct fileio;
CIRC_MUST_CHECK int file_write_atomic_io(const struct fileio *fio, const char *path,
                                         const void *data, size_t len, mode_t mode,
                                         struct circ_err *err);
/* The same with path relative to dirfd (or AT_FDCWD); the directory must exist. */
CIRC_MUST_CHECK int file_write_atomic_at(const struct fileio *fio, int dirfd, const char *path,
                                         const void *data, size_t len, mode_t mode,
                                         struct circ_err *err);
/* What the temporaries of file_write_atomic* are named with (hidden, beside the file). */
#define FILE_TMP_PREFIX ".tmp-"

/*
 * pread and pwrite of exactly len bytes, going on after short transfers and
 * EINTR: 0, or -errno (-ENODATA when the file ends first).
 */
CIRC_MUST_CHECK int file_pread_full(int fd, void *buf, size_t len, uint64_t off);
CIRC_MUST_CHECK int file_pwrite_full(int fd, const void *buf, size_t len, uint64_t off);

/* mkdir -p, each component with mode. */
CIRC_MUST_CHECK int file_mkdirs(const char *path, mode_t mode, struct circ_err *err);

#endif
