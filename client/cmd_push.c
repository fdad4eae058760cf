/* SPDX-License-Identifier: MIT */
#include "client/cli.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "util/json.h"
#include "vdisk/migrate.h"
#include "client/progress.h"
#include "client/secret.h"

static const char usage[] =
    "Usage: circ push DISK [--to URL --user USER] [--keep-lease]\n"
    "\n"
    "Checks DISK in: the blocks that differ from its base become a new encrypted\n"
    "check-in on the server, and the lease is released so that another machine\n"
    "can check the disk out. Only blocks the server does not hold are uploaded;\n"
    "the check-in is committed atomically, so a push killed at any moment can be\n"
    "run again. DISK must not be mounted or running.\n"
    "\n"
    "The first push of a disk names its server and user. The first push of a user\n"
    "makes their key: the passphrase is asked twice; it is the only secret another\n"
    "machine needs to check the disk out. If another machine checked the disk in\n"
    "since, or took its lease, nothing is overwritten: this machine's check-in is\n"
    "kept as DISK.conflict-N, which push names, and push exits 1.\n"
    "\n"
    "  --to URL               the server (circ serve --users)\n"
    "  --user USER            the user on the server\n"
    "  --keep-lease           keep the lease: go on working here after the check-in\n" CLI_JSON_HELP
        SECRET_HELP;

enum {
	OPT_TO = OPT_LONG,
	OPT_USER,
	OPT_KEEP_LEASE,
};

static void show_progress(void *ctx, uint64_t done, uint64_t total)
{
	struct progress *p = ctx;

	if (!p->total && total)
		progress_start(p, "checking in", total);
	progress_update(p, done);
}

int cmd_push(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "to", required_argument, NULL, OPT_TO },
		{ "user", required_argument, NULL, OPT_USER },
		{ "keep-lease", no_argument, NULL, OPT_KEEP_LEASE },
		SECRET_LONGOPTS,
		{ 0 },
	};
	struct secret_source src = { 0 };
	struct push_options o = { 0 };
	struct progress prog = { 0 };
	struct push_result res;
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
		case OPT_TO:
			o.url = optarg;
			break;
		case OPT_USER:
			o.user = optarg;
			break;
		case OPT_KEEP_LEASE:
			o.keep_lease = true;
			break;
		default:
			rc = secret_option(cli, &src, &sn, c, optarg);
			if (rc != 1)
				return EXIT_USAGE;
		}
	}
	if (argc - optind != 1)
		return cli_usage_error(cli, "expected one DISK");
	if (!o.url != !o.user)
		return cli_usage_error(cli, "--to and --user go together");
	o.net = &sn;
	o.prompt = secret_prompt(&src);
	o.progress = show_progress;
	o.progress_ctx = &prog;
	state = cli_state_dir(cli, &err);
	if (!state)
		return cli_fail_err(cli, &err);
	rc = migrate_push(state, argv[optind], &o, &res, &err);
	if (prog.total)
		progress_end(&prog, rc ? 0 : prog.total);
	free(state);
	if (rc)
		return cli_fail_err(cli, &err);
	if (cli->json) {
		struct buf b = { 0 };
		struct json j;

		cli_json_start(&j, &b);
		json_str(&j, "disk", argv[optind]);
		json_u64(&j, "version", res.version);
		json_bool(&j, "unchanged", res.unchanged);
		json_u64(&j, "changed_blocks", res.changed_blocks);
		json_u64(&j, "uploaded_blocks", res.uploaded_blocks);
		json_u64(&j, "uploaded_bytes", res.uploaded_bytes);
		json_bool(&j, "lease_kept", o.keep_lease);
		return cli_json_print(cli, &j);
	}
	if (res.unchanged)
		printf("nothing to check in: %s is at check-in %" PRIu64 "\n", argv[optind],
		       res.version);
	else
		printf("checked in %s version %" PRIu64 ": %" PRIu64
		       " blocks differ from the base, "
		       "%" PRIu64 " uploaded (%" PRIu64 " bytes)\n",
		       argv[optind], res.version, res.changed_blocks, res.uploaded_blocks,
		       res.uploaded_bytes);
	return 0;
}
