/* SPDX-License-Identifier: MIT */
/*
 * The virtio-net and virtio-input device models on guest memory the input
 * writes: the first bytes set up the queues (sizes, ring addresses, the
 * avail index), the rest is guest RAM, rings and descriptors included.
 * Whatever the guest wrote, the devices must neither touch host memory
 * outside guest RAM (AddressSanitizer sees it) nor loop: each pass takes
 * at most the queue's size of chains, and the back end holds a bounded
 * number of frames.
 */
#include <stdlib.h>
#include <string.h>

#include "hv/guest_mem.h"
#include "hv/net_backend.h"
#include "hv/virtio_input.h"
#include "hv/virtio_net.h"
#include "hv/virtq.h"
#include "tests/fuzz/fuzz.h"

/* The input becomes at most this much guest RAM (guest_mem_alloc's least is 16 MiB). */
#define RAM (1u << 20)

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)le16(p) | (uint32_t)le16(p + 2) << 16;
}

/* A queue from 14 bytes: size (log2), flags, desc, avail, used (as offsets into RAM). */
static struct virtq queue(const uint8_t *p)
{
	struct virtq q = { 0 };

	q.size = (uint16_t)(1u << (p[0] % 9)); /* 1 to 256 */
	q.ready = p[1] & 1;
	q.indirect = p[1] & 2;
	q.desc = le32(p + 2) % (RAM + 64);
	q.avail = le32(p + 6) % (RAM + 64);
	q.used = le32(p + 10) % (RAM + 64);
	return q;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t mac[NET_MAC_LEN] = { 0x52, 0x54, 0, 0, 0, 1 };
	struct guest_mem m;
	struct net_backend be;
	struct virtio_net *net;
	struct virtio_input *in;
	struct virtq q[4];
	struct circ_err err;
	uint8_t frame[1600];

	if (size < 4 * 14 + 6) /* the queues, then RAM whose first bytes also pick lengths */
		return 0;
	if (guest_mem_alloc(&m, GUEST_MEM_MIN, &err))
		abort();
	for (int i = 0; i < 4; i++)
		q[i] = queue(data + 14 * i);
	memcpy(m.host, data + 56, size - 56 < RAM ? size - 56 : RAM);
	net = calloc(1, sizeof(*net));
	in = calloc(1, sizeof(*in));
	if (!net || !in || net_backend_open_memory(8, &be, &err) ||
	    virtio_input_init(in, data[56] & 1 ? VIRTIO_INPUT_TABLET : VIRTIO_INPUT_KEYBOARD))
		abort();
	virtio_net_init(net, &be, mac);
	/* Frames waiting for the guest, of lengths the input picks. */
	memset(frame, 0xab, sizeof(frame));
	for (int i = 0; i < 4; i++)
		net_memory_put(&be, frame, 14 + (size_t)data[57 + i] * 6);
	for (int pass = 0; pass < 2; pass++) {
		struct virtio_input_event ev[3] = { { 1, 30, 1 }, { 0, 0, 0 }, { 3, 0, 100 } };

		virtio_net_tx_process(net, &q[0], &m);
		virtio_net_rx_process(net, &q[1], &m);
		virtio_input_send(in, ev, 3);
		virtio_input_process_events(in, &q[2], &m);
		virtio_input_process_status(in, &q[3], &m);
		/* The guest's config writes: any offset, any length within the space. */
		virtio_input_config_write(in, data[58] % VIRTIO_INPUT_CONFIG_LEN, data + 59, 2);
		virtio_input_config_read(in, data[59] % VIRTIO_INPUT_CONFIG_LEN, frame, 8);
	}
	while (net_memory_take(&be, frame, sizeof(frame)))
		;
	virtio_net_rx_drop(net);
	virtio_input_drop(in);
	virtio_input_destroy(in);
	net_backend_close(&be);
	free(net);
	free(in);
	guest_mem_free(&m);
	return 0;
}
