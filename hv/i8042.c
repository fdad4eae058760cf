/* SPDX-License-Identifier: MIT */
#include "hv/i8042.h"

#include <string.h>

#define CMD_READ_CTR    0x20
#define CMD_WRITE_CTR   0x60
#define CMD_SELF_TEST   0xaa
#define CMD_PULSE_RESET 0xfe
#define STATUS_OBF      0x01 /* output buffer full: a byte waits at 0x60 */
#define SELF_TEST_OK    0x55
#define PM1_SLP_EN      (1u << 13)

void power_init(struct power *p, void (*event)(void *ctx, enum power_event ev), void *ctx)
{
	memset(p, 0, sizeof(*p));
	p->event = event;
	p->ctx = ctx;
}

static void answer(struct power *p, uint8_t v)
{
	p->output = v;
	p->have_output = true;
}

void i8042_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool write)
{
	struct power *p = opaque;
	unsigned port = (unsigned)off + I8042_DATA_PORT;

	if (!write) {
		memset(data, 0, len);
		if (port == I8042_COMMAND_PORT) {
			data[0] = p->have_output ? STATUS_OBF : 0;
		} else if (port == I8042_DATA_PORT) {
			data[0] = p->output;
			p->have_output = false;
		}
		return;
	}
	if (port == I8042_DATA_PORT) {
		if (p->i8042_cmd == CMD_WRITE_CTR)
			p->ctr = data[0];
		p->i8042_cmd = 0;
		return;
	}
	if (port != I8042_COMMAND_PORT)
		return;
	p->i8042_cmd = data[0];
	switch (data[0]) {
	case CMD_PULSE_RESET:
		p->event(p->ctx, POWER_RESET);
		break;
	case CMD_SELF_TEST:
		answer(p, SELF_TEST_OK);
		break;
	case CMD_READ_CTR:
		answer(p, p->ctr);
		break;
	default:
		break;
	}
}

void pm1_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool write)
{
	struct power *p = opaque;
	uint16_t v = 0;

	(void)off;
	if (!write) {
		memset(data, 0, len);
		return;
	}
	memcpy(&v, data, len < 2 ? len : 2);
	if (v & PM1_SLP_EN)
		p->event(p->ctx, POWER_OFF);
}

int power_register(struct power *p, struct bus *pio)
{
	/* 0x60 to 0x64; 0x61 (the speaker gate) never gets here: KVM's PIT owns it. */
	int rc = bus_register(pio, I8042_DATA_PORT, 5, i8042_io, p, "i8042");

	if (!rc)
		rc = bus_register(pio, PM1A_CNT_PORT, 2, pm1_io, p, "pm1a-cnt");
	return rc;
}
