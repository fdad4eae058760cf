/* SPDX-License-Identifier: MIT */
#include "util/parallel.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

struct run {
	uint64_t n;
	unsigned batch;
	const struct parallel_ops *ops;
	void *ctx;
	atomic_uint_fast64_t next;
	atomic_bool failed;

	pthread_mutex_t lock; /* guards what follows */
	pthread_cond_t idle;  /* a thread has finished */
	unsigned running;
	struct circ_err err; /* the first failure */
};

static void run_fail(struct run *r, const struct circ_err *err)
{
	pthread_mutex_lock(&r->lock);
	if (!atomic_exchange(&r->failed, true))
		r->err = *err;
	pthread_mutex_unlock(&r->lock);
}

static void *run_thread(void *arg)
{
	struct run *r = arg;
	struct circ_err err;
	void *scratch = NULL;

	if (r->ops->thread_start && !(scratch = r->ops->thread_start(r->ctx, &err))) {
		run_fail(r, &err);
		goto out;
	}
	while (!atomic_load(&r->failed)) {
		uint64_t first = atomic_fetch_add(&r->next, r->batch);

		if (first >= r->n)
			break;
		for (uint64_t i = first; i < r->n && i - first < r->batch; i++)
			if (r->ops->item(r->ctx, scratch, i, &err)) {
				run_fail(r, &err);
				goto out;
			}
	}
out:
	if (scratch && r->ops->thread_end)
		r->ops->thread_end(r->ctx, scratch);
	pthread_mutex_lock(&r->lock);
	r->running--;
	pthread_cond_signal(&r->idle);
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

/* Waits until no thread runs, calling progress every tick. Called with the lock held. */
static void run_wait(struct run *r)
{
	while (r->running) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += PARALLEL_TICK_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&r->idle, &r->lock, &ts);
		if (r->running && r->ops->progress) {
			pthread_mutex_unlock(&r->lock);
			r->ops->progress(r->ctx);
			pthread_mutex_lock(&r->lock);
		}
	}
}

int parallel_for(uint64_t n, unsigned threads, unsigned batch, const struct parallel_ops *ops,
                 void *ctx, struct circ_err *err)
{
	struct run r = { .n = n, .batch = batch ? batch : 1, .ops = ops, .ctx = ctx };
	pthread_t *tids = calloc(threads ? threads : 1, sizeof(*tids));
	unsigned started = 0;
	int rc = 0;

	if (!tids)
		return err_set(err, ENOMEM, "out of memory");
	pthread_mutex_init(&r.lock, NULL);
	pthread_cond_init(&r.idle, NULL);
	pthread_mutex_lock(&r.lock);
	for (; started < threads; started++) {
		if (pthread_create(&tids[started], NULL, run_thread, &r))
			break;
		r.running++;
	}
	if (!started) {
		r.running = 1;
		pthread_mutex_unlock(&r.lock);
		run_thread(&r);
		pthread_mutex_lock(&r.lock);
	}
	run_wait(&r);
	pthread_mutex_unlock(&r.lock);
	for (unsigned i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	if (ops->progress)
		ops->progress(ctx);
	if (atomic_load(&r.failed)) {
		*err = r.err;
		rc = -1;
	}
	pthread_cond_destroy(&r.idle);
	pthread_mutex_destroy(&r.lock);
	free(tids);
	return rc;
}
