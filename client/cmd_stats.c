/* SPDX-License-Identifier: MIT */
#include "client/cli.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blockfs/cache.h"
#include "vdisk/state.h"

static const char usage[] =
    "Usage: circ stats [DISK] [--json]\n"
    "\n"
    "Shows what each disk (or DISK) fetched: bytes and requests, block cache hits\n"
    "and misses, and the bytes its local writes hold; and the shared cache's size.\n"
    "A mounted disk's figures are at most a few seconds old.\n"
    "\n"
    "  --json   one JSON object instead of a table\n";

enum {
	OPT_JSON = OPT_LONG
};

struct row {
	char name[REPO_NAME_MAX + 1];
	struct disk_conf conf;
	struct disk_stats st;
};

static int load_row(const char *state, const char *disk, struct row *r, struct circ_err *err)
{
	char *dir = state_disk_dir(state, disk);
	int rc;

	memset(r, 0, sizeof(*r));
	if (!dir)
		return err_set(err, ENOMEM, "out of memory");
	snprintf(r->name, sizeof(r->name), "%s", disk);
	rc = disk_conf_load(dir, &r->conf, err);
	if (!rc)
		disk_stats_load(dir, &r->st);
	free(dir);
	return rc;
}

static void print_json_row(const struct row *r)
{
	printf("{\"disk\":\"%s\",\"image\":\"%s\",\"version\":%llu,\"fetched_bytes\":%llu,"
	       "\"fetched_blocks\":%llu,\"requests\":%llu,\"cache_hits\":%llu,"
	       "\"cache_misses\":%llu,\"overlay_bytes\":%llu}",
	       r->name, r->conf.image, (unsigned long long)r->conf.version,
	       (unsigned long long)r->st.fetched_bytes, (unsigned long long)r->st.fetched_blocks,
	       (unsigned long long)r->st.requests, (unsigned long long)r->st.hits,
	       (unsigned long long)r->st.misses, (unsigned long long)r->st.overlay_bytes);
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(((const struct row *)a)->name, ((const struct row *)b)->name);
}

/* Every disk under state/disks, sorted by name. */
static int load_all(const char *state, struct row **rows, size_t *n, struct circ_err *err)
{
	char *path;
	struct dirent *de;
	size_t cap = 0;
	DIR *d;

	*rows = NULL;
	*n = 0;
	if (asprintf(&path, "%s/disks", state) < 0)
		return err_set(err, ENOMEM, "out of memory");
	d = opendir(path);
	free(path);
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		if (!state_disk_name_valid(de->d_name))
			continue;
		if (*n == cap) {
			struct row *p = realloc(*rows, (cap ? cap * 2 : 8) * sizeof(*p));

			if (!p) {
				closedir(d);
				return err_set(err, ENOMEM, "out of memory");
			}
			*rows = p;
			cap = cap ? cap * 2 : 8;
		}
		if (load_row(state, de->d_name, &(*rows)[*n], err) == 0)
			(*n)++;
	}
	closedir(d);
	if (*n)
		qsort(*rows, *n, sizeof(**rows), name_cmp);
	return 0;
}

int cmd_stats(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		{ 0 },
	};
	struct cache_stats cs = { 0 };
	struct cache *cache = NULL;
	struct row *rows = NULL;
	struct circ_err err;
	char *state = NULL, *cdir = NULL;
	bool json = false;
	size_t n = 0;
	int c, ret = 1;

	cli->usage = usage;
	while ((c = cli_getopt(cli, argc, argv, "", longopts)) != -1) {
		if (c == CLI_EXIT_OK)
			return 0;
		if (c != OPT_JSON)
			return EXIT_USAGE;
		json = true;
	}
	if (argc - optind > 1)
		return cli_usage_error(cli, "expected at most one DISK");
	state = cli_state_dir(cli, &err);
	if (!state)
		return cli_fail_err(cli, &err);
	if (optind < argc) {
		if (!state_disk_name_valid(argv[optind])) {
			ret = cli_fail(cli, "invalid disk name '%s'", argv[optind]);
			goto out;
		}
		rows = calloc(1, sizeof(*rows));
		if (!rows || load_row(state, argv[optind], rows, &err))
			goto fail;
		n = 1;
	} else if (load_all(state, &rows, &n, &err)) {
		goto fail;
	}
	cdir = state_cache_dir(state);
	if (cdir && cache_open(cdir, 0, &cache, &err) == 0)
		cache_get_stats(cache, &cs);
	if (json) {
		printf("{\"disks\":[");
		for (size_t i = 0; i < n; i++) {
			printf(i ? "," : "");
			print_json_row(&rows[i]);
		}
		printf("],\"cache\":{\"bytes\":%llu,\"blocks\":%llu}}\n",
		       (unsigned long long)cs.bytes, (unsigned long long)cs.entries);
	} else {
		printf("%-16s %-16s %8s %14s %9s %9s %9s %14s\n", "DISK", "IMAGE", "VERSION",
		       "FETCHED", "REQUESTS", "HITS", "MISSES", "OVERLAY");
		for (size_t i = 0; i < n; i++)
			printf("%-16s %-16s %8llu %14llu %9llu %9llu %9llu %14llu\n", rows[i].name,
			       rows[i].conf.image, (unsigned long long)rows[i].conf.version,
			       (unsigned long long)rows[i].st.fetched_bytes,
			       (unsigned long long)rows[i].st.requests,
			       (unsigned long long)rows[i].st.hits,
			       (unsigned long long)rows[i].st.misses,
			       (unsigned long long)rows[i].st.overlay_bytes);
		printf("cache: %llu blocks, %llu bytes\n", (unsigned long long)cs.entries,
		       (unsigned long long)cs.bytes);
	}
	ret = 0;
	goto out;
fail:
	ret = cli_fail_err(cli, &err);
out:
	for (size_t i = 0; i < n; i++)
		disk_conf_release(&rows[i].conf);
	free(rows);
	cache_close(cache);
	free(cdir);
	free(state);
	return ret;
}
