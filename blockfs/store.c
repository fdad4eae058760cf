/* SPDX-License-Identifier: MIT */
#include "blockfs/store.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define QUEUE_LEN 1024

/* One fetch in progress; readers of the same block wait on it. */
struct flight {
	struct block_id id;
	size_t block_size;
	uint8_t *data; /* the verified block, once done */
	int rc;
	struct circ_err err;
	bool done;
	pthread_cond_t finished; /* readers of the block wait here, not with every other */
	unsigned users;          /* the fetcher and its waiters */
	struct flight *next;
};

struct pending {
	struct block_id id;
	size_t block_size;
};

struct store {
	struct store_source src;
	struct cache *cache;

	pthread_mutex_t lock; /* guards everything below */
	/*
	 * Separate waits, so that a block arriving wakes its readers only and
	 * a block queued wakes one worker: at hundreds of blocks a second, one
	 * shared broadcast woke every thread for each.
	 */
	pthread_cond_t work;    /* the queue gained a block, or the store is stopping */
	pthread_cond_t drained; /* the queue is empty and no worker is busy */
	struct flight *flights;
	struct pending queue[QUEUE_LEN];
	size_t q_head, q_len;
	unsigned busy_workers;
	bool stopping;
	struct store_stats stats;

	pthread_t *workers;
	unsigned n_workers;
};

static struct flight *flight_find(struct store *s, const struct block_id *id)
{
	for (struct flight *f = s->flights; f; f = f->next)
		if (block_id_equal(&f->id, id))
			return f;
	return NULL;
}

static void flight_put(struct store *s, struct flight *f)
{
	if (--f->users)
		return;
	for (struct flight **p = &s->flights; *p; p = &(*p)->next)
		if (*p == f) {
			*p = f->next;
			break;
		}
	pthread_cond_destroy(&f->finished);
	free(f->data);
	free(f);
}

/* Fetches and verifies f's block (lock not held), then publishes the result. */
static void flight_run(struct store *s, struct flight *f)
{
	struct buf comp = { 0 };
	uint8_t *data = malloc(f->block_size);
	int rc;

	if (!data) {
		rc = err_set(&f->err, ENOMEM, "out of memory");
	} else if (cache_read(s->cache, &f->id, f->block_size, 0, f->block_size, data) == 0) {
		rc = 0; /* cached by a flight that ended just before this one began */
	} else {
		rc = s->src.read_block(s->src.ctx, &f->id, f->block_size, data, &comp, &f->err);
		if (!rc)
			cache_put(s->cache, &f->id, data, f->block_size); /* best effort */
	}
	pthread_mutex_lock(&s->lock);
	if (!rc) {
		if (comp.len) {
			s->stats.fetched_blocks++;
			s->stats.fetched_bytes += comp.len;
		}
		f->data = data;
		data = NULL;
	} else {
		s->stats.failures++;
	}
	f->rc = rc;
	f->done = true;
	pthread_cond_broadcast(&f->finished);
	pthread_mutex_unlock(&s->lock);
	free(data);
	buf_free(&comp);
}

/*
 * Gets id into the cache or a flight. Returns the flight to read from (the
 * caller must flight_put it under the lock), or NULL with *rc set: 0 if the
 * block is cached, an error otherwise. Called with the lock held.
 */
static struct flight *acquire(struct store *s, const struct block_id *id, size_t block_size,
                              bool *collapsed)
{
	struct flight *f = flight_find(s, id);

	*collapsed = f != NULL;
	if (f) {
		f->users++;
		while (!f->done)
			pthread_cond_wait(&f->finished, &s->lock);
		return f;
	}
	f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->id = *id;
	f->block_size = block_size;
	f->users = 1;
	pthread_cond_init(&f->finished, NULL);
	f->next = s->flights;
	s->flights = f;
	pthread_mutex_unlock(&s->lock);
	flight_run(s, f);
	pthread_mutex_lock(&s->lock);
	return f;
}

static int fetch_into(struct store *s, const struct block_id *id, size_t block_size, uint64_t off,
                      size_t len, void *out, struct circ_err *err)
{
	struct flight *f;
	bool collapsed;
	int rc;

	pthread_mutex_lock(&s->lock);
	f = acquire(s, id, block_size, &collapsed);
	if (!f) {
		pthread_mutex_unlock(&s->lock);
		return err_set(err, ENOMEM, "out of memory");
	}
	if (collapsed)
		s->stats.collapsed++;
	rc = f->rc;
	if (rc)
		*err = f->err;
	else if (out)
		memcpy(out, f->data + off, len);
	flight_put(s, f);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int store_read(struct store *s, const struct block_id *id, size_t block_size, uint64_t off,
               size_t len, void *out, struct circ_err *err)
{
	int rc;

	if (off > block_size || len > block_size - off)
		return err_set(err, EINVAL, "read outside the block");
	rc = cache_read(s->cache, id, block_size, off, len, out);
	/* Counted without the lock: a warm read's whole cost is a few hundred ns. */
	__atomic_add_fetch(rc == 0 ? &s->stats.hits : &s->stats.misses, 1, __ATOMIC_RELAXED);
	if (rc == 0)
		return 0;
	if (rc != -ENOENT)
		return err_sys(err, -rc, "reading the block cache");
	return fetch_into(s, id, block_size, off, len, out, err);
}

int store_ensure(struct store *s, const struct block_id *id, size_t block_size,
                 struct circ_err *err)
{
	/* Verified, not only there: a power cut may have left it short or torn. */
	if (cache_verify(s->cache, id, block_size) == 0)
		return 0;
	return fetch_into(s, id, block_size, 0, 0, NULL, err);
}

void store_prefetch(struct store *s, const struct block_id *id, size_t block_size)
{
	/* A block fetched ahead but not kept would be fetched again when read. */
	if (cache_contains(s->cache, id) || !cache_has_room(s->cache))
		return;
	pthread_mutex_lock(&s->lock);
	/* Without workers nobody would take it: queueing would only hang store_drain. */
	if (s->n_workers && s->q_len < QUEUE_LEN && !flight_find(s, id)) {
		s->queue[(s->q_head + s->q_len) % QUEUE_LEN] =
		    (struct pending){ .id = *id, .block_size = block_size };
		s->q_len++;
		pthread_cond_signal(&s->work);
	}
	pthread_mutex_unlock(&s->lock);
}

static void *worker(void *arg)
{
	struct store *s = arg;
	struct circ_err err;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		struct pending p;

		while (!s->q_len && !s->stopping)
			pthread_cond_wait(&s->work, &s->lock);
		if (s->stopping)
			break;
		p = s->queue[s->q_head];
		s->q_head = (s->q_head + 1) % QUEUE_LEN;
		s->q_len--;
		s->busy_workers++;
		pthread_mutex_unlock(&s->lock);
		if (!cache_contains(s->cache, &p.id))
			fetch_into(s, &p.id, p.block_size, 0, 0, NULL, &err);
		pthread_mutex_lock(&s->lock);
		if (!--s->busy_workers && !s->q_len)
			pthread_cond_broadcast(&s->drained);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

static int read_from_repo(void *ctx, const struct block_id *id, size_t block_size, void *out,
                          struct buf *comp, struct circ_err *err)
{
	return repo_read_block(ctx, id, block_size, out, comp, err);
}

int store_new(struct repo *repo, struct cache *cache, unsigned workers, struct store **out,
              struct circ_err *err)
{
	struct store_source src = { .read_block = read_from_repo,
		                    .ctx = repo,
		                    .fetch = repo_fetcher(repo) };

	return store_new_source(&src, cache, workers, out, err);
}

int store_new_source(const struct store_source *src, struct cache *cache, unsigned workers,
                     struct store **out, struct circ_err *err)
{
	struct store *s = calloc(1, sizeof(*s));

	if (!s)
		return err_set(err, ENOMEM, "out of memory");
	s->src = *src;
	s->cache = cache;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->work, NULL);
	pthread_cond_init(&s->drained, NULL);
	s->workers = calloc(workers ? workers : 1, sizeof(*s->workers));
	if (!s->workers) {
		store_free(s);
		return err_set(err, ENOMEM, "out of memory");
	}
	for (; s->n_workers < workers; s->n_workers++)
		if (pthread_create(&s->workers[s->n_workers], NULL, worker, s))
			break;
	*out = s;
	return 0;
}

void store_drain(struct store *s)
{
	pthread_mutex_lock(&s->lock);
	while (s->q_len || s->busy_workers)
		pthread_cond_wait(&s->drained, &s->lock);
	pthread_mutex_unlock(&s->lock);
}

void store_free(struct store *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	pthread_cond_broadcast(&s->work);
	pthread_mutex_unlock(&s->lock);
	for (unsigned i = 0; i < s->n_workers; i++)
		pthread_join(s->workers[i], NULL);
	free(s->workers);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->work);
	pthread_cond_destroy(&s->drained);
	free(s);
}

void store_get_stats(struct store *s, struct store_stats *st)
{
	struct fetch *f = s->src.fetch;
	struct fetch_stats fs = { 0 };

	if (f)
		fetch_get_stats(f, &fs);
	pthread_mutex_lock(&s->lock);
	*st = s->stats;
	st->hits = __atomic_load_n(&s->stats.hits, __ATOMIC_RELAXED);
	st->misses = __atomic_load_n(&s->stats.misses, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&s->lock);
	st->requests = fs.requests;
}
