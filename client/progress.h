/* SPDX-License-Identifier: MIT */
/* A one-line progress meter on a terminal's stderr; silent elsewhere. */
#ifndef CIRC_PROGRESS_H
#define CIRC_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

struct progress {
	const char *what;
	uint64_t total; /* bytes, or blocks when !bytes; 0 when not known */
	bool bytes;
	double start;
	double last;
	bool enabled;
	bool drawn;
};

double progress_now(void);
void progress_start(struct progress *p, const char *what, uint64_t total);
/* The same, counting blocks rather than bytes. */
void progress_start_blocks(struct progress *p, const char *what, uint64_t total);
/* Redraws at most ten times a second. */
void progress_update(struct progress *p, uint64_t done);
/* Draws the final state and ends the line. */
void progress_end(struct progress *p, uint64_t done);
/*
 * For engines that report (done, total) through a callback (publish,
 * verify): ctx is a started struct progress, whose total the engine's
 * replaces (it may know it only once it has begun).
 */
void progress_report(void *ctx, uint64_t done, uint64_t total);

/*
 * For engines that report their steps (state_progress_fn): ctx is a struct
 * progress_steps whose verb names the command ("pulling"); each new step
 * ends the line of the one before, and progress_steps_end the last. A step
 * done before its first redraw (a pointer, a small manifest) leaves no line.
 */
struct progress_steps {
	struct progress bar;
	const char *verb;
	char label[64];
	uint64_t done;
};
void progress_step(void *ctx, const char *what, bool bytes, uint64_t done, uint64_t total);
void progress_steps_end(struct progress_steps *s);

#endif
