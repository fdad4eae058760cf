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

#define COMMON8(b, off)  (*(volatile uint8_t *)((b)->common + (off)))
#define COMMON16(b, off) (*(volatile uint16_t *)((b)->common + (off)))
#define COMMON32(b, off) (*(volatile uint32_t *)((b)->common + (off)))
#define COMMON64(b, off) (*(volatile uint64_t *)((b)->common + (off)))

static bool blk_init(struct blk *b, unsigned slot, unsigned index, uint16_t qsize)
{
	uint32_t notify_mult = 0, notify_off = 0;
	uint8_t cap = (uint8_t)pci_read(slot, 0x34);
	volatile uint8_t *notify_base = 0;
	uint8_t *ring = (uint8_t *)(RING_BASE + index * 0x4000ul);

	memset(b, 0, sizeof(*b));
	for (int guard = 0; cap && guard < 48; guard++) {
		uint32_t w0 = pci_read(slot, cap);
		unsigned type = (w0 >> 24) & 0xff, bar = pci_read(slot, cap + 4) & 0xff;
		uint32_t off = pci_read(slot, cap + 8);
		uint64_t base = pci_read(slot, 0x10 + 4 * bar) & ~0xfull;

		if ((w0 & 0xff) == 0x09) {
			if (type == 1)
				b->common = (volatile uint8_t *)(base + off);
			else if (type == 2) {
				notify_base = (volatile uint8_t *)(base + off);
				notify_mult = pci_read(slot, cap + 16);
			} else if (type == 3)
				b->isr = (volatile uint8_t *)(base + off);
			else if (type == 4)
				b->device = (volatile uint8_t *)(base + off);
		}
		cap = (uint8_t)(w0 >> 8);
	}
	if (!b->common || !notify_base || !b->isr || !b->device)
		return false;
	COMMON8(b, 20) = 0;
	COMMON8(b, 20) = VIRTIO_STATUS_ACK;
	COMMON8(b, 20) = VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER;
	COMMON32(b, 0) = 0;
	b->features = COMMON32(b, 4);
	COMMON32(b, 0) = 1;
	b->features |= (uint64_t)COMMON32(b, 4) << 32;
	if (!(b->features >> 32 & 1))
		return false; /* not VIRTIO_F_VERSION_1 */
	COMMON32(b, 8) = 0;
	COMMON32(b, 12) =
	    (uint32_t)b->features &
	    (1u << VIRTIO_BLK_F_RO | 1u << VIRTIO_BLK_F_FLUSH | 1u << VIRTIO_BLK_F_DISCARD);
	COMMON32(b, 8) = 1;
	COMMON32(b, 12) = 1;
	COMMON8(b, 20) = VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK;
	if (!(COMMON8(b, 20) & VIRTIO_STATUS_FEATURES_OK))
		return false;
	COMMON16(b, 22) = 0;
	if (COMMON16(b, 24) < qsize)
		return false;
	COMMON16(b, 24) = qsize;
	b->qsize = qsize;
	memset(ring, 0, 0x4000);
	b->desc = (struct vq_desc *)ring;
	b->avail = (volatile uint16_t *)(ring + 0x1000);
	b->used = (volatile uint16_t *)(ring + 0x2000);
	COMMON64(b, 32) = (uint64_t)b->desc;
	COMMON64(b, 40) = (uint64_t)b->avail;
	COMMON64(b, 48) = (uint64_t)b->used;
	notify_off = COMMON16(b, 30);
	COMMON16(b, 28) = 1;
	b->notify = (volatile uint16_t *)(notify_base + notify_off * notify_mult);
	COMMON8(b, 20) = VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
	                 VIRTIO_STATUS_DRIVER_OK;
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
