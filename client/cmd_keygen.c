/* SPDX-License-Identifier: MIT */
#include "client/cli.h"
#include "util/json.h"
#include "vdisk/key.h"

#include <stdio.h>
#include <stdlib.h>

static const char usage[] =
    "Usage: circ keygen OUTPREFIX\n"
    "\n"
    "Writes an Ed25519 key pair in PEM: OUTPREFIX.key (private, mode 0600)\n"
    "and OUTPREFIX.pub (public). Existing files are never overwritten. Prints\n"
    "their names.\n"
    "\n" CLI_JSON_HELP;

int cmd_keygen(struct cli *cli, int argc, char **argv)
{
	struct circ_err err;
	int c;

	cli->usage = usage;
	cli->reports = true;
	while ((c = cli_getopt(cli, argc, argv, "", NULL)) != -1) {
		if (c == CLI_EXIT_OK)
			return 0;
		return EXIT_USAGE;
	}
	if (argc - optind != 1)
		return cli_usage_error(cli, "expected one OUTPREFIX");
	if (key_generate(argv[optind], &err))
		return cli_fail_err(cli, &err);
	if (cli->json) {
		struct buf b = { 0 };
		struct json j;
		char *priv = NULL, *pub = NULL;

		if (asprintf(&priv, "%s.key", argv[optind]) < 0 ||
		    asprintf(&pub, "%s.pub", argv[optind]) < 0) {
			free(priv);
			return cli_fail(cli, "out of memory");
		}
		cli_json_start(&j, &b);
		json_str(&j, "private_key", priv);
		json_str(&j, "public_key", pub);
		free(priv);
		free(pub);
		return cli_json_print(cli, &j);
	}
	printf("%s.key\n%s.pub\n", argv[optind], argv[optind]);
	return 0;
}
