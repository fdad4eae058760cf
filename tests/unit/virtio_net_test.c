/* SPDX-License-Identifier: MIT */
/*
 * virtio-net as a device model, without KVM: the tests play the guest
 * driver (virtio_fixture.h) on two queues in a fake guest memory, over the
 * memory back end, and check each frame both ways, the header the device
 * writes, malformed chains, a full receive ring and a guest that never
 * gives buffers back, and the card behind virtio-pci with its worker. The
 * back ends are tested in net_backend_test.c.
 */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/eventfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "hv/bus.h"
#include "hv/net_backend.h"
#include "hv/pci.h"
#include "hv/virtio_pci.h"
#include "hv/virtio_net.h"
#include "hv/virtq.h"
#include "tests/unit/suites.h"
#include "tests/unit/testutil.h"
#include "tests/unit/virtio_fixture.h"

#define RXQ_GPA 0x1000ull /* desc, avail +0x1000, used +0x2000 */
#define TXQ_GPA 0x5000ull
#define DEPTH   8

struct nrig {
	struct guest_mem m;
	struct drv rx, tx; /* the driver's two queues */
	struct virtq q[2];
	struct net_backend be;
	struct virtio_net net;
};

static const uint8_t test_mac[NET_MAC_LEN] = { 0x52, 0x54, 0x00, 0xab, 0xcd, 0xef };

static void queue_init(struct nrig *r, struct drv *d, struct virtq *q, uint64_t base)
{
	drv_init(d, &r->m);
	d->desc = base;
	d->avail = base + 0x1000;
	d->used = base + 0x2000;
	memset(gptr(d, d->avail, 4), 0, 4);
	memset(gptr(d, d->used, 4), 0, 4);
	*q = (struct virtq){
		.size = QSIZE, .ready = true, .desc = d->desc, .avail = d->avail, .used = d->used
	};
}

static void nrig_init(struct nrig *r)
{
	struct circ_err err;

	memset(r, 0, sizeof(*r));
	ck_assert_int_eq(guest_mem_alloc(&r->m, MEM_SIZE, &err), 0);
	queue_init(r, &r->rx, &r->q[VIRTIO_NET_RXQ], RXQ_GPA);
	queue_init(r, &r->tx, &r->q[VIRTIO_NET_TXQ], TXQ_GPA);
	r->tx.heap = 4ull << 20; /* the two drivers allocate from different halves */
	ck_assert_int_eq(net_backend_open_memory(DEPTH, &r->be, &err), 0);
	virtio_net_init(&r->net, &r->be, test_mac);
}

static void nrig_fini(struct nrig *r)
{
	net_backend_close(&r->be);
	guest_mem_free(&r->m);
}

/* A frame of len bytes: broadcast, from test_mac, EtherType 0x88b5, then a pattern from seed. */
static void make_frame(uint8_t *f, size_t len, unsigned seed)
{
	memset(f, 0xff, 6);
	memcpy(f + 6, test_mac, 6);
	f[12] = 0x88;
	f[13] = 0xb5;
	for (size_t i = 14; i < len; i++)
		f[i] = (uint8_t)(seed + i * 7);
}

/* The driver sends frame over pieces of the given lengths (the header's 12 bytes first). */
static void send_frame(struct nrig *r, const uint8_t *frame, size_t len, const uint32_t *pieces,
                       unsigned n)
{
	uint8_t all[VIRTIO_NET_HDR_LEN + 2048];
	struct tbuf b[8];
	size_t off = 0;

	ck_assert_uint_le(len, 2048);
	memset(all, 0xaa, VIRTIO_NET_HDR_LEN); /* the device must ignore the header */
	memcpy(all + VIRTIO_NET_HDR_LEN, frame, len);
	for (unsigned i = 0; i < n; i++) {
		b[i] = (struct tbuf){ galloc(&r->tx, pieces[i]), pieces[i], false };
		memcpy(gptr(&r->tx, b[i].gpa, pieces[i]), all + off, pieces[i]);
		off += pieces[i];
	}
	ck_assert_uint_eq(off, VIRTIO_NET_HDR_LEN + len);
	add_chain(&r->tx, b, n);
}

/* The driver gives one receive buffer of len bytes; returns its GPA. */
static uint64_t give_rx(struct nrig *r, uint32_t len)
{
	struct tbuf b = { galloc(&r->rx, len), len, true };

	memset(gptr(&r->rx, b.gpa, len), 0xcc, len);
	add_chain(&r->rx, &b, 1);
	return b.gpa;
}

START_TEST(test_config)
{
	struct nrig r;
	uint8_t c[VIRTIO_NET_CONFIG_LEN + 4];

	nrig_init(&r);
	virtio_net_config_read(&r.net, 0, c, sizeof(c));
	ck_assert_mem_eq(c, test_mac, 6);
	ck_assert_uint_eq(c[6] | c[7] << 8, VIRTIO_NET_S_LINK_UP);
	ck_assert_uint_eq(c[8] | c[9] << 8, 1);
	ck_assert_uint_eq(c[10] | c[11], 0); /* past the end */
	ck_assert(r.net.features & (1ull << VIRTIO_NET_F_MAC));
	ck_assert(r.net.features & (1ull << VIRTIO_NET_F_STATUS));
	ck_assert(r.net.features & (1ull << VIRTIO_F_VERSION_1));
	/* No offloads: the device never has to understand a checksum or a segment. */
	ck_assert(!(r.net.features & (1ull << VIRTIO_NET_F_CSUM)));
	ck_assert(!(r.net.features & (1ull << VIRTIO_NET_F_MRG_RXBUF)));
	nrig_fini(&r);
}
END_TEST

START_TEST(test_tx_frames)
{
	static const uint32_t one[] = { VIRTIO_NET_HDR_LEN + 60 };
	static const uint32_t split[] = { 5, 7, 20, 1, 1500 + VIRTIO_NET_HDR_LEN - 33 };
	struct nrig r;
	uint8_t f[1514], got[2048];
	struct virtio_net_stats st;

	nrig_init(&r);
	make_frame(f, 60, 1);
	send_frame(&r, f, 60, one, 1);
	make_frame(f, 1500, 2);
	/* The header itself split across buffers, the frame across four more. */
	send_frame(&r, f, 1500, split, 5);
	ck_assert_int_eq(virtio_net_tx_process(&r.net, &r.q[VIRTIO_NET_TXQ], &r.m), 2);
	ck_assert_uint_eq(used_idx(&r.tx), 2);
	ck_assert_uint_eq(used_elem(&r.tx, 0).len, 0);
	ck_assert_uint_eq(net_memory_take(&r.be, got, sizeof(got)), 60);
	make_frame(f, 60, 1);
	ck_assert_mem_eq(got, f, 60);
	ck_assert_uint_eq(net_memory_take(&r.be, got, sizeof(got)), 1500);
	make_frame(f, 1500, 2);
	ck_assert_mem_eq(got, f, 1500);
	ck_assert_uint_eq(net_memory_take(&r.be, got, sizeof(got)), 0);
	virtio_net_get_stats(&r.net, &st);
	ck_assert_uint_eq(st.tx_frames, 2);
	ck_assert_uint_eq(st.tx_bytes, 1560);
	nrig_fini(&r);
}
END_TEST

START_TEST(test_tx_malformed)
{
	struct nrig r;
	struct virtio_net_stats st;
	uint8_t got[64];
	struct tbuf b[2];

	nrig_init(&r);
	/* A header and nothing else. */
	b[0] = (struct tbuf){ galloc(&r.tx, 12), 12, false };
	add_chain(&r.tx, b, 1);
	/* A frame shorter than an Ethernet header. */
	b[0] = (struct tbuf){ galloc(&r.tx, 12 + 13), 12 + 13, false };
	add_chain(&r.tx, b, 1);
	/* A device-writable buffer in a transmit chain. */
	b[0] = (struct tbuf){ galloc(&r.tx, 12 + 60), 12 + 60, false };
	b[1] = (struct tbuf){ galloc(&r.tx, 16), 16, true };
	add_chain(&r.tx, b, 2);
	/* A descriptor pointing outside guest RAM. */
	b[0] = (struct tbuf){ MEM_SIZE - 8, 64, false };
	add_chain(&r.tx, b, 1);
	ck_assert_int_eq(virtio_net_tx_process(&r.net, &r.q[VIRTIO_NET_TXQ], &r.m), 4);
	/* Each completed, empty, and none reached the network. */
	ck_assert_uint_eq(used_idx(&r.tx), 4);
	for (uint16_t i = 0; i < 4; i++)
		ck_assert_uint_eq(used_elem(&r.tx, i).len, 0);
	ck_assert_uint_eq(net_memory_take(&r.be, got, sizeof(got)), 0);
	virtio_net_get_stats(&r.net, &st);
	ck_assert_uint_eq(st.tx_frames, 0);
	ck_assert_uint_eq(st.tx_dropped, 2);
	ck_assert_uint_eq(st.bad_chains, 2);
	ck_assert(!r.q[VIRTIO_NET_TXQ].broken);
	nrig_fini(&r);
}
END_TEST

START_TEST(test_rx_frames)
{
	struct nrig r;
	uint8_t f[1514];
	uint64_t buf[2];
	struct virtio_net_stats st;
	const uint8_t *p;

	nrig_init(&r);
	buf[0] = give_rx(&r, 12 + 1514);
	buf[1] = give_rx(&r, 12 + 1514);
	make_frame(f, 1514, 3);
	ck_assert_int_eq(net_memory_put(&r.be, f, 1514), 0);
	make_frame(f, 64, 4);
	ck_assert_int_eq(net_memory_put(&r.be, f, 64), 0);
	give_rx(&r, 2048);
	ck_assert_int_eq(virtio_net_rx_process(&r.net, &r.q[VIRTIO_NET_RXQ], &r.m), 2);
	ck_assert(!r.net.rx_starved); /* stopped for want of frames, not of buffers */
	ck_assert_uint_eq(used_idx(&r.rx), 2);
	ck_assert_uint_eq(used_elem(&r.rx, 0).len, 12 + 1514);
	ck_assert_uint_eq(used_elem(&r.rx, 1).len, 12 + 64);
	p = gptr(&r.rx, buf[0], 12 + 1514);
	/* No offloads: flags, GSO and checksum fields zero; num_buffers 1. */
	for (int i = 0; i < 10; i++)
		ck_assert_uint_eq(p[i], 0);
	ck_assert_uint_eq(p[10] | p[11] << 8, 1);
	make_frame(f, 1514, 3);
	ck_assert_mem_eq(p + 12, f, 1514);
	p = gptr(&r.rx, buf[1], 12 + 64 + 1);
	make_frame(f, 64, 4);
	ck_assert_mem_eq(p + 12, f, 64);
	ck_assert_uint_eq(p[12 + 64], 0xcc); /* nothing past the frame */
	virtio_net_get_stats(&r.net, &st);
	ck_assert_uint_eq(st.rx_frames, 2);
	ck_assert_uint_eq(st.rx_bytes, 1514 + 64);
	nrig_fini(&r);
}
END_TEST

START_TEST(test_rx_split_buffers)
{
	struct nrig r;
	uint8_t f[600], got[12 + 600];
	struct tbuf b[3];
	size_t off = 0;

	nrig_init(&r);
	/* The header torn across the first two buffers, the frame across all three. */
	b[0] = (struct tbuf){ galloc(&r.rx, 7), 7, true };
	b[1] = (struct tbuf){ galloc(&r.rx, 100), 100, true };
	b[2] = (struct tbuf){ galloc(&r.rx, 1000), 1000, true };
	add_chain(&r.rx, b, 3);
	make_frame(f, sizeof(f), 5);
	ck_assert_int_eq(net_memory_put(&r.be, f, sizeof(f)), 0);
	ck_assert_int_eq(virtio_net_rx_process(&r.net, &r.q[VIRTIO_NET_RXQ], &r.m), 1);
	ck_assert_uint_eq(used_elem(&r.rx, 0).len, 12 + 600);
	for (int i = 0; i < 3 && off < sizeof(got); i++) {
		size_t n = b[i].len < sizeof(got) - off ? b[i].len : sizeof(got) - off;

		memcpy(got + off, gptr(&r.rx, b[i].gpa, n), n);
		off += n;
	}
	ck_assert_uint_eq(got[10] | got[11] << 8, 1);
	ck_assert_mem_eq(got + 12, f, sizeof(f));
	nrig_fini(&r);
}
END_TEST

START_TEST(test_rx_full_ring)
{
	struct nrig r;
	uint8_t f[100];
	struct virtio_net_stats st;

	nrig_init(&r);
	give_rx(&r, 2048);
	for (unsigned i = 0; i < 3; i++) {
		make_frame(f, sizeof(f), 10 + i);
		ck_assert_int_eq(net_memory_put(&r.be, f, sizeof(f)), 0);
	}
	/* One buffer: one frame in, the others wait in the back end. */
	ck_assert_int_eq(virtio_net_rx_process(&r.net, &r.q[VIRTIO_NET_RXQ], &r.m), 1);
	ck_assert(r.net.rx_starved);
	ck_assert_int_eq(virtio_net_rx_process(&r.net, &r.q[VIRTIO_NET_RXQ], &r.m), 0);
	ck_assert(r.net.rx_starved);
	/* The guest gives two more: the waiting frames arrive, in order. */
	uint64_t b1 = give_rx(&r, 2048), b2 = give_rx(&r, 2048);

	ck_assert_int_eq(virtio_net_rx_process(&r.net, &r.q[VIRTIO_NET_RXQ], &r.m), 2);
	make_frame(f, sizeof(f), 11);
	ck_assert_mem_eq((uint8_t *)gptr(&r.rx, b1, 112) + 12, f, sizeof(f));
	make_frame(f, sizeof(f), 12);
	ck_assert_mem_eq((uint8_t *)gptr(&r.rx, b2, 112) + 12, f, sizeof(f));
	virtio_net_get_stats(&r.net, &st);
	ck_assert_uint_eq(st.rx_frames, 3);
	ck_assert_uint_eq(st.rx_dropped, 0);
	ck_assert_uint_ge(st.rx_stalls, 2);
	nrig_fini(&r);
}
END_TEST

START_TEST(test_rx_never_replenished)
{
	struct nrig r;
	uint8_t f[100];

	nrig_init(&r);
	/* No buffer ever: the back end holds what it can and refuses the rest; nothing is lost
	 * silently. */
	for (unsigned i = 0; i < DEPTH; i++) {
		make_frame(f, sizeof(f), i);
		ck_assert_int_eq(net_memory_put(&r.be, f, sizeof(f)), 0);
	}
	ck_assert_int_eq(net_memory_put(&r.be, f, sizeof(f)), -ENOSPC);
	for (int pass = 0; pass < 3; pass++) {
		ck_assert_int_eq(virtio_net_rx_process(&r.net, &r.q[VIRTIO_NET_RXQ], &r.m), 0);
		ck_assert(r.net.rx_starved);
	}
	ck_assert_uint_eq(used_idx(&r.rx), 0);
	/* A driver that is not running has its input dropped, as a NIC that is down. */
	ck_assert_uint_eq(virtio_net_rx_drop(&r.net), DEPTH);
	ck_assert_int_eq(net_memory_put(&r.be, f, sizeof(f)), 0);
	nrig_fini(&r);
}
END_TEST

START_TEST(test_rx_malformed)
{
	struct nrig r;
	uint8_t f[1000];
	struct virtio_net_stats st;
	struct tbuf b[2];

	nrig_init(&r);
	/* A readable buffer, one too small for a header and an Ethernet header, one outside RAM. */
	b[0] = (struct tbuf){ galloc(&r.rx, 2048), 2048, false };
	add_chain(&r.rx, b, 1);
	b[0] = (struct tbuf){ galloc(&r.rx, 20), 20, true };
	add_chain(&r.rx, b, 1);
	b[0] = (struct tbuf){ MEM_SIZE - 100, 2048, true };
	add_chain(&r.rx, b, 1);
	/* Then one too small for the frame: the frame is dropped, the buffer used for the next. */
	uint64_t small = give_rx(&r, 12 + 500);

	make_frame(f, sizeof(f), 20);
	ck_assert_int_eq(net_memory_put(&r.be, f, sizeof(f)), 0);
	make_frame(f, 400, 21);
	ck_assert_int_eq(net_memory_put(&r.be, f, 400), 0);
	ck_assert_int_eq(virtio_net_rx_process(&r.net, &r.q[VIRTIO_NET_RXQ], &r.m), 4);
	for (uint16_t i = 0; i < 3; i++)
		ck_assert_uint_eq(used_elem(&r.rx, i).len, 0);
	ck_assert_uint_eq(used_elem(&r.rx, 3).len, 12 + 400);
	ck_assert_mem_eq((uint8_t *)gptr(&r.rx, small, 412) + 12, f, 400);
	virtio_net_get_stats(&r.net, &st);
	ck_assert_uint_eq(st.bad_chains, 3);
	ck_assert_uint_eq(st.rx_dropped, 1);
	ck_assert_uint_eq(st.rx_frames, 1);
	nrig_fini(&r);
}
END_TEST

START_TEST(test_broken_ring)
{
	struct nrig r;
	uint8_t f[64];

	nrig_init(&r);
	/* The avail index claims more entries than the ring has: the queue is unusable. */
	struct virtq_avail *a = avail_ring(&r.tx);

	a->idx = htole16(QSIZE + 5);
	make_frame(f, sizeof(f), 1);
	ck_assert_int_eq(virtio_net_tx_process(&r.net, &r.q[VIRTIO_NET_TXQ], &r.m), 0);
	ck_assert(r.q[VIRTIO_NET_TXQ].broken);
	r.q[VIRTIO_NET_RXQ].used = MEM_SIZE; /* a used ring outside RAM */
	ck_assert_int_eq(net_memory_put(&r.be, f, sizeof(f)), 0);
	ck_assert_int_eq(virtio_net_rx_process(&r.net, &r.q[VIRTIO_NET_RXQ], &r.m), 0);
	ck_assert(r.q[VIRTIO_NET_RXQ].broken);
	nrig_fini(&r);
}
END_TEST

/* The card behind virtio-pci, with its worker, as the machine attaches it (less KVM). */

struct prig {
	struct nrig r;
	struct bus pio, mmio;
	struct pci_bus pb;
	struct virtio_pci *vp;
	void *dev;
	int fds[2]; /* the queues' notify eventfds, as KVM's ioeventfds would be */
	unsigned raises;
};

static void count_irq(void *ctx, unsigned gsi, bool level)
{
	struct prig *p = ctx;

	(void)gsi;
	if (level)
		__atomic_fetch_add(&p->raises, 1, __ATOMIC_RELAXED);
}

static void bar_write(struct prig *p, unsigned off, uint64_t v, unsigned len)
{
	uint8_t d[8];

	for (unsigned i = 0; i < len; i++)
		d[i] = (uint8_t)(v >> (8 * i));
	virtio_pci_bar_io(p->vp, off, d, len, true);
}

static uint8_t bar_read8(struct prig *p, unsigned off)
{
	uint8_t d = 0;

	virtio_pci_bar_io(p->vp, off, &d, 1, false);
	return d;
}

static void queue_setup(struct prig *p, unsigned qi, const struct drv *d)
{
	bar_write(p, VIRTIO_PCI_COMMON_Q_SELECT, qi, 2);
	bar_write(p, VIRTIO_PCI_COMMON_Q_SIZE, QSIZE, 2);
	bar_write(p, VIRTIO_PCI_COMMON_Q_DESCLO, d->desc, 8);
	bar_write(p, VIRTIO_PCI_COMMON_Q_AVAILLO, d->avail, 8);
	bar_write(p, VIRTIO_PCI_COMMON_Q_USEDLO, d->used, 8);
	bar_write(p, VIRTIO_PCI_COMMON_Q_ENABLE, 1, 2);
}

/* The driver's start: features (VERSION_1 and MAC), both queues, DRIVER_OK. */
static void driver_start(struct prig *p)
{
	const uint8_t s = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;

	bar_write(p, VIRTIO_PCI_COMMON_STATUS, 0, 1);
	bar_write(p, VIRTIO_PCI_COMMON_STATUS, s, 1);
	bar_write(p, VIRTIO_PCI_COMMON_GFSELECT, 0, 4);
	bar_write(p, VIRTIO_PCI_COMMON_GF, 1u << VIRTIO_NET_F_MAC, 4);
	bar_write(p, VIRTIO_PCI_COMMON_GFSELECT, 1, 4);
	bar_write(p, VIRTIO_PCI_COMMON_GF, 1, 4); /* VIRTIO_F_VERSION_1 */
	bar_write(p, VIRTIO_PCI_COMMON_STATUS, s | VIRTIO_CONFIG_S_FEATURES_OK, 1);
	ck_assert(bar_read8(p, VIRTIO_PCI_COMMON_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK);
	queue_setup(p, VIRTIO_NET_RXQ, &p->r.rx);
	queue_setup(p, VIRTIO_NET_TXQ, &p->r.tx);
	bar_write(p, VIRTIO_PCI_COMMON_STATUS,
	          s | VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK, 1);
}

static void prig_init(struct prig *p)
{
	struct virtio_net_args a = { .be = NULL };
	struct irq_line line = { .set = count_irq, .ctx = p };
	struct circ_err err;

	memset(p, 0, sizeof(*p));
	nrig_init(&p->r);
	a.be = &p->r.be;
	memcpy(a.mac, test_mac, sizeof(a.mac));
	bus_init(&p->pio);
	bus_init(&p->mmio);
	ck_assert_int_eq(pci_init(&p->pb, &p->pio, &p->mmio), 0);
	ck_assert_int_eq(
	    virtio_net_model.create(&a, &p->pb, &p->r.m, &line, 16, &p->vp, &p->dev, &err), 0);
	for (int q = 0; q < 2; q++) {
		p->fds[q] = eventfd(0, EFD_CLOEXEC);
		ck_assert_int_ge(p->fds[q], 0);
	}
	ck_assert_int_eq(virtio_pci_start_worker(p->vp, p->fds, 2, &err), 0);
}

static void prig_fini(struct prig *p)
{
	virtio_net_model.destroy(p->dev);
	for (int q = 0; q < 2; q++)
		close(p->fds[q]);
	pci_destroy(&p->pb);
	bus_destroy(&p->mmio);
	bus_destroy(&p->pio);
	nrig_fini(&p->r);
}

static void kick(struct prig *p, unsigned q)
{
	uint64_t one = 1;

	ck_assert_int_eq(write(p->fds[q], &one, sizeof(one)), sizeof(one));
}

/* Until the queue's used index reaches want, or 5 s (the worker runs on its own). */
static bool wait_used(struct drv *d, uint16_t want)
{
	struct timespec ts = { 0, 1000000 };

	for (int i = 0; i < 5000 && used_idx(d) != want; i++)
		nanosleep(&ts, NULL);
	return used_idx(d) == want;
}

/* Until the card has dropped want frames in all, or 5 s. */
static uint64_t wait_dropped(struct prig *p, uint64_t want)
{
	struct timespec ts = { 0, 1000000 };
	struct virtio_net_stats st;

	for (int i = 0; i < 5000; i++) {
		virtio_net_get_stats(virtio_net_model_net(p->dev), &st);
		if (st.rx_dropped >= want)
			break;
		nanosleep(&ts, NULL);
	}
	return st.rx_dropped;
}

START_TEST(test_pci_worker)
{
	struct prig p;
	uint8_t f[200], got[256];
	uint32_t one[] = { VIRTIO_NET_HDR_LEN + 100 };

	prig_init(&p);
	/* Input before the driver runs is dropped, as by a NIC that is down. */
	make_frame(f, 100, 1);
	ck_assert_int_eq(net_memory_put(&p.r.be, f, 100), 0);
	ck_assert_uint_eq(wait_dropped(&p, 1), 1);
	driver_start(&p);
	/* No receive buffer: a frame waits in the back end, however often it is looked at. */
	make_frame(f, 100, 2);
	ck_assert_int_eq(net_memory_put(&p.r.be, f, 100), 0);
	kick(&p, VIRTIO_NET_RXQ);
	/* The guest gives a buffer and says so: the waiting frame arrives, with an interrupt. */
	uint64_t buf = give_rx(&p.r, 2048);

	kick(&p, VIRTIO_NET_RXQ);
	ck_assert(wait_used(&p.r.rx, 1));
	ck_assert_mem_eq((uint8_t *)gptr(&p.r.rx, buf, 112) + VIRTIO_NET_HDR_LEN, f, 100);
	ck_assert_uint_ge(__atomic_load_n(&p.raises, __ATOMIC_RELAXED), 1);
	/* With buffers there, input arrives by itself, through the back end's descriptor. */
	buf = give_rx(&p.r, 2048);
	kick(&p, VIRTIO_NET_RXQ);
	make_frame(f, 150, 3);
	ck_assert_int_eq(net_memory_put(&p.r.be, f, 150), 0);
	ck_assert(wait_used(&p.r.rx, 2));
	ck_assert_mem_eq((uint8_t *)gptr(&p.r.rx, buf, 162) + VIRTIO_NET_HDR_LEN, f, 150);
	/* A frame sent: out through the back end, the chain given back. */
	make_frame(f, 100, 4);
	send_frame(&p.r, f, 100, one, 1);
	kick(&p, VIRTIO_NET_TXQ);
	ck_assert(wait_used(&p.r.tx, 1));
	ck_assert_uint_eq(net_memory_take(&p.r.be, got, sizeof(got)), 100);
	ck_assert_mem_eq(got, f, 100);
	/* A reset while the guest had no buffers: input is dropped again, not left to pile up. */
	bar_write(&p, VIRTIO_PCI_COMMON_STATUS, 0, 1);
	ck_assert_int_eq(net_memory_put(&p.r.be, f, 100), 0);
	ck_assert_uint_eq(wait_dropped(&p, 2), 2);
	prig_fini(&p);
}
END_TEST

Suite *virtio_net_suite(void)
{
	Suite *s = suite_create("virtio_net");
	TCase *dev = tcase_create("device");

	tcase_set_timeout(dev, 30);
	tcase_add_test(dev, test_config);
	tcase_add_test(dev, test_tx_frames);
	tcase_add_test(dev, test_tx_malformed);
	tcase_add_test(dev, test_rx_frames);
	tcase_add_test(dev, test_rx_split_buffers);
	tcase_add_test(dev, test_rx_full_ring);
	tcase_add_test(dev, test_rx_never_replenished);
	tcase_add_test(dev, test_rx_malformed);
	tcase_add_test(dev, test_broken_ring);
	tcase_add_test(dev, test_pci_worker);
	suite_add_tcase(s, dev);

	return s;
}
