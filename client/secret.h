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

#include "util/err.h"
#include "vdisk/migrate.h"
#include "client/cli.h"

struct secret_source {
	const char *password_file;   /* --password-file, else $CIRC_PASSWORD_FILE */
	const char *passphrase_file; /* --passphrase-file, else $CIRC_PASSPHRASE_FILE */
};

/* The options of the commands that talk to a user's server (push, checkout). */
enum {
	OPT_PASSWORD_FILE = 0x980,
	OPT_PASSPHRASE_FILE,
	OPT_REQUEST_TIMEOUT,
};
#define SECRET_LONGOPTS                                                          \
	{ "password-file", required_argument, NULL, OPT_PASSWORD_FILE },         \
	    { "passphrase-file", required_argument, NULL, OPT_PASSPHRASE_FILE }, \
	{                                                                        \
		"timeout", required_argument, NULL, OPT_REQUEST_TIMEOUT          \
	}
#define SECRET_HELP                                                                              \
	"  --password-file FILE   the server password in FILE's first line\n"                    \
	"                         (default $CIRC_PASSWORD_FILE, else asked on the terminal)\n"   \
	"  --passphrase-file FILE the key's passphrase in FILE's first line\n"                   \
	"                         (default $CIRC_PASSPHRASE_FILE, else asked on the terminal)\n" \
	"  --timeout SECONDS      give up on a request after this long (default 30)\n"

/*
 * Takes option c of SECRET_LONGOPTS into src and net: 1 if it was one, 0 if
 * not, EXIT_USAGE (printed) for a bad value.
 */
int secret_option(struct cli *cli, struct secret_source *src, struct state_net *net, int c,
                  const char *arg);

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
