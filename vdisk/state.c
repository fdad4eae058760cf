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

#include "util/file.h"
#include "blockfs/cache.h"
#include "blockfs/repo.h"
#include "blockfs/store.h"
#include "vdisk/image.h"
#include "vdisk/overlay.h"

#define CONF_MAX_LEN  8192
#define STATS_MAX_LEN 4096
#define URL_MAX_LEN   2048

static bool conf_u64(const char *val, uint64_t *out);

static bool config_key_valid(const char *key)
{
	return strcmp(key, STATE_CONFIG_CACHE_SIZE) == 0;
}

/* Reads STATE/config into b (NUL-terminated); an absent file is an empty one. */
static int config_read(const char *state, char **path, struct buf *b, struct circ_err *err)
{
	if (asprintf(path, "%s/config", state) < 0) {
		*path = NULL;
		return err_set(err, ENOMEM, "out of memory");
	}
	if (file_read_all(*path, CONF_MAX_LEN, b, err) && err->errnum != ENOENT)
		return -1;
	if (buf_append(b, "", 1))
		return err_set(err, ENOMEM, "out of memory");
	return 0;
}

int state_config_get(const char *state, const char *key, uint64_t *value, struct circ_err *err)
{
	struct buf b = { 0 };
	char *path, *line, *save = NULL;
	int rc;

	if (!config_key_valid(key))
		return err_set(err, EINVAL, "no setting '%s' (there is: cache-size)", key);
	rc = config_read(state, &path, &b, err);
	for (line = rc ? NULL : strtok_r((char *)b.data, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char *val = strchr(line, ' ');

		if (!val)
			continue;
		*val++ = '\0';
		if (strcmp(line, key) != 0)
			continue;
		rc = conf_u64(val, value)
		         ? 0
		         : err_set(err, EBADMSG, "%s: bad value for %s", path, key);
		buf_free(&b);
		free(path);
		return rc;
	}
	if (!rc)
		rc = err_set(err, ENOENT, "%s is not set", key);
	buf_free(&b);
	free(path);
	return rc;
}

int state_config_set(const char *state, const char *key, uint64_t value, struct circ_err *err)
{
	struct buf b = { 0 }, out = { 0 };
	char *path, *line, *save = NULL, text[96];
	int rc;

	if (!config_key_valid(key))
		return err_set(err, EINVAL, "no setting '%s' (there is: cache-size)", key);
	rc = config_read(state, &path, &b, err);
	/* Other keys' lines are kept as they are: a newer circ may know them. */
	for (line = rc ? NULL : strtok_r((char *)b.data, "\n", &save); line && !rc;
	     line = strtok_r(NULL, "\n", &save)) {
		size_t kl = strlen(key);

		if (strncmp(line, key, kl) == 0 && line[kl] == ' ')
			continue;
		if (buf_append(&out, line, strlen(line)) || buf_append(&out, "\n", 1))
			rc = err_set(err, ENOMEM, "out of memory");
	}
	snprintf(text, sizeof(text), "%s %" PRIu64 "\n", key, value);
	if (!rc && buf_append(&out, text, strlen(text)))
		rc = err_set(err, ENOMEM, "out of memory");
	if (!rc)
		rc = file_write_atomic(path, out.data, out.len, 0644, err);
	buf_free(&b);
	buf_free(&out);
	free(path);
	return rc;
}

uint64_t state_cache_bound(const char *state, uint64_t requested)
{
	struct circ_err err;
	uint64_t v;

	if (requested)
		return requested;
	if (state_config_get(state, STATE_CONFIG_CACHE_SIZE, &v, &err) == 0 && v)
		return v;
	return STATE_DEFAULT_CACHE_SIZE;
}

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
void disk_conf_release(struct disk_conf *c)
{
	for (size_t i = 0; i < c->n_urls; i++)
		free(c->urls[i]);
	free(c->remote);
	memset(c, 0, sizeof(*c));
}

/* A decimal made of digits only: strtoull would also take "-1", "+5" and " 5". */
static bool conf_u64(const char *val, uint64_t *out)
{
	char *end;

	errno = 0;
	*out = strtoull(val, &end, 10);
	return val[0] >= '0' && val[0] <= '9' && *end == '\0' && errno == 0;
}

static bool conf_name(const char *val, char out[REPO_NAME_MAX + 1])
{
	if (!repo_name_valid(val))
		return false;
	snprintf(out, REPO_NAME_MAX + 1, "%s", val);
	return true;
}

/* One "key value" line; false if a known key has a bad value. */
static bool conf_line(struct disk_conf *c, const char *key, const char *val)
{
	uint64_t v;

	if (strcmp(key, "image") == 0)
		return conf_name(val, c->image);
	if (strcmp(key, "version") == 0)
		return conf_u64(val, &c->version) && c->version > 0;
	if (strcmp(key, "url") == 0) {
		/* Mirrors beyond the bound or of another scheme are skipped, not fatal. */
		if (!state_url_valid(val) || c->n_urls >= STATE_MAX_MIRRORS)
			return true;
		c->urls[c->n_urls] = strdup(val);
		return c->urls[c->n_urls] && ++c->n_urls;
	}
	if (strcmp(key, "base") == 0) {
		c->blank = strcmp(val, "blank") == 0;
		return c->blank || strcmp(val, "image") == 0;
	}
	if (strcmp(key, "size") == 0)
		return conf_u64(val, &c->size) && c->size > 0;
	if (strcmp(key, "block-size") == 0) {
		if (!conf_u64(val, &v) || !block_size_valid(v))
			return false;
		c->block_size = (uint32_t)v;
		return true;
	}
	if (strcmp(key, "remote") == 0) {
		if (!state_url_valid(val) || c->remote)
			return false;
		c->remote = strdup(val);
		return c->remote != NULL;
	}
	if (strcmp(key, "user") == 0)
		return conf_name(val, c->user);
	if (strcmp(key, "remote-disk") == 0)
		return conf_name(val, c->remote_disk);
	if (strcmp(key, "layer") == 0)
		return conf_u64(val, &c->layer);
	return true; /* unknown keys are ignored for forward compatibility */
}

/* disk.conf: "key value" lines. */
int disk_conf_load(const char *disk_dir, struct disk_conf *c, struct circ_err *err)
{
	struct buf b = { 0 };
	char *path, *line, *save = NULL;
	bool ok = true;

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
	for (line = strtok_r((char *)b.data, "\n", &save); line && ok;
	     line = strtok_r(NULL, "\n", &save)) {
		char *val = strchr(line, ' ');

		if (!val)
			continue;
		*val++ = '\0';
		ok = conf_line(c, line, val);
	}
	buf_free(&b);
	if (ok && c->blank)
		ok = c->size && c->block_size && !c->image[0] && !c->n_urls;
	else if (ok) /* an image's size is its manifest's: a stray one would be lost on save */
		ok = c->image[0] && c->version && c->n_urls && !c->size && !c->block_size;
	/* A server's disk is all four or none: a stray one would be lost on the next save. */
	if (ok && (c->remote || c->layer || c->user[0] || c->remote_disk[0]))
		ok = c->remote && c->user[0] && c->remote_disk[0];
	if (!ok) {
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
	return disk_conf_save_io(NULL, disk_dir, c, err);
}

int disk_conf_save_io(const struct fileio *fio, const char *disk_dir, const struct disk_conf *c,
                      struct circ_err *err)
{
	struct buf b = { 0 };
	char line[URL_MAX_LEN + 160], *path;
	int rc = -1;

	if (asprintf(&path, "%s/disk.conf", disk_dir) < 0)
		return err_set(err, ENOMEM, "out of memory");
	if (c->blank)
		snprintf(line, sizeof(line),
		         "base blank\nsize %" PRIu64 "\nblock-size %" PRIu32 "\n", c->size,
		         c->block_size);
	else
		snprintf(line, sizeof(line), "image %s\nversion %" PRIu64 "\n", c->image,
		         c->version);
	if (buf_append(&b, line, strlen(line)))
		goto nomem;
	for (size_t i = 0; i < c->n_urls; i++) {
		snprintf(line, sizeof(line), "url %s\n", c->urls[i]);
		if (buf_append(&b, line, strlen(line)))
			goto nomem;
	}
	if (c->remote) {
		snprintf(line, sizeof(line),
		         "remote %s\nuser %s\nremote-disk %s\nlayer %" PRIu64 "\n", c->remote,
		         c->user, c->remote_disk, c->layer);
		if (buf_append(&b, line, strlen(line)))
			goto nomem;
	}
	rc = file_write_atomic_io(fio, path, b.data, b.len, 0644, err);
	goto out;
nomem:
	err_set(err, ENOMEM, "out of memory");
out:
	buf_free(&b);
	free(path);
	return rc;
}

char *state_layer_path(const char *disk_dir, uint64_t n)
{
	char *p;

	return asprintf(&p, "%s/layer.%" PRIu64, disk_dir, n) < 0 ? NULL : p;
}

void disk_secrets_wipe(struct disk_secrets *s)
{
	explicit_bzero(s, sizeof(*s));
}

static int hex_nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decodes exactly n bytes of hex from s (2n digits then '\n' or end); false if malformed. */
static bool hex_decode(const char *s, size_t digits, uint8_t *out)
{
	for (size_t i = 0; i < digits / 2; i++) {
		int hi = hex_nibble(s[2 * i]), lo = hex_nibble(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return false;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}

/* "master <64 hex>\npassword <hex>\n": hex, so any password byte survives. */
int disk_secrets_load(const char *disk_dir, struct disk_secrets *s, struct circ_err *err)
{
	struct buf b = { 0 };
	char *path;
	const char *p, *nl;
	size_t plen;
	bool ok;

	memset(s, 0, sizeof(*s));
	if (asprintf(&path, "%s/secrets", disk_dir) < 0)
		return err_set(err, ENOMEM, "out of memory");
	if (file_read_all(path, 1024, &b, err) || buf_append(&b, "", 1)) {
		free(path);
		buf_free(&b);
		return -1;
	}
	p = (const char *)b.data;
	ok = strncmp(p, "master ", 7) == 0 && b.len > 7 + 64 && p[7 + 64] == '\n' &&
	     hex_decode(p + 7, 64, s->master);
	if (ok) {
		p += 7 + 64 + 1;
		nl = strchr(p, '\n');
		ok = strncmp(p, "password ", 9) == 0 && nl;
		plen = ok ? (size_t)(nl - p - 9) : 0;
		ok = ok && plen % 2 == 0 && plen / 2 <= DISK_PASSWORD_MAX &&
		     hex_decode(p + 9, plen, (uint8_t *)s->password) &&
		     !memchr(s->password, '\0', plen / 2);
	}
	explicit_bzero(b.data, b.len);
	buf_free(&b);
	if (!ok) {
		disk_secrets_wipe(s);
		err_set(err, EBADMSG, "%s is damaged", path);
		free(path);
		return -1;
	}
	free(path);
	return 0;
}

int disk_secrets_save(const char *disk_dir, const struct disk_secrets *s, struct circ_err *err)
{
	char text[16 + 64 + 2 * DISK_PASSWORD_MAX + 16], *path;
	size_t n = 0, plen = strlen(s->password);
	int rc;

	if (asprintf(&path, "%s/secrets", disk_dir) < 0)
		return err_set(err, ENOMEM, "out of memory");
	n += (size_t)snprintf(text, sizeof(text), "master ");
	for (size_t i = 0; i < UKEY_MASTER_LEN; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "%02x", s->master[i]);
	n += (size_t)snprintf(text + n, sizeof(text) - n, "\npassword ");
	for (size_t i = 0; i < plen && i < DISK_PASSWORD_MAX; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "%02x",
		                      (unsigned char)s->password[i]);
	n += (size_t)snprintf(text + n, sizeof(text) - n, "\n");
	rc = file_write_atomic(path, text, n, 0600, err);
	explicit_bzero(text, sizeof(text));
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

int state_open_repo(const struct disk_conf *c, const struct state_net *net, struct repo **out,
                    struct circ_err *err)
{
	const char *urls[2 * STATE_MAX_MIRRORS];
	struct fetch_config fc = { .mirrors = urls };
	size_t n = 0;

	for (size_t i = 0; i < c->n_urls; i++)
		urls[n++] = c->urls[i];
	for (size_t i = 0; net && i < net->n_extra && n < 2 * STATE_MAX_MIRRORS; i++)
		urls[n++] = net->extra_mirrors[i];
	fc.n_mirrors = n;
	fc.deadline_ms = net ? net->timeout_ms : 0;
	return repo_open_url(&fc, out, err);
}

static void report_download(void *ctx, uint64_t done, uint64_t total)
{
	const struct state_net *net = ctx;

	net->progress(net->progress_ctx, "manifest", true, done, total);
}

void state_report_downloads(struct repo *repo, const struct state_net *net)
{
	struct fetch *f = repo_fetcher(repo);

	if (!f)
		return;
	if (net && net->progress)
		fetch_set_progress(f, report_download, (void *)net);
	else
		fetch_set_progress(f, NULL, NULL);
}

int state_write_manifest(const char *disk_dir, uint64_t version, const struct buf *raw,
                         struct circ_err *err)
{
	return state_write_manifest_io(NULL, disk_dir, version, raw, err);
}

int state_write_manifest_io(const struct fileio *fio, const char *disk_dir, uint64_t version,
                            const struct buf *raw, struct circ_err *err)
{
	char *path = state_manifest_path(disk_dir, version);
	int rc;

	if (!path)
		return err_set(err, ENOMEM, "out of memory");
	rc = file_write_atomic_io(fio, path, raw->data, raw->len, 0644, err);
	free(path);
	return rc;
}

/* Takes DISK's lock, held by a mount; fails at once if it is taken. */
int state_lock_disk(const char *dir, struct circ_err *err)
{
	struct buf where = { 0 }, pid = { 0 };
	struct circ_err ignored;
	char *path;
	int fd;

	if (asprintf(&path, "%s/lock", dir) < 0)
		return err_set(err, ENOMEM, "out of memory");
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	free(path);
	if (fd < 0)
		return err_sys(err, errno, "locking %s", dir);
	if (flock(fd, LOCK_EX | LOCK_NB) == 0)
		return fd;
	close(fd);
	/* Say where and by whom, so the user can find and stop it. */
	if (asprintf(&path, "%s/mountpoint", dir) >= 0) {
		if (file_read_all(path, 1024, &where, &ignored) || buf_append(&where, "", 1))
			buf_reset(&where);
		free(path);
	}
	if (asprintf(&path, "%s/mount.pid", dir) >= 0) {
		if (file_read_all(path, 32, &pid, &ignored) || buf_append(&pid, "", 1))
			buf_reset(&pid);
		free(path);
	}
	if (where.len > 1 && pid.len > 1)
		err_set(err, EBUSY, "disk %s is in use: mounted at %s by process %.*s", dir,
		        (char *)where.data, (int)strcspn((char *)pid.data, "\n"), (char *)pid.data);
	else
		err_set(err, EBUSY, "disk %s is in use (by a mount, a VM, an update or a push)",
		        dir);
	buf_free(&where);
	buf_free(&pid);
	return -1;
}
