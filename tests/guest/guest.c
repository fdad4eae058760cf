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
 * tablet ("input: TYPE CODE VALUE", EV_SYN left out) until Enter is let go;
 * a press of x paints the top 8 rows white.
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
#include "guest.h"

/* The disks' rings (16 KiB each, up to four) and the tests' requests. */
#define RING_BASE  0x400000ul
#define REQ_HDR    0x500000ul
#define REQ_DATA   0x510000ul
#define REQ_STATUS 0x520000ul
#define COPY_BUF   0x530000ul
#define QSIZE      8

/* The benchmark mode's requests. */
#define BENCH_HDR    0x540000ul /* 16 bytes a request */
#define BENCH_STATUS 0x541000ul /* 1 byte a request */
#define BENCH_DATA   0x600000ul /* 4 KiB a request */
#define BENCH_QSIZE  128        /* 32 requests of 3 descriptors in flight */
#define BENCH_DEPTH  32

#define VIRTIO_BLK_F_RO      5
#define VIRTIO_BLK_F_FLUSH   9
#define VIRTIO_BLK_F_DISCARD 13
#define T_IN                 0
#define T_OUT                1
#define T_FLUSH              4
#define T_GET_ID             8
#define T_DISCARD            11

struct blk {
	volatile uint8_t *common, *isr, *device;
	volatile uint16_t *notify;
	struct vq_desc *desc;
	volatile uint16_t *avail; /* flags, idx, ring[] */
	volatile uint16_t *used;  /* flags, idx, then {u32 id, u32 len}[] */
	uint16_t next_used, qsize;
	uint64_t features;
};

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
