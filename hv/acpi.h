/* SPDX-License-Identifier: MIT */
/*
 * Minimal ACPI tables (ACPI 6.5), so that an OS finds what the MP table
 * can't say: how to power off, and how PCI interrupts are routed once it
 * runs in ACPI mode (an OS that finds ACPI ignores the MP table; `acpi=off`
 * falls back to it).
 *
 * In the BIOS area below the MP table, where Linux scans for the RSDP (the
 * boot loader also passes its address in boot_params.acpi_rsdp_addr):
 *
 *   RSDP  revision 2, at ACPI_START
 *   XSDT  -> FADT, MADT
 *   FADT  revision 6: PM1a event and control blocks (hv/acpi_pm.h), SCI
 *         on IRQ 9, no SMI port (always in ACPI mode), no PM timer, no
 *         GPEs; boot flags: no VGA, no CMOS RTC, no MSI, no i8042 keyboard
 *   FACS  (required outside hardware-reduced mode)
 *   DSDT  \_S5 (SLP_TYP ACPI_PM_S5_TYP) and \_SB.PCI0, a PNP0A03 root
 *         bridge for bus 0 with its windows in _CRS (the conf1 ports, all
 *         other I/O ports, [PCI_MMIO_START, PCI_MMIO_END)) and a _PRT that
 *         routes INTA of each given slot to its GSI
 *   MADT  a local APIC per CPU (IDs 0..cpus-1), the IOAPIC (ID cpus, GSI
 *         base 0), IRQ 0 -> GSI 2, the SCI level-triggered, NMI on LINT1
 *
 * Interrupt routing matches hv/mptable.h; the VMM's GSI routing serves both.
 */
#ifndef CIRC_HV_ACPI_H
#define CIRC_HV_ACPI_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "hv/guest_mem.h"
#include "hv/mptable.h"

#define ACPI_START   0xe0000u /* the RSDP; the tables follow it */
#define ACPI_END     0xf0000u /* the MP table's start */
#define ACPI_SCI_IRQ 9u

/* Table layouts, for readers of the tables (tests and the test guest). */
#define ACPI_RSDP_SIZE        36u
#define ACPI_SDT_HEADER_SIZE  36u
#define ACPI_FADT_SIZE        276u
#define ACPI_FACS_SIZE        64u
#define ACPI_RSDP_XSDT        24u /* u64 */
#define ACPI_FADT_FACS        36u /* u32 */
#define ACPI_FADT_DSDT        40u /* u32 */
#define ACPI_FADT_SCI_INT     46u /* u16 */
#define ACPI_FADT_PM1A_EVT    56u /* u32 */
#define ACPI_FADT_PM1A_CNT    64u /* u32 */
#define ACPI_FADT_PM1_EVT_LEN 88u
#define ACPI_FADT_PM1_CNT_LEN 89u
#define ACPI_FADT_BOOT_ARCH   109u /* u16 */
#define ACPI_FADT_FLAGS       112u /* u32 */
#define ACPI_FADT_X_FACS      132u /* u64 */
#define ACPI_FADT_X_DSDT      140u /* u64 */
#define ACPI_FADT_X_PM1A_EVT  148u /* generic address */
#define ACPI_FADT_X_PM1A_CNT  172u
#define ACPI_MADT_LAPIC       0
#define ACPI_MADT_IOAPIC      1
#define ACPI_MADT_ISO         2
#define ACPI_MADT_LAPIC_NMI   4

/*
 * Writes the tables for cpus processors and the n PCI routes in irqs into
 * [ACPI_START, ACPI_END), replacing what was there.
 */
CIRC_MUST_CHECK int acpi_write(struct guest_mem *m, unsigned cpus,
                               const struct mptable_pci_irq *irqs, size_t n, struct circ_err *err);

#endif
