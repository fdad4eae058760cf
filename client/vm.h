/* SPDX-License-Identifier: MIT */
/*
 * circ run's two ways to run a VM: hv in this process on /dev/kvm, reading
 * circ disks through the vdisk API; or QEMU on the disks' FUSE files, which
 * this process mounts, watches and unmounts whatever happens.
 */
#ifndef CIRC_VM_H
#define CIRC_VM_H

#include <stdbool.h>
#include <stddef.h>
#include <signal.h>
#include <stdint.h>

#include "hv/hv.h"
#include "client/cli.h"
#include "client/vm_display.h"
#include "client/vm_net.h"

#define EXIT_REBOOT  3
#define EXIT_STOPPED 4

enum vmm {
	VMM_AUTO,
	VMM_HV,
	VMM_QEMU
};

struct vm_disk {
	const char *name; /* a circ disk or a file */
	bool is_file, read_only;
	char *storage;
};

struct vm_opts {
	enum vmm vmm;
	const char *kernel, *initrd, *append;
	struct vm_disk disks[HV_MAX_DISKS];
	size_t n_disks;
	uint64_t mem;
	unsigned cpus;
	bool stats;
	struct cli_net net; /* how circ disks reach their server */
	struct vm_net nic;  /* the guest's network card */
	struct vm_display display;
};

/* Runs the VM; returns circ run's exit status (0 power-off, 3, 4, 1 error). */
int vm_run_hv(const struct cli *cli, const struct vm_opts *o, const char *state);
int vm_run_qemu(const struct cli *cli, const struct vm_opts *o, const char *state, bool kvm_fast);

/*
 * A run killed with -9 leaves its FUSE mounts behind (its QEMU dies with it):
 * if DISK is still mounted by a run whose process is gone, unmounts it.
 */
void vm_clean_up_after_dead_run(const char *state, const char *disk);

/*
 * The stop signals (SIGINT, SIGTERM, SIGHUP), blocked so that they are
 * handled, never fatal, while a run owns mounts or has a boot to record;
 * and the first that came meanwhile (0 if none), taken.
 */
void vm_stop_signals_block(sigset_t *old);
int vm_stop_signals_take(void);

#endif
