/* SPDX-License-Identifier: MIT */
#include "vdisk/state.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "blockfs/cache.h"
#include "blockfs/file.h"
#include "blockfs/repo.h"
#include "blockfs/store.h"
#include "vdisk/image.h"
#include "vdisk/overlay.h"

#define CONF_MAX_LEN  8192
#define STATS_MAX_LEN 4096
#define URL_MAX_LEN   2048

char *state_disk_dir(const char *state, const char *disk)
{
	char *p;

	return asprintf(&p, "%s/disks/%s", state, disk) < 0 ? NULL : p;
}

char *state_cache_dir(const char *state)
{
	char *p;

	return asprintf(&p, "%s/cache", state) < 0 ? NULL : p;
}

bool state_disk_name_valid(const char *disk)
{
	return repo_name_valid(disk);
}

char *state_image_dir(const char *state, const char *name)
{
	char *p;

	return asprintf(&p, "%s/images/%s", state, name) < 0 ? NULL : p;
}

/* One file per version: disk.conf's version, written after it, picks the base. */
char *state_manifest_path(const char *disk_dir, uint64_t version)
{
	char *p;

	return asprintf(&p, "%s/manifest.%" PRIu64, disk_dir, version) < 0 ? NULL : p;
}

void disk_conf_release(struct disk_conf *c)
{
	for (size_t i = 0; i < c->n_urls; i++)
		free(c->urls[i]);
	memset(c, 0, sizeof(*c));
}

bool state_url_valid(const char *u)
{
	size_t n = strlen(u);
	const char *host;

	if (n == 0 || n > URL_MAX_LEN || (strncmp(u, "http://", 7) && strncmp(u, "https://", 8)))
		return false;
	host = u + (u[4] == 's' ? 8 : 7);
	if (*host == '\0' || *host == '/')
		return false; /* no host */
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)u[i] <= ' ' || u[i] == 0x7f)
			return false;
	return true;
}

/* disk.conf: "key value" lines; unknown keys are ignored for forward compatibility. */
int disk_conf_load(const char *disk_dir, struct disk_conf *c, struct circ_err *err)
{
	struct buf b = { 0 };
	char *path, *line, *save = NULL;
	bool have_image = false, have_version = false;

	memset(c, 0, sizeof(*c));
	if (asprintf(&path, "%s/disk.conf", disk_dir) < 0)
		return err_set(err, ENOMEM, "out of memory");
	if (file_read_all(path, CONF_MAX_LEN, &b, err) || buf_append(&b, "", 1)) {
		if (err->errnum == ENOENT)
			err_set(err, ENOENT, "no such disk (%s): create it with circ pull",
			        disk_dir);
		free(path);
		buf_free(&b);
		return -1;
	}
	for (line = strtok_r((char *)b.data, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char *val = strchr(line, ' ');

		if (!val)
			continue;
		*val++ = '\0';
		if (strcmp(line, "image") == 0 && repo_name_valid(val)) {
			snprintf(c->image, sizeof(c->image), "%s", val);
			have_image = true;
		} else if (strcmp(line, "version") == 0) {
			char *end;

			/* Digits only: strtoull would also take "-1", "+5" and " 5". */
			errno = 0;
			c->version = strtoull(val, &end, 10);
			have_version = val[0] >= '0' && val[0] <= '9' && *end == '\0' &&
			               c->version > 0 && errno == 0;
		} else if (strcmp(line, "url") == 0 && state_url_valid(val) &&
		           c->n_urls < STATE_MAX_MIRRORS) {
			c->urls[c->n_urls] = strdup(val);
			if (c->urls[c->n_urls])
				c->n_urls++;
		}
	}
	buf_free(&b);
	if (!have_image || !have_version || !c->n_urls) {
		err_set(err, EBADMSG, "%s is damaged", path);
		free(path);
		disk_conf_release(c);
		return -1;
	}
	free(path);
	return 0;
}

int disk_conf_save(const char *disk_dir, const struct disk_conf *c, struct circ_err *err)
{
	struct buf b = { 0 };
	char line[URL_MAX_LEN + 16], *path;
	int rc = -1;

	if (asprintf(&path, "%s/disk.conf", disk_dir) < 0)
		return err_set(err, ENOMEM, "out of memory");
	snprintf(line, sizeof(line), "image %s\nversion %" PRIu64 "\n", c->image, c->version);
	if (buf_append(&b, line, strlen(line)))
		goto nomem;
	for (size_t i = 0; i < c->n_urls; i++) {
		snprintf(line, sizeof(line), "url %s\n", c->urls[i]);
		if (buf_append(&b, line, strlen(line)))
			goto nomem;
	}
	rc = file_write_atomic(path, b.data, b.len, 0644, err);
	goto out;
nomem:
	err_set(err, ENOMEM, "out of memory");
out:
	buf_free(&b);
	free(path);
	return rc;
}

static const char *const stat_names[] = { "fetched_bytes", "fetched_blocks", "requests",
	                                  "hits",          "misses",         "overlay_bytes" };

static uint64_t *stat_field(struct disk_stats *st, size_t i)
{
	uint64_t *f[] = { &st->fetched_bytes, &st->fetched_blocks, &st->requests,
		          &st->hits,          &st->misses,         &st->overlay_bytes };

	return f[i];
}

int disk_stats_load(const char *disk_dir, struct disk_stats *st)
{
	struct buf b = { 0 };
	struct circ_err err;
	char *path, *line, *save = NULL;

	memset(st, 0, sizeof(*st));
	if (asprintf(&path, "%s/stats", disk_dir) < 0)
		return -ENOMEM;
	if (file_read_all(path, STATS_MAX_LEN, &b, &err) || buf_append(&b, "", 1)) {
		free(path);
		buf_free(&b);
		return -ENOENT;
	}
	free(path);
	for (line = strtok_r((char *)b.data, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char *val = strchr(line, ' ');

		if (!val)
			continue;
		*val++ = '\0';
		for (size_t i = 0; i < sizeof(stat_names) / sizeof(stat_names[0]); i++)
			if (strcmp(line, stat_names[i]) == 0)
				*stat_field(st, i) = strtoull(val, NULL, 10);
	}
	buf_free(&b);
	return 0;
}

int disk_stats_save(const char *disk_dir, const struct disk_stats *st)
{
	struct disk_stats copy = *st;
	struct circ_err err;
	char text[1024], *path;
	size_t n = 0;
	int rc;

	for (size_t i = 0; i < sizeof(stat_names) / sizeof(stat_names[0]); i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "%s %" PRIu64 "\n", stat_names[i],
		                      *stat_field(&copy, i));
	if (asprintf(&path, "%s/stats", disk_dir) < 0)
		return -ENOMEM;
	rc = file_write_atomic(path, text, n, 0644, &err);
	free(path);
	return rc;
}

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

int state_seen_load(const char *state, const char *name, uint64_t *seen)
{
	char *dir = state_image_dir(state, name), *path = NULL;
	struct buf b = { 0 };
	struct circ_err err;

	*seen = 0;
	if (!dir || asprintf(&path, "%s/seen", dir) < 0) {
		free(dir);
		return -ENOMEM;
	}
	if (!file_read_all(path, 64, &b, &err) && !buf_append(&b, "", 1))
		*seen = strtoull((char *)b.data, NULL, 10);
	buf_free(&b);
	free(dir);
	free(path);
	return 0;
}

/* Remembers version as seen, never lowering what was seen before. */
int state_seen_raise(const char *state, const char *name, uint64_t version, struct circ_err *err)
{
	char *dir = state_image_dir(state, name), *path = NULL, text[32];
	uint64_t seen;
	int rc;

	if (!dir || asprintf(&path, "%s/seen", dir) < 0) {
		free(dir);
		return err_set(err, ENOMEM, "out of memory");
	}
	state_seen_load(state, name, &seen);
	rc = 0;
	if (version > seen) {
		snprintf(text, sizeof(text), "%" PRIu64 "\n", version);
		rc = file_write_atomic(path, text, strlen(text), 0644, err);
	}
	free(dir);
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

int state_open_repo(const struct disk_conf *c, const struct state_net *net, struct repo **out,
                    struct circ_err *err)
{
	const char *urls[2 * STATE_MAX_MIRRORS];
	struct fetch_config fc = { .mirrors = urls, .retries = 2 };
	size_t n = 0;

	for (size_t i = 0; i < c->n_urls; i++)
		urls[n++] = c->urls[i];
	for (size_t i = 0; net && i < net->n_extra && n < 2 * STATE_MAX_MIRRORS; i++)
		urls[n++] = net->extra_mirrors[i];
	fc.n_mirrors = n;
	fc.deadline_ms = net ? net->timeout_ms : 0;
	return repo_open_url(&fc, out, err);
}

/* Pins pub for image name unless a key is pinned already, which must be pub. */
int state_write_manifest(const char *disk_dir, uint64_t version, const struct buf *raw,
                         struct circ_err *err)
{
	char *path = state_manifest_path(disk_dir, version);
	int rc;

	if (!path)
		return err_set(err, ENOMEM, "out of memory");
	rc = file_write_atomic(path, raw->data, raw->len, 0644, err);
	free(path);
	return rc;
}

/* Takes DISK's lock, held by a mount; fails at once if it is taken. */
int state_lock_disk(const char *dir, struct circ_err *err)
{
	char *path;
	int fd;

	if (asprintf(&path, "%s/lock", dir) < 0)
		return err_set(err, ENOMEM, "out of memory");
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	free(path);
	if (fd < 0)
		return err_sys(err, errno, "locking %s", dir);
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		close(fd);
		return err_set(err, EBUSY, "disk %s is in use (mounted?)", dir);
	}
	return fd;
}
