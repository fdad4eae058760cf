/* SPDX-License-Identifier: MIT */
/*
 * circ checkout, log, lease and create: a user's disk taken from the server
 * under a lease, its history, its holder, and a blank disk to begin with.
 */
#include "vdisk/migrate.h"

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "util/file.h"
#include "blockfs/objects.h"
#include "vdisk/overlay.h"
#include "vdisk/remote.h"

#define CAS_TRIES 5

int migrate_save_token(const char *dir, const char *token, struct circ_err *err);

struct checkout {
	const char *state, *disk;
	const struct checkout_options *o;
	struct checkout_result *res;
	char *dir;
	bool exists; /* the local disk is there already */
	struct disk_conf conf;
	struct disk_secrets sec;
	struct remote r;
	struct ukey *key;
	struct user_head head;
	char etag[96];
	char token[HEAD_TOKEN_HEX + 1];
	struct buf layer_file;
	struct ulayer layer;
	uint64_t seen;           /* the highest check-in accepted here before */
	struct user_head before; /* the head as it was before this checkout took the lease */
	bool took_lease;
};

static int check_base(struct checkout *c, struct circ_err *err);

static int fetch_layer(struct checkout *c, uint64_t n, bool check_head, struct circ_err *err);

int migrate_create_blank(const char *state, const char *disk, uint64_t size, uint32_t block_size,
                         struct circ_err *err)
{
	struct disk_conf c = { .blank = true, .size = size, .block_size = block_size };
	char *dir;
	int rc;

	if (!state_disk_name_valid(disk))
		return err_set(err, EINVAL, "invalid disk name '%s'", disk);
	if (!block_size_valid(block_size))
		return err_set(err, EINVAL,
		               "block size %" PRIu32 " is not a power of two from 4K to 4M",
		               block_size);
	if (size == 0 || size % OVERLAY_SECTOR || size / block_size >= ULAYER_MAX_ENTRIES * 64ull)
		return err_set(err, EINVAL,
		               "a disk's size is a positive multiple of 4K, at most "
		               "64 Mi blocks");
	dir = state_disk_dir(state, disk);
	if (!dir)
		return err_set(err, ENOMEM, "out of memory");
	if (access(dir, F_OK) == 0) {
		free(dir);
		return err_set(err, EEXIST, "disk '%s' exists already", disk);
	}
	rc = file_mkdirs(dir, 0755, err) || disk_conf_save(dir, &c, err);
	free(dir);
	return rc ? -1 : 0;
}

/*
 * The lease for this machine, taken by compare-and-swap (stolen only if
 * asked) once everything it leads to is checked: the head is no rollback
 * and the layer to check out opens with the user's key. A refusal changes
 * nothing on the server.
 */
static int take_lease(struct checkout *c, struct circ_err *err)
{
	for (int tries = 0; tries < CAS_TRIES; tries++) {
		struct user_head h;
		struct buf hb = { 0 };
		char path[REPO_PATH_MAX], since[64];
		bool exists;
		long status;
		int rc;

		if (remote_get_head(&c->r, c->disk, &c->head, c->etag, sizeof(c->etag), &exists,
		                    err))
			return -1;
		if (!exists)
			return err_set(err, ENOENT, "user %s has no disk '%s' on %s", c->r.user,
			               c->disk, c->r.url);
		if (c->head.version < c->seen)
			return err_set(err, EPERM,
			               "rollback refused: the server offers check-in %" PRIu64
			               " of '%s', older than check-in %" PRIu64 " seen before",
			               c->head.version, c->disk, c->seen);
		if (c->o->version > c->head.version)
			return err_set(err, ENOENT,
			               "disk '%s' has no check-in %" PRIu64
			               " (the newest is %" PRIu64 ")",
			               c->disk, c->o->version, c->head.version);
		if (fetch_layer(c, c->o->version ? c->o->version : c->head.version,
		                !c->o->version || c->o->version == c->head.version, err) ||
		    check_base(c, err))
			return -1;
		if (c->head.held && strcmp(c->head.machine, c->r.machine) != 0) {
			time_t t = (time_t)c->head.since;

			strftime(since, sizeof(since), "%Y-%m-%d %H:%M:%S UTC", gmtime(&t));
			if (!c->o->steal)
				return err_set(
				    err, EBUSY,
				    "disk '%s' is checked out on %s (machine %.8s) since %s: "
				    "check it in there (circ push), or take it with --steal",
				    c->disk, c->head.host, c->head.machine, since);
			snprintf(c->res->stolen_from, sizeof(c->res->stolen_from), "%s",
			         c->head.host);
		}
		h = c->head;
		h.held = true;
		memcpy(h.machine, c->r.machine, sizeof(h.machine));
		memcpy(h.host, c->r.host, sizeof(h.host));
		h.since = (uint64_t)time(NULL);
		if (remote_new_token(h.token, err) || head_encode(&h, &hb, err))
			return -1;
		repo_user_head_path(c->r.user, c->disk, path);
		rc = remote_put(&c->r, path, hb.data, hb.len, c->etag, false, NULL, &status, err);
		buf_free(&hb);
		if (rc)
			return rc;
		if (status == 200) {
			memcpy(c->token, h.token, sizeof(c->token));
			c->before = c->head;
			c->took_lease = true;
			c->head = h;
			/* The head changed: its ETag with it. Read it back for a later CAS. */
			return remote_get_head(&c->r, c->disk, &c->head, c->etag, sizeof(c->etag),
			                       &exists, err);
		}
		if (status != 412)
			return remote_status_error(&c->r, status, "take the lease", err);
	}
	return err_set(err, EAGAIN, "disk '%s''s head kept changing: try again", c->disk);
}

static int fetch_layer(struct checkout *c, uint64_t n, bool check_head, struct circ_err *err)
{
	char path[REPO_PATH_MAX];
	uint8_t sha[32];

	repo_user_layer_path(c->r.user, c->disk, n, path);
	ulayer_release(&c->layer);
	if (remote_get(&c->r, path, REPO_USER_LAYER_MAX, &c->layer_file, err))
		return -1;
	SHA256(c->layer_file.data, c->layer_file.len, sha);
	if (check_head && memcmp(sha, c->head.layer_sha256, 32) != 0)
		return err_set(err, EBADMSG, "%s/%s is not the layer the head names", c->r.url,
		               path);
	if (ulayer_decode(c->layer_file.data, c->layer_file.len, c->key, &c->layer, err))
		return err_prefix(err, "%s/%s", c->r.url, path);
	if (strcmp(c->layer.user, c->r.user) != 0 || strcmp(c->layer.disk, c->disk) != 0 ||
	    c->layer.version != n)
		return err_set(err, EBADMSG, "%s/%s is another disk's or version's layer", c->r.url,
		               path);
	return 0;
}

/*
 * Brings check-in N back as a new check-in on top of the head: history is
 * never rewritten. Needs the lease, which the caller holds.
 */
static int restore_version(struct checkout *c, uint64_t n, struct circ_err *err)
{
	uint64_t head_version = c->head.version;
	char path[REPO_PATH_MAX];
	struct user_head h = c->head;
	struct buf hb = { 0 };
	long status;
	int rc;

	if (n == head_version)
		return 0; /* fetched and checked with the lease */
	c->layer.version = head_version + 1;
	c->layer.parent = head_version;
	memcpy(c->layer.parent_sha256, c->head.layer_sha256, 32);
	c->layer.created = (uint64_t)time(NULL);
	memcpy(c->layer.machine, c->r.machine, sizeof(c->layer.machine));
	memcpy(c->layer.host, c->r.host, sizeof(c->layer.host));
	snprintf(c->layer.origin_disk, sizeof(c->layer.origin_disk), "%s", c->disk);
	c->layer.origin_version = n;
	c->layer.bytes_uploaded = 0;
	if (ulayer_encode(&c->layer, c->key, &c->layer_file, err))
		return -1;
	repo_user_layer_path(c->r.user, c->disk, c->layer.version, path);
	rc = remote_put(&c->r, path, c->layer_file.data, c->layer_file.len, NULL, false, c->token,
	                &status, err);
	if (!rc && status != 201 && status != 200)
		return remote_status_error(&c->r, status, "upload the restored layer", err);
	h.version = c->layer.version;
	SHA256(c->layer_file.data, c->layer_file.len, h.layer_sha256);
	repo_user_head_path(c->r.user, c->disk, path);
	rc = rc || head_encode(&h, &hb, err) ||
	     remote_put(&c->r, path, hb.data, hb.len, c->etag, false, c->token, &status, err);
	buf_free(&hb);
	if (!rc && status != 200)
		rc = status == 409 || status == 412
		         ? err_set(err, EAGAIN,
		                   "disk '%s' changed on the server meanwhile: try again", c->disk)
		         : remote_status_error(&c->r, status, "commit the restored check-in", err);
	if (!rc) {
		bool exists;

		c->head = h;
		rc = remote_get_head(&c->r, c->disk, &c->head, c->etag, sizeof(c->etag), &exists,
		                     err);
	}
	return rc;
}

/* The publisher key for a new disk's base image: given, or pinned here; NULL if neither. */
static char *base_key(struct checkout *c)
{
	char *idir = state_image_dir(c->state, c->layer.base_image), *pinned = NULL;

	if (c->o->key_path) {
		free(idir);
		return strdup(c->o->key_path);
	}
	if (idir && asprintf(&pinned, "%s/key.pub", idir) >= 0 && access(pinned, R_OK) != 0) {
		free(pinned);
		pinned = NULL;
	}
	free(idir);
	return pinned;
}

/*
 * Whether the layer can stand here, checked before the lease is taken: a
 * new disk over an image needs the publisher's key; an existing disk must
 * have the very base the layer was made over.
 */
static int check_base(struct checkout *c, struct circ_err *err)
{
	const struct ulayer *l = &c->layer;
	bool same;

	if (!c->exists) {
		char *key = l->base == ULAYER_BASE_IMAGE ? base_key(c) : NULL;

		if (l->base == ULAYER_BASE_IMAGE && !key)
			return err_set(
			    err, EINVAL,
			    "disk '%s' lies over image %s, whose key is not pinned here: "
			    "give its publisher's key with --key",
			    c->disk, l->base_image);
		free(key);
		return 0;
	}
	if (l->base == ULAYER_BASE_BLANK)
		same = c->conf.blank && c->conf.size == l->disk_size &&
		       c->conf.block_size == l->block_size;
	else
		same = !c->conf.blank && strcmp(c->conf.image, l->base_image) == 0 &&
		       c->conf.version == l->base_version;
	if (!same)
		return err_set(err, EINVAL,
		               "the check-in lies over another base than local disk '%s' (was its "
		               "base updated?): check it out under another name",
		               c->disk);
	return 0;
}

/* After a failure, the lease goes back to whoever held it: a failed checkout changes nothing. */
static void give_back_lease(struct checkout *c)
{
	struct user_head h = c->head;
	struct buf hb = { 0 };
	struct circ_err err;
	char path[REPO_PATH_MAX];
	long status;

	h.held = c->before.held;
	memcpy(h.machine, c->before.machine, sizeof(h.machine));
	memcpy(h.host, c->before.host, sizeof(h.host));
	memcpy(h.token, c->before.token, sizeof(h.token));
	h.since = c->before.since;
	repo_user_head_path(c->r.user, c->disk, path);
	/* On the way out of a failed check-out, whose first failure is the one reported. */
	if (head_encode(&h, &hb, &err) == 0)
		CIRC_BEST_EFFORT(
		    remote_put(&c->r, path, hb.data, hb.len, c->etag, false, NULL, &status, &err));
	buf_free(&hb);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* The local disk: its base (pulled at the layer's version if new), its layer, its lease. */
static int make_local(struct checkout *c, struct circ_err *err)
{
	const struct ulayer *l = &c->layer;
	uint64_t old = c->exists ? c->conf.layer : 0;
	char *path;
	int rc;

	if (!c->exists) {
		if (l->base == ULAYER_BASE_BLANK) {
			if (migrate_create_blank(c->state, c->disk, l->disk_size, l->block_size,
			                         err))
				return -1;
		} else {
			char *pinned = NULL, *idir = state_image_dir(c->state, l->base_image);
			const char *key = c->o->key_path, *urls[1] = { c->r.url };
			uint64_t v;

			if (!key && idir && asprintf(&pinned, "%s/key.pub", idir) >= 0 &&
			    access(pinned, R_OK) == 0)
				key = pinned;
			free(idir);
			rc =
			    key ? state_pull_at(c->state, c->disk, urls, 1, l->base_image, key,
			                        c->o->net, l->base_version, l->base_manifest_sha256,
			                        &v, err)
			        : err_set(
			              err, EINVAL,
			              "disk '%s' lies over image %s, whose key is not pinned here: "
			              "give its publisher's key with --key",
			              c->disk, l->base_image);
			free(pinned);
			if (rc)
				return -1;
		}
		disk_conf_release(&c->conf);
		if (disk_conf_load(c->dir, &c->conf, err))
			return -1;
		c->conf.remote = strdup(c->r.url);
		if (!c->conf.remote)
			return err_set(err, ENOMEM, "out of memory");
		snprintf(c->conf.user, sizeof(c->conf.user), "%s", c->r.user);
		snprintf(c->conf.remote_disk, sizeof(c->conf.remote_disk), "%s", c->disk);
		c->res->created = true;
	} else if (l->base == ULAYER_BASE_BLANK
	               ? !c->conf.blank || c->conf.size != l->disk_size
	               : c->conf.blank || strcmp(c->conf.image, l->base_image) != 0 ||
	                     c->conf.version != l->base_version) {
		return err_set(err, EINVAL,
		               "the check-in lies over another base than local disk '%s' (was its "
		               "base updated?): check it out under another name",
		               c->disk);
	}
	path = state_layer_path(c->dir, l->version);
	if (!path)
		return err_set(err, ENOMEM, "out of memory");
	rc = file_write_atomic(path, c->layer_file.data, c->layer_file.len, 0644, err);
	free(path);
	ukey_export(c->key, c->sec.master);
	if (rc || disk_secrets_save(c->dir, &c->sec, err))
		return -1;
	c->conf.layer = l->version;
	if (disk_conf_save(c->dir, &c->conf, err) || migrate_save_token(c->dir, c->token, err) ||
	    remote_seen_raise(c->state, c->r.user, c->disk, c->head.version, err))
		return -1;
	if (old && old != l->version && (path = state_layer_path(c->dir, old))) {
		unlink(path);
		free(path);
	}
	return 0;
}

/* An existing local disk can take a new check-in only if it holds no unpushed writes. */
static int check_existing(struct checkout *c, int *lockfd, struct circ_err *err)
{
	struct overlay *ov = NULL;
	uint64_t changed;
	uint64_t size;

	if (disk_conf_load(c->dir, &c->conf, err))
		return -1;
	if (!c->conf.remote || strcmp(c->conf.remote, c->r.url) != 0 ||
	    strcmp(c->conf.user, c->r.user) != 0 || strcmp(c->conf.remote_disk, c->disk) != 0)
		return err_set(err, EEXIST, "a local disk '%s' exists that is not %s's disk at %s",
		               c->disk, c->r.user, c->r.url);
	*lockfd = state_lock_disk(c->dir, err);
	if (*lockfd < 0)
		return -1;
	size = c->conf.blank ? c->conf.size : 0;
	if (!c->conf.blank) {
		struct key *pub = NULL;
		struct manifest m;

		if (state_load_pinned_key(c->state, c->conf.image, &pub, err) ||
		    state_load_disk_manifest(c->dir, pub, &c->conf, &m, err)) {
			key_free(pub);
			return -1;
		}
		size = m.image_size;
		manifest_release(&m);
		key_free(pub);
	}
	if (overlay_open(c->dir, size, &ov, err))
		return -1;
	changed = overlay_changed_sectors(ov);
	overlay_close(ov);
	if (changed)
		return err_set(err, EBUSY,
		               "local disk '%s' has %" PRIu64 " KiB of writes not checked in: "
		               "circ push them first",
		               c->disk, changed * OVERLAY_SECTOR / 1024);
	return 0;
}

int migrate_checkout(const char *state, const char *disk, const struct checkout_options *o,
                     struct checkout_result *res, struct circ_err *err)
{
	struct checkout c = { .state = state, .disk = disk, .o = o, .res = res };
	bool have_secrets = false;
	int lockfd = -1, rc = -1;

	memset(res, 0, sizeof(*res));
	if (!state_disk_name_valid(disk) || !repo_user_disk_name_valid(disk))
		return err_set(err, EINVAL, "invalid disk name '%s'", disk);
	c.dir = state_disk_dir(state, disk);
	if (!c.dir)
		return err_set(err, ENOMEM, "out of memory");
	c.exists = access(c.dir, F_OK) == 0;
	if (c.exists)
		have_secrets = disk_secrets_load(c.dir, &c.sec, err) == 0;
	if ((!have_secrets || o->prompt.password_given) &&
	    o->prompt.password(o->prompt.ctx, o->user, c.sec.password, sizeof(c.sec.password), err))
		goto out;
	if (remote_open(&c.r, state, o->url, o->user, c.sec.password, o->net, err))
		goto out;
	if (c.exists && check_existing(&c, &lockfd, err))
		goto out;
	if (have_secrets ? ukey_import(c.sec.master, &c.key, err)
	                 : remote_unlock_key(&c.r, &o->prompt, false, &c.key, err))
		goto out;
	if (remote_seen_load(state, o->user, disk, &c.seen, err))
		goto out;
	if (take_lease(&c, err))
		goto out;
	if (restore_version(&c, o->version ? o->version : c.head.version, err) ||
	    make_local(&c, err))
		goto out;
	res->version = c.layer.version;
	rc = 0;
out:
	if (rc && c.took_lease)
		give_back_lease(&c);
	if (rc && !c.exists && c.dir && access(c.dir, F_OK) == 0)
		nftw(c.dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS); /* no half-made disk */
	if (lockfd >= 0)
		close(lockfd);
	remote_close(&c.r);
	ukey_free(c.key);
	ulayer_release(&c.layer);
	buf_free(&c.layer_file);
	disk_conf_release(&c.conf);
	disk_secrets_wipe(&c.sec);
	free(c.dir);
	return rc;
}

/* The disk's server, user and credentials, from its local state. */
static int open_local_remote(const char *state, const char *disk, const struct state_net *net,
                             struct remote *r, struct disk_conf *conf, struct ukey **key,
                             struct circ_err *err)
{
	struct disk_secrets sec;
	char *dir = state_disk_dir(state, disk);
	int rc;

	if (!dir)
		return err_set(err, ENOMEM, "out of memory");
	if (!state_disk_name_valid(disk)) {
		free(dir);
		return err_set(err, EINVAL, "invalid disk name '%s'", disk);
	}
	rc = disk_conf_load(dir, conf, err);
	if (!rc && !conf->remote)
		rc = err_set(err, ENOENT,
		             "disk '%s' was never checked in (circ push --to URL --user USER)",
		             disk);
	if (!rc)
		rc = disk_secrets_load(dir, &sec, err);
	free(dir);
	if (rc)
		return -1;
	rc = remote_open(r, state, conf->remote, conf->user, sec.password, net, err) ||
	     (key && ukey_import(sec.master, key, err));
	disk_secrets_wipe(&sec);
	return rc ? -1 : 0;
}

int migrate_lease(const char *state, const char *disk, const struct state_net *net,
                  struct user_head *head, struct circ_err *err)
{
	struct disk_conf conf = { 0 };
	struct remote r = { 0 };
	char etag[96];
	bool exists;
	int rc;

	rc = open_local_remote(state, disk, net, &r, &conf, NULL, err) ||
	     remote_get_head(&r, conf.remote_disk, head, etag, sizeof(etag), &exists, err);
	if (!rc && !exists)
		rc = err_set(err, ENOENT, "%s has no disk '%s' of %s", conf.remote,
		             conf.remote_disk, conf.user);
	remote_close(&r);
	disk_conf_release(&conf);
	return rc ? -1 : 0;
}

int migrate_log(const char *state, const char *disk, const struct state_net *net,
                int (*fn)(void *ctx, const struct migrate_log_entry *e), void *ctx,
                struct circ_err *err)
{
	struct disk_conf conf = { 0 };
	struct remote r = { 0 };
	struct ukey *key = NULL;
	struct user_head head;
	struct buf b = { 0 };
	char etag[96];
	bool exists;
	int rc;

	rc = open_local_remote(state, disk, net, &r, &conf, &key, err) ||
	     remote_get_head(&r, conf.remote_disk, &head, etag, sizeof(etag), &exists, err);
	if (!rc && !exists)
		rc = err_set(err, ENOENT, "%s has no disk '%s' of %s", conf.remote,
		             conf.remote_disk, conf.user);
	for (uint64_t n = rc ? 0 : head.version; n >= 1 && !rc; n--) {
		struct migrate_log_entry e = { .version = n };
		char path[REPO_PATH_MAX];
		struct ulayer l;

		repo_user_layer_path(conf.user, conf.remote_disk, n, path);
		rc = remote_get(&r, path, REPO_USER_LAYER_MAX, &b, err);
		if (!rc && ulayer_decode(b.data, b.len, key, &l, err))
			rc = err_prefix(err, "%s", path);
		if (rc)
			break;
		e.created = l.created;
		memcpy(e.host, l.host, sizeof(e.host));
		memcpy(e.machine, l.machine, sizeof(e.machine));
		e.bytes_uploaded = l.bytes_uploaded;
		e.blocks = l.n_entries;
		memcpy(e.origin_disk, l.origin_disk, sizeof(e.origin_disk));
		e.origin_version = l.origin_version;
		rc = l.version != n || strcmp(l.disk, conf.remote_disk) != 0
		         ? err_set(err, EBADMSG, "%s is another layer's", path)
		         : fn(ctx, &e);
		ulayer_release(&l);
	}
	buf_free(&b);
	ukey_free(key);
	remote_close(&r);
	disk_conf_release(&conf);
	return rc ? -1 : 0;
}
