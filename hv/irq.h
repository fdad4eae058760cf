/* SPDX-License-Identifier: MIT */
/*
 * An interrupt line as a device sees it. The VMM backs it with KVM (irqfd
 * with resampling for level-triggered INTx, or KVM_IRQ_LINE); unit tests back
 * it with a recorder. Devices never call KVM themselves.
 */
#ifndef CIRC_HV_IRQ_H
#define CIRC_HV_IRQ_H

#include <stdbool.h>

struct irq_line {
	/* Raises (level true) or lowers the line; callable from any thread. */
	void (*set)(void *ctx, unsigned gsi, bool level);
	void *ctx;
	unsigned gsi;
};

static inline void irq_set(const struct irq_line *l, bool level)
{
	if (l && l->set)
		l->set(l->ctx, l->gsi, level);
}

#endif
