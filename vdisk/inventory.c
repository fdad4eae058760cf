/* SPDX-License-Identifier: MIT */
#include "vdisk/inventory.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/file.h"
#include "util/json.h"
#include "blockfs/cache.h"
#include "vdisk/key.h"
#include "vdisk/manifest.h"

double disk_info_cached_percent(const struct disk_info *d)
{
	return d->base_blocks ? 100.0 * (double)d->cached_blocks / (double)d->base_blocks : 100.0;
}

void disk_info_cached_text(const struct disk_info *d, char out[16])
{
	if (d->conf_ok && d->conf.blank)
		snprintf(out, 16, "-");
	else if (!d->cached_known)
		snprintf(out, 16, "?");
	else
		snprintf(out, 16, "%.1f%%", disk_info_cached_percent(d));
}

void disk_info_json(struct json *j, const struct disk_info *d)
{
	json_str(j, "disk", d->name);
	json_str(j, "image", d->conf_ok && !d->conf.blank ? d->conf.image : NULL);
	json_u64(j, "version", d->conf_ok ? d->conf.version : 0);
	json_bool(j, "blank", d->conf_ok && d->conf.blank);
	json_u64(j, "base_blocks", d->base_blocks);
	json_u64(j, "cached_blocks", d->cached_blocks);
	if (d->cached_known)
		json_fixed(j, "cached_percent", disk_info_cached_percent(d), 1);
	else
		json_null(j, "cached_percent");
	json_u64(j, "overlay_bytes", d->st.overlay_bytes);
}

/* How much of an image base the cache holds, from its verified local manifest. */
static void count_cached(const char *state, const char *dir, struct cache *cache,
                         struct disk_info *d)
{
	struct manifest m = { 0 };
	struct key *pub = NULL;
	struct circ_err err;

	if (!cache || state_load_pinned_key(state, d->conf.image, &pub, &err) ||
	    state_load_disk_manifest(dir, pub, &d->conf, &m, &err)) {
		key_free(pub);
		return;
	}
	for (uint32_t i = 0; i < m.n_blocks; i++) {
		if (block_id_is_zero(&m.blocks[i]))
			continue;
		d->base_blocks++;
		if (cache_contains(cache, &m.blocks[i]))
			d->cached_blocks++;
	}
	d->cached_known = true;
	manifest_release(&m);
	key_free(pub);
}

static void load_one(const char *state, const char *name, struct cache *cache, struct disk_info *d)
{
	char *dir = state_disk_dir(state, name), *mp = NULL;
	struct buf b = { 0 };
	struct circ_err err;

	memset(d, 0, sizeof(*d));
	snprintf(d->name, sizeof(d->name), "%.*s", REPO_NAME_MAX, name);
	if (!dir)
		return;
	d->conf_ok = disk_conf_load(dir, &d->conf, &err) == 0;
	if (d->conf_ok && !d->conf.blank)
		count_cached(state, dir, cache, d);
	disk_stats_load(dir, &d->st);
	/* A mount writes this file once it is up and removes it when it ends. */
	if (asprintf(&mp, "%s/mountpoint", dir) >= 0 && file_read_all(mp, 4096, &b, &err) == 0 &&
	    buf_append(&b, "", 1) == 0)
		d->mountpoint = strdup((char *)b.data);
	buf_free(&b);
	free(mp);
	free(dir);
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(((const struct disk_info *)a)->name, ((const struct disk_info *)b)->name);
}

/* The names of the disks under state (or just `only`, checked to exist). */
static int list_names(const char *state, const char *only, char ***names, size_t *n,
                      struct circ_err *err)
{
	struct dirent *de;
	size_t cap = 0;
	char *path;
	DIR *d;

	*names = NULL;
	*n = 0;
	if (only) {
		struct stat st;
		char *dir = state_disk_dir(state, only);
		int missing = !dir || stat(dir, &st) || !S_ISDIR(st.st_mode);

		free(dir);
		if (missing)
			return err_set(err, ENOENT, "there is no disk '%s' (`circ ls` lists them)",
			               only);
		*names = malloc(sizeof(**names));
		if (!*names || !((*names)[0] = strdup(only))) {
			free(*names);
			*names = NULL;
			return err_set(err, ENOMEM, "out of memory");
		}
		*n = 1;
		return 0;
	}
	if (asprintf(&path, "%s/disks", state) < 0)
		return err_set(err, ENOMEM, "out of memory");
	d = opendir(path);
	if (!d) {
		int e = errno;

		free(path);
		return e == ENOENT ? 0 : err_sys(err, e, "listing the disks in %s/disks", state);
	}
	free(path);
	while ((de = readdir(d))) {
		if (!state_disk_name_valid(de->d_name))
			continue;
		if (*n == cap) {
			char **p = realloc(*names, (cap ? cap * 2 : 8) * sizeof(*p));

			if (!p)
				goto nomem;
			*names = p;
			cap = cap ? cap * 2 : 8;
		}
		(*names)[*n] = strdup(de->d_name);
		if (!(*names)[*n])
			goto nomem;
		(*n)++;
	}
	closedir(d);
	return 0;
nomem:
	closedir(d);
	for (size_t i = 0; i < *n; i++)
		free((*names)[i]);
	free(*names);
	*names = NULL;
	*n = 0;
	return err_set(err, ENOMEM, "out of memory");
}

int inventory_load(const char *state, const char *only, struct disk_info **out, size_t *n,
                   struct circ_err *err)
{
	struct cache *cache = NULL;
	struct circ_err cerr;
	char **names, *cdir;
	size_t count;

	*out = NULL;
	*n = 0;
	if (only && !state_disk_name_valid(only))
		return err_set(err, EINVAL, "invalid disk name '%s'", only);
	if (list_names(state, only, &names, &count, err))
		return -1;
	*out = calloc(count ? count : 1, sizeof(**out));
	if (!*out) {
		for (size_t i = 0; i < count; i++)
			free(names[i]);
		free(names);
		return err_set(err, ENOMEM, "out of memory");
	}
	/* Without a cache nothing is known to be cached: the figures say so, no failure. */
	cdir = state_cache_dir(state);
	if (!cdir || cache_open(cdir, 0, &cache, &cerr))
		cache = NULL;
	free(cdir);
	for (size_t i = 0; i < count; i++) {
		load_one(state, names[i], cache, &(*out)[i]);
		free(names[i]);
	}
	free(names);
	cache_close(cache);
	*n = count;
	if (count)
		qsort(*out, count, sizeof(**out), name_cmp);
	return 0;
}

void inventory_free(struct disk_info *d, size_t n)
{
	for (size_t i = 0; d && i < n; i++) {
		if (d[i].conf_ok)
			disk_conf_release(&d[i].conf);
		free(d[i].mountpoint);
	}
	free(d);
}
