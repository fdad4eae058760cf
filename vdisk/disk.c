/* SPDX-License-Identifier: MIT */
#include "vdisk/disk.h"

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

#include "blockfs/cache.h"
#include "blockfs/file.h"
#include "blockfs/repo.h"
#include "blockfs/store.h"
#include "vdisk/manifest.h"
#include "vdisk/overlay.h"

#define STATS_SAVE_EVERY_S 5
#define SECTOR_LOCKS       64 /* stripes: writers of one sector take the same lock */

struct vdisk {
	char *dir;
	int lockfd;
	bool read_only;
	FILE *log;
	struct disk_conf conf;
	struct manifest m;
	struct repo *repo;
	struct cache *cache;
	struct store *store;
	struct overlay *ov;
	unsigned readahead;
	/* A partial-sector write is read-modify-write: no other write to that sector between. */
	pthread_mutex_t sector_locks[SECTOR_LOCKS];

	/* Background prefetch of the manifest's list. */
	pthread_t prefetchers[VDISK_PREFETCH_THREADS];
	unsigned n_prefetchers;
	atomic_uint prefetch_next;
	atomic_bool prefetch_stop;

	pthread_mutex_t lock; /* guards the fields below */
	int64_t last_block;   /* for read-ahead: the last base block read */
	unsigned ra_window;   /* blocks read ahead of the current sequential run */
	char *record_path;    /* recording the blocks read, when set */
	uint8_t *recorded;    /* a bit per block: read already */
	uint32_t *trace;      /* block indices in the order of their first read */
	size_t n_trace;
	struct disk_stats saved; /* statistics of earlier sessions */
	time_t stats_saved_at;
};

int vdisk_open(const char *state, const char *disk, const struct vdisk_options *opts,
               struct vdisk **out, struct circ_err *err)
{
	struct vdisk *vd;
	struct key *pub = NULL;
	char *cdir = NULL;

	if (!state_disk_name_valid(disk))
		return err_set(err, EINVAL, "invalid disk name '%s'", disk);
	vd = calloc(1, sizeof(*vd));
	if (!vd)
		return err_set(err, ENOMEM, "out of memory");
	vd->lockfd = -1;
	vd->last_block = -2;
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
	/* The local manifest is checked as strictly as one from the network. */
	if (state_load_pinned_key(state, vd->conf.image, &pub, err) ||
	    state_load_disk_manifest(vd->dir, pub, &vd->conf, &vd->m, err))
		goto fail;
	if (state_open_repo(&vd->conf, &opts->net, &vd->repo, err) ||
	    cache_open(cdir, opts->cache_size ? opts->cache_size : VDISK_DEFAULT_CACHE_SIZE,
	               &vd->cache, err) ||
	    store_new(vd->repo, vd->cache, opts->workers ? opts->workers : VDISK_DEFAULT_WORKERS,
	              &vd->store, err) ||
	    overlay_open(vd->dir, vd->m.image_size, &vd->ov, err))
		goto fail;
	if (opts->record_reads) {
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
	key_free(pub);
	free(cdir);
	*out = vd;
	return 0;
fail:
	key_free(pub);
	free(cdir);
	vdisk_close(vd);
	return -1;
}

void vdisk_get_stats(struct vdisk *vd, struct disk_stats *st)
{
	struct store_stats ss = { 0 };

	if (vd->store)
		store_get_stats(vd->store, &ss);
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
	if (vd->store && vd->ov)
		save_stats(vd, true);
	store_free(vd->store);
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

uint64_t vdisk_size(const struct vdisk *vd)
{
	return vd->m.image_size;
}

bool vdisk_read_only(const struct vdisk *vd)
{
	return vd->read_only;
}

const char *vdisk_image(const struct vdisk *vd)
{
	return vd->m.name;
}

uint64_t vdisk_version(const struct vdisk *vd)
{
	return vd->m.version;
}

/* After a sequential read of block idx, asks for the next blocks in the background. */
static void read_ahead(struct vdisk *vd, uint64_t idx)
{
	bool sequential;
	unsigned window;

	pthread_mutex_lock(&vd->lock);
	if ((int64_t)idx == vd->last_block) {
		pthread_mutex_unlock(&vd->lock); /* more of the same block: nothing new */
		return;
	}
	/*
	 * The kernel sends a sequential reader's requests from several FUSE
	 * threads, so they arrive a little out of order: a step forward of up
	 * to a few blocks still counts as sequential.
	 */
	sequential = (int64_t)idx > vd->last_block && (int64_t)idx <= vd->last_block + 4;
	if ((int64_t)idx > vd->last_block || (int64_t)idx < vd->last_block - 4)
		vd->last_block = (int64_t)idx;
	/*
	 * The window grows as a run goes on and starts small again after a
	 * jump, as the kernel's page cache read-ahead does: a long scan soon
	 * reads far ahead, while a boot's short runs fetch little they will
	 * not read.
	 */
	if (!sequential)
		vd->ra_window = 0;
	else
		vd->ra_window = vd->ra_window ? vd->ra_window * 2 : 2;
	if (vd->ra_window > vd->readahead)
		vd->ra_window = vd->readahead;
	window = vd->ra_window;
	pthread_mutex_unlock(&vd->lock);
	if (!sequential)
		return;
	for (uint64_t i = idx + 1; i <= idx + window && i < vd->m.n_blocks; i++)
		if (!block_id_is_zero(&vd->m.blocks[i]))
			store_prefetch(vd->store, &vd->m.blocks[i], vd->m.block_size);
}

/* Reads [off, off + len) of the base image; the range lies within one block. */
static int base_read(struct vdisk *vd, void *buf, size_t len, uint64_t off)
{
	uint64_t idx = off / vd->m.block_size;
	const struct block_id *id = &vd->m.blocks[idx];
	char hex[BLOCK_ID_HEX_LEN + 1];
	struct circ_err err;

	if (block_id_is_zero(id)) {
		memset(buf, 0, len);
		return 0;
	}
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

/* Reads within one overlay sector. */
static int sector_read(struct vdisk *vd, uint8_t *buf, size_t len, uint64_t off)
{
	uint8_t sector[OVERLAY_SECTOR];
	enum overlay_state st;
	uint64_t s = off / OVERLAY_SECTOR;
	int rc;

	rc = overlay_read_sector(vd->ov, s, sector, &st);
	if (rc)
		return rc;
	if (st == OVERLAY_ZERO)
		memset(buf, 0, len);
	else if (st == OVERLAY_DATA)
		memcpy(buf, sector + off % OVERLAY_SECTOR, len);
	return st == OVERLAY_BASE ? 1 : 0;
}

int vdisk_read(struct vdisk *vd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;
	uint64_t end;

	if (off > vd->m.image_size || len > vd->m.image_size - off)
		return -EINVAL;
	end = off + len;
	while (off < end) {
		uint64_t sector_end = (off / OVERLAY_SECTOR + 1) * OVERLAY_SECTOR;
		uint64_t block_end = (off / vd->m.block_size + 1) * vd->m.block_size;
		uint64_t run_end = sector_end < end ? sector_end : end;
		int rc = sector_read(vd, p, run_end - off, off);

		if (rc < 0)
			return rc;
		if (rc == 1) {
			/* Extend the base run over following base sectors of the same block. */
			enum overlay_state st;

			while (run_end < end && run_end < block_end &&
			       overlay_read_sector(vd->ov, run_end / OVERLAY_SECTOR, NULL, &st) ==
			           0 &&
			       st == OVERLAY_BASE)
				run_end =
				    run_end + OVERLAY_SECTOR < end ? run_end + OVERLAY_SECTOR : end;
			if (run_end > block_end)
				run_end = block_end;
			rc = base_read(vd, p, run_end - off, off);
			if (rc)
				return rc;
		}
		p += run_end - off;
		off = run_end;
	}
	return 0;
}

int vdisk_write(struct vdisk *vd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;
	uint8_t sector[OVERLAY_SECTOR];
	uint64_t end;

	if (vd->read_only)
		return -EROFS;
	if (off > vd->m.image_size || len > vd->m.image_size - off)
		return -ENOSPC;
	end = off + len;
	while (off < end) {
		uint64_t s = off / OVERLAY_SECTOR, start = s * OVERLAY_SECTOR;
		size_t in = off - start;
		size_t n = end - off < OVERLAY_SECTOR - in ? end - off : OVERLAY_SECTOR - in;
		int rc;

		pthread_mutex_lock(&vd->sector_locks[s % SECTOR_LOCKS]);
		if (n == OVERLAY_SECTOR) {
			/* A whole sector never needs the base: no fetch. */
			rc = overlay_write_sector(vd->ov, s, p);
		} else {
			/* Read-modify-write; the image's last sector may be short. */
			size_t have = vd->m.image_size - start < OVERLAY_SECTOR
			                  ? vd->m.image_size - start
			                  : OVERLAY_SECTOR;

			memset(sector, 0, sizeof(sector));
			rc = vdisk_read(vd, sector, have, start);
			if (!rc) {
				memcpy(sector + in, p, n);
				rc = overlay_write_sector(vd->ov, s, sector);
			}
		}
		pthread_mutex_unlock(&vd->sector_locks[s % SECTOR_LOCKS]);
		if (rc)
			return rc;
		p += n;
		off += n;
	}
	return 0;
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

int vdisk_discard(struct vdisk *vd, uint64_t off, uint64_t len)
{
	static const uint8_t zeros[OVERLAY_SECTOR];
	uint64_t end;

	if (vd->read_only)
		return -EROFS;
	if (off > vd->m.image_size || len > vd->m.image_size - off)
		return -EINVAL;
	end = off + len;
	while (off < end) {
		uint64_t s = off / OVERLAY_SECTOR, start = s * OVERLAY_SECTOR;
		uint64_t n = end - off < OVERLAY_SECTOR - (off - start)
		                 ? end - off
		                 : OVERLAY_SECTOR - (off - start);
		int rc;

		if (n == OVERLAY_SECTOR) {
			pthread_mutex_lock(&vd->sector_locks[s % SECTOR_LOCKS]);
			rc = overlay_zero_sector(vd->ov, s);
			pthread_mutex_unlock(&vd->sector_locks[s % SECTOR_LOCKS]);
		} else {
			rc = vdisk_write(vd, zeros, (size_t)n, off);
		}

		if (rc)
			return rc;
		off += n;
	}
	return 0;
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
			store_ensure(vd->store, id, vd->m.block_size, &err);
	}
	return NULL;
}

int vdisk_prefetch(struct vdisk *vd)
{
	unsigned n =
	    vd->m.n_prefetch < VDISK_PREFETCH_THREADS ? vd->m.n_prefetch : VDISK_PREFETCH_THREADS;

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
	return vd->m.created;
}
