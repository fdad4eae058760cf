/* SPDX-License-Identifier: MIT */
/* circ pull: a new local disk tracking a published image, its key pinned. */
#include "vdisk/state.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/file.h"
#include "blockfs/repo.h"
#include "vdisk/image.h"

static int pin_key(const char *state, const char *name, const struct key *pub, bool *pinned_now,
                   struct circ_err *err)
{
	char *dir = state_image_dir(state, name), *path = NULL;
	uint8_t want[KEY_ID_LEN], have[KEY_ID_LEN];
	char a[17], b[17];
	struct key *old = NULL;
	int rc = -1;

	*pinned_now = false;
	if (!dir || asprintf(&path, "%s/key.pub", dir) < 0) {
		err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	if (access(path, F_OK) == 0) {
		if (key_load_public(path, &old, err))
			goto out;
		key_id(old, have);
		key_id(pub, want);
		if (memcmp(have, want, KEY_ID_LEN) != 0) {
			key_id_short(have, a);
			key_id_short(want, b);
			err_set(err, EPERM,
			        "image '%s' is pinned to key %s by an earlier pull, not to key %s",
			        name, a, b);
			goto out;
		}
		rc = 0;
		goto out;
	}
	*pinned_now = true;
	rc = 0;
out:
	key_free(old);
	free(dir);
	free(path);
	return rc;
}

int state_pull(const char *state, const char *disk, const char *const *urls, size_t n_urls,
               const char *name, const char *key_path, const struct state_net *net,
               uint64_t *version, struct circ_err *err)
{
	return state_pull_at(state, disk, urls, n_urls, name, key_path, net, 0, NULL, version, err);
}

int state_pull_at(const char *state, const char *disk, const char *const *urls, size_t n_urls,
                  const char *name, const char *key_path, const struct state_net *net,
                  uint64_t want, const uint8_t want_sha256[32], uint64_t *version,
                  struct circ_err *err)
{
	struct disk_conf conf = { 0 };
	struct manifest m = { 0 };
	struct buf raw = { 0 };
	struct repo *repo = NULL;
	struct key *pub = NULL;
	struct pointer pt;
	char *dir = NULL, *idir = NULL, *keyfile = NULL;
	bool pin_now = false;
	uint64_t seen;
	int rc = -1;

	if (!repo_name_valid(name))
		return err_set(err, EINVAL, "invalid image name '%s'", name);
	if (!state_disk_name_valid(disk))
		return err_set(err, EINVAL, "invalid disk name '%s'", disk);
	if (n_urls == 0 || n_urls > STATE_MAX_MIRRORS)
		return err_set(err, EINVAL, "give 1 to %d URLs", STATE_MAX_MIRRORS);
	for (size_t i = 0; i < n_urls; i++)
		if (!state_url_valid(urls[i]))
			return err_set(err, EINVAL, "'%s' is not an http:// or https:// URL",
			               urls[i]);
	dir = state_disk_dir(state, disk);
	idir = state_image_dir(state, name);
	if (!dir || !idir) {
		err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	if (access(dir, F_OK) == 0) {
		err_set(err, EEXIST,
		        "disk '%s' exists already (circ update moves it to a new version)", disk);
		goto out;
	}
	if (key_load_public(key_path, &pub, err) || pin_key(state, name, pub, &pin_now, err))
		goto out;
	snprintf(conf.image, sizeof(conf.image), "%s", name);
	for (size_t i = 0; i < n_urls; i++) {
		conf.urls[i] = strdup(urls[i]);
		if (!conf.urls[i]) {
			err_set(err, ENOMEM, "out of memory");
			goto out;
		}
		conf.n_urls++;
	}
	if (state_open_repo(&conf, net, &repo, err))
		goto out;
	state_report_downloads(repo, net);
	if (image_load_pointer(repo, pub, name, (uint64_t)time(NULL), &pt, err))
		goto out;
	if (state_seen_load(state, name, &seen, err))
		goto out;
	if (pt.version < seen) {
		err_set(err, EPERM,
		        "rollback refused: the server offers '%s' version %" PRIu64
		        ", older than version %" PRIu64 " seen before",
		        name, pt.version, seen);
		goto out;
	}
	if (image_load_manifest(repo, pub, &pt, want, &m, &raw, err))
		goto out;
	if (want_sha256) {
		uint8_t sha[32];

		manifest_file_hash(raw.data, raw.len, sha);
		if (memcmp(sha, want_sha256, 32) != 0) {
			err_set(err, EPERM,
			        "'%s' version %" PRIu64 " on the server is not the manifest this "
			        "disk was made over",
			        name, m.version);
			goto out;
		}
	}
	/* Everything checked: now store. */
	conf.version = m.version;
	if (file_mkdirs(dir, 0755, err) || file_mkdirs(idir, 0755, err) ||
	    state_write_manifest(dir, m.version, &raw, err) || disk_conf_save(dir, &conf, err))
		goto out;
	if (pin_now) {
		if (asprintf(&keyfile, "%s/key.pub", idir) < 0) {
			err_set(err, ENOMEM, "out of memory");
			goto out;
		}
		if (key_save_public(pub, keyfile, err))
			goto out;
	}
	if (state_seen_raise(state, name, m.version, err))
		goto out;
	*version = m.version;
	rc = 0;
out:
	if (rc && dir && access(dir, F_OK) == 0 && conf.version) {
		/* A half-made disk is worse than none: remove what this pull wrote. */
		char *f;

		f = state_manifest_path(dir, conf.version);
		if (f) {
			unlink(f);
			free(f);
		}
		if (asprintf(&f, "%s/disk.conf", dir) >= 0) {
			unlink(f);
			free(f);
		}
		rmdir(dir);
	}
	disk_conf_release(&conf);
	manifest_release(&m);
	buf_free(&raw);
	repo_close(repo);
	key_free(pub);
	free(dir);
	free(idir);
	free(keyfile);
	return rc;
}
