/* SPDX-License-Identifier: MIT */
/*
 * The Intel MultiProcessor table (MP spec 1.4): how a guest without ACPI
 * finds its CPUs, its IOAPIC and the routing of ISA and PCI interrupts.
 *
 * The floating pointer and the configuration table sit together in the BIOS
 * area at 0xf0000, which Linux scans and which the boot loader's e820 map
 * marks reserved. 64 KiB there holds the table for MPTABLE_MAX_CPUS; the
 * 1 KiB EBDA that Firecracker uses would hold about 27.
 *
 * Interrupt routing it describes:
 *   ISA IRQ 0 (the PIT)  -> IOAPIC pin 2, as on real hardware
 *   ISA IRQ n, n != 0, 2 -> IOAPIC pin n, edge, active high, unless a PCI
 *                           device owns pin n (one trigger mode per pin)
 *   PCI slot s INTA      -> IOAPIC pin gsi, level, active high
 *   8259 (ExtINT)        -> LINT0 of the BSP; NMI -> LINT1 of every CPU
 * The VMM must route KVM's GSIs to match: KVM's default routing sends GSI 0
 * to IOAPIC pin 0, so it needs GSI 0 -> pin 2 (KVM_SET_GSI_ROUTING, as QEMU
 * does), or Linux falls back to the 8259 for the timer.
 */
#ifndef CIRC_HV_MPTABLE_H
#define CIRC_HV_MPTABLE_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "hv/guest_mem.h"

#define MPTABLE_START       0xf0000u /* the floating pointer; the config table follows */
#define MPTABLE_END         0x100000u
#define MPTABLE_MAX_CPUS    254u /* APIC IDs 0..n-1, the IOAPIC takes n; 0xff is broadcast */
#define MPTABLE_LAPIC_ADDR  0xfee00000u
#define MPTABLE_IOAPIC_ADDR 0xfec00000u
#define MPTABLE_IOAPIC_PINS 24u /* KVM's in-kernel IOAPIC */
#define MPTABLE_PCI_BUS     0   /* must equal the PCI bus number: Linux matches them */
#define MPTABLE_ISA_BUS     1
#define MPTABLE_TIMER_PIN   2u

/* Entry types and sizes, for readers of the table (tests). */
#define MP_FLOAT_SIZE      16u
#define MP_CONFIG_HDR_SIZE 44u
#define MP_ENTRY_CPU       0
#define MP_ENTRY_BUS       1
#define MP_ENTRY_IOAPIC    2
#define MP_ENTRY_IOINT     3
#define MP_ENTRY_LOCALINT  4
#define MP_CPU_SIZE        20u
#define MP_OTHER_SIZE      8u /* bus, IOAPIC, I/O and local interrupt entries */
#define MP_INT_INT         0
#define MP_INT_NMI         1
#define MP_INT_EXTINT      3
#define MP_IRQFLAG_ISA     0x5 /* edge, active high */
#define MP_IRQFLAG_PCI     0xd /* level, active high: the VMM raises the line as a logical level */

/* INTA of PCI slot `slot` (bus 0) reaches the guest on IOAPIC pin `gsi`. */
struct mptable_pci_irq {
	uint8_t slot; /* 1..31; slot 0 is the host bridge */
	uint8_t gsi;  /* 1..23, not 2 (the timer) */
};

/*
 * Writes the MP table for cpus processors (1..MPTABLE_MAX_CPUS) and the n
 * PCI routes in irqs (distinct slots) at MPTABLE_START, replacing what was
 * there.
 */
CIRC_MUST_CHECK int mptable_write(struct guest_mem *m, unsigned cpus,
                                  const struct mptable_pci_irq *irqs, size_t n,
                                  struct circ_err *err);

/*
 * Checks PCI routes: distinct slots in 1..31, GSIs that are IOAPIC pins
 * other than 0 and the timer's; sets the bit of each GSI used in *pci_pins.
 * The ACPI tables describe the same routes.
 */
int mptable_check_routes(const struct mptable_pci_irq *irqs, size_t n, uint32_t *pci_pins,
                         struct circ_err *err);

/* At most the bytes the table takes for cpus processors and n PCI routes. */
size_t mptable_size(unsigned cpus, size_t n);

#endif
