/* SPDX-License-Identifier: MIT */
/*
 * Just enough of the i8042 keyboard controller for a guest to reset the
 * machine: Linux `reboot=k` and the fallback of every other reboot method
 * write command 0xfe to port 0x64. There is no keyboard behind it, and the
 * FADT says so, so Linux's i8042 driver leaves it alone.
 */
#ifndef CIRC_HV_I8042_H
#define CIRC_HV_I8042_H

#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"
#include "hv/bus.h"
#include "hv/power.h"

#define I8042_DATA_PORT    0x60
#define I8042_COMMAND_PORT 0x64

struct i8042 {
	struct power_sink sink;
	uint8_t cmd;      /* last command written to 0x64 */
	uint8_t ctr;      /* controller configuration byte */
	bool have_output; /* a byte waits at 0x60 */
	uint8_t output;
};

void i8042_init(struct i8042 *k, struct power_sink sink);
CIRC_MUST_CHECK int i8042_register(struct i8042 *k, struct bus *pio);
void i8042_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool write);

#endif
