/* SPDX-License-Identifier: MIT */
/*
 * The boot loader on bzImages: synthetic ones (always), and Debian's stock
 * kernel when CIRC_TEST_KERNEL names its vmlinuz (tests/unit/fetch-kernel.sh
 * fetches it; tests/run.sh sets the variable). The MP table and ELF guests
 * are tested in boot_mptable_test.c and boot_elf_test.c.
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
#include "tests/unit/boot_fixture.h"
#include "tests/unit/suites.h"
#include "tests/unit/testutil.h"

/* ---- synthetic bzImages ---- */

/* Synthetic bzImage: 3 setup sectors, then the protected-mode kernel. */
#define FAKE_SETUP_SECTS 3
#define FAKE_SETUP_SIZE  ((FAKE_SETUP_SECTS + 1) * 512)
#define FAKE_INIT_SIZE   (4 * MiB)

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
	struct boot_config cfg = { 0 };
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
	struct boot_config cfg = { 0 };
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
	struct boot_config cfg = { .cmdline = "x" };
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
	};
	struct circ_err err = { 0 };
	struct bzimage_info bz;
	struct boot_info bi;
	struct guest_mem m;
	struct mp_seen s;
	struct acpi_seen as;
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
	/* As hv does: the machine's tables, then the kernel, which finds them. */
	ck_assert_msg(x86_write_firmware_tables(&m, 2, irqs, 2, &err) == 0, "%s", err.msg);
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
	parse_acpi(&m, &as);
	ck_assert_uint_eq(as.lapics, 2);
	ck_assert_uint_eq(get_u64le(zp + BP_ACPI_RSDP_ADDR), as.rsdp);

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
	struct boot_config cfg = { .kernel_path = debian_kernel(), .initrd_path = ipath };
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

START_TEST(test_debian_skipped)
{
	fprintf(stderr, "SKIP: boot tests against a Debian kernel: CIRC_TEST_KERNEL not set\n");
}
END_TEST

Suite *boot_suite(void)
{
	Suite *s = suite_create("boot");
	TCase *bz = tcase_create("bzimage");

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

	/*
	 * Check has no skip: without the kernel one test stands for these and
	 * says so, and tests/run.sh counts it as skipped.
	 */
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
		TCase *deb = tcase_create("debian");

		tcase_add_test(deb, test_debian_skipped);
		suite_add_tcase(s, deb);
	}
	return s;
}
