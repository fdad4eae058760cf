/* SPDX-License-Identifier: MIT */
/*
 * virtio-net (virtio 1.x, section 5.1): one receive and one transmit
 * queue, a MAC address, the link always up, no offloads. As with
 * virtio-blk, the device logic works on virtqs and guest memory and knows
 * nothing of PCI, so tests drive it directly; virtio_net_model puts it
 * behind the virtio-pci transport.
 *
 * Every frame in either direction is preceded by the 12-byte struct
 * virtio_net_hdr_v1. With no offloads negotiated the device ignores the
 * driver's and writes zeros (num_buffers 1) into its own. A transmit
 * chain is device-readable only: header, then the frame, over any number
 * of buffers. A receive chain is device-writable only and large enough for
 * the header and a frame; one frame fills one chain (no mergeable buffers).
 */
#ifndef CIRC_HV_VIRTIO_NET_H
#define CIRC_HV_VIRTIO_NET_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

/* Feature bits, the configuration and the header, as Linux's uapi spells them. */
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>

#include "util/err.h"
#include "hv/device.h"
#include "hv/guest_mem.h"
#include "hv/net_backend.h"
#include "hv/virtq.h"

#define VIRTIO_NET_HDR_LEN 12 /* struct virtio_net_hdr_v1 */
#define VIRTIO_NET_RXQ     0
#define VIRTIO_NET_TXQ     1
/* The configuration the device exposes: mac, status, max_virtqueue_pairs. */
#define VIRTIO_NET_CONFIG_LEN 10

/* Counted as frames move; read them with virtio_net_get_stats from any thread. */
struct virtio_net_stats {
	uint64_t rx_frames, rx_bytes;
	uint64_t rx_dropped; /* too large for the guest's buffer, or the driver was not running */
	uint64_t rx_stalls;  /* times input waited for the guest to give buffers */
	uint64_t tx_frames, tx_bytes;
	uint64_t tx_dropped; /* shorter than a header or longer than NET_FRAME_MAX */
	uint64_t bad_chains; /* malformed, or buffers the wrong way round: completed empty */
	uint64_t backend_errors;
};

struct virtio_net {
	struct net_backend *be; /* borrowed */
	uint64_t features;      /* offered */
	uint8_t config[VIRTIO_NET_CONFIG_LEN];
	struct virtio_net_stats stats;
	bool rx_starved;          /* the last receive pass found no buffer */
	int rx_failed;            /* the back end's receive failed with this errno: no more input */
	struct virtq_chain chain; /* scratch for the chain being handled */
	struct iovec iov[VIRTQ_CHAIN_MAX];
};

/* Sets n up over be (which must outlive n) with the MAC address mac. */
void virtio_net_init(struct virtio_net *n, struct net_backend *be, const uint8_t mac[NET_MAC_LEN]);
void virtio_net_config_read(const struct virtio_net *n, uint32_t off, void *data, uint32_t len);
/*
 * Sends every frame available on the transmit queue q. Returns how many
 * chains were completed (the caller interrupts if that is nonzero and
 * virtq_should_interrupt says so); q->broken afterwards means the rings
 * are unusable.
 */
int virtio_net_tx_process(struct virtio_net *n, struct virtq *q, const struct guest_mem *m);
/*
 * Moves waiting frames from the back end into the receive queue q's
 * buffers until either runs out. Returns how many chains were completed;
 * n->rx_starved says whether it stopped for lack of buffers.
 */
int virtio_net_rx_process(struct virtio_net *n, struct virtq *q, const struct guest_mem *m);
/* Drops every frame waiting in the back end (the driver is not running); returns how many. */
unsigned virtio_net_rx_drop(struct virtio_net *n);
void virtio_net_get_stats(const struct virtio_net *n, struct virtio_net_stats *out);

/* What the machine attaches (hv/device.h): arg is a struct virtio_net_args. */
struct virtio_net_args {
	struct net_backend *be; /* borrowed: it must outlive the device */
	uint8_t mac[NET_MAC_LEN];
};
extern const struct hv_device_model virtio_net_model;
/* The device inside what virtio_net_model's create made (for its statistics). */
const struct virtio_net *virtio_net_model_net(const void *dev);

#endif
