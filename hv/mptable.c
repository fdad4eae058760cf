/* SPDX-License-Identifier: MIT */
#include "hv/mptable.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "util/buf.h"
#include "hv/bios.h"

#define MP_SPEC_REV       4    /* MP spec 1.4 */
#define MP_APIC_VERSION   0x14 /* KVM's local APIC */
#define MP_IOAPIC_VERSION 0x11 /* KVM's IOAPIC */
#define MP_CPU_ENABLED    0x1
#define MP_CPU_BSP        0x2
#define MP_CPU_SIGNATURE  0x600            /* family 6; Linux reads the real one from CPUID */
#define MP_CPU_FEATURES   ((1u << 9) | 1u) /* APIC, FPU */
#define MP_IOAPIC_ENABLED 0x1
#define MP_ALL_APICS      0xff
#define MP_ISA_IRQS       16u

struct mp_writer {
	uint8_t *base; /* the config table */
	size_t len;
	uint16_t count; /* entries after the header */
};

static uint8_t *mp_entry(struct mp_writer *w, size_t size)
{
	uint8_t *p = w->base + w->len;

	w->len += size;
	w->count++;
	return p;
}

static void mp_int(struct mp_writer *w, uint8_t type, uint8_t kind, uint16_t flags, uint8_t bus,
                   uint8_t bus_irq, uint8_t apic, uint8_t pin)
{
	uint8_t *p = mp_entry(w, MP_OTHER_SIZE);

	p[0] = type;
	p[1] = kind;
	p[2] = (uint8_t)flags;
	p[3] = (uint8_t)(flags >> 8);
	p[4] = bus;
	p[5] = bus_irq;
	p[6] = apic;
	p[7] = pin;
}

static void mp_bus(struct mp_writer *w, uint8_t id, const char type[7])
{
	uint8_t *p = mp_entry(w, MP_OTHER_SIZE);

	p[0] = MP_ENTRY_BUS;
	p[1] = id;
	memcpy(p + 2, type, 6);
}

size_t mptable_size(unsigned cpus, size_t n)
{
	/* Two buses, one IOAPIC, ISA and PCI routes, two local interrupts. */
	return MP_FLOAT_SIZE + MP_CONFIG_HDR_SIZE + (size_t)cpus * MP_CPU_SIZE +
	       (2 + 1 + MP_ISA_IRQS + n + 2) * MP_OTHER_SIZE;
}

int mptable_check_routes(const struct mptable_pci_irq *irqs, size_t n, uint32_t *pci_pins,
                         struct circ_err *err)
{
	uint32_t slots = 0;

	*pci_pins = 0;
	if (n > 31)
		return err_set(err, EINVAL, "%zu PCI routes for 31 slots", n);
	if (n && !irqs)
		return err_set(err, EINVAL, "%zu PCI routes given as NULL", n);
	for (size_t i = 0; i < n; i++) {
		unsigned slot = irqs[i].slot, gsi = irqs[i].gsi;

		if (slot < 1 || slot > 31)
			return err_set(err, EINVAL, "PCI slot %u is not in 1..31", slot);
		if (slots & (1u << slot))
			return err_set(err, EINVAL, "PCI slot %u is routed twice", slot);
		slots |= 1u << slot;
		if (gsi == 0 || gsi == MPTABLE_TIMER_PIN || gsi >= MPTABLE_IOAPIC_PINS)
			return err_set(err, EINVAL,
			               "GSI %u of PCI slot %u is not an IOAPIC pin in "
			               "1..%u other than %u",
			               gsi, slot, MPTABLE_IOAPIC_PINS - 1, MPTABLE_TIMER_PIN);
		*pci_pins |= 1u << gsi;
	}
	return 0;
}

int mptable_write(struct guest_mem *m, unsigned cpus, const struct mptable_pci_irq *irqs, size_t n,
                  struct circ_err *err)
{
	uint8_t *mpf, ioapic_id = (uint8_t)cpus;
	struct mp_writer w;
	uint32_t pci_pins;
	size_t size;

	if (cpus < 1 || cpus > MPTABLE_MAX_CPUS)
		return err_set(err, EINVAL, "MP table: %u CPUs is not in 1..%u", cpus,
		               MPTABLE_MAX_CPUS);
	if (mptable_check_routes(irqs, n, &pci_pins, err))
		return err_prefix(err, "MP table");
	size = mptable_size(cpus, n);
	if (size > MPTABLE_END - MPTABLE_START)
		return err_set(err, ENOSPC, "MP table: %zu bytes do not fit the BIOS area", size);
	mpf = guest_mem_ptr(m, MPTABLE_START, MPTABLE_END - MPTABLE_START);
	if (!mpf)
		return err_set(err, ERANGE, "MP table: guest memory does not cover 0x%x..0x%x",
		               MPTABLE_START, MPTABLE_END);
	memset(mpf, 0, MPTABLE_END - MPTABLE_START);

	w.base = mpf + MP_FLOAT_SIZE;
	w.len = MP_CONFIG_HDR_SIZE;
	w.count = 0;
	for (unsigned i = 0; i < cpus; i++) {
		uint8_t *p = mp_entry(&w, MP_CPU_SIZE);

		p[0] = MP_ENTRY_CPU;
		p[1] = (uint8_t)i;
		p[2] = MP_APIC_VERSION;
		p[3] = MP_CPU_ENABLED | (i == 0 ? MP_CPU_BSP : 0);
		put_u32le(p + 4, MP_CPU_SIGNATURE);
		put_u32le(p + 8, MP_CPU_FEATURES);
	}
	mp_bus(&w, MPTABLE_PCI_BUS, "PCI   ");
	mp_bus(&w, MPTABLE_ISA_BUS, "ISA   ");
	{
		uint8_t *p = mp_entry(&w, MP_OTHER_SIZE);

		p[0] = MP_ENTRY_IOAPIC;
		p[1] = ioapic_id;
		p[2] = MP_IOAPIC_VERSION;
		p[3] = MP_IOAPIC_ENABLED;
		put_u32le(p + 4, MPTABLE_IOAPIC_ADDR);
	}
	/*
	 * IRQ 2 is the 8259 cascade and never reaches the IOAPIC; its pin
	 * carries IRQ 0. A pin that a PCI device owns gets no ISA entry, or
	 * Linux would program it edge-triggered for a level-triggered line.
	 */
	for (unsigned irq = 0; irq < MP_ISA_IRQS; irq++) {
		unsigned pin = irq == 0 ? MPTABLE_TIMER_PIN : irq;

		if (irq == 2 || (pci_pins & (1u << pin)))
			continue;
		mp_int(&w, MP_ENTRY_IOINT, MP_INT_INT, MP_IRQFLAG_ISA, MPTABLE_ISA_BUS,
		       (uint8_t)irq, ioapic_id, (uint8_t)pin);
	}
	for (size_t i = 0; i < n; i++)
		mp_int(&w, MP_ENTRY_IOINT, MP_INT_INT, MP_IRQFLAG_PCI, MPTABLE_PCI_BUS,
		       (uint8_t)(irqs[i].slot << 2), ioapic_id, irqs[i].gsi);
	mp_int(&w, MP_ENTRY_LOCALINT, MP_INT_EXTINT, 0, MPTABLE_ISA_BUS, 0, 0, 0);
	mp_int(&w, MP_ENTRY_LOCALINT, MP_INT_NMI, 0, MPTABLE_ISA_BUS, 0, MP_ALL_APICS, 1);

	memcpy(w.base, "PCMP", 4);
	w.base[4] = (uint8_t)w.len;
	w.base[5] = (uint8_t)(w.len >> 8);
	w.base[6] = MP_SPEC_REV;
	memcpy(w.base + 8, "CIRC    ", 8);
	memcpy(w.base + 16, "HV          ", 12);
	w.base[34] = (uint8_t)w.count;
	w.base[35] = (uint8_t)(w.count >> 8);
	put_u32le(w.base + 36, MPTABLE_LAPIC_ADDR);
	w.base[7] = bios_checksum(w.base, w.len);

	/* Feature byte 1 = 0: the config table is present, not a default config. */
	memcpy(mpf, "_MP_", 4);
	put_u32le(mpf + 4, MPTABLE_START + MP_FLOAT_SIZE);
	mpf[8] = 1; /* length in 16-byte units */
	mpf[9] = MP_SPEC_REV;
	mpf[10] = bios_checksum(mpf, MP_FLOAT_SIZE);
	return 0;
}
