/* SPDX-License-Identifier: MIT */
#include "client/cli.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/json.h"
#include "vdisk/state.h"

static const char usage[] =
    "Usage: circ config [cache-size [SIZE]] [--json]\n"
    "\n"
    "Shows or sets a setting of the state directory, for every command that uses\n"
    "it (mounts, runs, updates, fetches at once):\n"
    "\n"
    "  cache-size SIZE   the bound of the shared block cache (K, M, G suffixes;\n"
    "                    default 4G). Whatever it says, the cache also leaves its\n"
    "                    file system 10% free, or 1 GiB if that is less.\n"
    "                    Every process using the directory keeps one bound\n"
    "                    together; a --cache-size option sets the bound one\n"
    "                    command keeps as it makes room.\n"
    "\n" CLI_JSON_HELP;

int cmd_config(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = { { 0 } };
	struct circ_err err;
	uint64_t v;
	char *state;
	int c, rc = 0;

	cli->usage = usage;
	cli->reports = true;
	while ((c = cli_getopt(cli, argc, argv, "", longopts)) != -1)
		return c == CLI_EXIT_OK ? 0 : EXIT_USAGE;
	if (argc - optind > 2)
		return cli_usage_error(cli, "expected a setting and at most one value");
	if (argc - optind >= 1 && strcmp(argv[optind], STATE_CONFIG_CACHE_SIZE) != 0)
		return cli_usage_error(cli, "no setting '%s' (there is: cache-size)", argv[optind]);
	if (argc - optind == 2 && (cli_parse_size(argv[optind + 1], &v) || v == 0))
		return cli_usage_error(cli, "bad size '%s'", argv[optind + 1]);
	state = cli_state_dir(cli, &err);
	if (!state)
		return cli_fail_err(cli, &err);
	if (argc - optind == 2) {
		rc = state_config_set(state, STATE_CONFIG_CACHE_SIZE, v, &err);
		free(state);
		return rc ? cli_fail_err(cli, &err) : 0;
	}
	v = state_cache_bound(state, 0);
	free(state);
	if (cli->json) {
		struct buf b = { 0 };
		struct json j;

		cli_json_start(&j, &b);
		json_u64(&j, STATE_CONFIG_CACHE_SIZE, v);
		return cli_json_print(cli, &j);
	}
	printf("cache-size %" PRIu64 "\n", v);
	return 0;
}
