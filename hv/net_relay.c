/* SPDX-License-Identifier: MIT */
#include "hv/net_relay.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define RELAY_BUF 16384

struct relay_conn {
	struct net_relay *r;
	int guest, host; /* the Unix end slirp connected, the TCP end we did */
	unsigned live;   /* pump threads still running */
	struct relay_conn *next;
};

struct net_relay {
	char dir[PATH_MAX];
	size_t n;
	int listen_fd[NET_USER_MAX_FWDS];
	struct sockaddr_in target[NET_USER_MAX_FWDS];
	char path[NET_USER_MAX_FWDS][sizeof(((struct sockaddr_un *)0)->sun_path)];
	int stop_fd;
	pthread_t acceptor;
	bool running;

	pthread_mutex_t lock; /* conns, and each conn's live */
	pthread_cond_t gone;  /* a connection ended */
	struct relay_conn *conns;
	bool stopping;
};

struct pump {
	struct relay_conn *c;
	int from, to;
};

static void conn_release(struct relay_conn *c)
{
	struct net_relay *r = c->r;

	pthread_mutex_lock(&r->lock);
	if (--c->live == 0) {
		for (struct relay_conn **p = &r->conns; *p; p = &(*p)->next)
			if (*p == c) {
				*p = c->next;
				break;
			}
		close(c->guest);
		close(c->host);
		free(c);
		pthread_cond_broadcast(&r->gone);
	}
	pthread_mutex_unlock(&r->lock);
}

/* One direction: copies until its source ends, then passes the end on. */
static void *pump_main(void *arg)
{
	struct pump p = *(struct pump *)arg;
	char buf[RELAY_BUF];

	free(arg);
	for (;;) {
		ssize_t n = read(p.from, buf, sizeof(buf)), off = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		while (off < n) {
			ssize_t w = send(p.to, buf + off, (size_t)(n - off), MSG_NOSIGNAL);

			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				goto out;
			off += w;
		}
	}
out:
	shutdown(p.to, SHUT_WR);
	shutdown(p.from, SHUT_RD);
	conn_release(p.c);
	return NULL;
}

static bool start_pump(struct relay_conn *c, int from, int to)
{
	struct pump *p = malloc(sizeof(*p));
	pthread_attr_t attr;
	pthread_t t;
	sigset_t all, old;
	int rc;

	if (!p)
		return false;
	*p = (struct pump){ c, from, to };
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&t, &attr, pump_main, p);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (rc)
		free(p);
	return rc == 0;
}

/* A guest connected to forward i: join it to the host port, or close it (the guest sees a reset).
 */
static void relay_accept(struct net_relay *r, size_t i)
{
	int guest = accept4(r->listen_fd[i], NULL, NULL, SOCK_CLOEXEC), host;
	struct relay_conn *c;
	bool orphan;

	if (guest < 0)
		return;
	host = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	/* Blocking, as the forwards go to the host or its LAN: a refusal comes at once. */
	if (host < 0 || connect(host, (struct sockaddr *)&r->target[i], sizeof(r->target[i])) < 0 ||
	    !(c = calloc(1, sizeof(*c)))) {
		close(guest);
		if (host >= 0)
			close(host);
		return;
	}
	*c = (struct relay_conn){ .r = r, .guest = guest, .host = host, .live = 2 };
	/* Under the lock no pump can release c before it is counted right. */
	pthread_mutex_lock(&r->lock);
	c->next = r->conns;
	r->conns = c;
	c->live -= !start_pump(c, guest, host);
	c->live -= !start_pump(c, host, guest);
	if (c->live < 2) {
		/* Half a relay is none: end the pump that runs, or free c here. */
		shutdown(guest, SHUT_RDWR);
		shutdown(host, SHUT_RDWR);
	}
	orphan = c->live == 0;
	if (orphan)
		c->live = 1;
	pthread_mutex_unlock(&r->lock);
	if (orphan)
		conn_release(c);
}

static void *acceptor_main(void *arg)
{
	struct net_relay *r = arg;
	struct pollfd pfd[NET_USER_MAX_FWDS + 1];

	pfd[0] = (struct pollfd){ .fd = r->stop_fd, .events = POLLIN };
	for (size_t i = 0; i < r->n; i++)
		pfd[i + 1] = (struct pollfd){ .fd = r->listen_fd[i], .events = POLLIN };
	for (;;) {
		if (poll(pfd, r->n + 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			return NULL;
		}
		if (pfd[0].revents)
			return NULL;
		for (size_t i = 0; i < r->n; i++)
			if (pfd[i + 1].revents)
				relay_accept(r, i);
	}
}

static int listen_unix(struct net_relay *r, size_t i, struct circ_err *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int n = snprintf(r->path[i], sizeof(r->path[i]), "%s/fwd%zu", r->dir, i);

	if (n < 0 || (size_t)n >= sizeof(r->path[i]))
		return err_set(err, ENAMETOOLONG, "guestfwd: socket path under %s is too long",
		               r->dir);
	memcpy(sa.sun_path, r->path[i], (size_t)n + 1);
	r->listen_fd[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (r->listen_fd[i] < 0 || bind(r->listen_fd[i], (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(r->listen_fd[i], 16) < 0)
		return err_sys(err, errno, "guestfwd: listening on %s", r->path[i]);
	return 0;
}

int net_relay_start(const struct net_fwd *fwds, size_t n, struct net_relay **out,
                    struct circ_err *err)
{
	struct net_relay *r = calloc(1, sizeof(*r));
	const char *tmp = getenv("TMPDIR");
	sigset_t all, old;
	int rc;

	*out = NULL;
	if (!r)
		return err_set(err, ENOMEM, "out of memory");
	r->stop_fd = -1;
	for (size_t i = 0; i < NET_USER_MAX_FWDS; i++)
		r->listen_fd[i] = -1;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->gone, NULL);
	if (n > NET_USER_MAX_FWDS) {
		err_set(err, EINVAL, "at most %d guest forwards", NET_USER_MAX_FWDS);
		goto fail;
	}
	snprintf(r->dir, sizeof(r->dir), "%s/circ-net-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	/* mkdtemp makes it 0700: no other user can connect to the forwards. */
	if (!mkdtemp(r->dir)) {
		err_sys(err, errno, "guestfwd: making a directory like %s", r->dir);
		r->dir[0] = 0;
		goto fail;
	}
	r->n = n;
	for (size_t i = 0; i < n; i++) {
		r->target[i] = (struct sockaddr_in){ .sin_family = AF_INET,
			                             .sin_addr = fwds[i].host_addr,
			                             .sin_port = htons(fwds[i].host_port) };
		if (listen_unix(r, i, err))
			goto fail;
	}
	r->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (r->stop_fd < 0) {
		err_sys(err, errno, "guestfwd: an eventfd");
		goto fail;
	}
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&r->acceptor, NULL, acceptor_main, r);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		err_sys(err, rc, "guestfwd: starting its thread");
		goto fail;
	}
	r->running = true;
	*out = r;
	return 0;
fail:
	net_relay_stop(r);
	return -1;
}

const char *net_relay_path(const struct net_relay *r, size_t i)
{
	return r->path[i];
}

void net_relay_stop(struct net_relay *r)
{
	uint64_t one = 1;

	if (!r)
		return;
	if (r->running) {
		if (write(r->stop_fd, &one, sizeof(one)) < 0)
			pthread_cancel(r->acceptor);
		pthread_join(r->acceptor, NULL);
	}
	/* Ending both sockets of each connection ends its pumps, which free it. */
	pthread_mutex_lock(&r->lock);
	for (struct relay_conn *c = r->conns; c; c = c->next) {
		shutdown(c->guest, SHUT_RDWR);
		shutdown(c->host, SHUT_RDWR);
	}
	while (r->conns)
		pthread_cond_wait(&r->gone, &r->lock);
	pthread_mutex_unlock(&r->lock);
	for (size_t i = 0; i < NET_USER_MAX_FWDS; i++) {
		if (r->listen_fd[i] < 0)
			continue;
		close(r->listen_fd[i]);
		unlink(r->path[i]);
	}
	if (r->dir[0])
		rmdir(r->dir);
	if (r->stop_fd >= 0)
		close(r->stop_fd);
	pthread_cond_destroy(&r->gone);
	pthread_mutex_destroy(&r->lock);
	free(r);
}
