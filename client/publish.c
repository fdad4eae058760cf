/* SPDX-License-Identifier: MIT */
#include "client/publish.h"

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

#include "blockfs/block.h"
#include "blockfs/file.h"
#include "blockfs/repo.h"
#include "client/progress.h"
#include "vdisk/key.h"
#include "vdisk/manifest.h"

#define BATCH 16 /* blocks a worker claims at once */

struct job {
	const struct publish_opts *opts;
	struct repo *repo;
	struct manifest *m;
	int fd;

	atomic_uint_fast64_t next; /* next block index to claim */
	atomic_uint_fast64_t bytes_done;
	atomic_bool failed;

	pthread_mutex_t lock; /* guards everything below */
	pthread_cond_t idle;
	unsigned running;
	struct circ_err err;
	struct block_id *new_ids; /* stored by this run: removed again on failure */
	size_t n_new, cap_new;
	uint64_t zero_blocks, new_bytes;
};

static void job_fail(struct job *job, const struct circ_err *err)
{
	pthread_mutex_lock(&job->lock);
	if (!atomic_load(&job->failed))
		job->err = *err;
	atomic_store(&job->failed, true);
	pthread_mutex_unlock(&job->lock);
}

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

static void *worker(void *arg)
{
	struct job *job = arg;
	uint32_t bs = job->m->block_size;
	struct block_encoder *enc = block_encoder_new(job->opts->level);
	uint8_t *data = malloc(bs);
	struct buf comp = { 0 };
	struct circ_err err;

	if (!enc || !data) {
		err_set(&err, ENOMEM, "out of memory");
		job_fail(job, &err);
		goto out;
	}
	while (!atomic_load(&job->failed)) {
		uint64_t first = atomic_fetch_add(&job->next, BATCH);

		if (first >= job->m->n_blocks)
			break;
		for (uint64_t i = first; i < first + BATCH && i < job->m->n_blocks; i++) {
			if (publish_block(job, i, data, &comp, enc, &err)) {
				job_fail(job, &err);
				goto out;
			}
			atomic_fetch_add(&job->bytes_done, bs);
		}
	}
out:
	buf_free(&comp);
	free(data);
	block_encoder_free(enc);
	pthread_mutex_lock(&job->lock);
	job->running--;
	pthread_cond_signal(&job->idle);
	pthread_mutex_unlock(&job->lock);
	return NULL;
}

/* Runs the workers; the calling thread draws progress until they finish. */
static int run_workers(struct job *job, unsigned threads, struct circ_err *err)
{
	pthread_t *tids = calloc(threads, sizeof(*tids));
	struct progress prog;
	unsigned started = 0;

	if (!tids)
		return err_set(err, ENOMEM, "out of memory");
	progress_start(&prog, "publishing", job->m->image_size);
	prog.enabled = prog.enabled && job->opts->progress;
	pthread_mutex_lock(&job->lock);
	for (; started < threads; started++) {
		if (pthread_create(&tids[started], NULL, worker, job))
			break;
		job->running++;
	}
	while (job->running) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 100 * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&job->idle, &job->lock, &ts);
		pthread_mutex_unlock(&job->lock);
		progress_update(&prog, atomic_load(&job->bytes_done));
		pthread_mutex_lock(&job->lock);
	}
	pthread_mutex_unlock(&job->lock);
	for (unsigned i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	free(tids);
	progress_end(&prog, atomic_load(&job->bytes_done));
	if (started == 0)
		return err_set(err, EAGAIN, "cannot start worker threads");
	if (atomic_load(&job->failed)) {
		*err = job->err;
		return -1;
	}
	return 0;
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

/* Finds the version to write: one past the pointer, and past any manifest a crash left. */
static int next_version(struct repo *repo, const struct key *key, const char *name,
                        uint64_t *version, uint64_t *parent, struct circ_err *err)
{
	char path[REPO_PATH_MAX];
	struct buf b = { 0 };
	struct pointer pt;
	int ret = -1;

	repo_pointer_path(name, path);
	if (repo_read_file(repo, path, POINTER_MAX_LEN, 0, &b, err) == 0) {
		if (pointer_decode(b.data, b.len, key, &pt, err)) {
			err_prefix(err, "%s/%s", repo_location(repo), path);
			goto out;
		}
		if (strcmp(pt.name, name) != 0) {
			err_set(err, EINVAL, "%s/%s names image '%s'", repo_location(repo), path,
			        pt.name);
			goto out;
		}
		*parent = pt.version;
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

static void remove_new_blocks(struct job *job)
{
	for (size_t i = 0; i < job->n_new; i++)
		repo_remove_block(job->repo, &job->new_ids[i]);
}

int publish_image(const struct publish_opts *opts, struct publish_result *res, struct circ_err *err)
{
	struct job job = { .opts = opts, .fd = -1 };
	char mpath[REPO_PATH_MAX], ppath[REPO_PATH_MAX];
	struct buf mbuf = { 0 }, pbuf = { 0 };
	double t0 = progress_now();
	struct manifest m = { 0 };
	struct pointer pt = { 0 };
	struct repo *repo = NULL;
	struct key *key = NULL;
	bool manifest_written = false;
	uint64_t size = 0, now = (uint64_t)time(NULL);
	unsigned threads = opts->threads;
	int ret = -1;

	memset(res, 0, sizeof(*res));
	pthread_mutex_init(&job.lock, NULL);
	pthread_cond_init(&job.idle, NULL);
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
	if (key_load_private(opts->key_path, &key, err))
		goto out;
	job.fd = image_open(opts->image, &size, err);
	if (job.fd < 0)
		goto out;
	if (manifest_init(&m, opts->name, size, opts->block_size, err))
		goto out;
	if (repo_open_dir(opts->repo_dir, true, &repo, err) || repo_lock(repo, err))
		goto out;
	repo_clean_temporaries(repo);
	if (next_version(repo, key, opts->name, &m.version, &m.parent, err))
		goto out;
	m.created = now;

	job.repo = repo;
	job.m = &m;
	if (!threads) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		threads = n > 0 ? (unsigned)n : 1;
	}
	if (run_workers(&job, threads, err))
		goto rollback;
	/* Every block durable before a manifest can name it. */
	if (repo_sync(repo, err))
		goto rollback;
	if (opts->prefetch && load_prefetch(&m, opts->prefetch, err))
		goto rollback;
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
	manifest_file_hash(mbuf.data, mbuf.len, pt.manifest_sha256);
	repo_pointer_path(opts->name, ppath);
	if (pointer_encode(&pt, key, &pbuf, err) ||
	    repo_write_file(repo, ppath, pbuf.data, pbuf.len, err))
		goto rollback;

	res->version = m.version;
	res->image_size = size;
	res->blocks = m.n_blocks;
	res->zero_blocks = job.zero_blocks;
	res->new_blocks = job.n_new;
	res->new_bytes = job.new_bytes;
	res->seconds = progress_now() - t0;
	ret = 0;
	goto out;
rollback:
	/* Leave the repo as it was: the old pointer still names only old objects. */
	if (manifest_written)
		repo_remove_file(repo, mpath);
	remove_new_blocks(&job);
out:
	if (job.fd >= 0)
		close(job.fd);
	free(job.new_ids);
	pthread_mutex_destroy(&job.lock);
	pthread_cond_destroy(&job.idle);
	manifest_release(&m);
	buf_free(&mbuf);
	buf_free(&pbuf);
	repo_close(repo);
	key_free(key);
	return ret;
}
