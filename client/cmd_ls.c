/* SPDX-License-Identifier: MIT */
/*
 * circ ls: the images a repo offers (its signed catalog), or the disks this
 * machine holds; and circ rm, which removes one of those disks.
 */
#include "client/cli.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/file.h"
#include "util/json.h"
#include "blockfs/objects.h"
#include "blockfs/repo.h"
#include "vdisk/catalog.h"
#include "vdisk/inventory.h"
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
    "  --key PUB          the publisher's Ed25519 public key (PEM) that signed the\n"
    "                     catalog\n" CLI_JSON_HELP;

static const char usage_rm[] =
    "Usage: circ rm DISK\n"
    "\n"
    "Removes the local disk DISK: its configuration, manifests and local writes.\n"
    "Refused while DISK is mounted or in use (a VM, an update, a push). The shared\n"
    "block cache and the key pinned for its image stay. A checked-out disk's lease\n"
    "stays held on its server: `circ push` it first to hand it back.\n";

enum {
	OPT_KEY = OPT_LONG
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

static int print_catalog_json(const struct cli *cli, const struct catalog *c, bool verified)
{
	struct buf b = { 0 };
	struct json j;
	char kid[17];

	cli_json_start(&j, &b);
	json_object_begin(&j, "catalog");
	key_id_short(c->key_id, kid);
	json_u64(&j, "created", c->created);
	json_str(&j, "key_id", kid);
	json_bool(&j, "verified", verified);
	json_object_end(&j);
	json_array_begin(&j, "images");
	for (uint32_t n = 0; n < c->n_entries; n++) {
		const struct catalog_entry *e = &c->entries[n];

		key_id_short(e->key_id, kid);
		json_object_begin(&j, NULL);
		json_str(&j, "name", e->name);
		json_u64(&j, "version", e->version);
		json_u64(&j, "image_size", e->image_size);
		json_u64(&j, "kernel_size", e->kernel_size);
		json_u64(&j, "initrd_size", e->initrd_size);
		json_u64(&j, "created", e->created);
		json_str(&j, "key_id", kid);
		json_str(&j, "description", e->description);
		json_object_end(&j);
	}
	json_array_end(&j);
	return cli_json_print(cli, &j);
}

static void print_catalog(const struct catalog *c)
{
	char size[16], k[16], i[16], when[32], kit[40];

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
	struct fetch_config fc = { .mirrors = mirrors, .n_mirrors = 1 };
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
	if (json) {
		ret = print_catalog_json(cli, &c, pub != NULL);
		goto out;
	}
	print_catalog(&c);
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

static int print_disks_json(const struct cli *cli, const struct disk_info *rows, size_t n)
{
	struct buf b = { 0 };
	struct json j;

	cli_json_start(&j, &b);
	json_array_begin(&j, "disks");
	for (size_t i = 0; i < n; i++) {
		const struct disk_info *r = &rows[i];

		json_object_begin(&j, NULL);
		disk_info_json(&j, r);
		json_str(&j, "mountpoint", r->mountpoint);
		json_object_end(&j);
	}
	json_array_end(&j);
	return cli_json_print(cli, &j);
}

static void print_disks(const struct disk_info *rows, size_t n)
{
	char pct[16], writes[16], ver[24];

	printf("%-24s %-24s %7s %7s %8s  %s\n", "DISK", "IMAGE", "VERSION", "CACHED", "WRITES",
	       "MOUNTED");
	for (size_t i = 0; i < n; i++) {
		const struct disk_info *r = &rows[i];
		const struct disk_conf *c = &r->conf;
		const char *image = !r->conf_ok ? "?" : c->blank ? "blank" : c->image;

		disk_info_cached_text(r, pct);
		human(r->st.overlay_bytes, writes);
		if (r->conf_ok && !c->blank)
			snprintf(ver, sizeof(ver), "%llu", (unsigned long long)c->version);
		else
			snprintf(ver, sizeof(ver), "-");
		printf("%-24s %-24s %7s %7s %8s  %s\n", r->name, image, ver, pct, writes,
		       r->mountpoint ? r->mountpoint : "-");
	}
}

static int list_local(struct cli *cli)
{
	struct disk_info *rows = NULL;
	struct circ_err err;
	size_t n = 0;
	char *state;
	int ret = 0;

	state = cli_state_dir(cli, &err);
	if (!state)
		return cli_fail_err(cli, &err);
	if (inventory_load(state, NULL, &rows, &n, &err))
		ret = cli_fail_err(cli, &err);
	else if (cli->json)
		ret = print_disks_json(cli, rows, n);
	else
		print_disks(rows, n);
	inventory_free(rows, n);
	free(state);
	return ret;
}

int cmd_ls(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "key", required_argument, NULL, OPT_KEY },
		{ 0 },
	};
	const char *key = NULL;
	int c;

	cli->usage = usage_ls;
	cli->reports = true;
	while ((c = cli_getopt(cli, argc, argv, "", longopts)) != -1) {
		switch (c) {
		case CLI_EXIT_OK:
			return 0;
		case OPT_KEY:
			key = optarg;
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
		return list_local(cli);
	}
	if (!state_url_valid(argv[optind]))
		return cli_usage_error(cli, "'%s' is not an http:// or https:// URL", argv[optind]);
	return list_remote(cli, argv[optind], key, cli->json);
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
