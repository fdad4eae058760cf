/* SPDX-License-Identifier: MIT */
/*
 * Work over many independent items (blocks to publish, verify, fetch) on a
 * few threads: each takes the next batch of item numbers from a shared
 * counter, so a slow item holds up only its own thread. The first failure
 * stops every thread from taking more, and is the one reported. While they
 * run, the calling thread reports progress (it waits on the workers, it
 * does not poll them).
 */
#ifndef CIRC_PARALLEL_H
#define CIRC_PARALLEL_H

#include <stdint.h>

#include "util/err.h"

#define PARALLEL_TICK_MS 100 /* how often progress is called */

struct parallel_ops {
	/*
	 * A thread's own scratch for item (a buffer, an encoder), or NULL for
	 * none: start returns NULL with err set when it cannot make it, which
	 * fails the run. end frees it.
	 */
	void *(*thread_start)(void *ctx, struct circ_err *err);
	void (*thread_end)(void *ctx, void *scratch);
	/* Item i: 0, or -1 with err set, which stops the run. */
	int (*item)(void *ctx, void *scratch, uint64_t i, struct circ_err *err);
	/* Called every PARALLEL_TICK_MS while the threads run, and once after; may be NULL. */
	void (*progress)(void *ctx);
};

/*
 * Runs ops->item for every i in [0, n) on up to threads threads (on the
 * calling thread alone if none can be started), batch items at a time.
 * Returns 0, or -1 with err set to the first failure.
 */
CIRC_MUST_CHECK int parallel_for(uint64_t n, unsigned threads, unsigned batch,
                                 const struct parallel_ops *ops, void *ctx, struct circ_err *err);

#endif
