/* SPDX-License-Identifier: MIT */
/*
 * Error reporting shared by every module: a function that fails fills a
 * caller-owned struct circ_err with one line naming the cause and returns -1.
 * The command line prints that line; libraries never print or exit.
 */
#ifndef CIRC_ERR_H
#define CIRC_ERR_H

#include <stdarg.h>

#define CIRC_ERR_MSG_MAX 512

struct circ_err {
	int errnum; /* errno-style code, 0 when the cause is not a system error */
	char msg[CIRC_ERR_MSG_MAX];
};

/* Fills err (if non-NULL) and returns -1, so callers can `return err_set(...)`. */
/*
 * On a function whose failure must not go unseen: ignoring its result is a
 * build error. (Best-effort calls test it and say why they go on.)
 */
#define CIRC_MUST_CHECK __attribute__((warn_unused_result))
/* Such a call whose failure the caller lets pass, saying why beside it. */
#define CIRC_BEST_EFFORT(call) ((void)!(call))

int err_set(struct circ_err *err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Like err_set, appending ": strerror(errnum)". */
int err_sys(struct circ_err *err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes the message already in err with more context ("reading X: ..."). */
int err_prefix(struct circ_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
