/* SPDX-License-Identifier: MIT */
#include "hv/acpi.h"

#include <errno.h>
#include <string.h>

#include "util/buf.h"
#include "hv/acpi_pm.h"
#include "hv/aml.h"
#include "hv/bios.h"
#include "hv/pci.h"

_Static_assert(ACPI_END == MPTABLE_START, "the ACPI tables sit just below the MP table");

#define OEM_ID        "CIRC  "
#define OEM_TABLE_ID  "CIRC-HV "
#define CREATOR_ID    "CIRC"
#define RSDP_REVISION 2 /* ACPI 2.0+: has the XSDT */
#define FADT_REVISION 6
#define MADT_REVISION 5
#define DSDT_REVISION 2 /* 64-bit integers */
#define TABLE_ALIGN   16
#define FACS_ALIGN    64

/* FADT fields and flags (ACPI 6.5, 5.2.9) that hv sets beyond acpi.h's offsets. */
#define FADT_MINOR_VERSION 131
#define FADT_P_LVL2_LAT    96
#define FADT_P_LVL3_LAT    98
#define FADT_NO_C2         101  /* a latency over 100 us: no C2 */
#define FADT_NO_C3         1001 /* over 1000 us: no C3 */
#define FADT_WBINVD        (1u << 0)
#define FADT_PROC_C1       (1u << 2)
#define FADT_PWR_BUTTON    (1u << 4) /* no fixed-feature power button */
#define FADT_SLP_BUTTON    (1u << 5)
#define BOOT_ARCH_NO_VGA   (1u << 2)
#define BOOT_ARCH_NO_MSI   (1u << 3) /* hv's PCI devices raise INTx only */
#define BOOT_ARCH_NO_CMOS  (1u << 5) /* no RTC at 0x70: the time comes from kvm-clock */
#define GAS_SIZE           12
#define GAS_SYSTEM_IO      1
#define GAS_ACCESS_WORD    2

/* MADT (5.2.12) */
#define MADT_PCAT_COMPAT    1u /* the 8259s are there too */
#define MADT_LAPIC_SIZE     8
#define MADT_IOAPIC_SIZE    12
#define MADT_ISO_SIZE       10
#define MADT_NMI_SIZE       6
#define MADT_ENABLED        1u
#define MADT_LEVEL_HIGH     0x000du /* active high, level-triggered */
#define MADT_ALL_PROCESSORS 0xff
#define PCI_INTA            0

struct acpi_writer {
	uint8_t *base; /* host address of ACPI_START */
	size_t len;
};

/* Room for size bytes at the given alignment; the offset from ACPI_START, or 0 when full. */
static size_t place(struct acpi_writer *w, size_t size, size_t align)
{
	size_t off = (w->len + align - 1) & ~(align - 1);

	if (off > ACPI_END - ACPI_START || size > ACPI_END - ACPI_START - off)
		return 0;
	w->len = off + size;
	return off;
}

static void sdt_header(uint8_t *p, const char sig[4], size_t len, uint8_t revision)
{
	memcpy(p, sig, 4);
	put_u32le(p + 4, (uint32_t)len);
	p[8] = revision;
	memcpy(p + 10, OEM_ID, 6);
	memcpy(p + 16, OEM_TABLE_ID, 8);
	put_u32le(p + 24, 1);
	memcpy(p + 28, CREATOR_ID, 4);
	put_u32le(p + 32, 1);
}

static void sdt_seal(uint8_t *p)
{
	p[9] = 0;
	p[9] = bios_checksum(p, get_u32le(p + 4));
}

static void gas_io(uint8_t *p, uint8_t bits, uint16_t port)
{
	p[0] = GAS_SYSTEM_IO;
	p[1] = bits;
	p[2] = 0;
	p[3] = GAS_ACCESS_WORD;
	put_u64le(p + 4, port);
}

static int dsdt_aml(struct aml *a, const struct mptable_pci_irq *irqs, size_t n,
                    struct circ_err *err)
{
	struct buf crs = { 0 };
	size_t scope, dev, prt, pkg;

	/* The root bridge decodes bus 0, every port but the conf1 ones it owns, and the BAR window.
	 */
	if (aml_res_bus_numbers(&crs, 0, 0) || aml_res_io_fixed(&crs, PCI_CONF1_ADDR_PORT, 8) ||
	    aml_res_io_range(&crs, 0, PCI_CONF1_ADDR_PORT - 1) ||
	    aml_res_io_range(&crs, PCI_CONF1_ADDR_PORT + 8, 0xffff) ||
	    aml_res_mem32_range(&crs, PCI_MMIO_START, PCI_MMIO_END - 1) || aml_res_end(&crs)) {
		buf_free(&crs);
		return err_set(err, ENOMEM, "out of memory");
	}
	/*
	 * \_Sx: SLP_TYPa and SLP_TYPb for PM1a/b_CNT, then two reserved fields.
	 * ACPICA reads \_S0 when it wakes from a sleep state.
	 */
	aml_name(a, "\\_S0");
	pkg = aml_package_begin(a, 4);
	for (int i = 0; i < 4; i++)
		aml_integer(a, 0);
	aml_end(a, pkg);
	aml_name(a, "\\_S5");
	pkg = aml_package_begin(a, 4);
	aml_integer(a, ACPI_PM_S5_TYP);
	aml_integer(a, ACPI_PM_S5_TYP);
	aml_integer(a, 0);
	aml_integer(a, 0);
	aml_end(a, pkg);

	scope = aml_scope_begin(a, "\\_SB");
	dev = aml_device_begin(a, "PCI0");
	aml_name(a, "_HID");
	aml_eisaid(a, "PNP0A03");
	aml_name(a, "_UID");
	aml_integer(a, 0);
	aml_name(a, "_CRS");
	aml_buffer(a, crs.data, crs.len);
	/* _PRT entries: {device address (slot, any function), pin, source 0: a GSI, the GSI} */
	aml_name(a, "_PRT");
	prt = aml_package_begin(a, (uint8_t)n);
	for (size_t i = 0; i < n; i++) {
		pkg = aml_package_begin(a, 4);
		aml_integer(a, (uint64_t)irqs[i].slot << 16 | 0xffff);
		aml_integer(a, PCI_INTA);
		aml_integer(a, 0);
		aml_integer(a, irqs[i].gsi);
		aml_end(a, pkg);
	}
	aml_end(a, prt);
	aml_end(a, dev);
	aml_end(a, scope);
	buf_free(&crs);
	return aml_finish(a, err);
}

static void write_fadt(uint8_t *p, uint64_t facs, uint64_t dsdt)
{
	sdt_header(p, "FACP", ACPI_FADT_SIZE, FADT_REVISION);
	put_u32le(p + ACPI_FADT_FACS, (uint32_t)facs);
	put_u32le(p + ACPI_FADT_DSDT, (uint32_t)dsdt);
	put_u16le(p + ACPI_FADT_SCI_INT, ACPI_SCI_IRQ);
	put_u32le(p + ACPI_FADT_PM1A_EVT, ACPI_PM_EVT_PORT);
	put_u32le(p + ACPI_FADT_PM1A_CNT, ACPI_PM_CNT_PORT);
	p[ACPI_FADT_PM1_EVT_LEN] = ACPI_PM_EVT_LEN;
	p[ACPI_FADT_PM1_CNT_LEN] = ACPI_PM_CNT_LEN;
	put_u16le(p + FADT_P_LVL2_LAT, FADT_NO_C2);
	put_u16le(p + FADT_P_LVL3_LAT, FADT_NO_C3);
	put_u16le(p + ACPI_FADT_BOOT_ARCH, BOOT_ARCH_NO_VGA | BOOT_ARCH_NO_MSI | BOOT_ARCH_NO_CMOS);
	put_u32le(p + ACPI_FADT_FLAGS,
	          FADT_WBINVD | FADT_PROC_C1 | FADT_PWR_BUTTON | FADT_SLP_BUTTON);
	put_u64le(p + ACPI_FADT_X_FACS, facs);
	put_u64le(p + ACPI_FADT_X_DSDT, dsdt);
	gas_io(p + ACPI_FADT_X_PM1A_EVT, ACPI_PM_EVT_LEN * 8, ACPI_PM_EVT_PORT);
	gas_io(p + ACPI_FADT_X_PM1A_CNT, ACPI_PM_CNT_LEN * 8, ACPI_PM_CNT_PORT);
	sdt_seal(p);
}

static size_t madt_size(unsigned cpus)
{
	return ACPI_SDT_HEADER_SIZE + 8 + (size_t)cpus * MADT_LAPIC_SIZE + MADT_IOAPIC_SIZE +
	       2 * MADT_ISO_SIZE + MADT_NMI_SIZE;
}

static uint8_t *madt_iso(uint8_t *e, uint8_t irq, uint32_t gsi, uint16_t flags)
{
	e[0] = ACPI_MADT_ISO;
	e[1] = MADT_ISO_SIZE;
	e[2] = 0; /* ISA */
	e[3] = irq;
	put_u32le(e + 4, gsi);
	put_u16le(e + 8, flags);
	return e + MADT_ISO_SIZE;
}

static void write_madt(uint8_t *p, unsigned cpus)
{
	uint8_t *e = p + ACPI_SDT_HEADER_SIZE + 8;

	sdt_header(p, "APIC", madt_size(cpus), MADT_REVISION);
	put_u32le(p + ACPI_SDT_HEADER_SIZE, MPTABLE_LAPIC_ADDR);
	put_u32le(p + ACPI_SDT_HEADER_SIZE + 4, MADT_PCAT_COMPAT);
	for (unsigned i = 0; i < cpus; i++, e += MADT_LAPIC_SIZE) {
		e[0] = ACPI_MADT_LAPIC;
		e[1] = MADT_LAPIC_SIZE;
		e[2] = (uint8_t)i; /* processor UID */
		e[3] = (uint8_t)i; /* APIC ID, as vcpu.c sets it */
		put_u32le(e + 4, MADT_ENABLED);
	}
	e[0] = ACPI_MADT_IOAPIC;
	e[1] = MADT_IOAPIC_SIZE;
	e[2] = (uint8_t)cpus; /* its ID follows the CPUs', as in the MP table */
	e[3] = 0;
	put_u32le(e + 4, MPTABLE_IOAPIC_ADDR);
	put_u32le(e + 8, 0); /* GSI base */
	e += MADT_IOAPIC_SIZE;
	e = madt_iso(e, 0, MPTABLE_TIMER_PIN, 0);
	e = madt_iso(e, ACPI_SCI_IRQ, ACPI_SCI_IRQ, MADT_LEVEL_HIGH);
	e[0] = ACPI_MADT_LAPIC_NMI;
	e[1] = MADT_NMI_SIZE;
	e[2] = MADT_ALL_PROCESSORS;
	put_u16le(e + 3, 0);
	e[5] = 1; /* LINT1 */
	sdt_seal(p);
}

static void write_rsdp(uint8_t *p, uint64_t xsdt)
{
	memcpy(p, "RSD PTR ", 8);
	memcpy(p + 9, OEM_ID, 6);
	p[15] = RSDP_REVISION;
	put_u32le(p + 16, 0); /* no RSDT: every OS of this century reads the XSDT */
	put_u32le(p + 20, ACPI_RSDP_SIZE);
	put_u64le(p + ACPI_RSDP_XSDT, xsdt);
	p[8] = bios_checksum(p, 20);
	p[32] = bios_checksum(p, ACPI_RSDP_SIZE);
}

int acpi_write(struct guest_mem *m, unsigned cpus, const struct mptable_pci_irq *irqs, size_t n,
               struct circ_err *err)
{
	struct acpi_writer w = { 0 };
	struct aml dsdt;
	size_t rsdp, facs, xsdt, fadt, madt, dsdt_off;
	uint32_t pci_pins;
	uint8_t *p;

	if (cpus < 1 || cpus > MPTABLE_MAX_CPUS)
		return err_set(err, EINVAL, "ACPI: %u CPUs is not in 1..%u", cpus,
		               MPTABLE_MAX_CPUS);
	if (mptable_check_routes(irqs, n, &pci_pins, err))
		return err_prefix(err, "ACPI");
	w.base = guest_mem_ptr(m, ACPI_START, ACPI_END - ACPI_START);
	if (!w.base)
		return err_set(err, ERANGE, "ACPI: guest memory does not cover 0x%x..0x%x",
		               ACPI_START, ACPI_END);
	aml_init(&dsdt);
	if (dsdt_aml(&dsdt, irqs, n, err)) {
		aml_free(&dsdt);
		return err_prefix(err, "ACPI");
	}
	memset(w.base, 0, ACPI_END - ACPI_START);
	rsdp = place(&w, ACPI_RSDP_SIZE, TABLE_ALIGN);
	facs = place(&w, ACPI_FACS_SIZE, FACS_ALIGN);
	xsdt = place(&w, ACPI_SDT_HEADER_SIZE + 2 * 8, TABLE_ALIGN);
	fadt = place(&w, ACPI_FADT_SIZE, TABLE_ALIGN);
	madt = place(&w, madt_size(cpus), TABLE_ALIGN);
	dsdt_off = place(&w, ACPI_SDT_HEADER_SIZE + dsdt.out.len, TABLE_ALIGN);
	if (!facs || !xsdt || !fadt || !madt || !dsdt_off) {
		aml_free(&dsdt);
		return err_set(err, ENOSPC, "ACPI: the tables do not fit 0x%x..0x%x", ACPI_START,
		               ACPI_END);
	}

	p = w.base + dsdt_off;
	sdt_header(p, "DSDT", ACPI_SDT_HEADER_SIZE + dsdt.out.len, DSDT_REVISION);
	memcpy(p + ACPI_SDT_HEADER_SIZE, dsdt.out.data, dsdt.out.len);
	sdt_seal(p);
	aml_free(&dsdt);

	p = w.base + facs;
	memcpy(p, "FACS", 4);
	put_u32le(p + 4, ACPI_FACS_SIZE);
	p[32] = 2; /* version */

	write_fadt(w.base + fadt, ACPI_START + facs, ACPI_START + dsdt_off);
	write_madt(w.base + madt, cpus);

	p = w.base + xsdt;
	sdt_header(p, "XSDT", ACPI_SDT_HEADER_SIZE + 2 * 8, 1);
	put_u64le(p + ACPI_SDT_HEADER_SIZE, ACPI_START + fadt);
	put_u64le(p + ACPI_SDT_HEADER_SIZE + 8, ACPI_START + madt);
	sdt_seal(p);

	write_rsdp(w.base + rsdp, ACPI_START + xsdt);
	return 0;
}
