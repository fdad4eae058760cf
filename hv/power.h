/* SPDX-License-Identifier: MIT */
/* How the devices that end a VM (i8042 reset, ACPI power-off) tell the VMM. */
#ifndef CIRC_HV_POWER_H
#define CIRC_HV_POWER_H

enum power_event {
	POWER_OFF,
	POWER_RESET
};

struct power_sink {
	void (*event)(void *ctx, enum power_event ev); /* called on a vCPU thread */
	void *ctx;
};

#endif
