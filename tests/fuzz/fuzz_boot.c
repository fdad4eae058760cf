/* SPDX-License-Identifier: MIT */
/*
 * The boot loader on untrusted kernel images: a bzImage or ELF64 header
 * from a user's file must load or be refused, never read or write outside
 * the file or guest memory.
 */
#include <stdlib.h>
#include <string.h>

#include "hv/boot.h"
#include "hv/guest_mem.h"
#include "tests/fuzz/fuzz.h"

#define FUZZ_GUEST_MEM (64u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char initrd[4096];
	struct boot_config cfg = { .cmdline = "console=ttyS0" };
	struct guest_mem m;
	struct boot_info info;
	struct circ_err err;

	if (guest_mem_alloc(&m, FUZZ_GUEST_MEM, &err))
		abort();
	/*
	 * With and without an initrd: its placement depends on the header's
	 * limits. Either answer will do; it must not crash or write outside m.
	 */
	CIRC_BEST_EFFORT(boot_load_mem(&m, &cfg, data, size, NULL, 0, &info, &err));
	CIRC_BEST_EFFORT(boot_load_mem(&m, &cfg, data, size, initrd, sizeof(initrd), &info, &err));
	guest_mem_free(&m);
	return 0;
}
