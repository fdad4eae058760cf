/* SPDX-License-Identifier: MIT */
/*
 * The boot loader: puts a kernel, its initrd and command line in guest memory
 * so that a vCPU can enter it directly in 64-bit mode, as Firecracker does
 * (Linux's 64-bit boot protocol, Documentation/arch/x86/boot.rst).
 *
 * The machine around it (GDT, page tables, e820 map, the firmware's
 * tables) and the layout below 1 MiB are hv/x86.h's.
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

#include <asm/bootparam.h>

#include "util/err.h"
#include "hv/guest_mem.h"
#include "hv/x86.h"

#define BOOT_ELF_CMDLINE_MAX 2047u /* x86 COMMAND_LINE_SIZE less the NUL */

/*
 * Offsets of the zero page's fields (struct boot_params, Linux's uapi
 * <asm/bootparam.h>) and of the setup header's, which sits at the same
 * offset in a bzImage as in the zero page. The loader reads and writes
 * them as bytes: a bzImage's header is untrusted and may be short.
 */
#define BP_ACPI_RSDP_ADDR    offsetof(struct boot_params, acpi_rsdp_addr)
#define BP_HDR               offsetof(struct boot_params, hdr)
#define HDR_OFF(field)       (BP_HDR + offsetof(struct setup_header, field))
#define HDR_SETUP_SECTS      HDR_OFF(setup_sects)
#define HDR_SYSSIZE          HDR_OFF(syssize)
#define HDR_BOOT_FLAG        HDR_OFF(boot_flag)
#define HDR_JUMP             HDR_OFF(jump)
#define HDR_HEADER           HDR_OFF(header)
#define HDR_VERSION          HDR_OFF(version)
#define HDR_TYPE_OF_LOADER   HDR_OFF(type_of_loader)
#define HDR_LOADFLAGS        HDR_OFF(loadflags)
#define HDR_RAMDISK_IMAGE    HDR_OFF(ramdisk_image)
#define HDR_RAMDISK_SIZE     HDR_OFF(ramdisk_size)
#define HDR_HEAP_END_PTR     HDR_OFF(heap_end_ptr)
#define HDR_CMD_LINE_PTR     HDR_OFF(cmd_line_ptr)
#define HDR_INITRD_ADDR_MAX  HDR_OFF(initrd_addr_max)
#define HDR_KERNEL_ALIGNMENT HDR_OFF(kernel_alignment)
#define HDR_RELOCATABLE      HDR_OFF(relocatable_kernel)
#define HDR_XLOADFLAGS       HDR_OFF(xloadflags)
#define HDR_CMDLINE_SIZE     HDR_OFF(cmdline_size)
#define HDR_PREF_ADDRESS     HDR_OFF(pref_address)
#define HDR_INIT_SIZE        HDR_OFF(init_size)
/* Through init_size: what a 64-bit kernel's header must have. */
#define HDR_END_MIN (HDR_INIT_SIZE + sizeof(((struct setup_header *)0)->init_size))
/* Where the zero page's room for the header ends. */
#define HDR_END_MAX offsetof(struct boot_params, edd_mbr_sig_buffer)

struct boot_config {
	const char *kernel_path;
	const char *initrd_path; /* may be NULL */
	const char *cmdline;     /* may be NULL: empty */
};

struct boot_info {
	uint64_t entry;       /* RIP */
	uint64_t boot_params; /* RSI: the zero page */
	uint64_t stack;       /* RSP */
	uint64_t cr3;         /* PML4 */
	struct x86_tables tables;
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
 * Loads cfg's kernel and initrd, writes the command line, the zero page
 * (with the e820 map and where the ACPI tables are), page tables and GDT,
 * and says how to start the BSP. Other vCPUs start in real mode and wait
 * for the BSP's INIT/SIPI. The firmware's tables are the VM's to write
 * (x86_write_firmware_tables), before or after: the zero page points the
 * kernel at the ACPI tables' fixed address whether or not they are there.
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

#endif
