/* SPDX-License-Identifier: MIT */
/*
 * The port-I/O and MMIO buses: devices register the address ranges they
 * decode at init time; the run loop dispatches each exit to the one device
 * that owns the address. PCI BARs may move when the guest reprograms them.
 */
#ifndef CIRC_HV_BUS_H
#define CIRC_HV_BUS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

/* An access at offset within the device's range; data holds len bytes (1, 2, 4 or 8). */
typedef void (*bus_io_fn)(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool write);

struct bus_range {
	uint64_t base, len;
	bus_io_fn io;
	void *opaque;
	const char *name;
};

struct bus {
	pthread_rwlock_t lock; /* vCPU threads read; BAR moves write */
	struct bus_range *ranges;
	size_t n, cap;
	uint64_t unclaimed; /* accesses no device decoded */
};

void bus_init(struct bus *b);
void bus_destroy(struct bus *b);
/* Registers [base, base + len); fails with -EBUSY on an overlap. */
CIRC_MUST_CHECK int bus_register(struct bus *b, uint64_t base, uint64_t len, bus_io_fn io,
                                 void *opaque, const char *name);
/* Moves the range that starts at old_base for opaque; len 0 unmaps it. */
CIRC_MUST_CHECK int bus_move(struct bus *b, void *opaque, uint64_t old_base, uint64_t new_base,
                             uint64_t len);
/*
 * Dispatches an access. Unclaimed reads return all ones, unclaimed writes
 * are dropped (as on real hardware); returns whether a device claimed it.
 */
bool bus_access(struct bus *b, uint64_t addr, uint8_t *data, uint32_t len, bool write);

#endif
