/* SPDX-License-Identifier: MIT */
#include "client/cli.h"

#include <stdio.h>
#include <stdlib.h>

#include "util/json.h"
#include "vdisk/state.h"
#include "client/progress.h"

static const char usage[] =
    "Usage: circ update DISK [--keep-overlay | --discard-overlay]\n"
    "\n"
    "Moves DISK to the newest signed version of its image, fetching the blocks\n"
    "that changed and are not in the cache yet, and prints the bytes fetched.\n"
    "Shows the manifest's download and the blocks' on a terminal.\n"
    "DISK must not be mounted. Local writes are never dropped silently: with any,\n"
    "update refuses unless told what to do with them.\n"
    "\n"
    "  --keep-overlay     keep local writes on top of the new version\n"
    "  --discard-overlay  drop local writes\n" CLI_JSON_HELP CLI_NET_HELP;

enum {
	OPT_KEEP = OPT_LONG,
	OPT_DISCARD
};

int cmd_update(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "keep-overlay", no_argument, NULL, OPT_KEEP },
		{ "discard-overlay", no_argument, NULL, OPT_DISCARD },
		{ 0 },
	};
	enum update_overlay mode = UPDATE_REFUSE_OVERLAY;
	struct progress_steps steps = { .verb = "update" };
	struct cli_net net = { 0 };
	struct update_options uo = { 0 };
	struct update_result res;
	struct state_net sn;
	struct circ_err err;
	char *state;
	int c, rc;

	cli->usage = usage;
	cli->net = &net;
	cli->reports = true;
	while ((c = cli_getopt(cli, argc, argv, "", longopts)) != -1) {
		if (c == CLI_EXIT_OK)
			return 0;
		switch (c) {
		case OPT_KEEP:
		case OPT_DISCARD:
			if (mode != UPDATE_REFUSE_OVERLAY)
				return cli_usage_error(cli, "give one of --keep-overlay and "
				                            "--discard-overlay");
			mode = c == OPT_KEEP ? UPDATE_KEEP_OVERLAY : UPDATE_DISCARD_OVERLAY;
			break;
		default:
			return EXIT_USAGE;
		}
	}
	if (argc - optind != 1)
		return cli_usage_error(cli, "expected one DISK");
	sn = cli_state_net(&net, progress_step, &steps);
	state = cli_state_dir(cli, &err);
	if (!state)
		return cli_fail_err(cli, &err);
	uo.mode = mode;
	uo.net = &sn;
	uo.cache_size = net.cache_size;
	rc = state_update(state, argv[optind], &uo, &res, &err);
	progress_steps_end(&steps);
	free(state);
	if (rc)
		return cli_fail_err(cli, &err);
	if (cli->json) {
		struct buf b = { 0 };
		struct json j;

		cli_json_start(&j, &b);
		json_str(&j, "disk", argv[optind]);
		json_u64(&j, "from", res.from);
		json_u64(&j, "to", res.to);
		json_u64(&j, "fetched_bytes", res.fetched_bytes);
		json_u64(&j, "fetched_blocks", res.fetched_blocks);
		json_u64(&j, "changed_blocks", res.changed_blocks);
		return cli_json_print(cli, &j);
	}
	if (res.from == res.to)
		printf("%s: already at version %llu; fetched 0 bytes\n", argv[optind],
		       (unsigned long long)res.to);
	else
		printf("%s: version %llu -> %llu; fetched %llu bytes (%llu blocks; %llu blocks "
		       "changed)\n",
		       argv[optind], (unsigned long long)res.from, (unsigned long long)res.to,
		       (unsigned long long)res.fetched_bytes,
		       (unsigned long long)res.fetched_blocks,
		       (unsigned long long)res.changed_blocks);
	return 0;
}
