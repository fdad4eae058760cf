/* SPDX-License-Identifier: MIT */
/*
 * The x86 machine a 64-bit kernel is entered into, as Firecracker sets it
 * up: a flat GDT, identity-mapped page tables, the e820 memory map, and the
 * firmware's tables (ACPI and MP) that describe the CPUs and PCI routes.
 * The boot loader (hv/boot.h) puts the kernel in; this is the rest.
 *
 * Guest physical layout below 1 MiB (Firecracker's, plus ACPI and MP tables):
 *   0x00500  GDT: null, code 0x08, data 0x10, TSS 0x18
 *   0x00520  IDT, empty
 *   0x07000  zero page (struct boot_params), in RSI
 *   0x08ff0  RSP; the stack grows down towards the zero page's end at 0x8000
 *   0x09000  PML4, 0xa000 PDPT, 0xb000 PD: the first GiB identity-mapped in 2 MiB pages
 *   0x20000  command line
 *   0x9fc00  EBDA, empty
 *   0xe0000  ACPI tables, the RSDP first (hv/acpi.h)
 *   0xf0000  MP table (hv/mptable.h)
 * The e820 map: RAM [0, 0x9fc00), reserved [0x9fc00, 0xa0000) and
 * [0xe0000, 1 MiB), RAM [1 MiB, low) and, with more memory than fits below
 * the PCI hole, RAM from 4 GiB.
 */
#ifndef CIRC_HV_X86_H
#define CIRC_HV_X86_H

#include <stddef.h>
#include <stdint.h>

#include <asm/bootparam.h>

#include "util/err.h"
#include "hv/acpi.h"
#include "hv/guest_mem.h"
#include "hv/mptable.h"

#define BOOT_GDT_ADDR     0x500u
#define BOOT_IDT_ADDR     0x520u
#define BOOT_ZERO_PAGE    0x7000u
#define BOOT_STACK_TOP    0x8ff0u
#define BOOT_PML4         0x9000u
#define BOOT_PDPT         0xa000u
#define BOOT_PD           0xb000u
#define BOOT_CMDLINE      0x20000u
#define BOOT_EBDA_START   0x9fc00u
#define BOOT_HIMEM_START  0x100000u
#define BOOT_IDENTITY_END (1ull << 30) /* the page tables map [0, 1 GiB) */
#define BOOT_SEL_CODE     0x08
#define BOOT_SEL_DATA     0x10
#define BOOT_SEL_TSS      0x18
#define BOOT_GDT_ENTRIES  4

/* The e820 map in the zero page (struct boot_params of Linux's uapi <asm/bootparam.h>). */
#define BP_E820_ENTRIES    offsetof(struct boot_params, e820_entries)
#define BP_E820_TABLE      offsetof(struct boot_params, e820_table)
#define BP_E820_MAX        E820_MAX_ENTRIES_ZEROPAGE
#define BP_E820_ENTRY_SIZE sizeof(struct boot_e820_entry)
#define E820_RAM           1
#define E820_RESERVED      2

/* A segment register as the vCPU loads it (maps onto struct kvm_segment). */
struct boot_segment {
	uint64_t base;
	uint32_t limit; /* in bytes, granularity applied */
	uint16_t selector;
	uint8_t type, present, dpl, db, s, l, g, avl;
};

/* The descriptor tables, as the BSP's registers point at them. */
struct x86_tables {
	uint64_t gdt_base;
	uint16_t gdt_limit;
	uint64_t idt_base;
	uint16_t idt_limit;
	struct boot_segment code, data, tss; /* CS; DS, ES, FS, GS, SS; TR */
};

/* The GDT and an empty IDT at their addresses; out says how to load them. */
void x86_write_gdt(struct guest_mem *m, struct x86_tables *out);
/* PML4, PDPT and PD mapping [0, BOOT_IDENTITY_END) one to one; CR3 is BOOT_PML4. */
void x86_write_page_tables(struct guest_mem *m);
/* The e820 map of m into a zero page (struct boot_params). */
void x86_write_e820(const struct guest_mem *m, uint8_t *zero_page);
/*
 * The MP table and the ACPI tables for cpus CPUs and the PCI INTx routes
 * of the devices attached; what the kernel learns the machine from.
 */
CIRC_MUST_CHECK int x86_write_firmware_tables(struct guest_mem *m, unsigned cpus,
                                              const struct mptable_pci_irq *pci_irqs,
                                              size_t n_pci_irqs, struct circ_err *err);

/* A GDT descriptor from Firecracker's compact flags (e.g. 0xa09b), and back. */
uint64_t boot_gdt_entry(uint16_t flags, uint32_t base, uint32_t limit);
struct boot_segment boot_segment_from_gdt(uint64_t entry, uint16_t selector);

#endif
