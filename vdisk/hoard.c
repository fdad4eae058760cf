/* SPDX-License-Identifier: MIT */
#include "vdisk/hoard.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "util/parallel.h"
#include "blockfs/store.h"

struct hoard_job {
	struct vdisk *vd;
	const uint32_t *list; /* block indices, or NULL: every block */
	uint64_t n;
	atomic_uint_fast64_t done;
	void (*progress)(void *ctx, uint64_t done, uint64_t total);
	void *progress_ctx;
};

static uint64_t job_index(const struct hoard_job *j, uint64_t i)
{
	return j->list ? j->list[i] : i;
}

static void *hoard_buffer(void *ctx, struct circ_err *err)
{
	struct hoard_job *j = ctx;
	void *buf = malloc(vdisk_block_size(j->vd));

	if (!buf)
		err_set(err, ENOMEM, "out of memory");
	return buf;
}

static void hoard_buffer_free(void *ctx, void *buf)
{
	(void)ctx;
	free(buf);
}

/* Reads a block through the disk's stack: whichever layer holds it fetches it. */
static int hoard_block(void *ctx, void *buf, uint64_t i, struct circ_err *err)
{
	struct hoard_job *j = ctx;
	uint32_t bs = vdisk_block_size(j->vd);
	uint64_t size = vdisk_size(j->vd), idx = job_index(j, i), off = idx * bs;
	uint64_t len = size - off < bs ? size - off : bs;
	int rc = 0;

	/* Verified: after a power cut a cached block may be there but short or torn. */
	if (!vdisk_block_local_verified(j->vd, idx))
		rc = vdisk_read(j->vd, buf, (size_t)len, off);
	if (rc)
		return err_set(err, -rc, "block %llu cannot be fetched (see above)",
		               (unsigned long long)idx);
	atomic_fetch_add(&j->done, 1);
	return 0;
}

static void hoard_progress(void *ctx)
{
	struct hoard_job *j = ctx;

	j->progress(j->progress_ctx, atomic_load(&j->done), j->n);
}

/* The boot kit's blocks: fetched into the cache like the disk's. */
static int fetch_boot_kit(struct vdisk *vd, struct hoard_result *res, struct circ_err *err)
{
	const struct manifest *m = vdisk_manifest(vd);
	const struct manifest_file *files[2];

	if (!m)
		return 0;
	files[0] = &m->kernel;
	files[1] = &m->initrd;
	for (int f = 0; f < 2; f++)
		for (uint32_t i = 0; i < files[f]->n_blocks; i++) {
			const struct block_id *id = &files[f]->blocks[i];

			if (block_id_is_zero(id))
				continue;
			res->blocks++;
			if (store_ensure(vdisk_base_store(vd), id, m->block_size, err))
				return err_prefix(err, "the boot kit");
		}
	return 0;
}

int hoard_fetch(struct vdisk *vd, bool boot_only,
                void (*progress)(void *ctx, uint64_t done, uint64_t total), void *ctx,
                struct hoard_result *res, struct circ_err *err)
{
	const struct manifest *m = vdisk_manifest(vd);
	struct hoard_job j = { .vd = vd, .progress = progress, .progress_ctx = ctx };
	const struct parallel_ops ops = { .thread_start = hoard_buffer,
		                          .thread_end = hoard_buffer_free,
		                          .item = hoard_block,
		                          .progress = progress ? hoard_progress : NULL };
	struct disk_stats before, after;
	int rc;

	memset(res, 0, sizeof(*res));
	if (boot_only) {
		if (!m || !m->n_prefetch)
			return err_set(
			    err, ENOENT,
			    "this version lists no boot set (publish it with --prefetch)");
		j.list = m->prefetch;
		j.n = m->n_prefetch;
	} else {
		j.n = vdisk_block_count(vd);
	}
	res->blocks = j.n;
	for (uint64_t i = 0; i < j.n; i++)
		res->already += vdisk_block_local(vd, job_index(&j, i));
	vdisk_get_stats(vd, &before);
	if (parallel_for(j.n, HOARD_THREADS, 1, &ops, &j, err))
		return -1;
	if (fetch_boot_kit(vd, res, err))
		return -1;
	vdisk_get_stats(vd, &after);
	res->fetched_bytes = after.fetched_bytes - before.fetched_bytes;
	/* A hoard is for going offline: what it kept must last a power cut too. */
	rc = vdisk_sync_cache(vd);
	if (rc)
		return err_sys(err, -rc, "syncing the block cache");
	if (!boot_only) {
		struct hoard_result now;

		/* Fetched is not kept: the cache's bound or its file system's floor may say no. */
		hoard_count(vd, &now);
		res->missing = now.missing;
		if (now.missing)
			return err_set(err, ENOSPC,
			               "%" PRIu64 " of %" PRIu64
			               " blocks could not be kept in the cache "
			               "(its bound, or its file system's floor): raise circ config "
			               "cache-size or free space",
			               now.missing, now.blocks);
	}
	return 0;
}

void hoard_count(struct vdisk *vd, struct hoard_result *res)
{
	const struct manifest *m = vdisk_manifest(vd);

	memset(res, 0, sizeof(*res));
	res->blocks = vdisk_block_count(vd);
	for (uint64_t i = 0; i < res->blocks; i++)
		res->missing += !vdisk_block_local(vd, i);
	if (!m)
		return;
	/* A kernel's blocks are read through the base's store, so its cache. */
	for (uint32_t i = 0; i < m->kernel.n_blocks + m->initrd.n_blocks; i++) {
		const struct block_id *id = i < m->kernel.n_blocks
		                                ? &m->kernel.blocks[i]
		                                : &m->initrd.blocks[i - m->kernel.n_blocks];

		res->blocks++;
		res->missing += !block_id_is_zero(id) && !vdisk_base_cached(vd, id);
	}
}
