/* SPDX-License-Identifier: MIT */
#include "hv/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "hv/blk_backend.h"
#include "hv/boot.h"
#include "hv/evloop.h"
#include "hv/mptable.h"
#include "hv/virtio_blk.h"
#include "hv/virtio_net.h"
#include "hv/x86.h"

#define TSS_ADDR          0xfffbd000u /* Firecracker's: above RAM, below the BIOS */
#define FB_SLOT           2           /* after RAM's two */
#define IDENTITY_MAP_ADDR 0xfffbc000u
#define ESCAPE_CHAR       0x01 /* Ctrl-A, then x: leave the VM */

/* GSIs for virtio disks: IOAPIC pins above the ISA ones, each its own (no sharing). */
#define IOAPIC_PINS 24

uint64_t vm_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void vm_stop(struct vm *vm, enum vm_state state, const char *why)
{
	pthread_mutex_lock(&vm->lock);
	if (vm->state == VM_RUNNING) {
		vm->state = state;
		if (why)
			err_set(&vm->error, EIO, "%s", why);
		pthread_cond_broadcast(&vm->stopped);
	}
	pthread_mutex_unlock(&vm->lock);
}

static void power_event(void *ctx, enum power_event ev)
{
	vm_stop(ctx, ev == POWER_RESET ? VM_REBOOT : VM_POWEROFF, NULL);
}

/* ISA interrupts (the serial port) through KVM's irqchip, from any thread. */
static void irq_line_kvm(void *ctx, unsigned gsi, bool level)
{
	struct vm *vm = ctx;
	struct kvm_irq_level l = { .irq = gsi, .level = level };

	ioctl(vm->vm_fd, KVM_IRQ_LINE, &l);
}

static int open_kvm(struct vm *vm, struct circ_err *err)
{
	uint64_t idmap = IDENTITY_MAP_ADDR;

	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0)
		return err_sys(err, errno, "/dev/kvm");
	if (ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION)
		return err_set(err, ENOTSUP, "/dev/kvm speaks an unknown API version");
	vm->run_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0 || vm->run_size <= 0)
		return err_sys(err, errno, "KVM_CREATE_VM");
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)TSS_ADDR) < 0 ||
	    ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0)
		return err_sys(err, errno, "setting KVM's TSS and identity map");
	return 0;
}

/* After the memory slots: a slot change with an irqchip in place costs milliseconds. */
static int create_irqchip(struct vm *vm, struct circ_err *err)
{
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };

	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		return err_sys(err, errno, "KVM_CREATE_IRQCHIP");
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
		return err_sys(err, errno, "KVM_CREATE_PIT2");
	return 0;
}

/*
 * QEMU's routing: the PIT's GSI 0 reaches IOAPIC pin 2, as the MP table (and
 * real hardware) says; the 8259s keep the ISA lines; every other GSI is its pin.
 */
static int route_irqs(struct vm *vm, struct circ_err *err)
{
	struct kvm_irq_routing *r =
	    calloc(1, sizeof(*r) + 48 * sizeof(struct kvm_irq_routing_entry));
	unsigned n = 0;
	int rc;

	if (!r)
		return err_set(err, ENOMEM, "out of memory");
	for (unsigned gsi = 0; gsi < 16; gsi++) {
		if (gsi == 2)
			continue; /* the cascade */
		r->entries[n].gsi = gsi;
		r->entries[n].type = KVM_IRQ_ROUTING_IRQCHIP;
		r->entries[n].u.irqchip.irqchip =
		    gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE;
		r->entries[n].u.irqchip.pin = gsi % 8;
		n++;
	}
	for (unsigned gsi = 0; gsi < IOAPIC_PINS; gsi++) {
		if (gsi == 2)
			continue;
		r->entries[n].gsi = gsi;
		r->entries[n].type = KVM_IRQ_ROUTING_IRQCHIP;
		r->entries[n].u.irqchip.irqchip = KVM_IRQCHIP_IOAPIC;
		r->entries[n].u.irqchip.pin = gsi == 0 ? 2 : gsi;
		n++;
	}
	r->nr = n;
	rc = ioctl(vm->vm_fd, KVM_SET_GSI_ROUTING, r);
	free(r);
	if (rc < 0)
		return err_sys(err, errno, "KVM_SET_GSI_ROUTING");
	return 0;
}

static int map_memory(struct vm *vm, struct circ_err *err)
{
	struct kvm_userspace_memory_region low = {
		.slot = 0,
		.guest_phys_addr = 0,
		.memory_size = vm->mem.low,
		.userspace_addr = (uint64_t)(uintptr_t)vm->mem.host,
	};
	struct kvm_userspace_memory_region high = {
		.slot = 1,
		.guest_phys_addr = GUEST_MEM_HIGH_START,
		.memory_size = vm->mem.size - vm->mem.low,
		.userspace_addr = (uint64_t)(uintptr_t)(vm->mem.host + vm->mem.low),
	};

	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &low) < 0)
		return err_sys(err, errno, "KVM_SET_USER_MEMORY_REGION");
	if (high.memory_size && ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &high) < 0)
		return err_sys(err, errno, "KVM_SET_USER_MEMORY_REGION (above 4 GiB)");
	if (vm->display.fb.host && display_map(&vm->display, vm->vm_fd, FB_SLOT, err))
		return -1;
	return 0;
}

/* The legacy devices and the PCI host bridge; a failure names its device. */
static int register_devices(struct vm *vm, struct circ_err *err)
{
	int rc;

	if ((rc = serial_register(&vm->serial, &vm->pio)))
		return err_sys(err, -rc, "registering the serial port");
	if ((rc = i8042_register(&vm->i8042, &vm->pio)))
		return err_sys(err, -rc, "registering the i8042 controller");
	if ((rc = acpi_pm_register(&vm->pm, &vm->pio)))
		return err_sys(err, -rc, "registering the ACPI power management block");
	if ((rc = pci_init(&vm->pci, &vm->pio, &vm->mmio)))
		return err_sys(err, -rc, "registering the PCI host bridge");
	return 0;
}

static int attach_devices(struct vm *vm, struct circ_err *err)
{
	struct virtio_net_args nics[HV_MAX_NICS];

	for (size_t i = 0; i < vm->cfg->n_disks; i++)
		if (device_attach(vm, &virtio_blk_model, vm->cfg->disks[i], err))
			return -1;
	for (size_t i = 0; i < vm->cfg->n_nics; i++) {
		/* The model copies what it needs of its arguments. */
		nics[i].be = vm->cfg->nics[i].be;
		memcpy(nics[i].mac, vm->cfg->nics[i].mac, sizeof(nics[i].mac));
		if (device_attach(vm, &virtio_net_model, &nics[i], err))
			return -1;
	}
	if (vm->display.fb.host && display_attach_input(&vm->display, vm, err))
		return -1;
	return 0;
}

/* The boot protocol's screen_info, after the loader wrote the zero page. */
static int describe_display(struct vm *vm, const struct boot_info *boot, struct circ_err *err)
{
	uint8_t *zp = guest_mem_ptr(&vm->mem, boot->boot_params, sizeof(struct boot_params));

	if (!vm->display.fb.host)
		return 0;
	if (!zp)
		return err_set(err, EFAULT, "the zero page is outside guest memory");
	fb_write_screen_info(&vm->display.fb, zp);
	return display_start(&vm->display, &vm->cfg->display, err);
}

struct console {
	struct vm *vm;
	int in;      /* the console's input, or -1 */
	int stop_fd; /* the caller's: stop the VM, or -1 */
	bool escape; /* Ctrl-A seen */
	struct evloop loop;
};

/*
 * A millisecond for the guest to drain the UART, watching the stops: a guest
 * that never reads its console (early boot, a panic) must not make the stop
 * signals wait. False when the thread is to end.
 */
static bool console_pause(struct console *c)
{
	struct pollfd w[2] = { { .fd = evloop_stop_fd(&c->loop), .events = POLLIN },
		               { .fd = c->stop_fd, .events = POLLIN } };

	if (poll(w, 2, 1) <= 0)
		return true;
	if (w[1].revents)
		vm_stop(c->vm, VM_STOP_REQUESTED, NULL);
	return false;
}

/* The console's input goes to the serial port; Ctrl-A x leaves the VM. */
static enum evloop_next console_input(void *ctx, int fd)
{
	struct console *c = ctx;
	uint8_t buf[64], out[128];
	size_t n_out = 0;
	ssize_t n = read(fd, buf, sizeof(buf));

	if (n <= 0)
		return n < 0 && errno == EINTR ? EVLOOP_KEEP
		                               : EVLOOP_FORGET; /* the guest runs on */
	for (ssize_t i = 0; i < n; i++) {
		if (c->escape) {
			c->escape = false;
			if (buf[i] == 'x') {
				vm_stop(c->vm, VM_STOPPED, NULL);
				return EVLOOP_END;
			}
			if (buf[i] != ESCAPE_CHAR)
				out[n_out++] = ESCAPE_CHAR;
		} else if (buf[i] == ESCAPE_CHAR) {
			c->escape = true;
			continue;
		}
		out[n_out++] = buf[i];
	}
	/* The UART's FIFO is small; wait for the guest to drain it. */
	for (size_t done = 0; done < n_out;) {
		done += serial_feed(&c->vm->serial, out + done, n_out - done);
		if (done < n_out && !console_pause(c))
			return EVLOOP_END;
	}
	return EVLOOP_KEEP;
}

/* The caller's stop_fd: a stop signal ends the VM as asked. */
static enum evloop_next console_stop(void *ctx, int fd)
{
	struct console *c = ctx;

	(void)fd;
	vm_stop(c->vm, VM_STOP_REQUESTED, NULL);
	return EVLOOP_END;
}

/* The console's thread, if it has anything to watch. */
static int console_start(struct console *c, struct circ_err *err)
{
	if (evloop_init(&c->loop, err))
		return -1;
	/* epoll refuses what is always ready (a file, /dev/null): then there is no input to wait
	 * for. */
	if (c->in >= 0 && evloop_add(&c->loop, c->in, console_input, c, err) &&
	    err->errnum != EPERM)
		return -1;
	if (c->stop_fd >= 0 && evloop_add(&c->loop, c->stop_fd, console_stop, c, err))
		return -1;
	return evloop_start(&c->loop, "the console", err);
}

static void ignore_signal(int sig)
{
	(void)sig;
}

static void collect_stats(struct vm *vm, struct hv_stats *st)
{
	memset(st, 0, sizeof(*st));
	for (unsigned i = 0; i < vm->n_vcpus; i++) {
		for (unsigned r = 0; r < VCPU_EXIT_REASONS; r++) {
			uint64_t n = vm->vcpus[i].exits[r];

			st->exits_total += n;
			if (r == KVM_EXIT_IO)
				st->exits_io += n;
			else if (r == KVM_EXIT_MMIO)
				st->exits_mmio += n;
			else
				st->exits_other += n;
		}
	}
	st->first_run_ns = atomic_load(&vm->first_run_ns);
	st->first_byte_ns = atomic_load(&vm->first_byte_ns);
}

static void print_stats(struct vm *vm, FILE *f)
{
	static const char *const names[VCPU_EXIT_REASONS] = {
		[KVM_EXIT_IO] = "io",
		[KVM_EXIT_MMIO] = "mmio",
		[KVM_EXIT_HLT] = "hlt",
		[KVM_EXIT_SHUTDOWN] = "shutdown",
		[KVM_EXIT_INTR] = "intr",
		[KVM_EXIT_INTERNAL_ERROR] = "internal-error",
		[KVM_EXIT_SYSTEM_EVENT] = "system-event",
	};

	for (unsigned r = 0; r < VCPU_EXIT_REASONS; r++) {
		uint64_t n = 0;

		for (unsigned i = 0; i < vm->n_vcpus; i++)
			n += vm->vcpus[i].exits[r];
		if (n)
			fprintf(f, "hv: exits %-14s %llu\n", names[r] ? names[r] : "other",
			        (unsigned long long)n);
	}
	fprintf(f, "hv: first KVM_RUN after %.3f ms, first serial byte after %.3f ms\n",
	        (double)atomic_load(&vm->first_run_ns) / 1e6,
	        (double)atomic_load(&vm->first_byte_ns) / 1e6);
	device_report(vm, f);
	display_report(&vm->display, f);
}

int hv_run(const struct hv_config *cfg, enum hv_outcome *outcome, struct hv_stats *stats,
           struct circ_err *err)
{
	struct vm *vm = calloc(1, sizeof(*vm));
	struct boot_config bc = { .kernel_path = cfg->kernel,
		                  .initrd_path = cfg->initrd,
		                  .cmdline = cfg->cmdline ? cfg->cmdline : "" };
	struct mptable_pci_irq irqs[HV_MAX_DEVICES];
	struct console con = { .in = -1, .stop_fd = -1, .loop = EVLOOP_NONE };
	struct sigaction sa = { .sa_handler = ignore_signal };
	struct irq_line com1;
	struct boot_info boot;
	bool serial_ready = false, pm_ready = false;
	int ret = -1;

	if (!vm)
		return err_set(err, ENOMEM, "out of memory");
	vm->cfg = cfg;
	vm->t0_ns = vm_now_ns();
	vm->kvm_fd = vm->vm_fd = -1;
	/* -1, never 0, is "no descriptor": what is not made yet is not closed. */
	for (size_t i = 0; i < HV_MAX_CPUS; i++)
		vm->vcpus[i].fd = -1;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_cond_init(&vm->stopped, NULL);
	bus_init(&vm->pio);
	bus_init(&vm->mmio);
	if (irqfd_set_init(&vm->irqfds, -1, err))
		goto out;
	if (cfg->cpus < 1 || cfg->cpus > HV_MAX_CPUS || cfg->n_disks > HV_MAX_DISKS ||
	    cfg->n_nics > HV_MAX_NICS) {
		err_set(err, EINVAL,
		        "between 1 and %d vCPUs, at most %d disks and %d network cards",
		        HV_MAX_CPUS, HV_MAX_DISKS, HV_MAX_NICS);
		goto out;
	}
	/* vCPU threads are kicked out of KVM_RUN with SIGUSR1; it must not kill us. */
	sigaction(SIGUSR1, &sa, NULL);
	if (cfg->display.width && display_init(&vm->display, &cfg->display, err))
		goto out;
	if (guest_mem_alloc(&vm->mem, cfg->mem, err) || open_kvm(vm, err) || map_memory(vm, err) ||
	    create_irqchip(vm, err) || route_irqs(vm, err))
		goto out;
	vm->irqfds.vm_fd = vm->vm_fd;
	com1 = (struct irq_line){ .set = irq_line_kvm, .ctx = vm, .gsi = SERIAL_COM1_IRQ };
	serial_init(&vm->serial, cfg->console_out, &com1);
	serial_ready = true;
	i8042_init(&vm->i8042, (struct power_sink){ power_event, vm });
	acpi_pm_init(&vm->pm, (struct power_sink){ power_event, vm });
	pm_ready = true;
	if (register_devices(vm, err))
		goto out;
	if (attach_devices(vm, err))
		goto out;
	/* The tables go in once the devices are: they name their PCI slots and GSIs. */
	if (x86_write_firmware_tables(&vm->mem, cfg->cpus, irqs, device_routes(vm, irqs), err) ||
	    boot_load(&vm->mem, &bc, &boot, err) || describe_display(vm, &boot, err) ||
	    irqfd_start(&vm->irqfds, err))
		goto out;
	vm->n_vcpus = cfg->cpus;
	for (unsigned i = 0; i < cfg->cpus; i++)
		if (vcpu_create(vm, &vm->vcpus[i], i, &boot, err))
			goto out;
	for (unsigned i = 0; i < cfg->cpus; i++) {
		if (pthread_create(&vm->vcpus[i].thread, NULL, vcpu_thread, &vm->vcpus[i])) {
			err_set(err, EAGAIN, "cannot start vCPU %u", i);
			vm_stop(vm, VM_FAILED, "cannot start a vCPU thread");
			break;
		}
		vm->vcpus[i].started = true;
	}
	if (cfg->console_in >= 0 || cfg->stop_fd >= 0) {
		struct circ_err cerr;

		con.vm = vm;
		con.in = cfg->console_in;
		con.stop_fd = cfg->stop_fd;
		/* Without it a stop signal would go unseen: better not to run at all. */
		if (console_start(&con, &cerr) && cfg->stop_fd >= 0)
			vm_stop(vm, VM_FAILED, cerr.msg);
	}

	pthread_mutex_lock(&vm->lock);
	while (vm->state == VM_RUNNING)
		pthread_cond_wait(&vm->stopped, &vm->lock);
	pthread_mutex_unlock(&vm->lock);
	for (unsigned i = 0; i < vm->n_vcpus; i++)
		vcpu_kick(&vm->vcpus[i]);
	for (unsigned i = 0; i < vm->n_vcpus; i++)
		if (vm->vcpus[i].started)
			pthread_join(vm->vcpus[i].thread, NULL);
	evloop_destroy(&con.loop);
	display_stop(&vm->display);
	if (cfg->stats)
		print_stats(vm, cfg->stats);
	if (stats)
		collect_stats(vm, stats);
	switch (vm->state) {
	case VM_POWEROFF:
		*outcome = HV_POWEROFF;
		ret = 0;
		break;
	case VM_REBOOT:
		*outcome = HV_REBOOT;
		ret = 0;
		break;
	case VM_STOPPED:
		*outcome = HV_STOPPED;
		ret = 0;
		break;
	case VM_STOP_REQUESTED:
		*outcome = HV_STOP_REQUESTED;
		ret = 0;
		break;
	default:
		*err = vm->error;
		break;
	}
out:
	evloop_destroy(&con.loop);
	/* The display's thread sends to the input devices and reads the dirty log: first to go. */
	display_stop(&vm->display);
	/* Devices go after the vCPUs stop: the PCI bus still points at them until then. */
	device_detach_all(vm);
	irqfd_set_destroy(&vm->irqfds);
	for (unsigned i = 0; i < vm->n_vcpus; i++)
		vcpu_destroy(&vm->vcpus[i]);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	guest_mem_free(&vm->mem);
	display_free(&vm->display);
	if (vm->pci.pio)
		pci_destroy(&vm->pci);
	if (serial_ready)
		serial_destroy(&vm->serial);
	if (pm_ready)
		acpi_pm_destroy(&vm->pm);
	bus_destroy(&vm->pio);
	bus_destroy(&vm->mmio);
	pthread_mutex_destroy(&vm->lock);
	pthread_cond_destroy(&vm->stopped);
	free(vm);
	return ret;
}
