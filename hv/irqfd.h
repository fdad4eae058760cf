/* SPDX-License-Identifier: MIT */
/*
 * Level-triggered interrupt lines for devices off the vCPU thread, through
 * KVM irqfds with resampling: raising the line writes an eventfd that KVM
 * turns into an interrupt with no exit; when the guest acknowledges it, KVM
 * lowers the line and signals the resample eventfd, and if the device still
 * holds the line up the interrupt is sent again (so none is ever lost).
 */
#ifndef CIRC_HV_IRQFD_H
#define CIRC_HV_IRQFD_H

#include <pthread.h>
#include <stdbool.h>

#include "util/err.h"
#include "hv/evloop.h"
#include "hv/irq.h"

#define IRQFD_MAX_LINES 16

struct irqfd_set;

struct irqfd_line {
	struct irqfd_set *set;
	int trigger, resample;
	unsigned gsi;
	bool level;
};

struct irqfd_set {
	int vm_fd;
	pthread_mutex_t lock;
	struct irqfd_line lines[IRQFD_MAX_LINES];
	unsigned n;
	struct evloop resampler; /* waits on the lines' resample fds */
};

/* Sets s up; whether or not it succeeds, s is then to be given to irqfd_set_destroy once. */
CIRC_MUST_CHECK int irqfd_set_init(struct irqfd_set *s, int vm_fd, struct circ_err *err);
void irqfd_set_destroy(struct irqfd_set *s);
/* Binds GSI gsi to a new irqfd and fills line (whose set() raises and lowers it). */
CIRC_MUST_CHECK int irqfd_add(struct irqfd_set *s, unsigned gsi, struct irq_line *line,
                              struct circ_err *err);
/* Starts the thread that resends interrupts still held up after an acknowledge. */
CIRC_MUST_CHECK int irqfd_start(struct irqfd_set *s, struct circ_err *err);

#endif
