/* SPDX-License-Identifier: MIT */
/*
 * The one shape of hv's helper threads (a device's worker, the interrupt
 * resampler, the console), as kvmtool's epoll helper: a thread waits on a
 * few descriptors with epoll, calls each one's handler when it is
 * readable, and ends when evloop_destroy signals its stop eventfd. The
 * thread runs with every signal blocked: signals are for the vCPU threads
 * (kicks out of KVM_RUN).
 */
#ifndef CIRC_HV_EVLOOP_H
#define CIRC_HV_EVLOOP_H

#include <pthread.h>
#include <stdbool.h>

#include "util/err.h"

#define EVLOOP_MAX 16 /* descriptors a loop watches */

enum evloop_next {
	EVLOOP_KEEP,   /* go on watching fd */
	EVLOOP_FORGET, /* stop watching fd (closed, at its end) */
	EVLOOP_END,    /* end the loop's thread */
};

/* fd is readable (or failed): handle it without blocking for long. */
typedef enum evloop_next (*evloop_fn)(void *ctx, int fd);

struct evloop {
	int epoll_fd, stop_fd; /* -1: none */
	pthread_t thread;
	bool running;
	unsigned n;
	struct evloop_watch {
		int fd;
		evloop_fn fn;
		void *ctx;
	} watches[EVLOOP_MAX];
};

/* A loop not set up yet: evloop_destroy of it does nothing. */
#define EVLOOP_NONE                           \
	{                                     \
		.epoll_fd = -1, .stop_fd = -1 \
	}

/* Sets l up; whether or not it succeeds, l is then to be given to evloop_destroy once. */
CIRC_MUST_CHECK int evloop_init(struct evloop *l, struct circ_err *err);
/* Watches fd (the caller's) with fn; before evloop_start. */
CIRC_MUST_CHECK int evloop_add(struct evloop *l, int fd, evloop_fn fn, void *ctx,
                               struct circ_err *err);
/*
 * Stops (on false) or resumes watching fd, from any thread: a device whose
 * guest has no room for more input leaves it unread until there is.
 */
void evloop_watch_enable(struct evloop *l, int fd, bool on);
CIRC_MUST_CHECK int evloop_start(struct evloop *l, const char *what, struct circ_err *err);
/* The eventfd that says the loop is to end: for a handler that must wait (poll it too). */
int evloop_stop_fd(const struct evloop *l);
/* Ends the thread (if started) and waits for it; closes what the loop made. */
void evloop_destroy(struct evloop *l);

#endif
