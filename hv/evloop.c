/* SPDX-License-Identifier: MIT */
#include "hv/evloop.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define STOP_TAG UINT32_MAX

int evloop_init(struct evloop *l, struct circ_err *err)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = STOP_TAG };

	memset(l, 0, sizeof(*l));
	l->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	l->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (l->epoll_fd < 0 || l->stop_fd < 0 ||
	    epoll_ctl(l->epoll_fd, EPOLL_CTL_ADD, l->stop_fd, &ev) < 0)
		return err_sys(err, errno, "setting up an event loop");
	return 0;
}

int evloop_add(struct evloop *l, int fd, evloop_fn fn, void *ctx, struct circ_err *err)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = l->n };

	if (l->running)
		return err_set(err, EBUSY, "the event loop is running");
	if (l->n == EVLOOP_MAX)
		return err_set(err, ENOSPC, "an event loop watches at most %d descriptors",
		               EVLOOP_MAX);
	if (epoll_ctl(l->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return err_sys(err, errno, "watching descriptor %d", fd);
	l->watches[l->n++] = (struct evloop_watch){ fd, fn, ctx };
	return 0;
}

void evloop_watch_enable(struct evloop *l, int fd, bool on)
{
	for (unsigned i = 0; i < l->n; i++) {
		struct epoll_event ev = { .events = on ? EPOLLIN : 0, .data.u32 = i };

		/* Only for a descriptor it watches, which MOD cannot fail on. */
		if (l->watches[i].fd == fd)
			epoll_ctl(l->epoll_fd, EPOLL_CTL_MOD, fd, &ev);
	}
}

static void *evloop_main(void *arg)
{
	struct evloop *l = arg;
	struct epoll_event evs[EVLOOP_MAX + 1];

	for (;;) {
		int n = epoll_wait(l->epoll_fd, evs, EVLOOP_MAX + 1, -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return NULL;
		for (int i = 0; i < n; i++) {
			struct evloop_watch *w;

			if (evs[i].data.u32 == STOP_TAG)
				return NULL;
			w = &l->watches[evs[i].data.u32];
			switch (w->fn(w->ctx, w->fd)) {
			case EVLOOP_KEEP:
				break;
			case EVLOOP_FORGET:
				/* Left in the set, a closed or finished descriptor would spin the
				 * loop. */
				epoll_ctl(l->epoll_fd, EPOLL_CTL_DEL, w->fd, NULL);
				break;
			case EVLOOP_END:
				return NULL;
			}
		}
	}
}

int evloop_start(struct evloop *l, const char *what, struct circ_err *err)
{
	sigset_t all, old;
	int rc;

	if (l->running)
		return err_set(err, EBUSY, "%s: already started", what);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&l->thread, NULL, evloop_main, l);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc)
		return err_sys(err, rc, "%s: starting its thread", what);
	l->running = true;
	return 0;
}

int evloop_stop_fd(const struct evloop *l)
{
	return l->stop_fd;
}

void evloop_destroy(struct evloop *l)
{
	if (l->running) {
		uint64_t one = 1;

		/* A fresh eventfd cannot overflow; cancelling is only a backstop. */
		if (write(l->stop_fd, &one, sizeof(one)) < 0)
			pthread_cancel(l->thread);
		pthread_join(l->thread, NULL);
		l->running = false;
	}
	if (l->epoll_fd >= 0)
		close(l->epoll_fd);
	if (l->stop_fd >= 0)
		close(l->stop_fd);
	l->epoll_fd = l->stop_fd = -1;
	l->n = 0;
}
