/* SPDX-License-Identifier: MIT */
#include "client/cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/json.h"
#include "vdisk/state.h"

static const char usage[] =
    "Usage: circ remote DISK [--set-url URL] [--add-mirror URL]... [--remove-mirror URL]...\n"
    "\n"
    "Shows where DISK's image comes from (its URL, then its mirrors, tried in\n"
    "order), or changes it: a server that moved, a neighbour that became a mirror\n"
    "(circ serve --cache). Nothing is pulled again: the key pinned for the image\n"
    "still checks everything, whatever the source. DISK must not be in use.\n"
    "\n"
    "  --set-url URL        the first URL (the origin), replacing it\n"
    "  --add-mirror URL     another source, tried after those before it\n"
    "  --remove-mirror URL  drop a source\n" CLI_JSON_HELP;

enum {
	OPT_SET_URL = OPT_LONG,
	OPT_ADD_MIRROR,
	OPT_REMOVE_MIRROR,
};

static int set_url(struct disk_conf *c, const char *url)
{
	char *u = strdup(url);

	if (!u)
		return -1;
	free(c->urls[0]);
	c->urls[0] = u;
	return 0;
}

static int add_mirror(struct disk_conf *c, const char *url, struct circ_err *err)
{
	for (size_t i = 0; i < c->n_urls; i++)
		if (strcmp(c->urls[i], url) == 0)
			return 0;
	if (c->n_urls == STATE_MAX_MIRRORS)
		return err_set(err, E2BIG, "a disk has at most %d sources", STATE_MAX_MIRRORS);
	c->urls[c->n_urls] = strdup(url);
	if (!c->urls[c->n_urls])
		return err_set(err, ENOMEM, "out of memory");
	c->n_urls++;
	return 0;
}

static int remove_mirror(struct disk_conf *c, const char *url, struct circ_err *err)
{
	for (size_t i = 0; i < c->n_urls; i++) {
		if (strcmp(c->urls[i], url) != 0)
			continue;
		if (c->n_urls == 1)
			return err_set(err, EINVAL, "%s is the disk's only source", url);
		free(c->urls[i]);
		memmove(&c->urls[i], &c->urls[i + 1], (c->n_urls - i - 1) * sizeof(c->urls[0]));
		c->urls[--c->n_urls] = NULL;
		return 0;
	}
	return err_set(err, ENOENT, "%s is not one of the disk's sources", url);
}

int cmd_remote(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "set-url", required_argument, NULL, OPT_SET_URL },
		{ "add-mirror", required_argument, NULL, OPT_ADD_MIRROR },
		{ "remove-mirror", required_argument, NULL, OPT_REMOVE_MIRROR },
		{ 0 },
	};
	struct {
		int op;
		const char *url;
	} ops[32];
	size_t n_ops = 0;
	struct disk_conf conf = { 0 };
	struct circ_err err;
	char *state = NULL, *dir = NULL;
	int c, rc = 1, lockfd = -1;

	cli->usage = usage;
	cli->reports = true;
	while ((c = cli_getopt(cli, argc, argv, "", longopts)) != -1) {
		if (c == CLI_EXIT_OK)
			return 0;
		if (c != OPT_SET_URL && c != OPT_ADD_MIRROR && c != OPT_REMOVE_MIRROR)
			return EXIT_USAGE;
		if (!state_url_valid(optarg))
			return cli_usage_error(cli, "'%s' is not an http:// or https:// URL",
			                       optarg);
		if (n_ops == sizeof(ops) / sizeof(ops[0]))
			return cli_usage_error(cli, "too many changes at once");
		ops[n_ops].op = c;
		ops[n_ops++].url = optarg;
	}
	if (argc - optind != 1)
		return cli_usage_error(cli, "expected one DISK");
	if (!state_disk_name_valid(argv[optind]))
		return cli_usage_error(cli, "invalid disk name '%s'", argv[optind]);
	state = cli_state_dir(cli, &err);
	dir = state ? state_disk_dir(state, argv[optind]) : NULL;
	if (!dir) {
		rc = state ? cli_fail(cli, "out of memory") : cli_fail_err(cli, &err);
		goto out;
	}
	if (disk_conf_load(dir, &conf, &err)) {
		rc = cli_fail_err(cli, &err);
		goto out;
	}
	if (conf.blank && n_ops) {
		rc = cli_fail(cli, "disk '%s' is blank: it has no image to fetch", argv[optind]);
		goto out;
	}
	if (n_ops) {
		lockfd = state_lock_disk(dir, &err);
		if (lockfd < 0) {
			rc = cli_fail_err(cli, &err);
			goto out;
		}
	}
	for (size_t i = 0; i < n_ops; i++) {
		int r =
		    ops[i].op == OPT_SET_URL
		        ? (set_url(&conf, ops[i].url) ? err_set(&err, ENOMEM, "out of memory") : 0)
		    : ops[i].op == OPT_ADD_MIRROR ? add_mirror(&conf, ops[i].url, &err)
		                                  : remove_mirror(&conf, ops[i].url, &err);

		if (r) {
			rc = cli_fail_err(cli, &err);
			goto out;
		}
	}
	if (n_ops && disk_conf_save(dir, &conf, &err)) {
		rc = cli_fail_err(cli, &err);
		goto out;
	}
	rc = 0;
	if (cli->json) {
		struct buf b = { 0 };
		struct json j;

		cli_json_start(&j, &b);
		json_str(&j, "disk", argv[optind]);
		json_str(&j, "origin", conf.n_urls ? conf.urls[0] : NULL);
		json_array_begin(&j, "mirrors");
		for (size_t i = 1; i < conf.n_urls; i++)
			json_str(&j, NULL, conf.urls[i]);
		json_array_end(&j);
		rc = cli_json_print(cli, &j);
		goto out;
	}
	for (size_t i = 0; i < conf.n_urls; i++)
		printf("%s%s\n", conf.urls[i], i ? "" : "  (origin)");
out:
	if (lockfd >= 0)
		close(lockfd);
	disk_conf_release(&conf);
	free(dir);
	free(state);
	return rc;
}
