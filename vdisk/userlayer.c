/* SPDX-License-Identifier: MIT */
#include "vdisk/userlayer.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "util/file.h"
#include "blockfs/objects.h"
#include "blockfs/repo.h"

/* The layer's blocks by plaintext ID, for the store's source: it knows only IDs. */
struct name_by_id {
	struct block_id id, name;
};

struct user_layer {
	struct ulayer map;
	struct ukey *key;
	struct repo *repo;
	struct store *store;
	struct name_by_id *names; /* sorted by id */
	size_t n_names;
};

static int cmp_by_id(const void *a, const void *b)
{
	return memcmp(&((const struct name_by_id *)a)->id, &((const struct name_by_id *)b)->id,
	              BLOCK_ID_LEN);
}

int user_repo_open(const char *url, const char *user, const char *password,
                   const struct state_net *net, struct repo **out, struct circ_err *err)
{
	const char *urls[1] = { url };
	struct fetch_config fc = {
		.mirrors = urls,
		.n_mirrors = 1,
		.deadline_ms = net ? net->timeout_ms : 0,
		.user = user,
		.password = password,
	};

	return repo_open_url(&fc, out, err);
}

/* The store's source: the sealed object named for id, opened and verified. */
static int read_user_block(void *ctx, const struct block_id *id, size_t block_size, void *out,
                           struct buf *comp, struct circ_err *err)
{
	struct user_layer *ul = ctx;
	struct name_by_id key = { .id = *id }, *hit;
	struct buf plain = { 0 };
	char path[REPO_PATH_MAX];
	int rc;

	hit = bsearch(&key, ul->names, ul->n_names, sizeof(key), cmp_by_id);
	if (!hit)
		return err_set(err, ENOENT, "block not in the user layer");
	repo_user_block_path(ul->map.user, &hit->name, path);
	rc = repo_read_file(ul->repo, path, repo_object_kind(REPO_OBJ_USER_BLOCK)->max_len, 0, comp,
	                    err);
	if (!rc)
		rc = ukey_block_open(ul->key, &hit->name, comp->data, comp->len, &plain, err);
	if (!rc)
		rc = block_decode_verified(id, plain.data, plain.len, out, block_size, err);
	if (rc)
		err_prefix(err, "%s", path);
	buf_free(&plain);
	return rc;
}

int user_layer_load(const char *path, const struct ukey *k, const char *user, const char *disk,
                    uint64_t n, struct ulayer *l, uint8_t sha[32], struct circ_err *err)
{
	struct buf b = { 0 };
	int rc;

	memset(l, 0, sizeof(*l));
	rc = file_read_all(path, REPO_USER_LAYER_MAX, &b, err);
	if (!rc && ulayer_decode(b.data, b.len, k, l, err))
		rc = err_prefix(err, "%s", path);
	if (!rc && (strcmp(l->user, user) != 0 || strcmp(l->disk, disk) != 0 || l->version != n)) {
		rc = err_set(err, EBADMSG, "%s is not %s's disk %s version %" PRIu64, path, user,
		             disk, n);
		ulayer_release(l);
	}
	if (!rc && sha)
		SHA256(b.data, b.len, sha);
	buf_free(&b);
	return rc;
}

int user_layer_open(const char *disk_dir, const struct disk_conf *c, const struct state_net *net,
                    struct cache *cache, unsigned workers, struct user_layer **out,
                    struct circ_err *err)
{
	struct store_source src = { .read_block = read_user_block };
	struct disk_secrets sec;
	struct user_layer *ul;
	char *path = NULL;

	ul = calloc(1, sizeof(*ul));
	if (!ul)
		return err_set(err, ENOMEM, "out of memory");
	if (disk_secrets_load(disk_dir, &sec, err))
		goto fail;
	if (ukey_import(sec.master, &ul->key, err) ||
	    user_repo_open(c->remote, c->user, sec.password, net, &ul->repo, err)) {
		disk_secrets_wipe(&sec);
		goto fail;
	}
	disk_secrets_wipe(&sec);
	path = state_layer_path(disk_dir, c->layer);
	if (!path) {
		err_set(err, ENOMEM, "out of memory");
		goto fail;
	}
	if (user_layer_load(path, ul->key, c->user, c->remote_disk, c->layer, &ul->map, NULL, err))
		goto fail;
	ul->names = calloc(ul->map.n_entries ? ul->map.n_entries : 1, sizeof(*ul->names));
	if (!ul->names) {
		err_set(err, ENOMEM, "out of memory");
		goto fail;
	}
	for (uint32_t i = 0; i < ul->map.n_entries; i++)
		if (!block_id_is_zero(&ul->map.entries[i].name))
			ul->names[ul->n_names++] =
			    (struct name_by_id){ ul->map.entries[i].id, ul->map.entries[i].name };
	qsort(ul->names, ul->n_names, sizeof(*ul->names), cmp_by_id);
	src.ctx = ul;
	src.fetch = repo_fetcher(ul->repo);
	if (store_new_source(&src, cache, workers, &ul->store, err))
		goto fail;
	free(path);
	*out = ul;
	return 0;
fail:
	free(path);
	user_layer_close(ul);
	return -1;
}

void user_layer_close(struct user_layer *ul)
{
	if (!ul)
		return;
	store_free(ul->store);
	repo_close(ul->repo);
	ukey_free(ul->key);
	ulayer_release(&ul->map);
	free(ul->names);
	free(ul);
}

const struct ulayer *user_layer_map(const struct user_layer *ul)
{
	return &ul->map;
}

int user_layer_read(struct user_layer *ul, const struct ulayer_entry *e, void *buf, size_t len,
                    uint64_t off, struct circ_err *err)
{
	return store_read(ul->store, &e->id, ul->map.block_size, off, len, buf, err);
}

void user_layer_prefetch(struct user_layer *ul, const struct ulayer_entry *e)
{
	if (!block_id_is_zero(&e->name))
		store_prefetch(ul->store, &e->id, ul->map.block_size);
}

void user_layer_get_stats(struct user_layer *ul, struct store_stats *st)
{
	store_get_stats(ul->store, st);
}
