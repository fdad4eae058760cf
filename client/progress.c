/* SPDX-License-Identifier: MIT */
#include "client/progress.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double progress_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void start(struct progress *p, const char *what, uint64_t total, bool bytes)
{
	p->what = what;
	p->total = total;
	p->bytes = bytes;
	p->start = p->last = progress_now();
	p->enabled = isatty(STDERR_FILENO);
	p->drawn = false;
}

void progress_start(struct progress *p, const char *what, uint64_t total)
{
	start(p, what, total, true);
}

void progress_start_blocks(struct progress *p, const char *what, uint64_t total)
{
	start(p, what, total, false);
}

/* 12.3 MiB, 340 KiB, 12 B */
static void human_bytes(double v, char out[24])
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	unsigned u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	snprintf(out, 24, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

static void draw(struct progress *p, uint64_t done, double now)
{
	double secs = now - p->start, rate = secs > 0 ? (double)done / secs : 0.0;
	char d[24], t[24], r[24];

	if (p->bytes) {
		human_bytes((double)done, d);
		human_bytes((double)p->total, t);
		human_bytes(rate, r);
		strcat(r, "/s");
	} else {
		snprintf(d, sizeof(d), "%llu", (unsigned long long)done);
		snprintf(t, sizeof(t), "%llu blocks", (unsigned long long)p->total);
		snprintf(r, sizeof(r), "%.0f/s", rate);
	}
	if (p->total)
		fprintf(stderr, "\r%s: %3.0f%%  %s / %s  %s   ", p->what,
		        100.0 * (double)(done < p->total ? done : p->total) / (double)p->total, d,
		        t, r);
	else
		fprintf(stderr, "\r%s: %s  %s   ", p->what, d, r);
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

void progress_report(void *ctx, uint64_t done, uint64_t total)
{
	struct progress *p = ctx;

	p->total = total;
	progress_update(p, done);
}

void progress_step(void *ctx, const char *what, bool bytes, uint64_t done, uint64_t total)
{
	struct progress_steps *s = ctx;
	char label[sizeof(s->label)];

	snprintf(label, sizeof(label), "%s %s", s->verb, what);
	if (!s->bar.what || strcmp(label, s->label) != 0 || s->bar.total != total) {
		if (s->bar.drawn)
			progress_end(&s->bar, s->done);
		memcpy(s->label, label, sizeof(label));
		start(&s->bar, s->label, total, bytes);
	}
	s->done = done;
	progress_update(&s->bar, done);
}

void progress_steps_end(struct progress_steps *s)
{
	if (s->bar.drawn)
		progress_end(&s->bar, s->done);
}
