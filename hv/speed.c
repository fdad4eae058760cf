/* SPDX-License-Identifier: MIT */
/*
 * How fast does KVM run guest code here? Hardware virtualization runs a
 * tight loop at billions of instructions a second; a KVM that emulates guest
 * instructions (these CI machines) at about a million.
 */
#include "hv/hv.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define SPEED_MEM       (4u << 20)
#define SPEED_LOOPS     100000u /* 2 instructions each */
#define SPEED_CODE      0x100000u
#define SPEED_PML4      0x9000u
#define SPEED_GDT       0x500u
#define SPEED_DONE_PORT 0x80

static double seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A 64-bit guest: mov ecx, N; 1: dec ecx; jnz 1b; out 0x80, al. */
static void write_guest(uint8_t *mem)
{
	static const uint8_t code[] = {
		0xb9, 0, 0, 0, 0, 0xff, 0xc9, 0x75, 0xfc, 0xe6, SPEED_DONE_PORT, 0xf4
	};
	uint64_t *pml4 = (uint64_t *)(void *)(mem + SPEED_PML4);
	uint64_t *pdpt = pml4 + 512, *pd = pml4 + 1024;
	uint64_t *gdt = (uint64_t *)(void *)(mem + SPEED_GDT);
	uint32_t loops = SPEED_LOOPS;

	pml4[0] = (SPEED_PML4 + 0x1000) | 3;
	pdpt[0] = (SPEED_PML4 + 0x2000) | 3;
	pd[0] = 0x83; /* one 2 MiB page at 0 ... */
	pd[1] = 0x200000 | 0x83;
	gdt[1] = 0x00af9b000000ffffull;
	gdt[2] = 0x00cf93000000ffffull;
	memcpy(mem + SPEED_CODE, code, sizeof(code));
	memcpy(mem + SPEED_CODE + 1, &loops, 4);
}

static int setup_vcpu(int vcpu)
{
	struct kvm_sregs s;
	struct kvm_regs r = { .rip = SPEED_CODE, .rflags = 2, .rsp = 0x8000 };
	struct kvm_segment cs = {
		.limit = 0xffffffff, .selector = 8, .type = 11, .present = 1, .s = 1, .l = 1, .g = 1
	};
	struct kvm_segment ds = { .limit = 0xffffffff,
		                  .selector = 16,
		                  .type = 3,
		                  .present = 1,
		                  .s = 1,
		                  .db = 1,
		                  .g = 1 };

	if (ioctl(vcpu, KVM_GET_SREGS, &s) < 0)
		return -1;
	s.cs = cs;
	s.ds = s.es = s.fs = s.gs = s.ss = ds;
	s.gdt.base = SPEED_GDT;
	s.gdt.limit = 23;
	s.cr3 = SPEED_PML4;
	s.cr4 = 0x20;
	s.cr0 = 0x80000011;
	s.efer = 0x500;
	if (ioctl(vcpu, KVM_SET_SREGS, &s) < 0 || ioctl(vcpu, KVM_SET_REGS, &r) < 0)
		return -1;
	return 0;
}

double hv_measure_speed(struct circ_err *err)
{
	int kvm = -1, vm = -1, vcpu = -1;
	struct kvm_run *run = MAP_FAILED;
	uint8_t *mem = MAP_FAILED;
	long run_size;
	double t0, t1, ips = 0;
	struct kvm_userspace_memory_region region = { .memory_size = SPEED_MEM };

	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		err_sys(err, errno, "/dev/kvm");
		return 0;
	}
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	mem = mmap(NULL, SPEED_MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (vm < 0 || run_size <= 0 || mem == MAP_FAILED) {
		err_sys(err, errno, "creating a VM");
		goto out;
	}
	write_guest(mem);
	region.userspace_addr = (uint64_t)(uintptr_t)mem;
	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0 || vcpu < 0 || setup_vcpu(vcpu)) {
		err_sys(err, errno, "setting up a vCPU");
		goto out;
	}
	run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED) {
		err_sys(err, errno, "mapping a vCPU");
		goto out;
	}
	t0 = seconds();
	if (ioctl(vcpu, KVM_RUN, 0) < 0 || run->exit_reason != KVM_EXIT_IO ||
	    run->io.port != SPEED_DONE_PORT) {
		err_set(err, EIO, "the speed probe did not run (KVM exit %u)", run->exit_reason);
		goto out;
	}
	t1 = seconds();
	ips = 2.0 * SPEED_LOOPS / (t1 - t0 > 1e-9 ? t1 - t0 : 1e-9);
out:
	if (run != MAP_FAILED)
		munmap(run, (size_t)run_size);
	if (mem != MAP_FAILED)
		munmap(mem, SPEED_MEM);
	if (vcpu >= 0)
		close(vcpu);
	if (vm >= 0)
		close(vm);
	close(kvm);
	return ips;
}
