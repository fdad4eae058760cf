/* SPDX-License-Identifier: MIT */
/*
 * Attaching a virtio device to the machine, in one call, as Firecracker's
 * device manager does: the device model makes its PCI function, given the
 * interrupt line the machine backs; the machine owns the rest: the GSI (the
 * IOAPIC's PCI pins, 16 to 23), the irqfd behind the line, an ioeventfd
 * per queue so that a notification never leaves the kernel, the device's
 * worker thread, the route the firmware's tables give the guest (MP table
 * and ACPI _PRT), the teardown and the statistics.
 */
#ifndef CIRC_HV_DEVICE_H
#define CIRC_HV_DEVICE_H

#include <stdint.h>
#include <stdio.h>

#include "util/err.h"
#include "hv/hv.h"
#include "hv/guest_mem.h"
#include "hv/irq.h"
#include "hv/mptable.h"
#include "hv/pci.h"
#include "hv/virtio_pci.h"

#define HV_MAX_DEVICES HV_MAX_PCI /* one GSI each, 16 to 23 */

/* What a kind of virtio device gives the machine (one const instance per kind). */
struct hv_device_model {
	const char *kind; /* "disk": names the device in errors and statistics */
	/*
	 * Makes the device over arg (the model's own configuration) and
	 * registers its PCI function on pb, interrupting through irq (on GSI
	 * gsi). *vp: its transport, whose queues the machine wires up; *dev:
	 * what destroy frees.
	 */
	int (*create)(void *arg, struct pci_bus *pb, const struct guest_mem *m,
	              const struct irq_line *irq, uint8_t gsi, struct virtio_pci **vp, void **dev,
	              struct circ_err *err);
	/* Stops its worker and frees it, after the vCPUs have stopped. */
	void (*destroy)(void *dev);
	/* One line of its statistics for hv's report, naming it name ("disk 1"); may be NULL. */
	void (*report)(void *dev, FILE *f, const char *name);
};

struct hv_device {
	const struct hv_device_model *model;
	void *dev;
	struct virtio_pci *vp;
	uint8_t gsi;
	int notify_fds[VIRTIO_PCI_MAX_QUEUES]; /* -1: none */
	char name[24];                         /* "disk 1" */
};

struct vm;

/*
 * Attaches a device of model over arg: creates it, routes its interrupt,
 * wires its queues' notifications and starts its worker. Call before the
 * firmware's tables are written and the vCPUs run.
 */
CIRC_MUST_CHECK int device_attach(struct vm *vm, const struct hv_device_model *model, void *arg,
                                  struct circ_err *err);
/* The PCI INTx routes of the attached devices, for the firmware's tables; returns their number. */
size_t device_routes(const struct vm *vm, struct mptable_pci_irq out[HV_MAX_DEVICES]);
/* Each device's line of statistics. */
void device_report(const struct vm *vm, FILE *f);
/* Stops and frees every device; after the vCPUs have stopped. */
void device_detach_all(struct vm *vm);

#endif
