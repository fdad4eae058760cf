/* SPDX-License-Identifier: MIT */
#include "hv/acpi_pm.h"

#include <string.h>

#define PM_BLOCK_LEN (ACPI_PM_EVT_LEN + ACPI_PM_CNT_LEN)
#define OFF_STS      0
#define OFF_EN       2
#define OFF_CNT      4

_Static_assert(ACPI_PM_CNT_PORT == ACPI_PM_EVT_PORT + ACPI_PM_EVT_LEN, "one block of ports");

void acpi_pm_init(struct acpi_pm *pm, struct power_sink sink)
{
	memset(pm, 0, sizeof(*pm));
	pm->sink = sink;
	pm->cnt = ACPI_PM_SCI_EN;
	pthread_mutex_init(&pm->lock, NULL);
}

void acpi_pm_destroy(struct acpi_pm *pm)
{
	pthread_mutex_destroy(&pm->lock);
}

static uint8_t reg_byte(const struct acpi_pm *pm, unsigned off)
{
	uint16_t v = off < OFF_EN ? pm->sts : off < OFF_CNT ? pm->en : pm->cnt;

	return (uint8_t)(v >> (off % 2 * 8));
}

/* One byte of a write; the registers are 16 bits, and OSes may write them a byte at a time. */
static void write_byte(struct acpi_pm *pm, unsigned off, uint8_t b)
{
	unsigned shift = off % 2 * 8;
	uint16_t mask = (uint16_t)(0xffu << shift), v = (uint16_t)(b << shift);

	if (off < OFF_EN)
		pm->sts &= (uint16_t)~v;
	else if (off < OFF_CNT)
		pm->en = (uint16_t)((pm->en & ~mask) | v);
	else
		pm->cnt = (uint16_t)((pm->cnt & ~mask) | v);
}

void acpi_pm_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool write)
{
	struct acpi_pm *pm = opaque;
	bool off_now = false;

	pthread_mutex_lock(&pm->lock);
	for (uint32_t i = 0; i < len; i++) {
		uint64_t o = off + i;

		if (o >= PM_BLOCK_LEN) {
			if (!write)
				data[i] = 0xff;
			continue;
		}
		if (!write) {
			data[i] = reg_byte(pm, (unsigned)o);
			continue;
		}
		write_byte(pm, (unsigned)o, data[i]);
	}
	if (write && off + len > OFF_CNT) {
		off_now = (pm->cnt & ACPI_PM_SLP_EN) &&
		          (pm->cnt & ACPI_PM_SLP_TYP) >> 10 == ACPI_PM_S5_TYP;
		/* SLP_EN reads 0, and SCI_EN stays set: nothing switches ACPI mode off. */
		pm->cnt = (uint16_t)((pm->cnt & ~ACPI_PM_SLP_EN) | ACPI_PM_SCI_EN);
	}
	pthread_mutex_unlock(&pm->lock);
	if (off_now)
		pm->sink.event(pm->sink.ctx, POWER_OFF);
}

int acpi_pm_register(struct acpi_pm *pm, struct bus *pio)
{
	return bus_register(pio, ACPI_PM_EVT_PORT, PM_BLOCK_LEN, acpi_pm_io, pm, "acpi-pm1a");
}
