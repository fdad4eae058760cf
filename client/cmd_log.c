/* SPDX-License-Identifier: MIT */
/* circ log and circ lease: a checked-in disk's history and its holder. */
#include "client/cli.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "vdisk/migrate.h"

static const char log_usage[] =
    "Usage: circ log DISK\n"
    "\n"
    "Lists DISK's check-ins on its server, newest first: version, time (UTC),\n"
    "the machine that made it, the bytes it uploaded and the blocks that differ\n"
    "from the base. A check-in that brought an older one back, or a branch kept\n"
    "from a conflict, says where it came from.\n";

static const char lease_usage[] = "Usage: circ lease DISK\n"
                                  "\n"
                                  "Shows who holds DISK's lease on its server, and since when.\n";

static int parse_one_disk(struct cli *cli, int argc, char **argv, const char *usage)
{
	static const struct option longopts[] = { { 0 } };
	int c;

	cli->usage = usage;
	while ((c = cli_getopt(cli, argc, argv, "", longopts)) != -1) {
		if (c == CLI_EXIT_OK)
			return CLI_EXIT_OK;
		return EXIT_USAGE;
	}
	if (argc - optind != 1)
		return cli_usage_error(cli, "expected one DISK");
	return 0;
}

static void format_time(uint64_t t, char *out, size_t n)
{
	time_t tt = (time_t)t;

	strftime(out, n, "%Y-%m-%d %H:%M:%S", gmtime(&tt));
}

static int print_entry(void *ctx, const struct migrate_log_entry *e)
{
	char when[32];

	(void)ctx;
	format_time(e->created, when, sizeof(when));
	printf("%" PRIu64 "\t%s\t%s (%.8s)\t%" PRIu64 " bytes\t%" PRIu32 " blocks", e->version,
	       when, e->host, e->machine, e->bytes_uploaded, e->blocks);
	if (e->origin_disk[0])
		printf("\tfrom %s version %" PRIu64, e->origin_disk, e->origin_version);
	printf("\n");
	return 0;
}

int cmd_log(struct cli *cli, int argc, char **argv)
{
	struct circ_err err;
	char *state;
	int rc = parse_one_disk(cli, argc, argv, log_usage);

	if (rc)
		return rc == CLI_EXIT_OK ? 0 : rc;
	state = cli_state_dir(cli, &err);
	if (!state)
		return cli_fail_err(cli, &err);
	printf("version\ttime (UTC)\tmachine\tuploaded\tdiffers\n");
	rc = migrate_log(state, argv[optind], NULL, print_entry, NULL, &err);
	free(state);
	return rc ? cli_fail_err(cli, &err) : 0;
}

int cmd_lease(struct cli *cli, int argc, char **argv)
{
	struct user_head h;
	struct circ_err err;
	char *state, when[32];
	int rc = parse_one_disk(cli, argc, argv, lease_usage);

	if (rc)
		return rc == CLI_EXIT_OK ? 0 : rc;
	state = cli_state_dir(cli, &err);
	if (!state)
		return cli_fail_err(cli, &err);
	rc = migrate_lease(state, argv[optind], NULL, &h, &err);
	free(state);
	if (rc)
		return cli_fail_err(cli, &err);
	if (!h.held) {
		printf("%s: free (newest check-in %" PRIu64 ")\n", argv[optind], h.version);
		return 0;
	}
	format_time(h.since, when, sizeof(when));
	printf("%s: held by %s (machine %.8s) since %s UTC (newest check-in %" PRIu64 ")\n",
	       argv[optind], h.host, h.machine, when, h.version);
	return 0;
}
