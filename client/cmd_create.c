/* SPDX-License-Identifier: MIT */
#include "client/cli.h"

#include <stdio.h>
#include <stdlib.h>

#include "vdisk/migrate.h"

static const char usage[] =
    "Usage: circ create DISK --size SIZE [--block-size SIZE]\n"
    "\n"
    "Creates DISK, a blank local disk of SIZE bytes (K, M, G suffixes): it reads as\n"
    "zeros and costs nothing until written. Give it to a VM (circ run --disk DISK,\n"
    "or circ mount), then check it in with circ push: a user's home disk, which\n"
    "follows its owner between machines and survives updates of the system disk.\n"
    "\n"
    "  --size SIZE        the disk's size, a multiple of 4K\n"
    "  --block-size SIZE  the unit of check-ins (default 64K)\n";

enum {
	OPT_SIZE = OPT_LONG,
	OPT_BLOCK_SIZE
};

int cmd_create(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "size", required_argument, NULL, OPT_SIZE },
		{ "block-size", required_argument, NULL, OPT_BLOCK_SIZE },
		{ 0 },
	};
	uint64_t size = 0, bs = BLOCK_SIZE_DEFAULT;
	struct circ_err err;
	char *state;
	int c, rc;

	cli->usage = usage;
	while ((c = cli_getopt(cli, argc, argv, "", longopts)) != -1) {
		if (c == CLI_EXIT_OK)
			return 0;
		switch (c) {
		case OPT_SIZE:
			if (cli_parse_size(optarg, &size) || size == 0 || size % 4096)
				return cli_usage_error(
				    cli, "--size '%s' is not a positive multiple of 4K", optarg);
			break;
		case OPT_BLOCK_SIZE:
			if (cli_parse_size(optarg, &bs) || !block_size_valid(bs))
				return cli_usage_error(cli, "bad --block-size '%s'", optarg);
			break;
		default:
			return EXIT_USAGE;
		}
	}
	if (argc - optind != 1)
		return cli_usage_error(cli, "expected one DISK");
	if (!size)
		return cli_usage_error(cli, "--size is required");
	state = cli_state_dir(cli, &err);
	if (!state)
		return cli_fail_err(cli, &err);
	rc = migrate_create_blank(state, argv[optind], size, (uint32_t)bs, &err);
	free(state);
	return rc ? cli_fail_err(cli, &err) : 0;
}
