/* SPDX-License-Identifier: MIT */
#include "vdisk/remote.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "util/file.h"
#include "blockfs/objects.h"
#include "vdisk/state.h"

static void to_hex(const uint8_t *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
}

int remote_new_token(char out[HEAD_TOKEN_HEX + 1], struct circ_err *err)
{
	uint8_t raw[HEAD_TOKEN_HEX / 2];

	if (ukey_random(raw, sizeof(raw), err))
		return -1;
	to_hex(raw, sizeof(raw), out);
	return 0;
}

int remote_machine_id(const char *state, char out[HEAD_MACHINE_HEX + 1], struct circ_err *err)
{
	struct buf b = { 0 };
	char *path;
	int rc = 0;

	if (asprintf(&path, "%s/machine-id", state) < 0)
		return err_set(err, ENOMEM, "out of memory");
	if (file_read_all(path, 64, &b, err) == 0) {
		if (b.len != HEAD_MACHINE_HEX + 1 || b.data[HEAD_MACHINE_HEX] != '\n')
			rc = err_set(err, EBADMSG, "%s is damaged", path);
		memcpy(out, b.data, HEAD_MACHINE_HEX < b.len ? HEAD_MACHINE_HEX : b.len);
		out[HEAD_MACHINE_HEX] = '\0';
		for (size_t i = 0; !rc && i < HEAD_MACHINE_HEX; i++)
			if (!((out[i] >= '0' && out[i] <= '9') || (out[i] >= 'a' && out[i] <= 'f')))
				rc = err_set(err, EBADMSG, "%s is damaged", path);
	} else if (err->errnum != ENOENT) {
		rc = -1;
	} else {
		/* A state directory is a machine: two on one host are two machines. */
		rc = remote_new_token(out, err);
		if (!rc) {
			char line[HEAD_MACHINE_HEX + 2];

			snprintf(line, sizeof(line), "%s\n", out);
			rc = file_write_atomic(path, line, strlen(line), 0644, err);
		}
	}
	buf_free(&b);
	free(path);
	return rc;
}

int remote_open(struct remote *r, const char *state, const char *url, const char *user,
                const char *password, const struct state_net *net, struct circ_err *err)
{
	char host[256] = "";

	memset(r, 0, sizeof(*r));
	r->url = url;
	r->user = user;
	if (!repo_name_valid(user))
		return err_set(err, EINVAL, "invalid user name '%s'", user);
	if (!state_url_valid(url))
		return err_set(err, EINVAL, "'%s' is not an http:// or https:// URL", url);
	if (remote_machine_id(state, r->machine, err))
		return -1;
	gethostname(host, sizeof(host) - 1);
	head_sanitize_host(host, r->host);
	if (user_repo_open(url, user, password, net, &r->repo, err))
		return -1;
	r->fetch = repo_fetcher(r->repo);
	return 0;
}

void remote_close(struct remote *r)
{
	repo_close(r->repo);
	r->repo = NULL;
}

int remote_status_error(const struct remote *r, long status, const char *what, struct circ_err *err)
{
	switch (status) {
	case 401:
		return err_set(err, EACCES,
		               "%s refused the password of user %s (a changed password: give it "
		               "with --password-file)",
		               r->url, r->user);
	case 403:
		return err_set(err, EACCES, "%s: user %s may not %s", r->url, r->user, what);
	case 405:
		return err_set(err, EROFS,
		               "%s does not accept uploads (a server started without --users?)",
		               r->url);
	case 413:
		return err_set(err, EFBIG, "%s: %s: too large for the server", r->url, what);
	case 507:
		return err_set(err, EDQUOT,
		               "%s: quota of user %s exceeded while %s: nothing was committed; "
		               "free space or raise the quota, then run the same command again",
		               r->url, r->user, what);
	default:
		return err_set(err, EIO, "%s: %s: HTTP %ld", r->url, what, status);
	}
}

static int request(struct remote *r, const char *path, const struct fetch_request *rq,
                   struct fetch_response *resp, struct buf *body, struct circ_err *err)
{
	if (fetch_send(r->fetch, path, rq, resp, body, err))
		return -1;
	return 0;
}

int remote_get(struct remote *r, const char *path, size_t max_len, struct buf *out,
               struct circ_err *err)
{
	struct fetch_request rq = { .method = "GET", .max_len = max_len };
	struct fetch_response resp;

	if (request(r, path, &rq, &resp, out, err))
		return -1;
	if (resp.status == 404)
		return err_set(err, ENOENT, "%s/%s: not found", r->url, path);
	if (resp.status != 200)
		return remote_status_error(r, resp.status, "read", err);
	return 0;
}

int remote_exists(struct remote *r, const char *path, bool *exists, int64_t *length,
                  char etag[REPO_ETAG_MAX], struct circ_err *err)
{
	struct fetch_request rq = { .method = "HEAD" };
	struct fetch_response resp;

	if (request(r, path, &rq, &resp, NULL, err))
		return -1;
	*exists = resp.status == 200;
	*length = resp.length;
	/* Longer than a content ETag: not one, so it matches none. */
	etag[0] = '\0';
	if (strlen(resp.etag) < REPO_ETAG_MAX)
		memcpy(etag, resp.etag, strlen(resp.etag) + 1);
	if (resp.status != 200 && resp.status != 404)
		return remote_status_error(r, resp.status, "read", err);
	return 0;
}

int remote_put(struct remote *r, const char *path, const void *data, size_t len,
               const char *if_match, bool if_none_match, const char *lease, long *status,
               struct circ_err *err)
{
	struct fetch_request rq = {
		.method = "PUT",
		.body = data,
		.body_len = len,
		.if_match = if_match,
		.if_none_match_any = if_none_match,
		.lease = lease,
		.max_len = 4096,
	};
	struct fetch_response resp;

	if (request(r, path, &rq, &resp, NULL, err))
		return -1;
	*status = resp.status;
	return 0;
}

int remote_get_head(struct remote *r, const char *disk, struct user_head *h, char *etag,
                    size_t etag_len, bool *exists, struct circ_err *err)
{
	struct fetch_request rq = { .method = "GET", .max_len = REPO_USER_HEAD_MAX };
	struct fetch_response resp;
	struct buf b = { 0 };
	char path[REPO_PATH_MAX];
	int rc;

	repo_user_head_path(r->user, disk, path);
	*exists = false;
	if (request(r, path, &rq, &resp, &b, err)) {
		buf_free(&b);
		return -1;
	}
	if (resp.status == 404) {
		buf_free(&b);
		return 0;
	}
	if (resp.status != 200) {
		buf_free(&b);
		return remote_status_error(r, resp.status, "read", err);
	}
	rc = head_parse(b.data, b.len, h, err);
	if (rc)
		err_prefix(err, "%s/%s", r->url, path);
	snprintf(etag, etag_len, "%s", resp.etag);
	*exists = rc == 0;
	buf_free(&b);
	return rc;
}

int remote_unlock_key(struct remote *r, const struct migrate_prompt *p, bool create,
                      struct ukey **out, struct circ_err *err)
{
	char path[REPO_PATH_MAX], pass[MIGRATE_SECRET_MAX];
	struct buf b = { 0 };
	size_t len = 0;
	long status;
	int rc;

	repo_user_keys_path(r->user, path);
	rc = remote_get(r, path, REPO_USER_KEYS_MAX, &b, err);
	if (rc == 0) {
		rc = p->passphrase(p->ctx, r->user, false, pass, sizeof(pass), &len, err);
		if (!rc)
			rc = ukey_unwrap(b.data, b.len, r->user, pass, len, out, err);
		goto out;
	}
	if (err->errnum != ENOENT)
		goto out;
	if (!create) {
		rc = err_set(err, ENOENT, "user %s has no key on %s: nothing was ever checked in",
		             r->user, r->url);
		goto out;
	}
	/* The user's first check-in anywhere: a new key, wrapped by a new passphrase. */
	rc = p->passphrase(p->ctx, r->user, true, pass, sizeof(pass), &len, err);
	if (!rc)
		rc = ukey_create(out, err);
	if (!rc)
		rc = ukey_wrap(*out, r->user, pass, len, UKEY_KDF_DEFAULT, &b, err);
	if (!rc)
		rc = remote_put(r, path, b.data, b.len, NULL, true, NULL, &status, err);
	if (!rc && status != 201 && status != 200) {
		/* 412: another machine made the key first; this one is not the user's. */
		rc = status == 412 ? err_set(err, EAGAIN,
		                             "user %s's key was made on another machine meanwhile: "
		                             "run the command again",
		                             r->user)
		                   : remote_status_error(r, status, "store the key", err);
	}
	if (rc) {
		ukey_free(*out);
		*out = NULL;
	}
out:
	OPENSSL_cleanse(pass, sizeof(pass));
	buf_free(&b);
	return rc;
}

static char *seen_path(const char *state, const char *user, const char *disk, bool mkdir)
{
	struct circ_err err;
	char *dir, *p = NULL;

	if (asprintf(&dir, "%s/users/%s", state, user) < 0)
		return NULL;
	if ((!mkdir || file_mkdirs(dir, 0755, &err) == 0) &&
	    asprintf(&p, "%s/%s.seen", dir, disk) < 0)
		p = NULL;
	free(dir);
	return p;
}

int remote_seen_load(const char *state, const char *user, const char *disk, uint64_t *seen,
                     struct circ_err *err)
{
	char *path = seen_path(state, user, disk, false);
	int rc;

	*seen = 0;
	if (!path)
		return err_set(err, ENOMEM, "out of memory");
	rc = state_seen_read(path, seen, err);
	free(path);
	return rc;
}

int remote_seen_raise(const char *state, const char *user, const char *disk, uint64_t version,
                      struct circ_err *err)
{
	char *path = seen_path(state, user, disk, true);
	int rc;

	if (!path)
		return err_set(err, ENOMEM, "out of memory");
	rc = state_seen_write(NULL, path, version, err);
	free(path);
	return rc;
}
