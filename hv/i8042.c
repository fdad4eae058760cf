/* SPDX-License-Identifier: MIT */
#include "hv/i8042.h"

#include <string.h>

#define CMD_READ_CTR    0x20
#define CMD_WRITE_CTR   0x60
#define CMD_SELF_TEST   0xaa
#define CMD_PULSE_RESET 0xfe
#define STATUS_OBF      0x01 /* output buffer full: a byte waits at 0x60 */
#define SELF_TEST_OK    0x55

void i8042_init(struct i8042 *k, struct power_sink sink)
{
	memset(k, 0, sizeof(*k));
	k->sink = sink;
}

static void answer(struct i8042 *k, uint8_t v)
{
	k->output = v;
	k->have_output = true;
}

void i8042_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool write)
{
	struct i8042 *k = opaque;
	unsigned port = (unsigned)off + I8042_DATA_PORT;

	if (!write) {
		memset(data, 0, len);
		if (port == I8042_COMMAND_PORT) {
			data[0] = k->have_output ? STATUS_OBF : 0;
		} else if (port == I8042_DATA_PORT) {
			data[0] = k->output;
			k->have_output = false;
		}
		return;
	}
	if (port == I8042_DATA_PORT) {
		if (k->cmd == CMD_WRITE_CTR)
			k->ctr = data[0];
		k->cmd = 0;
		return;
	}
	if (port != I8042_COMMAND_PORT)
		return;
	k->cmd = data[0];
	switch (data[0]) {
	case CMD_PULSE_RESET:
		k->sink.event(k->sink.ctx, POWER_RESET);
		break;
	case CMD_SELF_TEST:
		answer(k, SELF_TEST_OK);
		break;
	case CMD_READ_CTR:
		answer(k, k->ctr);
		break;
	default:
		break;
	}
}

int i8042_register(struct i8042 *k, struct bus *pio)
{
	/* 0x60 to 0x64; 0x61 (the speaker gate) never gets here: KVM's PIT owns it. */
	return bus_register(pio, I8042_DATA_PORT, 5, i8042_io, k, "i8042");
}
