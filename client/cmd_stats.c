/* SPDX-License-Identifier: MIT */
#include "client/cli.h"

#include <stdio.h>
#include <stdlib.h>

#include "util/json.h"
#include "blockfs/cache.h"
#include "vdisk/inventory.h"

static const char usage[] =
    "Usage: circ stats [DISK] [--json]\n"
    "\n"
    "Shows what each disk (or DISK) fetched: bytes and requests, block cache hits\n"
    "and misses, how much of its image the shared cache holds, and the bytes its\n"
    "local writes hold; and the shared cache's size. A mounted disk's figures are\n"
    "at most a few seconds old.\n"
    "\n" CLI_JSON_HELP;

static int print_json(const struct cli *cli, const struct disk_info *rows, size_t n,
                      const struct cache_stats *cs)
{
	struct buf b = { 0 };
	struct json j;

	cli_json_start(&j, &b);
	json_array_begin(&j, "disks");
	for (size_t i = 0; i < n; i++) {
		const struct disk_info *r = &rows[i];

		json_object_begin(&j, NULL);
		disk_info_json(&j, r);
		json_u64(&j, "fetched_bytes", r->st.fetched_bytes);
		json_u64(&j, "fetched_blocks", r->st.fetched_blocks);
		json_u64(&j, "requests", r->st.requests);
		json_u64(&j, "cache_hits", r->st.hits);
		json_u64(&j, "cache_misses", r->st.misses);
		json_object_end(&j);
	}
	json_array_end(&j);
	json_object_begin(&j, "cache");
	json_u64(&j, "bytes", cs->bytes);
	json_u64(&j, "blocks", cs->entries);
	json_object_end(&j);
	return cli_json_print(cli, &j);
}

static void print_table(const struct disk_info *rows, size_t n, const struct cache_stats *cs)
{
	char pct[16];

	printf("%-16s %-16s %8s %14s %9s %9s %9s %7s %14s\n", "DISK", "IMAGE", "VERSION", "FETCHED",
	       "REQUESTS", "HITS", "MISSES", "CACHED", "OVERLAY");
	for (size_t i = 0; i < n; i++) {
		const struct disk_info *r = &rows[i];
		const char *image = !r->conf_ok ? "?" : r->conf.blank ? "blank" : r->conf.image;

		disk_info_cached_text(r, pct);
		printf("%-16s %-16s %8llu %14llu %9llu %9llu %9llu %7s %14llu\n", r->name, image,
		       (unsigned long long)(r->conf_ok ? r->conf.version : 0),
		       (unsigned long long)r->st.fetched_bytes, (unsigned long long)r->st.requests,
		       (unsigned long long)r->st.hits, (unsigned long long)r->st.misses, pct,
		       (unsigned long long)r->st.overlay_bytes);
	}
	printf("cache: %llu blocks, %llu bytes\n", (unsigned long long)cs->entries,
	       (unsigned long long)cs->bytes);
}

int cmd_stats(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ 0 },
	};
	struct cache_stats cs = { 0 };
	struct cache *cache = NULL;
	struct disk_info *rows = NULL;
	struct circ_err err;
	char *state = NULL, *cdir = NULL;
	size_t n = 0;
	int c, ret = 0;

	cli->usage = usage;
	cli->reports = true;
	while ((c = cli_getopt(cli, argc, argv, "", longopts)) != -1) {
		if (c == CLI_EXIT_OK)
			return 0;
		return EXIT_USAGE;
	}
	if (argc - optind > 1)
		return cli_usage_error(cli, "expected at most one DISK");
	state = cli_state_dir(cli, &err);
	if (!state)
		return cli_fail_err(cli, &err);
	if (inventory_load(state, optind < argc ? argv[optind] : NULL, &rows, &n, &err)) {
		ret = cli_fail_err(cli, &err);
		goto out;
	}
	cdir = state_cache_dir(state);
	if (cdir && cache_open(cdir, 0, &cache, &err) == 0)
		cache_get_stats(cache, &cs);
	if (cli->json)
		ret = print_json(cli, rows, n, &cs);
	else
		print_table(rows, n, &cs);
out:
	inventory_free(rows, n);
	cache_close(cache);
	free(cdir);
	free(state);
	return ret;
}
