/* SPDX-License-Identifier: MIT */
#include "hv/vcpu.h"

#include <errno.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hv/boot.h"
#include "hv/vm.h"

#define MAX_CPUID_ENTRIES 256

#define MSR_IA32_SYSENTER_CS    0x174
#define MSR_IA32_SYSENTER_ESP   0x175
#define MSR_IA32_SYSENTER_EIP   0x176
#define MSR_STAR                0xc0000081
#define MSR_LSTAR               0xc0000082
#define MSR_CSTAR               0xc0000083
#define MSR_SYSCALL_MASK        0xc0000084
#define MSR_KERNEL_GS_BASE      0xc0000102
#define MSR_IA32_TSC            0x10
#define MSR_IA32_MISC_ENABLE    0x1a0
#define MISC_ENABLE_FAST_STRING 1

#define CR0_PE         0x1
#define CR0_MP         0x2
#define CR0_ET         0x10
#define CR0_NE         0x20
#define CR0_PG         0x80000000u
#define CR4_PAE        0x20
#define CR4_OSFXSR     0x200
#define CR4_OSXMMEXCPT 0x400
#define EFER_LME       0x100
#define EFER_LMA       0x400

#define APIC_LVT0        0x350
#define APIC_LVT1        0x360
#define APIC_MODE_NMI    0x4
#define APIC_MODE_EXTINT 0x7

/*
 * KVM's supported CPUID, fixed up as guests need it (kvmtool's rules): each
 * vCPU's APIC ID in leaf 1 and 0xb, the hypervisor bit, no PMU without one.
 */
static int setup_cpuid(struct vcpu *v, struct circ_err *err)
{
	struct kvm_cpuid2 *c =
	    calloc(1, sizeof(*c) + MAX_CPUID_ENTRIES * sizeof(struct kvm_cpuid_entry2));
	unsigned ncpus = v->vm->n_vcpus;

	if (!c)
		return err_set(err, ENOMEM, "out of memory");
	c->nent = MAX_CPUID_ENTRIES;
	if (ioctl(v->vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) < 0) {
		free(c);
		return err_sys(err, errno, "KVM_GET_SUPPORTED_CPUID");
	}
	for (unsigned i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		switch (e->function) {
		case 1:
			e->ebx = (e->ebx & 0x0000ffffu) | (ncpus << 16) | (v->id << 24);
			e->ecx |= 1u << 31; /* running under a hypervisor */
			if (ncpus > 1)
				e->edx |= 1u << 28; /* HTT: the count in EBX[23:16] is valid */
			break;
		case 4:
			/* Cores per package - 1 in EAX[31:26]: one package of ncpus cores. */
			e->eax = (e->eax & 0x03ffffffu) | ((ncpus - 1) << 26);
			break;
		case 0xa:
			e->eax = e->ebx = e->ecx = e->edx = 0; /* no PMU */
			break;
		case 0xb:
			e->edx = v->id; /* x2APIC ID */
			break;
		default:
			break;
		}
	}
	if (ioctl(v->fd, KVM_SET_CPUID2, c) < 0) {
		free(c);
		return err_sys(err, errno, "KVM_SET_CPUID2");
	}
	free(c);
	return 0;
}

static int setup_msrs(struct vcpu *v, struct circ_err *err)
{
	static const uint32_t zeroed[] = { MSR_IA32_SYSENTER_CS,
		                           MSR_IA32_SYSENTER_ESP,
		                           MSR_IA32_SYSENTER_EIP,
		                           MSR_STAR,
		                           MSR_LSTAR,
		                           MSR_CSTAR,
		                           MSR_SYSCALL_MASK,
		                           MSR_KERNEL_GS_BASE,
		                           MSR_IA32_TSC };
	size_t n = sizeof(zeroed) / sizeof(zeroed[0]) + 1;
	struct kvm_msrs *m = calloc(1, sizeof(*m) + n * sizeof(struct kvm_msr_entry));
	int set;

	if (!m)
		return err_set(err, ENOMEM, "out of memory");
	for (size_t i = 0; i + 1 < n; i++)
		m->entries[i].index = zeroed[i];
	m->entries[n - 1].index = MSR_IA32_MISC_ENABLE;
	m->entries[n - 1].data = MISC_ENABLE_FAST_STRING;
	m->nmsrs = (uint32_t)n;
	set = ioctl(v->fd, KVM_SET_MSRS, m);
	free(m);
	/* KVM returns how many it set; an emulating KVM may know fewer, which guests survive. */
	if (set < 0)
		return err_sys(err, errno, "KVM_SET_MSRS");
	return 0;
}

static int setup_fpu_lapic(struct vcpu *v, struct circ_err *err)
{
	struct kvm_fpu fpu = { .fcw = 0x37f, .mxcsr = 0x1f80 };
	struct kvm_lapic_state lapic;
	uint32_t *lvt0, *lvt1;

	if (ioctl(v->fd, KVM_SET_FPU, &fpu) < 0)
		return err_sys(err, errno, "KVM_SET_FPU");
	if (ioctl(v->fd, KVM_GET_LAPIC, &lapic) < 0)
		return err_sys(err, errno, "KVM_GET_LAPIC");
	/* As a BIOS leaves them: LINT0 takes the PIC's ExtINT, LINT1 NMIs. */
	lvt0 = (uint32_t *)(void *)(lapic.regs + APIC_LVT0);
	lvt1 = (uint32_t *)(void *)(lapic.regs + APIC_LVT1);
	*lvt0 = (*lvt0 & ~0x700u) | (APIC_MODE_EXTINT << 8);
	*lvt1 = (*lvt1 & ~0x700u) | (APIC_MODE_NMI << 8);
	if (ioctl(v->fd, KVM_SET_LAPIC, &lapic) < 0)
		return err_sys(err, errno, "KVM_SET_LAPIC");
	return 0;
}

static void load_segment(struct kvm_segment *k, const struct boot_segment *b)
{
	*k = (struct kvm_segment){ .base = b->base,
		                   .limit = b->limit,
		                   .selector = b->selector,
		                   .type = b->type,
		                   .present = b->present,
		                   .dpl = b->dpl,
		                   .db = b->db,
		                   .s = b->s,
		                   .l = b->l,
		                   .g = b->g,
		                   .avl = b->avl };
}

/* The BSP enters the kernel in 64-bit mode, as the x86 64-bit boot protocol allows. */
static int setup_long_mode(struct vcpu *v, const struct boot_info *b, struct circ_err *err)
{
	struct kvm_sregs sr;
	struct kvm_regs r = { 0 };

	if (ioctl(v->fd, KVM_GET_SREGS, &sr) < 0)
		return err_sys(err, errno, "KVM_GET_SREGS");
	load_segment(&sr.cs, &b->tables.code);
	load_segment(&sr.ds, &b->tables.data);
	sr.es = sr.fs = sr.gs = sr.ss = sr.ds;
	load_segment(&sr.tr, &b->tables.tss);
	sr.gdt.base = b->tables.gdt_base;
	sr.gdt.limit = b->tables.gdt_limit;
	sr.idt.base = b->tables.idt_base;
	sr.idt.limit = b->tables.idt_limit;
	sr.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_PG;
	sr.cr3 = b->cr3;
	sr.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT;
	sr.efer = EFER_LME | EFER_LMA;
	if (ioctl(v->fd, KVM_SET_SREGS, &sr) < 0)
		return err_sys(err, errno, "KVM_SET_SREGS");
	r.rip = b->entry;
	r.rsi = b->boot_params;
	r.rsp = r.rbp = b->stack;
	r.rflags = 2;
	if (ioctl(v->fd, KVM_SET_REGS, &r) < 0)
		return err_sys(err, errno, "KVM_SET_REGS");
	return 0;
}

int vcpu_create(struct vm *vm, struct vcpu *v, unsigned id, const struct boot_info *boot,
                struct circ_err *err)
{
	memset(v, 0, sizeof(*v));
	v->vm = vm;
	v->id = id;
	v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)id);
	if (v->fd < 0)
		return err_sys(err, errno, "KVM_CREATE_VCPU %u", id);
	v->run = mmap(NULL, (size_t)vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED) {
		v->run = NULL;
		return err_sys(err, errno, "mapping vCPU %u", id);
	}
	if (setup_cpuid(v, err) || setup_msrs(v, err) || setup_fpu_lapic(v, err))
		return -1;
	/* Application processors wait for the BSP's INIT and SIPI in KVM's LAPIC. */
	if (id == 0 && setup_long_mode(v, boot, err))
		return -1;
	return 0;
}

void vcpu_destroy(struct vcpu *v)
{
	if (v->run)
		munmap(v->run, (size_t)v->vm->run_size);
	if (v->fd >= 0)
		close(v->fd);
	v->run = NULL;
	v->fd = -1;
}

void vcpu_dump(struct vcpu *v, char *out, size_t n)
{
	struct kvm_regs r;
	struct kvm_sregs s;

	if (ioctl(v->fd, KVM_GET_REGS, &r) < 0 || ioctl(v->fd, KVM_GET_SREGS, &s) < 0) {
		snprintf(out, n, "registers unavailable");
		return;
	}
	snprintf(out, n,
	         "vcpu %u: rip=%#llx rsp=%#llx rax=%#llx rbx=%#llx rcx=%#llx rdx=%#llx "
	         "rsi=%#llx rdi=%#llx rflags=%#llx cr0=%#llx cr2=%#llx cr3=%#llx cr4=%#llx "
	         "efer=%#llx cs=%#x",
	         v->id, r.rip, r.rsp, r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rflags, s.cr0,
	         s.cr2, s.cr3, s.cr4, s.efer, s.cs.selector);
}

static void fail(struct vcpu *v, const char *what)
{
	char msg[CIRC_ERR_MSG_MAX];
	int n = snprintf(msg, sizeof(msg), "%s; ", what);

	vcpu_dump(v, msg + n, sizeof(msg) - (size_t)n);
	vm_stop(v->vm, VM_FAILED, msg);
}

static void handle_io(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	bool write = run->io.direction == KVM_EXIT_IO_OUT;

	for (uint32_t i = 0; i < run->io.count; i++) {
		bus_access(&v->vm->pio, run->io.port, data, run->io.size, write);
		if (write && run->io.port == SERIAL_COM1_PORT) {
			uint64_t zero = 0;

			atomic_compare_exchange_strong(&v->vm->first_byte_ns, &zero,
			                               vm_now_ns() - v->vm->t0_ns);
		}
		data += run->io.size;
	}
}

void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	struct kvm_run *run = v->run;
	char what[128];

	for (;;) {
		int rc;

		pthread_mutex_lock(&v->vm->lock);
		if (v->vm->state != VM_RUNNING) {
			pthread_mutex_unlock(&v->vm->lock);
			break;
		}
		pthread_mutex_unlock(&v->vm->lock);
		if (v->id == 0) {
			uint64_t zero = 0;

			atomic_compare_exchange_strong(&v->vm->first_run_ns, &zero,
			                               vm_now_ns() - v->vm->t0_ns);
		}
		rc = ioctl(v->fd, KVM_RUN, 0);
		if (rc < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				run->immediate_exit = 0;
				continue;
			}
			snprintf(what, sizeof(what), "KVM_RUN failed: %s", strerror(errno));
			fail(v, what);
			break;
		}
		if (run->exit_reason < VCPU_EXIT_REASONS)
			v->exits[run->exit_reason]++;
		switch (run->exit_reason) {
		case KVM_EXIT_IO:
			handle_io(v);
			break;
		case KVM_EXIT_MMIO:
			bus_access(&v->vm->mmio, run->mmio.phys_addr, run->mmio.data, run->mmio.len,
			           run->mmio.is_write);
			break;
		case KVM_EXIT_HLT:
			/* Only without an in-kernel LAPIC; a halted guest with nothing to wake it.
			 */
			vm_stop(v->vm, VM_POWEROFF, NULL);
			break;
		case KVM_EXIT_SHUTDOWN:
			fail(v, "the guest triple-faulted");
			break;
		case KVM_EXIT_INTERNAL_ERROR:
			snprintf(what, sizeof(what), "KVM internal error (suberror %u)",
			         run->internal.suberror);
			fail(v, what);
			break;
		case KVM_EXIT_FAIL_ENTRY:
			snprintf(what, sizeof(what), "KVM could not enter the guest (reason %#llx)",
			         (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
			fail(v, what);
			break;
		case KVM_EXIT_SYSTEM_EVENT:
			vm_stop(v->vm,
			        run->system_event.type == KVM_SYSTEM_EVENT_RESET ? VM_REBOOT
			                                                         : VM_POWEROFF,
			        NULL);
			break;
		case KVM_EXIT_INTR:
			break;
		default:
			snprintf(what, sizeof(what), "unexpected KVM exit %u", run->exit_reason);
			fail(v, what);
			break;
		}
	}
	return NULL;
}

void vcpu_kick(struct vcpu *v)
{
	if (!v->started)
		return;
	v->run->immediate_exit = 1;
	pthread_kill(v->thread, SIGUSR1);
}
