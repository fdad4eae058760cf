/* SPDX-License-Identifier: MIT */
/*
 * The boot loader on ELF guests: synthetic ELF64 executables loaded into
 * guest memory, damaged ones refused, and kernel and initrd read from files.
 */
#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hv/boot.h"
#include "tests/unit/boot_fixture.h"
#include "tests/unit/suites.h"
#include "tests/unit/testutil.h"

/* ---- ELF guests ---- */

static Elf64_Ehdr *ehdr(struct buf *b)
{
	return (Elf64_Ehdr *)b->data;
}

static Elf64_Phdr *phdr(struct buf *b, unsigned i)
{
	return (Elf64_Phdr *)(b->data + sizeof(Elf64_Ehdr)) + i;
}

START_TEST(test_elf_load)
{
	const char *cmdline = "console=ttyS0 hello";
	struct boot_config cfg = { .cmdline = cmdline };
	struct circ_err err = { 0 };
	uint8_t initrd[10000];
	struct boot_info bi;
	struct guest_mem m;
	struct mp_seen s;
	struct acpi_seen as;
	struct buf k = { 0 };
	const uint8_t *zp, *seg;

	alloc_mem(&m, 64 * MiB);
	/* Stale bytes where the bss goes: the loader must clear them. */
	memset(gp(&m, ELF_BASE, 0x10000), 0xaa, 0x10000);
	make_guest_elf(&k);
	fill_random(initrd, sizeof(initrd), 7);
	ck_assert_msg(x86_write_firmware_tables(&m, 4, NULL, 0, &err) == 0, "%s", err.msg);
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
	/* The ACPI tables say the same, and boot_params says where they are. */
	parse_acpi(&m, &as);
	ck_assert_uint_eq(as.lapics, 4);
	ck_assert_uint_eq(get_u64le(zp + BP_ACPI_RSDP_ADDR), as.rsdp);
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
	struct boot_config cfg = { 0 };
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

/* ---- files ---- */

START_TEST(test_files)
{
	char kpath[PATH_MAX], ipath[PATH_MAX], missing[PATH_MAX];
	struct boot_config cfg = { .cmdline = "c" };
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

Suite *boot_elf_suite(void)
{
	Suite *s = suite_create("boot-elf");
	TCase *elf = tcase_create("elf");
	TCase *files = tcase_create("files");

	tcase_add_test(elf, test_elf_load);
	tcase_add_test(elf, test_elf_reload);
	tcase_add_test(elf, test_elf_bad);
	tcase_add_test(elf, test_elf_above_identity_map);
	tcase_add_test(elf, test_elf_cmdline_limit);
	tcase_add_test(elf, test_elf_initrd_too_big);
	suite_add_tcase(s, elf);

	tcase_add_scratch(files);
	tcase_add_test(files, test_files);
	suite_add_tcase(s, files);
	return s;
}
