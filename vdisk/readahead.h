/* SPDX-License-Identifier: MIT */
/*
 * Read-ahead of a disk's base blocks: when to fetch blocks nobody asked for
 * yet, and which. A boot reads in short runs (a file of a block or two,
 * then elsewhere), which the kernel's own page-cache read-ahead already
 * covers; fetching ahead of those only fetches what is not read. A long
 * sequential run (a scan, a copy) is worth fetching far ahead of. So
 * read-ahead starts only once a run is RA_MIN_RUN blocks long, with a
 * window that size, and asks for the next window when the reader is half
 * way through the last one, doubling it up to the disk's maximum, as the
 * kernel's on-demand read-ahead does. What a run leaves unread is at most
 * its last window.
 */
#ifndef CIRC_READAHEAD_H
#define CIRC_READAHEAD_H

#include <stdint.h>

#define RA_MIN_RUN 4 /* blocks in a run before anything is fetched ahead */

struct readahead {
	int64_t last;    /* the last block read; -2: none */
	uint32_t run;    /* blocks in the current sequential run */
	uint32_t window; /* the last window fetched ahead; 0: none */
	uint64_t next;   /* the first block not fetched ahead yet */
};

void readahead_init(struct readahead *ra);
/*
 * Block idx is being read; max is the largest window. Returns how many
 * blocks to fetch ahead, from *from on (0: none).
 */
uint32_t readahead_advance(struct readahead *ra, uint64_t idx, uint32_t max, uint64_t *from);

#endif
