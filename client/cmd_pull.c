/* SPDX-License-Identifier: MIT */
#include "client/cli.h"

#include <stdio.h>
#include <stdlib.h>

#include "util/json.h"
#include "vdisk/state.h"
#include "client/progress.h"

static const char usage[] =
    "Usage: circ pull URL NAME --key PUB [--as DISK] [--mirror URL]...\n"
    "\n"
    "Creates the local disk DISK (default NAME) that tracks image NAME at URL. The\n"
    "signed pointer and manifest are checked against PUB, which is pinned for NAME:\n"
    "later pulls and updates of NAME must be signed by the same key. No block is\n"
    "fetched here: `circ mount` fetches each on first read. Prints the version;\n"
    "shows the manifest's download on a terminal.\n"
    "Refused: a bad signature, a manifest for another image, an expired pointer\n"
    "(freeze) and a version older than one seen before (rollback).\n"
    "\n"
    "  --key PUB          the publisher's Ed25519 public key (PEM)\n"
    "  --as DISK          the local disk's name (default NAME)\n" CLI_JSON_HELP CLI_NET_HELP;

enum {
	OPT_KEY = OPT_LONG,
	OPT_AS
};

int cmd_pull(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "key", required_argument, NULL, OPT_KEY },
		{ "as", required_argument, NULL, OPT_AS },
		{ 0 },
	};
	struct cli_net net = { 0 };
	const char *key = NULL, *disk = NULL, *urls[CLI_MAX_MIRRORS + 1];
	struct progress_steps steps = { .verb = "pull" };
	struct state_net sn;
	struct circ_err err;
	uint64_t version;
	char *state;
	int c, rc;

	cli->usage = usage;
	cli->net = &net;
	cli->reports = true;
	while ((c = cli_getopt(cli, argc, argv, "", longopts)) != -1) {
		if (c == CLI_EXIT_OK)
			return 0;
		switch (c) {
		case OPT_KEY:
			key = optarg;
			break;
		case OPT_AS:
			disk = optarg;
			break;
		default:
			return EXIT_USAGE;
		}
	}
	if (argc - optind != 2)
		return cli_usage_error(cli, "expected URL and NAME");
	if (!key)
		return cli_usage_error(cli, "--key is required");
	urls[0] = argv[optind];
	for (size_t i = 0; i < net.n_mirrors; i++)
		urls[i + 1] = net.mirrors[i];
	/* The mirrors are the disk's own sources here, after URL: none extra. */
	sn =
	    cli_state_net(&(struct cli_net){ .timeout_ms = net.timeout_ms }, progress_step, &steps);
	state = cli_state_dir(cli, &err);
	if (!state)
		return cli_fail_err(cli, &err);
	rc = state_pull(state, disk ? disk : argv[optind + 1], urls, net.n_mirrors + 1,
	                argv[optind + 1], key, &sn, &version, &err);
	progress_steps_end(&steps);
	free(state);
	if (rc)
		return cli_fail_err(cli, &err);
	if (cli->json) {
		struct buf b = { 0 };
		struct json j;

		cli_json_start(&j, &b);
		json_str(&j, "disk", disk ? disk : argv[optind + 1]);
		json_str(&j, "image", argv[optind + 1]);
		json_u64(&j, "version", version);
		return cli_json_print(cli, &j);
	}
	printf("%llu\n", (unsigned long long)version);
	return 0;
}
