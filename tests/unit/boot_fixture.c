/* SPDX-License-Identifier: MIT */
/* The boot loader tests' guest memory, ELF guests and checks (see boot_fixture.h). */
#include <elf.h>
#include <string.h>

#include "hv/acpi.h"
#include "hv/boot.h"
#include "hv/mptable.h"
#include "tests/unit/boot_fixture.h"
#include "tests/unit/testutil.h"

uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

void wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

void alloc_mem(struct guest_mem *m, uint64_t size)
{
	struct circ_err err;

	ck_assert_msg(guest_mem_alloc(m, size, &err) == 0, "%s", err.msg);
}

uint8_t *gp(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	uint8_t *p = guest_mem_ptr(m, gpa, len);

	ck_assert_msg(p != NULL, "0x%llx+0x%llx is not guest RAM", (unsigned long long)gpa,
	              (unsigned long long)len);
	return p;
}

/* An ELF64 x86-64 executable with segments' file bytes from fill_random. */
void make_elf(struct buf *b, const struct seg *segs, unsigned n, uint64_t entry)
{
	Elf64_Ehdr eh;
	size_t end = sizeof(eh) + n * sizeof(Elf64_Phdr);

	for (unsigned i = 0; i < n; i++)
		if (segs[i].offset + segs[i].filesz > end)
			end = segs[i].offset + segs[i].filesz;
	buf_reset(b);
	ck_assert_int_eq(buf_append_zeros(b, end), 0);
	memset(&eh, 0, sizeof(eh));
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	eh.e_type = ET_EXEC;
	eh.e_machine = EM_X86_64;
	eh.e_version = EV_CURRENT;
	eh.e_entry = entry;
	eh.e_phoff = sizeof(eh);
	eh.e_ehsize = sizeof(eh);
	eh.e_phentsize = sizeof(Elf64_Phdr);
	eh.e_phnum = (uint16_t)n;
	memcpy(b->data, &eh, sizeof(eh));
	for (unsigned i = 0; i < n; i++) {
		Elf64_Phdr ph;

		memset(&ph, 0, sizeof(ph));
		ph.p_type = segs[i].type;
		ph.p_flags = PF_R | PF_X;
		ph.p_offset = segs[i].offset;
		ph.p_vaddr = segs[i].paddr;
		ph.p_paddr = segs[i].paddr;
		ph.p_filesz = segs[i].filesz;
		ph.p_memsz = segs[i].memsz;
		ph.p_align = 0x1000;
		memcpy(b->data + sizeof(eh) + i * sizeof(ph), &ph, sizeof(ph));
		fill_random(b->data + segs[i].offset, segs[i].filesz, 100 + i);
	}
}

/* Code and data, the data with a bss tail, as a small guest looks. */
static const struct seg guest_segs[] = {
	{ PT_LOAD, ELF_BASE, 0x1000, 0x1800, 0x1800 },
	{ PT_LOAD, ELF_BASE + 0x2000, 0x3000, 0x100, 0x4000 },
	{ PT_NOTE, 0, 0x3100, 0x10, 0x10 },
};

void make_guest_elf(struct buf *b)
{
	make_elf(b, guest_segs, 3, ELF_ENTRY);
}

int load_mem(struct guest_mem *m, const struct buf *k, const char *cmdline, struct boot_info *bi,
             struct circ_err *err)
{
	struct boot_config cfg = { .cmdline = cmdline };

	return boot_load_mem(m, &cfg, k->data, k->len, NULL, 0, bi, err);
}

/* Fails the test unless loading k fails with a message containing needle. */
void expect_fail(struct guest_mem *m, const struct buf *k, size_t len, const char *needle)
{
	struct boot_config cfg = { .cmdline = "console=ttyS0" };
	struct circ_err err = { 0 };
	struct boot_info bi;

	ck_assert_msg(boot_load_mem(m, &cfg, k->data, len, NULL, 0, &bi, &err) == -1,
	              "a bad kernel (%zu bytes, expecting '%s') loaded", len, needle);
	ck_assert_msg(err.msg[0] != '\0', "no error message");
	ck_assert_msg(strchr(err.msg, '\n') == NULL, "error '%s' is not one line", err.msg);
	ck_assert_err_has(&err, needle);
}

/* The identity map: walks the 4-level tables as the MMU does. */
bool walk(const struct guest_mem *m, uint64_t cr3, uint64_t va, uint64_t *pa)
{
	const uint64_t addr = 0x000ffffffffff000ull;
	uint64_t e = get_u64le(gp(m, (cr3 & addr) + ((va >> 39) & 511) * 8, 8));

	if (!(e & 1))
		return false;
	e = get_u64le(gp(m, (e & addr) + ((va >> 30) & 511) * 8, 8));
	if (!(e & 1))
		return false;
	if (e & 0x80) {
		*pa = (e & 0x000fffffc0000000ull) | (va & (GiB - 1));
		return true;
	}
	e = get_u64le(gp(m, (e & addr) + ((va >> 21) & 511) * 8, 8));
	if (!(e & 1))
		return false;
	if (e & 0x80) {
		*pa = (e & 0x000fffffffe00000ull) | (va & (2 * MiB - 1));
		return true;
	}
	e = get_u64le(gp(m, (e & addr) + ((va >> 12) & 511) * 8, 8));
	if (!(e & 1))
		return false;
	*pa = (e & addr) | (va & 0xfff);
	return true;
}

void check_identity_map(const struct guest_mem *m, const struct boot_info *bi)
{
	uint64_t pa;

	ck_assert_uint_eq(bi->cr3, BOOT_PML4);
	for (uint64_t va = 0; va < GiB; va += 2 * MiB) {
		ck_assert_msg(walk(m, bi->cr3, va, &pa) && pa == va, "0x%llx not identity-mapped",
		              (unsigned long long)va);
		ck_assert(walk(m, bi->cr3, va + 0x1234, &pa) && pa == va + 0x1234);
	}
	ck_assert(walk(m, bi->cr3, GiB - 1, &pa) && pa == GiB - 1);
	ck_assert(walk(m, bi->cr3, bi->entry, &pa) && pa == bi->entry);
	ck_assert(!walk(m, bi->cr3, GiB, &pa));
	ck_assert(!walk(m, bi->cr3, 512 * GiB, &pa));
}

void check_gdt(const struct guest_mem *m, const struct boot_info *bi)
{
	const uint8_t *gdt = gp(m, bi->tables.gdt_base, bi->tables.gdt_limit + 1u);

	ck_assert_uint_eq(bi->tables.gdt_base, 0x500);
	ck_assert_uint_eq(bi->tables.gdt_limit, 31);
	ck_assert_uint_eq(get_u64le(gdt), 0);
	ck_assert_uint_eq(get_u64le(gdt + 8), 0x00af9b000000ffffull);
	ck_assert_uint_eq(get_u64le(gdt + 16), 0x00cf93000000ffffull);
	ck_assert_uint_eq(get_u64le(gdt + 24), 0x008f8b000000ffffull);
	ck_assert_uint_eq(bi->tables.code.selector, 0x08);
	ck_assert(bi->tables.code.l && !bi->tables.code.db && bi->tables.code.present &&
	          bi->tables.code.s);
	ck_assert_uint_eq(bi->tables.code.type, 0xb);
	ck_assert_uint_eq(bi->tables.code.limit, 0xffffffffu);
	ck_assert_uint_eq(bi->tables.data.selector, 0x10);
	ck_assert(!bi->tables.data.l && bi->tables.data.db && bi->tables.data.present &&
	          bi->tables.data.s);
	ck_assert_uint_eq(bi->tables.data.type, 0x3);
	ck_assert_uint_eq(bi->tables.tss.selector, 0x18);
	ck_assert(!bi->tables.tss.s && bi->tables.tss.present);
	ck_assert_uint_eq(bi->tables.tss.type, 0xb);
	ck_assert_uint_eq(bi->stack, 0x8ff0);
	ck_assert_uint_eq(bi->boot_params, 0x7000);
}

static bool inside(uint64_t a, uint64_t len, uint64_t start, uint64_t size)
{
	return a >= start && len <= size && a - start <= size - len;
}

/* Sorted, disjoint, within guest RAM, nothing in the hole; returns RAM bytes. */
uint64_t check_e820(const struct guest_mem *m, const uint8_t *zp)
{
	unsigned n = zp[BP_E820_ENTRIES];
	uint64_t ram = 0, prev_end = 0;
	bool mp_reserved = false, acpi_reserved = false;

	ck_assert(n >= 2 && n <= BP_E820_MAX);
	for (unsigned i = 0; i < n; i++) {
		const uint8_t *e = zp + BP_E820_TABLE + i * BP_E820_ENTRY_SIZE;
		uint64_t addr = get_u64le(e), size = get_u64le(e + 8);
		uint32_t type = get_u32le(e + 16);

		ck_assert_msg(size > 0 && addr + size > addr, "e820 entry %u is empty or wraps", i);
		ck_assert_msg(i == 0 || addr >= prev_end, "e820 entry %u unsorted or overlapping",
		              i);
		prev_end = addr + size;
		ck_assert(type == E820_RAM || type == E820_RESERVED);
		if (type == E820_RAM) {
			ram += size;
			ck_assert_msg(guest_mem_ptr(m, addr, size) != NULL,
			              "e820 RAM 0x%llx+0x%llx is not guest memory",
			              (unsigned long long)addr, (unsigned long long)size);
			ck_assert(addr + size <= GUEST_MEM_HOLE_START ||
			          addr >= GUEST_MEM_HIGH_START);
		}
		if (type == E820_RESERVED &&
		    inside(MPTABLE_START, MPTABLE_END - MPTABLE_START, addr, size))
			mp_reserved = true;
		if (type == E820_RESERVED && inside(ACPI_START, ACPI_END - ACPI_START, addr, size))
			acpi_reserved = true;
	}
	ck_assert_msg(mp_reserved, "the MP table is not in a reserved e820 range");
	ck_assert_msg(acpi_reserved, "the ACPI tables are not in a reserved e820 range");
	ck_assert_uint_le(ram, m->size);
	/* Only the legacy area between 639 KiB and 1 MiB is withheld. */
	ck_assert_uint_eq(ram, m->size - (BOOT_HIMEM_START - BOOT_EBDA_START));
	return ram;
}

/* Whether [a, a+len) is wholly inside one e820 RAM entry. */
bool in_e820_ram(const uint8_t *zp, uint64_t a, uint64_t len)
{
	for (unsigned i = 0; i < zp[BP_E820_ENTRIES]; i++) {
		const uint8_t *e = zp + BP_E820_TABLE + i * BP_E820_ENTRY_SIZE;

		if (get_u32le(e + 16) == E820_RAM && inside(a, len, get_u64le(e), get_u64le(e + 8)))
			return true;
	}
	return false;
}

static uint8_t sum8(const uint8_t *p, size_t len)
{
	uint8_t s = 0;

	while (len--)
		s = (uint8_t)(s + *p++);
	return s;
}

/* Checks the floating pointer and config table and tallies their entries. */
void parse_mptable(const struct guest_mem *m, struct mp_seen *s)
{
	const uint8_t *mpf = gp(m, MPTABLE_START, MP_FLOAT_SIZE), *cfg, *p, *end;
	uint16_t len, count;

	memset(s, 0, sizeof(*s));
	memset(s->isa_pin, -1, sizeof(s->isa_pin));
	memset(s->pci_gsi, -1, sizeof(s->pci_gsi));
	ck_assert_int_eq(memcmp(mpf, "_MP_", 4), 0);
	ck_assert_uint_eq(mpf[8], 1);
	ck_assert_uint_eq(mpf[9], 4);
	ck_assert_uint_eq(mpf[11], 0); /* a config table follows, no default config */
	ck_assert_uint_eq(sum8(mpf, MP_FLOAT_SIZE), 0);
	cfg = gp(m, get_u32le(mpf + 4), MP_CONFIG_HDR_SIZE);
	ck_assert_int_eq(memcmp(cfg, "PCMP", 4), 0);
	len = rd16(cfg + 4);
	count = rd16(cfg + 34);
	cfg = gp(m, get_u32le(mpf + 4), len);
	ck_assert_uint_le(get_u32le(mpf + 4) + len, MPTABLE_END);
	ck_assert_uint_eq(cfg[6], 4);
	ck_assert_uint_eq(sum8(cfg, len), 0);
	ck_assert_uint_eq(get_u32le(cfg + 36), 0xfee00000u);
	p = cfg + MP_CONFIG_HDR_SIZE;
	end = cfg + len;
	for (unsigned i = 0; i < count; i++) {
		ck_assert_msg(p < end, "entry %u past the table's length", i);
		switch (p[0]) {
		case MP_ENTRY_CPU:
			ck_assert_uint_eq(p[1], s->cpus);
			ck_assert(p[3] & 1);
			if (p[3] & 2) {
				ck_assert_uint_eq(p[1], 0);
				s->bsp++;
			}
			s->cpus++;
			p += MP_CPU_SIZE;
			break;
		case MP_ENTRY_BUS:
			ck_assert(p[1] == MPTABLE_PCI_BUS ? !memcmp(p + 2, "PCI   ", 6)
			                                  : !memcmp(p + 2, "ISA   ", 6));
			s->buses++;
			p += MP_OTHER_SIZE;
			break;
		case MP_ENTRY_IOAPIC:
			ck_assert(p[3] & 1);
			ck_assert_uint_eq(get_u32le(p + 4), 0xfec00000u);
			s->ioapic_id = p[1];
			s->ioapics++;
			p += MP_OTHER_SIZE;
			break;
		case MP_ENTRY_IOINT:
			ck_assert_uint_eq(p[1], MP_INT_INT);
			ck_assert_uint_eq(p[6], s->ioapic_id);
			ck_assert_uint_lt(p[7], MPTABLE_IOAPIC_PINS);
			ck_assert_msg(!s->pin_used[p[7]], "IOAPIC pin %u routed twice", p[7]);
			s->pin_used[p[7]] = true;
			if (p[4] == MPTABLE_ISA_BUS) {
				ck_assert_uint_lt(p[5], 16);
				ck_assert_uint_eq(rd16(p + 2), MP_IRQFLAG_ISA);
				s->isa_pin[p[5]] = p[7];
			} else {
				ck_assert_uint_eq(p[4], MPTABLE_PCI_BUS);
				ck_assert_uint_eq(p[5] & 3, 0); /* INTA */
				ck_assert_uint_eq(rd16(p + 2), MP_IRQFLAG_PCI);
				s->pci_gsi[p[5] >> 2] = p[7];
			}
			s->ioints++;
			p += MP_OTHER_SIZE;
			break;
		case MP_ENTRY_LOCALINT:
			ck_assert((p[1] == MP_INT_EXTINT && p[7] == 0) ||
			          (p[1] == MP_INT_NMI && p[7] == 1));
			s->localints++;
			p += MP_OTHER_SIZE;
			break;
		default:
			ck_abort_msg("unknown MP entry type %u", p[0]);
		}
	}
	ck_assert_msg(p == end, "entries end %td bytes from the table's length", end - p);
}

/* A system description table at gpa: its signature, length, checksum and place. */
static const uint8_t *acpi_table(const struct guest_mem *m, uint64_t gpa, const char sig[4])
{
	const uint8_t *t = gp(m, gpa, ACPI_SDT_HEADER_SIZE);
	uint32_t len = get_u32le(t + 4);

	ck_assert_msg(memcmp(t, sig, 4) == 0, "%.4s at 0x%llx, not %.4s", (const char *)t,
	              (unsigned long long)gpa, sig);
	ck_assert_uint_ge(len, ACPI_SDT_HEADER_SIZE);
	ck_assert_msg(gpa >= ACPI_START && gpa + len <= ACPI_END, "%.4s outside the ACPI area",
	              sig);
	t = gp(m, gpa, len);
	ck_assert_msg(sum8(t, len) == 0, "%.4s checksum", sig);
	ck_assert_int_eq(memcmp(t + 10, "CIRC  ", 6), 0);
	return t;
}

static void parse_madt(const uint8_t *t, struct acpi_seen *s)
{
	const uint8_t *p = t + ACPI_SDT_HEADER_SIZE + 8, *end = t + get_u32le(t + 4);

	ck_assert_uint_eq(get_u32le(t + ACPI_SDT_HEADER_SIZE), 0xfee00000u);
	ck_assert_uint_eq(get_u32le(t + ACPI_SDT_HEADER_SIZE + 4) & 1, 1); /* PCAT_COMPAT */
	while (p < end) {
		ck_assert_msg(end - p >= 2 && p[1] >= 2 && p[1] <= end - p, "MADT entry length");
		switch (p[0]) {
		case ACPI_MADT_LAPIC:
			ck_assert_uint_eq(p[1], 8);
			ck_assert_uint_eq(p[3], s->lapics); /* APIC IDs 0..n-1, in order */
			ck_assert_uint_eq(get_u32le(p + 4) & 1, 1);
			s->lapics++;
			break;
		case ACPI_MADT_IOAPIC:
			ck_assert_uint_eq(p[1], 12);
			ck_assert_uint_eq(get_u32le(p + 4), 0xfec00000u);
			ck_assert_uint_eq(get_u32le(p + 8), 0);
			s->ioapic_id = p[2];
			s->ioapics++;
			break;
		case ACPI_MADT_ISO:
			ck_assert_uint_eq(p[1], 10);
			ck_assert_uint_eq(p[2], 0);
			ck_assert_uint_lt(p[3], 16);
			s->iso_gsi[p[3]] = (int)get_u32le(p + 4);
			s->iso_flags[p[3]] = rd16(p + 8);
			break;
		case ACPI_MADT_LAPIC_NMI:
			ck_assert_uint_eq(p[1], 6);
			ck_assert_uint_eq(p[5], 1); /* LINT1 */
			s->nmis++;
			break;
		default:
			ck_abort_msg("unexpected MADT entry type %u", p[0]);
		}
		p += p[1];
	}
}

void parse_acpi(const struct guest_mem *m, struct acpi_seen *s)
{
	const uint8_t *rsdp = NULL, *xsdt, *fadt, *facs;
	uint32_t n;

	memset(s, 0, sizeof(*s));
	memset(s->iso_gsi, -1, sizeof(s->iso_gsi));
	for (uint64_t a = 0xe0000; a < 0x100000 && !rsdp; a += 16) {
		const uint8_t *p = gp(m, a, 8);

		if (!memcmp(p, "RSD PTR ", 8) && sum8(gp(m, a, 20), 20) == 0)
			rsdp = gp(m, s->rsdp = a, ACPI_RSDP_SIZE);
	}
	ck_assert_msg(rsdp, "no RSDP in the BIOS area");
	ck_assert_uint_eq(rsdp[15], 2);
	ck_assert_uint_eq(get_u32le(rsdp + 20), ACPI_RSDP_SIZE);
	ck_assert_uint_eq(sum8(rsdp, ACPI_RSDP_SIZE), 0);
	s->xsdt = get_u64le(rsdp + ACPI_RSDP_XSDT);
	xsdt = acpi_table(m, s->xsdt, "XSDT");
	n = (get_u32le(xsdt + 4) - ACPI_SDT_HEADER_SIZE) / 8;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t a = get_u64le(xsdt + ACPI_SDT_HEADER_SIZE + 8 * i);

		if (!memcmp(gp(m, a, 4), "FACP", 4))
			s->fadt = a;
		else if (!memcmp(gp(m, a, 4), "APIC", 4))
			s->madt = a;
		else
			ck_abort_msg("unexpected table in the XSDT");
	}
	ck_assert_msg(s->fadt && s->madt, "the XSDT lacks the FADT or the MADT");
	fadt = acpi_table(m, s->fadt, "FACP");
	ck_assert_uint_eq(get_u32le(fadt + 4), ACPI_FADT_SIZE);
	ck_assert_uint_eq(fadt[8], 6);
	s->dsdt = get_u64le(fadt + ACPI_FADT_X_DSDT);
	s->facs = get_u64le(fadt + ACPI_FADT_X_FACS);
	/* The 32-bit copies agree, or ACPICA complains. */
	ck_assert_uint_eq(get_u32le(fadt + ACPI_FADT_DSDT), s->dsdt);
	ck_assert_uint_eq(get_u32le(fadt + ACPI_FADT_FACS), s->facs);
	s->dsdt_len = get_u32le(acpi_table(m, s->dsdt, "DSDT") + 4);
	ck_assert_uint_eq(s->facs % 64, 0);
	facs = gp(m, s->facs, ACPI_FACS_SIZE);
	ck_assert_int_eq(memcmp(facs, "FACS", 4), 0);
	ck_assert_uint_eq(get_u32le(facs + 4), ACPI_FACS_SIZE);
	parse_madt(acpi_table(m, s->madt, "APIC"), s);
}
