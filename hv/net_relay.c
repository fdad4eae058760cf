/* SPDX-License-Identifier: MIT */
#include "hv/net_relay.h"

#include <errno.h>
#include <fcntl.h>
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

#define RELAY_BUF        16384
#define RELAY_MAX_CONNS  64    /* at a time: each holds two threads and two descriptors */
#define RELAY_CONNECT_MS 10000 /* a host that neither takes nor refuses a connection */
#define RELAY_BACKOFF_MS 1000  /* out of descriptors: stop accepting this long */

struct relay_conn {
	struct net_relay *r;
	int guest, host; /* the Unix end slirp connected, the TCP end we did */
	size_t fwd;      /* which forward */
	unsigned live;   /* references: the pumps that run or will */
	struct relay_conn *next;
};

struct net_relay {
	char dir[PATH_MAX];
	size_t n;
	int listen_fd[NET_USER_MAX_FWDS];
	struct sockaddr_in target[NET_USER_MAX_FWDS];
	char path[NET_USER_MAX_FWDS][sizeof(((struct sockaddr_un *)0)->sun_path)];
	int stop_fd; /* written once, at the stop: readable for every thread from then on */
	pthread_t acceptor;
	bool running;
	bool backoff; /* the acceptor's: accept failed for want of resources */

	pthread_mutex_t lock; /* conns, n_conns, and each conn's live */
	pthread_cond_t gone;  /* a connection ended */
	struct relay_conn *conns;
	unsigned n_conns;
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
		r->n_conns--;
		pthread_cond_broadcast(&r->gone);
	}
	pthread_mutex_unlock(&r->lock);
}

/* One direction: copies until its source ends, then passes the end on. */
static void pump(struct relay_conn *c, int from, int to)
{
	char buf[RELAY_BUF];

	for (;;) {
		ssize_t n = read(from, buf, sizeof(buf)), off = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		while (off < n) {
			ssize_t w = send(to, buf + off, (size_t)(n - off), MSG_NOSIGNAL);

			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				goto out;
			off += w;
		}
	}
out:
	shutdown(to, SHUT_WR);
	shutdown(from, SHUT_RD);
	conn_release(c);
}

static void *host_to_guest(void *arg)
{
	struct relay_conn *c = arg;

	pump(c, c->host, c->guest);
	return NULL;
}

static bool start_thread(void *(*fn)(void *), struct relay_conn *c)
{
	pthread_attr_t attr;
	pthread_t t;
	sigset_t all, old;
	int rc;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&t, &attr, fn, c);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	return rc == 0;
}

/*
 * Connects to the host port without blocking anyone else (a host that
 * never answers holds only this connection, and a stop ends the wait),
 * then pumps guest to host while a second thread pumps back.
 */
static void *guest_to_host(void *arg)
{
	struct relay_conn *c = arg;
	struct net_relay *r = c->r;
	struct pollfd p[2] = { { .fd = c->host, .events = POLLOUT },
		               { .fd = r->stop_fd, .events = POLLIN } };
	int soerr = EINPROGRESS;
	socklen_t len = sizeof(soerr);

	if (connect(c->host, (struct sockaddr *)&r->target[c->fwd], sizeof(r->target[c->fwd])) == 0)
		soerr = 0;
	else if (errno == EINPROGRESS && poll(p, 2, RELAY_CONNECT_MS) > 0 && !p[1].revents)
		getsockopt(c->host, SOL_SOCKET, SO_ERROR, &soerr, &len);
	if (soerr) {
		/* The guest's connection, accepted already, ends at once. */
		pthread_mutex_lock(&r->lock);
		c->live = 1;
		pthread_mutex_unlock(&r->lock);
		conn_release(c);
		return NULL;
	}
	fcntl(c->host, F_SETFL, fcntl(c->host, F_GETFL) & ~O_NONBLOCK);
	if (!start_thread(host_to_guest, c)) {
		shutdown(c->guest, SHUT_RDWR);
		shutdown(c->host, SHUT_RDWR);
		conn_release(c);
	}
	pump(c, c->guest, c->host);
	return NULL;
}

/* A guest connected to forward i: relay it, on threads of its own. */
static void relay_accept(struct net_relay *r, size_t i)
{
	int guest = accept4(r->listen_fd[i], NULL, NULL, SOCK_CLOEXEC), host = -1;
	struct relay_conn *c = NULL;

	if (guest < 0) {
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
			r->backoff = true;
		return;
	}
	pthread_mutex_lock(&r->lock);
	if (r->n_conns < RELAY_MAX_CONNS &&
	    (host = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) >= 0 &&
	    (c = calloc(1, sizeof(*c)))) {
		*c = (struct relay_conn){
			.r = r, .guest = guest, .host = host, .fwd = i, .live = 2, .next = r->conns
		};
		r->conns = c;
		r->n_conns++;
	}
	pthread_mutex_unlock(&r->lock);
	if (!c) {
		/* Too many at once, or out of resources: this one is closed. */
		close(guest);
		if (host >= 0)
			close(host);
		return;
	}
	if (!start_thread(guest_to_host, c)) {
		pthread_mutex_lock(&r->lock);
		c->live = 1;
		pthread_mutex_unlock(&r->lock);
		conn_release(c);
	}
}

static void *acceptor_main(void *arg)
{
	struct net_relay *r = arg;
	struct pollfd pfd[NET_USER_MAX_FWDS + 1];

	pfd[0] = (struct pollfd){ .fd = r->stop_fd, .events = POLLIN };
	for (size_t i = 0; i < r->n; i++)
		pfd[i + 1] = (struct pollfd){ .fd = r->listen_fd[i], .events = POLLIN };
	for (;;) {
		/* Out of descriptors, the listening sockets stay readable: rest them a while. */
		bool rest = r->backoff;
		int n = poll(pfd, rest ? 1 : r->n + 1, rest ? RELAY_BACKOFF_MS : -1);

		r->backoff = false;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return NULL;
		}
		if (pfd[0].revents)
			return NULL;
		if (rest)
			continue;
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
