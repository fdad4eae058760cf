/* SPDX-License-Identifier: MIT */
#include "vdisk/publish.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/file.h"
#include "util/parallel.h"
#include "blockfs/block.h"
#include "blockfs/repo.h"
#include "vdisk/catalog.h"
#include "vdisk/image.h"
#include "vdisk/key.h"
#include "vdisk/manifest.h"
#include "vdisk/publish_catalog.h"

#define BATCH 16 /* blocks a worker claims at once */

struct job {
	const struct publish_opts *opts;
	struct repo *repo;
	struct manifest *m;
	int fd;

	atomic_uint_fast64_t bytes_done;

	pthread_mutex_t lock;     /* guards everything below */
	struct block_id *new_ids; /* stored by this run: removed again on failure */
	size_t n_new, cap_new;
	uint64_t zero_blocks, new_bytes;
};

static int job_record_new(struct job *job, const struct block_id *id, size_t bytes)
{
	int ret = 0;

	pthread_mutex_lock(&job->lock);
	if (job->n_new == job->cap_new) {
		size_t cap = job->cap_new ? job->cap_new * 2 : 1024;
		struct block_id *p = realloc(job->new_ids, cap * sizeof(*p));

		if (!p) {
			ret = -1;
			goto out;
		}
		job->new_ids = p;
		job->cap_new = cap;
	}
	job->new_ids[job->n_new++] = *id;
	job->new_bytes += bytes;
out:
	pthread_mutex_unlock(&job->lock);
	return ret;
}

static int read_block(int fd, uint8_t *buf, size_t len, uint64_t off, size_t block_size,
                      const char *path, struct circ_err *err)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = pread(fd, buf + got, len - got, (off_t)(off + got));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return err_sys(err, errno, "reading %s", path);
		if (n == 0)
			return err_set(err, EIO, "%s: shrank while being published", path);
		got += (size_t)n;
	}
	/* The last block is padded with zeros; the manifest keeps the exact size. */
	memset(buf + len, 0, block_size - len);
	return 0;
}

static int publish_block(struct job *job, uint64_t idx, uint8_t *data, struct buf *comp,
                         struct block_encoder *enc, struct circ_err *err)
{
	const struct manifest *m = job->m;
	uint64_t off = idx * m->block_size;
	size_t len = m->image_size - off < m->block_size ? m->image_size - off : m->block_size;
	struct block_id id;

	if (read_block(job->fd, data, len, off, m->block_size, job->opts->image, err))
		return -1;
	if (block_is_zero(data, m->block_size)) {
		pthread_mutex_lock(&job->lock);
		job->zero_blocks++;
		pthread_mutex_unlock(&job->lock);
		return 0; /* the table's all-zero ID already says so */
	}
	block_id_compute(&id, data, m->block_size);
	m->blocks[idx] = id;
	if (repo_has_block(job->repo, &id))
		return 0;
	if (block_encode(enc, data, m->block_size, comp, err) ||
	    repo_store_block(job->repo, &id, comp->data, comp->len, err))
		return -1;
	if (job_record_new(job, &id, comp->len)) {
		repo_remove_block(job->repo, &id);
		return err_set(err, ENOMEM, "out of memory");
	}
	return 0;
}

struct worker {
	struct block_encoder *enc;
	uint8_t *data;
	struct buf comp;
};

static void worker_free(void *ctx, void *scratch)
{
	struct worker *w = scratch;

	(void)ctx;
	buf_free(&w->comp);
	free(w->data);
	block_encoder_free(w->enc);
	free(w);
}

static void *worker_new(void *ctx, struct circ_err *err)
{
	struct job *job = ctx;
	struct worker *w = calloc(1, sizeof(*w));

	if (w) {
		w->enc = block_encoder_new(job->opts->level);
		w->data = malloc(job->m->block_size);
		if (!w->enc || !w->data) {
			worker_free(job, w);
			w = NULL;
		}
	}
	if (!w)
		err_set(err, ENOMEM, "out of memory");
	return w;
}

static int worker_block(void *ctx, void *scratch, uint64_t i, struct circ_err *err)
{
	struct job *job = ctx;
	struct worker *w = scratch;

	if (publish_block(job, i, w->data, &w->comp, w->enc, err))
		return -1;
	atomic_fetch_add(&job->bytes_done, job->m->block_size);
	return 0;
}

static void worker_progress(void *ctx)
{
	struct job *job = ctx;
	uint64_t done = atomic_load(&job->bytes_done);

	/* The last block counts whole, padding and all: the bar stops at the image's size. */
	job->opts->progress(job->opts->progress_ctx,
	                    done < job->m->image_size ? done : job->m->image_size,
	                    job->m->image_size);
}

/* Runs the workers; the calling thread reports progress until they finish. */
static int run_workers(struct job *job, unsigned threads, struct circ_err *err)
{
	const struct parallel_ops ops = { .thread_start = worker_new,
		                          .thread_end = worker_free,
		                          .item = worker_block,
		                          .progress =
		                              job->opts->progress ? worker_progress : NULL };

	return parallel_for(job->m->n_blocks, threads, BATCH, &ops, job, err);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int image_open(const char *path, uint64_t *size, struct circ_err *err)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return err_sys(err, errno, "image %s", path);
	if (fstat(fd, &st)) {
		err_sys(err, errno, "image %s", path);
		goto fail;
	}
	if (S_ISREG(st.st_mode)) {
		*size = (uint64_t)st.st_size;
	} else if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, size)) {
			err_sys(err, errno, "image %s", path);
			goto fail;
		}
	} else {
		err_set(err, EINVAL, "image %s: not a regular file or block device", path);
		goto fail;
	}
	if (*size == 0) {
		err_set(err, EINVAL, "image %s is empty", path);
		goto fail;
	}
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	return fd;
fail:
	close(fd);
	return -1;
}

/*
 * Finds the version to write: one past the pointer, and past any manifest a
 * crash left. pt receives the parent's pointer (version 0: there is none).
 */
static int next_version(struct repo *repo, const struct key *key, const char *name,
                        uint64_t *version, uint64_t *parent, struct pointer *pt,
                        struct circ_err *err)
{
	char path[REPO_PATH_MAX];
	struct buf b = { 0 };
	int ret = -1;

	memset(pt, 0, sizeof(*pt));
	repo_pointer_path(name, path);
	if (repo_read_file(repo, path, POINTER_MAX_LEN, 0, &b, err) == 0) {
		if (pointer_decode(b.data, b.len, key, pt, err)) {
			err_prefix(err, "%s/%s", repo_location(repo), path);
			goto out;
		}
		if (strcmp(pt->name, name) != 0) {
			err_set(err, EINVAL, "%s/%s names image '%s'", repo_location(repo), path,
			        pt->name);
			goto out;
		}
		*parent = pt->version;
	} else if (err->errnum == ENOENT) {
		*parent = 0;
	} else {
		goto out;
	}
	*version = *parent + 1;
	for (;;) {
		repo_manifest_path(name, *version, path);
		if (!repo_file_exists(repo, path))
			break;
		(*version)++;
	}
	ret = 0;
out:
	buf_free(&b);
	return ret;
}

/*
 * The boot's working set, recorded on the previous version: indices in the
 * order they were first read. Zero blocks, repeats and indices past this
 * version's end are left out; the list is untrusted text.
 */
static int load_prefetch(struct manifest *m, const char *path, struct circ_err *err)
{
	uint8_t *seen = calloc(m->n_blocks / 8 + 1, 1);
	struct buf b = { 0 };
	char *p, *end;
	int ret = -1;

	m->prefetch = calloc(m->n_blocks, sizeof(*m->prefetch));
	if (!seen || !m->prefetch) {
		err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	if (file_read_all(path, 64u << 20, &b, err) || buf_append(&b, "", 1))
		goto out;
	for (p = (char *)b.data; p < (char *)b.data + b.len - 1; p = end) {
		unsigned long long idx;

		while (*p == '\n' || *p == ' ' || *p == '\t' || *p == '\r')
			p++;
		if (!*p && p == (char *)b.data + b.len - 1)
			break;
		if (*p < '0' || *p > '9') {
			err_set(err, EINVAL, "%s: not a list of block numbers", path);
			goto out;
		}
		idx = strtoull(p, &end, 10);
		if (idx < m->n_blocks && !block_id_is_zero(&m->blocks[idx]) &&
		    !(seen[idx / 8] & (1u << (idx % 8)))) {
			seen[idx / 8] |= (uint8_t)(1u << (idx % 8));
			m->prefetch[m->n_prefetch++] = (uint32_t)idx;
		}
	}
	ret = 0;
out:
	free(seen);
	buf_free(&b);
	return ret;
}

/* A kernel or initrd to publish: a regular, non-empty file within the format's bound. */
static int bootfile_open(const char *path, uint64_t *size, struct circ_err *err)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return err_sys(err, errno, "%s", path);
	if (fstat(fd, &st)) {
		err_sys(err, errno, "%s", path);
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		err_set(err, EINVAL, "%s: not a regular file", path);
		goto fail;
	}
	if (st.st_size == 0) {
		err_set(err, EINVAL, "%s is empty", path);
		goto fail;
	}
	if ((uint64_t)st.st_size > MANIFEST_BOOTFILE_MAX) {
		err_set(err, EFBIG, "%s is larger than %llu bytes", path,
		        (unsigned long long)MANIFEST_BOOTFILE_MAX);
		goto fail;
	}
	*size = (uint64_t)st.st_size;
	return fd;
fail:
	close(fd);
	return -1;
}

/*
 * What a VMM can boot: a bzImage (the boot protocol's "HdrS" at 0x202) or an
 * ELF64 file (vmlinux, a unikernel). Anything else is most likely the wrong
 * file given by mistake (an initrd, a disk image), better refused now than
 * at every client's boot.
 */
static int check_kernel(int fd, const char *path, uint64_t size, struct circ_err *err)
{
	uint8_t h[0x206] = { 0 };
	size_t n = size < sizeof(h) ? (size_t)size : sizeof(h);
	int rc = file_pread_full(fd, h, n, 0);

	if (rc)
		return err_sys(err, -rc, "reading %s", path);
	if (n >= 0x206 && memcmp(h + 0x202, "HdrS", 4) == 0)
		return 0;
	if (n >= 64 && memcmp(h, "\177ELF", 4) == 0 && h[4] == 2 /* ELFCLASS64 */)
		return 0;
	return err_set(err, EINVAL,
	               "%s is not a kernel: neither a bzImage (\"HdrS\" at 0x202) nor an ELF64 "
	               "file",
	               path);
}

/*
 * Cuts a boot file into blocks of the image's block size and stores those
 * the repo lacks, like the image's own (deduplicated, zero blocks never
 * stored, removed again if the publish fails).
 */
static int store_bootfile(struct job *job, struct manifest_file *f, int fd, const char *path,
                          uint64_t size, struct circ_err *err)
{
	uint32_t bs = job->m->block_size;
	struct block_encoder *enc = block_encoder_new(job->opts->level);
	uint8_t *data = malloc(bs);
	struct buf comp = { 0 };
	int ret = -1;

	if (!enc || !data) {
		err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	if (manifest_file_init(f, size, bs, err))
		goto out;
	for (uint32_t i = 0; i < f->n_blocks; i++) {
		uint64_t off = (uint64_t)i * bs;
		size_t len = size - off < bs ? (size_t)(size - off) : bs;
		struct block_id *id = &f->blocks[i];

		if (read_block(fd, data, len, off, bs, path, err))
			goto out;
		if (block_is_zero(data, bs))
			continue;
		block_id_compute(id, data, bs);
		if (repo_has_block(job->repo, id))
			continue;
		if (block_encode(enc, data, bs, &comp, err) ||
		    repo_store_block(job->repo, id, comp.data, comp.len, err))
			goto out;
		if (job_record_new(job, id, comp.len)) {
			repo_remove_block(job->repo, id);
			err_set(err, ENOMEM, "out of memory");
			goto out;
		}
	}
	ret = 0;
out:
	buf_free(&comp);
	free(data);
	block_encoder_free(enc);
	return ret;
}

/*
 * The parent's boot file, for this version. Its block IDs carry over as they
 * are when the block size is the same; otherwise the file is put back
 * together from the repo's (verified) blocks and cut again.
 */
static int inherit_bootfile(struct job *job, struct manifest_file *f, const struct manifest *parent,
                            const struct manifest_file *pf, struct circ_err *err)
{
	uint32_t pbs = parent->block_size;
	struct buf comp = { 0 };
	uint8_t *data = NULL;
	FILE *tmp = NULL;
	int rc, ret = -1;

	if (pf->size == 0) {
		memset(f, 0, sizeof(*f));
		return 0;
	}
	if (pbs == job->m->block_size) {
		if (manifest_file_init(f, pf->size, pbs, err))
			return -1;
		memcpy(f->blocks, pf->blocks, (size_t)pf->n_blocks * sizeof(*f->blocks));
		return 0;
	}
	data = malloc(pbs);
	tmp = tmpfile();
	if (!data || !tmp) {
		err_sys(err, data ? errno : ENOMEM, "a temporary file for the parent's boot kit");
		goto out;
	}
	for (uint32_t i = 0; i < pf->n_blocks; i++) {
		uint64_t off = (uint64_t)i * pbs;
		size_t len = pf->size - off < pbs ? (size_t)(pf->size - off) : pbs;

		if (block_id_is_zero(&pf->blocks[i]))
			memset(data, 0, pbs);
		else if (repo_read_block(job->repo, &pf->blocks[i], pbs, data, &comp, err))
			goto out;
		rc = file_pwrite_full(fileno(tmp), data, len, off);
		if (rc) {
			err_sys(err, -rc, "writing a temporary file");
			goto out;
		}
	}
	ret = store_bootfile(job, f, fileno(tmp), "the parent's boot kit", pf->size, err);
out:
	if (tmp)
		fclose(tmp);
	buf_free(&comp);
	free(data);
	return ret;
}

/* The version's boot kit and description, from the options and the parent. */
static int make_kit(struct job *job, const struct manifest *parent, int kfd, uint64_t ksize,
                    int ifd, uint64_t isize, struct publish_result *res, struct circ_err *err)
{
	const struct publish_opts *o = job->opts;
	struct manifest *m = job->m;
	bool parent_kit = parent && parent->kernel.size;

	if (o->description)
		snprintf(m->description, sizeof(m->description), "%s", o->description);
	else if (parent)
		memcpy(m->description, parent->description, sizeof(m->description));
	if (!o->kernel && !parent_kit) {
		if (o->initrd || o->cmdline) {
			err_set(
			    err, EINVAL,
			    "--initrd and --cmdline need --kernel: '%s' has no boot kit to keep",
			    o->name);
			return PUBLISH_USAGE;
		}
		return 0;
	}
	if (o->kernel) {
		if (store_bootfile(job, &m->kernel, kfd, o->kernel, ksize, err))
			return -1;
	} else {
		res->kit_inherited = true;
		if (inherit_bootfile(job, &m->kernel, parent, &parent->kernel, err))
			return -1;
	}
	if (o->initrd) {
		if (store_bootfile(job, &m->initrd, ifd, o->initrd, isize, err))
			return -1;
	} else if (!o->kernel && inherit_bootfile(job, &m->initrd, parent, &parent->initrd, err)) {
		return -1;
	}
	if (o->cmdline)
		snprintf(m->cmdline, sizeof(m->cmdline), "%s", o->cmdline);
	else if (!o->kernel)
		memcpy(m->cmdline, parent->cmdline, sizeof(m->cmdline));
	return 0;
}

/*
 * A publish that a crash stopped before it synced its blocks may have left
 * some short or torn under their names, and a block that is there is not
 * stored again. So each publish marks the repo (.publishing, removed once its
 * blocks are synced), and the next one, finding the mark, first checks every
 * block stored since the mark was made and removes the damaged ones.
 */
#define PUBLISH_MARK ".publishing"

static int recover_crashed_publish(struct repo *repo, const char *dir, uint64_t *removed,
                                   struct circ_err *err)
{
	struct stat st;
	char *path;
	int rc;

	*removed = 0;
	if (asprintf(&path, "%s/" PUBLISH_MARK, dir) < 0)
		return err_set(err, ENOMEM, "out of memory");
	rc = stat(path, &st);
	free(path);
	if (rc)
		return errno == ENOENT ? 0 : err_sys(err, errno, "%s/" PUBLISH_MARK, dir);
	/*
	 * Synced before the mark is made again: a publisher killed (not cut)
	 * left blocks that read whole from memory, and the removals must last.
	 */
	if (repo_check_blocks_since(repo, &st.st_mtim, removed, err) || repo_sync(repo, err))
		return -1;
	return 0;
}

static void remove_new_blocks(struct job *job)
{
	for (size_t i = 0; i < job->n_new; i++)
		repo_remove_block(job->repo, &job->new_ids[i]);
}

int publish_image(const struct publish_opts *opts, struct publish_result *res, struct circ_err *err)
{
	struct job job = { .opts = opts, .fd = -1 };
	char mpath[REPO_PATH_MAX], ppath[REPO_PATH_MAX];
	struct buf mbuf = { 0 }, pbuf = { 0 }, cbuf = { 0 };
	double t0 = now_s();
	struct manifest m = { 0 }, parent = { 0 };
	struct pointer pt = { 0 }, ppt;
	struct repo *repo = NULL;
	struct key *key = NULL;
	bool manifest_written = false, pointer_written = false;
	uint64_t size = 0, ksize = 0, isize = 0, now = (uint64_t)time(NULL);
	unsigned threads = opts->threads;
	int kfd = -1, ifd = -1, rc, ret = -1;

	memset(res, 0, sizeof(*res));
	pthread_mutex_init(&job.lock, NULL);
	if (!repo_name_valid(opts->name)) {
		err_set(err, EINVAL,
		        "invalid image name '%s': use 1-64 letters, digits, '.', '_' or '-', "
		        "not starting with '.'",
		        opts->name);
		goto out;
	}
	if (!block_size_valid(opts->block_size)) {
		err_set(err, EINVAL, "block size %u is not a power of two from 4K to 4M",
		        opts->block_size);
		goto out;
	}
	if (opts->cmdline && !manifest_cmdline_valid(opts->cmdline, strlen(opts->cmdline))) {
		err_set(err, EINVAL, "kernel command line: at most %d printable ASCII characters",
		        MANIFEST_CMDLINE_MAX);
		goto out;
	}
	if (opts->description &&
	    !manifest_description_valid(opts->description, strlen(opts->description))) {
		err_set(err, EINVAL,
		        "description: at most %d bytes of UTF-8 without control characters",
		        MANIFEST_DESC_MAX);
		goto out;
	}
	if (key_load_private(opts->key_path, &key, err))
		goto out;
	job.fd = image_open(opts->image, &size, err);
	if (job.fd < 0)
		goto out;
	/* The boot files are checked before the repo is touched: a bad one publishes nothing. */
	if (opts->kernel) {
		kfd = bootfile_open(opts->kernel, &ksize, err);
		if (kfd < 0 || check_kernel(kfd, opts->kernel, ksize, err))
			goto out;
	}
	if (opts->initrd) {
		ifd = bootfile_open(opts->initrd, &isize, err);
		if (ifd < 0)
			goto out;
	}
	if (manifest_init(&m, opts->name, size, opts->block_size, err))
		goto out;
	if (repo_open_dir_io(opts->repo_dir, true, opts->fio, &repo, err) || repo_lock(repo, err))
		goto out;
	repo_clean_temporaries(repo);
	publish_clean_root_temporaries(opts->repo_dir);
	if (recover_crashed_publish(repo, opts->repo_dir, &res->damaged_removed, err))
		goto out;
	if (next_version(repo, key, opts->name, &m.version, &m.parent, &ppt, err))
		goto out;
	if (m.parent && image_load_manifest(repo, key, &ppt, 0, &parent, NULL, err)) {
		err_prefix(err, "the parent version %llu", (unsigned long long)m.parent);
		goto out;
	}
	m.created = now;

	job.repo = repo;
	job.m = &m;
	/* From here blocks are stored: marked until they are synced. */
	if (repo_write_file(repo, PUBLISH_MARK, "", 0, err))
		goto out;
	rc = make_kit(&job, m.parent ? &parent : NULL, kfd, ksize, ifd, isize, res, err);
	if (rc) {
		remove_new_blocks(&job);
		repo_remove_file(repo, PUBLISH_MARK);
		ret = rc;
		goto out;
	}
	if (!threads) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		threads = n > 0 ? (unsigned)n : 1;
	}
	if (run_workers(&job, threads, err))
		goto rollback;
	/* Every block durable before a manifest can name it. */
	if (repo_sync(repo, err))
		goto rollback;
	/* Should its removal be lost, the next publish only checks blocks that are whole. */
	repo_remove_file(repo, PUBLISH_MARK);
	if (opts->prefetch && load_prefetch(&m, opts->prefetch, err))
		goto rollback;
	/* Format 1 for clients older than the boot kit (it cannot carry one). */
	m.format = opts->format;
	if (manifest_encode(&m, key, &mbuf, err))
		goto rollback;
	repo_manifest_path(opts->name, m.version, mpath);
	if (repo_write_file(repo, mpath, mbuf.data, mbuf.len, err))
		goto rollback;
	manifest_written = true;

	snprintf(pt.name, sizeof(pt.name), "%s", opts->name);
	pt.version = m.version;
	pt.created = now;
	pt.expires = now + opts->expires_in;
	pt.format = opts->format;
	pt.manifest_size = opts->format == 1 ? 0 : mbuf.len;
	manifest_file_hash(mbuf.data, mbuf.len, pt.manifest_sha256);
	repo_pointer_path(opts->name, ppath);
	/* The catalog is made before the pointer is replaced, so that it cannot fail after. */
	if (pointer_encode(&pt, key, &pbuf, err) ||
	    publish_make_catalog(repo, opts->repo_dir, &m, &pt, key, now, &cbuf, res, err) ||
	    repo_write_file(repo, ppath, pbuf.data, pbuf.len, err))
		goto rollback;
	pointer_written = true;
	if (repo_write_file(repo, REPO_CATALOG, cbuf.data, cbuf.len, err)) {
		/* The version is out; only the index lags, until the next publish. */
		err_prefix(err, "%s version %llu is published, but its catalog is not", opts->name,
		           (unsigned long long)m.version);
		goto out;
	}

	res->version = m.version;
	res->image_size = size;
	res->blocks = m.n_blocks;
	res->zero_blocks = job.zero_blocks;
	res->new_blocks = job.n_new;
	res->new_bytes = job.new_bytes;
	res->kernel_size = m.kernel.size;
	res->initrd_size = m.initrd.size;
	res->seconds = now_s() - t0;
	ret = 0;
	goto out;
rollback:
	/* Leave the repo as it was: the old pointer still names only old objects. */
	if (manifest_written && !pointer_written)
		repo_remove_file(repo, mpath);
	remove_new_blocks(&job);
	repo_remove_file(repo, PUBLISH_MARK);
out:
	if (job.fd >= 0)
		close(job.fd);
	if (kfd >= 0)
		close(kfd);
	if (ifd >= 0)
		close(ifd);
	free(job.new_ids);
	pthread_mutex_destroy(&job.lock);
	manifest_release(&m);
	manifest_release(&parent);
	buf_free(&mbuf);
	buf_free(&pbuf);
	buf_free(&cbuf);
	repo_close(repo);
	key_free(key);
	return ret;
}
