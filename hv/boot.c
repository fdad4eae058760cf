/* SPDX-License-Identifier: MIT */
#include "hv/boot.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/buf.h"

/* ELF headers are read with memcpy into <elf.h>'s structs: hv only runs on x86-64. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "hv assumes a little-endian host");

/* The uapi's offsets are the boot protocol's (Documentation/arch/x86/boot.rst). */
_Static_assert(BP_HDR == 0x1f1 && HDR_HEADER == 0x202 && HDR_INIT_SIZE == 0x260, "setup header");
_Static_assert(HDR_END_MIN == 0x264 && HDR_END_MAX == 0x290, "setup header's room");
_Static_assert(BP_ACPI_RSDP_ADDR == 0x070 && BP_E820_TABLE == 0x2d0, "zero page");

#define PAGE_SIZE         0x1000ull
#define CMDLINE_AREA      (BOOT_EBDA_START - BOOT_CMDLINE)
#define HEAD_MAX          4096u /* enough for the setup header and the ELF header */
#define ELF_MAX_PHDRS     64u
#define ELF_INITRD_LIMIT  0x80000000ull /* vmlinux's own initrd_addr_max + 1 */
#define ELF_KERNEL_ALIGN  0x1000000u    /* what Firecracker reports for vmlinux */
#define BZ_ENTRY_64       0x200u        /* startup_64 is 512 bytes into the protected-mode kernel */
#define BZ_HEAP_END       0xfe00u
#define BZ_LOADER_UNKNOWN 0xff

/* A kernel or initrd: an open file or bytes in memory. */
struct src {
	const char *name;
	int fd; /* -1: data */
	const uint8_t *data;
	uint64_t len;
};

/* Where everything goes, decided before anything is written. */
struct plan {
	bool bz;
	struct bzimage_info bzi;
	uint64_t entry;
	uint64_t kernel_start, kernel_end;
	uint64_t initrd_addr, initrd_len;
	uint64_t initrd_limit; /* one past the highest byte the initrd may use */
	uint32_t cmdline_max;
	Elf64_Phdr phdrs[ELF_MAX_PHDRS];
	unsigned nphdrs;
};

/* x rounded up to a power of two a; false if that overflows. */
static bool align_up(uint64_t x, uint64_t a, uint64_t *out)
{
	if (x > UINT64_MAX - (a - 1))
		return false;
	*out = (x + a - 1) & ~(a - 1);
	return true;
}

static int src_read(const struct src *s, uint64_t off, void *dst, uint64_t n, struct circ_err *err)
{
	uint8_t *p = dst;

	if (off > s->len || n > s->len - off)
		return err_set(err, EINVAL,
		               "%s: truncated: %llu bytes at offset %llu are past its end", s->name,
		               (unsigned long long)n, (unsigned long long)off);
	if (s->fd < 0) {
		if (n)
			memcpy(dst, s->data + off, n);
		return 0;
	}
	while (n) {
		size_t chunk = n > (1u << 30) ? 1u << 30 : (size_t)n;
		ssize_t got = pread(s->fd, p, chunk, (off_t)off);

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return err_sys(err, errno, "reading %s", s->name);
		if (got == 0)
			return err_set(err, EIO, "%s: shrank while being read", s->name);
		p += got;
		off += (uint64_t)got;
		n -= (uint64_t)got;
	}
	return 0;
}

static int parse_bzimage(const uint8_t *head, size_t head_len, uint64_t file_len,
                         struct bzimage_info *out, struct circ_err *err)
{
	uint64_t syssize_bytes;
	unsigned setup_sects;

	memset(out, 0, sizeof(*out));
	if (head_len < HDR_HEADER + 4 || memcmp(head + HDR_HEADER, "HdrS", 4))
		return err_set(err, EINVAL, "no bzImage setup header (HdrS)");
	if (head_len < HDR_VERSION + 2)
		return err_set(err, EINVAL, "truncated: %zu bytes end inside the setup header",
		               head_len);
	if (get_u16le(head + HDR_BOOT_FLAG) != 0xaa55)
		return err_set(err, EINVAL, "bzImage boot flag is 0x%04x, not 0xaa55",
		               get_u16le(head + HDR_BOOT_FLAG));
	out->version = get_u16le(head + HDR_VERSION);
	if (out->version < 0x206)
		return err_set(err, EINVAL, "boot protocol %u.%02u is older than 2.06",
		               out->version >> 8, out->version & 0xff);
	/* xloadflags, which declares the 64-bit entry point, arrived in 2.12. */
	if (out->version < 0x20c)
		return err_set(
		    err, EINVAL,
		    "boot protocol %u.%02u has no 64-bit entry point (2.12 or later needed)",
		    out->version >> 8, out->version & 0xff);
	out->hdr_end = HDR_HEADER + (size_t)head[HDR_JUMP + 1];
	if (out->hdr_end < HDR_END_MIN || out->hdr_end > HDR_END_MAX)
		return err_set(err, EINVAL, "setup header ends at 0x%zx, outside 0x%zx..0x%zx",
		               out->hdr_end, (size_t)HDR_END_MIN, (size_t)HDR_END_MAX);
	if (out->hdr_end > head_len)
		return err_set(err, EINVAL, "truncated: %zu bytes end inside the setup header",
		               head_len);
	setup_sects = head[HDR_SETUP_SECTS] ? head[HDR_SETUP_SECTS] : 4;
	out->setup_size = ((size_t)setup_sects + 1) * 512;
	if (out->hdr_end > out->setup_size)
		return err_set(err, EINVAL, "setup header ends past the %zu-byte setup code",
		               out->setup_size);
	if (file_len <= out->setup_size)
		return err_set(err, EINVAL,
		               "truncated: %llu bytes, no room for the kernel after %zu bytes of "
		               "setup code",
		               (unsigned long long)file_len, out->setup_size);
	out->payload_len = file_len - out->setup_size;
	syssize_bytes = (uint64_t)get_u32le(head + HDR_SYSSIZE) * 16;
	if (out->payload_len < syssize_bytes)
		return err_set(err, EINVAL,
		               "truncated: the protected-mode kernel has %llu bytes, the header "
		               "says %llu",
		               (unsigned long long)out->payload_len,
		               (unsigned long long)syssize_bytes);
	out->loadflags = head[HDR_LOADFLAGS];
	if (!(out->loadflags & LOADED_HIGH))
		return err_set(err, EINVAL,
		               "a zImage (not loaded high) cannot boot in 64-bit mode");
	out->xloadflags = get_u16le(head + HDR_XLOADFLAGS);
	if (!(out->xloadflags & XLF_KERNEL_64))
		return err_set(err, EINVAL, "the kernel has no 64-bit entry point (XLF_KERNEL_64)");
	out->relocatable = head[HDR_RELOCATABLE] != 0;
	out->kernel_alignment = get_u32le(head + HDR_KERNEL_ALIGNMENT);
	if (out->relocatable && (out->kernel_alignment < PAGE_SIZE ||
	                         (out->kernel_alignment & (out->kernel_alignment - 1))))
		return err_set(err, EINVAL, "kernel_alignment 0x%x is not a power of two >= 4 KiB",
		               out->kernel_alignment);
	out->pref_address = get_u64le(head + HDR_PREF_ADDRESS);
	out->init_size = get_u32le(head + HDR_INIT_SIZE);
	out->initrd_addr_max = get_u32le(head + HDR_INITRD_ADDR_MAX);
	out->cmdline_size = get_u32le(head + HDR_CMDLINE_SIZE);
	return 0;
}

int boot_parse_bzimage(const uint8_t *img, size_t len, struct bzimage_info *out,
                       struct circ_err *err)
{
	return parse_bzimage(img, len < HEAD_MAX ? len : HEAD_MAX, len, out, err);
}

/*
 * The kernel at load, then the initrd as high as allowed but above the
 * kernel. False if either does not fit.
 */
static bool place(const struct guest_mem *m, struct plan *p, uint64_t load, uint64_t footprint)
{
	uint64_t limit = m->low < BOOT_IDENTITY_END ? m->low : BOOT_IDENTITY_END;
	uint64_t kend, top;

	if (load < BOOT_HIMEM_START || load > limit || footprint > limit - load)
		return false;
	p->kernel_start = load;
	p->kernel_end = load + footprint;
	p->initrd_addr = 0;
	if (!p->initrd_len)
		return true;
	if (!align_up(p->kernel_end, PAGE_SIZE, &kend))
		return false;
	top = p->initrd_limit < m->low ? p->initrd_limit : m->low;
	if (p->initrd_len > top)
		return false;
	p->initrd_addr = (top - p->initrd_len) & ~(PAGE_SIZE - 1);
	return p->initrd_addr >= kend;
}

/*
 * Names what stopped the kernel and initrd from fitting when the kernel sits
 * at its lowest address and ends at lowest_end.
 */
static int no_room(const struct guest_mem *m, const struct src *k, const struct plan *p,
                   uint64_t lowest_end, struct circ_err *err)
{
	const uint64_t mib = 1ull << 20;
	uint64_t need = lowest_end;

	if (p->initrd_len) {
		/* Saturating: the lengths may be absurd. */
		if (need > UINT64_MAX - PAGE_SIZE - p->initrd_len)
			need = UINT64_MAX - mib;
		else
			need = ((need + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)) + p->initrd_len;
	}
	if (need > m->low)
		return err_set(err, ENOMEM,
		               "not enough guest memory for the kernel%s (need %llu MiB)",
		               p->initrd_len ? " and initrd" : "",
		               (unsigned long long)(need / mib + (need % mib ? 1 : 0)));
	if (lowest_end > BOOT_IDENTITY_END)
		return err_set(
		    err, ENOMEM,
		    "%s: the kernel ends at %llu MiB, past the identity-mapped first GiB", k->name,
		    (unsigned long long)((lowest_end + mib - 1) / mib));
	return err_set(err, ENOMEM,
	               "%s: the %llu KiB initrd does not fit between the kernel's end and its "
	               "initrd limit at %llu MiB",
	               k->name, (unsigned long long)(p->initrd_len >> 10),
	               (unsigned long long)(p->initrd_limit >> 20));
}

static int plan_bzimage(const struct guest_mem *m, const struct src *k, const uint8_t *head,
                        size_t head_len, struct plan *p, struct circ_err *err)
{
	struct bzimage_info *bz = &p->bzi;
	uint64_t footprint, pref, lowest = BOOT_HIMEM_START;

	if (parse_bzimage(head, head_len, k->len, bz, err))
		return err_prefix(err, "%s", k->name);
	p->bz = true;
	p->cmdline_max = bz->cmdline_size < CMDLINE_AREA - 1 ? bz->cmdline_size : CMDLINE_AREA - 1;
	p->initrd_limit = (uint64_t)bz->initrd_addr_max + 1;
	footprint = bz->init_size > bz->payload_len ? bz->init_size : bz->payload_len;
	pref = bz->pref_address;
	if (!bz->relocatable) {
		if (pref < BOOT_HIMEM_START)
			return err_set(err, EINVAL,
			               "%s: a non-relocatable kernel at 0x%llx, below 1 MiB",
			               k->name, (unsigned long long)pref);
		lowest = pref;
	} else {
		if (pref < BOOT_HIMEM_START)
			pref = BOOT_HIMEM_START;
		if (!align_up(pref, bz->kernel_alignment, &pref))
			pref = UINT64_MAX;
		/* 1 MiB rounded up to an alignment of at most 2^31 cannot overflow. */
		(void)align_up(BOOT_HIMEM_START, bz->kernel_alignment, &lowest);
	}
	/* Prefer pref_address; a relocatable kernel may go lower to make room. */
	if (pref != UINT64_MAX && place(m, p, pref, footprint))
		goto placed;
	if (lowest != pref && place(m, p, lowest, footprint))
		goto placed;
	return no_room(m, k, p, lowest > UINT64_MAX - footprint ? UINT64_MAX : lowest + footprint,
	               err);
placed:
	p->entry = p->kernel_start + BZ_ENTRY_64;
	return 0;
}

static int plan_elf(const struct guest_mem *m, const struct src *k, const uint8_t *head,
                    size_t head_len, struct plan *p, struct circ_err *err)
{
	uint64_t ram_end = m->low < BOOT_IDENTITY_END ? m->low : BOOT_IDENTITY_END;
	uint64_t start = UINT64_MAX, end = 0;
	bool entry_ok = false;
	Elf64_Ehdr eh;

	if (head_len < sizeof(eh))
		return err_set(err, EINVAL, "%s: truncated ELF header", k->name);
	memcpy(&eh, head, sizeof(eh));
	if (eh.e_ident[EI_CLASS] != ELFCLASS64)
		return err_set(err, EINVAL, "%s: %s ELF: only ELF64 x86-64 kernels boot", k->name,
		               eh.e_ident[EI_CLASS] == ELFCLASS32 ? "a 32-bit"
		                                                  : "an unknown-class");
	if (eh.e_ident[EI_DATA] != ELFDATA2LSB || eh.e_machine != EM_X86_64)
		return err_set(err, EINVAL, "%s: ELF machine %u is not little-endian x86-64",
		               k->name, eh.e_machine);
	if (eh.e_type != ET_EXEC)
		return err_set(err, EINVAL, "%s: ELF type %u is not an executable (ET_EXEC)",
		               k->name, eh.e_type);
	if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > ELF_MAX_PHDRS)
		return err_set(
		    err, EINVAL, "%s: %u program headers of %u bytes (1..%u of %zu expected)",
		    k->name, eh.e_phnum, eh.e_phentsize, ELF_MAX_PHDRS, sizeof(Elf64_Phdr));
	if (eh.e_phoff > k->len || (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > k->len - eh.e_phoff)
		return err_set(err, EINVAL, "%s: ELF program headers run past the end of the file",
		               k->name);
	if (src_read(k, eh.e_phoff, p->phdrs, (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr), err))
		return -1;
	p->nphdrs = eh.e_phnum;
	for (unsigned i = 0; i < p->nphdrs; i++) {
		const Elf64_Phdr *ph = &p->phdrs[i];

		if (ph->p_type != PT_LOAD || ph->p_memsz == 0)
			continue;
		if (ph->p_filesz > ph->p_memsz)
			return err_set(err, EINVAL,
			               "%s: ELF segment %u has %llu bytes in the file, more than "
			               "its %llu in memory",
			               k->name, i, (unsigned long long)ph->p_filesz,
			               (unsigned long long)ph->p_memsz);
		if (ph->p_offset > k->len || ph->p_filesz > k->len - ph->p_offset)
			return err_set(err, EINVAL,
			               "%s: ELF segment %u runs past the end of the file", k->name,
			               i);
		/* Below 1 MiB are the loader's own structures; past 1 GiB, no page tables. */
		if (ph->p_paddr < BOOT_HIMEM_START || ph->p_paddr > ram_end ||
		    ph->p_memsz > ram_end - ph->p_paddr ||
		    !guest_mem_ptr(m, ph->p_paddr, ph->p_memsz))
			return err_set(
			    err, ERANGE,
			    "%s: ELF segment %u at 0x%llx (+0x%llx) is outside guest RAM "
			    "from 1 MiB to %llu MiB",
			    k->name, i, (unsigned long long)ph->p_paddr,
			    (unsigned long long)ph->p_memsz, (unsigned long long)(ram_end >> 20));
		if (ph->p_paddr < start)
			start = ph->p_paddr;
		if (ph->p_paddr + ph->p_memsz > end)
			end = ph->p_paddr + ph->p_memsz;
		if (eh.e_entry >= ph->p_paddr && eh.e_entry - ph->p_paddr < ph->p_memsz)
			entry_ok = true;
	}
	if (!end)
		return err_set(err, EINVAL, "%s: no PT_LOAD segment", k->name);
	if (!entry_ok)
		return err_set(err, EINVAL, "%s: entry point 0x%llx is in no loaded segment",
		               k->name, (unsigned long long)eh.e_entry);
	p->entry = eh.e_entry;
	p->cmdline_max = BOOT_ELF_CMDLINE_MAX;
	p->initrd_limit = ELF_INITRD_LIMIT;
	if (!place(m, p, start, end - start))
		return no_room(m, k, p, end, err);
	return 0;
}

static void write_zero_page(const struct guest_mem *m, uint8_t *zp, const struct plan *p,
                            const uint8_t *head)
{
	memset(zp, 0, PAGE_SIZE);
	if (p->bz) {
		memcpy(zp + BP_HDR, head + BP_HDR, p->bzi.hdr_end - BP_HDR);
		zp[HDR_LOADFLAGS] |= CAN_USE_HEAP;
		put_u16le(zp + HDR_HEAP_END_PTR, BZ_HEAP_END);
	} else {
		/* What a vmlinux reads of the header when entered at startup_64. */
		put_u16le(zp + HDR_BOOT_FLAG, 0xaa55);
		memcpy(zp + HDR_HEADER, "HdrS", 4);
		put_u32le(zp + HDR_KERNEL_ALIGNMENT, ELF_KERNEL_ALIGN);
		put_u32le(zp + HDR_CMDLINE_SIZE, BOOT_ELF_CMDLINE_MAX);
	}
	zp[HDR_TYPE_OF_LOADER] = BZ_LOADER_UNKNOWN;
	put_u32le(zp + HDR_CMD_LINE_PTR, BOOT_CMDLINE);
	put_u32le(zp + HDR_RAMDISK_IMAGE, (uint32_t)p->initrd_addr);
	put_u32le(zp + HDR_RAMDISK_SIZE, (uint32_t)p->initrd_len);
	/* Saves Linux the scan of the BIOS area (boot protocol 2.14); older kernels still scan. */
	put_u64le(zp + BP_ACPI_RSDP_ADDR, ACPI_START);
	x86_write_e820(m, zp);
}

static int load_kernel(struct guest_mem *m, const struct src *k, const struct plan *p,
                       struct circ_err *err)
{
	if (p->bz) {
		void *dst = guest_mem_ptr(m, p->kernel_start, p->bzi.payload_len);

		if (!dst)
			return err_set(err, ERANGE, "%s: kernel outside guest RAM", k->name);
		return src_read(k, p->bzi.setup_size, dst, p->bzi.payload_len, err);
	}
	for (unsigned i = 0; i < p->nphdrs; i++) {
		const Elf64_Phdr *ph = &p->phdrs[i];
		uint8_t *dst;

		if (ph->p_type != PT_LOAD || ph->p_memsz == 0)
			continue;
		dst = guest_mem_ptr(m, ph->p_paddr, ph->p_memsz);
		if (!dst)
			return err_set(err, ERANGE, "%s: ELF segment %u outside guest RAM", k->name,
			               i);
		if (src_read(k, ph->p_offset, dst, ph->p_filesz, err))
			return -1;
		memset(dst + ph->p_filesz, 0, ph->p_memsz - ph->p_filesz);
	}
	return 0;
}

static int boot_load_src(struct guest_mem *m, const struct boot_config *cfg, const struct src *k,
                         const struct src *initrd, struct boot_info *out, struct circ_err *err)
{
	const char *cmdline = cfg->cmdline ? cfg->cmdline : "";
	size_t head_len = k->len < HEAD_MAX ? (size_t)k->len : HEAD_MAX, cmdline_len;
	uint8_t head[HEAD_MAX], *low;
	struct plan p;

	memset(out, 0, sizeof(*out));
	memset(&p, 0, sizeof(p));
	if (!m->host || m->low > m->size || m->low <= BOOT_HIMEM_START ||
	    !(low = guest_mem_ptr(m, 0, BOOT_HIMEM_START)))
		return err_set(err, EINVAL, "guest memory must extend past 1 MiB");
	if (src_read(k, 0, head, head_len, err))
		return -1;
	p.initrd_len = initrd ? initrd->len : 0;
	if (head_len >= SELFMAG && !memcmp(head, ELFMAG, SELFMAG)) {
		if (plan_elf(m, k, head, head_len, &p, err))
			return -1;
	} else if (head_len >= HDR_HEADER + 4 && !memcmp(head + HDR_HEADER, "HdrS", 4)) {
		if (plan_bzimage(m, k, head, head_len, &p, err))
			return -1;
	} else {
		return err_set(err, EINVAL, "%s: neither a bzImage nor an ELF64 kernel", k->name);
	}
	cmdline_len = strlen(cmdline);
	if (cmdline_len > p.cmdline_max)
		return err_set(err, E2BIG,
		               "kernel command line is %zu bytes; the kernel takes at most %u",
		               cmdline_len, p.cmdline_max);

	x86_write_gdt(m, &out->tables);
	x86_write_page_tables(m);
	memset(low + BOOT_CMDLINE, 0, p.cmdline_max + 1);
	memcpy(low + BOOT_CMDLINE, cmdline, cmdline_len);
	write_zero_page(m, low + BOOT_ZERO_PAGE, &p, head);
	if (load_kernel(m, k, &p, err))
		return -1;
	if (p.initrd_len) {
		void *dst = guest_mem_ptr(m, p.initrd_addr, p.initrd_len);

		if (!dst)
			return err_set(err, ERANGE, "%s: initrd outside guest RAM", initrd->name);
		if (src_read(initrd, 0, dst, p.initrd_len, err))
			return -1;
	}

	out->entry = p.entry;
	out->boot_params = BOOT_ZERO_PAGE;
	out->stack = BOOT_STACK_TOP;
	out->cr3 = BOOT_PML4;
	out->is_bzimage = p.bz;
	out->kernel_start = p.kernel_start;
	out->kernel_end = p.kernel_end;
	out->initrd_addr = p.initrd_addr;
	out->initrd_size = p.initrd_len;
	out->cmdline_addr = BOOT_CMDLINE;
	return 0;
}

int boot_load_mem(struct guest_mem *m, const struct boot_config *cfg, const void *kernel,
                  size_t kernel_len, const void *initrd, size_t initrd_len, struct boot_info *out,
                  struct circ_err *err)
{
	struct src k = { cfg->kernel_path ? cfg->kernel_path : "kernel", -1, kernel, kernel_len };
	struct src i = { cfg->initrd_path ? cfg->initrd_path : "initrd", -1, initrd, initrd_len };

	return boot_load_src(m, cfg, &k, initrd ? &i : NULL, out, err);
}

static int src_open(struct src *s, const char *path, struct circ_err *err)
{
	struct stat st;

	s->name = path;
	s->data = NULL;
	s->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (s->fd < 0)
		return err_sys(err, errno, "%s", path);
	if (fstat(s->fd, &st)) {
		err_sys(err, errno, "%s", path);
		close(s->fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		close(s->fd);
		return err_set(err, EINVAL, "%s: not a regular file", path);
	}
	s->len = (uint64_t)st.st_size;
	return 0;
}

int boot_load(struct guest_mem *m, const struct boot_config *cfg, struct boot_info *out,
              struct circ_err *err)
{
	struct src k, i;
	int rc;

	if (!cfg->kernel_path)
		return err_set(err, EINVAL, "no kernel given");
	if (src_open(&k, cfg->kernel_path, err))
		return -1;
	if (cfg->initrd_path && src_open(&i, cfg->initrd_path, err)) {
		close(k.fd);
		return -1;
	}
	rc = boot_load_src(m, cfg, &k, cfg->initrd_path ? &i : NULL, out, err);
	close(k.fd);
	if (cfg->initrd_path)
		close(i.fd);
	return rc;
}
