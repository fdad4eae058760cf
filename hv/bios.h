/* SPDX-License-Identifier: MIT */
/* What the MP table and the ACPI tables share: the BIOS area they live in and their checksum. */
#ifndef CIRC_HV_BIOS_H
#define CIRC_HV_BIOS_H

#include <stddef.h>
#include <stdint.h>

/* The byte that makes p[0..len) sum to zero, with that byte's place holding 0. */
static inline uint8_t bios_checksum(const uint8_t *p, size_t len)
{
	uint8_t sum = 0;

	while (len--)
		sum = (uint8_t)(sum + *p++);
	return (uint8_t)-sum;
}

#endif
