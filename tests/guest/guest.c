/* SPDX-License-Identifier: MIT */
/*
 * A freestanding test guest for hv: it prints on the serial port, finds the
 * virtio-blk devices on PCI, reads sectors and checks them against a CRC the
 * host computed (passed on the command line), copies them elsewhere, flushes,
 * discards a range, tries to write a read-only disk, and powers off through
 * the port and sleep type it finds in the ACPI tables. Its instruction count
 * stays small: KVM on CI machines emulates every one.
 *
 * Command line: "cksum=N copy=S discard=S" (decimal); "reboot=1" resets the
 * machine through the i8042 instead, "crash=1" triple-faults, "echo=1" reads
 * a line from the console and prints it back.
 *
 * "net=1" skips the disks and drives the virtio-net card instead: it asks for
 * an address by DHCP (a user network's gateway answers with 10.0.2.15),
 * pings the server that answered, and prints what it got. "net=2" is for a
 * tap: no DHCP; it pings host=N (an IPv4 address as a decimal number) from
 * ip=N, to the broadcast MAC, and waits for the reply.
 * "display=1" draws a test pattern on the framebuffer that screen_info
 * describes (red = x, green = y, blue = x + y, each mod 256), prints
 * "display: WxH ready", then prints each event of the virtio keyboard and
 * tablet ("input: TYPE CODE VALUE", EV_SYN left out) until Enter is let go.
 * "net=3 netbench=N" sends N 64-byte frames of a local EtherType in batches
 * of 32, one notify a batch, polling the used ring, for the exits-per-frame
 * figure (N may be 0: the same run without the frames).
 *
 * Benchmark modes (bench/hv.sh): "byte=1" writes one byte ('c') to the serial
 * port and powers off at once. "bench=1 qd1=N qd32=M" skips the tests: on the
 * first disk, with a queue of BENCH_QSIZE, it reads N 4 KiB blocks one at a
 * time, then M in batches of 32 in flight, polling the used ring and reading
 * the ISR once per completed batch (as an INTx handler would), and prints
 * its device-register accesses at a fixed width, so that a run with N = M = 0
 * prints exactly as many bytes (and takes as many serial exits) as any other.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COM1         0x3f8
#define BP_ACPI_RSDP 0x70 /* boot_params.acpi_rsdp_addr */
#define SLP_EN       (1u << 13)
#define PCI_ADDR     0xcf8
#define PCI_DATA     0xcfc
#define MMIO_PD      0x300000ul /* page directory mapping 3-4 GiB */
#define RING_BASE    0x400000ul
#define REQ_HDR      0x500000ul
#define REQ_DATA     0x510000ul
#define REQ_STATUS   0x520000ul
#define COPY_BUF     0x530000ul
#define QSIZE        8

/* The benchmark mode's requests. */
#define BENCH_HDR    0x540000ul /* 16 bytes a request */
#define BENCH_STATUS 0x541000ul /* 1 byte a request */
#define BENCH_DATA   0x600000ul /* 4 KiB a request */
#define BENCH_QSIZE  128        /* 32 requests of 3 descriptors in flight */
#define BENCH_DEPTH  32

/* The network card's rings and buffers. */
#define NET_RING    0x420000ul /* RX ring, TX ring 0x4000 above */
#define NET_RXBUF   0x700000ul
#define NET_TXBUF   0x720000ul
#define NET_BUF     2048u
#define NET_QSIZE   32u
#define NET_RX_BUFS 16u
#define NET_HDR     12u
#define NET_BATCH   32u

/* The virtio-input devices' event queues (16 KiB each) and buffers. */
#define INPUT_RING  0x430000ul
#define INPUT_BUF   0x740000ul
#define INPUT_QSIZE 16u
#define KEY_ENTER   28

#define VIRTIO_STATUS_ACK         1
#define VIRTIO_STATUS_DRIVER      2
#define VIRTIO_STATUS_DRIVER_OK   4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_BLK_F_RO           5
#define VIRTIO_BLK_F_FLUSH        9
#define VIRTIO_BLK_F_DISCARD      13
#define T_IN                      0
#define T_OUT                     1
#define T_FLUSH                   4
#define T_GET_ID                  8
#define T_DISCARD                 11

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;

	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline void outw(uint16_t port, uint16_t v)
{
	__asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port));
}

static inline void outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint32_t inl(uint16_t port)
{
	uint32_t v;

	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static void putc(char c)
{
	while (!(inb(COM1 + 5) & 0x20))
		;
	outb(COM1, (uint8_t)c);
}

static void puts(const char *s)
{
	while (*s)
		putc(*s++);
}

static void putdec(uint64_t v)
{
	char buf[24];
	int i = 0;

	do {
		buf[i++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (i)
		putc(buf[--i]);
}

static bool table_ok(const uint8_t *t, const char *sig, uint32_t len)
{
	uint8_t sum = 0;

	if (t[0] != sig[0] || t[1] != sig[1] || t[2] != sig[2] || t[3] != sig[3])
		return false;
	for (uint32_t i = 0; i < len; i++)
		sum = (uint8_t)(sum + t[i]);
	return sum == 0;
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
	return rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

/*
 * Finds the PM1a control port in the FADT and S5's SLP_TYP in the DSDT, the
 * way an OS without an AML interpreter does: RSDP (from boot_params), XSDT,
 * FADT, then the bytes Name(\_S5, Package(){n, ...}) in the DSDT.
 */
static bool acpi_s5(const uint8_t *boot_params, uint16_t *port, uint16_t *slp_typ)
{
	const uint8_t *rsdp = (const uint8_t *)(uintptr_t)rd64(boot_params + BP_ACPI_RSDP), *xsdt;
	const uint8_t *fadt = 0, *dsdt;
	uint32_t len;

	if (!rsdp || !table_ok(rsdp, "RSD ", 20) || rsdp[4] != 'P' || rsdp[15] < 2)
		return false;
	xsdt = (const uint8_t *)(uintptr_t)rd64(rsdp + 24);
	if (!table_ok(xsdt, "XSDT", rd32(xsdt + 4)))
		return false;
	for (uint32_t off = 36; off + 8 <= rd32(xsdt + 4); off += 8) {
		const uint8_t *t = (const uint8_t *)(uintptr_t)rd64(xsdt + off);

		if (table_ok(t, "FACP", rd32(t + 4)))
			fadt = t;
	}
	if (!fadt)
		return false;
	*port = (uint16_t)rd32(fadt + 64); /* PM1a_CNT_BLK */
	dsdt = (const uint8_t *)(uintptr_t)rd64(fadt + 140);
	len = rd32(dsdt + 4);
	if (!*port || !table_ok(dsdt, "DSDT", len))
		return false;
	for (uint32_t i = 36; i + 8 < len; i++) {
		const uint8_t *p = dsdt + i;

		/* "_S5_", PackageOp, a one-byte PkgLength, the element count, then SLP_TYPa. */
		if (p[0] != '_' || p[1] != 'S' || p[2] != '5' || p[3] != '_' || p[4] != 0x12 ||
		    p[5] & 0xc0)
			continue;
		if (p[7] == 0x0a)
			*slp_typ = p[8];
		else if (p[7] <= 1)
			*slp_typ = p[7];
		else
			return false;
		return true;
	}
	return false;
}

static void poweroff(const uint8_t *boot_params)
{
	uint16_t port = 0, slp_typ = 0;

	if (!acpi_s5(boot_params, &port, &slp_typ)) {
		puts("acpi: no PM1a_CNT or \\_S5 in the tables: FAIL\n");
		outb(0x64, 0xfe); /* a reset, which the tests take for a failure */
	}
	outw(port, (uint16_t)(slp_typ << 10 | SLP_EN));
	for (;;)
		__asm__ volatile("hlt");
}

static void *memset(void *d, int c, size_t n)
{
	uint8_t *p = d;

	while (n--)
		*p++ = (uint8_t)c;
	return d;
}

static int memcmp(const void *a, const void *b, size_t n)
{
	const uint8_t *x = a, *y = b;

	for (size_t i = 0; i < n; i++)
		if (x[i] != y[i])
			return x[i] - y[i];
	return 0;
}

/* POSIX cksum (CRC-32 with the length appended), as the host's cksum(1) prints it. */
static uint32_t cksum(const uint8_t *p, size_t n)
{
	uint32_t crc = 0;
	size_t len = n;

	for (size_t i = 0; i < n; i++) {
		crc ^= (uint32_t)p[i] << 24;
		for (int b = 0; b < 8; b++)
			crc = crc & 0x80000000u ? (crc << 1) ^ 0x04c11db7u : crc << 1;
	}
	for (; len; len >>= 8) {
		crc ^= (uint32_t)(len & 0xff) << 24;
		for (int b = 0; b < 8; b++)
			crc = crc & 0x80000000u ? (crc << 1) ^ 0x04c11db7u : crc << 1;
	}
	return ~crc;
}

static uint64_t arg(const char *cmdline, const char *key)
{
	for (const char *p = cmdline; p && *p; p++) {
		const char *k = key, *q = p;
		uint64_t v = 0;

		while (*k && *q == *k) {
			k++;
			q++;
		}
		if (*k || *q != '=')
			continue;
		for (q++; *q >= '0' && *q <= '9'; q++)
			v = v * 10 + (uint64_t)(*q - '0');
		return v;
	}
	return 0;
}

static uint32_t pci_read(unsigned slot, unsigned reg)
{
	outl(PCI_ADDR, 0x80000000u | slot << 11 | (reg & 0xfc));
	return inl(PCI_DATA);
}

/* BARs live in the 32-bit hole; boot tables map only the first GiB. */
static void map_mmio_hole(void)
{
	uint64_t cr3, *pml4, *pdpt, *pd = (uint64_t *)MMIO_PD;

	__asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
	pml4 = (uint64_t *)(cr3 & ~0xfffull);
	pdpt = (uint64_t *)(pml4[0] & ~0xfffull);
	for (uint64_t i = 0; i < 512; i++)
		pd[i] = (0xc0000000ull + (i << 21)) | 0x9b; /* present, rw, uncached, 2 MiB */
	pdpt[3] = MMIO_PD | 3;
	__asm__ volatile("mov %0, %%cr3" : : "r"(cr3) : "memory");
}

struct vq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

struct blk {
	volatile uint8_t *common, *isr, *device;
	volatile uint16_t *notify;
	struct vq_desc *desc;
	volatile uint16_t *avail; /* flags, idx, ring[] */
	volatile uint16_t *used;  /* flags, idx, then {u32 id, u32 len}[] */
	uint16_t next_used, qsize;
	uint64_t features;
};

/* A virtio-pci function's regions, from its vendor capabilities. */
struct vcaps {
	volatile uint8_t *common, *isr, *device, *notify_base;
	uint32_t notify_mult;
};

static bool virtio_caps(unsigned slot, struct vcaps *c)
{
	uint8_t cap = (uint8_t)pci_read(slot, 0x34);

	memset(c, 0, sizeof(*c));
	for (int guard = 0; cap && guard < 48; guard++) {
		uint32_t w0 = pci_read(slot, cap);
		unsigned type = (w0 >> 24) & 0xff, bar = pci_read(slot, cap + 4) & 0xff;
		uint32_t off = pci_read(slot, cap + 8);
		uint64_t base = pci_read(slot, 0x10 + 4 * bar) & ~0xfull;

		if ((w0 & 0xff) == 0x09) {
			if (type == 1)
				c->common = (volatile uint8_t *)(base + off);
			else if (type == 2) {
				c->notify_base = (volatile uint8_t *)(base + off);
				c->notify_mult = pci_read(slot, cap + 16);
			} else if (type == 3)
				c->isr = (volatile uint8_t *)(base + off);
			else if (type == 4)
				c->device = (volatile uint8_t *)(base + off);
		}
		cap = (uint8_t)(w0 >> 8);
	}
	return c->common && c->notify_base && c->isr && c->device;
}

#define COMMON8(b, off)  (*(volatile uint8_t *)((b)->common + (off)))
#define COMMON16(b, off) (*(volatile uint16_t *)((b)->common + (off)))
#define COMMON32(b, off) (*(volatile uint32_t *)((b)->common + (off)))
#define COMMON64(b, off) (*(volatile uint64_t *)((b)->common + (off)))

/* Reset, ACK, DRIVER, then the wanted features of the low 32 and VERSION_1. */
static bool virtio_negotiate(struct vcaps *c, uint32_t want, uint64_t *features)
{
	COMMON8(c, 20) = 0;
	COMMON8(c, 20) = VIRTIO_STATUS_ACK;
	COMMON8(c, 20) = VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER;
	COMMON32(c, 0) = 0;
	*features = COMMON32(c, 4);
	COMMON32(c, 0) = 1;
	*features |= (uint64_t)COMMON32(c, 4) << 32;
	if (!(*features >> 32 & 1))
		return false; /* not VIRTIO_F_VERSION_1 */
	COMMON32(c, 8) = 0;
	COMMON32(c, 12) = (uint32_t)*features & want;
	COMMON32(c, 8) = 1;
	COMMON32(c, 12) = 1;
	COMMON8(c, 20) = VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK;
	return (COMMON8(c, 20) & VIRTIO_STATUS_FEATURES_OK) != 0;
}

/* A split queue in 16 KiB at ring: descriptors, then avail at +4 KiB, used at +8 KiB. */
struct vq {
	struct vq_desc *desc;
	volatile uint16_t *avail; /* flags, idx, ring[] */
	volatile uint16_t *used;  /* flags, idx, then {u32 id, u32 len}[] */
	volatile uint16_t *notify;
	uint16_t next_used, qsize;
};

static bool virtio_queue(struct vcaps *c, unsigned qi, uint8_t *ring, uint16_t qsize, struct vq *q)
{
	COMMON16(c, 22) = (uint16_t)qi;
	if (COMMON16(c, 24) < qsize)
		return false;
	COMMON16(c, 24) = qsize;
	q->qsize = qsize;
	q->next_used = 0;
	memset(ring, 0, 0x4000);
	q->desc = (struct vq_desc *)ring;
	q->avail = (volatile uint16_t *)(ring + 0x1000);
	q->used = (volatile uint16_t *)(ring + 0x2000);
	COMMON64(c, 32) = (uint64_t)q->desc;
	COMMON64(c, 40) = (uint64_t)q->avail;
	COMMON64(c, 48) = (uint64_t)q->used;
	q->notify = (volatile uint16_t *)(c->notify_base + COMMON16(c, 30) * c->notify_mult);
	COMMON16(c, 28) = 1;
	return true;
}

static void virtio_driver_ok(struct vcaps *c)
{
	COMMON8(c, 20) = VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
	                 VIRTIO_STATUS_DRIVER_OK;
}

static bool blk_init(struct blk *b, unsigned slot, unsigned index, uint16_t qsize)
{
	struct vcaps c;
	struct vq q;

	memset(b, 0, sizeof(*b));
	if (!virtio_caps(slot, &c) ||
	    !virtio_negotiate(
	        &c, 1u << VIRTIO_BLK_F_RO | 1u << VIRTIO_BLK_F_FLUSH | 1u << VIRTIO_BLK_F_DISCARD,
	        &b->features) ||
	    !virtio_queue(&c, 0, (uint8_t *)(RING_BASE + index * 0x4000ul), qsize, &q))
		return false;
	b->common = c.common;
	b->isr = c.isr;
	b->device = c.device;
	b->desc = q.desc;
	b->avail = q.avail;
	b->used = q.used;
	b->notify = q.notify;
	b->qsize = qsize;
	virtio_driver_ok(&c);
	return true;
}

/* One request, polled: header, optional data, status. Returns the status byte. */
static int blk_request(struct blk *b, uint32_t type, uint64_t sector, void *data, uint32_t len,
                       bool device_writes)
{
	volatile uint64_t *hdr = (volatile uint64_t *)REQ_HDR;
	volatile uint8_t *status = (volatile uint8_t *)REQ_STATUS;
	uint16_t idx = b->avail[1], n = 0;

	hdr[0] = type;
	hdr[1] = sector;
	*status = 0xff;
	b->desc[n++] = (struct vq_desc){ REQ_HDR, 16, 1, 1 };
	if (len)
		b->desc[n++] = (struct vq_desc){ (uint64_t)data, len,
			                         (uint16_t)(1 | (device_writes ? 2 : 0)), 2 };
	b->desc[n++] = (struct vq_desc){ REQ_STATUS, 1, 2, 0 };
	b->avail[2 + idx % b->qsize] = 0;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	b->avail[1] = (uint16_t)(idx + 1);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	*b->notify = 0;
	while (b->used[1] == b->next_used)
		__asm__ volatile("pause");
	b->next_used++;
	return *status;
}

/* putdec at a fixed width of 8 digits (bench output must not change length with N). */
static void putdec8(uint64_t v)
{
	char buf[8];

	for (int i = 7; i >= 0; i--) {
		buf[i] = (char)('0' + v % 10);
		v /= 10;
	}
	for (int i = 0; i < 8; i++)
		putc(buf[i]);
}

struct bench_counts {
	uint64_t notifies, isr_reads, errors;
};

/*
 * n reads of 4 KiB, depth at a time (depth <= BENCH_DEPTH), sequential over
 * the disk's first 2^k 4 KiB blocks: chain i is descriptors 3i..3i+2, set up
 * once; each batch is published with one avail index update and one notify,
 * polled to completion, then acknowledged with one ISR read.
 */
static void bench_reads(struct blk *b, uint64_t n, unsigned depth, struct bench_counts *c)
{
	volatile uint64_t *hdr = (volatile uint64_t *)BENCH_HDR;
	volatile uint8_t *status = (volatile uint8_t *)BENCH_STATUS;
	uint64_t capacity = *(volatile uint64_t *)b->device, blocks = 1, block = 0;

	while (blocks * 2 * 8 <= capacity && blocks < 4096)
		blocks *= 2;
	for (unsigned i = 0; i < depth; i++) {
		uint16_t d = (uint16_t)(3 * i);

		b->desc[d] = (struct vq_desc){ BENCH_HDR + 16 * i, 16, 1, (uint16_t)(d + 1) };
		b->desc[d + 1] =
		    (struct vq_desc){ BENCH_DATA + 4096ul * i, 4096, 1 | 2, (uint16_t)(d + 2) };
		b->desc[d + 2] = (struct vq_desc){ BENCH_STATUS + i, 1, 2, 0 };
	}
	for (uint64_t done = 0; done < n;) {
		unsigned batch = n - done < depth ? (unsigned)(n - done) : depth;
		uint16_t idx = b->avail[1];

		for (unsigned i = 0; i < batch; i++) {
			hdr[2 * i] = T_IN;
			hdr[2 * i + 1] = block * 8;
			block = (block + 1) & (blocks - 1);
			status[i] = 0xff;
			b->avail[2 + (uint16_t)(idx + i) % b->qsize] = (uint16_t)(3 * i);
		}
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		b->avail[1] = (uint16_t)(idx + batch);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		*b->notify = 0;
		c->notifies++;
		while ((uint16_t)(b->used[1] - b->next_used) < batch)
			__asm__ volatile("pause");
		b->next_used = (uint16_t)(b->next_used + batch);
		(void)*b->isr;
		c->isr_reads++;
		for (unsigned i = 0; i < batch; i++)
			c->errors += status[i] != 0;
		done += batch;
	}
}

static void check(bool ok, const char *what)
{
	puts(what);
	puts(ok ? ": ok\n" : ": FAIL\n");
}

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

static void net_main(const uint8_t *boot_params, const char *cmdline)
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

/* display=1: the pattern, then the keyboard's and tablet's events. */
struct input {
	struct vcaps c;
	struct vq q;
	uint64_t buf;
};

static void input_post(struct input *in, uint16_t id, uint16_t idx)
{
	in->q.desc[id] = (struct vq_desc){ in->buf + 8ul * id, 8, 2, 0 };
	in->q.avail[2 + idx % in->q.qsize] = id;
}

static bool input_init(struct input *in, unsigned slot, unsigned index)
{
	uint64_t features;
	uint8_t size;

	if (!virtio_caps(slot, &in->c) || !virtio_negotiate(&in->c, 0, &features) ||
	    !virtio_queue(&in->c, 0, (uint8_t *)(INPUT_RING + index * 0x4000ul), INPUT_QSIZE,
	                  &in->q))
		return false;
	in->buf = INPUT_BUF + index * 0x1000ul;
	virtio_driver_ok(&in->c);
	/* The name, through the selectable configuration. */
	in->c.device[0] = 1; /* VIRTIO_INPUT_CFG_ID_NAME */
	in->c.device[1] = 0;
	size = in->c.device[2];
	puts("virtio-input: ");
	for (uint8_t i = 0; i < size && i < 32; i++)
		putc((char)in->c.device[8 + i]);
	putc('\n');
	for (uint16_t i = 0; i < INPUT_QSIZE; i++)
		input_post(in, i, i);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	in->q.avail[1] = INPUT_QSIZE;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	*in->q.notify = 0;
	return true;
}

/* Prints the next event if one came; true when it was Enter let go. */
static bool input_poll(struct input *in)
{
	const volatile uint32_t *elem;
	const volatile uint8_t *ev;
	uint16_t id, type, code;
	uint32_t value;

	if (in->q.used[1] == in->q.next_used)
		return false;
	elem = (const volatile uint32_t *)(in->q.used + 2) + 2 * (in->q.next_used % in->q.qsize);
	id = (uint16_t)(elem[0] % INPUT_QSIZE);
	ev = (const volatile uint8_t *)(in->buf + 8ul * id);
	type = (uint16_t)(ev[0] | ev[1] << 8);
	code = (uint16_t)(ev[2] | ev[3] << 8);
	value =
	    (uint32_t)ev[4] | (uint32_t)ev[5] << 8 | (uint32_t)ev[6] << 16 | (uint32_t)ev[7] << 24;
	if (type != 0) {
		puts("input: ");
		putdec(type);
		putc(' ');
		putdec(code);
		putc(' ');
		putdec(value);
		putc('\n');
	}
	/* The buffer goes back at once, as a driver would. */
	input_post(in, id, in->q.avail[1]);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	in->q.avail[1] = (uint16_t)(in->q.avail[1] + 1);
	in->q.next_used++;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	*in->q.notify = 0;
	return type == 1 && code == KEY_ENTER && value == 0;
}

static void display_main(const uint8_t *boot_params)
{
	uint32_t w = boot_params[0x12] | boot_params[0x13] << 8;
	uint32_t h = boot_params[0x14] | boot_params[0x15] << 8;
	uint32_t stride = boot_params[0x24] | boot_params[0x25] << 8;
	uint8_t *fb = (uint8_t *)(uintptr_t)rd32(boot_params + 0x18);
	struct input in[2];
	unsigned n = 0;

	check(boot_params[0x0f] == 0x70 && boot_params[0x16] == 32 && fb && w && h,
	      "an EFI framebuffer in screen_info");
	for (uint32_t y = 0; y < h; y++) {
		volatile uint32_t *row = (volatile uint32_t *)(fb + (uint64_t)y * stride);

		for (uint32_t x = 0; x < w; x++)
			row[x] = (x & 0xff) << 16 | (y & 0xff) << 8 | ((x + y) & 0xff);
	}
	for (unsigned slot = 0; slot < 32 && n < 2; slot++)
		if (pci_read(slot, 0) == (0x1052u << 16 | 0x1af4u) && input_init(&in[n], slot, n))
			n++;
	check(n == 2, "a keyboard and a tablet");
	puts("display: ");
	putdec(w);
	putc('x');
	putdec(h);
	puts(" ready\n");
	for (bool done = n == 0; !done;)
		for (unsigned i = 0; i < n; i++)
			done |= input_poll(&in[i]);
	puts("circ test guest: done\n");
	poweroff(boot_params);
}

void guest_main(const uint8_t *boot_params);

void guest_main(const uint8_t *boot_params)
{
	const char *cmdline = (const char *)(uintptr_t) * (const uint32_t *)(boot_params + 0x228);
	uint8_t *data = (uint8_t *)REQ_DATA, *copy = (uint8_t *)COPY_BUF;
	struct blk disks[4];
	unsigned n = 0;
	bool bench;

	if (arg(cmdline, "byte")) {
		putc('c');
		poweroff(boot_params);
	}
	puts("circ test guest: hello\n");
	if (arg(cmdline, "reboot")) {
		outb(0x64, 0xfe); /* the i8042's reset line */
		for (;;)
			__asm__ volatile("hlt");
	}
	if (arg(cmdline, "echo")) {
		/* The console's input: one line, echoed back, then power off. */
		char line[64];
		unsigned n = 0;

		puts("type a line: ");
		for (;;) {
			while (!(inb(COM1 + 5) & 1))
				__asm__ volatile("pause");
			line[n] = (char)inb(COM1);
			if (line[n] == '\r' || line[n] == '\n' || n == sizeof(line) - 2)
				break;
			n++;
		}
		line[n] = 0;
		puts("\ngot: ");
		puts(line);
		putc('\n');
		poweroff(boot_params);
	}
	if (arg(cmdline, "crash")) {
		/* No IDT: the breakpoint faults, the fault double-faults, then a triple fault. */
		struct {
			uint16_t limit;
			uint64_t base;
		} __attribute__((packed)) idt = { 0, 0 };

		__asm__ volatile("lidt %0; int3" : : "m"(idt));
	}
	bench = arg(cmdline, "bench") != 0;
	map_mmio_hole();
	if (arg(cmdline, "net"))
		net_main(boot_params, cmdline);
	if (arg(cmdline, "display"))
		display_main(boot_params);
	for (unsigned slot = 0; slot < 32 && n < 4; slot++)
		if (pci_read(slot, 0) == (0x1042u << 16 | 0x1af4u) &&
		    blk_init(&disks[n], slot, n, bench ? BENCH_QSIZE : QSIZE))
			n++;
	puts("virtio-blk disks: ");
	putdec(n);
	putc('\n');
	if (n == 0)
		poweroff(boot_params);
	if (bench) {
		struct bench_counts c = { 0, 0, 0 };

		bench_reads(&disks[0], arg(cmdline, "qd1"), 1, &c);
		bench_reads(&disks[0], arg(cmdline, "qd32"), BENCH_DEPTH, &c);
		puts("bench: notifies=");
		putdec8(c.notifies);
		puts(" isr-reads=");
		putdec8(c.isr_reads);
		puts(" errors=");
		putdec8(c.errors);
		puts("\ncirc test guest: done\n");
		poweroff(boot_params);
	}

	struct blk *b = &disks[0];
	puts("capacity: ");
	putdec(*(volatile uint64_t *)b->device);
	puts(" sectors\n");
	memset(data, 0, 20);
	check(blk_request(b, T_GET_ID, 0, data, 20, true) == 0 && data[0], "get-id");
	data[19] = 0;
	puts("serial: ");
	puts((const char *)data);
	putc('\n');

	check(blk_request(b, T_IN, 0, data, 4096, true) == 0, "read");
	puts("cksum=");
	putdec(cksum(data, 4096));
	putc('\n');
	check(cksum(data, 4096) == arg(cmdline, "cksum"), "read matches the host");
	check((*b->isr & 1) == 1, "interrupt status set");
	check((*b->isr & 1) == 0, "interrupt status cleared by reading");

	for (unsigned i = 0; i < 4096; i++)
		copy[i] = data[i];
	check(blk_request(b, T_OUT, arg(cmdline, "copy"), copy, 4096, false) == 0, "write");
	check(blk_request(b, T_FLUSH, 0, 0, 0, false) == 0, "flush");
	memset(data, 0, 4096);
	check(blk_request(b, T_IN, arg(cmdline, "copy"), data, 4096, true) == 0 &&
	          memcmp(data, copy, 4096) == 0,
	      "read back");
	if (b->features & 1u << VIRTIO_BLK_F_DISCARD) {
		volatile uint64_t *seg = (volatile uint64_t *)copy;

		seg[0] = arg(cmdline, "discard");
		seg[1] = 8; /* num_sectors 8, flags 0 */
		check(blk_request(b, T_DISCARD, 0, copy, 16, false) == 0, "discard");
	}
	check(blk_request(b, T_IN, b->features ? 1ull << 40 : 0, data, 512, true) != 0,
	      "a read past the end fails");
	if (n > 1 && (disks[1].features & 1u << VIRTIO_BLK_F_RO))
		check(blk_request(&disks[1], T_OUT, 0, copy, 512, false) != 0,
		      "a read-only disk refuses writes");
	puts("circ test guest: done\n");
	if (arg(cmdline, "hang")) {
		/* For the host's stop signals: a guest that never ends by itself. */
		puts("circ test guest: waiting\n");
		for (;;)
			__asm__ volatile("cli; hlt");
	}
	poweroff(boot_params);
}
