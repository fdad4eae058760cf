/* SPDX-License-Identifier: MIT */
/* The repository's signed catalog, rebuilt by every publish. */
#include "vdisk/publish_catalog.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vdisk/catalog.h"

/*
 * Another image's catalog entry, from what the repo holds: its pointer and
 * the manifest it names. They are read unverified (other images may be
 * signed by other keys) but checked for consistency, hash and size; the
 * catalog is an index, and each image is verified on its own when pulled.
 */
static int read_entry(struct repo *repo, const char *name, struct catalog_entry *e,
                      struct circ_err *err)
{
	char path[REPO_PATH_MAX];
	struct buf b = { 0 };
	struct manifest m = { 0 };
	struct pointer pt;
	uint8_t hash[32];
	int ret = -1;

	repo_pointer_path(name, path);
	if (repo_read_file(repo, path, POINTER_MAX_LEN, 0, &b, err) ||
	    pointer_parse(b.data, b.len, &pt, err))
		goto out;
	if (strcmp(pt.name, name) != 0) {
		err_set(err, EBADMSG, "%s names image '%s'", path, pt.name);
		goto out;
	}
	repo_manifest_path(name, pt.version, path);
	if (repo_read_file(repo, path, pt.manifest_size ? pt.manifest_size : MANIFEST_MAX_LEN, 0,
	                   &b, err))
		goto out;
	manifest_file_hash(b.data, b.len, hash);
	if ((pt.manifest_size && b.len != pt.manifest_size) ||
	    memcmp(hash, pt.manifest_sha256, sizeof(hash)) != 0) {
		err_set(err, EBADMSG, "%s is not the manifest its pointer names", path);
		goto out;
	}
	if (manifest_parse(b.data, b.len, &m, err))
		goto out;
	if (strcmp(m.name, name) != 0 || m.version != pt.version) {
		err_set(err, EBADMSG, "%s holds '%s' version %llu", path, m.name,
		        (unsigned long long)m.version);
		goto out;
	}
	memset(e, 0, sizeof(*e));
	memcpy(e->name, m.name, sizeof(e->name));
	e->version = m.version;
	e->image_size = m.image_size;
	e->kernel_size = m.kernel.size;
	e->initrd_size = m.initrd.size;
	e->created = m.created;
	memcpy(e->key_id, pt.key_id, KEY_ID_LEN);
	memcpy(e->description, m.description, sizeof(e->description));
	ret = 0;
out:
	manifest_release(&m);
	buf_free(&b);
	return ret;
}

/*
 * The repo's catalog with this version in it: the new manifest and pointer
 * (not written yet) for this image, every other image as the repo holds it.
 * An image that does not read is left out rather than holding up the publish.
 */
int publish_make_catalog(struct repo *repo, const char *repo_dir, const struct manifest *m,
                         const struct pointer *pt, const struct key *key, uint64_t now,
                         struct buf *out, struct publish_result *res, struct circ_err *err)
{
	struct catalog c = { .created = now };
	struct catalog_entry e = { 0 };
	struct circ_err skip;
	struct dirent *de;
	char *path = NULL;
	DIR *d = NULL;
	int ret = -1;

	snprintf(e.name, sizeof(e.name), "%s", m->name);
	e.version = m->version;
	e.image_size = m->image_size;
	e.kernel_size = m->kernel.size;
	e.initrd_size = m->initrd.size;
	e.created = m->created;
	memcpy(e.key_id, pt->key_id, KEY_ID_LEN);
	snprintf(e.description, sizeof(e.description), "%s", m->description);
	if (catalog_add(&c, &e, err))
		goto out;
	if (asprintf(&path, "%s/images", repo_dir) < 0) {
		path = NULL;
		err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	d = opendir(path);
	if (!d) {
		err_sys(err, errno, "listing %s", path);
		goto out;
	}
	while ((errno = 0, de = readdir(d))) {
		if (!repo_name_valid(de->d_name) || strcmp(de->d_name, m->name) == 0)
			continue;
		if (read_entry(repo, de->d_name, &e, &skip)) {
			/* No pointer yet (a first publish that failed): not an image. */
			if (skip.errnum != ENOENT)
				res->catalog_skipped++;
			continue;
		}
		if (catalog_add(&c, &e, err))
			goto out;
	}
	if (errno) {
		err_sys(err, errno, "listing %s", path);
		goto out;
	}
	res->catalog_images = c.n_entries;
	ret = catalog_encode(&c, key, out, err);
out:
	if (d)
		closedir(d);
	free(path);
	catalog_release(&c);
	return ret;
}

void publish_clean_root_temporaries(const char *repo_dir)
{
	struct dirent *de;
	DIR *d = opendir(repo_dir);

	if (!d)
		return;
	while ((de = readdir(d)))
		if (strncmp(de->d_name, ".tmp-", 5) == 0)
			unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
}
