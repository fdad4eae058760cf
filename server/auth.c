/* SPDX-License-Identifier: MIT */
#include "server/auth.h"

#include <crypt.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "util/buf.h"
#include "util/file.h"

/* A users file is a handful of lines; anything near this is not one. */
#define USERS_FILE_MAX (1u << 20)
#define CACHE_SALT_LEN 32

struct auth {
	/* Guards the list (a reload changes it), each user's hash and state, and the caches. */
	pthread_mutex_t lock;
	/* Random per process, so the cached digests are worthless outside it. */
	uint8_t salt[CACHE_SALT_LEN];
	size_t n_users, cap;
	/* Each user apart, never moved or freed before auth_free: requests hold them. */
	struct auth_user **users;
};

static bool bcrypt_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '/';
}

/* "$2a$", "$2b$" or "$2y$", a cost 04..31, "$", then 53 characters of bcrypt's base64. */
static bool bcrypt_hash_valid(const char *h, size_t len)
{
	int cost;

	if (len != AUTH_BCRYPT_LEN || h[0] != '$' || h[1] != '2' ||
	    (h[2] != 'a' && h[2] != 'b' && h[2] != 'y') || h[3] != '$' || h[4] < '0' ||
	    h[4] > '3' || h[5] < '0' || h[5] > '9' || h[6] != '$')
		return false;
	cost = (h[4] - '0') * 10 + (h[5] - '0');
	if (cost < 4 || cost > 31)
		return false;
	for (size_t i = 7; i < len; i++)
		if (!bcrypt_char(h[i]))
			return false;
	return true;
}

static struct auth_user *find_user(struct auth *a, const char *name)
{
	for (size_t i = 0; i < a->n_users; i++)
		if (strcmp(a->users[i]->name, name) == 0)
			return a->users[i];
	return NULL;
}

static int append_user(struct auth *a, struct auth_user *u)
{
	if (a->n_users == a->cap) {
		size_t cap = a->cap ? 2 * a->cap : 8;
		struct auth_user **users = realloc(a->users, cap * sizeof(*users));

		if (!users)
			return -1;
		a->users = users;
		a->cap = cap;
	}
	a->users[a->n_users++] = u;
	return 0;
}

static void user_free(struct auth_user *u)
{
	if (!u)
		return;
	pthread_mutex_destroy(&u->tree.lock);
	OPENSSL_cleanse(u, sizeof(*u));
	free(u);
}

/* Parses one non-blank, non-comment line into a new user. */
static int add_line(struct auth *a, const char *path, unsigned lineno, const char *line, size_t len,
                    struct circ_err *err)
{
	const char *colon = memchr(line, ':', len);
	struct auth_user *u;
	size_t nl;

	if (!colon)
		return err_set(err, EINVAL, "%s: line %u: not user:hash", path, lineno);
	nl = (size_t)(colon - line);
	if (nl == 0 || nl > REPO_NAME_MAX)
		return err_set(err, EINVAL, "%s: line %u: bad user name", path, lineno);
	u = calloc(1, sizeof(*u));
	if (!u)
		return err_set(err, ENOMEM, "out of memory");
	memcpy(u->name, line, nl);
	u->name[nl] = '\0';
	/* The name becomes a directory: users/NAME/. */
	if (!repo_name_valid(u->name)) {
		free(u);
		return err_set(err, EINVAL, "%s: line %u: bad user name (allowed: [A-Za-z0-9._-])",
		               path, lineno);
	}
	if (find_user(a, u->name)) {
		err_set(err, EINVAL, "%s: line %u: user %s listed twice", path, lineno, u->name);
		free(u);
		return -1;
	}
	if (!bcrypt_hash_valid(colon + 1, len - nl - 1)) {
		free(u);
		return err_set(err, EINVAL,
		               "%s: line %u: not a bcrypt hash (make the file with htpasswd -B)",
		               path, lineno);
	}
	memcpy(u->hash, colon + 1, AUTH_BCRYPT_LEN);
	u->hash[AUTH_BCRYPT_LEN] = '\0';
	if (pthread_mutex_init(&u->tree.lock, NULL)) {
		free(u);
		return err_set(err, ENOMEM, "out of memory");
	}
	if (append_user(a, u)) {
		user_free(u);
		return err_set(err, ENOMEM, "out of memory");
	}
	return 0;
}

/* The users of path, into a (which has none yet). */
static int parse_file(struct auth *a, const char *path, struct circ_err *err)
{
	struct buf b = { 0 };
	const char *p, *end;
	unsigned lineno = 0;
	int rc = -1;

	if (file_read_all(path, USERS_FILE_MAX, &b, err)) {
		err_prefix(err, "users file");
		return -1;
	}
	p = (const char *)b.data;
	end = p + b.len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);

		lineno++;
		if (len && p[len - 1] == '\r')
			len--;
		if (memchr(p, '\0', len)) {
			err_set(err, EINVAL, "%s: line %u: a NUL byte", path, lineno);
			goto out;
		}
		if (len && p[0] != '#' && add_line(a, path, lineno, p, len, err))
			goto out;
		if (!nl)
			break;
		p = nl + 1;
	}
	if (a->n_users == 0) {
		err_set(err, EINVAL, "%s: no users", path);
		goto out;
	}
	rc = 0;
out:
	/* The file holds hashes only, but they are still worth not leaving in freed memory. */
	if (b.data)
		OPENSSL_cleanse(b.data, b.cap);
	buf_free(&b);
	return rc;
}

static struct auth *auth_new(void)
{
	struct auth *a = calloc(1, sizeof(*a));

	if (a && pthread_mutex_init(&a->lock, NULL)) {
		free(a);
		a = NULL;
	}
	return a;
}

int auth_load(const char *path, struct auth **out, struct circ_err *err)
{
	struct auth *a = auth_new();

	if (!a)
		return err_set(err, ENOMEM, "out of memory");
	if (RAND_bytes(a->salt, sizeof(a->salt)) != 1) {
		auth_free(a);
		return err_set(err, EIO, "no random bytes for the password cache");
	}
	if (parse_file(a, path, err)) {
		auth_free(a);
		return -1;
	}
	*out = a;
	return 0;
}

int auth_reload(struct auth *a, const char *path, size_t *n_users, struct circ_err *err)
{
	struct auth *fresh = auth_new();
	size_t active = 0;
	int rc = 0;

	if (!fresh)
		return err_set(err, ENOMEM, "out of memory");
	/* A file that does not parse changes nothing: the users stay as they were. */
	if (parse_file(fresh, path, err)) {
		auth_free(fresh);
		return -1;
	}
	pthread_mutex_lock(&a->lock);
	for (size_t i = 0; i < a->n_users; i++)
		a->users[i]->disabled = !find_user(fresh, a->users[i]->name);
	for (size_t i = 0; i < fresh->n_users && !rc; i++) {
		struct auth_user *f = fresh->users[i], *u = find_user(a, f->name);

		if (u) {
			/* A new hash makes the cached password stale by itself (auth_check). */
			memcpy(u->hash, f->hash, sizeof(u->hash));
		} else if (append_user(a, f)) {
			rc = err_set(err, ENOMEM, "out of memory");
		} else {
			fresh->users[i] = NULL; /* a's now */
		}
	}
	for (size_t i = 0; i < a->n_users; i++)
		active += !a->users[i]->disabled;
	pthread_mutex_unlock(&a->lock);
	auth_free(fresh);
	*n_users = active;
	return rc;
}

void auth_free(struct auth *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->n_users; i++)
		user_free(a->users[i]);
	free(a->users);
	pthread_mutex_destroy(&a->lock);
	OPENSSL_cleanse(a->salt, sizeof(a->salt));
	free(a);
}

/* SHA-256(salt || pass): what the cache keeps instead of the password. */
static int cache_digest(const struct auth *a, const char *pass, uint8_t out[32])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok;

	if (!ctx)
		return -1;
	ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
	     EVP_DigestUpdate(ctx, a->salt, sizeof(a->salt)) == 1 &&
	     EVP_DigestUpdate(ctx, pass, strlen(pass)) == 1 &&
	     EVP_DigestFinal_ex(ctx, out, NULL) == 1;
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -1;
}

/* bcrypt: true if pass hashes to hash. */
static bool bcrypt_matches(const char *pass, const char *hash, bool *failed)
{
	/* struct crypt_data is about 32 KiB: too large for a worker thread's stack. */
	struct crypt_data *cd = calloc(1, sizeof(*cd));
	const char *res;
	bool ok = false;

	*failed = false;
	if (!cd) {
		*failed = true;
		return false;
	}
	res = crypt_r(pass, hash, cd);
	/* A failure is NULL or a token starting with '*', never the same length as a hash. */
	if (!res || res[0] == '*')
		*failed = true;
	else if (strlen(res) == AUTH_BCRYPT_LEN)
		ok = CRYPTO_memcmp(res, hash, AUTH_BCRYPT_LEN) == 0;
	OPENSSL_cleanse(cd, sizeof(*cd));
	free(cd);
	return ok;
}

enum auth_result auth_check(struct auth *a, const char *user, const char *pass,
                            struct auth_user **out)
{
	struct auth_user *u;
	uint8_t digest[32];
	char hash[AUTH_BCRYPT_LEN + 1];
	bool hit, failed;

	pthread_mutex_lock(&a->lock);
	u = find_user(a, user);
	if (u && u->disabled)
		u = NULL; /* taken out of the file by a reload */
	if (!u)
		memcpy(hash, a->users[0]->hash, sizeof(hash));
	pthread_mutex_unlock(&a->lock);
	if (!u) {
		/* Spend the time a wrong password would, so timing does not tell who exists. */
		bcrypt_matches(pass, hash, &failed);
		return AUTH_UNKNOWN_USER;
	}
	if (cache_digest(a, pass, digest))
		return AUTH_ERROR;
	pthread_mutex_lock(&a->lock);
	/* The cache holds only while the hash it was checked against is the user's hash. */
	hit = u->cached && strcmp(u->cache_hash, u->hash) == 0 &&
	      CRYPTO_memcmp(u->cache_digest, digest, sizeof(digest)) == 0;
	memcpy(hash, u->hash, sizeof(hash));
	pthread_mutex_unlock(&a->lock);
	if (!hit) {
		/* bcrypt without the lock: it is the slow part, and other users must not wait. */
		if (!bcrypt_matches(pass, hash, &failed)) {
			OPENSSL_cleanse(digest, sizeof(digest));
			return failed ? AUTH_ERROR : AUTH_WRONG_PASSWORD;
		}
		pthread_mutex_lock(&a->lock);
		memcpy(u->cache_digest, digest, sizeof(digest));
		memcpy(u->cache_hash, hash, sizeof(hash));
		u->cached = true;
		pthread_mutex_unlock(&a->lock);
	}
	OPENSSL_cleanse(digest, sizeof(digest));
	*out = u;
	return AUTH_OK;
}
