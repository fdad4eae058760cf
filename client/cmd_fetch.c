/* SPDX-License-Identifier: MIT */
#include "client/cli.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "util/json.h"
#include "vdisk/hoard.h"
#include "client/progress.h"

static const char usage[] =
    "Usage: circ fetch DISK [--boot]\n"
    "\n"
    "Fetches every block of DISK's version that is not cached yet, and its boot\n"
    "kit, so that it reads and boots without the network (hoarding). With --boot,\n"
    "only the blocks its version lists as read by a boot (circ publish --prefetch).\n"
    "Blocks come through the disk's layers: a checked-out disk's own blocks too.\n"
    "Interrupted, it resumes where it stopped: what is cached is not fetched again.\n"
    "DISK must not be in use. Shows progress on a terminal; prints what it fetched.\n"
    "\n"
    "  --boot             only the boot set\n" CLI_JSON_HELP CLI_NET_HELP;

enum {
	OPT_BOOT = OPT_LONG
};

static void show_progress(void *ctx, uint64_t done, uint64_t total)
{
	struct progress *p = ctx;

	if (!p->what)
		progress_start_blocks(p, "fetching", total);
	progress_update(p, done);
}

int cmd_fetch(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "boot", no_argument, NULL, OPT_BOOT },
		{ 0 },
	};
	struct cli_net net = { 0 };
	struct progress prog = { 0 };
	struct hoard_result res;
	struct vdisk_options vo = { .readahead = 0 };
	struct vdisk *vd = NULL;
	struct circ_err err;
	bool boot = false;
	char *state;
	int c, rc;

	cli->usage = usage;
	cli->net = &net;
	cli->reports = true;
	while ((c = cli_getopt(cli, argc, argv, "", longopts)) != -1) {
		if (c == CLI_EXIT_OK)
			return 0;
		if (c != OPT_BOOT)
			return EXIT_USAGE;
		boot = true;
	}
	if (argc - optind != 1)
		return cli_usage_error(cli, "expected one DISK");
	state = cli_state_dir(cli, &err);
	if (!state)
		return cli_fail_err(cli, &err);
	vo.net = cli_state_net(&net, NULL, NULL);
	vo.cache_size = net.cache_size;
	vo.read_only = true;
	rc = vdisk_open(state, argv[optind], &vo, &vd, &err) ||
	     hoard_fetch(vd, boot, show_progress, &prog, &res, &err);
	if (prog.what)
		progress_end(&prog, rc ? 0 : res.blocks);
	rc = vdisk_close_after(vd, rc ? -1 : 0, &err);
	free(state);
	if (rc)
		return cli_fail_err(cli, &err);
	if (cli->json) {
		struct buf b = { 0 };
		struct json j;

		cli_json_start(&j, &b);
		json_str(&j, "disk", argv[optind]);
		json_bool(&j, "boot_set", boot);
		json_u64(&j, "blocks", res.blocks);
		json_u64(&j, "cached_before", res.already);
		json_u64(&j, "fetched_bytes", res.fetched_bytes);
		return cli_json_print(cli, &j);
	}
	printf("%s: %" PRIu64 " blocks, %" PRIu64 " of them cached before; fetched %" PRIu64
	       " bytes\n",
	       argv[optind], res.blocks, res.already, res.fetched_bytes);
	return 0;
}
