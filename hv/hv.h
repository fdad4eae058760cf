/* SPDX-License-Identifier: MIT */
/*
 * hv: a small hypervisor on Linux KVM (VT-x or AMD-V). It boots a Linux
 * bzImage or an ELF64 kernel in 64-bit mode, with a serial console, the
 * i8042 reset line, ACPI-style power-off, a PCI host bridge, virtio-blk
 * disks backed by circ disks or raw files, virtio-net cards on a user
 * network (libslirp) or a tap interface, and a framebuffer with a virtio
 * keyboard and tablet, served over VNC.
 */
#ifndef CIRC_HV_H
#define CIRC_HV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "util/err.h"

struct blk_backend;
struct net_backend;

#define HV_MAX_DISKS 8
#define HV_MAX_NICS  2
#define HV_MAX_CPUS  64
/* PCI devices in all (one interrupt line each): disks, cards, a display's keyboard and tablet. */
#define HV_MAX_PCI 8

struct hv_nic {
	struct net_backend *be; /* the caller's */
	uint8_t mac[6];
};

/* A framebuffer served over VNC, with a virtio keyboard and tablet; width 0: none. */
struct hv_display {
	uint32_t width, height;
	const char *vnc_addr; /* numeric IPv4 */
	uint16_t vnc_port;
	const char *vnc_password; /* NULL: none */
};

struct hv_config {
	const char *kernel;
	const char *initrd; /* may be NULL */
	const char *cmdline;
	uint64_t mem;
	unsigned cpus;
	struct blk_backend *disks[HV_MAX_DISKS]; /* the caller's; attached in order */
	size_t n_disks;
	struct hv_nic nics[HV_MAX_NICS]; /* attached after the disks, in order */
	size_t n_nics;
	struct hv_display display;
	int console_in;  /* -1: no input */
	int console_out; /* the guest's serial output */
	/*
	 * -1: none. When it becomes readable the VM stops (HV_STOP_REQUESTED),
	 * as a caller's signalfd does on a stop signal; hv never reads it.
	 */
	int stop_fd;
	FILE *stats; /* exit counts at the end; NULL for none */
};

enum hv_outcome {
	HV_POWEROFF,       /* the guest powered off */
	HV_REBOOT,         /* the guest reset the machine */
	HV_STOPPED,        /* the user quit at the console (Ctrl-A x) */
	HV_STOP_REQUESTED, /* stop_fd became readable */
};

struct hv_stats {
	uint64_t exits_io, exits_mmio, exits_other, exits_total;
	uint64_t first_run_ns;  /* from hv_run's start to the first KVM_RUN */
	uint64_t first_byte_ns; /* to the first byte on the serial console */
};

/*
 * Runs a VM until the guest powers off or resets it. Returns 0 with *outcome,
 * or -1 with err for a failure (no /dev/kvm, a bad kernel, a triple fault or
 * KVM internal error: then err holds a register dump).
 */
CIRC_MUST_CHECK int hv_run(const struct hv_config *cfg, enum hv_outcome *outcome,
                           struct hv_stats *stats, struct circ_err *err);

/*
 * Measures whether KVM runs guest code at hardware speed: runs a tight loop
 * in a tiny guest and reports instructions per second (0 if KVM is unusable).
 */
double hv_measure_speed(struct circ_err *err);

#endif
