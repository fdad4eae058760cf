/* SPDX-License-Identifier: MIT */
#include "vdisk/verify.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/parallel.h"

struct entry {
	struct block_id id;
	uint32_t index; /* the first block with this ID */
};

struct check {
	struct repo *repo;
	uint32_t block_size;
	struct entry *entries;
	size_t n_entries;
	atomic_uint_fast64_t bytes_done;
	const struct verify_opts *opts;

	pthread_mutex_t lock; /* guards what follows */
	struct verify_damage *damaged;
	size_t n_damaged, cap_damaged;
	bool out_of_memory;
};

static int entry_cmp(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	int c = memcmp(x->id.b, y->id.b, BLOCK_ID_LEN);

	if (c)
		return c;
	return x->index < y->index ? -1 : x->index > y->index;
}

static int damage_cmp(const void *a, const void *b)
{
	const struct verify_damage *x = a, *y = b;

	return x->index < y->index ? -1 : x->index > y->index;
}

static void record_damage(struct check *ck, const struct entry *e, const struct circ_err *err)
{
	pthread_mutex_lock(&ck->lock);
	if (ck->n_damaged == ck->cap_damaged) {
		size_t cap = ck->cap_damaged ? ck->cap_damaged * 2 : 16;
		struct verify_damage *p = realloc(ck->damaged, cap * sizeof(*p));

		if (!p) {
			ck->out_of_memory = true;
			pthread_mutex_unlock(&ck->lock);
			return;
		}
		ck->damaged = p;
		ck->cap_damaged = cap;
	}
	ck->damaged[ck->n_damaged++] =
	    (struct verify_damage){ .index = e->index, .id = e->id, .err = *err };
	pthread_mutex_unlock(&ck->lock);
}

struct check_scratch {
	uint8_t *data;
	struct buf comp;
};

static void *check_scratch_new(void *ctx, struct circ_err *err)
{
	struct check *ck = ctx;
	struct check_scratch *sc = calloc(1, sizeof(*sc));

	if (sc && !(sc->data = malloc(ck->block_size))) {
		free(sc);
		sc = NULL;
	}
	if (!sc)
		err_set(err, ENOMEM, "out of memory");
	return sc;
}

static void check_scratch_free(void *ctx, void *scratch)
{
	struct check_scratch *sc = scratch;

	(void)ctx;
	buf_free(&sc->comp);
	free(sc->data);
	free(sc);
}

/* A damaged block is recorded, not a failure: every block is checked. */
static int check_block(void *ctx, void *scratch, uint64_t i, struct circ_err *err)
{
	struct check *ck = ctx;
	struct check_scratch *sc = scratch;
	const struct entry *e = &ck->entries[i];
	struct circ_err bad;

	(void)err;
	if (repo_read_block(ck->repo, &e->id, ck->block_size, sc->data, &sc->comp, &bad))
		record_damage(ck, e, &bad);
	atomic_fetch_add(&ck->bytes_done, ck->block_size);
	return 0;
}

static void check_progress(void *ctx)
{
	struct check *ck = ctx;

	ck->opts->progress(ck->opts->progress_ctx, atomic_load(&ck->bytes_done),
	                   (uint64_t)ck->n_entries * ck->block_size);
}

/*
 * Lists each distinct non-zero block once, by the first index that uses it:
 * the image's, then the boot kit's (numbered on after the image's).
 */
static size_t distinct_blocks(const struct manifest *m, struct entry *out, size_t *zeros)
{
	const struct manifest_file *kit[2] = { &m->kernel, &m->initrd };
	size_t n = 0, w = 0;
	uint32_t index = m->n_blocks;

	for (uint32_t i = 0; i < m->n_blocks; i++)
		if (!block_id_is_zero(&m->blocks[i]))
			out[n++] = (struct entry){ .id = m->blocks[i], .index = i };
	*zeros = m->n_blocks - n;
	for (int f = 0; f < 2; f++)
		for (uint32_t i = 0; i < kit[f]->n_blocks; i++, index++)
			if (!block_id_is_zero(&kit[f]->blocks[i]))
				out[n++] =
				    (struct entry){ .id = kit[f]->blocks[i], .index = index };
	if (n)
		qsort(out, n, sizeof(*out), entry_cmp);
	for (size_t i = 0; i < n; i++)
		if (w == 0 || !block_id_equal(&out[w - 1].id, &out[i].id))
			out[w++] = out[i];
	return w;
}

int verify_blocks(struct repo *repo, const struct manifest *m, const struct verify_opts *o,
                  struct verify_result *res, struct circ_err *err)
{
	const struct parallel_ops ops = { .thread_start = check_scratch_new,
		                          .thread_end = check_scratch_free,
		                          .item = check_block,
		                          .progress = o->progress ? check_progress : NULL };
	struct check ck = { .repo = repo, .block_size = m->block_size, .opts = o };
	int rc;

	memset(res, 0, sizeof(*res));
	ck.entries = malloc(((size_t)m->n_blocks + m->kernel.n_blocks + m->initrd.n_blocks + 1) *
	                    sizeof(*ck.entries));
	if (!ck.entries)
		return err_set(err, ENOMEM, "out of memory");
	ck.n_entries = distinct_blocks(m, ck.entries, &res->zeros);
	res->distinct = ck.n_entries;
	pthread_mutex_init(&ck.lock, NULL);
	rc = parallel_for(ck.n_entries, o->threads, 1, &ops, &ck, err);
	pthread_mutex_destroy(&ck.lock);
	free(ck.entries);
	if (!rc && ck.out_of_memory)
		rc = err_set(err, ENOMEM, "out of memory");
	if (rc) {
		free(ck.damaged);
		return -1;
	}
	if (ck.n_damaged)
		qsort(ck.damaged, ck.n_damaged, sizeof(*ck.damaged), damage_cmp);
	res->damaged = ck.damaged;
	res->n_damaged = ck.n_damaged;
	return 0;
}

void verify_result_release(struct verify_result *res)
{
	free(res->damaged);
	memset(res, 0, sizeof(*res));
}

const char *verify_locate(const struct manifest *m, uint32_t index, uint32_t *block)
{
	if (index < m->n_blocks) {
		*block = index;
		return "image";
	}
	index -= m->n_blocks;
	if (index < m->kernel.n_blocks) {
		*block = index;
		return "kernel";
	}
	*block = index - m->kernel.n_blocks;
	return "initrd";
}
