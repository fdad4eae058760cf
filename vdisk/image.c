/* SPDX-License-Identifier: MIT */
#include "vdisk/image.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/file.h"

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
	size_t max = MANIFEST_MAX_LEN;
	int ret = -1;

	memset(m, 0, sizeof(*m));
	if (version == 0)
		version = pt->version;
	if (version > pt->version)
		return err_set(err, ENOENT, "'%s' has no version %llu (the newest is %llu)",
		               pt->name, (unsigned long long)version,
		               (unsigned long long)pt->version);
	/* The signed size bounds what a hostile server can make us receive and hold. */
	if (version == pt->version && pt->manifest_size)
		max = (size_t)pt->manifest_size;
	repo_manifest_path(pt->name, version, path);
	if (repo_read_file(repo, path, max, 0, &b, err)) {
		if (max != MANIFEST_MAX_LEN && err->errnum == EFBIG)
			err_prefix(err, "%s is not the manifest the signed pointer names", path);
		goto out;
	}
	if (version == pt->version) {
		if (pt->manifest_size && b.len != pt->manifest_size) {
			err_set(
			    err, EPERM,
			    "%s is not the manifest the signed pointer names (%zu bytes, not %llu)",
			    path, b.len, (unsigned long long)pt->manifest_size);
			goto out;
		}
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

int image_write_bootfile(struct store *s, const struct manifest *m, const struct manifest_file *f,
                         const char *path, struct circ_err *err)
{
	uint32_t bs = m->block_size;
	uint8_t *data = NULL;
	char *tmp = NULL;
	bool created = false;
	int fd = -1, rc, ret = -1;

	if (f->size == 0)
		return err_set(err, ENOENT, "%s version %llu has no such boot file", m->name,
		               (unsigned long long)m->version);
	if (f->n_blocks != f->size / bs + (f->size % bs != 0))
		return err_set(err, EINVAL, "boot file of %llu bytes with %u blocks",
		               (unsigned long long)f->size, f->n_blocks);
	data = malloc(bs);
	if (!data || asprintf(&tmp, "%s.tmp-XXXXXX", path) < 0) {
		tmp = NULL;
		err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	fd = mkstemp(tmp);
	if (fd < 0) {
		err_sys(err, errno, "creating %s", tmp);
		goto out;
	}
	created = true;
	for (uint32_t i = 0; i < f->n_blocks; i++) {
		uint64_t off = (uint64_t)i * bs;
		size_t len = f->size - off < bs ? (size_t)(f->size - off) : bs;

		/* The all-zero ID names a zero block, which is never stored. */
		if (block_id_is_zero(&f->blocks[i]))
			memset(data, 0, len);
		else if (store_read(s, &f->blocks[i], bs, 0, len, data, err))
			goto out;
		rc = file_pwrite_full(fd, data, len, off);
		if (rc) {
			err_sys(err, -rc, "writing %s", tmp);
			goto out;
		}
	}
	/* mkstemp makes 0600; a kernel is no secret and other users may boot it. */
	if (fchmod(fd, 0644) || fsync(fd)) {
		err_sys(err, errno, "writing %s", tmp);
		goto out;
	}
	rc = close(fd);
	fd = -1;
	if (rc) {
		err_sys(err, errno, "writing %s", tmp);
		goto out;
	}
	if (rename(tmp, path)) {
		err_sys(err, errno, "renaming %s to %s", tmp, path);
		goto out;
	}
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	if (ret && created)
		unlink(tmp);
	free(tmp);
	free(data);
	return ret;
}
