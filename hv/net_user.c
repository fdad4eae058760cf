/* SPDX-License-Identifier: MIT */
#include "hv/net_user.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <slirp/libslirp.h>

#include "hv/net_relay.h"

#define USER_NET     "10.0.2.0"
#define USER_MASK    "255.255.255.0"
#define USER_GATEWAY "10.0.2.2"
#define USER_DHCP    "10.0.2.15"
#define USER_DNS     "10.0.2.3"
#define USER_MTU     1500
#define USER_SLOT    2048 /* a frame of USER_MTU and its header, rounded up */
#define USER_DEPTH   256  /* frames waiting for the guest; more are dropped */
#define USER_TIMERS  4

struct user_timer {
	bool used, armed;
	SlirpTimerId id;
	SlirpTimerCb cb; /* the pre-version-4 callback, or NULL */
	void *cb_opaque;
	int64_t expire_ms;
};

struct user_net {
	pthread_mutex_t lock; /* slirp and everything the thread touches */
	Slirp *slirp;
	struct user_timer timers[USER_TIMERS];
	struct pollfd *pfd;
	unsigned n_pfd, cap_pfd;
	int wake_fd; /* slirp's notify and the stop both write it */
	bool stop, running;
	bool polling; /* the thread sleeps in poll on descriptors slirp named before */
	bool woken;   /* and wake_fd has been written since */
	pthread_t thread;
	struct net_relay *relay;
	uint64_t guest_errors;
	uint8_t tx[NET_FRAME_MAX]; /* a frame gathered for slirp_input; the device's thread only */

	pthread_mutex_t rx_lock; /* the frames for the guest */
	unsigned rx_head, rx_count;
	uint16_t rx_len[USER_DEPTH];
	uint8_t *rx_data; /* USER_DEPTH slots of USER_SLOT bytes */
	uint64_t rx_dropped;
	int rx_fd; /* readable while a frame waits */
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void wake(struct user_net *u)
{
	uint64_t one = 1;

	/* An eventfd write fails only on overflow, when it is readable anyway. */
	CIRC_BEST_EFFORT(write(u->wake_fd, &one, sizeof(one)));
}

/* slirp's callbacks: each runs with u->lock held, on whichever thread called into slirp. */

static ssize_t cb_send_packet(const void *buf, size_t len, void *opaque)
{
	struct user_net *u = opaque;
	uint64_t one = 1;

	pthread_mutex_lock(&u->rx_lock);
	if (len > USER_SLOT || u->rx_count == USER_DEPTH) {
		/* As on a wire: TCP retransmits, the guest's DHCP asks again. */
		u->rx_dropped++;
	} else {
		unsigned slot = (u->rx_head + u->rx_count++) % USER_DEPTH;

		u->rx_len[slot] = (uint16_t)len;
		memcpy(u->rx_data + (size_t)slot * USER_SLOT, buf, len);
		if (u->rx_count == 1)
			CIRC_BEST_EFFORT(write(u->rx_fd, &one, sizeof(one)));
	}
	pthread_mutex_unlock(&u->rx_lock);
	return (ssize_t)len;
}

static void cb_guest_error(const char *msg, void *opaque)
{
	struct user_net *u = opaque;

	(void)msg; /* the guest's to fix, not the user's: counted, not printed */
	u->guest_errors++;
}

static int64_t cb_clock_get_ns(void *opaque)
{
	struct timespec ts;

	(void)opaque;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static struct user_timer *timer_alloc(struct user_net *u)
{
	for (unsigned i = 0; i < USER_TIMERS; i++)
		if (!u->timers[i].used) {
			memset(&u->timers[i], 0, sizeof(u->timers[i]));
			u->timers[i].used = true;
			return &u->timers[i];
		}
	return NULL; /* slirp has one timer (IPv6 router advertisements): never here */
}

static void *cb_timer_new(SlirpTimerCb cb, void *cb_opaque, void *opaque)
{
	struct user_timer *t = timer_alloc(opaque);

	if (t) {
		t->cb = cb;
		t->cb_opaque = cb_opaque;
	}
	return t;
}

static void *cb_timer_new_opaque(SlirpTimerId id, void *cb_opaque, void *opaque)
{
	struct user_timer *t = timer_alloc(opaque);

	if (t) {
		t->id = id;
		t->cb_opaque = cb_opaque;
	}
	return t;
}

static void cb_timer_free(void *timer, void *opaque)
{
	struct user_timer *t = timer;

	(void)opaque;
	if (t)
		t->used = t->armed = false;
}

static void cb_timer_mod(void *timer, int64_t expire_ms, void *opaque)
{
	struct user_timer *t = timer;

	if (!t)
		return;
	t->expire_ms = expire_ms;
	t->armed = true;
	wake(opaque); /* the loop's sleep may be too long now */
}

static void cb_poll_fd(int fd, void *opaque)
{
	(void)fd; /* the loop asks slirp for its descriptors before each poll */
	(void)opaque;
}

static void cb_notify(void *opaque)
{
	wake(opaque);
}

static const SlirpCb user_callbacks = {
	.send_packet = cb_send_packet,
	.guest_error = cb_guest_error,
	.clock_get_ns = cb_clock_get_ns,
	.timer_new = cb_timer_new,
	.timer_free = cb_timer_free,
	.timer_mod = cb_timer_mod,
	.register_poll_fd = cb_poll_fd,
	.unregister_poll_fd = cb_poll_fd,
	.notify = cb_notify,
	.timer_new_opaque = cb_timer_new_opaque,
};

/* The poll loop. */

static int add_poll(int fd, int events, void *opaque)
{
	struct user_net *u = opaque;
	short ev = 0;

	if (u->n_pfd == u->cap_pfd) {
		unsigned cap = u->cap_pfd * 2;
		struct pollfd *p = realloc(u->pfd, cap * sizeof(*p));

		if (!p)
			return -1; /* slirp skips this descriptor for one round */
		u->pfd = p;
		u->cap_pfd = cap;
	}
	if (events & SLIRP_POLL_IN)
		ev |= POLLIN;
	if (events & SLIRP_POLL_OUT)
		ev |= POLLOUT;
	if (events & SLIRP_POLL_PRI)
		ev |= POLLPRI;
	u->pfd[u->n_pfd] = (struct pollfd){ .fd = fd, .events = ev };
	return (int)u->n_pfd++;
}

static int get_revents(int idx, void *opaque)
{
	struct user_net *u = opaque;
	short rev;
	int out = 0;

	if (idx < 1 || (unsigned)idx >= u->n_pfd)
		return 0;
	rev = u->pfd[idx].revents;
	if (rev & POLLIN)
		out |= SLIRP_POLL_IN;
	if (rev & POLLOUT)
		out |= SLIRP_POLL_OUT;
	if (rev & POLLPRI)
		out |= SLIRP_POLL_PRI;
	if (rev & POLLERR)
		out |= SLIRP_POLL_ERR;
	if (rev & POLLHUP)
		out |= SLIRP_POLL_HUP;
	return out;
}

/* Milliseconds to the first armed timer, capped at timeout. */
static uint32_t timers_due_in(const struct user_net *u, uint32_t timeout)
{
	int64_t now = now_ms();

	for (unsigned i = 0; i < USER_TIMERS; i++) {
		const struct user_timer *t = &u->timers[i];
		int64_t left;

		if (!t->used || !t->armed)
			continue;
		left = t->expire_ms > now ? t->expire_ms - now : 0;
		if (left < (int64_t)timeout)
			timeout = (uint32_t)left;
	}
	return timeout;
}

static void timers_run(struct user_net *u)
{
	int64_t now = now_ms();

	for (unsigned i = 0; i < USER_TIMERS; i++) {
		struct user_timer *t = &u->timers[i];

		if (!t->used || !t->armed || t->expire_ms > now)
			continue;
		t->armed = false;
		if (t->cb)
			t->cb(t->cb_opaque);
		else
			slirp_handle_timer(u->slirp, t->id, t->cb_opaque);
	}
}

static void *user_main(void *arg)
{
	struct user_net *u = arg;

	pthread_mutex_lock(&u->lock);
	while (!u->stop) {
		uint32_t timeout = UINT32_MAX;
		int rc;

		u->n_pfd = 1; /* pfd[0] is wake_fd */
		slirp_pollfds_fill(u->slirp, &timeout, add_poll, u);
		timeout = timers_due_in(u, timeout);
		u->polling = true;
		u->woken = false;
		pthread_mutex_unlock(&u->lock);
		rc = poll(u->pfd, u->n_pfd, timeout == UINT32_MAX ? -1 : (int)timeout);
		if (rc > 0 && u->pfd[0].revents) {
			uint64_t v;

			CIRC_BEST_EFFORT(read(u->wake_fd, &v, sizeof(v)));
		}
		pthread_mutex_lock(&u->lock);
		u->polling = false;
		if (u->stop)
			break;
		slirp_pollfds_poll(u->slirp, rc < 0 && errno != EINTR, get_revents, u);
		timers_run(u);
	}
	pthread_mutex_unlock(&u->lock);
	return NULL;
}

/* The back end. */

static int user_send(void *ctx, const struct iovec *iov, unsigned n)
{
	struct user_net *u = ctx;
	size_t len = net_iov_len(iov, n);
	const uint8_t *frame = iov[0].iov_base;

	if (len > sizeof(u->tx))
		return 0; /* larger than any MTU: dropped */
	if (n > 1) {
		net_iov_gather(iov, n, u->tx, len);
		frame = u->tx;
	}
	pthread_mutex_lock(&u->lock);
	slirp_input(u->slirp, frame, (int)len);
	/*
	 * The frame may have made a socket (a connect, a UDP flow, a guest
	 * forward) or queued output that the sleeping thread does not poll
	 * for: it must look again, once a sleep.
	 */
	if (u->polling && !u->woken) {
		u->woken = true;
		wake(u);
	}
	pthread_mutex_unlock(&u->lock);
	return 0;
}

static ssize_t user_recv(void *ctx, const struct iovec *iov, unsigned n)
{
	struct user_net *u = ctx;
	ssize_t rc = 0;

	pthread_mutex_lock(&u->rx_lock);
	if (u->rx_count) {
		size_t len = u->rx_len[u->rx_head];

		rc =
		    net_iov_scatter(iov, n, u->rx_data + (size_t)u->rx_head * USER_SLOT, len) == len
		        ? (ssize_t)len
		        : -EMSGSIZE;
		u->rx_head = (u->rx_head + 1) % USER_DEPTH;
		if (!--u->rx_count) {
			uint64_t v;

			CIRC_BEST_EFFORT(read(u->rx_fd, &v, sizeof(v)));
		}
	}
	pthread_mutex_unlock(&u->rx_lock);
	return rc;
}

static void user_report(void *ctx, FILE *f, const char *name)
{
	struct user_net *u = ctx;
	uint64_t dropped, errors;

	pthread_mutex_lock(&u->rx_lock);
	dropped = u->rx_dropped;
	pthread_mutex_unlock(&u->rx_lock);
	pthread_mutex_lock(&u->lock);
	errors = u->guest_errors;
	pthread_mutex_unlock(&u->lock);
	fprintf(
	    f,
	    "hv: %s: user network, %llu frames dropped waiting for the guest, %llu guest errors\n",
	    name, (unsigned long long)dropped, (unsigned long long)errors);
}

static void user_close(void *ctx)
{
	struct user_net *u = ctx;

	if (!u)
		return;
	if (u->running) {
		pthread_mutex_lock(&u->lock);
		u->stop = true;
		pthread_mutex_unlock(&u->lock);
		wake(u);
		pthread_join(u->thread, NULL);
	}
	if (u->slirp)
		slirp_cleanup(u->slirp);
	net_relay_stop(u->relay);
	if (u->wake_fd >= 0)
		close(u->wake_fd);
	if (u->rx_fd >= 0)
		close(u->rx_fd);
	free(u->pfd);
	free(u->rx_data);
	pthread_mutex_destroy(&u->rx_lock);
	pthread_mutex_destroy(&u->lock);
	free(u);
}

static const struct net_backend_ops user_ops = {
	.send = user_send,
	.recv = user_recv,
	.report = user_report,
	.close = user_close,
};

static struct in_addr addr(const char *s)
{
	struct in_addr a;

	inet_pton(AF_INET, s, &a);
	return a;
}

static int add_forwards(struct user_net *u, const struct net_user_config *cfg, struct circ_err *err)
{
	char ip[INET_ADDRSTRLEN];

	for (size_t i = 0; i < cfg->n_hostfwd; i++) {
		const struct net_fwd *f = &cfg->hostfwd[i];

		errno = 0;
		if (slirp_add_hostfwd(u->slirp, f->udp, f->host_addr, f->host_port, f->guest_addr,
		                      f->guest_port) < 0)
			return err_sys(err, errno ? errno : EADDRINUSE, "hostfwd %s:%s:%u",
			               f->udp ? "udp" : "tcp",
			               inet_ntop(AF_INET, &f->host_addr, ip, sizeof(ip)),
			               f->host_port);
	}
	if (!cfg->n_guestfwd)
		return 0;
	if (net_relay_start(cfg->guestfwd, cfg->n_guestfwd, &u->relay, err))
		return -1;
	for (size_t i = 0; i < cfg->n_guestfwd; i++) {
		struct in_addr ga = cfg->guestfwd[i].guest_addr;

		if (slirp_add_unix(u->slirp, net_relay_path(u->relay, i), &ga,
		                   cfg->guestfwd[i].guest_port) < 0)
			return err_set(
			    err, EEXIST, "guestfwd %s:%u: libslirp refused it (given twice?)",
			    inet_ntop(AF_INET, &ga, ip, sizeof(ip)), cfg->guestfwd[i].guest_port);
	}
	return 0;
}

int net_backend_open_user(const struct net_user_config *cfg, struct net_backend *out,
                          struct circ_err *err)
{
	struct user_net *u = calloc(1, sizeof(*u));
	SlirpConfig sc = {
		.version = 4,
		.restricted = cfg->restrict_guest,
		.in_enabled = true,
		.vnetwork = addr(USER_NET),
		.vnetmask = addr(USER_MASK),
		.vhost = addr(USER_GATEWAY),
		.vdhcp_start = addr(USER_DHCP),
		.vnameserver = addr(USER_DNS),
		.if_mtu = USER_MTU,
		.if_mru = USER_MTU,
		.disable_dns = cfg->restrict_guest,
	};
	sigset_t all, old;
	int rc;

	memset(out, 0, sizeof(*out));
	out->rx_fd = -1;
	if (!u)
		return err_set(err, ENOMEM, "out of memory");
	pthread_mutex_init(&u->lock, NULL);
	pthread_mutex_init(&u->rx_lock, NULL);
	u->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	u->rx_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	u->cap_pfd = 16;
	u->pfd = calloc(u->cap_pfd, sizeof(*u->pfd));
	u->rx_data = malloc((size_t)USER_DEPTH * USER_SLOT);
	if (u->wake_fd < 0 || u->rx_fd < 0 || !u->pfd || !u->rx_data) {
		err_sys(err, errno ? errno : ENOMEM, "user network: setting up");
		goto fail;
	}
	u->pfd[0] = (struct pollfd){ .fd = u->wake_fd, .events = POLLIN };
	u->slirp = slirp_new(&sc, &user_callbacks, u);
	if (!u->slirp) {
		err_set(err, EINVAL, "user network: libslirp refused its configuration");
		goto fail;
	}
	if (add_forwards(u, cfg, err))
		goto fail;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&u->thread, NULL, user_main, u);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		err_sys(err, rc, "user network: starting its thread");
		goto fail;
	}
	u->running = true;
	*out =
	    (struct net_backend){ .ops = &user_ops, .ctx = u, .rx_fd = u->rx_fd, .kind = "user" };
	return 0;
fail:
	user_close(u);
	return -1;
}

/* Forward specs. */

static int parse_addr(const char *s, size_t len, struct in_addr *out)
{
	char buf[INET_ADDRSTRLEN];

	if (len >= sizeof(buf))
		return -1;
	memcpy(buf, s, len);
	buf[len] = 0;
	return inet_pton(AF_INET, buf, out) == 1 ? 0 : -1;
}

static int parse_port(const char *s, size_t len, uint16_t *out)
{
	unsigned v = 0;

	if (!len || len > 5)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (!v || v > 65535)
		return -1;
	*out = (uint16_t)v;
	return 0;
}

/* "[ADDR]:PORT" of [s, end): an empty ADDR leaves *a as it is. */
static int parse_endpoint(const char *s, const char *end, struct in_addr *a, uint16_t *port)
{
	const char *colon = memrchr(s, ':', (size_t)(end - s));

	if (!colon)
		return -1;
	if (colon > s && parse_addr(s, (size_t)(colon - s), a))
		return -1;
	return parse_port(colon + 1, (size_t)(end - colon - 1), port);
}

/*
 * A leading "tcp:" or "udp:", or QEMU's empty protocol (":" before
 * "[ADDR]:PORT"), or none: tcp. Returns what follows.
 */
static const char *parse_proto(const char *s, bool *udp)
{
	const char *dash = strchr(s, '-'), *second;

	*udp = false;
	if (!strncmp(s, "tcp:", 4))
		return s + 4;
	if (!strncmp(s, "udp:", 4)) {
		*udp = true;
		return s + 4;
	}
	second = s[0] == ':' ? strchr(s + 1, ':') : NULL;
	if (second && (!dash || second < dash))
		return s + 1;
	return s;
}

int net_fwd_parse_host(const char *spec, struct net_fwd *out, struct circ_err *err)
{
	const char *s, *dash;

	memset(out, 0, sizeof(*out));
	out->host_addr = addr("127.0.0.1");
	out->guest_addr = addr(USER_DHCP);
	s = parse_proto(spec, &out->udp);
	dash = strchr(s, '-');
	if (!dash || parse_endpoint(s, dash, &out->host_addr, &out->host_port) ||
	    parse_endpoint(dash + 1, dash + 1 + strlen(dash + 1), &out->guest_addr,
	                   &out->guest_port))
		return err_set(
		    err, EINVAL,
		    "bad hostfwd '%s' (want [tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT)",
		    spec);
	return 0;
}

int net_fwd_parse_guest(const char *spec, struct net_fwd *out, struct circ_err *err)
{
	struct in_addr net = addr(USER_NET), mask = addr(USER_MASK), gw = addr(USER_GATEWAY);
	struct in_addr dns = addr(USER_DNS), guest = addr(USER_DHCP);
	const char *s, *dash, *dev;
	bool dev_udp;

	memset(out, 0, sizeof(*out));
	s = parse_proto(spec, &out->udp);
	dash = strchr(s, '-');
	dev = dash ? parse_proto(dash + 1, &dev_udp) : NULL;
	if (out->udp || !dash || dash == s || *s == ':' || dev == dash + 1 || dev_udp ||
	    *dev == ':' || parse_endpoint(s, dash, &out->guest_addr, &out->guest_port) ||
	    parse_endpoint(dev, dev + strlen(dev), &out->host_addr, &out->host_port))
		return err_set(
		    err, EINVAL,
		    "bad guestfwd '%s' (want [tcp]:GUESTADDR:GUESTPORT-tcp:HOSTADDR:HOSTPORT)",
		    spec);
	/* The gateway, the name server and the guest itself have addresses of their own. */
	if ((out->guest_addr.s_addr & mask.s_addr) != net.s_addr ||
	    out->guest_addr.s_addr == gw.s_addr || out->guest_addr.s_addr == dns.s_addr ||
	    out->guest_addr.s_addr == guest.s_addr)
		return err_set(
		    err, EINVAL,
		    "guestfwd '%s': the guest address must be in %s/24 and not %s, %s or %s", spec,
		    USER_NET, USER_GATEWAY, USER_DNS, USER_DHCP);
	return 0;
}
