/* SPDX-License-Identifier: MIT */
/*
 * What the test guest's parts share: port I/O, the serial port, power-off
 * through ACPI, the command line, PCI configuration reads, and setting up
 * a modern virtio-pci function and its split queues by hand.
 *
 * Guest memory, identity-mapped: the image from 1 MiB, the disks' rings
 * from 0x400000 (guest.c), the card's at 0x420000 (net.c), the input
 * devices' at 0x430000 (display.c), buffers from 0x500000 to 0x760000;
 * the framebuffer and BARs in the hole from 3 GiB (map_mmio_hole).
 */
#ifndef CIRC_TEST_GUEST_H
#define CIRC_TEST_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COM1         0x3f8
#define BP_ACPI_RSDP 0x70 /* boot_params.acpi_rsdp_addr */
#define SLP_EN       (1u << 13)
#define PCI_ADDR     0xcf8
#define PCI_DATA     0xcfc
#define MMIO_PD      0x300000ul /* page directory mapping 3-4 GiB */

#define VIRTIO_STATUS_ACK         1
#define VIRTIO_STATUS_DRIVER      2
#define VIRTIO_STATUS_DRIVER_OK   4
#define VIRTIO_STATUS_FEATURES_OK 8

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

void putc(char c);
void puts(const char *s);
void putdec(uint64_t v);
/* putdec at a fixed width of 8 digits (bench output must not change length with N). */
void putdec8(uint64_t v);
/* "what: ok" or "what: FAIL" on its own line. */
void check(bool ok, const char *what);
uint32_t rd32(const uint8_t *p);
uint64_t rd64(const uint8_t *p);
/* Powers off through the port and sleep type the ACPI tables give. */
__attribute__((noreturn)) void poweroff(const uint8_t *boot_params);
/* No libc: what the compiler may call, and what the tests use. */
void *memset(void *d, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
/* The decimal value of key= on the command line, 0 if absent. */
uint64_t arg(const char *cmdline, const char *key);
uint32_t pci_read(unsigned slot, unsigned reg);
/* BARs live in the 32-bit hole; boot tables map only the first GiB. */
void map_mmio_hole(void);

struct vq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

/* A virtio-pci function's regions, from its vendor capabilities. */
struct vcaps {
	volatile uint8_t *common, *isr, *device, *notify_base;
	uint32_t notify_mult;
};

#define COMMON8(b, off)  (*(volatile uint8_t *)((b)->common + (off)))
#define COMMON16(b, off) (*(volatile uint16_t *)((b)->common + (off)))
#define COMMON32(b, off) (*(volatile uint32_t *)((b)->common + (off)))
#define COMMON64(b, off) (*(volatile uint64_t *)((b)->common + (off)))

/* A split queue in 16 KiB at ring: descriptors, then avail at +4 KiB, used at +8 KiB. */
struct vq {
	struct vq_desc *desc;
	volatile uint16_t *avail; /* flags, idx, ring[] */
	volatile uint16_t *used;  /* flags, idx, then {u32 id, u32 len}[] */
	volatile uint16_t *notify;
	uint16_t next_used, qsize;
};

bool virtio_caps(unsigned slot, struct vcaps *c);
/* Reset, ACK, DRIVER, then the wanted features of the low 32 and VERSION_1. */
bool virtio_negotiate(struct vcaps *c, uint32_t want, uint64_t *features);
/* A split queue in 16 KiB at ring: descriptors, then avail at +4 KiB, used at +8 KiB. */
bool virtio_queue(struct vcaps *c, unsigned qi, uint8_t *ring, uint16_t qsize, struct vq *q);
void virtio_driver_ok(struct vcaps *c);

/* The modes that leave the disks alone (net.c, display.c); they power off. */
__attribute__((noreturn)) void net_main(const uint8_t *boot_params, const char *cmdline);
__attribute__((noreturn)) void display_main(const uint8_t *boot_params);

#endif
