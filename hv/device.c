/* SPDX-License-Identifier: MIT */
#include "hv/device.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/kvm.h>

#include "hv/vm.h"

#define FIRST_PCI_GSI 16 /* the IOAPIC's pins 16 to 23 are PCI's */

/* Each queue's notification wakes the device's worker inside KVM: no exit, no vCPU time. */
static int wire_queues(struct vm *vm, struct hv_device *d, struct circ_err *err)
{
	unsigned n = d->vp->ops.num_queues;

	for (unsigned q = 0; q < n; q++) {
		struct kvm_ioeventfd io = { .len = 2, .addr = virtio_pci_notify_addr(d->vp, q) };

		d->notify_fds[q] = eventfd(0, EFD_CLOEXEC);
		if (d->notify_fds[q] < 0)
			return err_sys(err, errno, "%s: an eventfd for queue %u", d->name, q);
		io.fd = d->notify_fds[q];
		if (ioctl(vm->vm_fd, KVM_IOEVENTFD, &io) < 0)
			return err_sys(err, errno, "%s: KVM_IOEVENTFD for queue %u", d->name, q);
	}
	return virtio_pci_start_worker(d->vp, d->notify_fds, n, err)
	           ? err_prefix(err, "%s", d->name)
	           : 0;
}

int device_attach(struct vm *vm, const struct hv_device_model *model, void *arg,
                  struct circ_err *err)
{
	struct hv_device *d;
	struct irq_line line;
	size_t kind_n = 1;

	if (vm->n_devices == HV_MAX_DEVICES)
		return err_set(err, ENOSPC, "at most %d devices", HV_MAX_DEVICES);
	for (size_t i = 0; i < vm->n_devices; i++)
		kind_n += vm->devices[i].model == model;
	d = &vm->devices[vm->n_devices];
	memset(d, 0, sizeof(*d));
	for (unsigned q = 0; q < VIRTIO_PCI_MAX_QUEUES; q++)
		d->notify_fds[q] = -1;
	d->model = model;
	d->gsi = (uint8_t)(FIRST_PCI_GSI + vm->n_devices);
	snprintf(d->name, sizeof(d->name), "%s %zu", model->kind, kind_n);
	if (irqfd_add(&vm->irqfds, d->gsi, &line, err) ||
	    model->create(arg, &vm->pci, &vm->mem, &line, d->gsi, &d->vp, &d->dev, err))
		return err_prefix(err, "%s", d->name);
	/* Counted once made: a failure from here on is torn down with the rest. */
	vm->n_devices++;
	return wire_queues(vm, d, err);
}

size_t device_routes(const struct vm *vm, struct mptable_pci_irq out[HV_MAX_DEVICES])
{
	for (size_t i = 0; i < vm->n_devices; i++)
		out[i] = (struct mptable_pci_irq){ .slot = vm->devices[i].vp->pci.slot,
			                           .gsi = vm->devices[i].gsi };
	return vm->n_devices;
}

void device_report(const struct vm *vm, FILE *f)
{
	for (size_t i = 0; i < vm->n_devices; i++) {
		const struct hv_device *d = &vm->devices[i];

		if (d->model->report)
			d->model->report(d->dev, f, d->name);
	}
}

void device_detach_all(struct vm *vm)
{
	for (size_t i = 0; i < vm->n_devices; i++) {
		struct hv_device *d = &vm->devices[i];

		d->model->destroy(d->dev);
		for (unsigned q = 0; q < VIRTIO_PCI_MAX_QUEUES; q++)
			if (d->notify_fds[q] >= 0)
				close(d->notify_fds[q]);
	}
	vm->n_devices = 0;
}
