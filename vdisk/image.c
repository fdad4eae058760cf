/* SPDX-License-Identifier: MIT */
#include "vdisk/image.h"

#include <errno.h>
#include <string.h>
#include <time.h>

int image_load_pointer(struct repo *repo, const struct key *pub, const char *name, uint64_t now,
                       struct pointer *pt, struct circ_err *err)
{
	char path[REPO_PATH_MAX], when[64];
	struct buf b = { 0 };
	struct circ_err local;
	struct tm tm;
	time_t t;
	int ret = -1;

	if (!err)
		err = &local;
	if (!repo_name_valid(name))
		return err_set(err, EINVAL, "invalid image name '%s'", name);
	repo_pointer_path(name, path);
	if (repo_read_file(repo, path, POINTER_MAX_LEN, FETCH_NO_CACHE, &b, err)) {
		if (err->errnum == ENOENT)
			err_set(err, ENOENT, "%s has no image '%s'", repo_location(repo), name);
		goto out;
	}
	if (pointer_decode(b.data, b.len, pub, pt, err)) {
		err_prefix(err, "%s", path);
		goto out;
	}
	if (strcmp(pt->name, name) != 0) {
		err_set(err, EPERM, "%s names image '%s', not '%s'", path, pt->name, name);
		goto out;
	}
	if (pt->expires < now) {
		t = (time_t)pt->expires;
		gmtime_r(&t, &tm);
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
		err_set(err, EKEYEXPIRED,
		        "the pointer to '%s' expired at %s: refusing a possibly frozen repo "
		        "until the publisher re-signs it",
		        name, when);
		goto out;
	}
	ret = 0;
out:
	buf_free(&b);
	return ret;
}

int image_load_manifest(struct repo *repo, const struct key *pub, const struct pointer *pt,
                        uint64_t version, struct manifest *m, struct buf *raw, struct circ_err *err)
{
	char path[REPO_PATH_MAX];
	struct buf b = { 0 };
	uint8_t hash[32];
	int ret = -1;

	memset(m, 0, sizeof(*m));
	if (version == 0)
		version = pt->version;
	if (version > pt->version)
		return err_set(err, ENOENT, "'%s' has no version %llu (the newest is %llu)",
		               pt->name, (unsigned long long)version,
		               (unsigned long long)pt->version);
	repo_manifest_path(pt->name, version, path);
	if (repo_read_file(repo, path, MANIFEST_MAX_LEN, 0, &b, err))
		goto out;
	if (version == pt->version) {
		manifest_file_hash(b.data, b.len, hash);
		if (memcmp(hash, pt->manifest_sha256, sizeof(hash)) != 0) {
			err_set(err, EPERM, "%s is not the manifest the signed pointer names",
			        path);
			goto out;
		}
	}
	if (manifest_decode(b.data, b.len, pub, m, err)) {
		err_prefix(err, "%s", path);
		goto out;
	}
	if (strcmp(m->name, pt->name) != 0 || m->version != version) {
		err_set(err, EPERM, "%s holds '%s' version %llu", path, m->name,
		        (unsigned long long)m->version);
		manifest_release(m);
		goto out;
	}
	ret = 0;
	if (raw) {
		buf_free(raw);
		*raw = b;
		b = (struct buf){ 0 };
	}
out:
	buf_free(&b);
	return ret;
}
