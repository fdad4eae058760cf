/* SPDX-License-Identifier: MIT */
/*
 * An 8250/16550A UART at 0x3f8, IRQ 4: the guest's console. Output goes to
 * a host file descriptor; input is fed from the host with serial_feed.
 */
#ifndef CIRC_HV_SERIAL_H
#define CIRC_HV_SERIAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "hv/bus.h"
#include "hv/irq.h"

#define SERIAL_COM1_PORT 0x3f8
#define SERIAL_COM1_IRQ  4
#define SERIAL_RX_FIFO   64

struct serial {
	pthread_mutex_t lock;
	int out_fd;
	struct irq_line irq;
	uint8_t ier, iir_fcr, lcr, mcr, lsr, msr, scr, dll, dlm;
	bool thre_pending; /* the "transmitter empty" interrupt is owed */
	uint8_t rx[SERIAL_RX_FIFO];
	size_t rx_head, rx_len;
	uint64_t bytes_out;
	bool irq_level;
};

void serial_init(struct serial *s, int out_fd, const struct irq_line *irq);
void serial_destroy(struct serial *s);
CIRC_MUST_CHECK int serial_register(struct serial *s, struct bus *pio);
/* Queues input for the guest; returns how many bytes fitted. */
size_t serial_feed(struct serial *s, const uint8_t *data, size_t len);
void serial_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool write);

#endif
