/* SPDX-License-Identifier: MIT */
/*
 * Guest physical memory: one host mapping, split around the 32-bit PCI hole
 * when the guest has more than fits below it.
 *
 *   [0, low)                   RAM at host + 0
 *   [HOLE_START, 4 GiB)        the PCI hole: MMIO, no RAM
 *   [4 GiB, 4 GiB + high)      RAM at host + low
 *
 * Every device reaches guest memory through guest_mem_ptr, which checks the
 * whole range: an address from the guest is untrusted input.
 */
#ifndef CIRC_HV_GUEST_MEM_H
#define CIRC_HV_GUEST_MEM_H

#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"

#define GUEST_MEM_HOLE_START 0xc0000000ull /* 3 GiB: 32-bit MMIO from here */
#define GUEST_MEM_HIGH_START 0x100000000ull
#define GUEST_MEM_MIN        (16ull << 20)

struct guest_mem {
	uint8_t *host;
	uint64_t size; /* RAM bytes in all */
	uint64_t low;  /* RAM bytes below the hole */
};

CIRC_MUST_CHECK int guest_mem_alloc(struct guest_mem *m, uint64_t size, struct circ_err *err);
void guest_mem_free(struct guest_mem *m);

/* Host address of [gpa, gpa + len) if it lies wholly in one RAM region, else NULL. */
void *guest_mem_ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len);

#endif
