/* SPDX-License-Identifier: MIT */
/*
 * The test guest's network modes (guest.c says which): DHCP and a ping on
 * a user network, a ping through a tap, frames in batches for the
 * exits-per-frame figure.
 */
#include "guest.h"

/* The network card's rings and buffers. */
#define NET_RING    0x420000ul /* RX ring, TX ring 0x4000 above */
#define NET_RXBUF   0x700000ul
#define NET_TXBUF   0x720000ul
#define NET_BUF     2048u
#define NET_QSIZE   32u
#define NET_RX_BUFS 16u
#define NET_HDR     12u
#define NET_BATCH   32u

/* The network card: RX queue 0 with NET_RX_BUFS buffers posted, TX queue 1. */
struct net {
	struct vcaps c;
	struct vq rx, tx;
	uint8_t mac[6];
	uint16_t rx_avail, tx_avail;
};

static void net_post_rx(struct net *n, uint16_t id)
{
	n->rx.desc[id] = (struct vq_desc){ NET_RXBUF + (uint64_t)id * NET_BUF, NET_BUF, 2, 0 };
	n->rx.avail[2 + n->rx_avail % n->rx.qsize] = id;
	n->rx_avail++;
}

static bool net_init(struct net *n, unsigned slot)
{
	uint64_t features;

	if (!virtio_caps(slot, &n->c) || !virtio_negotiate(&n->c, 1u << 5 /* MAC */, &features) ||
	    !(features & 1u << 5) ||
	    !virtio_queue(&n->c, 0, (uint8_t *)NET_RING, NET_QSIZE, &n->rx) ||
	    !virtio_queue(&n->c, 1, (uint8_t *)(NET_RING + 0x4000), NET_QSIZE, &n->tx))
		return false;
	for (int i = 0; i < 6; i++)
		n->mac[i] = n->c.device[i];
	n->rx_avail = n->tx_avail = 0;
	virtio_driver_ok(&n->c);
	for (uint16_t i = 0; i < NET_RX_BUFS; i++)
		net_post_rx(n, i);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	n->rx.avail[1] = n->rx_avail;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	*n->rx.notify = 0;
	return true;
}

/* Puts frames [0, count) of TX buffer slots on the ring with one notify, and waits for them. */
static void net_send_batch(struct net *n, const uint16_t *lens, unsigned count)
{
	for (unsigned i = 0; i < count; i++) {
		uint16_t id = (uint16_t)i;

		n->tx.desc[id] = (struct vq_desc){ NET_TXBUF + (uint64_t)i * NET_BUF,
			                           (uint32_t)(NET_HDR + lens[i]), 0, 0 };
		n->tx.avail[2 + (uint16_t)(n->tx_avail + i) % n->tx.qsize] = id;
	}
	n->tx_avail = (uint16_t)(n->tx_avail + count);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	n->tx.avail[1] = n->tx_avail;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	*n->tx.notify = 1;
	while ((uint16_t)(n->tx.used[1] - n->tx.next_used) < count)
		__asm__ volatile("pause");
	n->tx.next_used = (uint16_t)(n->tx.next_used + count);
}

/* The frame in TX slot 0, past the header the device ignores. */
static uint8_t *net_tx_frame(void)
{
	memset((void *)NET_TXBUF, 0, NET_HDR);
	return (uint8_t *)NET_TXBUF + NET_HDR;
}

static void net_send(struct net *n, uint16_t len)
{
	net_send_batch(n, &len, 1);
}

/* The next received frame (its length in *len), or 0 after about spins polls; repost with net_done.
 */
static const uint8_t *net_recv(struct net *n, uint32_t *len, uint64_t spins, uint16_t *id)
{
	const volatile uint32_t *elem;

	while (n->rx.used[1] == n->rx.next_used) {
		if (!spins--)
			return 0;
		__asm__ volatile("pause");
	}
	elem = (const volatile uint32_t *)(n->rx.used + 2) + 2 * (n->rx.next_used % n->rx.qsize);
	*id = (uint16_t)elem[0];
	*len = elem[1] >= NET_HDR ? elem[1] - NET_HDR : 0;
	n->rx.next_used++;
	return (const uint8_t *)(NET_RXBUF + (uint64_t)(*id % NET_RX_BUFS) * NET_BUF + NET_HDR);
}

static void net_done(struct net *n, uint16_t id)
{
	net_post_rx(n, id % NET_RX_BUFS);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	n->rx.avail[1] = n->rx_avail;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	*n->rx.notify = 0;
}

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

static uint16_t inet_sum(const uint8_t *p, unsigned len)
{
	uint32_t sum = 0;

	for (unsigned i = 0; i + 1 < len; i += 2)
		sum += be16(p + i);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* Ethernet and IPv4 headers (34 bytes) for a payload of len bytes; returns the payload. */
static uint8_t *ip_header(struct net *n, uint8_t *f, const uint8_t *dst_mac, uint8_t proto,
                          uint32_t src, uint32_t dst, unsigned len)
{
	uint8_t *ip = f + 14;

	for (int i = 0; i < 6; i++) {
		f[i] = dst_mac[i];
		f[6 + i] = n->mac[i];
	}
	put16(f + 12, 0x0800);
	memset(ip, 0, 20);
	ip[0] = 0x45;
	put16(ip + 2, (uint16_t)(20 + len));
	ip[8] = 64;
	ip[9] = proto;
	put32(ip + 12, src);
	put32(ip + 16, dst);
	put16(ip + 10, inet_sum(ip, 20));
	return ip + 20;
}

static void putip(uint32_t a)
{
	for (int i = 3; i >= 0; i--) {
		putdec(a >> (8 * i) & 0xff);
		if (i)
			putc('.');
	}
}

static const uint8_t broadcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

#define DHCP_XID  0x43495243u /* "CIRC" */
#define BOOTP_LEN 300u

/* DHCPDISCOVER, broadcast; the offer's address, server and its MAC, or false. */
static bool dhcp_discover(struct net *n, uint32_t *yiaddr, uint32_t *server, uint8_t server_mac[6])
{
	uint8_t *f = net_tx_frame(), *udp, *bp;
	const uint8_t *r;
	uint32_t len;
	uint16_t id;

	udp = ip_header(n, f, broadcast, 17, 0, 0xffffffffu, 8 + BOOTP_LEN);
	put16(udp, 68);
	put16(udp + 2, 67);
	put16(udp + 4, 8 + BOOTP_LEN);
	put16(udp + 6, 0); /* no checksum */
	bp = udp + 8;
	memset(bp, 0, BOOTP_LEN);
	bp[0] = 1; /* BOOTREQUEST */
	bp[1] = 1; /* Ethernet */
	bp[2] = 6;
	put32(bp + 4, DHCP_XID);
	put16(bp + 10, 0x8000); /* broadcast reply */
	for (int i = 0; i < 6; i++)
		bp[28 + i] = n->mac[i];
	put32(bp + 236, 0x63825363); /* the DHCP magic cookie */
	bp[240] = 53;                /* message type: DISCOVER */
	bp[241] = 1;
	bp[242] = 1;
	bp[243] = 255;
	net_send(n, (uint16_t)(34 + 8 + BOOTP_LEN));
	for (int tries = 0; tries < 16; tries++) {
		r = net_recv(n, &len, 20000000, &id);
		if (!r)
			return false;
		/* An offer: IPv4, UDP from port 67 to 68, BOOTREPLY with our xid. */
		if (len >= 34 + 8 + 240 && be16(r + 12) == 0x0800 && r[23] == 17 &&
		    be16(r + 34) == 67 && be16(r + 36) == 68 && r[42] == 2 &&
		    be16(r + 46) == (DHCP_XID >> 16) && be16(r + 48) == (DHCP_XID & 0xffff)) {
			*yiaddr = (uint32_t)be16(r + 58) << 16 | be16(r + 60);
			*server = (uint32_t)be16(r + 26) << 16 | be16(r + 28);
			for (int i = 0; i < 6; i++)
				server_mac[i] = r[6 + i];
			net_done(n, id);
			return true;
		}
		net_done(n, id);
	}
	return false;
}

/* An ICMP echo from src to dst; true when the reply comes back. */
static bool ping(struct net *n, uint32_t src, uint32_t dst, const uint8_t *dst_mac)
{
	uint8_t *f = net_tx_frame(), *icmp;
	const uint8_t *r;
	uint32_t len;
	uint16_t id;

	icmp = ip_header(n, f, dst_mac, 1, src, dst, 8 + 32);
	icmp[0] = 8; /* echo request */
	icmp[1] = 0;
	put16(icmp + 2, 0);
	put16(icmp + 4, 0xc1c);
	put16(icmp + 6, 1);
	for (int i = 0; i < 32; i++)
		icmp[8 + i] = (uint8_t)('a' + i % 26);
	put16(icmp + 2, inet_sum(icmp, 8 + 32));
	net_send(n, 34 + 8 + 32);
	for (int tries = 0; tries < 16; tries++) {
		r = net_recv(n, &len, 20000000, &id);
		if (!r)
			return false;
		/* The reply: IPv4 ICMP from dst, type 0, our identifier, our payload. */
		if (len >= 34 + 8 + 32 && be16(r + 12) == 0x0800 && r[23] == 1 &&
		    ((uint32_t)be16(r + 26) << 16 | be16(r + 28)) == dst && r[34] == 0 &&
		    be16(r + 38) == 0xc1c && memcmp(r + 42, icmp + 8, 32) == 0) {
			net_done(n, id);
			return true;
		}
		net_done(n, id);
	}
	return false;
}

/* netbench: count frames of 64 bytes (EtherType 0x88b5, local experimental) in batches. */
static void net_bench(struct net *n, uint64_t count)
{
	uint16_t lens[NET_BATCH];
	uint64_t batches = 0;

	for (unsigned i = 0; i < NET_BATCH; i++) {
		uint8_t *f = (uint8_t *)NET_TXBUF + (uint64_t)i * NET_BUF;

		memset(f, 0, NET_HDR + 64);
		for (int b = 0; b < 6; b++) {
			f[NET_HDR + b] = 0xff;
			f[NET_HDR + 6 + b] = n->mac[b];
		}
		put16(f + NET_HDR + 12, 0x88b5);
		lens[i] = 64;
	}
	for (uint64_t done = 0; done < count; batches++) {
		unsigned batch = count - done < NET_BATCH ? (unsigned)(count - done) : NET_BATCH;

		net_send_batch(n, lens, batch);
		done += batch;
	}
	puts("netbench: frames=");
	putdec8(count);
	puts(" notifies=");
	putdec8(batches);
	putc('\n');
}

void net_main(const uint8_t *boot_params, const char *cmdline)
{
	struct net n;
	uint32_t ip = 0, server = 0;
	uint8_t server_mac[6];
	unsigned slot;

	for (slot = 0; slot < 32; slot++)
		if (pci_read(slot, 0) == (0x1041u << 16 | 0x1af4u))
			break;
	bool found = slot < 32 && net_init(&n, slot);

	check(found, "virtio-net card");
	if (!found)
		poweroff(boot_params);
	puts("mac: ");
	for (int i = 0; i < 6; i++) {
		const char *hex = "0123456789abcdef";

		putc(hex[n.mac[i] >> 4]);
		putc(hex[n.mac[i] & 15]);
		if (i < 5)
			putc(':');
	}
	putc('\n');
	if (arg(cmdline, "net") == 3) {
		net_bench(&n, arg(cmdline, "netbench"));
	} else if (arg(cmdline, "net") == 2) {
		ip = (uint32_t)arg(cmdline, "ip");
		server = (uint32_t)arg(cmdline, "host");
		check(ping(&n, ip, server, broadcast), "ping the host");
	} else {
		bool offer = dhcp_discover(&n, &ip, &server, server_mac);

		check(offer, "dhcp offer");
		if (offer) {
			puts("dhcp: address ");
			putip(ip);
			puts(" from ");
			putip(server);
			putc('\n');
			check(ping(&n, ip, server, server_mac), "ping the gateway");
		}
	}
	puts("circ test guest: done\n");
	poweroff(boot_params);
}
