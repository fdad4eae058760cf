/* SPDX-License-Identifier: MIT */
#include "hv/x86.h"

#include <string.h>

#include "util/buf.h"

/* Nothing written below 1 MiB may overlap. */
_Static_assert(BOOT_GDT_ADDR + BOOT_GDT_ENTRIES * 8 <= BOOT_IDT_ADDR, "GDT runs into IDT");
_Static_assert(BOOT_IDT_ADDR + 8 <= BOOT_ZERO_PAGE, "IDT runs into the zero page");
_Static_assert(BOOT_ZERO_PAGE + sizeof(struct boot_params) <= BOOT_STACK_TOP - 0x800,
               "stack too small");
_Static_assert(BOOT_STACK_TOP <= BOOT_PML4, "stack runs into the page tables");
_Static_assert(BOOT_PML4 + 0x1000 == BOOT_PDPT && BOOT_PDPT + 0x1000 == BOOT_PD, "page tables");
_Static_assert(BOOT_PD + 0x1000 <= BOOT_CMDLINE, "page tables run into the command line");
_Static_assert(BOOT_CMDLINE < BOOT_EBDA_START && BOOT_EBDA_START < ACPI_START, "layout");
_Static_assert(ACPI_END == MPTABLE_START, "layout");
_Static_assert(MPTABLE_END <= BOOT_HIMEM_START, "MP table runs into the kernel");

#define PAGE_SIZE      0x1000ull
#define LARGE_PAGE     (2ull << 20)
#define PTE_PRESENT_RW 0x3ull
#define PTE_LARGE      0x80ull
#define IDT_LIMIT      7      /* one empty gate: any exception before Linux's own IDT is fatal */
#define GDT_CODE       0xa09b /* present, DPL 0, execute/read, long mode, 4 KiB granules */
#define GDT_DATA       0xc093 /* present, DPL 0, read/write, 32-bit, 4 KiB granules */
#define GDT_TSS        0x808b /* present, busy TSS, 4 KiB granules */

uint64_t boot_gdt_entry(uint16_t flags, uint32_t base, uint32_t limit)
{
	return ((uint64_t)(base & 0xff000000u) << 32) | ((uint64_t)(flags & 0xf0ffu) << 40) |
	       ((uint64_t)(limit & 0x000f0000u) << 32) | ((uint64_t)(base & 0x00ffffffu) << 16) |
	       (uint64_t)(limit & 0x0000ffffu);
}

struct boot_segment boot_segment_from_gdt(uint64_t e, uint16_t selector)
{
	struct boot_segment s;
	uint32_t limit = (uint32_t)((e & 0xffff) | ((e >> 32) & 0xf0000));

	memset(&s, 0, sizeof(s));
	s.base = ((e >> 16) & 0xffffff) | (((e >> 56) & 0xff) << 24);
	s.selector = selector;
	s.type = (uint8_t)((e >> 40) & 0xf);
	s.s = (uint8_t)((e >> 44) & 1);
	s.dpl = (uint8_t)((e >> 45) & 3);
	s.present = (uint8_t)((e >> 47) & 1);
	s.avl = (uint8_t)((e >> 52) & 1);
	s.l = (uint8_t)((e >> 53) & 1);
	s.db = (uint8_t)((e >> 54) & 1);
	s.g = (uint8_t)((e >> 55) & 1);
	s.limit = s.g ? (limit << 12) | 0xfff : limit;
	return s;
}

void x86_write_gdt(struct guest_mem *m, struct x86_tables *out)
{
	const uint64_t gdt[BOOT_GDT_ENTRIES] = {
		0,
		boot_gdt_entry(GDT_CODE, 0, 0xfffff),
		boot_gdt_entry(GDT_DATA, 0, 0xfffff),
		boot_gdt_entry(GDT_TSS, 0, 0xfffff),
	};
	uint8_t *low = guest_mem_ptr(m, 0, BOOT_HIMEM_START);

	for (unsigned i = 0; i < BOOT_GDT_ENTRIES; i++)
		put_u64le(low + BOOT_GDT_ADDR + i * 8, gdt[i]);
	memset(low + BOOT_IDT_ADDR, 0, IDT_LIMIT + 1);
	out->gdt_base = BOOT_GDT_ADDR;
	out->gdt_limit = BOOT_GDT_ENTRIES * 8 - 1;
	out->idt_base = BOOT_IDT_ADDR;
	out->idt_limit = IDT_LIMIT;
	out->code = boot_segment_from_gdt(gdt[1], BOOT_SEL_CODE);
	out->data = boot_segment_from_gdt(gdt[2], BOOT_SEL_DATA);
	out->tss = boot_segment_from_gdt(gdt[3], BOOT_SEL_TSS);
}

void x86_write_page_tables(struct guest_mem *m)
{
	uint8_t *low = guest_mem_ptr(m, 0, BOOT_HIMEM_START);

	memset(low + BOOT_PML4, 0, 3 * PAGE_SIZE);
	put_u64le(low + BOOT_PML4, BOOT_PDPT | PTE_PRESENT_RW);
	put_u64le(low + BOOT_PDPT, BOOT_PD | PTE_PRESENT_RW);
	for (uint64_t i = 0; i < 512; i++)
		put_u64le(low + BOOT_PD + i * 8, (i * LARGE_PAGE) | PTE_PRESENT_RW | PTE_LARGE);
}

static void e820_add(uint8_t *zp, uint64_t addr, uint64_t size, uint32_t type)
{
	uint8_t *n = zp + BP_E820_ENTRIES;
	uint8_t *e = zp + BP_E820_TABLE + *n * BP_E820_ENTRY_SIZE;

	put_u64le(e + offsetof(struct boot_e820_entry, addr), addr);
	put_u64le(e + offsetof(struct boot_e820_entry, size), size);
	put_u32le(e + offsetof(struct boot_e820_entry, type), type);
	(*n)++;
}

/*
 * Low RAM stops at the EBDA; the BIOS area holding the ACPI and MP tables
 * is reserved, so Linux keeps its hands off both.
 */
void x86_write_e820(const struct guest_mem *m, uint8_t *zp)
{
	zp[BP_E820_ENTRIES] = 0;
	e820_add(zp, 0, BOOT_EBDA_START, E820_RAM);
	e820_add(zp, BOOT_EBDA_START, 0xa0000 - BOOT_EBDA_START, E820_RESERVED);
	e820_add(zp, ACPI_START, MPTABLE_END - ACPI_START, E820_RESERVED);
	e820_add(zp, BOOT_HIMEM_START, m->low - BOOT_HIMEM_START, E820_RAM);
	if (m->size > m->low)
		e820_add(zp, GUEST_MEM_HIGH_START, m->size - m->low, E820_RAM);
}

int x86_write_firmware_tables(struct guest_mem *m, unsigned cpus,
                              const struct mptable_pci_irq *pci_irqs, size_t n_pci_irqs,
                              struct circ_err *err)
{
	if (mptable_write(m, cpus ? cpus : 1, pci_irqs, n_pci_irqs, err) ||
	    acpi_write(m, cpus ? cpus : 1, pci_irqs, n_pci_irqs, err))
		return -1;
	return 0;
}
