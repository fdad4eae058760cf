/* SPDX-License-Identifier: MIT */
/*
 * The boot loader and MP table: synthetic bzImages and ELF guests (always),
 * and Debian's stock kernel when CIRC_TEST_KERNEL names its vmlinuz
 * (tests/unit/fetch-kernel.sh fetches it; tests/run.sh sets the variable).
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hv/boot.h"
#include "hv/mptable.h"
#include "tests/unit/suites.h"
#include "tests/unit/testutil.h"

#define MiB (1ull << 20)
#define GiB (1ull << 30)

/* Synthetic bzImage: 3 setup sectors, then the protected-mode kernel. */
#define FAKE_SETUP_SECTS 3
#define FAKE_SETUP_SIZE  ((FAKE_SETUP_SECTS + 1) * 512)
#define FAKE_INIT_SIZE   (4 * MiB)

/* Synthetic ELF guest: linked at 1 MiB like tests/guest/. */
#define ELF_BASE  0x100000ull
#define ELF_ENTRY (ELF_BASE + 0x10)

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static void wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void alloc_mem(struct guest_mem *m, uint64_t size)
{
	struct circ_err err;

	ck_assert_msg(guest_mem_alloc(m, size, &err) == 0, "%s", err.msg);
}

static uint8_t *gp(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	uint8_t *p = guest_mem_ptr(m, gpa, len);

	ck_assert_msg(p != NULL, "0x%llx+0x%llx is not guest RAM", (unsigned long long)gpa,
	              (unsigned long long)len);
	return p;
}

static void make_bzimage(struct buf *b, size_t payload_len, uint64_t seed)
{
	uint8_t *h;

	buf_reset(b);
	ck_assert_int_eq(buf_append_zeros(b, FAKE_SETUP_SIZE + payload_len), 0);
	h = b->data;
	fill_random(h + FAKE_SETUP_SIZE, payload_len, seed);
	h[HDR_SETUP_SECTS] = FAKE_SETUP_SECTS;
	put_u32le(h + HDR_SYSSIZE, (uint32_t)(payload_len / 16));
	wr16(h + HDR_BOOT_FLAG, 0xaa55);
	h[HDR_JUMP] = 0xeb;
	h[HDR_JUMP + 1] = 0x6a; /* header through kernel_info_offset, as 2.15 */
	memcpy(h + HDR_HEADER, "HdrS", 4);
	wr16(h + HDR_VERSION, 0x020f);
	h[HDR_LOADFLAGS] = 0x01;
	put_u32le(h + HDR_INITRD_ADDR_MAX, 0x7fffffff);
	put_u32le(h + HDR_KERNEL_ALIGNMENT, 0x200000);
	h[HDR_RELOCATABLE] = 1;
	wr16(h + HDR_XLOADFLAGS, 0x3);
	put_u32le(h + HDR_CMDLINE_SIZE, 2047);
	put_u64le(h + HDR_PREF_ADDRESS, 0x1000000);
	put_u32le(h + HDR_INIT_SIZE, FAKE_INIT_SIZE);
}

struct seg {
	uint32_t type;
	uint64_t paddr, offset, filesz, memsz;
};

/* An ELF64 x86-64 executable with segments' file bytes from fill_random. */
static void make_elf(struct buf *b, const struct seg *segs, unsigned n, uint64_t entry)
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

static void make_guest_elf(struct buf *b)
{
	make_elf(b, guest_segs, 3, ELF_ENTRY);
}

static Elf64_Ehdr *ehdr(struct buf *b)
{
	return (Elf64_Ehdr *)b->data;
}

static Elf64_Phdr *phdr(struct buf *b, unsigned i)
{
	return (Elf64_Phdr *)(b->data + sizeof(Elf64_Ehdr)) + i;
}

static int load_mem(struct guest_mem *m, const struct buf *k, const char *cmdline,
                    struct boot_info *bi, struct circ_err *err)
{
	struct boot_config cfg = { .cmdline = cmdline, .cpus = 2 };

	return boot_load_mem(m, &cfg, k->data, k->len, NULL, 0, bi, err);
}

/* Fails the test unless loading k fails with a message containing needle. */
static void expect_fail(struct guest_mem *m, const struct buf *k, size_t len, const char *needle)
{
	struct boot_config cfg = { .cmdline = "console=ttyS0", .cpus = 1 };
	struct circ_err err = { 0 };
	struct boot_info bi;

	ck_assert_msg(boot_load_mem(m, &cfg, k->data, len, NULL, 0, &bi, &err) == -1,
	              "a bad kernel (%zu bytes, expecting '%s') loaded", len, needle);
	ck_assert_msg(err.msg[0] != '\0', "no error message");
	ck_assert_msg(strchr(err.msg, '\n') == NULL, "error '%s' is not one line", err.msg);
	ck_assert_err_has(&err, needle);
}

/* The identity map: walks the 4-level tables as the MMU does. */
static bool walk(const struct guest_mem *m, uint64_t cr3, uint64_t va, uint64_t *pa)
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

static void check_identity_map(const struct guest_mem *m, const struct boot_info *bi)
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

static void check_gdt(const struct guest_mem *m, const struct boot_info *bi)
{
	const uint8_t *gdt = gp(m, bi->gdt_base, bi->gdt_limit + 1u);

	ck_assert_uint_eq(bi->gdt_base, 0x500);
	ck_assert_uint_eq(bi->gdt_limit, 31);
	ck_assert_uint_eq(get_u64le(gdt), 0);
	ck_assert_uint_eq(get_u64le(gdt + 8), 0x00af9b000000ffffull);
	ck_assert_uint_eq(get_u64le(gdt + 16), 0x00cf93000000ffffull);
	ck_assert_uint_eq(get_u64le(gdt + 24), 0x008f8b000000ffffull);
	ck_assert_uint_eq(bi->code.selector, 0x08);
	ck_assert(bi->code.l && !bi->code.db && bi->code.present && bi->code.s);
	ck_assert_uint_eq(bi->code.type, 0xb);
	ck_assert_uint_eq(bi->code.limit, 0xffffffffu);
	ck_assert_uint_eq(bi->data.selector, 0x10);
	ck_assert(!bi->data.l && bi->data.db && bi->data.present && bi->data.s);
	ck_assert_uint_eq(bi->data.type, 0x3);
	ck_assert_uint_eq(bi->tss.selector, 0x18);
	ck_assert(!bi->tss.s && bi->tss.present);
	ck_assert_uint_eq(bi->tss.type, 0xb);
	ck_assert_uint_eq(bi->stack, 0x8ff0);
	ck_assert_uint_eq(bi->boot_params, 0x7000);
}

static bool inside(uint64_t a, uint64_t len, uint64_t start, uint64_t size)
{
	return a >= start && len <= size && a - start <= size - len;
}

/* Sorted, disjoint, within guest RAM, nothing in the hole; returns RAM bytes. */
static uint64_t check_e820(const struct guest_mem *m, const uint8_t *zp)
{
	unsigned n = zp[BP_E820_ENTRIES];
	uint64_t ram = 0, prev_end = 0;
	bool mp_reserved = false;

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
	}
	ck_assert_msg(mp_reserved, "the MP table is not in a reserved e820 range");
	ck_assert_uint_le(ram, m->size);
	/* Only the legacy area between 639 KiB and 1 MiB is withheld. */
	ck_assert_uint_eq(ram, m->size - (BOOT_HIMEM_START - BOOT_EBDA_START));
	return ram;
}

/* Whether [a, a+len) is wholly inside one e820 RAM entry. */
static bool in_e820_ram(const uint8_t *zp, uint64_t a, uint64_t len)
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

struct mp_seen {
	unsigned cpus, bsp, ioapics, buses, ioints, localints;
	uint8_t ioapic_id;
	int isa_pin[16]; /* ISA IRQ -> IOAPIC pin, -1: none */
	int pci_gsi[32]; /* slot -> IOAPIC pin of INTA, -1: none */
	bool pin_used[MPTABLE_IOAPIC_PINS];
};

/* Checks the floating pointer and config table and tallies their entries. */
static void parse_mptable(const struct guest_mem *m, struct mp_seen *s)
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

/* ---- the MP table ---- */

static const unsigned mp_cpu_counts[] = { 1, 2, 4, 27, 64, MPTABLE_MAX_CPUS };

START_TEST(test_mptable_layout)
{
	const struct mptable_pci_irq irqs[] = { { 1, 5 }, { 2, 6 }, { 3, 7 }, { 31, 20 } };
	unsigned cpus = mp_cpu_counts[_i];
	struct circ_err err = { 0 };
	struct guest_mem m;
	struct mp_seen s;

	alloc_mem(&m, 16 * MiB);
	ck_assert_msg(mptable_write(&m, cpus, irqs, 4, &err) == 0, "%s", err.msg);
	parse_mptable(&m, &s);
	ck_assert_uint_eq(s.cpus, cpus);
	ck_assert_uint_eq(s.bsp, 1);
	ck_assert_uint_eq(s.ioapics, 1);
	ck_assert_uint_eq(s.ioapic_id, cpus);
	ck_assert_uint_eq(s.buses, 2);
	ck_assert_uint_eq(s.localints, 2);
	/* IRQ 0 on pin 2, no cascade, pins the PCI devices own left to them. */
	ck_assert_int_eq(s.isa_pin[0], 2);
	ck_assert_int_eq(s.isa_pin[2], -1);
	for (int irq = 1; irq < 16; irq++)
		if (irq != 2)
			ck_assert_int_eq(s.isa_pin[irq], irq >= 5 && irq <= 7 ? -1 : irq);
	for (int slot = 0; slot < 32; slot++) {
		int want = -1;

		for (size_t i = 0; i < 4; i++)
			if (irqs[i].slot == slot)
				want = irqs[i].gsi;
		ck_assert_int_eq(s.pci_gsi[slot], want);
	}
	ck_assert_uint_eq(s.ioints, 12 + 4);
	ck_assert_uint_le(get_u32le(gp(&m, MPTABLE_START, 16) + 4) +
	                      rd16(gp(&m, MPTABLE_START + 16, 8) + 4) - MPTABLE_START,
	                  mptable_size(cpus, 4));
	guest_mem_free(&m);
}
END_TEST

START_TEST(test_mptable_no_pci)
{
	struct circ_err err = { 0 };
	struct guest_mem m;
	struct mp_seen s;

	alloc_mem(&m, 16 * MiB);
	/* Written twice: the second, smaller table must not keep the first's entries. */
	ck_assert_msg(mptable_write(&m, 8, (const struct mptable_pci_irq[]){ { 1, 5 } }, 1, &err) ==
	                  0,
	              "%s", err.msg);
	ck_assert_msg(mptable_write(&m, 1, NULL, 0, &err) == 0, "%s", err.msg);
	parse_mptable(&m, &s);
	ck_assert_uint_eq(s.cpus, 1);
	ck_assert_uint_eq(s.ioints, 15);
	ck_assert_int_eq(s.isa_pin[5], 5);
	for (int slot = 0; slot < 32; slot++)
		ck_assert_int_eq(s.pci_gsi[slot], -1);
	guest_mem_free(&m);
}
END_TEST

START_TEST(test_mptable_rejects)
{
	struct circ_err err = { 0 };
	struct guest_mem m;
	struct mptable_pci_irq many[32];

	alloc_mem(&m, 16 * MiB);
	ck_assert_int_eq(mptable_write(&m, 0, NULL, 0, &err), -1);
	ck_assert_err_has(&err, "CPUs");
	ck_assert_int_eq(mptable_write(&m, MPTABLE_MAX_CPUS + 1, NULL, 0, &err), -1);
	ck_assert_err_has(&err, "CPUs");
	ck_assert_int_eq(
	    mptable_write(&m, 1, (const struct mptable_pci_irq[]){ { 0, 5 } }, 1, &err), -1);
	ck_assert_err_has(&err, "slot 0");
	ck_assert_int_eq(
	    mptable_write(&m, 1, (const struct mptable_pci_irq[]){ { 32, 5 } }, 1, &err), -1);
	ck_assert_err_has(&err, "slot 32");
	ck_assert_int_eq(
	    mptable_write(&m, 1, (const struct mptable_pci_irq[]){ { 1, 2 } }, 1, &err), -1);
	ck_assert_err_has(&err, "GSI 2");
	ck_assert_int_eq(
	    mptable_write(&m, 1, (const struct mptable_pci_irq[]){ { 1, 0 } }, 1, &err), -1);
	ck_assert_int_eq(
	    mptable_write(&m, 1, (const struct mptable_pci_irq[]){ { 1, 24 } }, 1, &err), -1);
	ck_assert_err_has(&err, "GSI 24");
	ck_assert_int_eq(
	    mptable_write(&m, 1, (const struct mptable_pci_irq[]){ { 4, 5 }, { 4, 6 } }, 2, &err),
	    -1);
	ck_assert_err_has(&err, "twice");
	for (int i = 0; i < 32; i++)
		many[i] = (struct mptable_pci_irq){ (uint8_t)(i % 31 + 1), 5 };
	ck_assert_int_eq(mptable_write(&m, 1, many, 32, &err), -1);
	ck_assert_int_eq(mptable_write(&m, 1, NULL, 3, &err), -1);
	guest_mem_free(&m);
}
END_TEST

/* ---- GDT helpers ---- */

START_TEST(test_gdt_round_trip)
{
	struct boot_segment s =
	    boot_segment_from_gdt(boot_gdt_entry(0x4093, 0x12345678, 0xabcde), 0x20);

	ck_assert_uint_eq(s.base, 0x12345678);
	ck_assert_uint_eq(s.limit, 0xabcde); /* byte granular: G clear */
	ck_assert_uint_eq(s.selector, 0x20);
	ck_assert(s.db && !s.g && !s.l && s.present && s.s);
	ck_assert_uint_eq(s.type, 3);
	ck_assert_uint_eq(s.dpl, 0);
}
END_TEST

/* ---- ELF guests ---- */

START_TEST(test_elf_load)
{
	const char *cmdline = "console=ttyS0 hello";
	struct boot_config cfg = { .cmdline = cmdline, .cpus = 4 };
	struct circ_err err = { 0 };
	uint8_t initrd[10000];
	struct boot_info bi;
	struct guest_mem m;
	struct mp_seen s;
	struct buf k = { 0 };
	const uint8_t *zp, *seg;

	alloc_mem(&m, 64 * MiB);
	/* Stale bytes where the bss goes: the loader must clear them. */
	memset(gp(&m, ELF_BASE, 0x10000), 0xaa, 0x10000);
	make_guest_elf(&k);
	fill_random(initrd, sizeof(initrd), 7);
	ck_assert_msg(boot_load_mem(&m, &cfg, k.data, k.len, initrd, sizeof(initrd), &bi, &err) ==
	                  0,
	              "%s", err.msg);
	ck_assert(!bi.is_bzimage);
	ck_assert_uint_eq(bi.entry, ELF_ENTRY);
	ck_assert_uint_eq(bi.kernel_start, ELF_BASE);
	ck_assert_uint_eq(bi.kernel_end, ELF_BASE + 0x6000);
	seg = gp(&m, ELF_BASE, 0x6000);
	ck_assert_int_eq(memcmp(seg, k.data + 0x1000, 0x1800), 0);
	for (size_t i = 0x1800; i < 0x2000; i++)
		ck_assert_uint_eq(seg[i], 0xaa); /* between segments: untouched */
	ck_assert_int_eq(memcmp(seg + 0x2000, k.data + 0x3000, 0x100), 0);
	for (size_t i = 0x2100; i < 0x6000; i++)
		ck_assert_uint_eq(seg[i], 0);
	check_gdt(&m, &bi);
	check_identity_map(&m, &bi);

	zp = gp(&m, bi.boot_params, 4096);
	ck_assert_uint_eq(rd16(zp + HDR_BOOT_FLAG), 0xaa55);
	ck_assert_int_eq(memcmp(zp + HDR_HEADER, "HdrS", 4), 0);
	ck_assert_uint_eq(zp[HDR_TYPE_OF_LOADER], 0xff);
	ck_assert_uint_eq(get_u32le(zp + HDR_CMD_LINE_PTR), BOOT_CMDLINE);
	ck_assert_str_eq((const char *)gp(&m, BOOT_CMDLINE, strlen(cmdline) + 1), cmdline);
	check_e820(&m, zp);
	ck_assert(in_e820_ram(zp, ELF_BASE, 0x6000));

	ck_assert_uint_eq(get_u32le(zp + HDR_RAMDISK_IMAGE), bi.initrd_addr);
	ck_assert_uint_eq(get_u32le(zp + HDR_RAMDISK_SIZE), sizeof(initrd));
	ck_assert_uint_eq(bi.initrd_addr % 4096, 0);
	ck_assert_uint_ge(bi.initrd_addr, bi.kernel_end);
	ck_assert_uint_le(bi.initrd_addr + sizeof(initrd), m.low);
	/* As high as it goes: within a page of the end of RAM. */
	ck_assert_uint_gt(bi.initrd_addr + sizeof(initrd), m.low - 4096);
	ck_assert(in_e820_ram(zp, bi.initrd_addr, sizeof(initrd)));
	ck_assert_int_eq(memcmp(gp(&m, bi.initrd_addr, sizeof(initrd)), initrd, sizeof(initrd)), 0);

	parse_mptable(&m, &s);
	ck_assert_uint_eq(s.cpus, 4);
	buf_free(&k);
	guest_mem_free(&m);
}
END_TEST

/* A second load into the same memory (a reboot) leaves nothing of the first. */
START_TEST(test_elf_reload)
{
	struct circ_err err = { 0 };
	struct boot_info bi;
	struct guest_mem m;
	struct buf k = { 0 };

	alloc_mem(&m, 16 * MiB);
	make_guest_elf(&k);
	ck_assert_msg(load_mem(&m, &k, "a much longer command line than the next one", &bi, &err) ==
	                  0,
	              "%s", err.msg);
	ck_assert_msg(load_mem(&m, &k, "short", &bi, &err) == 0, "%s", err.msg);
	ck_assert_str_eq((const char *)gp(&m, BOOT_CMDLINE, 6), "short");
	ck_assert_uint_eq(*gp(&m, BOOT_CMDLINE + 6, 1), 0);
	ck_assert_uint_eq(get_u32le(gp(&m, BOOT_ZERO_PAGE + HDR_RAMDISK_SIZE, 4)), 0);
	buf_free(&k);
	guest_mem_free(&m);
}
END_TEST

START_TEST(test_elf_bad)
{
	struct guest_mem m;
	struct buf k = { 0 };

	alloc_mem(&m, 16 * MiB);

	make_guest_elf(&k);
	phdr(&k, 1)->p_paddr = 32 * MiB; /* past a 16 MiB guest */
	expect_fail(&m, &k, k.len, "outside guest RAM");

	make_guest_elf(&k);
	phdr(&k, 1)->p_paddr = 16 * MiB - 0x1000; /* straddles the end of RAM */
	expect_fail(&m, &k, k.len, "outside guest RAM");

	make_guest_elf(&k);
	phdr(&k, 0)->p_paddr = 0x7000; /* onto the zero page */
	ehdr(&k)->e_entry = 0x7010;
	expect_fail(&m, &k, k.len, "outside guest RAM");

	make_guest_elf(&k);
	phdr(&k, 1)->p_paddr = UINT64_MAX - 0x100; /* paddr + memsz wraps */
	expect_fail(&m, &k, k.len, "outside guest RAM");

	make_guest_elf(&k);
	phdr(&k, 1)->p_memsz = UINT64_MAX;
	phdr(&k, 1)->p_filesz = 0x100;
	expect_fail(&m, &k, k.len, "outside guest RAM");

	make_guest_elf(&k);
	phdr(&k, 1)->p_filesz = 0x200; /* offset + filesz past the end of the file */
	expect_fail(&m, &k, k.len, "past the end of the file");

	make_guest_elf(&k);
	phdr(&k, 1)->p_offset = UINT64_MAX - 0x10; /* offset + filesz wraps */
	expect_fail(&m, &k, k.len, "past the end of the file");

	make_guest_elf(&k);
	phdr(&k, 0)->p_filesz = 0x1800;
	phdr(&k, 0)->p_memsz = 0x1000;
	expect_fail(&m, &k, k.len, "more than");

	make_guest_elf(&k);
	ehdr(&k)->e_ident[EI_CLASS] = ELFCLASS32;
	expect_fail(&m, &k, k.len, "32-bit");

	make_guest_elf(&k);
	ehdr(&k)->e_machine = EM_386;
	expect_fail(&m, &k, k.len, "x86-64");

	make_guest_elf(&k);
	ehdr(&k)->e_machine = EM_AARCH64;
	expect_fail(&m, &k, k.len, "x86-64");

	make_guest_elf(&k);
	ehdr(&k)->e_ident[EI_DATA] = ELFDATA2MSB;
	expect_fail(&m, &k, k.len, "x86-64");

	make_guest_elf(&k);
	ehdr(&k)->e_type = ET_DYN;
	expect_fail(&m, &k, k.len, "ET_EXEC");

	make_guest_elf(&k);
	phdr(&k, 0)->p_type = PT_NOTE;
	phdr(&k, 1)->p_type = PT_NULL;
	expect_fail(&m, &k, k.len, "no PT_LOAD");

	make_guest_elf(&k);
	ehdr(&k)->e_phnum = 0;
	expect_fail(&m, &k, k.len, "program headers");

	make_guest_elf(&k);
	ehdr(&k)->e_phnum = 0xffff;
	expect_fail(&m, &k, k.len, "program headers");

	make_guest_elf(&k);
	ehdr(&k)->e_phentsize = 32;
	expect_fail(&m, &k, k.len, "program headers");

	make_guest_elf(&k);
	ehdr(&k)->e_phoff = k.len - 8;
	expect_fail(&m, &k, k.len, "past the end of the file");

	make_guest_elf(&k);
	ehdr(&k)->e_phoff = UINT64_MAX - 8;
	expect_fail(&m, &k, k.len, "past the end of the file");

	make_guest_elf(&k);
	ehdr(&k)->e_entry = 0x500000;
	expect_fail(&m, &k, k.len, "entry point");

	make_guest_elf(&k);
	expect_fail(&m, &k, 40, "truncated");
	expect_fail(&m, &k, 3, "neither a bzImage nor an ELF64 kernel");
	expect_fail(&m, &k, 0, "neither a bzImage nor an ELF64 kernel");
	expect_fail(&m, &k, sizeof(Elf64_Ehdr) + 10, "program headers");
	expect_fail(&m, &k, 0x3000 + 0x80, "past the end of the file");

	buf_free(&k);
	guest_mem_free(&m);
}
END_TEST

/* Only the first GiB is mapped: a segment above it could not run. */
START_TEST(test_elf_above_identity_map)
{
	const struct seg segs[] = { { PT_LOAD, GiB - 0x1000, 0x1000, 0x2000, 0x2000 } };
	struct guest_mem m;
	struct buf k = { 0 };

	alloc_mem(&m, 2 * GiB);
	make_elf(&k, segs, 1, GiB - 0x1000);
	expect_fail(&m, &k, k.len, "outside guest RAM");
	buf_free(&k);
	guest_mem_free(&m);
}
END_TEST

START_TEST(test_elf_cmdline_limit)
{
	char line[BOOT_ELF_CMDLINE_MAX + 2];
	struct circ_err err = { 0 };
	struct boot_info bi;
	struct guest_mem m;
	struct buf k = { 0 };

	alloc_mem(&m, 16 * MiB);
	make_guest_elf(&k);
	memset(line, 'x', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\0';
	ck_assert_int_eq(load_mem(&m, &k, line, &bi, &err), -1);
	ck_assert_err_has(&err, "command line");
	line[sizeof(line) - 2] = '\0';
	ck_assert_msg(load_mem(&m, &k, line, &bi, &err) == 0, "%s", err.msg);
	ck_assert_str_eq((const char *)gp(&m, BOOT_CMDLINE, sizeof(line) - 1), line);
	/* No command line at all is an empty one. */
	ck_assert_msg(load_mem(&m, &k, NULL, &bi, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(*gp(&m, BOOT_CMDLINE, 1), 0);
	buf_free(&k);
	guest_mem_free(&m);
}
END_TEST

START_TEST(test_elf_initrd_too_big)
{
	struct boot_config cfg = { .cpus = 1 };
	struct circ_err err = { 0 };
	struct boot_info bi;
	struct guest_mem m;
	struct buf k = { 0 };
	uint8_t *big = calloc(1, 16 * MiB);

	ck_assert_ptr_nonnull(big);
	alloc_mem(&m, 16 * MiB);
	make_guest_elf(&k);
	ck_assert_int_eq(boot_load_mem(&m, &cfg, k.data, k.len, big, 15 * MiB, &bi, &err), -1);
	ck_assert_str_eq(err.msg,
	                 "not enough guest memory for the kernel and initrd (need 17 MiB)");
	ck_assert_msg(boot_load_mem(&m, &cfg, k.data, k.len, big, 14 * MiB, &bi, &err) == 0, "%s",
	              err.msg);
	free(big);
	buf_free(&k);
	guest_mem_free(&m);
}
END_TEST

/* ---- synthetic bzImages ---- */

START_TEST(test_bzimage_parse)
{
	struct circ_err err = { 0 };
	struct bzimage_info bz;
	struct buf k = { 0 };

	make_bzimage(&k, 64 * 1024, 1);
	ck_assert_msg(boot_parse_bzimage(k.data, k.len, &bz, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(bz.version, 0x20f);
	ck_assert_uint_eq(bz.setup_size, FAKE_SETUP_SIZE);
	ck_assert_uint_eq(bz.hdr_end, 0x26c);
	ck_assert_uint_eq(bz.payload_len, 64 * 1024);
	ck_assert(bz.relocatable);
	ck_assert_uint_eq(bz.kernel_alignment, 0x200000);
	ck_assert_uint_eq(bz.pref_address, 0x1000000);
	ck_assert_uint_eq(bz.init_size, FAKE_INIT_SIZE);
	ck_assert_uint_eq(bz.initrd_addr_max, 0x7fffffff);
	ck_assert_uint_eq(bz.cmdline_size, 2047);
	/* setup_sects 0 means 4: one sector more, out of the kernel's slack. */
	k.data[HDR_SETUP_SECTS] = 0;
	put_u32le(k.data + HDR_SYSSIZE, (64 * 1024 - 512) / 16);
	ck_assert_msg(boot_parse_bzimage(k.data, k.len, &bz, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(bz.setup_size, 5 * 512);
	buf_free(&k);
}
END_TEST

START_TEST(test_bzimage_load)
{
	const char *cmdline = "console=ttyS0 reboot=k";
	struct circ_err err = { 0 };
	struct boot_info bi;
	struct guest_mem m;
	struct buf k = { 0 };
	const uint8_t *zp;

	alloc_mem(&m, 64 * MiB);
	make_bzimage(&k, 100000, 2);
	ck_assert_msg(load_mem(&m, &k, cmdline, &bi, &err) == 0, "%s", err.msg);
	ck_assert(bi.is_bzimage);
	ck_assert_uint_eq(bi.kernel_start, 0x1000000);
	ck_assert_uint_eq(bi.entry, 0x1000200);
	ck_assert_uint_eq(bi.kernel_end, 0x1000000 + FAKE_INIT_SIZE);
	ck_assert_int_eq(memcmp(gp(&m, bi.kernel_start, 100000), k.data + FAKE_SETUP_SIZE, 100000),
	                 0);
	zp = gp(&m, bi.boot_params, 4096);
	ck_assert_uint_eq(zp[HDR_LOADFLAGS], 0x81);
	ck_assert_uint_eq(rd16(zp + HDR_HEAP_END_PTR), 0xfe00);
	ck_assert_str_eq(
	    (const char *)gp(&m, get_u32le(zp + HDR_CMD_LINE_PTR), strlen(cmdline) + 1), cmdline);
	check_e820(&m, zp);
	check_gdt(&m, &bi);
	check_identity_map(&m, &bi);
	buf_free(&k);
	guest_mem_free(&m);
}
END_TEST

/* pref_address does not fit: a relocatable kernel goes to the lowest aligned address. */
START_TEST(test_bzimage_relocates_down)
{
	struct circ_err err = { 0 };
	struct boot_info bi;
	struct guest_mem m;
	struct buf k = { 0 };

	alloc_mem(&m, 16 * MiB);
	make_bzimage(&k, 4096, 3);
	ck_assert_msg(load_mem(&m, &k, "", &bi, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(bi.kernel_start, 0x200000);
	ck_assert_uint_eq(bi.entry, 0x200200);

	/* A pref_address that overflows when aligned is no different. */
	put_u64le(k.data + HDR_PREF_ADDRESS, UINT64_MAX - 5);
	ck_assert_msg(load_mem(&m, &k, "", &bi, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(bi.kernel_start, 0x200000);

	/* A non-relocatable one has no choice. */
	put_u64le(k.data + HDR_PREF_ADDRESS, 0x1000000);
	k.data[HDR_RELOCATABLE] = 0;
	expect_fail(&m, &k, k.len, "not enough guest memory for the kernel (need 20 MiB)");
	put_u64le(k.data + HDR_PREF_ADDRESS, 0x80000);
	expect_fail(&m, &k, k.len, "below 1 MiB");
	buf_free(&k);
	guest_mem_free(&m);
}
END_TEST

START_TEST(test_bzimage_bad_headers)
{
	struct guest_mem m;
	struct buf k = { 0 };

	alloc_mem(&m, 64 * MiB);

	make_bzimage(&k, 8192, 4);
	wr16(k.data + HDR_VERSION, 0x0200);
	expect_fail(&m, &k, k.len, "2.00 is older than 2.06");

	make_bzimage(&k, 8192, 4);
	wr16(k.data + HDR_VERSION, 0x0206);
	expect_fail(&m, &k, k.len, "no 64-bit entry point");

	make_bzimage(&k, 8192, 4);
	wr16(k.data + HDR_XLOADFLAGS, 0x2);
	expect_fail(&m, &k, k.len, "XLF_KERNEL_64");

	make_bzimage(&k, 8192, 4);
	k.data[HDR_LOADFLAGS] = 0;
	expect_fail(&m, &k, k.len, "zImage");

	make_bzimage(&k, 8192, 4);
	wr16(k.data + HDR_BOOT_FLAG, 0);
	expect_fail(&m, &k, k.len, "boot flag");

	make_bzimage(&k, 8192, 4);
	k.data[HDR_JUMP + 1] = 0x20; /* header ends before init_size */
	expect_fail(&m, &k, k.len, "setup header ends");

	make_bzimage(&k, 8192, 4);
	k.data[HDR_JUMP + 1] = 0xff; /* header runs past boot_params.hdr */
	expect_fail(&m, &k, k.len, "setup header ends");

	make_bzimage(&k, 8192, 4);
	k.data[HDR_SETUP_SECTS] = 0xff; /* setup claims more than the file has */
	expect_fail(&m, &k, k.len, "truncated");

	make_bzimage(&k, 200000, 4);
	k.data[HDR_SETUP_SECTS] = 0xff; /* ...or eats into the kernel */
	expect_fail(&m, &k, k.len, "truncated");

	make_bzimage(&k, 8192, 4);
	put_u32le(k.data + HDR_SYSSIZE, 0xffffffff);
	expect_fail(&m, &k, k.len, "truncated");

	make_bzimage(&k, 8192, 4);
	put_u32le(k.data + HDR_KERNEL_ALIGNMENT, 0x300000);
	expect_fail(&m, &k, k.len, "kernel_alignment");

	make_bzimage(&k, 8192, 4);
	put_u32le(k.data + HDR_KERNEL_ALIGNMENT, 0);
	expect_fail(&m, &k, k.len, "kernel_alignment");

	make_bzimage(&k, 8192, 4);
	put_u32le(k.data + HDR_INIT_SIZE, 0xffffffff);
	expect_fail(&m, &k, k.len, "not enough guest memory");

	make_bzimage(&k, 8192, 4);
	put_u32le(k.data + HDR_CMDLINE_SIZE, 4);
	expect_fail(&m, &k, k.len, "command line");

	buf_free(&k);
	guest_mem_free(&m);
}
END_TEST

START_TEST(test_bzimage_initrd_addr_max)
{
	struct boot_config cfg = { .cpus = 1 };
	struct circ_err err = { 0 };
	uint8_t initrd[5000] = { 1 };
	struct boot_info bi;
	struct guest_mem m;
	struct buf k = { 0 };

	alloc_mem(&m, 64 * MiB);
	make_bzimage(&k, 8192, 5);
	put_u32le(k.data + HDR_INITRD_ADDR_MAX, 0x2000000 - 1); /* 32 MiB */
	ck_assert_msg(boot_load_mem(&m, &cfg, k.data, k.len, initrd, sizeof(initrd), &bi, &err) ==
	                  0,
	              "%s", err.msg);
	ck_assert_uint_eq(bi.initrd_addr, 0x2000000 - 0x2000);
	ck_assert_uint_ge(bi.initrd_addr, bi.kernel_end);
	/* Too low a limit leaves no room above the kernel, even at its lowest. */
	put_u32le(k.data + HDR_INITRD_ADDR_MAX, 0x400000);
	ck_assert_int_eq(boot_load_mem(&m, &cfg, k.data, k.len, initrd, sizeof(initrd), &bi, &err),
	                 -1);
	ck_assert_err_has(&err, "initrd does not fit");
	buf_free(&k);
	guest_mem_free(&m);
}
END_TEST

START_TEST(test_random_bytes)
{
	struct guest_mem m;
	struct buf k = { 0 };

	alloc_mem(&m, 16 * MiB);
	for (uint64_t seed = 1; seed <= 8; seed++) {
		buf_reset(&k);
		ck_assert_int_eq(buf_append_zeros(&k, 64 * 1024), 0);
		fill_random(k.data, k.len, seed);
		expect_fail(&m, &k, k.len, "neither a bzImage nor an ELF64 kernel");
	}
	buf_free(&k);
	guest_mem_free(&m);
}
END_TEST

/* Every cut inside the headers and several in the payload fail cleanly. */
START_TEST(test_truncated)
{
	struct boot_config cfg = { .cpus = 1 };
	struct circ_err err;
	struct boot_info bi;
	struct guest_mem m;
	struct buf k = { 0 };

	alloc_mem(&m, 16 * MiB);
	make_bzimage(&k, 8192, 6);
	for (size_t len = 0; len < k.len; len += len < FAKE_SETUP_SIZE + 64 ? 1 : 509)
		ck_assert_msg(boot_load_mem(&m, &cfg, k.data, len, NULL, 0, &bi, &err) == -1,
		              "bzImage cut at %zu loaded", len);
	make_guest_elf(&k);
	/* Up to the end of the last PT_LOAD's bytes; the PT_NOTE after it is not loaded. */
	for (size_t len = 0; len < 0x3100; len++)
		ck_assert_msg(boot_load_mem(&m, &cfg, k.data, len, NULL, 0, &bi, &err) == -1,
		              "ELF cut at %zu loaded", len);
	buf_free(&k);
	guest_mem_free(&m);
}
END_TEST

/* Random damage to the headers: load or fail, never crash (run under ASan). */
START_TEST(test_mutated_headers)
{
	struct boot_config cfg = { .cmdline = "x", .cpus = 2 };
	struct circ_err err;
	struct boot_info bi;
	struct guest_mem m;
	struct buf orig = { 0 }, k = { 0 };
	uint8_t rnd[8];

	alloc_mem(&m, 32 * MiB);
	for (int kind = 0; kind < 2; kind++) {
		if (kind == 0)
			make_bzimage(&orig, 8192, 7);
		else
			make_guest_elf(&orig);
		for (uint64_t iter = 0; iter < 1000; iter++) {
			size_t span =
			    kind == 0 ? 0x80 : sizeof(Elf64_Ehdr) + 3 * sizeof(Elf64_Phdr);
			size_t base = kind == 0 ? HDR_SETUP_SECTS : 0;

			buf_reset(&k);
			ck_assert_int_eq(buf_append(&k, orig.data, orig.len), 0);
			fill_random(rnd, sizeof(rnd), iter * 2 + (uint64_t)kind);
			for (int j = 0; j < 1 + rnd[0] % 4; j++) {
				fill_random(rnd, sizeof(rnd),
				            iter * 131 + (uint64_t)j * 7 + (uint64_t)kind);
				k.data[base + get_u32le(rnd) % span] = rnd[4];
			}
			if (boot_load_mem(&m, &cfg, k.data, k.len, NULL, 0, &bi, &err) == 0) {
				ck_assert(bi.entry >= BOOT_HIMEM_START && bi.entry < GiB);
				ck_assert(bi.kernel_end <= m.low);
			} else {
				ck_assert(err.msg[0] != '\0');
			}
		}
	}
	buf_free(&orig);
	buf_free(&k);
	guest_mem_free(&m);
}
END_TEST

/* ---- files ---- */

START_TEST(test_files)
{
	char kpath[PATH_MAX], ipath[PATH_MAX], missing[PATH_MAX];
	struct boot_config cfg = { .cmdline = "c", .cpus = 1 };
	struct circ_err err = { 0 };
	uint8_t initrd[3000];
	struct boot_info bi;
	struct guest_mem m;
	struct buf k = { 0 };
	char want[PATH_MAX + 64];

	alloc_mem(&m, 16 * MiB);
	make_guest_elf(&k);
	test_path(kpath, "guest.elf");
	test_path(ipath, "initrd.img");
	test_path(missing, "missing");
	write_file(kpath, k.data, k.len);
	fill_random(initrd, sizeof(initrd), 9);
	write_file(ipath, initrd, sizeof(initrd));

	cfg.kernel_path = kpath;
	cfg.initrd_path = ipath;
	ck_assert_msg(boot_load(&m, &cfg, &bi, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(bi.entry, ELF_ENTRY);
	ck_assert_int_eq(memcmp(gp(&m, ELF_BASE, 0x1800), k.data + 0x1000, 0x1800), 0);
	ck_assert_int_eq(memcmp(gp(&m, bi.initrd_addr, sizeof(initrd)), initrd, sizeof(initrd)), 0);

	cfg.kernel_path = missing;
	ck_assert_int_eq(boot_load(&m, &cfg, &bi, &err), -1);
	snprintf(want, sizeof(want), "%s: No such file or directory", missing);
	ck_assert_str_eq(err.msg, want);
	ck_assert_int_eq(err.errnum, ENOENT);

	cfg.kernel_path = kpath;
	cfg.initrd_path = missing;
	ck_assert_int_eq(boot_load(&m, &cfg, &bi, &err), -1);
	ck_assert_str_eq(err.msg, want);

	cfg.kernel_path = test_dir();
	cfg.initrd_path = NULL;
	ck_assert_int_eq(boot_load(&m, &cfg, &bi, &err), -1);
	ck_assert_err_has(&err, "not a regular file");

	write_file(kpath, initrd, sizeof(initrd));
	cfg.kernel_path = kpath;
	ck_assert_int_eq(boot_load(&m, &cfg, &bi, &err), -1);
	snprintf(want, sizeof(want), "%s: neither a bzImage nor an ELF64 kernel", kpath);
	ck_assert_str_eq(err.msg, want);
	buf_free(&k);
	guest_mem_free(&m);
}
END_TEST

/* ---- Debian's kernel ---- */

static const char *debian_kernel(void)
{
	const char *path = getenv("CIRC_TEST_KERNEL");
	struct stat st;

	ck_assert_ptr_nonnull(path);
	ck_assert_msg(stat(path, &st) == 0, "CIRC_TEST_KERNEL=%s: %s", path, strerror(errno));
	return path;
}

START_TEST(test_debian_header)
{
	struct circ_err err = { 0 };
	struct bzimage_info bz;
	struct buf k = { 0 };

	read_file(debian_kernel(), &k);
	ck_assert_msg(boot_parse_bzimage(k.data, k.len, &bz, &err) == 0, "%s", err.msg);
	ck_assert_uint_ge(bz.version, 0x206);
	ck_assert(bz.relocatable);
	ck_assert(bz.xloadflags & 1);
	ck_assert(bz.loadflags & 1);
	ck_assert_uint_ge(bz.init_size, bz.payload_len);
	ck_assert_uint_ge(bz.cmdline_size, 255);
	ck_assert_uint_ge(bz.kernel_alignment, 4096);
	ck_assert_uint_eq(bz.kernel_alignment & (bz.kernel_alignment - 1), 0);
	ck_assert_uint_eq(bz.setup_size + bz.payload_len, k.len);
	fprintf(stderr, "boot: %s: protocol %u.%02u, pref_address 0x%llx, init_size %u KiB\n",
	        debian_kernel(), bz.version >> 8, bz.version & 0xff,
	        (unsigned long long)bz.pref_address, bz.init_size >> 10);
	buf_free(&k);
}
END_TEST

/* Bytes of the header the loader may change: type_of_loader .. cmd_line_ptr's fields. */
static bool loader_field(size_t off)
{
	return off == HDR_TYPE_OF_LOADER || off == HDR_LOADFLAGS ||
	       (off >= HDR_RAMDISK_IMAGE && off < HDR_RAMDISK_SIZE + 4) ||
	       (off >= HDR_HEAP_END_PTR && off < HDR_HEAP_END_PTR + 2) ||
	       (off >= HDR_CMD_LINE_PTR && off < HDR_CMD_LINE_PTR + 4);
}

static const uint64_t debian_sizes[] = { 256 * MiB, 1 * GiB, 5 * GiB };

START_TEST(test_debian_load)
{
	const char *cmdline = "console=ttyS0 reboot=k panic=1 root=/dev/vda rw";
	const struct mptable_pci_irq irqs[] = { { 1, 5 }, { 2, 6 } };
	char ipath[PATH_MAX];
	struct boot_config cfg = {
		.kernel_path = debian_kernel(),
		.initrd_path = ipath,
		.cmdline = cmdline,
		.cpus = 2,
		.pci_irqs = irqs,
		.n_pci_irqs = 2,
	};
	struct circ_err err = { 0 };
	struct bzimage_info bz;
	struct boot_info bi;
	struct guest_mem m;
	struct mp_seen s;
	struct buf k = { 0 }, initrd = { 0 };
	const uint8_t *zp;
	uint64_t size = debian_sizes[_i], limit, pa;

	read_file(cfg.kernel_path, &k);
	ck_assert_msg(boot_parse_bzimage(k.data, k.len, &bz, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(buf_append_zeros(&initrd, 3 * MiB + 123), 0);
	fill_random(initrd.data, initrd.len, 11);
	test_path(ipath, "initrd.img");
	write_file(ipath, initrd.data, initrd.len);

	alloc_mem(&m, size);
	ck_assert_msg(boot_load(&m, &cfg, &bi, &err) == 0, "%s", err.msg);
	ck_assert(bi.is_bzimage);
	ck_assert_uint_eq(bi.kernel_start, bz.pref_address);
	ck_assert_uint_eq(bi.kernel_start % bz.kernel_alignment, 0);
	ck_assert_uint_eq(bi.entry, bi.kernel_start + 0x200);
	ck_assert_uint_eq(bi.kernel_end, bi.kernel_start + bz.init_size);
	ck_assert_int_eq(
	    memcmp(gp(&m, bi.kernel_start, bz.payload_len), k.data + bz.setup_size, bz.payload_len),
	    0);

	zp = gp(&m, bi.boot_params, 4096);
	for (size_t off = BP_HDR; off < bz.hdr_end; off++)
		if (!loader_field(off))
			ck_assert_msg(zp[off] == k.data[off],
			              "zero page byte 0x%zx: 0x%02x, not 0x%02x", off, zp[off],
			              k.data[off]);
	for (size_t off = bz.hdr_end; off < HDR_END_MAX; off++)
		ck_assert_uint_eq(zp[off], 0);
	ck_assert_uint_eq(zp[HDR_TYPE_OF_LOADER], 0xff);
	ck_assert_uint_eq(zp[HDR_LOADFLAGS], k.data[HDR_LOADFLAGS] | 0x80);
	ck_assert_uint_eq(get_u32le(zp + HDR_CMD_LINE_PTR), BOOT_CMDLINE);
	ck_assert_str_eq(
	    (const char *)gp(&m, get_u32le(zp + HDR_CMD_LINE_PTR), strlen(cmdline) + 1), cmdline);

	check_e820(&m, zp);
	ck_assert(in_e820_ram(zp, bi.kernel_start, bi.kernel_end - bi.kernel_start));
	if (size > GUEST_MEM_HOLE_START) {
		ck_assert_uint_eq(zp[BP_E820_ENTRIES], 5);
		ck_assert(in_e820_ram(zp, GUEST_MEM_HIGH_START, size - GUEST_MEM_HOLE_START));
	}

	limit = (uint64_t)bz.initrd_addr_max + 1 < m.low ? (uint64_t)bz.initrd_addr_max + 1 : m.low;
	ck_assert_uint_eq(get_u32le(zp + HDR_RAMDISK_IMAGE), bi.initrd_addr);
	ck_assert_uint_eq(get_u32le(zp + HDR_RAMDISK_SIZE), initrd.len);
	ck_assert_uint_eq(bi.initrd_addr % 4096, 0);
	ck_assert_uint_ge(bi.initrd_addr, bi.kernel_start + bz.init_size);
	ck_assert_uint_le(bi.initrd_addr + initrd.len, limit);
	ck_assert_uint_gt(bi.initrd_addr + initrd.len, limit - 4096);
	ck_assert(in_e820_ram(zp, bi.initrd_addr, initrd.len));
	ck_assert_int_eq(memcmp(gp(&m, bi.initrd_addr, initrd.len), initrd.data, initrd.len), 0);

	check_identity_map(&m, &bi);
	check_gdt(&m, &bi);
	ck_assert(walk(&m, bi.cr3, bi.kernel_end - 1, &pa) && pa == bi.kernel_end - 1);
	parse_mptable(&m, &s);
	ck_assert_uint_eq(s.cpus, 2);
	ck_assert_int_eq(s.pci_gsi[1], 5);
	ck_assert_int_eq(s.pci_gsi[2], 6);

	buf_free(&k);
	buf_free(&initrd);
	guest_mem_free(&m);
}
END_TEST

static void sparse_file(const char *path, uint64_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
	ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
	close(fd);
}

START_TEST(test_debian_too_small)
{
	char ipath[PATH_MAX];
	struct boot_config cfg = { .kernel_path = debian_kernel(),
		                   .initrd_path = ipath,
		                   .cpus = 1 };
	struct circ_err err = { 0 };
	struct bzimage_info bz;
	struct boot_info bi;
	struct guest_mem m;
	struct buf k = { 0 };

	read_file(cfg.kernel_path, &k);
	ck_assert_msg(boot_parse_bzimage(k.data, k.len, &bz, &err) == 0, "%s", err.msg);
	test_path(ipath, "initrd.img");

	/* 16 MiB holds neither the kernel's init_size nor a large initrd. */
	alloc_mem(&m, 16 * MiB);
	sparse_file(ipath, 64 * MiB);
	ck_assert_int_eq(boot_load(&m, &cfg, &bi, &err), -1);
	ck_assert_err_has(&err, "not enough guest memory for the kernel and initrd (need ");
	cfg.initrd_path = NULL;
	ck_assert_int_eq(boot_load(&m, &cfg, &bi, &err), -1);
	ck_assert_err_has(&err, "not enough guest memory for the kernel (need ");
	guest_mem_free(&m);

	/* The kernel fits at pref_address only without the initrd: it moves down. */
	alloc_mem(&m, 160 * MiB);
	cfg.initrd_path = ipath;
	sparse_file(ipath, 160 * MiB - bz.pref_address - bz.init_size + 4 * MiB);
	ck_assert_msg(boot_load(&m, &cfg, &bi, &err) == 0, "%s", err.msg);
	ck_assert_uint_lt(bi.kernel_start, bz.pref_address);
	ck_assert_uint_eq(bi.kernel_start % bz.kernel_alignment, 0);
	ck_assert_uint_ge(bi.initrd_addr, bi.kernel_end);
	guest_mem_free(&m);

	/* And past what even the lowest address leaves, it is refused. */
	alloc_mem(&m, 128 * MiB);
	sparse_file(ipath, 100 * MiB);
	ck_assert_int_eq(boot_load(&m, &cfg, &bi, &err), -1);
	ck_assert_err_has(&err, "not enough guest memory for the kernel and initrd (need ");
	buf_free(&k);
	guest_mem_free(&m);
}
END_TEST

START_TEST(test_debian_damaged)
{
	struct guest_mem m;
	struct bzimage_info bz;
	struct circ_err err = { 0 };
	struct buf k = { 0 }, bad = { 0 };
	uint64_t syssize_end;
	size_t cuts[12];

	read_file(debian_kernel(), &k);
	ck_assert_msg(boot_parse_bzimage(k.data, k.len, &bz, &err) == 0, "%s", err.msg);
	syssize_end = bz.setup_size + (uint64_t)get_u32le(k.data + HDR_SYSSIZE) * 16;
	cuts[0] = 0;
	cuts[1] = 0x100;
	cuts[2] = HDR_HEADER + 2;
	cuts[3] = HDR_HEADER + 4;
	cuts[4] = 0x210;
	cuts[5] = bz.hdr_end - 1;
	cuts[6] = bz.setup_size - 1;
	cuts[7] = bz.setup_size;
	cuts[8] = bz.setup_size + 1;
	cuts[9] = bz.setup_size + 4096;
	cuts[10] = k.len / 2;
	cuts[11] = syssize_end - 1;
	alloc_mem(&m, 256 * MiB);
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++)
		expect_fail(&m, &k, cuts[i], cuts[i] < HDR_HEADER + 4 ? "neither" : "truncated");

	ck_assert_int_eq(buf_append(&bad, k.data, k.len), 0);
	wr16(bad.data + HDR_VERSION, 0x0200);
	expect_fail(&m, &bad, bad.len, "2.00");
	memcpy(bad.data, k.data, k.len);
	bad.data[HDR_SETUP_SECTS] = 0xff;
	expect_fail(&m, &bad, bad.len, "truncated");
	memcpy(bad.data, k.data, k.len);
	wr16(bad.data + HDR_XLOADFLAGS, 0);
	expect_fail(&m, &bad, bad.len, "64-bit");
	buf_free(&bad);
	buf_free(&k);
	guest_mem_free(&m);
}
END_TEST

Suite *boot_suite(void)
{
	Suite *s = suite_create("boot");
	TCase *mp = tcase_create("mptable");
	TCase *elf = tcase_create("elf");
	TCase *bz = tcase_create("bzimage");
	TCase *files = tcase_create("files");

	tcase_add_loop_test(mp, test_mptable_layout, 0,
	                    (int)(sizeof(mp_cpu_counts) / sizeof(mp_cpu_counts[0])));
	tcase_add_test(mp, test_mptable_no_pci);
	tcase_add_test(mp, test_mptable_rejects);
	tcase_add_test(mp, test_gdt_round_trip);
	suite_add_tcase(s, mp);

	tcase_add_test(elf, test_elf_load);
	tcase_add_test(elf, test_elf_reload);
	tcase_add_test(elf, test_elf_bad);
	tcase_add_test(elf, test_elf_above_identity_map);
	tcase_add_test(elf, test_elf_cmdline_limit);
	tcase_add_test(elf, test_elf_initrd_too_big);
	suite_add_tcase(s, elf);

	tcase_add_test(bz, test_bzimage_parse);
	tcase_add_test(bz, test_bzimage_load);
	tcase_add_test(bz, test_bzimage_relocates_down);
	tcase_add_test(bz, test_bzimage_bad_headers);
	tcase_add_test(bz, test_bzimage_initrd_addr_max);
	tcase_add_test(bz, test_random_bytes);
	tcase_add_test(bz, test_truncated);
	tcase_add_test(bz, test_mutated_headers);
	tcase_set_timeout(bz, 60);
	suite_add_tcase(s, bz);

	tcase_add_scratch(files);
	tcase_add_test(files, test_files);
	suite_add_tcase(s, files);

	/* Check has no skip: without the kernel these tests are left out, and say so. */
	if (getenv("CIRC_TEST_KERNEL")) {
		TCase *deb = tcase_create("debian");

		tcase_add_scratch(deb);
		tcase_add_test(deb, test_debian_header);
		tcase_add_loop_test(deb, test_debian_load, 0,
		                    (int)(sizeof(debian_sizes) / sizeof(debian_sizes[0])));
		tcase_add_test(deb, test_debian_too_small);
		tcase_add_test(deb, test_debian_damaged);
		tcase_set_timeout(deb, 60);
		suite_add_tcase(s, deb);
	} else {
		fprintf(stderr,
		        "SKIP: boot tests against a Debian kernel: CIRC_TEST_KERNEL not set\n");
	}
	return s;
}
