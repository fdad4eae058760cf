/* SPDX-License-Identifier: MIT */
/*
 * The boot loader: puts a kernel, its initrd and command line in guest memory
 * so that a vCPU can enter it directly in 64-bit mode, as Firecracker does
 * (Linux's 64-bit boot protocol, Documentation/arch/x86/boot.rst).
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
 * The kernel goes at or above 1 MiB, the initrd as high as the kernel allows
 * below the PCI hole.
 *
 * Two kinds of kernel:
 *   bzImage  (boot protocol >= 2.12 with XLF_KERNEL_64): the protected-mode
 *            part at pref_address (or lower, if relocatable and memory is
 *            short), entered at load address + 0x200.
 *   ELF64    (x86-64 ET_EXEC, e.g. vmlinux or tests/guest/): PT_LOAD segments
 *            at their p_paddr, at or above 1 MiB and inside the first GiB,
 *            entered at e_entry. RSI still points at a valid zero page.
 * Every length and offset in either file is untrusted and checked.
 */
#ifndef CIRC_HV_BOOT_H
#define CIRC_HV_BOOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "hv/acpi.h"
#include "hv/guest_mem.h"
#include "hv/mptable.h"

#define BOOT_GDT_ADDR        0x500u
#define BOOT_IDT_ADDR        0x520u
#define BOOT_ZERO_PAGE       0x7000u
#define BOOT_STACK_TOP       0x8ff0u
#define BOOT_PML4            0x9000u
#define BOOT_PDPT            0xa000u
#define BOOT_PD              0xb000u
#define BOOT_CMDLINE         0x20000u
#define BOOT_EBDA_START      0x9fc00u
#define BOOT_HIMEM_START     0x100000u
#define BOOT_IDENTITY_END    (1ull << 30) /* the page tables map [0, 1 GiB) */
#define BOOT_SEL_CODE        0x08
#define BOOT_SEL_DATA        0x10
#define BOOT_SEL_TSS         0x18
#define BOOT_GDT_ENTRIES     4
#define BOOT_ELF_CMDLINE_MAX 2047u /* x86 COMMAND_LINE_SIZE less the NUL */

/* struct boot_params (the zero page): offsets of the fields the loader fills. */
#define BP_ACPI_RSDP_ADDR    0x070
#define BP_EXT_RAMDISK_IMAGE 0x0c0
#define BP_EXT_RAMDISK_SIZE  0x0c4
#define BP_EXT_CMD_LINE_PTR  0x0c8
#define BP_E820_ENTRIES      0x1e8
#define BP_HDR               0x1f1 /* the setup header, at the same offset as in a bzImage */
#define BP_E820_TABLE        0x2d0
#define BP_E820_MAX          128
#define BP_E820_ENTRY_SIZE   20 /* u64 addr, u64 size, u32 type */

/* Setup header fields, as offsets in a bzImage and in the zero page. */
#define HDR_SETUP_SECTS      0x1f1
#define HDR_SYSSIZE          0x1f4
#define HDR_BOOT_FLAG        0x1fe
#define HDR_JUMP             0x200
#define HDR_HEADER           0x202
#define HDR_VERSION          0x206
#define HDR_TYPE_OF_LOADER   0x210
#define HDR_LOADFLAGS        0x211
#define HDR_RAMDISK_IMAGE    0x218
#define HDR_RAMDISK_SIZE     0x21c
#define HDR_HEAP_END_PTR     0x224
#define HDR_CMD_LINE_PTR     0x228
#define HDR_INITRD_ADDR_MAX  0x22c
#define HDR_KERNEL_ALIGNMENT 0x230
#define HDR_RELOCATABLE      0x234
#define HDR_XLOADFLAGS       0x236
#define HDR_CMDLINE_SIZE     0x238
#define HDR_PREF_ADDRESS     0x258
#define HDR_INIT_SIZE        0x260
#define HDR_END_MIN          0x264 /* through init_size: what a 64-bit kernel must have */
#define HDR_END_MAX          0x290 /* where boot_params.hdr's room ends */

#define E820_RAM      1
#define E820_RESERVED 2

struct boot_config {
	const char *kernel_path;
	const char *initrd_path; /* may be NULL */
	const char *cmdline;     /* may be NULL: empty */
	unsigned cpus;           /* 0 counts as 1 */
	/* PCI INTx routes for the MP table and the DSDT's _PRT. */
	const struct mptable_pci_irq *pci_irqs;
	size_t n_pci_irqs;
};

/* A segment register as the vCPU loads it (maps onto struct kvm_segment). */
struct boot_segment {
	uint64_t base;
	uint32_t limit; /* in bytes, granularity applied */
	uint16_t selector;
	uint8_t type, present, dpl, db, s, l, g, avl;
};

struct boot_info {
	uint64_t entry;       /* RIP */
	uint64_t boot_params; /* RSI: the zero page */
	uint64_t stack;       /* RSP */
	uint64_t cr3;         /* PML4 */
	uint64_t gdt_base;
	uint16_t gdt_limit;
	uint64_t idt_base;
	uint16_t idt_limit;
	struct boot_segment code, data, tss; /* CS; DS, ES, FS, GS, SS; TR */
	bool is_bzimage;
	uint64_t kernel_start, kernel_end; /* what the kernel may use, init_size included */
	uint64_t initrd_addr, initrd_size; /* 0, 0 without an initrd */
	uint64_t cmdline_addr;
};

/* The setup header of a bzImage, checked. */
struct bzimage_info {
	uint16_t version;     /* 0x20f is 2.15 */
	size_t setup_size;    /* bytes before the protected-mode kernel */
	size_t hdr_end;       /* 0x202 + the jump's offset byte */
	uint64_t payload_len; /* the protected-mode kernel's bytes in the file */
	uint8_t loadflags;
	uint16_t xloadflags;
	bool relocatable;
	uint32_t kernel_alignment;
	uint64_t pref_address;
	uint32_t init_size;
	uint32_t initrd_addr_max;
	uint32_t cmdline_size; /* longest command line, NUL excluded */
};

/*
 * Loads cfg's kernel and initrd, writes the command line, zero page (with
 * its e820 map), page tables, GDT, ACPI and MP tables, and says how to start the
 * BSP. Other vCPUs start in real mode and wait for the BSP's INIT/SIPI.
 */
CIRC_MUST_CHECK int boot_load(struct guest_mem *m, const struct boot_config *cfg,
                              struct boot_info *out, struct circ_err *err);

/* boot_load from bytes in memory (cfg's paths only name them in errors); for tests and fuzzing. */
CIRC_MUST_CHECK int boot_load_mem(struct guest_mem *m, const struct boot_config *cfg,
                                  const void *kernel, size_t kernel_len, const void *initrd,
                                  size_t initrd_len, struct boot_info *out, struct circ_err *err);

/* Checks a bzImage's setup header; img is the file's first len bytes, len its size. */
CIRC_MUST_CHECK int boot_parse_bzimage(const uint8_t *img, size_t len, struct bzimage_info *out,
                                       struct circ_err *err);

/* A GDT descriptor from Firecracker's compact flags (e.g. 0xa09b), and back. */
uint64_t boot_gdt_entry(uint16_t flags, uint32_t base, uint32_t limit);
struct boot_segment boot_segment_from_gdt(uint64_t entry, uint16_t selector);

#endif
