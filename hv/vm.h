/* SPDX-License-Identifier: MIT */
/* The VM: KVM handles, guest memory, buses and devices, shared by the vCPU threads. */
#ifndef CIRC_HV_VM_H
#define CIRC_HV_VM_H

#include <pthread.h>
#include <stdatomic.h>

#include "hv/acpi_pm.h"
#include "hv/bus.h"
#include "hv/device.h"
#include "hv/display.h"
#include "hv/guest_mem.h"
#include "hv/hv.h"
#include "hv/i8042.h"
#include "hv/irqfd.h"
#include "hv/pci.h"
#include "hv/serial.h"
#include "hv/vcpu.h"

enum vm_state {
	VM_RUNNING,
	VM_POWEROFF,
	VM_REBOOT,
	VM_STOPPED,
	VM_STOP_REQUESTED,
	VM_FAILED
};

struct vm {
	const struct hv_config *cfg;
	int kvm_fd, vm_fd;
	long run_size;
	struct guest_mem mem;
	struct bus pio, mmio;
	struct pci_bus pci;
	struct serial serial;
	struct i8042 i8042;
	struct acpi_pm pm;
	struct irqfd_set irqfds;
	struct vcpu vcpus[HV_MAX_CPUS];
	unsigned n_vcpus;
	struct hv_device devices[HV_MAX_DEVICES]; /* attached by device_attach */
	size_t n_devices;
	struct display display; /* fb.host NULL: none */

	pthread_mutex_t lock; /* guards state and error */
	pthread_cond_t stopped;
	enum vm_state state;
	struct circ_err error;

	uint64_t t0_ns;
	_Atomic uint64_t first_run_ns, first_byte_ns;
};

/* Ends the VM with state (the first call wins) and wakes everyone up. */
void vm_stop(struct vm *vm, enum vm_state state, const char *why);
uint64_t vm_now_ns(void);

#endif
