/* SPDX-License-Identifier: MIT */
#include "vdisk/disk.h"
#include "vdisk/disk_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "util/file.h"
#include "blockfs/cache.h"
#include "blockfs/repo.h"
#include "blockfs/store.h"
#include "vdisk/manifest.h"
#include "vdisk/overlay.h"
#include "vdisk/userlayer.h"

#define STATS_SAVE_EVERY_S 5

static const struct layer_ops overlay_layer, user_layer, image_layer, blank_layer;
static int stack_read(struct vdisk *vd, unsigned i, uint8_t *p, uint64_t len, uint64_t off);

/* The base: a published image version, fetched through the verified store. */
static int open_image_base(struct vdisk *vd, const char *state, const struct vdisk_options *opts,
                           struct circ_err *err)
{
	struct key *pub = NULL;
	int rc;

	/* The local manifest is checked as strictly as one from the network. */
	rc = state_load_pinned_key(state, vd->conf.image, &pub, err) ||
	     state_load_disk_manifest(vd->dir, pub, &vd->conf, &vd->m, err) ||
	     state_open_repo(&vd->conf, &opts->net, &vd->repo, err) ||
	     store_new(vd->repo, vd->cache, opts->workers ? opts->workers : VDISK_DEFAULT_WORKERS,
	               &vd->store, err);
	key_free(pub);
	if (rc)
		return -1;
	vd->size = vd->m.image_size;
	vd->block_size = vd->m.block_size;
	return 0;
}

/* A user layer lies over the base it was made on: same size, same blocks. */
static int check_user_layer(struct vdisk *vd, struct circ_err *err)
{
	const struct ulayer *l = user_layer_map(vd->user);
	bool same = l->disk_size == vd->size && l->block_size == vd->block_size;

	if (same && vd->conf.blank)
		same = l->base == ULAYER_BASE_BLANK;
	else if (same)
		same = l->base == ULAYER_BASE_IMAGE && strcmp(l->base_image, vd->m.name) == 0 &&
		       l->base_version == vd->m.version;
	if (!same)
		return err_set(err, EBADMSG,
		               "user layer %" PRIu64 " of %s was made over another base than this "
		               "disk's",
		               l->version, vd->conf.remote_disk);
	return 0;
}

int vdisk_open(const char *state, const char *disk, const struct vdisk_options *opts,
               struct vdisk **out, struct circ_err *err)
{
	struct cache_options co = { 0 };
	struct vdisk *vd;
	char *cdir = NULL;

	if (!state_disk_name_valid(disk))
		return err_set(err, EINVAL, "invalid disk name '%s'", disk);
	vd = calloc(1, sizeof(*vd));
	if (!vd)
		return err_set(err, ENOMEM, "out of memory");
	vd->lockfd = -1;
	readahead_init(&vd->ra);
	vd->read_only = opts->read_only;
	vd->log = opts->log ? opts->log : stderr;
	vd->readahead = opts->readahead;
	pthread_mutex_init(&vd->lock, NULL);
	for (int i = 0; i < SECTOR_LOCKS; i++)
		pthread_mutex_init(&vd->sector_locks[i], NULL);
	vd->dir = state_disk_dir(state, disk);
	cdir = state_cache_dir(state);
	if (!vd->dir || !cdir) {
		err_set(err, ENOMEM, "out of memory");
		goto fail;
	}
	if (disk_conf_load(vd->dir, &vd->conf, err))
		goto fail;
	vd->lockfd = state_lock_disk(vd->dir, err);
	if (vd->lockfd < 0)
		goto fail;
	co.max_bytes = state_cache_bound(state, opts->cache_size);
	co.log = vd->log;
	if (cache_open_opts(cdir, &co, &vd->cache, err))
		goto fail;
	if (vd->conf.blank) {
		vd->size = vd->conf.size;
		vd->block_size = vd->conf.block_size;
	} else if (open_image_base(vd, state, opts, err) ||
	           /* After the manifest checked out: a bad one must not raise the mark. */
	           state_disk_check_version(vd->dir, &vd->conf, err)) {
		goto fail;
	}
	vd->n_blocks = (vd->size + vd->block_size - 1) / vd->block_size;
	if (vd->conf.layer &&
	    (user_layer_open(vd->dir, &vd->conf, &opts->net, vd->cache,
	                     opts->workers ? opts->workers : VDISK_DEFAULT_WORKERS, &vd->user,
	                     err) ||
	     check_user_layer(vd, err)))
		goto fail;
	if (overlay_open(vd->dir, vd->size, &vd->ov, err))
		goto fail;
	vd->layers[vd->n_layers++] = &overlay_layer;
	if (vd->user)
		vd->layers[vd->n_layers++] = &user_layer;
	vd->layers[vd->n_layers++] = vd->conf.blank ? &blank_layer : &image_layer;
	if (opts->record_reads && !vd->conf.blank) {
		vd->record_path = strdup(opts->record_reads);
		vd->recorded = calloc(vd->m.n_blocks / 8 + 1, 1);
		vd->trace = calloc(vd->m.n_blocks, sizeof(*vd->trace));
		if (!vd->record_path || !vd->recorded || !vd->trace) {
			err_set(err, ENOMEM, "out of memory");
			goto fail;
		}
	}
	disk_stats_load(vd->dir, &vd->saved);
	vd->stats_saved_at = time(NULL);
	free(cdir);
	*out = vd;
	return 0;
fail:
	free(cdir);
	return vdisk_close_after(vd, -1, err);
}

void vdisk_get_stats(struct vdisk *vd, struct disk_stats *st)
{
	struct store_stats ss = { 0 }, us = { 0 };

	if (vd->store)
		store_get_stats(vd->store, &ss);
	if (vd->user) {
		user_layer_get_stats(vd->user, &us);
		ss.fetched_bytes += us.fetched_bytes;
		ss.fetched_blocks += us.fetched_blocks;
		ss.requests += us.requests;
		ss.hits += us.hits;
		ss.misses += us.misses;
	}
	pthread_mutex_lock(&vd->lock);
	*st = vd->saved;
	pthread_mutex_unlock(&vd->lock);
	st->fetched_bytes += ss.fetched_bytes;
	st->fetched_blocks += ss.fetched_blocks;
	st->requests += ss.requests;
	st->hits += ss.hits;
	st->misses += ss.misses;
	st->overlay_bytes = vd->ov ? overlay_bytes(vd->ov) : st->overlay_bytes;
}

static void record_read(struct vdisk *vd, uint64_t idx)
{
	pthread_mutex_lock(&vd->lock);
	if (!(vd->recorded[idx / 8] & (1u << (idx % 8)))) {
		vd->recorded[idx / 8] |= (uint8_t)(1u << (idx % 8));
		vd->trace[vd->n_trace++] = (uint32_t)idx;
	}
	pthread_mutex_unlock(&vd->lock);
}

/* Writes the recorded reads, one block index a line. */
static void save_trace(struct vdisk *vd)
{
	struct buf b = { 0 };
	struct circ_err err;
	char line[16];

	for (size_t i = 0; i < vd->n_trace; i++) {
		int n = snprintf(line, sizeof(line), "%" PRIu32 "\n", vd->trace[i]);

		if (buf_append(&b, line, (size_t)n))
			break;
	}
	if (file_write_atomic(vd->record_path, b.data ? b.data : (uint8_t *)"", b.len, 0644, &err))
		fprintf(vd->log, "circ: %s\n", err.msg);
	buf_free(&b);
}

static void save_stats(struct vdisk *vd, bool force)
{
	struct disk_stats st;
	time_t now = time(NULL);

	pthread_mutex_lock(&vd->lock);
	if (!force && now - vd->stats_saved_at < STATS_SAVE_EVERY_S) {
		pthread_mutex_unlock(&vd->lock);
		return;
	}
	vd->stats_saved_at = now;
	pthread_mutex_unlock(&vd->lock);
	vdisk_get_stats(vd, &st);
	disk_stats_save(vd->dir, &st);
}

int vdisk_close(struct vdisk *vd)
{
	int rc = 0;

	if (!vd)
		return 0;
	atomic_store(&vd->prefetch_stop, true);
	for (unsigned i = 0; i < vd->n_prefetchers; i++)
		pthread_join(vd->prefetchers[i], NULL);
	if (vd->record_path && vd->recorded)
		save_trace(vd);
	if (vd->ov && !vd->read_only)
		rc = overlay_flush(vd->ov);
	if (vd->ov)
		save_stats(vd, true);
	store_free(vd->store);
	user_layer_close(vd->user);
	cache_close(vd->cache);
	overlay_close(vd->ov);
	repo_close(vd->repo);
	manifest_release(&vd->m);
	disk_conf_release(&vd->conf);
	if (vd->lockfd >= 0)
		close(vd->lockfd);
	free(vd->record_path);
	free(vd->recorded);
	free(vd->trace);
	pthread_mutex_destroy(&vd->lock);
	for (int i = 0; i < SECTOR_LOCKS; i++)
		pthread_mutex_destroy(&vd->sector_locks[i]);
	free(vd->dir);
	free(vd);
	return rc;
}

int vdisk_close_after(struct vdisk *vd, int rc, struct circ_err *err)
{
	int close_rc = vdisk_close(vd);

	if (rc)
		return rc;
	return close_rc ? err_sys(err, -close_rc, "flushing the disk's writes") : 0;
}

uint64_t vdisk_size(const struct vdisk *vd)
{
	return vd->size;
}

bool vdisk_read_only(const struct vdisk *vd)
{
	return vd->read_only;
}

const char *vdisk_image(const struct vdisk *vd)
{
	return vd->conf.blank ? "(blank)" : vd->m.name;
}

uint64_t vdisk_version(const struct vdisk *vd)
{
	return vd->m.version;
}

/* After a sequential read of block idx, asks for the next blocks in the background. */
/* Fetches ahead of a sequential reader (vdisk/readahead.h says when). */
static void read_ahead(struct vdisk *vd, uint64_t idx)
{
	const struct ulayer *ul = vd->user ? user_layer_map(vd->user) : NULL;
	uint64_t from = 0;
	uint32_t n;

	pthread_mutex_lock(&vd->lock);
	n = readahead_advance(&vd->ra, idx, vd->readahead, &from);
	pthread_mutex_unlock(&vd->lock);
	/* Each block from the layer that holds it: the user's, else the image's. */
	for (uint64_t i = from; i < from + n && i < vd->n_blocks; i++) {
		const struct ulayer_entry *e = ul ? ulayer_find(ul, (uint32_t)i) : NULL;

		if (e)
			user_layer_prefetch(vd->user, e);
		else if (!vd->conf.blank && !block_id_is_zero(&vd->m.blocks[i]))
			store_prefetch(vd->store, &vd->m.blocks[i], vd->m.block_size);
	}
}

/* The run from off to the end of its block, at most len. */
static uint64_t block_run(const struct vdisk *vd, uint64_t off, uint64_t len)
{
	uint64_t left = vd->block_size - off % vd->block_size;

	return left < len ? left : len;
}

static int image_map(struct vdisk *vd, uint64_t off, uint64_t len, enum layer_state *st,
                     uint64_t *run)
{
	*st = block_id_is_zero(&vd->m.blocks[off / vd->block_size]) ? LAYER_ZERO : LAYER_DATA;
	*run = block_run(vd, off, len);
	return 0;
}

/* Reads [off, off + len) of the base image; the range lies within one block. */
static int image_read(struct vdisk *vd, void *buf, size_t len, uint64_t off)
{
	uint64_t idx = off / vd->m.block_size;
	const struct block_id *id = &vd->m.blocks[idx];
	char hex[BLOCK_ID_HEX_LEN + 1];
	struct circ_err err;

	if (vd->recorded)
		record_read(vd, idx);
	if (vd->readahead)
		read_ahead(vd, idx);
	if (store_read(vd->store, id, vd->m.block_size, off % vd->m.block_size, len, buf, &err) ==
	    0)
		return 0;
	block_id_to_hex(id, hex);
	fprintf(vd->log, "circ: %s version %llu: block %llu (%s) cannot be read: %s\n", vd->m.name,
	        (unsigned long long)vd->m.version, (unsigned long long)idx, hex, err.msg);
	fflush(vd->log);
	return -EIO;
}

static const struct layer_ops image_layer = { "image", image_map, image_read };

static int blank_map(struct vdisk *vd, uint64_t off, uint64_t len, enum layer_state *st,
                     uint64_t *run)
{
	(void)vd;
	(void)off;
	*st = LAYER_ZERO;
	*run = len;
	return 0;
}

static const struct layer_ops blank_layer = { "blank", blank_map, NULL };

static int user_map(struct vdisk *vd, uint64_t off, uint64_t len, enum layer_state *st,
                    uint64_t *run)
{
	const struct ulayer_entry *e =
	    ulayer_find(user_layer_map(vd->user), (uint32_t)(off / vd->block_size));

	*st = !e ? LAYER_BELOW : block_id_is_zero(&e->name) ? LAYER_ZERO : LAYER_DATA;
	*run = block_run(vd, off, len);
	return 0;
}

static int user_read(struct vdisk *vd, void *buf, size_t len, uint64_t off)
{
	uint64_t idx = off / vd->block_size;
	const struct ulayer_entry *e = ulayer_find(user_layer_map(vd->user), (uint32_t)idx);
	struct circ_err err;

	if (vd->readahead)
		read_ahead(vd, idx);
	if (user_layer_read(vd->user, e, buf, len, off % vd->block_size, &err) == 0)
		return 0;
	fprintf(vd->log, "circ: %s's disk %s check-in %llu: block %llu cannot be read: %s\n",
	        vd->conf.user, vd->conf.remote_disk, (unsigned long long)vd->conf.layer,
	        (unsigned long long)idx, err.msg);
	fflush(vd->log);
	return -EIO;
}

static const struct layer_ops user_layer = { "user", user_map, user_read };

/* A data run of the overlay is one sector; base and zero runs extend over their neighbours. */
static int overlay_map(struct vdisk *vd, uint64_t off, uint64_t len, enum layer_state *st,
                       uint64_t *run)
{
	static const enum layer_state from_overlay[] = {
		[OVERLAY_BASE] = LAYER_BELOW,
		[OVERLAY_ZERO] = LAYER_ZERO,
		[OVERLAY_DATA] = LAYER_DATA,
	};
	uint64_t end = off + len, s = off / OVERLAY_SECTOR, next = (s + 1) * OVERLAY_SECTOR;
	enum overlay_state first, more;
	int rc;

	rc = overlay_read_sector(vd->ov, s, NULL, &first);
	if (rc)
		return rc;
	*st = from_overlay[first];
	if (first != OVERLAY_DATA)
		while (next < end &&
		       overlay_read_sector(vd->ov, next / OVERLAY_SECTOR, NULL, &more) == 0 &&
		       more == first)
			next += OVERLAY_SECTOR;
	*run = (next < end ? next : end) - off;
	return 0;
}

static int overlay_read(struct vdisk *vd, void *buf, size_t len, uint64_t off)
{
	uint8_t sector[OVERLAY_SECTOR];
	enum overlay_state st;
	int rc = overlay_read_sector(vd->ov, off / OVERLAY_SECTOR, sector, &st);

	if (rc)
		return rc;
	/* A discard may have come between map and read: answer for what is there now. */
	if (st == OVERLAY_DATA)
		memcpy(buf, sector + off % OVERLAY_SECTOR, len);
	else if (st == OVERLAY_ZERO)
		memset(buf, 0, len);
	else
		return stack_read(vd, 1, buf, len, off);
	return 0;
}

static const struct layer_ops overlay_layer = { "overlay", overlay_map, overlay_read };

/* Reads through layers i and below: each answers for a run, or passes it down. */
static int stack_read(struct vdisk *vd, unsigned i, uint8_t *p, uint64_t len, uint64_t off)
{
	while (len) {
		enum layer_state st = LAYER_ZERO;
		uint64_t run = len;
		int rc = 0;

		if (i < vd->n_layers)
			rc = vd->layers[i]->map(vd, off, len, &st, &run);
		else
			st = LAYER_ZERO; /* beneath the base: nothing, so zeros */
		if (rc)
			return rc;
		if (run == 0 || run > len)
			return -EIO;
		if (st == LAYER_DATA)
			rc = vd->layers[i]->read(vd, p, (size_t)run, off);
		else if (st == LAYER_ZERO)
			memset(p, 0, (size_t)run);
		else
			rc = stack_read(vd, i + 1, p, run, off);
		if (rc)
			return rc;
		p += run;
		off += run;
		len -= run;
	}
	return 0;
}

int vdisk_read(struct vdisk *vd, void *buf, size_t len, uint64_t off)
{
	if (off > vd->size || len > vd->size - off)
		return -EINVAL;
	return stack_read(vd, 0, buf, len, off);
}

int vdisk_flush(struct vdisk *vd)
{
	int rc;

	if (vd->read_only)
		return 0;
	rc = overlay_flush(vd->ov);
	save_stats(vd, false);
	return rc;
}

static void *prefetch_worker(void *arg)
{
	struct vdisk *vd = arg;
	struct circ_err err;
	uint32_t i;

	while (!atomic_load(&vd->prefetch_stop) &&
	       (i = atomic_fetch_add(&vd->prefetch_next, 1)) < vd->m.n_prefetch) {
		const struct block_id *id = &vd->m.blocks[vd->m.prefetch[i]];

		/* Best effort: a block that fails here is fetched again when read. */
		if (!block_id_is_zero(id))
			CIRC_BEST_EFFORT(store_ensure(vd->store, id, vd->m.block_size, &err));
	}
	return NULL;
}

int vdisk_prefetch(struct vdisk *vd)
{
	unsigned n = vd->conf.blank                              ? 0
	             : vd->m.n_prefetch < VDISK_PREFETCH_THREADS ? vd->m.n_prefetch
	                                                         : VDISK_PREFETCH_THREADS;

	for (; vd->n_prefetchers < n; vd->n_prefetchers++)
		if (pthread_create(&vd->prefetchers[vd->n_prefetchers], NULL, prefetch_worker, vd))
			return -EAGAIN;
	return 0;
}

void vdisk_save_stats(struct vdisk *vd)
{
	save_stats(vd, true);
}

uint64_t vdisk_created(const struct vdisk *vd)
{
	return vd->conf.blank ? 0 : vd->m.created;
}

uint32_t vdisk_block_size(const struct vdisk *vd)
{
	return vd->block_size;
}

uint64_t vdisk_block_count(const struct vdisk *vd)
{
	return vd->n_blocks;
}

const struct disk_conf *vdisk_conf(const struct vdisk *vd)
{
	return &vd->conf;
}

const char *vdisk_dir(const struct vdisk *vd)
{
	return vd->dir;
}

void vdisk_base_block(const struct vdisk *vd, uint64_t idx, struct block_id *id)
{
	if (vd->conf.blank || idx >= vd->m.n_blocks)
		memset(id, 0, sizeof(*id));
	else
		*id = vd->m.blocks[idx];
}

bool vdisk_overlay_touches(struct vdisk *vd, uint64_t idx)
{
	uint64_t first = idx * vd->block_size / OVERLAY_SECTOR;
	uint64_t last = ((idx + 1) * vd->block_size - 1) / OVERLAY_SECTOR;
	uint64_t n_sectors = (vd->size + OVERLAY_SECTOR - 1) / OVERLAY_SECTOR;
	enum overlay_state st;

	for (uint64_t s = first; s <= last && s < n_sectors; s++)
		if (overlay_read_sector(vd->ov, s, NULL, &st) || st != OVERLAY_BASE)
			return true;
	return false;
}

const struct ulayer *vdisk_user_layer(const struct vdisk *vd)
{
	return vd->user ? user_layer_map(vd->user) : NULL;
}

void vdisk_cache_block(struct vdisk *vd, const struct block_id *id, const void *data)
{
	cache_put(vd->cache, id, data, vd->block_size); /* best effort: it can be fetched */
}

int vdisk_drop_overlay(struct vdisk *vd)
{
	return overlay_reset(vd->ov);
}

/* Whether id is cached; if whole, whether it also hashes to its name. */
static bool cached(struct vdisk *vd, const struct block_id *id, bool whole)
{
	return whole ? cache_verify(vd->cache, id, vd->block_size) == 0
	             : cache_contains(vd->cache, id);
}

static bool block_local(struct vdisk *vd, uint64_t idx, bool whole)
{
	const struct ulayer_entry *e =
	    vd->user ? ulayer_find(user_layer_map(vd->user), (uint32_t)idx) : NULL;

	if (e)
		return block_id_is_zero(&e->name) || cached(vd, &e->id, whole);
	if (vd->conf.blank || block_id_is_zero(&vd->m.blocks[idx]))
		return true;
	return cached(vd, &vd->m.blocks[idx], whole);
}

bool vdisk_block_local(struct vdisk *vd, uint64_t idx)
{
	return block_local(vd, idx, false);
}

bool vdisk_block_local_verified(struct vdisk *vd, uint64_t idx)
{
	return block_local(vd, idx, true);
}

const struct manifest *vdisk_manifest(const struct vdisk *vd)
{
	return vd->conf.blank ? NULL : &vd->m;
}

struct store *vdisk_base_store(struct vdisk *vd)
{
	return vd->store;
}

bool vdisk_base_cached(struct vdisk *vd, const struct block_id *id)
{
	return cache_contains(vd->cache, id);
}

int vdisk_sync_cache(struct vdisk *vd)
{
	return vd->cache ? cache_sync(vd->cache) : 0;
}

uint64_t vdisk_local_writes(struct vdisk *vd)
{
	return overlay_changed_sectors(vd->ov) * OVERLAY_SECTOR;
}
