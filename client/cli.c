/* SPDX-License-Identifier: MIT */
#include "client/cli.h"

#include "util/file.h"
#include "util/json.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OPT_STATE (OPT_LONG - 1)
#define OPT_JSON  (OPT_LONG - 2)
#define MAX_OPTS  64

/* One of the network options: 1 if handled, 0 if not one, -1 after a usage error. */
static int net_option(const struct cli *cli, struct cli_net *net, int c, const char *arg)
{
	uint64_t v;

	switch (c) {
	case OPT_MIRROR:
		if (net->n_mirrors == CLI_MAX_MIRRORS) {
			cli_usage_error(cli, "at most %d mirrors", CLI_MAX_MIRRORS);
			return -1;
		}
		net->mirrors[net->n_mirrors++] = arg;
		return 1;
	case OPT_TIMEOUT:
		if (cli_parse_u64(arg, &v) || v == 0 || v > 86400) {
			cli_usage_error(cli, "bad timeout '%s' (seconds, 1 to 86400)", arg);
			return -1;
		}
		net->timeout_ms = (long)v * 1000;
		return 1;
	case OPT_CACHE_SIZE:
		if (cli_parse_size(arg, &v) || v < (1u << 20)) {
			cli_usage_error(cli, "bad cache size '%s' (at least 1M)", arg);
			return -1;
		}
		net->cache_size = v;
		return 1;
	default:
		return 0;
	}
}

int cli_getopt(struct cli *cli, int argc, char **argv, const char *shortopts,
               const struct option *longopts)
{
	static const struct option common[] = {
		{ "state", required_argument, NULL, OPT_STATE },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
	};
	static const struct option json = { "json", no_argument, NULL, OPT_JSON };
	static const struct option network[] = {
		{ "mirror", required_argument, NULL, OPT_MIRROR },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "cache-size", required_argument, NULL, OPT_CACHE_SIZE },
	};
	struct option all[MAX_OPTS];
	char shorts[128];
	size_t n = 0;
	int c;

	for (; longopts && longopts[n].name && n < MAX_OPTS - 8; n++)
		all[n] = longopts[n];
	if (cli->reports)
		all[n++] = json;
	if (cli->net) {
		memcpy(all + n, network, sizeof(network));
		n += 3;
	}
	memcpy(all + n, common, sizeof(common));
	memset(all + n + 3, 0, sizeof(all[0]));
	/* ':' first: a missing argument is reported as ':' rather than '?'. */
	if (!shortopts)
		shortopts = "";
	if (shortopts[0] == '+') /* stop at the first non-option: must lead */
		snprintf(shorts, sizeof(shorts), "+:hv%s", shortopts + 1);
	else
		snprintf(shorts, sizeof(shorts), ":hv%s", shortopts);

	opterr = 0;
	c = getopt_long(argc, argv, shorts, all, NULL);
	switch (c) {
	case OPT_STATE:
		cli->state_dir = optarg;
		return cli_getopt(cli, argc, argv, shortopts, longopts);
	case 'v':
		cli->verbose++;
		return cli_getopt(cli, argc, argv, shortopts, longopts);
	case OPT_JSON:
		cli->json = true;
		return cli_getopt(cli, argc, argv, shortopts, longopts);
	case 'h':
		fputs(cli->usage, stdout);
		return CLI_EXIT_OK;
	case ':':
		cli_usage_error(cli, "option '%s' needs an argument", argv[optind - 1]);
		return CLI_EXIT_USAGE;
	case '?':
		if (optopt)
			cli_usage_error(cli, "unknown option '-%c'", optopt);
		else
			cli_usage_error(cli, "unknown option '%s'", argv[optind - 1]);
		return CLI_EXIT_USAGE;
	default:
		if (cli->net) {
			int r = net_option(cli, cli->net, c, optarg);

			if (r < 0)
				return CLI_EXIT_USAGE;
			if (r)
				return cli_getopt(cli, argc, argv, shortopts, longopts);
		}
		return c;
	}
}

static void vprint(const struct cli *cli, const char *fmt, va_list ap)
{
	fprintf(stderr, "circ%s%s: ", cli->cmd ? " " : "", cli->cmd ? cli->cmd : "");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

int cli_usage_error(const struct cli *cli, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprint(cli, fmt, ap);
	va_end(ap);
	fprintf(stderr, "Try 'circ%s%s --help'.\n", cli->cmd ? " " : "", cli->cmd ? cli->cmd : "");
	return EXIT_USAGE;
}

int cli_fail(const struct cli *cli, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprint(cli, fmt, ap);
	va_end(ap);
	return 1;
}

int cli_fail_err(const struct cli *cli, const struct circ_err *err)
{
	return cli_fail(cli, "%s", err->msg);
}

void cli_warn(const struct cli *cli, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprint(cli, fmt, ap);
	va_end(ap);
}

void cli_info(const struct cli *cli, const char *fmt, ...)
{
	va_list ap;

	if (!cli->verbose)
		return;
	va_start(ap, fmt);
	vprint(cli, fmt, ap);
	va_end(ap);
}

int cli_parse_u64(const char *s, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

/* Parses a number followed by at most one suffix from units. */
static int parse_scaled(const char *s, const char *units, const uint64_t *scale, uint64_t *out)
{
	unsigned long long v;
	uint64_t mul = 1;
	const char *u;
	char *end;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	if (*end) {
		u = strchr(units, *end);
		if (!u || end[1])
			return -EINVAL;
		mul = scale[u - units];
	}
	if (v > UINT64_MAX / mul)
		return -ERANGE;
	*out = v * mul;
	return 0;
}

int cli_parse_size(const char *s, uint64_t *out)
{
	static const uint64_t scale[] = { 1ull << 10, 1ull << 20, 1ull << 30,
		                          1ull << 10, 1ull << 20, 1ull << 30 };

	return parse_scaled(s, "KMGkmg", scale, out);
}

int cli_parse_duration(const char *s, uint64_t *seconds)
{
	static const uint64_t scale[] = { 1, 60, 3600, 86400 };

	return parse_scaled(s, "smhd", scale, seconds);
}

struct state_net cli_state_net(const struct cli_net *net, state_progress_fn progress,
                               void *progress_ctx)
{
	return (struct state_net){ .extra_mirrors = net->mirrors,
		                   .n_extra = net->n_mirrors,
		                   .timeout_ms = net->timeout_ms,
		                   .progress = progress,
		                   .progress_ctx = progress_ctx };
}

char *cli_state_dir(const struct cli *cli, struct circ_err *err)
{
	const char *env = getenv("CIRC_STATE"), *xdg = getenv("XDG_CACHE_HOME");
	const char *home = getenv("HOME");
	char *dir = NULL, *abs;
	int n;

	if (cli->state_dir)
		n = asprintf(&dir, "%s", cli->state_dir);
	else if (env && *env)
		n = asprintf(&dir, "%s", env);
	else if (xdg && *xdg == '/')
		n = asprintf(&dir, "%s/circ", xdg);
	else if (home && *home == '/')
		n = asprintf(&dir, "%s/.cache/circ", home);
	else {
		err_set(err, ENOENT, "no state directory: give --state DIR or set CIRC_STATE");
		return NULL;
	}
	if (n < 0) {
		err_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	if (file_mkdirs(dir, 0755, err)) {
		free(dir);
		return NULL;
	}
	/* Absolute: a mount's daemon leaves the working directory. */
	abs = realpath(dir, NULL);
	if (!abs)
		err_sys(err, errno, "%s", dir);
	free(dir);
	return abs;
}

char *cli_absolute_path(const char *path)
{
	char *cwd, *abs;

	if (path[0] == '/')
		return strdup(path);
	cwd = getcwd(NULL, 0);
	if (!cwd)
		return NULL;
	if (asprintf(&abs, "%s/%s", cwd, path) < 0)
		abs = NULL;
	free(cwd);
	return abs;
}

void cli_json_start(struct json *j, struct buf *b)
{
	json_init(j, b);
	json_object_begin(j, NULL);
}

int cli_json_print(const struct cli *cli, struct json *j)
{
	int rc;

	json_object_end(j);
	rc = json_finish(j);

	if (!rc && fwrite(j->out->data, 1, j->out->len, stdout) != j->out->len)
		rc = -EIO;
	buf_free(j->out);
	if (rc)
		return cli_fail(cli, "writing the report: %s", strerror(-rc));
	return 0;
}
