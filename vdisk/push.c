/* SPDX-License-Identifier: MIT */
/*
 * circ push: a disk's blocks that differ from its base become a new user
 * layer on the server. Order makes it safe to kill at any moment: blocks
 * first (each named by its keyed hash, skipped when the server has it),
 * then the layer (not visible until the head names it), then the head by
 * compare-and-swap, then the local switch. A re-run finds what is done.
 */
#include "vdisk/migrate.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "util/file.h"
#include "blockfs/objects.h"
#include "vdisk/disk.h"
#include "vdisk/remote.h"

#define MAX_BRANCHES 99

struct push {
	const char *state, *disk;
	const struct push_options *o;
	struct push_result *res;
	struct vdisk *vd;
	struct disk_conf conf; /* the disk's, with this push's remote filled in */
	struct disk_secrets sec;
	bool have_secrets; /* the disk's secrets file, loaded */
	bool save_secrets; /* what it would hold has changed */
	struct remote r;
	struct ukey *key;
	struct block_encoder *enc;
	struct ulayer next; /* the check-in being made */
	struct buf layer_file;
	uint8_t layer_sha[32];
	struct user_head head;
	char etag[96];
	bool head_exists;
	char token[HEAD_TOKEN_HEX + 1]; /* the lease this machine holds, or "" */
};

static int read_token(const char *dir, char token[HEAD_TOKEN_HEX + 1])
{
	struct buf b = { 0 };
	struct circ_err err;
	char *path;

	token[0] = '\0';
	if (asprintf(&path, "%s/lease", dir) < 0)
		return -1;
	if (!file_read_all(path, 64, &b, &err) && b.len >= HEAD_TOKEN_HEX) {
		memcpy(token, b.data, HEAD_TOKEN_HEX);
		token[HEAD_TOKEN_HEX] = '\0';
	}
	buf_free(&b);
	free(path);
	return 0;
}

int migrate_save_token(const char *dir, const char *token, struct circ_err *err);
int migrate_save_token(const char *dir, const char *token, struct circ_err *err)
{
	char *path, line[HEAD_TOKEN_HEX + 2];
	int rc = 0;

	if (asprintf(&path, "%s/lease", dir) < 0)
		return err_set(err, ENOMEM, "out of memory");
	if (token && token[0]) {
		snprintf(line, sizeof(line), "%s\n", token);
		rc = file_write_atomic(path, line, strlen(line), 0644, err);
	} else if (unlink(path) && errno != ENOENT) {
		rc = err_sys(err, errno, "removing %s", path);
	}
	free(path);
	return rc;
}

/* The base of the layer being made: the disk's base, named and hashed. */
static int describe_base(struct push *p, struct circ_err *err)
{
	struct buf b = { 0 };
	char *path;

	p->next.disk_size = vdisk_size(p->vd);
	p->next.block_size = vdisk_block_size(p->vd);
	if (p->conf.blank) {
		p->next.base = ULAYER_BASE_BLANK;
		return 0;
	}
	p->next.base = ULAYER_BASE_IMAGE;
	snprintf(p->next.base_image, sizeof(p->next.base_image), "%s", p->conf.image);
	p->next.base_version = p->conf.version;
	path = state_manifest_path(vdisk_dir(p->vd), p->conf.version);
	if (!path)
		return err_set(err, ENOMEM, "out of memory");
	if (file_read_all(path, REPO_MANIFEST_MAX, &b, err)) {
		free(path);
		return -1;
	}
	SHA256(b.data, b.len, p->next.base_manifest_sha256);
	buf_free(&b);
	free(path);
	return 0;
}

/*
 * Whether the server's copy of a block, which differs from ours in length or
 * content ETag, is still the block: sealed under its name by this key (a
 * machine with another libzstd compresses it to other bytes). Only then is
 * it left alone.
 */
static bool server_copy_opens(struct push *p, const char *path, const struct block_id *name)
{
	const struct repo_object_kind *kind = repo_object_kind(REPO_OBJ_USER_BLOCK);
	struct buf body = { 0 }, comp = { 0 };
	struct circ_err why;
	bool ok;

	ok = remote_get(&p->r, path, kind->max_len, &body, &why) == 0 &&
	     ukey_block_open(p->key, name, body.data, body.len, &comp, &why) == 0;
	buf_free(&body);
	buf_free(&comp);
	return ok;
}

/*
 * Uploads one block unless the server holds it: sealed, under its keyed
 * name. A copy of the same length and content ETag is ours. Any other copy
 * is fetched and opened: one sealed under the name stays; one that does not
 * open is damaged (a power cut's short or torn write): a short one is
 * replaced, while one of the same length the server never rewrites (409),
 * and the push stops saying so.
 */
static int upload_block(struct push *p, const struct block_id *name, const void *data,
                        struct circ_err *err)
{
	struct buf comp = { 0 }, sealed = { 0 };
	char path[REPO_PATH_MAX], etag[REPO_ETAG_MAX], want[REPO_ETAG_MAX];
	int64_t length = -1;
	bool exists = false, present = false;
	long status;
	int rc;

	repo_user_block_path(p->r.user, name, path);
	rc = block_encode(p->enc, data, p->next.block_size, &comp, err) ||
	     ukey_block_seal(p->key, name, comp.data, comp.len, &sealed, err) ||
	     remote_exists(&p->r, path, &exists, &length, etag, err);
	if (!rc && exists) {
		repo_content_etag(sealed.data, sealed.len, want);
		present = (length == (int64_t)sealed.len && strcmp(etag, want) == 0) ||
		          server_copy_opens(p, path, name);
	}
	if (!rc && !present) {
		rc = remote_put(&p->r, path, sealed.data, sealed.len, NULL, false, NULL, &status,
		                err);
		if (!rc && status == 409)
			rc = err_set(err, EIO,
			             "%s holds a damaged copy of block %s (other bytes under its "
			             "name) and never rewrites a block: nothing was committed; the "
			             "server's operator can remove that file, then run the same "
			             "command again",
			             p->r.url, path);
		else if (!rc && status != 201 && status != 200)
			rc = remote_status_error(&p->r, status, "uploading blocks", err);
		if (!rc) {
			p->res->uploaded_blocks++;
			p->res->uploaded_bytes += sealed.len;
		}
	}
	buf_free(&comp);
	buf_free(&sealed);
	return rc ? -1 : 0;
}

/*
 * Builds the new map: the old layer's entries where the overlay did not
 * touch a block; elsewhere the block as the disk reads it now, unless it
 * equals the base. New blocks are uploaded on the way.
 */
static int build_map(struct push *p, bool *changed, struct circ_err *err)
{
	const struct ulayer *old = vdisk_user_layer(p->vd);
	uint64_t n = vdisk_block_count(p->vd), size = vdisk_size(p->vd);
	uint32_t bs = vdisk_block_size(p->vd), oi = 0;
	uint8_t *block = malloc(bs);
	int rc = 0;

	*changed = false;
	p->next.entries =
	    calloc(n < ULAYER_MAX_ENTRIES ? n : ULAYER_MAX_ENTRIES, sizeof(struct ulayer_entry));
	if (!block || !p->next.entries) {
		free(block);
		return err_set(err, ENOMEM, "out of memory");
	}
	for (uint64_t i = 0; i < n && !rc; i++) {
		const struct ulayer_entry *was = NULL;
		struct ulayer_entry e = { .index = (uint32_t)i };
		struct block_id base;
		uint64_t len = size - i * bs < bs ? size - i * bs : bs;

		if (p->o->progress && i % 64 == 0)
			p->o->progress(p->o->progress_ctx, i * bs, size);

		while (old && oi < old->n_entries && old->entries[oi].index < i)
			oi++;
		if (old && oi < old->n_entries && old->entries[oi].index == i)
			was = &old->entries[oi];
		if (!vdisk_overlay_touches(p->vd, i)) {
			if (was && p->next.n_entries >= ULAYER_MAX_ENTRIES) {
				rc = err_set(err, EFBIG, "more than %u blocks differ from the base",
				             ULAYER_MAX_ENTRIES);
				break;
			}
			if (was)
				p->next.entries[p->next.n_entries++] = *was;
			continue;
		}
		memset(block, 0, bs);
		rc = vdisk_read(p->vd, block, len, i * bs);
		if (rc) {
			err_set(err, -rc, "reading block %" PRIu64 " of the disk", i);
			break;
		}
		vdisk_base_block(p->vd, i, &base);
		if (block_is_zero(block, bs)) {
			if (block_id_is_zero(&base))
				goto differs_not; /* zeros over zeros: nothing to keep */
		} else {
			block_id_compute(&e.id, block, bs);
			if (block_id_equal(&e.id, &base))
				goto differs_not;
			ukey_block_name(p->key, block, bs, &e.name);
		}
		if (p->next.n_entries >= ULAYER_MAX_ENTRIES) {
			rc = err_set(err, EFBIG, "more than %u blocks differ from the base",
			             ULAYER_MAX_ENTRIES);
			break;
		}
		p->next.entries[p->next.n_entries++] = e;
		p->res->changed_blocks++;
		if (!was || !block_id_equal(&was->name, &e.name))
			*changed = true;
		/* Unchanged since the last check-in: on the server already, no need to ask. */
		if (!block_id_is_zero(&e.name) && !(was && block_id_equal(&was->name, &e.name))) {
			rc = upload_block(p, &e.name, block, err);
			vdisk_cache_block(p->vd, &e.id, block);
		}
		continue;
	differs_not:
		if (was)
			*changed = true;
	}
	free(block);
	if (!rc && p->o->progress)
		p->o->progress(p->o->progress_ctx, size, size);
	return rc;
}

static int new_head(struct push *p, bool hold, struct user_head *h, struct circ_err *err)
{
	memset(h, 0, sizeof(*h));
	h->version = p->next.version;
	memcpy(h->layer_sha256, p->layer_sha, 32);
	if (!hold)
		return 0;
	h->held = true;
	memcpy(h->machine, p->r.machine, sizeof(h->machine));
	memcpy(h->host, p->r.host, sizeof(h->host));
	h->since = (uint64_t)time(NULL);
	if (!p->token[0] && remote_new_token(p->token, err))
		return -1;
	memcpy(h->token, p->token, sizeof(h->token));
	return 0;
}

static char *pending_path(struct push *p)
{
	char *path;

	return asprintf(&path, "%s/push.pending", vdisk_dir(p->vd)) < 0 ? NULL : path;
}

/*
 * The layer about to be committed, kept until the disk stands on it: if the
 * head's compare-and-swap lands and push dies before switching the disk,
 * the re-run recognises the head as its own instead of as someone else's.
 */
static int save_pending(struct push *p, struct circ_err *err)
{
	char *path = pending_path(p);
	int rc;

	if (!path)
		return err_set(err, ENOMEM, "out of memory");
	rc = file_write_atomic(path, p->layer_file.data, p->layer_file.len, 0644, err);
	free(path);
	return rc;
}

static void drop_pending(struct push *p)
{
	char *path = pending_path(p);

	if (path)
		unlink(path);
	free(path);
}

/* True (with the layer loaded) if the head names the check-in an earlier push left pending. */
static bool pending_landed(struct push *p)
{
	char *path = pending_path(p);
	struct circ_err err;
	uint8_t sha[32];
	bool landed = false;

	if (path && p->head_exists && p->head.version == p->conf.layer + 1 &&
	    file_read_all(path, REPO_USER_LAYER_MAX, &p->layer_file, &err) == 0) {
		SHA256(p->layer_file.data, p->layer_file.len, sha);
		landed = memcmp(sha, p->head.layer_sha256, 32) == 0;
	}
	free(path);
	return landed;
}

/* PUTs layer N and the head naming it. *won: the head now names this layer. */
static int commit(struct push *p, const char *disk, bool first, bool hold, bool *won,
                  struct circ_err *err)
{
	const char *lease = p->head_exists && p->head.held ? p->token : NULL;
	char path[REPO_PATH_MAX];
	struct user_head h;
	struct buf hb = { 0 };
	long status;
	int rc;

	*won = false;
	p->next.bytes_uploaded = p->res->uploaded_bytes;
	p->next.bytes_total = (vdisk_user_layer(p->vd) ? vdisk_user_layer(p->vd)->bytes_total : 0) +
	                      p->res->uploaded_bytes;
	snprintf(p->next.user, sizeof(p->next.user), "%s", p->r.user);
	snprintf(p->next.disk, sizeof(p->next.disk), "%s", disk);
	if (ulayer_encode(&p->next, p->key, &p->layer_file, err))
		return -1;
	SHA256(p->layer_file.data, p->layer_file.len, p->layer_sha);
	repo_user_layer_path(p->r.user, disk, p->next.version, path);
	rc = remote_put(&p->r, path, p->layer_file.data, p->layer_file.len, NULL, false, lease,
	                &status, err);
	if (rc)
		return rc;
	if (status == 409)
		return 0; /* the lease moved on: not ours to commit */
	if (status != 201 && status != 200)
		return remote_status_error(&p->r, status, "uploading the layer", err);
	if (new_head(p, hold, &h, err) || head_encode(&h, &hb, err))
		return -1;
	/*
	 * The pending layer, and the lease's token if it is kept, are on disk
	 * before the head can name them: a crash after the CAS loses neither.
	 */
	if (strcmp(disk, p->conf.remote_disk) == 0 &&
	    (save_pending(p, err) || (hold && migrate_save_token(vdisk_dir(p->vd), p->token, err))))
		return -1;
	repo_user_head_path(p->r.user, disk, path);
	rc = remote_put(&p->r, path, hb.data, hb.len, first ? NULL : p->etag, first, lease, &status,
	                err);
	buf_free(&hb);
	if (rc)
		return rc;
	if (status == 200 || status == 201) {
		*won = true;
		return 0;
	}
	if (status == 409 || status == 412 || status == 428) {
		/* A lost answer to our own earlier try looks like this too: look. */
		struct user_head now;
		char etag[96];
		bool exists;

		if (remote_get_head(&p->r, disk, &now, etag, sizeof(etag), &exists, err))
			return -1;
		*won = exists && now.version == p->next.version &&
		       memcmp(now.layer_sha256, p->layer_sha, 32) == 0;
		return 0;
	}
	return remote_status_error(&p->r, status, "committing the check-in", err);
}

/*
 * A stale check-in is never lost: it becomes DISK.conflict-K, a disk of its
 * own over the same base (its blocks are uploaded already).
 */
/* A hash of the map being checked in: the same writes kept twice are one branch. */
static void map_hash(const struct push *p, char out[65])
{
	uint8_t sha[32];

	SHA256((const uint8_t *)p->next.entries, p->next.n_entries * sizeof(*p->next.entries), sha);
	for (size_t i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", sha[i]);
}

/* DISK/branched: "<map hash> <branch>" of the last branch this disk's writes were kept as. */
static bool kept_already(struct push *p, const char *hash, char *name, size_t n)
{
	char *path;
	struct buf b = { 0 };
	struct circ_err err;
	bool kept = false;

	if (asprintf(&path, "%s/branched", vdisk_dir(p->vd)) < 0)
		return false;
	if (file_read_all(path, 256, &b, &err) == 0 && buf_append(&b, "", 1) == 0 && b.len > 66 &&
	    memcmp(b.data, hash, 64) == 0 && b.data[64] == ' ') {
		char *end = strchr((char *)b.data + 65, '\n');

		if (end)
			*end = '\0';
		kept = repo_user_disk_name_valid((char *)b.data + 65);
		if (kept)
			snprintf(name, n, "%s", (char *)b.data + 65);
	}
	buf_free(&b);
	free(path);
	return kept;
}

static int keep_as_branch(struct push *p, const char *disk, const char *why, struct circ_err *err)
{
	uint64_t from = p->conf.layer;
	char hash[65], kept[REPO_NAME_MAX + 1];

	map_hash(p, hash);
	if (kept_already(p, hash, kept, sizeof(kept))) {
		memcpy(p->res->branch, kept, sizeof(kept));
		return err_set(
		    err, EAGAIN,
		    "%s; these writes are kept already as disk '%s': circ checkout %s %s "
		    "--user %s",
		    why, kept, p->r.url, kept, p->r.user);
	}

	p->next.version = 1;
	p->next.parent = 0;
	memset(p->next.parent_sha256, 0, 32);
	snprintf(p->next.origin_disk, sizeof(p->next.origin_disk), "%s", disk);
	p->next.origin_version = from;
	p->head_exists = false;
	for (int k = 1; k <= MAX_BRANCHES; k++) {
		char name[REPO_NAME_MAX + 16];
		struct user_head h;
		char etag[96];
		bool exists, won;

		snprintf(name, sizeof(name), "%s.conflict-%d", disk, k);
		if (!repo_user_disk_name_valid(name))
			return err_set(err, ENAMETOOLONG, "%s: no room for a branch name", why);
		if (remote_get_head(&p->r, name, &h, etag, sizeof(etag), &exists, err))
			return -1;
		if (exists)
			continue;
		if (commit(p, name, true, false, &won, err))
			return -1;
		if (!won)
			continue; /* another machine took this name meanwhile */
		memcpy(p->res->branch, name, strlen(name) + 1); /* valid: at most REPO_NAME_MAX */
		{
			char *path, line[65 + REPO_NAME_MAX + 16 + 2];

			snprintf(line, sizeof(line), "%s %s\n", hash, name);
			if (asprintf(&path, "%s/branched", vdisk_dir(p->vd)) >= 0) {
				/* Best effort: without it, a later push keeps another copy. */
				CIRC_BEST_EFFORT(
				    file_write_atomic(path, line, strlen(line), 0644, err));
				free(path);
			}
		}
		return err_set(
		    err, EAGAIN,
		    "%s; your check-in is kept as disk '%s': circ checkout %s %s --user %s", why,
		    name, p->r.url, name, p->r.user);
	}
	return err_set(err, EAGAIN, "%s, and %d conflict branches exist already", why,
	               MAX_BRANCHES);
}

/* Whether the head names the very layer this disk stands on, not another of its number. */
static bool same_layer(struct push *p)
{
	char *path = state_layer_path(vdisk_dir(p->vd), p->conf.layer);
	struct buf b = { 0 };
	struct circ_err err;
	uint8_t sha[32];
	bool same = false;

	if (path && file_read_all(path, REPO_USER_LAYER_MAX, &b, &err) == 0) {
		SHA256(b.data, b.len, sha);
		same = memcmp(sha, p->head.layer_sha256, 32) == 0;
	}
	buf_free(&b);
	free(path);
	return same;
}

/* The head moved past this machine's check-out: why, in words, or NULL if it did not. */
static const char *stale_reason(struct push *p, char *buf, size_t n)
{
	if (!p->head_exists)
		return p->conf.layer ? "the server has lost the disk's head" : NULL;
	if (p->head.version != p->conf.layer) {
		snprintf(buf, n, "disk %s was checked in from %s since (now version %" PRIu64 ")",
		         p->conf.remote_disk, p->head.held ? p->head.host : "another machine",
		         p->head.version);
		return buf;
	}
	if (p->head.held && strcmp(p->head.token, p->token) != 0) {
		snprintf(buf, n, "the lease of disk %s was taken by %s", p->conf.remote_disk,
		         p->head.host);
		return buf;
	}
	if (p->conf.layer && !same_layer(p)) {
		snprintf(buf, n,
		         "the server's check-in %" PRIu64 " of disk %s is not this machine's",
		         p->head.version, p->conf.remote_disk);
		return buf;
	}
	return NULL;
}

/* The check-in is on the server: the disk now stands on it (its writes are in the layer). */
static int switch_locally(struct push *p, bool hold, bool drop_overlay, struct circ_err *err)
{
	const char *dir = vdisk_dir(p->vd);
	uint64_t old = p->conf.layer;
	char *path = state_layer_path(dir, p->next.version);
	int rc;

	if (!path)
		return err_set(err, ENOMEM, "out of memory");
	rc = file_write_atomic(path, p->layer_file.data, p->layer_file.len, 0644, err);
	free(path);
	if (rc)
		return rc;
	if (p->save_secrets) {
		ukey_export(p->key, p->sec.master);
		if (disk_secrets_save(dir, &p->sec, err))
			return -1;
	}
	p->conf.layer = p->next.version;
	/* disk.conf first: a crash before the overlay is dropped reads the same bytes. */
	if (disk_conf_save(dir, &p->conf, err) ||
	    migrate_save_token(dir, hold ? p->token : NULL, err) ||
	    remote_seen_raise(p->state, p->conf.user, p->conf.remote_disk, p->next.version, err))
		return -1;
	if (drop_overlay && vdisk_drop_overlay(p->vd))
		return err_set(err, EIO, "dropping the overlay after the check-in");
	drop_pending(p);
	if (old) {
		path = state_layer_path(dir, old);
		if (path)
			unlink(path);
		free(path);
	}
	return 0;
}

/* Releases this machine's lease when nothing needs checking in. */
static int release_only(struct push *p, struct circ_err *err)
{
	struct user_head h = p->head;
	struct buf hb = { 0 };
	char path[REPO_PATH_MAX];
	long status;
	int rc;

	if (!p->head.held || p->o->keep_lease)
		return 0;
	memset(h.machine, 0, sizeof(h.machine));
	memset(h.host, 0, sizeof(h.host));
	memset(h.token, 0, sizeof(h.token));
	h.held = false;
	h.since = 0;
	repo_user_head_path(p->r.user, p->conf.remote_disk, path);
	rc = head_encode(&h, &hb, err) ||
	     remote_put(&p->r, path, hb.data, hb.len, p->etag, false, p->token, &status, err);
	buf_free(&hb);
	if (rc)
		return rc;
	if (status == 409 || status == 412) {
		/* A retried PUT whose first try landed is answered so too: look. */
		char etag[96];
		bool exists;

		if (remote_get_head(&p->r, p->conf.remote_disk, &h, etag, sizeof(etag), &exists,
		                    err))
			return -1;
		if (exists && (!h.held || strcmp(h.token, p->token) != 0))
			status = 200;
	}
	if (status != 200)
		return remote_status_error(&p->r, status, "releasing the lease", err);
	return migrate_save_token(vdisk_dir(p->vd), NULL, err);
}

static int open_remote(struct push *p, struct circ_err *err)
{
	const struct push_options *o = p->o;
	const char *url = o->url ? o->url : p->conf.remote, *user = o->user ? o->user : NULL;

	if (!user)
		user = p->conf.user[0] ? p->conf.user : NULL;
	if (!url || !user)
		return err_set(err, EINVAL,
		               "disk '%s' has no server yet: give --to URL and --user USER",
		               p->disk);
	if (p->conf.remote && (strcmp(url, p->conf.remote) != 0 || strcmp(user, p->conf.user)))
		return err_set(err, EINVAL, "disk '%s' is checked in at %s as %s, not %s as %s",
		               p->disk, p->conf.remote, p->conf.user, url, user);
	if (!p->conf.remote) {
		p->conf.remote = strdup(url);
		if (!p->conf.remote)
			return err_set(err, ENOMEM, "out of memory");
		snprintf(p->conf.user, sizeof(p->conf.user), "%s", user);
		snprintf(p->conf.remote_disk, sizeof(p->conf.remote_disk), "%s", p->disk);
	}
	if (!repo_name_valid(user))
		return err_set(err, EINVAL, "invalid user name '%s'", user);
	if (!repo_user_disk_name_valid(p->conf.remote_disk))
		return err_set(err, EINVAL, "'%s' cannot be a disk's name on a server",
		               p->conf.remote_disk);
	p->have_secrets = disk_secrets_load(vdisk_dir(p->vd), &p->sec, err) == 0;
	p->save_secrets = !p->have_secrets || o->prompt.password_given;
	if (p->save_secrets &&
	    o->prompt.password(o->prompt.ctx, user, p->sec.password, sizeof(p->sec.password), err))
		return -1;
	if (remote_open(&p->r, p->state, p->conf.remote, p->conf.user, p->sec.password, o->net,
	                err))
		return -1;
	if (p->have_secrets)
		return ukey_import(p->sec.master, &p->key, err);
	return remote_unlock_key(&p->r, &o->prompt, true, &p->key, err);
}

static int copy_conf(struct disk_conf *dst, const struct disk_conf *src, struct circ_err *err)
{
	*dst = *src;
	dst->n_urls = 0;
	dst->remote = NULL;
	for (size_t i = 0; i < src->n_urls; i++) {
		dst->urls[i] = strdup(src->urls[i]);
		if (!dst->urls[i])
			return err_set(err, ENOMEM, "out of memory");
		dst->n_urls++;
	}
	if (src->remote && !(dst->remote = strdup(src->remote)))
		return err_set(err, ENOMEM, "out of memory");
	return 0;
}

int migrate_push(const char *state, const char *disk, const struct push_options *o,
                 struct push_result *res, struct circ_err *err)
{
	struct vdisk_options vo = { .net = o->net ? *o->net : (struct state_net){ 0 } };
	struct push p = { .state = state, .disk = disk, .o = o, .res = res };
	bool changed, won, finish_again = false;
	char why[256];
	const char *stale;
	uint64_t seen;
	int rc = -1;

	memset(res, 0, sizeof(*res));
	/* The disk's lock: a mounted or running disk cannot be checked in. */
	if (vdisk_open(state, disk, &vo, &p.vd, err))
		return err_prefix(err, "cannot check in");
	if (copy_conf(&p.conf, vdisk_conf(p.vd), err) || open_remote(&p, err))
		goto out;
	/* Raised after the commit: a damaged record must stop the push before it. */
	if (remote_seen_load(state, p.conf.user, p.conf.remote_disk, &seen, err))
		goto out;
	read_token(vdisk_dir(p.vd), p.token);
	if (remote_get_head(&p.r, p.conf.remote_disk, &p.head, p.etag, sizeof(p.etag),
	                    &p.head_exists, err))
		goto out;
	if (pending_landed(&p)) {
		/*
		 * An earlier push committed and died (or lost the answer) before
		 * switching. The disk may have been written since, so its overlay
		 * stays: over layer N it reads exactly as now. Then check in what
		 * is left, from the top.
		 */
		p.next.version = p.head.version;
		rc = switch_locally(&p, p.head.held && strcmp(p.head.token, p.token) == 0, false,
		                    err);
		if (rc)
			goto out;
		finish_again = true;
		goto out;
	}
	drop_pending(&p);
	p.enc = block_encoder_new(3);
	if (!p.enc) {
		err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	p.next.version = p.conf.layer + 1;
	p.next.parent = p.conf.layer;
	if (p.head_exists)
		memcpy(p.next.parent_sha256, p.head.layer_sha256, 32);
	p.next.created = (uint64_t)time(NULL);
	memcpy(p.next.machine, p.r.machine, sizeof(p.next.machine));
	memcpy(p.next.host, p.r.host, sizeof(p.next.host));
	if (describe_base(&p, err) || build_map(&p, &changed, err))
		goto out;
	if (p.head_exists && !p.conf.layer) {
		rc = err_set(err, EEXIST,
		             "user %s has a disk '%s' on %s already (check-in %" PRIu64
		             "), and this one was not checked out from it: check that one out, or "
		             "create this one under another name",
		             p.conf.user, p.conf.remote_disk, p.conf.remote, p.head.version);
		goto out;
	}
	stale = stale_reason(&p, why, sizeof(why));
	if (stale && (changed || !p.head_exists)) {
		rc = keep_as_branch(&p, p.conf.remote_disk, stale, err);
		goto out;
	}
	if (stale) {
		rc =
		    err_set(err, EAGAIN, "%s: nothing here to check in; check it out again", stale);
		goto out;
	}
	if (!changed && p.head_exists) {
		res->unchanged = true;
		res->version = p.head.version;
		rc = release_only(&p, err);
		goto out;
	}
	if (commit(&p, p.conf.remote_disk, !p.head_exists, o->keep_lease, &won, err))
		goto out;
	if (!won) {
		/* Someone took the lease between our look and our commit. */
		if (remote_get_head(&p.r, p.conf.remote_disk, &p.head, p.etag, sizeof(p.etag),
		                    &p.head_exists, err))
			goto out;
		stale = stale_reason(&p, why, sizeof(why));
		p.next.version = p.conf.layer + 1;
		rc = keep_as_branch(&p, p.conf.remote_disk,
		                    stale ? stale : "the disk's head changed during the check-in",
		                    err);
		goto out;
	}
	res->version = p.next.version;
	rc = switch_locally(&p, o->keep_lease, true, err);
out:
	remote_close(&p.r);
	ukey_free(p.key);
	block_encoder_free(p.enc);
	/* The map's entries are ours; ulayer_release frees them. */
	ulayer_release(&p.next);
	buf_free(&p.layer_file);
	disk_conf_release(&p.conf);
	disk_secrets_wipe(&p.sec);
	rc = vdisk_close_after(p.vd, rc, err);
	/* The pending file is gone now: this runs once. */
	return finish_again && !rc ? migrate_push(state, disk, o, res, err) : rc;
}
