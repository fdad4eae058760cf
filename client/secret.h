/* SPDX-License-Identifier: MIT */
/*
 * Secrets the user gives: read from a file named by an option or an
 * environment variable, else from the terminal without echo; never from
 * the command line. Buffers are wiped by whoever owns them.
 */
#ifndef CIRC_SECRET_H
#define CIRC_SECRET_H

#include <stdbool.h>
#include <stddef.h>

#include "blockfs/err.h"
#include "vdisk/migrate.h"

struct secret_source {
	const char *password_file;   /* --password-file, else $CIRC_PASSWORD_FILE */
	const char *passphrase_file; /* --passphrase-file, else $CIRC_PASSPHRASE_FILE */
};

/*
 * Reads one secret: the first line of file (without its newline), or, with
 * no file, from /dev/tty after prompt (twice if confirm, which must match).
 * Returns its length in *len.
 */
int secret_read(const char *file, const char *prompt, bool confirm, char *out, size_t n,
                size_t *len, struct circ_err *err);

/* Callbacks for vdisk/migrate.h that read from src. */
struct migrate_prompt secret_prompt(struct secret_source *src);

#endif
