/* SPDX-License-Identifier: MIT */
/* The command line's shared pieces: context, common options, parsing helpers. */
#ifndef CIRC_CLI_H
#define CIRC_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "vdisk/state.h"

#define EXIT_USAGE 2

struct cli_net;

struct cli {
	const char *state_dir; /* --state, else $CIRC_STATE, else XDG cache */
	int verbose;
	const char *cmd;   /* the subcommand, for messages */
	const char *usage; /* its --help text */
	/* Set by commands that take --mirror, --timeout and --cache-size: cli_getopt fills it. */
	struct cli_net *net;
	/* Set by commands that report something: they take --json, which sets json. */
	bool reports;
	bool json;
};

#define CLI_JSON_HELP "  --json             one JSON object on stdout instead of text\n"

struct json;
struct buf;
/* A --json report: j writes into b, an empty buf, its top-level object open. */
void cli_json_start(struct json *j, struct buf *b);
/*
 * Closes the top-level object, ends the text and writes it to stdout (b is
 * freed); 0, or 1 after saying why.
 */
int cli_json_print(const struct cli *cli, struct json *j);

/* Option codes for long options without a short form start here. */
#define OPT_LONG 0x1000

/* cli_getopt's answers besides option codes and -1 (no more options). */
#define CLI_EXIT_OK    -100 /* --help was printed: exit 0 */
#define CLI_EXIT_USAGE -101 /* a usage error was printed: exit 2 */

/*
 * getopt_long over argv with --state, -v/--verbose and -h/--help merged in
 * and handled here; options may follow positional arguments.
 */
int cli_getopt(struct cli *cli, int argc, char **argv, const char *shortopts,
               const struct option *longopts);

/* Prints "circ CMD: message" and the --help hint to stderr; returns EXIT_USAGE. */
int cli_usage_error(const struct cli *cli, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prints "circ CMD: message"; returns 1. */
int cli_fail(const struct cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int cli_fail_err(const struct cli *cli, const struct circ_err *err);
/* Prints "circ CMD: message" whatever the verbosity: what a user must know. */
void cli_warn(const struct cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints only when -v was given. */
void cli_info(const struct cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "64K", "1M", "2G", plain bytes. */
int cli_parse_size(const char *s, uint64_t *out);
/* "30d", "12h", "90m", "45s", plain seconds. */
int cli_parse_duration(const char *s, uint64_t *seconds);
int cli_parse_u64(const char *s, uint64_t *out);

/*
 * Network and cache options of the client commands (pull, update, mount).
 * A disk keeps at most STATE_MAX_MIRRORS sources: pull's URL and its mirrors.
 */
#define CLI_MAX_MIRRORS (STATE_MAX_MIRRORS - 1)
enum {
	OPT_MIRROR = 0x900,
	OPT_TIMEOUT,
	OPT_CACHE_SIZE
};
#define CLI_NET_HELP                                                                            \
	"  --mirror URL       another server with the same repo, tried in order (repeatable)\n" \
	"  --timeout SECONDS  give up on a block after this long: the read fails with EIO\n"    \
	"                     (default 30)\n"                                                   \
	"  --cache-size SIZE  bound of the block cache, which every process of the\n"           \
	"                     state directory shares: the bound this command keeps as\n"        \
	"                     it makes room (default: circ config cache-size, else 4G)\n"

struct cli_net {
	const char *mirrors[CLI_MAX_MIRRORS];
	size_t n_mirrors;
	long timeout_ms;
	uint64_t cache_size;
};

/*
 * The engines' network options from the command's: the mirrors (tried
 * after a disk's own sources) and the timeout; progress may be NULL.
 */
struct state_net cli_state_net(const struct cli_net *net, state_progress_fn progress,
                               void *progress_ctx);

/*
 * The state directory: --state, else $CIRC_STATE, else $XDG_CACHE_HOME/circ,
 * else ~/.cache/circ; created if missing. The caller frees it.
 */
char *cli_state_dir(const struct cli *cli, struct circ_err *err);

/* path made absolute against the working directory (the caller frees). */
char *cli_absolute_path(const char *path);

/* Subcommands. */
int cmd_keygen(struct cli *cli, int argc, char **argv);
int cmd_publish(struct cli *cli, int argc, char **argv);
int cmd_verify(struct cli *cli, int argc, char **argv);
int cmd_sync(struct cli *cli, int argc, char **argv);
int cmd_serve(struct cli *cli, int argc, char **argv);
int cmd_pull(struct cli *cli, int argc, char **argv);
int cmd_mount(struct cli *cli, int argc, char **argv);
int cmd_umount(struct cli *cli, int argc, char **argv);
int cmd_update(struct cli *cli, int argc, char **argv);
int cmd_stats(struct cli *cli, int argc, char **argv);
int cmd_ls(struct cli *cli, int argc, char **argv);
int cmd_rm(struct cli *cli, int argc, char **argv);
int cmd_run(struct cli *cli, int argc, char **argv);
int cmd_create(struct cli *cli, int argc, char **argv);
int cmd_push(struct cli *cli, int argc, char **argv);
int cmd_checkout(struct cli *cli, int argc, char **argv);
int cmd_log(struct cli *cli, int argc, char **argv);
int cmd_lease(struct cli *cli, int argc, char **argv);
int cmd_config(struct cli *cli, int argc, char **argv);
int cmd_fetch(struct cli *cli, int argc, char **argv);
int cmd_remote(struct cli *cli, int argc, char **argv);

#endif
