/* SPDX-License-Identifier: MIT */
/*
 * circ run: boots a kernel with circ disks, on hv (KVM) or, where KVM does
 * not run guest code at hardware speed, on QEMU with the disks mounted
 * through FUSE.
 */
#include "client/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "client/vm.h"
#include "hv/hv.h"

#define HARDWARE_SPEED_IPS 1e8 /* hardware virtualization: far above; emulation: ~1e6 */

static const char usage[] =
    "Usage: circ run [--vmm auto|hv|qemu] --kernel FILE [--initrd FILE] [--append ARGS]\n"
    "                (--disk DISK | --disk-file FILE)... [--mem SIZE] [--cpus N]\n"
    "\n"
    "Boots a virtual machine whose virtio-blk disks are circ disks (pulled with\n"
    "`circ pull`) or raw files, in order (/dev/vda, /dev/vdb, ...), with its serial\n"
    "console on this terminal. Ctrl-A x leaves the VM.\n"
    "\n"
    "  --vmm auto|hv|qemu   hv: circ's own hypervisor on /dev/kvm, reading circ disks\n"
    "                       in-process; qemu: qemu-system-x86_64 on the disks' FUSE\n"
    "                       files; auto (default): hv if KVM runs guest code at\n"
    "                       hardware speed, else qemu, saying which and why\n"
    "  --kernel FILE        a Linux bzImage or an ELF64 kernel\n"
    "  --initrd FILE        an initramfs\n"
    "  --append ARGS        the kernel command line (console=ttyS0 is added for Linux)\n"
    "  --disk DISK          a circ disk; DISK,ro attaches it read-only\n"
    "  --disk-file FILE     a raw image file; FILE,ro attaches it read-only\n"
    "  --mem SIZE           guest memory (default 512M)\n"
    "  --cpus N             vCPUs (default 1)\n"
    "  --stats              print VM exit counts and device statistics at the end\n" CLI_NET_HELP
    "\n"
    "Exit status: 0 the guest powered off, 3 it rebooted (hv), 4 left with Ctrl-A x,\n"
    "1 an error (no /dev/kvm, a bad kernel, a triple fault: with a register dump),\n"
    "2 a usage error. Under qemu, a reboot also exits 0.\n";

static int parse_disk(const struct cli *cli, struct vm_opts *o, const char *arg, bool is_file)
{
	struct vm_disk *d;
	size_t n = strlen(arg);

	if (o->n_disks == HV_MAX_DISKS)
		return cli_usage_error(cli, "at most %d disks", HV_MAX_DISKS);
	d = &o->disks[o->n_disks++];
	d->storage = strdup(arg);
	if (!d->storage)
		return cli_fail(cli, "out of memory");
	d->is_file = is_file;
	if (n > 3 && strcmp(arg + n - 3, ",ro") == 0) {
		d->storage[n - 3] = '\0';
		d->read_only = true;
	}
	d->name = d->storage;
	return 0;
}

enum {
	OPT_VMM = OPT_LONG,
	OPT_KERNEL,
	OPT_INITRD,
	OPT_APPEND,
	OPT_DISK,
	OPT_DISK_FILE,
	OPT_MEM,
	OPT_CPUS,
	OPT_STATS,
};

int cmd_run(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "vmm", required_argument, NULL, OPT_VMM },
		{ "kernel", required_argument, NULL, OPT_KERNEL },
		{ "initrd", required_argument, NULL, OPT_INITRD },
		{ "append", required_argument, NULL, OPT_APPEND },
		{ "disk", required_argument, NULL, OPT_DISK },
		{ "disk-file", required_argument, NULL, OPT_DISK_FILE },
		{ "mem", required_argument, NULL, OPT_MEM },
		{ "cpus", required_argument, NULL, OPT_CPUS },
		{ "stats", no_argument, NULL, OPT_STATS },
		{ 0 },
	};
	struct vm_opts o = { .vmm = VMM_AUTO, .mem = 512ull << 20, .cpus = 1 };
	struct circ_err err;
	char *state = NULL;
	double ips = 0;
	uint64_t v;
	int c, rc = EXIT_USAGE;

	cli->usage = usage;
	cli->net = &o.net;
	while ((c = cli_getopt(cli, argc, argv, "", longopts)) != -1) {
		if (c == CLI_EXIT_OK) {
			rc = 0;
			goto out;
		}
		switch (c) {
		case OPT_VMM:
			if (strcmp(optarg, "auto") == 0)
				o.vmm = VMM_AUTO;
			else if (strcmp(optarg, "hv") == 0)
				o.vmm = VMM_HV;
			else if (strcmp(optarg, "qemu") == 0)
				o.vmm = VMM_QEMU;
			else {
				rc = cli_usage_error(cli, "--vmm is auto, hv or qemu, not '%s'",
				                     optarg);
				goto out;
			}
			break;
		case OPT_KERNEL:
			o.kernel = optarg;
			break;
		case OPT_INITRD:
			o.initrd = optarg;
			break;
		case OPT_APPEND:
			o.append = optarg;
			break;
		case OPT_DISK:
		case OPT_DISK_FILE:
			if (parse_disk(cli, &o, optarg, c == OPT_DISK_FILE)) {
				rc = EXIT_USAGE;
				goto out;
			}
			break;
		case OPT_MEM:
			if (cli_parse_size(optarg, &o.mem) || o.mem < (16u << 20)) {
				rc = cli_usage_error(cli, "bad memory size '%s' (at least 16M)",
				                     optarg);
				goto out;
			}
			break;
		case OPT_CPUS:
			if (cli_parse_u64(optarg, &v) || v < 1 || v > HV_MAX_CPUS) {
				rc = cli_usage_error(cli, "--cpus takes 1 to %d", HV_MAX_CPUS);
				goto out;
			}
			o.cpus = (unsigned)v;
			break;
		case OPT_STATS:
			o.stats = true;
			break;
		default:
			goto out;
		}
	}
	if (optind != argc) {
		rc = cli_usage_error(cli, "unexpected argument '%s'", argv[optind]);
		goto out;
	}
	if (!o.kernel) {
		rc = cli_usage_error(cli, "--kernel is required");
		goto out;
	}
	state = cli_state_dir(cli, &err);
	if (!state) {
		rc = cli_fail_err(cli, &err);
		goto out;
	}
	if (o.vmm != VMM_HV) {
		ips = hv_measure_speed(&err);
		if (o.vmm == VMM_AUTO) {
			o.vmm = ips >= HARDWARE_SPEED_IPS ? VMM_HV : VMM_QEMU;
			if (ips > 0)
				fprintf(stderr,
				        "circ run: using %s: KVM runs guest code at %.0f million "
				        "instructions/s here (%s)\n",
				        o.vmm == VMM_HV ? "hv" : "qemu", ips / 1e6,
				        o.vmm == VMM_HV ? "hardware virtualization"
				                        : "emulated, too slow for a kernel");
			else
				fprintf(stderr, "circ run: using qemu: KVM is unusable (%s)\n",
				        err.msg);
		}
	}
	rc = o.vmm == VMM_HV ? vm_run_hv(cli, &o, state)
	                     : vm_run_qemu(cli, &o, state, ips >= HARDWARE_SPEED_IPS);
out:
	for (size_t i = 0; i < o.n_disks; i++)
		free(o.disks[i].storage);
	free(state);
	return rc;
}
