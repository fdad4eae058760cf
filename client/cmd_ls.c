/* SPDX-License-Identifier: MIT */
/*
 * circ ls: the images a repo offers (its signed catalog), or the disks this
 * machine holds; and circ rm, which removes one of those disks.
 */
#include "client/cli.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "blockfs/cache.h"
#include "blockfs/file.h"
#include "blockfs/objects.h"
#include "blockfs/repo.h"
#include "vdisk/catalog.h"
#include "vdisk/state.h"

static const char usage_ls[] =
    "Usage: circ ls URL [--key PUB] [--json]\n"
    "       circ ls [--json]\n"
    "\n"
    "With URL, lists the images of the repo at URL from its signed catalog\n"
    "(fetched past any cache): name, newest version, size, boot kit (kernel and\n"
    "initrd sizes, or \"-\"), when that version was published (UTC) and its\n"
    "description. With --key the catalog's signature must verify against PUB;\n"
    "without, it is printed with a warning on stderr that it is not verified.\n"
    "The catalog only lists: `circ pull` checks each image on its own.\n"
    "\n"
    "Without URL, lists the disks here: their image and version (or \"blank\"),\n"
    "how much of the image's non-zero blocks the local cache holds, the bytes of\n"
    "local writes, and where the disk is mounted.\n"
    "\n"
    "  --key PUB   the publisher's Ed25519 public key (PEM) that signed the catalog\n"
    "  --json      one JSON object instead of a table\n";

static const char usage_rm[] =
    "Usage: circ rm DISK\n"
    "\n"
    "Removes the local disk DISK: its configuration, manifests and local writes.\n"
    "Refused while DISK is mounted or in use (a VM, an update, a push). The shared\n"
    "block cache and the key pinned for its image stay. A checked-out disk's lease\n"
    "stays held on its server: `circ push` it first to hand it back.\n";

enum {
	OPT_KEY = OPT_LONG,
	OPT_JSON
};

/* 1.5G, 300K, 12: sizes for a table (--json gives bytes). */
static void human(uint64_t v, char out[16])
{
	static const char units[] = "KMGTPE";
	double d = (double)v;
	int u = -1;

	if (v < 1024) {
		snprintf(out, 16, "%llu", (unsigned long long)v);
		return;
	}
	while (d >= 1024 && u < 5) {
		d /= 1024;
		u++;
	}
	snprintf(out, 16, "%.1f%c", d, units[u]);
}

static void utc(uint64_t t, char out[32])
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t > (uint64_t)INT64_MAX / 2 || !gmtime_r(&tt, &tm) ||
	    !strftime(out, 32, "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(out, 32, "%llu", (unsigned long long)t);
}

/* A JSON string: quotes, backslashes and control characters escaped; UTF-8 as it is. */
static void json_string(const char *s)
{
	putchar('"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			printf("\\u%04x", *p);
		else
			putchar(*p);
	}
	putchar('"');
}

static void print_catalog(const struct catalog *c, bool verified, bool json)
{
	char kid[17], size[16], k[16], i[16], when[32], kit[40];

	key_id_short(c->key_id, kid);
	if (json) {
		printf("{\"catalog\":{\"created\":%llu,\"key_id\":\"%s\",\"verified\":%s},"
		       "\"images\":[",
		       (unsigned long long)c->created, kid, verified ? "true" : "false");
		for (uint32_t n = 0; n < c->n_entries; n++) {
			const struct catalog_entry *e = &c->entries[n];

			key_id_short(e->key_id, kid);
			printf("%s{\"name\":\"%s\",\"version\":%llu,\"image_size\":%llu,"
			       "\"kernel_size\":%llu,\"initrd_size\":%llu,\"created\":%llu,"
			       "\"key_id\":\"%s\",\"description\":",
			       n ? "," : "", e->name, (unsigned long long)e->version,
			       (unsigned long long)e->image_size,
			       (unsigned long long)e->kernel_size,
			       (unsigned long long)e->initrd_size, (unsigned long long)e->created,
			       kid);
			json_string(e->description);
			putchar('}');
		}
		printf("]}\n");
		return;
	}
	printf("%-24s %7s %8s %-15s %-19s  %s\n", "NAME", "VERSION", "SIZE", "BOOT KIT",
	       "CREATED (UTC)", "DESCRIPTION");
	for (uint32_t n = 0; n < c->n_entries; n++) {
		const struct catalog_entry *e = &c->entries[n];

		human(e->image_size, size);
		human(e->kernel_size, k);
		human(e->initrd_size, i);
		if (!e->kernel_size)
			snprintf(kit, sizeof(kit), "-");
		else if (!e->initrd_size)
			snprintf(kit, sizeof(kit), "%s", k);
		else
			snprintf(kit, sizeof(kit), "%s+%s", k, i);
		utc(e->created, when);
		printf("%-24s %7llu %8s %-15s %-19s%s%s\n", e->name, (unsigned long long)e->version,
		       size, kit, when, e->description[0] ? "  " : "", e->description);
	}
}

static int list_remote(struct cli *cli, const char *url, const char *key_path, bool json)
{
	const char *mirrors[1] = { url };
	struct fetch_config fc = { .mirrors = mirrors, .n_mirrors = 1, .retries = 2 };
	struct catalog c = { 0 };
	struct repo *repo = NULL;
	struct key *pub = NULL;
	struct buf b = { 0 };
	struct circ_err err;
	char kid[17];
	int ret = 1;

	if (key_path && key_load_public(key_path, &pub, &err))
		goto fail;
	if (repo_open_url(&fc, &repo, &err))
		goto fail;
	/* It changes with every publish: never an old copy from a cache on the way. */
	if (repo_read_file(repo, REPO_CATALOG, CATALOG_MAX_LEN, FETCH_NO_CACHE, &b, &err)) {
		if (err.errnum == ENOENT)
			err_set(
			    &err, ENOENT,
			    "%s has no catalog (it is written by `circ publish` since format 2)",
			    url);
		goto fail;
	}
	if (pub ? catalog_decode(b.data, b.len, pub, &c, &err)
	        : catalog_parse(b.data, b.len, &c, &err)) {
		err_prefix(&err, "%s/%s", url, REPO_CATALOG);
		goto fail;
	}
	if (!pub) {
		key_id_short(c.key_id, kid);
		fprintf(stderr,
		        "circ ls: warning: the catalog is not verified (it names key %s); "
		        "give --key PUB to check it\n",
		        kid);
	}
	print_catalog(&c, pub != NULL, json);
	ret = 0;
	goto out;
fail:
	ret = cli_fail_err(cli, &err);
out:
	catalog_release(&c);
	buf_free(&b);
	repo_close(repo);
	key_free(pub);
	return ret;
}

struct disk_row {
	char name[REPO_NAME_MAX + 1];
	struct disk_conf conf;
	bool conf_ok;
	bool cached_known;      /* the base's manifest was read */
	uint64_t base_blocks;   /* its non-zero blocks */
	uint64_t cached_blocks; /* those the cache holds */
	struct disk_stats st;
	char *mountpoint; /* NULL: not mounted */
};

/* How much of an image base the cache holds, from its verified local manifest. */
static void count_cached(const char *state, const char *dir, struct cache *cache,
                         struct disk_row *r)
{
	struct manifest m = { 0 };
	struct key *pub = NULL;
	struct circ_err err;

	if (!cache || state_load_pinned_key(state, r->conf.image, &pub, &err) ||
	    state_load_disk_manifest(dir, pub, &r->conf, &m, &err)) {
		key_free(pub);
		return;
	}
	for (uint32_t i = 0; i < m.n_blocks; i++) {
		if (block_id_is_zero(&m.blocks[i]))
			continue;
		r->base_blocks++;
		if (cache_contains(cache, &m.blocks[i]))
			r->cached_blocks++;
	}
	r->cached_known = true;
	manifest_release(&m);
	key_free(pub);
}

static void load_disk(const char *state, const char *name, struct cache *cache, struct disk_row *r)
{
	char *dir = state_disk_dir(state, name), *mp = NULL;
	struct buf b = { 0 };
	struct circ_err err;

	memset(r, 0, sizeof(*r));
	snprintf(r->name, sizeof(r->name), "%.*s", REPO_NAME_MAX, name);
	if (!dir)
		return;
	r->conf_ok = disk_conf_load(dir, &r->conf, &err) == 0;
	if (r->conf_ok && !r->conf.blank)
		count_cached(state, dir, cache, r);
	disk_stats_load(dir, &r->st);
	/* A mount writes this file once it is up and removes it when it ends. */
	if (asprintf(&mp, "%s/mountpoint", dir) >= 0 && file_read_all(mp, 4096, &b, &err) == 0 &&
	    buf_append(&b, "", 1) == 0)
		r->mountpoint = strdup((char *)b.data);
	buf_free(&b);
	free(mp);
	free(dir);
}

static int row_cmp(const void *a, const void *b)
{
	return strcmp(((const struct disk_row *)a)->name, ((const struct disk_row *)b)->name);
}

static void print_disks(const struct disk_row *rows, size_t n, bool json)
{
	char pct[16], writes[16], ver[24];

	if (json)
		printf("{\"disks\":[");
	else
		printf("%-24s %-24s %7s %7s %8s  %s\n", "DISK", "IMAGE", "VERSION", "CACHED",
		       "WRITES", "MOUNTED");
	for (size_t i = 0; i < n; i++) {
		const struct disk_row *r = &rows[i];
		const struct disk_conf *c = &r->conf;
		const char *image = !r->conf_ok ? "?" : c->blank ? "blank" : c->image;

		if (!r->conf_ok || c->blank)
			snprintf(pct, sizeof(pct), c->blank ? "-" : "?");
		else if (!r->cached_known)
			snprintf(pct, sizeof(pct), "?");
		else
			snprintf(pct, sizeof(pct), "%.1f%%",
			         r->base_blocks
			             ? 100.0 * (double)r->cached_blocks / (double)r->base_blocks
			             : 100.0);
		if (json) {
			printf("%s{\"disk\":\"%s\",\"image\":", i ? "," : "", r->name);
			if (r->conf_ok && !c->blank)
				json_string(c->image);
			else
				printf("null");
			printf(",\"version\":%llu,\"blank\":%s,\"base_blocks\":%llu,"
			       "\"cached_blocks\":%llu,\"cached_percent\":",
			       (unsigned long long)(r->conf_ok ? c->version : 0),
			       r->conf_ok && c->blank ? "true" : "false",
			       (unsigned long long)r->base_blocks,
			       (unsigned long long)r->cached_blocks);
			if (r->cached_known)
				printf("%.1f", r->base_blocks ? 100.0 * (double)r->cached_blocks /
				                                    (double)r->base_blocks
				                              : 100.0);
			else
				printf("null");
			printf(",\"overlay_bytes\":%llu,\"mountpoint\":",
			       (unsigned long long)r->st.overlay_bytes);
			if (r->mountpoint)
				json_string(r->mountpoint);
			else
				printf("null");
			putchar('}');
			continue;
		}
		human(r->st.overlay_bytes, writes);
		if (r->conf_ok && !c->blank)
			snprintf(ver, sizeof(ver), "%llu", (unsigned long long)c->version);
		else
			snprintf(ver, sizeof(ver), "-");
		printf("%-24s %-24s %7s %7s %8s  %s\n", r->name, image, ver, pct, writes,
		       r->mountpoint ? r->mountpoint : "-");
	}
	if (json)
		printf("]}\n");
}

static int list_local(struct cli *cli, bool json)
{
	struct disk_row *rows = NULL;
	struct cache *cache = NULL;
	struct circ_err err;
	struct dirent *de;
	char *state, *path = NULL, *cdir = NULL;
	size_t n = 0, cap = 0;
	DIR *d = NULL;
	int ret = 1;

	state = cli_state_dir(cli, &err);
	if (!state)
		return cli_fail_err(cli, &err);
	cdir = state_cache_dir(state);
	/* Without a cache nothing is cached: the figures say "?" rather than fail. */
	if (!cdir || cache_open(cdir, 0, &cache, &err))
		cache = NULL;
	if (asprintf(&path, "%s/disks", state) < 0) {
		path = NULL;
		ret = cli_fail(cli, "out of memory");
		goto out;
	}
	d = opendir(path);
	if (!d && errno != ENOENT) {
		ret = cli_fail(cli, "listing %s: %s", path, strerror(errno));
		goto out;
	}
	while (d && (de = readdir(d))) {
		if (!state_disk_name_valid(de->d_name))
			continue;
		if (n == cap) {
			struct disk_row *p = realloc(rows, (cap ? cap * 2 : 8) * sizeof(*p));

			if (!p) {
				ret = cli_fail(cli, "out of memory");
				goto out;
			}
			rows = p;
			cap = cap ? cap * 2 : 8;
		}
		load_disk(state, de->d_name, cache, &rows[n++]);
	}
	if (n)
		qsort(rows, n, sizeof(*rows), row_cmp);
	print_disks(rows, n, json);
	ret = 0;
out:
	for (size_t i = 0; i < n; i++) {
		if (rows[i].conf_ok)
			disk_conf_release(&rows[i].conf);
		free(rows[i].mountpoint);
	}
	free(rows);
	if (d)
		closedir(d);
	cache_close(cache);
	free(cdir);
	free(path);
	free(state);
	return ret;
}

int cmd_ls(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "key", required_argument, NULL, OPT_KEY },
		{ "json", no_argument, NULL, OPT_JSON },
		{ 0 },
	};
	const char *key = NULL;
	bool json = false;
	int c;

	cli->usage = usage_ls;
	while ((c = cli_getopt(cli, argc, argv, "", longopts)) != -1) {
		switch (c) {
		case CLI_EXIT_OK:
			return 0;
		case OPT_KEY:
			key = optarg;
			break;
		case OPT_JSON:
			json = true;
			break;
		default:
			return EXIT_USAGE;
		}
	}
	if (argc - optind > 1)
		return cli_usage_error(cli, "expected at most one URL");
	if (argc - optind == 0) {
		if (key)
			return cli_usage_error(cli, "--key goes with a URL");
		return list_local(cli, json);
	}
	if (!state_url_valid(argv[optind]))
		return cli_usage_error(cli, "'%s' is not an http:// or https:// URL", argv[optind]);
	return list_remote(cli, argv[optind], key, json);
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return (type == FTW_DP ? rmdir(path) : unlink(path)) ? -1 : 0;
}

int cmd_rm(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ 0 },
	};
	struct circ_err err;
	struct stat st;
	char *state = NULL, *dir = NULL, *gone = NULL;
	int c, lockfd = -1, ret = 1;

	cli->usage = usage_rm;
	while ((c = cli_getopt(cli, argc, argv, "", longopts)) != -1) {
		if (c == CLI_EXIT_OK)
			return 0;
		return EXIT_USAGE;
	}
	if (argc - optind != 1)
		return cli_usage_error(cli, "expected one DISK");
	if (!state_disk_name_valid(argv[optind]))
		return cli_usage_error(cli, "invalid disk name '%s'", argv[optind]);
	state = cli_state_dir(cli, &err);
	if (!state)
		return cli_fail_err(cli, &err);
	dir = state_disk_dir(state, argv[optind]);
	if (!dir ||
	    asprintf(&gone, "%s/disks/.rm-%s-%ld", state, argv[optind], (long)getpid()) < 0) {
		gone = NULL;
		ret = cli_fail(cli, "out of memory");
		goto out;
	}
	if (lstat(dir, &st) || !S_ISDIR(st.st_mode)) {
		ret = cli_fail(cli, "there is no disk '%s' (`circ ls` lists them)", argv[optind]);
		goto out;
	}
	/* Held by a mount, a VM, an update or a push: whoever uses the disk. */
	lockfd = state_lock_disk(dir, &err);
	if (lockfd < 0) {
		ret = cli_fail_err(cli, &err);
		goto out;
	}
	/*
	 * Out of sight first, in one step: nobody finds a half-removed disk, and
	 * the name is free at once. A name starting with '.' is never a disk's.
	 */
	if (rename(dir, gone)) {
		ret = cli_fail(cli, "removing %s: %s", dir, strerror(errno));
		goto out;
	}
	if (nftw(gone, rm_entry, 16, FTW_DEPTH | FTW_PHYS)) {
		ret = cli_fail(cli, "removing %s: %s", gone, strerror(errno));
		goto out;
	}
	ret = 0;
out:
	if (lockfd >= 0)
		close(lockfd);
	free(gone);
	free(dir);
	free(state);
	return ret;
}
