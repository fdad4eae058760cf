/* SPDX-License-Identifier: MIT */
#include "hv/net_backend.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/if_tun.h>

size_t net_iov_len(const struct iovec *iov, unsigned n)
{
	size_t len = 0;

	for (unsigned i = 0; i < n; i++)
		len += iov[i].iov_len;
	return len;
}

void net_iov_gather(const struct iovec *iov, unsigned n, uint8_t *out, size_t len)
{
	for (unsigned i = 0; i < n && len; i++) {
		size_t piece = iov[i].iov_len < len ? iov[i].iov_len : len;

		memcpy(out, iov[i].iov_base, piece);
		out += piece;
		len -= piece;
	}
}

size_t net_iov_scatter(const struct iovec *iov, unsigned n, const uint8_t *src, size_t len)
{
	size_t done = 0;

	for (unsigned i = 0; i < n && done < len; i++) {
		size_t piece = iov[i].iov_len < len - done ? iov[i].iov_len : len - done;

		memcpy(iov[i].iov_base, src + done, piece);
		done += piece;
	}
	return done;
}

void net_backend_close(struct net_backend *be)
{
	if (be->ops && be->ops->close)
		be->ops->close(be->ctx);
	memset(be, 0, sizeof(*be));
	be->rx_fd = -1;
}

/* Host memory: two bounded queues of frames. */

#define MEM_SLOT 2048 /* the memory back end's largest frame */

struct mem_queue {
	unsigned head, count;
	uint16_t *len;
	uint8_t *data; /* depth slots of MEM_SLOT bytes */
};

struct mem_net {
	pthread_mutex_t lock;
	unsigned depth;
	struct mem_queue to_guest, from_guest;
	uint64_t dropped;
	int event_fd; /* readable while to_guest holds a frame */
};

static int mem_queue_init(struct mem_queue *q, unsigned depth)
{
	q->len = calloc(depth, sizeof(*q->len));
	q->data = malloc((size_t)depth * MEM_SLOT);
	return q->len && q->data ? 0 : -ENOMEM;
}

/* Appends a frame; false when full. */
static bool mem_queue_push(struct mem_queue *q, unsigned depth, const struct iovec *iov, unsigned n,
                           size_t len)
{
	unsigned slot;

	if (q->count == depth)
		return false;
	slot = (q->head + q->count++) % depth;
	q->len[slot] = (uint16_t)len;
	net_iov_gather(iov, n, q->data + (size_t)slot * MEM_SLOT, len);
	return true;
}

static int mem_send(void *ctx, const struct iovec *iov, unsigned n)
{
	struct mem_net *mn = ctx;
	size_t len = net_iov_len(iov, n);

	pthread_mutex_lock(&mn->lock);
	if (len > MEM_SLOT || !mem_queue_push(&mn->from_guest, mn->depth, iov, n, len))
		mn->dropped++;
	pthread_mutex_unlock(&mn->lock);
	return 0;
}

static ssize_t mem_recv(void *ctx, const struct iovec *iov, unsigned n)
{
	struct mem_net *mn = ctx;
	struct mem_queue *q = &mn->to_guest;
	ssize_t rc = 0;

	pthread_mutex_lock(&mn->lock);
	if (q->count) {
		size_t len = q->len[q->head];
		const uint8_t *src = q->data + (size_t)q->head * MEM_SLOT;

		rc = net_iov_scatter(iov, n, src, len) == len ? (ssize_t)len : -EMSGSIZE;
		q->head = (q->head + 1) % mn->depth;
		if (!--q->count) {
			uint64_t v;

			/* Empty: rx_fd goes quiet until the next put. */
			if (read(mn->event_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				rc = -errno;
		}
	}
	pthread_mutex_unlock(&mn->lock);
	return rc;
}

static void mem_close(void *ctx)
{
	struct mem_net *mn = ctx;

	if (!mn)
		return;
	if (mn->event_fd >= 0)
		close(mn->event_fd);
	free(mn->to_guest.len);
	free(mn->to_guest.data);
	free(mn->from_guest.len);
	free(mn->from_guest.data);
	pthread_mutex_destroy(&mn->lock);
	free(mn);
}

static const struct net_backend_ops mem_ops = {
	.send = mem_send,
	.recv = mem_recv,
	.close = mem_close,
};

int net_backend_open_memory(unsigned depth, struct net_backend *out, struct circ_err *err)
{
	struct mem_net *mn = calloc(1, sizeof(*mn));

	memset(out, 0, sizeof(*out));
	out->rx_fd = -1;
	if (!mn)
		return err_set(err, ENOMEM, "out of memory");
	pthread_mutex_init(&mn->lock, NULL);
	mn->depth = depth ? depth : 1;
	mn->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (mn->event_fd < 0 || mem_queue_init(&mn->to_guest, mn->depth) ||
	    mem_queue_init(&mn->from_guest, mn->depth)) {
		mem_close(mn);
		return err_set(err, ENOMEM, "memory network: out of memory");
	}
	*out = (struct net_backend){
		.ops = &mem_ops, .ctx = mn, .rx_fd = mn->event_fd, .kind = "memory"
	};
	return 0;
}

int net_memory_put(struct net_backend *be, const void *frame, size_t len)
{
	struct mem_net *mn = be->ctx;
	struct iovec iov = { (void *)frame, len };
	uint64_t one = 1;
	int rc = 0;

	if (len > MEM_SLOT)
		return -EMSGSIZE;
	pthread_mutex_lock(&mn->lock);
	if (!mem_queue_push(&mn->to_guest, mn->depth, &iov, 1, len))
		rc = -ENOSPC;
	else if (mn->to_guest.count == 1 && write(mn->event_fd, &one, sizeof(one)) < 0)
		rc = -errno;
	pthread_mutex_unlock(&mn->lock);
	return rc;
}

size_t net_memory_take(struct net_backend *be, void *buf, size_t cap)
{
	struct mem_net *mn = be->ctx;
	struct mem_queue *q = &mn->from_guest;
	size_t len = 0;

	pthread_mutex_lock(&mn->lock);
	if (q->count) {
		len = q->len[q->head];
		memcpy(buf, q->data + (size_t)q->head * MEM_SLOT, len < cap ? len : cap);
		q->head = (q->head + 1) % mn->depth;
		q->count--;
	}
	pthread_mutex_unlock(&mn->lock);
	return len;
}

uint64_t net_memory_dropped(const struct net_backend *be)
{
	struct mem_net *mn = be->ctx;
	uint64_t v;

	pthread_mutex_lock(&mn->lock);
	v = mn->dropped;
	pthread_mutex_unlock(&mn->lock);
	return v;
}

/* A tap interface: the kernel queues frames both ways; the device reads and writes guest memory
 * directly. */

struct tap_net {
	int fd;
	uint64_t send_errors;
};

static int tap_send(void *ctx, const struct iovec *iov, unsigned n)
{
	struct tap_net *t = ctx;

	/* A full queue or an interface that is down drops the frame, as a wire would. */
	if (writev(t->fd, iov, (int)n) < 0)
		__atomic_fetch_add(&t->send_errors, 1, __ATOMIC_RELAXED);
	return 0;
}

static ssize_t tap_recv(void *ctx, const struct iovec *iov, unsigned n)
{
	struct tap_net *t = ctx;
	size_t cap = net_iov_len(iov, n);
	ssize_t got = readv(t->fd, iov, (int)n);

	if (got < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	/* tun truncates a frame longer than the buffers and says how long it was. */
	return (size_t)got > cap ? -EMSGSIZE : got;
}

static void tap_report(void *ctx, FILE *f, const char *name)
{
	struct tap_net *t = ctx;

	fprintf(f, "hv: %s: tap, %llu frames the interface refused\n", name,
	        (unsigned long long)__atomic_load_n(&t->send_errors, __ATOMIC_RELAXED));
}

static void tap_close(void *ctx)
{
	struct tap_net *t = ctx;

	if (!t)
		return;
	close(t->fd);
	free(t);
}

static const struct net_backend_ops tap_ops = {
	.send = tap_send,
	.recv = tap_recv,
	.report = tap_report,
	.close = tap_close,
};

int net_backend_open_tap(const char *ifname, struct net_backend *out, struct circ_err *err)
{
	struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI };
	struct tap_net *t;
	int fd;

	memset(out, 0, sizeof(*out));
	out->rx_fd = -1;
	if (!*ifname || strlen(ifname) >= IFNAMSIZ)
		return err_set(err, EINVAL, "tap: bad interface name '%s'", ifname);
	memcpy(ifr.ifr_name, ifname, strlen(ifname) + 1);
	fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return err_sys(err, errno, "tap: /dev/net/tun");
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		int e = errno;

		close(fd);
		return err_sys(err, e, "tap: attaching to %s%s", ifname,
		               e == EPERM ? " (needs CAP_NET_ADMIN or a tap the user owns)" : "");
	}
	t = calloc(1, sizeof(*t));
	if (!t) {
		close(fd);
		return err_set(err, ENOMEM, "out of memory");
	}
	t->fd = fd;
	*out = (struct net_backend){ .ops = &tap_ops, .ctx = t, .rx_fd = fd, .kind = "tap" };
	return 0;
}
