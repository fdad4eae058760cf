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

#define CONF_MAX_LEN   8192
#define STATS_MAX_LEN  4096
#define URL_MAX_LEN    2048
#define UPDATE_THREADS 8

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

static char *image_dir(const char *state, const char *name)
{
	char *p;

	return asprintf(&p, "%s/images/%s", state, name) < 0 ? NULL : p;
}

/* One file per version: disk.conf's version, written after it, picks the base. */
static char *manifest_file(const char *disk_dir, uint64_t version)
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

static bool url_valid(const char *u)
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
		} else if (strcmp(line, "url") == 0 && url_valid(val) &&
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
	char *dir = image_dir(state, name), *path = NULL;
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

static int seen_load(const char *state, const char *name, uint64_t *seen)
{
	char *dir = image_dir(state, name), *path = NULL;
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
static int seen_raise(const char *state, const char *name, uint64_t version, struct circ_err *err)
{
	char *dir = image_dir(state, name), *path = NULL, text[32];
	uint64_t seen;
	int rc;

	if (!dir || asprintf(&path, "%s/seen", dir) < 0) {
		free(dir);
		return err_set(err, ENOMEM, "out of memory");
	}
	seen_load(state, name, &seen);
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
	path = manifest_file(disk_dir, c->version);
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
static int pin_key(const char *state, const char *name, const struct key *pub, bool *pinned_now,
                   struct circ_err *err)
{
	char *dir = image_dir(state, name), *path = NULL;
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

static int write_manifest(const char *disk_dir, uint64_t version, const struct buf *raw,
                          struct circ_err *err)
{
	char *path = manifest_file(disk_dir, version);
	int rc;

	if (!path)
		return err_set(err, ENOMEM, "out of memory");
	rc = file_write_atomic(path, raw->data, raw->len, 0644, err);
	free(path);
	return rc;
}

int state_pull(const char *state, const char *disk, const char *const *urls, size_t n_urls,
               const char *name, const char *key_path, const struct state_net *net,
               uint64_t *version, struct circ_err *err)
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
		if (!url_valid(urls[i]))
			return err_set(err, EINVAL, "'%s' is not an http:// or https:// URL",
			               urls[i]);
	dir = state_disk_dir(state, disk);
	idir = image_dir(state, name);
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
	if (state_open_repo(&conf, net, &repo, err) ||
	    image_load_pointer(repo, pub, name, (uint64_t)time(NULL), &pt, err))
		goto out;
	seen_load(state, name, &seen);
	if (pt.version < seen) {
		err_set(err, EPERM,
		        "rollback refused: the server offers '%s' version %" PRIu64
		        ", older than version %" PRIu64 " seen before",
		        name, pt.version, seen);
		goto out;
	}
	if (image_load_manifest(repo, pub, &pt, 0, &m, &raw, err))
		goto out;
	/* Everything checked: now store. */
	conf.version = m.version;
	if (file_mkdirs(dir, 0755, err) || file_mkdirs(idir, 0755, err) ||
	    write_manifest(dir, m.version, &raw, err) || disk_conf_save(dir, &conf, err))
		goto out;
	if (pin_now) {
		if (asprintf(&keyfile, "%s/key.pub", idir) < 0) {
			err_set(err, ENOMEM, "out of memory");
			goto out;
		}
		if (key_save_public(pub, keyfile, err))
			goto out;
	}
	if (seen_raise(state, name, m.version, err))
		goto out;
	*version = m.version;
	rc = 0;
out:
	if (rc && dir && access(dir, F_OK) == 0 && conf.version) {
		/* A half-made disk is worse than none: remove what this pull wrote. */
		char *f;

		f = manifest_file(dir, conf.version);
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

struct update_job {
	struct store *store;
	const struct manifest *old, *new;
	atomic_uint next;
	atomic_uint failed;
	pthread_mutex_t lock;
	struct circ_err err;
	uint64_t changed;
};

static bool block_changed(const struct update_job *j, uint32_t i)
{
	const struct block_id *id = &j->new->blocks[i];

	if (block_id_is_zero(id))
		return false;
	if (i < j->old->n_blocks &&
	    j->old->block_size == j->new->block_size &&block_id_equal(id, &j->old->blocks[i]))
		return false;
	return true;
}

static void *update_worker(void *arg)
{
	struct update_job *j = arg;
	struct circ_err err;
	unsigned i;

	while ((i = atomic_fetch_add(&j->next, 1)) < j->new->n_blocks && !atomic_load(&j->failed)) {
		if (!block_changed(j, i))
			continue;
		if (store_ensure(j->store, &j->new->blocks[i], j->new->block_size, &err)) {
			pthread_mutex_lock(&j->lock);
			if (!atomic_exchange(&j->failed, 1))
				j->err = err;
			pthread_mutex_unlock(&j->lock);
		}
	}
	return NULL;
}

static int fetch_changed(struct store *store, const struct manifest *old,
                         const struct manifest *new, uint64_t *changed, struct circ_err *err)
{
	struct update_job j = { .store = store, .old = old, .new = new };
	pthread_t tids[UPDATE_THREADS];
	unsigned started = 0;

	pthread_mutex_init(&j.lock, NULL);
	for (; started < UPDATE_THREADS; started++)
		if (pthread_create(&tids[started], NULL, update_worker, &j))
			break;
	if (!started)
		update_worker(&j);
	for (unsigned i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	pthread_mutex_destroy(&j.lock);
	*changed = 0;
	for (uint32_t i = 0; i < new->n_blocks; i++)
		*changed += block_changed(&j, i);
	if (atomic_load(&j.failed)) {
		*err = j.err;
		return -1;
	}
	return 0;
}

static int remove_overlay(const char *dir, struct circ_err *err)
{
	static const char *const files[] = { "overlay.map", "overlay.log", "overlay.data" };

	for (size_t i = 0; i < 3; i++) {
		char *p;

		if (asprintf(&p, "%s/%s", dir, files[i]) < 0)
			return err_set(err, ENOMEM, "out of memory");
		if (unlink(p) && errno != ENOENT) {
			err_sys(err, errno, "removing %s", p);
			free(p);
			return -1;
		}
		free(p);
	}
	return 0;
}

int state_update(const char *state, const char *disk, enum update_overlay mode,
                 const struct state_net *net, uint64_t cache_size, struct update_result *res,
                 struct circ_err *err)
{
	struct manifest old = { 0 }, new = { 0 };
	struct disk_conf conf = { 0 };
	struct store_stats ss = { 0 };
	struct disk_stats ds;
	struct overlay *ov = NULL;
	struct buf raw = { 0 };
	struct repo *repo = NULL;
	struct cache *cache = NULL;
	struct store *store = NULL;
	struct key *pub = NULL;
	struct pointer pt;
	char *dir = state_disk_dir(state, disk), *cdir = state_cache_dir(state);
	uint64_t seen, changed_sectors = 0;
	char *old_manifest;
	int lockfd = -1, rc = -1;

	memset(res, 0, sizeof(*res));
	if (!dir || !cdir) {
		err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	if (!state_disk_name_valid(disk)) {
		err_set(err, EINVAL, "invalid disk name '%s'", disk);
		goto out;
	}
	if (disk_conf_load(dir, &conf, err))
		goto out;
	lockfd = state_lock_disk(dir, err);
	if (lockfd < 0 || state_load_pinned_key(state, conf.image, &pub, err) ||
	    state_load_disk_manifest(dir, pub, &conf, &old, err))
		goto out;
	if (overlay_open(dir, old.image_size, &ov, err))
		goto out;
	changed_sectors = overlay_changed_sectors(ov);
	if (changed_sectors && mode == UPDATE_REFUSE_OVERLAY) {
		err_set(err, EBUSY,
		        "disk '%s' has %" PRIu64
		        " KiB of local writes: give --keep-overlay to keep "
		        "them on the new version or --discard-overlay to drop them",
		        disk, changed_sectors * OVERLAY_SECTOR / 1024);
		goto out;
	}
	res->from = res->to = conf.version;
	if (state_open_repo(&conf, net, &repo, err) ||
	    image_load_pointer(repo, pub, conf.image, (uint64_t)time(NULL), &pt, err))
		goto out;
	seen_load(state, conf.image, &seen);
	if (pt.version < conf.version || pt.version < seen) {
		err_set(err, EPERM,
		        "rollback refused: the server offers '%s' version %" PRIu64
		        ", older than version %" PRIu64 " seen before",
		        conf.image, pt.version, seen > conf.version ? seen : conf.version);
		goto out;
	}
	if (pt.version == conf.version) {
		rc = 0; /* already the newest */
		goto out;
	}
	if (image_load_manifest(repo, pub, &pt, 0, &new, &raw, err))
		goto out;
	if (new.image_size != old.image_size && changed_sectors &&mode == UPDATE_KEEP_OVERLAY) {
		err_set(err, EINVAL,
		        "version %" PRIu64 " changes the disk's size: its local writes cannot be "
		        "kept (use --discard-overlay)",
		        new.version);
		goto out;
	}
	if (cache_open(cdir, cache_size ? cache_size : STATE_DEFAULT_CACHE_SIZE, &cache, err) ||
	    store_new(repo, cache, 0, &store, err) ||
	    fetch_changed(store, &old, &new, &res->changed_blocks, err))
		goto out;
	store_get_stats(store, &ss);
	res->fetched_bytes = ss.fetched_bytes;
	res->fetched_blocks = ss.fetched_blocks;
	res->to = new.version;

	/* Every new block is cached: switch the base, overlay first. */
	if (mode == UPDATE_DISCARD_OVERLAY || new.image_size != old.image_size) {
		overlay_close(ov);
		ov = NULL;
		if (remove_overlay(dir, err))
			goto out;
	}
	conf.version = new.version;
	if (write_manifest(dir, new.version, &raw, err) || disk_conf_save(dir, &conf, err) ||
	    seen_raise(state, conf.image, new.version, err))
		goto out;
	old_manifest = manifest_file(dir, old.version);
	if (old_manifest)
		unlink(old_manifest);
	free(old_manifest);
	disk_stats_load(dir, &ds);
	ds.fetched_bytes += ss.fetched_bytes;
	ds.fetched_blocks += ss.fetched_blocks;
	ds.requests += ss.requests;
	disk_stats_save(dir, &ds);
	rc = 0;
out:
	store_free(store);
	cache_close(cache);
	overlay_close(ov);
	repo_close(repo);
	key_free(pub);
	manifest_release(&old);
	manifest_release(&new);
	buf_free(&raw);
	disk_conf_release(&conf);
	if (lockfd >= 0)
		close(lockfd);
	free(dir);
	free(cdir);
	return rc;
}
