/* SPDX-License-Identifier: MIT */
/*
 * Just enough of the i8042 keyboard controller for a guest to reset the
 * machine (Linux `reboot=k`: command 0xfe on port 0x64), and of the ACPI
 * PM1a control register at 0x604 for it to power off (SLP_EN).
 */
#ifndef CIRC_HV_I8042_H
#define CIRC_HV_I8042_H

#include <stdbool.h>
#include <stdint.h>

#include "hv/bus.h"

#define I8042_DATA_PORT    0x60
#define I8042_COMMAND_PORT 0x64
#define PM1A_CNT_PORT      0x604

enum power_event {
	POWER_NONE,
	POWER_OFF,
	POWER_RESET
};

struct power {
	void (*event)(void *ctx, enum power_event ev); /* called on the vCPU thread */
	void *ctx;
	uint8_t i8042_cmd; /* last command written to 0x64 */
	uint8_t ctr;       /* controller configuration byte */
	bool have_output;  /* a byte waits at 0x60 */
	uint8_t output;
};

void power_init(struct power *p, void (*event)(void *ctx, enum power_event ev), void *ctx);
int power_register(struct power *p, struct bus *pio);
void i8042_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool write);
void pm1_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool write);

#endif
