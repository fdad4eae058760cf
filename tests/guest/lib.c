/* SPDX-License-Identifier: MIT */
/* The test guest's shared parts (guest.h). */
#include "guest.h"

void putc(char c)
{
	while (!(inb(COM1 + 5) & 0x20))
		;
	outb(COM1, (uint8_t)c);
}

void puts(const char *s)
{
	while (*s)
		putc(*s++);
}

void putdec(uint64_t v)
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

uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint64_t rd64(const uint8_t *p)
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

void poweroff(const uint8_t *boot_params)
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

void *memset(void *d, int c, size_t n)
{
	uint8_t *p = d;

	while (n--)
		*p++ = (uint8_t)c;
	return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const uint8_t *x = a, *y = b;

	for (size_t i = 0; i < n; i++)
		if (x[i] != y[i])
			return x[i] - y[i];
	return 0;
}

void putdec8(uint64_t v)
{
	char buf[8];

	for (int i = 7; i >= 0; i--) {
		buf[i] = (char)('0' + v % 10);
		v /= 10;
	}
	for (int i = 0; i < 8; i++)
		putc(buf[i]);
}

uint64_t arg(const char *cmdline, const char *key)
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

uint32_t pci_read(unsigned slot, unsigned reg)
{
	outl(PCI_ADDR, 0x80000000u | slot << 11 | (reg & 0xfc));
	return inl(PCI_DATA);
}

/* BARs live in the 32-bit hole; boot tables map only the first GiB. */
void map_mmio_hole(void)
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

bool virtio_caps(unsigned slot, struct vcaps *c)
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

bool virtio_negotiate(struct vcaps *c, uint32_t want, uint64_t *features)
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

bool virtio_queue(struct vcaps *c, unsigned qi, uint8_t *ring, uint16_t qsize, struct vq *q)
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

void virtio_driver_ok(struct vcaps *c)
{
	COMMON8(c, 20) = VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
	                 VIRTIO_STATUS_DRIVER_OK;
}

void check(bool ok, const char *what)
{
	puts(what);
	puts(ok ? ": ok\n" : ": FAIL\n");
}
