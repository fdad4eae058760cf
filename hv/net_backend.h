/* SPDX-License-Identifier: MIT */
/*
 * Where a virtio-net device's frames go and come from: user-mode
 * networking (libslirp: no root, outbound connections through the host's
 * sockets, DHCP for the guest), a tap interface an administrator set up,
 * or host memory (tests and benchmarks). Frames are Ethernet frames
 * without the virtio-net header, at most NET_FRAME_MAX bytes.
 *
 * send may be called from the device's worker at any time; recv and the
 * rx_fd are the device's too. The back end's own threads (slirp's) never
 * call into the device: they queue frames and make rx_fd readable.
 */
#ifndef CIRC_HV_NET_BACKEND_H
#define CIRC_HV_NET_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "util/err.h"

#define NET_FRAME_MIN 14    /* an Ethernet header */
#define NET_FRAME_MAX 65535 /* without offloads a frame is its MTU and 14; tap allows this much */
#define NET_MAC_LEN   6

struct net_backend_ops {
	/*
	 * Sends one frame, iov's n pieces in order. 0, or -errno for a
	 * back end that failed (a frame the network drops is not a failure).
	 */
	int (*send)(void *ctx, const struct iovec *iov, unsigned n);
	/*
	 * Receives the next frame into iov's n pieces: its length, 0 when
	 * none is waiting, -EMSGSIZE when it did not fit (it is dropped), or
	 * -errno.
	 */
	ssize_t (*recv)(void *ctx, const struct iovec *iov, unsigned n);
	/* One line of the back end's own statistics, or NULL. */
	void (*report)(void *ctx, FILE *f, const char *name);
	void (*close)(void *ctx); /* stops its threads and frees ctx */
};

struct net_backend {
	const struct net_backend_ops *ops;
	void *ctx;
	int rx_fd;        /* readable while recv may have a frame */
	const char *kind; /* "user", "tap", "memory" */
};

/* Host memory: frames the test or benchmark puts in come out of recv; what is sent is kept. */
CIRC_MUST_CHECK int net_backend_open_memory(unsigned depth, struct net_backend *out,
                                            struct circ_err *err);
/* Queues a frame for the guest; -ENOSPC when depth frames wait already. */
int net_memory_put(struct net_backend *be, const void *frame, size_t len);
/* The oldest frame the guest sent, copied into buf (cap bytes); its length, or 0 if none. */
size_t net_memory_take(struct net_backend *be, void *buf, size_t cap);
/* Sent frames that found the kept ones full and were dropped. */
uint64_t net_memory_dropped(const struct net_backend *be);

/* tap:IFNAME, an existing interface (or one this process may create): needs CAP_NET_ADMIN. */
CIRC_MUST_CHECK int net_backend_open_tap(const char *ifname, struct net_backend *out,
                                         struct circ_err *err);

/* Releases what the constructor took; safe on a zeroed or already closed back end. */
void net_backend_close(struct net_backend *be);

/* A frame's bytes gathered from iov (the frame is len bytes) into out; for back ends that need one
 * piece. */
void net_iov_gather(const struct iovec *iov, unsigned n, uint8_t *out, size_t len);
/* The opposite: len bytes of src scattered over iov; returns what fit. */
size_t net_iov_scatter(const struct iovec *iov, unsigned n, const uint8_t *src, size_t len);
/* Total bytes of iov. */
size_t net_iov_len(const struct iovec *iov, unsigned n);

#endif
