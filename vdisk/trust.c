/* SPDX-License-Identifier: MIT */
/*
 * Trust in published images: the key pinned for each image at its first
 * pull, the highest version ever accepted (rollback protection), and a
 * disk's local manifest, checked as strictly as one from the network.
 */
#include "vdisk/state.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/file.h"

int state_load_pinned_key(const char *state, const char *name, struct key **out,
                          struct circ_err *err)
{
	char *dir = state_image_dir(state, name), *path = NULL;
	int rc;

	if (!dir || asprintf(&path, "%s/key.pub", dir) < 0) {
		free(dir);
		return err_set(err, ENOMEM, "out of memory");
	}
	rc = key_load_public(path, out, err);
	free(dir);
	free(path);
	return rc;
}

/* A "seen" file's version (0 if it is missing or unreadable). */
int state_seen_read(const char *path, uint64_t *seen, struct circ_err *err)
{
	struct buf b = { 0 };
	char *end;
	int rc = 0;

	*seen = 0;
	if (file_read_all(path, 64, &b, err)) {
		buf_free(&b); /* a read that failed part way keeps its buffer */
		return err->errnum == ENOENT ? 0 : -1; /* none yet: nothing seen */
	}
	if (buf_append(&b, "", 1)) {
		rc = err_set(err, ENOMEM, "out of memory");
	} else {
		errno = 0;
		*seen = strtoull((char *)b.data, &end, 10);
		/* Digits and a newline only: strtoull would take a sign or spaces too. */
		if (errno || !isdigit(b.data[0]) || strcmp(end, "\n") != 0) {
			*seen = 0;
			rc =
			    err_set(err, EINVAL,
			            "%s is damaged (not one version number): remove it only if you "
			            "trust the server not to offer an older version",
			            path);
		}
	}
	buf_free(&b);
	return rc;
}

int state_seen_write(const struct fileio *fio, const char *path, uint64_t version,
                     struct circ_err *err)
{
	char text[32];
	uint64_t seen;

	if (state_seen_read(path, &seen, err))
		return -1;
	if (version <= seen)
		return 0;
	snprintf(text, sizeof(text), "%" PRIu64 "\n", version);
	return file_write_atomic_io(fio, path, text, strlen(text), 0644, err);
}

int state_seen_load(const char *state, const char *name, uint64_t *seen, struct circ_err *err)
{
	char *dir = state_image_dir(state, name), *path = NULL;
	int rc;

	*seen = 0;
	if (!dir || asprintf(&path, "%s/seen", dir) < 0) {
		free(dir);
		return err_set(err, ENOMEM, "out of memory");
	}
	rc = state_seen_read(path, seen, err);
	free(dir);
	free(path);
	return rc;
}

int state_seen_raise(const char *state, const char *name, uint64_t version, struct circ_err *err)
{
	return state_seen_raise_io(NULL, state, name, version, err);
}

int state_seen_raise_io(const struct fileio *fio, const char *state, const char *name,
                        uint64_t version, struct circ_err *err)
{
	char *dir = state_image_dir(state, name), *path = NULL;
	int rc;

	if (!dir || asprintf(&path, "%s/seen", dir) < 0) {
		free(dir);
		return err_set(err, ENOMEM, "out of memory");
	}
	rc = state_seen_write(fio, path, version, err);
	free(dir);
	free(path);
	return rc;
}

int state_disk_check_version(const char *disk_dir, const struct disk_conf *c, struct circ_err *err)
{
	char *path;
	uint64_t seen;
	int rc;

	if (c->blank || c->layer)
		return 0;
	if (asprintf(&path, "%s/seen", disk_dir) < 0)
		return err_set(err, ENOMEM, "out of memory");
	if (state_seen_read(path, &seen, err))
		rc = -1;
	else if (c->version < seen)
		rc = err_set(err, EPERM,
		             "rollback refused: %s/disk.conf says %s version %" PRIu64
		             ", but this disk was at version %" PRIu64
		             " (its state was changed or restored from an older copy; "
		             "circ update moves it forward)",
		             disk_dir, c->image, c->version, seen);
	else
		rc = state_seen_write(NULL, path, c->version, err);
	free(path);
	return rc;
}

int state_load_disk_manifest(const char *disk_dir, const struct key *pub, const struct disk_conf *c,
                             struct manifest *m, struct circ_err *err)
{
	struct buf b = { 0 };
	char *path;
	int rc;

	memset(m, 0, sizeof(*m));
	path = state_manifest_path(disk_dir, c->version);
	if (!path)
		return err_set(err, ENOMEM, "out of memory");
	rc = file_read_all(path, MANIFEST_MAX_LEN, &b, err);
	if (!rc && manifest_decode(b.data, b.len, pub, m, err))
		rc = err_prefix(err, "%s", path);
	if (!rc && (strcmp(m->name, c->image) != 0 || m->version != c->version)) {
		rc = err_set(err, EBADMSG, "%s is not %s version %" PRIu64, path, c->image,
		             c->version);
		manifest_release(m);
	}
	buf_free(&b);
	free(path);
	return rc;
}
