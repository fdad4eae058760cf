/* SPDX-License-Identifier: MIT */
/*
 * The ACPI PM1a register blocks (ACPI 6.5, 4.8.3), at the ports the FADT
 * names: enough for an OS to enter S5 (power off). There are no events to
 * report, so the status and enable registers only hold what is written, and
 * SCI_EN always reads 1: the machine is in ACPI mode from reset, which the
 * FADT says by having no SMI command port.
 *
 *   0x600  PM1a_STS  16 bits, write 1 to clear
 *   0x602  PM1a_EN   16 bits
 *   0x604  PM1a_CNT  16 bits: SLP_TYP (12:10), SLP_EN (13, write-only)
 *
 * Writing SLP_EN with SLP_TYP = ACPI_PM_S5_TYP, the value the DSDT's \_S5
 * gives, powers off; other sleep types are not offered, and are ignored.
 */
#ifndef CIRC_HV_ACPI_PM_H
#define CIRC_HV_ACPI_PM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"
#include "hv/bus.h"
#include "hv/power.h"

#define ACPI_PM_EVT_PORT 0x600
#define ACPI_PM_EVT_LEN  4
#define ACPI_PM_CNT_PORT 0x604
#define ACPI_PM_CNT_LEN  2
#define ACPI_PM_S5_TYP   5
#define ACPI_PM_SCI_EN   (1u << 0)
#define ACPI_PM_SLP_TYP  (7u << 10)
#define ACPI_PM_SLP_EN   (1u << 13)

struct acpi_pm {
	struct power_sink sink;
	pthread_mutex_t lock; /* any vCPU may write */
	uint16_t sts, en, cnt;
};

void acpi_pm_init(struct acpi_pm *pm, struct power_sink sink);
void acpi_pm_destroy(struct acpi_pm *pm);
CIRC_MUST_CHECK int acpi_pm_register(struct acpi_pm *pm, struct bus *pio);
/* The port bus calls this for [ACPI_PM_EVT_PORT, ACPI_PM_CNT_PORT + ACPI_PM_CNT_LEN). */
void acpi_pm_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool write);

#endif
