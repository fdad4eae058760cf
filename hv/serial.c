/* SPDX-License-Identifier: MIT */
#include "hv/serial.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

/* Register offsets and bits, as in the 16550A data sheet. */
#define UART_RX  0 /* in: receive buffer; out: transmit holding (DLAB=0) */
#define UART_IER 1
#define UART_IIR 2 /* in: interrupt identification; out: FIFO control */
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_MSR 6
#define UART_SCR 7

#define IER_RDI         0x01
#define IER_THRI        0x02
#define IIR_NO_INT      0x01
#define IIR_THRI        0x02
#define IIR_RDI         0x04
#define IIR_FIFO        0xc0
#define LCR_DLAB        0x80
#define MCR_LOOP        0x10
#define MCR_OUT2        0x08
#define LSR_DR          0x01
#define LSR_THRE        0x20
#define LSR_TEMT        0x40
#define MSR_DCD_DSR_CTS 0xb0

void serial_init(struct serial *s, int out_fd, const struct irq_line *irq)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	s->out_fd = out_fd;
	if (irq)
		s->irq = *irq;
	s->lsr = LSR_THRE | LSR_TEMT;
	s->msr = MSR_DCD_DSR_CTS;
	s->mcr = MCR_OUT2;
	s->dll = 12; /* 9600 baud until the guest says otherwise */
}

void serial_destroy(struct serial *s)
{
	pthread_mutex_destroy(&s->lock);
}

/* What IIR reports, highest priority first; the line follows it. */
static uint8_t pending(const struct serial *s)
{
	if ((s->ier & IER_RDI) && s->rx_len)
		return IIR_RDI;
	if ((s->ier & IER_THRI) && s->thre_pending)
		return IIR_THRI;
	return IIR_NO_INT;
}

static void update_irq(struct serial *s)
{
	bool level = pending(s) != IIR_NO_INT;

	if (level != s->irq_level) {
		s->irq_level = level;
		irq_set(&s->irq, level);
	}
}

static void transmit(struct serial *s, uint8_t c)
{
	if (s->mcr & MCR_LOOP) {
		if (s->rx_len < SERIAL_RX_FIFO) {
			s->rx[(s->rx_head + s->rx_len) % SERIAL_RX_FIFO] = c;
			s->rx_len++;
			s->lsr |= LSR_DR;
		}
		return;
	}
	s->bytes_out++;
	/* The console is best effort: a closed terminal must not stop the guest. */
	while (s->out_fd >= 0 && write(s->out_fd, &c, 1) < 0 && errno == EINTR)
		;
}

static uint8_t reg_read(struct serial *s, unsigned reg)
{
	uint8_t v;

	switch (reg) {
	case UART_RX:
		if (s->lcr & LCR_DLAB)
			return s->dll;
		if (!s->rx_len)
			return 0;
		v = s->rx[s->rx_head];
		s->rx_head = (s->rx_head + 1) % SERIAL_RX_FIFO;
		if (--s->rx_len == 0)
			s->lsr &= (uint8_t)~LSR_DR;
		return v;
	case UART_IER:
		return (s->lcr & LCR_DLAB) ? s->dlm : s->ier;
	case UART_IIR:
		v = pending(s) | IIR_FIFO;
		/* Reading IIR acknowledges a "transmitter empty" interrupt. */
		if ((v & 0x0f) == IIR_THRI)
			s->thre_pending = false;
		return v;
	case UART_LCR:
		return s->lcr;
	case UART_MCR:
		return s->mcr;
	case UART_LSR:
		return s->lsr;
	case UART_MSR:
		return s->msr;
	default:
		return s->scr;
	}
}

static void reg_write(struct serial *s, unsigned reg, uint8_t v)
{
	switch (reg) {
	case UART_RX:
		if (s->lcr & LCR_DLAB) {
			s->dll = v;
			return;
		}
		transmit(s, v);
		/* Sent at once: the holding register is empty again. */
		s->thre_pending = true;
		return;
	case UART_IER:
		if (s->lcr & LCR_DLAB) {
			s->dlm = v;
			return;
		}
		if (!(s->ier & IER_THRI) && (v & IER_THRI))
			s->thre_pending = true;
		s->ier = v & 0x0f;
		return;
	case UART_IIR:
		s->iir_fcr = v;
		if (v & 0x02) { /* clear the receive FIFO */
			s->rx_len = 0;
			s->lsr &= (uint8_t)~LSR_DR;
		}
		return;
	case UART_LCR:
		s->lcr = v;
		return;
	case UART_MCR:
		s->mcr = v & 0x1f;
		return;
	case UART_SCR:
		s->scr = v;
		return;
	default:
		return; /* LSR and MSR are read-only */
	}
}

void serial_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool write)
{
	struct serial *s = opaque;

	pthread_mutex_lock(&s->lock);
	/* The UART's registers are bytes; a wider access touches the first. */
	if (write)
		reg_write(s, (unsigned)off, data[0]);
	else {
		memset(data, 0, len);
		data[0] = reg_read(s, (unsigned)off);
	}
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

int serial_register(struct serial *s, struct bus *pio)
{
	return bus_register(pio, SERIAL_COM1_PORT, 8, serial_io, s, "serial-8250");
}

size_t serial_feed(struct serial *s, const uint8_t *data, size_t len)
{
	size_t n = 0;

	pthread_mutex_lock(&s->lock);
	while (n < len && s->rx_len < SERIAL_RX_FIFO) {
		s->rx[(s->rx_head + s->rx_len) % SERIAL_RX_FIFO] = data[n++];
		s->rx_len++;
	}
	if (n)
		s->lsr |= LSR_DR;
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
	return n;
}
