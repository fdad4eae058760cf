/* SPDX-License-Identifier: MIT */
/* circ update: a disk's base moves to the newest signed version, fetching changed blocks only. */
#include "vdisk/state.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/file.h"
#include "util/fileio.h"
#include "util/parallel.h"
#include "blockfs/cache.h"
#include "blockfs/repo.h"
#include "blockfs/store.h"
#include "vdisk/image.h"
#include "vdisk/overlay.h"

#define UPDATE_THREADS 8

struct update_job {
	struct store *store;
	const struct manifest *old, *new;
	const struct state_net *net;
	uint64_t changed;
	atomic_uint_fast64_t done; /* changed blocks fetched or found cached */
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

static int update_block(void *ctx, void *scratch, uint64_t i, struct circ_err *err)
{
	struct update_job *j = ctx;

	(void)scratch;
	if (!block_changed(j, (uint32_t)i))
		return 0;
	if (store_ensure(j->store, &j->new->blocks[i], j->new->block_size, err))
		return -1;
	atomic_fetch_add(&j->done, 1);
	return 0;
}

static void update_progress(void *ctx)
{
	struct update_job *j = ctx;

	j->net->progress(j->net->progress_ctx, "blocks", false, atomic_load(&j->done), j->changed);
}

static int fetch_changed(struct store *store, const struct manifest *old,
                         const struct manifest *new, const struct state_net *net, uint64_t *changed,
                         struct circ_err *err)
{
	struct update_job j = { .store = store, .old = old, .new = new, .net = net };
	const struct parallel_ops ops = { .item = update_block,
		                          .progress =
		                              net && net->progress ? update_progress : NULL };

	for (uint32_t i = 0; i < new->n_blocks; i++)
		j.changed += block_changed(&j, i);
	*changed = j.changed;
	return parallel_for(new->n_blocks, UPDATE_THREADS, 1, &ops, &j, err);
}

static int remove_overlay(const struct fileio *fio, const char *dir, struct circ_err *err)
{
	static const char *const files[] = { "overlay.map", "overlay.log", "overlay.data" };

	for (size_t i = 0; i < 3; i++) {
		char *p;
		int rc;

		if (asprintf(&p, "%s/%s", dir, files[i]) < 0)
			return err_set(err, ENOMEM, "out of memory");
		rc = fio->unlink(fio->ctx, AT_FDCWD, p);
		if (rc && rc != -ENOENT) {
			err_sys(err, -rc, "removing %s", p);
			free(p);
			return -1;
		}
		free(p);
	}
	return 0;
}

int state_switch_base(const struct fileio *fio, const char *state, const char *disk_dir,
                      const struct disk_conf *conf, uint64_t from, uint64_t to,
                      const struct buf *raw, bool drop_overlay, struct circ_err *err)
{
	struct disk_conf next = *conf;
	char *old_manifest;

	if (!fio)
		fio = &fileio_system;
	/*
	 * The order is the promise: the writes go first (the manifest's write
	 * syncs the directory, so their removal too), then the new manifest,
	 * then disk.conf naming it (the switch itself), and only then the seen
	 * version: a seen version above disk.conf's would refuse the disk.
	 */
	if (drop_overlay && remove_overlay(fio, disk_dir, err))
		return -1;
	next.version = to;
	if (state_write_manifest_io(fio, disk_dir, to, raw, err) ||
	    disk_conf_save_io(fio, disk_dir, &next, err) ||
	    state_seen_raise_io(fio, state, conf->image, to, err))
		return -1;
	/* Left behind by a power cut, the old manifest is only a stale file. */
	old_manifest = state_manifest_path(disk_dir, from);
	if (old_manifest)
		fio->unlink(fio->ctx, AT_FDCWD, old_manifest);
	free(old_manifest);
	return 0;
}

int state_update(const char *state, const char *disk, const struct update_options *o,
                 struct update_result *res, struct circ_err *err)
{
	enum update_overlay mode = o->mode;
	const struct state_net *net = o->net;
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
	int lockfd = -1, synced, rc = -1;
	bool drop;

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
	if (conf.blank) {
		err_set(err, EINVAL, "disk '%s' is a blank disk: it has no image to update", disk);
		goto out;
	}
	if (conf.layer) {
		/*
		 * A user layer maps blocks over this exact base: under another version
		 * its blocks would mix with the new image's (qcow2's rebase copies every
		 * differing cluster for that reason). User data belongs on its own disk.
		 */
		err_set(err, EPERM,
		        "disk '%s' holds check-ins made over %s version %" PRIu64
		        ": updating its base would corrupt them; keep user data on a separate "
		        "home disk (circ create) and update only the system disk",
		        disk, conf.image, conf.version);
		goto out;
	}
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
	if (state_open_repo(&conf, net, &repo, err))
		goto out;
	state_report_downloads(repo, net);
	if (image_load_pointer(repo, pub, conf.image, (uint64_t)time(NULL), &pt, err))
		goto out;
	if (state_seen_load(state, conf.image, &seen, err))
		goto out;
	if (pt.version < conf.version || pt.version < seen) {
		err_set(err, EPERM,
		        "rollback refused: the server offers '%s' version %" PRIu64
		        ", older than version %" PRIu64 " seen before",
		        conf.image, pt.version, seen > conf.version ? seen : conf.version);
		goto out;
	}
	if (pt.version == conf.version) {
		/* Already the newest; dropping the writes is still what was asked (a kiosk's
		 * reset). */
		rc = 0;
		if (mode == UPDATE_DISCARD_OVERLAY && changed_sectors && overlay_reset(ov))
			rc = err_set(err, EIO, "discarding the local writes of '%s'", disk);
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
	/* From here on the store reads blocks in parallel: they are reported as a count. */
	state_report_downloads(repo, NULL);
	if (cache_open_io(cdir, state_cache_bound(state, o->cache_size), o->fio, &cache, err) ||
	    store_new(repo, cache, 0, &store, err) ||
	    fetch_changed(store, &old, &new, net, &res->changed_blocks, err))
		goto out;
	store_get_stats(store, &ss);
	res->fetched_bytes = ss.fetched_bytes;
	res->fetched_blocks = ss.fetched_blocks;
	res->to = new.version;

	/* Every new block is cached, and must stay so through a power cut: switch the base. */
	synced = cache_sync(cache);
	if (synced) {
		err_sys(err, -synced, "syncing the block cache %s", cdir);
		goto out;
	}
	drop = mode == UPDATE_DISCARD_OVERLAY || new.image_size != old.image_size;
	if (drop) {
		overlay_close(ov);
		ov = NULL;
	}
	if (state_switch_base(o->fio, state, dir, &conf, old.version, new.version, &raw, drop, err))
		goto out;
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
