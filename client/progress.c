/* SPDX-License-Identifier: MIT */
#include "client/progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

double progress_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void progress_start(struct progress *p, const char *what, uint64_t total)
{
	p->what = what;
	p->total = total;
	p->start = p->last = progress_now();
	p->enabled = isatty(STDERR_FILENO);
	p->drawn = false;
}

static void draw(struct progress *p, uint64_t done, double now)
{
	double secs = now - p->start;

	fprintf(stderr, "\r%s: %3.0f%%  %llu / %llu MiB  %.0f MiB/s   ", p->what,
	        p->total ? 100.0 * (double)done / (double)p->total : 100.0,
	        (unsigned long long)(done >> 20), (unsigned long long)(p->total >> 20),
	        secs > 0 ? (double)done / 1048576.0 / secs : 0.0);
	p->drawn = true;
}

void progress_update(struct progress *p, uint64_t done)
{
	double now = progress_now();

	if (!p->enabled || now - p->last < 0.1)
		return;
	p->last = now;
	draw(p, done, now);
}

void progress_end(struct progress *p, uint64_t done)
{
	if (!p->enabled)
		return;
	draw(p, done, progress_now());
	fputc('\n', stderr);
	p->drawn = false;
}
