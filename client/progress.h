/* SPDX-License-Identifier: MIT */
/* A one-line progress meter on a terminal's stderr; silent elsewhere. */
#ifndef CIRC_PROGRESS_H
#define CIRC_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

struct progress {
	const char *what;
	uint64_t total; /* bytes */
	double start;
	double last;
	bool enabled;
	bool drawn;
};

double progress_now(void);
void progress_start(struct progress *p, const char *what, uint64_t total);
/* Redraws at most ten times a second. */
void progress_update(struct progress *p, uint64_t done);
/* Draws the final state and ends the line. */
void progress_end(struct progress *p, uint64_t done);

#endif
