/* SPDX-License-Identifier: MIT */
#include "vdisk/readahead.h"

/*
 * The kernel sends a sequential reader's requests from several FUSE
 * threads, so they arrive a little out of order: a step forward of up to
 * this many blocks still counts as sequential, and so does a step back
 * within it (a request overtaken).
 */
#define RA_SLACK 4

void readahead_init(struct readahead *ra)
{
	*ra = (struct readahead){ .last = -2 };
}

uint32_t readahead_advance(struct readahead *ra, uint64_t idx, uint32_t max, uint64_t *from)
{
	int64_t i = (int64_t)idx;
	uint32_t w;

	if (i == ra->last || (i < ra->last && i >= ra->last - RA_SLACK))
		return 0; /* more of the same block, or one overtaken: nothing new */
	if (i > ra->last + RA_SLACK || i < ra->last) {
		/* A jump: a new run, maybe. */
		ra->last = i;
		ra->run = 1;
		ra->window = 0;
		ra->next = idx + 1;
		return 0;
	}
	ra->run += (uint32_t)(i - ra->last);
	ra->last = i;
	if (ra->next <= idx)
		ra->next = idx + 1;
	if (max == 0 || ra->run < RA_MIN_RUN)
		return 0;
	/* The reader is more than half a window from the end of what was fetched ahead. */
	if (ra->window && ra->next - idx > ra->window / 2)
		return 0;
	w = ra->window ? ra->window * 2 : RA_MIN_RUN;
	if (w > max)
		w = max;
	ra->window = w;
	*from = ra->next;
	ra->next += w;
	return w;
}
