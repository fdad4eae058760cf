/* SPDX-License-Identifier: MIT */
/* vCPU set-up for a 64-bit entry, and the run loop that dispatches exits. */
#ifndef CIRC_HV_VCPU_H
#define CIRC_HV_VCPU_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"

#define VCPU_EXIT_REASONS 64

struct vm;
struct boot_info;

struct vcpu {
	struct vm *vm;
	unsigned id;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool started;
	uint64_t exits[VCPU_EXIT_REASONS]; /* by KVM exit reason */
};

/* Creates vCPU id with CPUID, MSRs, FPU and LAPIC set up; the BSP (id 0) also gets boot state. */
CIRC_MUST_CHECK int vcpu_create(struct vm *vm, struct vcpu *v, unsigned id,
                                const struct boot_info *boot, struct circ_err *err);
void vcpu_destroy(struct vcpu *v);
/* The thread body: runs until the VM stops. */
void *vcpu_thread(void *arg);
/* Makes a running vCPU leave KVM_RUN. */
void vcpu_kick(struct vcpu *v);
/* A one-line register dump for error messages. */
void vcpu_dump(struct vcpu *v, char *out, size_t n);

#endif
