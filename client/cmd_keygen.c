/* SPDX-License-Identifier: MIT */
#include "client/cli.h"
#include "vdisk/key.h"

#include <stdio.h>

static const char usage[] =
    "Usage: circ keygen OUTPREFIX\n"
    "\n"
    "Writes an Ed25519 key pair in PEM: OUTPREFIX.key (private, mode 0600)\n"
    "and OUTPREFIX.pub (public). Existing files are never overwritten.\n";

int cmd_keygen(struct cli *cli, int argc, char **argv)
{
	struct circ_err err;
	int c;

	cli->usage = usage;
	while ((c = cli_getopt(cli, argc, argv, "", NULL)) != -1) {
		if (c == CLI_EXIT_OK)
			return 0;
		return EXIT_USAGE;
	}
	if (argc - optind != 1)
		return cli_usage_error(cli, "expected one OUTPREFIX");
	if (key_generate(argv[optind], &err))
		return cli_fail_err(cli, &err);
	printf("%s.key\n%s.pub\n", argv[optind], argv[optind]);
	return 0;
}
