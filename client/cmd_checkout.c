/* SPDX-License-Identifier: MIT */
#include "client/cli.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "util/json.h"
#include "vdisk/migrate.h"
#include "client/secret.h"

static const char usage[] =
    "Usage: circ checkout URL DISK --user USER [--version N] [--steal] [--key PUB]\n"
    "\n"
    "Checks DISK out of the server at URL: takes its lease, so that no other machine\n"
    "can check it in meanwhile, and makes the local disk DISK from its newest\n"
    "check-in. Nothing else is fetched: blocks arrive on first read. A disk over a\n"
    "published image pulls that image at the version the check-in was made over\n"
    "(its key pinned as circ pull pins it).\n"
    "\n"
    "Refused, naming the machine and since when, while another machine holds the\n"
    "lease; --steal takes it anyway (that machine's later push becomes a branch,\n"
    "never an overwrite). An existing local DISK must hold no writes that were\n"
    "not checked in.\n"
    "\n"
    "  --user USER            the user on the server\n"
    "  --version N            bring back check-in N, as a new check-in on top\n"
    "  --steal                take the lease from the machine holding it\n"
    "  --key PUB              the base image's publisher key, if not pinned here\n" CLI_JSON_HELP
        SECRET_HELP;

enum {
	OPT_USER = OPT_LONG,
	OPT_VERSION,
	OPT_STEAL,
	OPT_KEY,
};

int cmd_checkout(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "user", required_argument, NULL, OPT_USER },
		{ "version", required_argument, NULL, OPT_VERSION },
		{ "steal", no_argument, NULL, OPT_STEAL },
		{ "key", required_argument, NULL, OPT_KEY },
		SECRET_LONGOPTS,
		{ 0 },
	};
	struct secret_source src = { 0 };
	struct checkout_options o = { 0 };
	struct checkout_result res;
	struct state_net sn = { 0 };
	struct circ_err err;
	char *state;
	int c, rc;

	cli->usage = usage;
	cli->reports = true;
	while ((c = cli_getopt(cli, argc, argv, "", longopts)) != -1) {
		if (c == CLI_EXIT_OK)
			return 0;
		switch (c) {
		case OPT_USER:
			o.user = optarg;
			break;
		case OPT_VERSION:
			if (cli_parse_u64(optarg, &o.version) || o.version == 0)
				return cli_usage_error(cli, "bad --version '%s'", optarg);
			break;
		case OPT_STEAL:
			o.steal = true;
			break;
		case OPT_KEY:
			o.key_path = optarg;
			break;
		default:
			rc = secret_option(cli, &src, &sn, c, optarg);
			if (rc != 1)
				return EXIT_USAGE;
		}
	}
	if (argc - optind != 2)
		return cli_usage_error(cli, "expected URL and DISK");
	if (!o.user)
		return cli_usage_error(cli, "--user is required");
	o.url = argv[optind];
	o.net = &sn;
	o.prompt = secret_prompt(&src);
	state = cli_state_dir(cli, &err);
	if (!state)
		return cli_fail_err(cli, &err);
	rc = migrate_checkout(state, argv[optind + 1], &o, &res, &err);
	free(state);
	if (rc)
		return cli_fail_err(cli, &err);
	if (res.stolen_from[0])
		fprintf(stderr, "circ checkout: took the lease of %s from %s\n", argv[optind + 1],
		        res.stolen_from);
	if (cli->json) {
		struct buf b = { 0 };
		struct json j;

		cli_json_start(&j, &b);
		json_str(&j, "disk", argv[optind + 1]);
		json_u64(&j, "version", res.version);
		json_bool(&j, "created", res.created);
		json_str(&j, "stolen_from", res.stolen_from[0] ? res.stolen_from : NULL);
		return cli_json_print(cli, &j);
	}
	printf("checked out %s version %" PRIu64 "%s\n", argv[optind + 1], res.version,
	       res.created ? " (new local disk)" : "");
	return 0;
}
