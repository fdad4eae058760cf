/* SPDX-License-Identifier: MIT */
/* circ log and circ lease: a checked-in disk's history and its holder. */
#include "client/cli.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/file.h"
#include "util/json.h"
#include "vdisk/migrate.h"

static const char log_usage[] =
    "Usage: circ log DISK [--boots] [--json]\n"
    "\n"
    "Lists DISK's check-ins on its server, newest first: version, time (UTC),\n"
    "the machine that made it, the bytes it uploaded and the blocks that differ\n"
    "from the base. A check-in that brought an older one back, or a branch kept\n"
    "from a conflict, says where it came from.\n"
    "\n"
    "  --boots  DISK's boot record instead, oldest first: one JSON object a line\n"
    "           for each circ run of it (time, image, version, manifest SHA-256,\n"
    "           kernel and initrd SHA-256, command line, VMM, offline, outcome);\n"
    "           JSON lines with or without --json\n" CLI_JSON_HELP;

enum {
	OPT_BOOTS = OPT_LONG
};

#define BOOTS_MAX (64u << 20)

static const char lease_usage[] = "Usage: circ lease DISK [--json]\n"
                                  "\n"
                                  "Shows who holds DISK's lease on its server, and since when.\n"
                                  "\n" CLI_JSON_HELP;

static int parse_one_disk(struct cli *cli, int argc, char **argv, const char *usage, bool *boots)
{
	static const struct option longopts[] = { { "boots", no_argument, NULL, OPT_BOOTS },
		                                  { 0 } };
	int c;

	cli->usage = usage;
	cli->reports = true;
	while ((c = cli_getopt(cli, argc, argv, "", longopts)) != -1) {
		if (c == CLI_EXIT_OK)
			return CLI_EXIT_OK;
		if (c != OPT_BOOTS || !boots)
			return EXIT_USAGE;
		*boots = true;
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

static int add_entry(void *ctx, const struct migrate_log_entry *e)
{
	struct json *j = ctx;

	json_object_begin(j, NULL);
	json_u64(j, "version", e->version);
	json_u64(j, "created", e->created);
	json_str(j, "host", e->host);
	json_str(j, "machine", e->machine);
	json_u64(j, "uploaded_bytes", e->bytes_uploaded);
	json_u64(j, "blocks", e->blocks);
	json_str(j, "from_disk", e->origin_disk[0] ? e->origin_disk : NULL);
	if (e->origin_disk[0])
		json_u64(j, "from_version", e->origin_version);
	else
		json_null(j, "from_version");
	json_object_end(j);
	return 0;
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

/* One file of the boot record as it is, each line checked to be text. */
static int print_boot_file(const char *path, struct circ_err *err)
{
	struct buf b = { 0 };

	if (file_read_all(path, BOOTS_MAX, &b, err))
		return err->errnum == ENOENT ? 0 : -1; /* never booted: an empty record */
	for (size_t i = 0; i < b.len; i++)
		if (b.data[i] == '\0' || (b.data[i] < 0x20 && b.data[i] != '\n')) {
			buf_free(&b);
			return err_set(err, EBADMSG, "%s is damaged", path);
		}
	fwrite(b.data, 1, b.len, stdout);
	buf_free(&b);
	return 0;
}

/* The boot record, JSON lines written by circ run: the older file first. */
static int print_boots(const char *state, const char *disk, struct circ_err *err)
{
	char *dir = state_disk_dir(state, disk), *path = NULL;
	int rc = -1;

	if (!state_disk_name_valid(disk)) {
		err_set(err, EINVAL, "invalid disk name '%s'", disk);
		goto out;
	}
	if (!dir || asprintf(&path, "%s/boots.1", dir) < 0) {
		path = NULL;
		err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	if (access(dir, F_OK)) {
		err_set(err, ENOENT, "no disk '%s' here", disk);
		goto out;
	}
	if (print_boot_file(path, err))
		goto out;
	path[strlen(path) - 2] = '\0'; /* boots */
	rc = print_boot_file(path, err);
out:
	free(path);
	free(dir);
	return rc;
}

int cmd_log(struct cli *cli, int argc, char **argv)
{
	struct circ_err err;
	bool boots = false;
	char *state;
	int rc = parse_one_disk(cli, argc, argv, log_usage, &boots);

	if (rc)
		return rc == CLI_EXIT_OK ? 0 : rc;
	state = cli_state_dir(cli, &err);
	if (!state)
		return cli_fail_err(cli, &err);
	if (boots) {
		rc = print_boots(state, argv[optind], &err);
		free(state);
		return rc ? cli_fail_err(cli, &err) : 0;
	}
	if (cli->json) {
		struct buf b = { 0 };
		struct json j;

		cli_json_start(&j, &b);
		json_str(&j, "disk", argv[optind]);
		json_array_begin(&j, "checkins");
		rc = migrate_log(state, argv[optind], NULL, add_entry, &j, &err);
		json_array_end(&j);
		free(state);
		if (rc) {
			buf_free(&b);
			return cli_fail_err(cli, &err);
		}
		return cli_json_print(cli, &j);
	}
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
	int rc = parse_one_disk(cli, argc, argv, lease_usage, NULL);

	if (rc)
		return rc == CLI_EXIT_OK ? 0 : rc;
	state = cli_state_dir(cli, &err);
	if (!state)
		return cli_fail_err(cli, &err);
	rc = migrate_lease(state, argv[optind], NULL, &h, &err);
	free(state);
	if (rc)
		return cli_fail_err(cli, &err);
	if (cli->json) {
		struct buf b = { 0 };
		struct json j;

		cli_json_start(&j, &b);
		json_str(&j, "disk", argv[optind]);
		json_bool(&j, "held", h.held);
		json_str(&j, "host", h.held ? h.host : NULL);
		json_str(&j, "machine", h.held ? h.machine : NULL);
		if (h.held)
			json_u64(&j, "since", h.since);
		else
			json_null(&j, "since");
		json_u64(&j, "version", h.version);
		return cli_json_print(cli, &j);
	}
	if (!h.held) {
		printf("%s: free (newest check-in %" PRIu64 ")\n", argv[optind], h.version);
		return 0;
	}
	format_time(h.since, when, sizeof(when));
	printf("%s: held by %s (machine %.8s) since %s UTC (newest check-in %" PRIu64 ")\n",
	       argv[optind], h.host, h.machine, when, h.version);
	return 0;
}
