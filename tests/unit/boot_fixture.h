/* SPDX-License-Identifier: MIT */
/*
 * The boot loader tests' fixture: guest memory, synthetic ELF guests, and
 * checks of what a load leaves in guest RAM (page tables, GDT, e820 map,
 * MP and ACPI tables).
 */
#ifndef CIRC_BOOT_FIXTURE_H
#define CIRC_BOOT_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "hv/acpi.h"
#include "hv/boot.h"
#include "hv/guest_mem.h"
#include "hv/mptable.h"

#define MiB (1ull << 20)
#define GiB (1ull << 30)

/* Synthetic ELF guest: linked at 1 MiB like tests/guest/. */
#define ELF_BASE  0x100000ull
#define ELF_ENTRY (ELF_BASE + 0x10)

uint16_t rd16(const uint8_t *p);
void wr16(uint8_t *p, uint16_t v);
void alloc_mem(struct guest_mem *m, uint64_t size);
uint8_t *gp(const struct guest_mem *m, uint64_t gpa, uint64_t len);

struct seg {
	uint32_t type;
	uint64_t paddr, offset, filesz, memsz;
};

/* An ELF64 x86-64 executable with segments' file bytes from fill_random. */
void make_elf(struct buf *b, const struct seg *segs, unsigned n, uint64_t entry);
/* Code and data at ELF_BASE, the data with a bss tail, as a small guest looks. */
void make_guest_elf(struct buf *b);

int load_mem(struct guest_mem *m, const struct buf *k, const char *cmdline, struct boot_info *bi,
             struct circ_err *err);
/* Fails the test unless loading k fails with a message containing needle. */
void expect_fail(struct guest_mem *m, const struct buf *k, size_t len, const char *needle);

/* The identity map: walks the 4-level tables as the MMU does. */
bool walk(const struct guest_mem *m, uint64_t cr3, uint64_t va, uint64_t *pa);
void check_identity_map(const struct guest_mem *m, const struct boot_info *bi);
void check_gdt(const struct guest_mem *m, const struct boot_info *bi);
/* Sorted, disjoint, within guest RAM, nothing in the hole; returns RAM bytes. */
uint64_t check_e820(const struct guest_mem *m, const uint8_t *zp);
/* Whether [a, a+len) is wholly inside one e820 RAM entry. */
bool in_e820_ram(const uint8_t *zp, uint64_t a, uint64_t len);

struct mp_seen {
	unsigned cpus, bsp, ioapics, buses, ioints, localints;
	uint8_t ioapic_id;
	int isa_pin[16]; /* ISA IRQ -> IOAPIC pin, -1: none */
	int pci_gsi[32]; /* slot -> IOAPIC pin of INTA, -1: none */
	bool pin_used[MPTABLE_IOAPIC_PINS];
};

/* Checks the floating pointer and config table and tallies their entries. */
void parse_mptable(const struct guest_mem *m, struct mp_seen *s);

struct acpi_seen {
	uint64_t rsdp, xsdt, fadt, facs, dsdt, madt; /* guest addresses */
	uint32_t dsdt_len;
	unsigned lapics, ioapics, nmis;
	uint8_t ioapic_id;
	int iso_gsi[16]; /* ISA IRQ -> GSI where the MADT overrides it, -1: none */
	uint16_t iso_flags[16];
};

/*
 * Finds the RSDP as Linux does (16-byte steps through 0xe0000..1 MiB),
 * follows the XSDT, checks every table's signature, length, checksum and
 * place, and tallies the MADT.
 */
void parse_acpi(const struct guest_mem *m, struct acpi_seen *s);

#endif
