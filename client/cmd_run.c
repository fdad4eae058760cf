/* SPDX-License-Identifier: MIT */
/*
 * circ run: boots a kernel with circ disks, on hv (KVM) or, where KVM does
 * not run guest code at hardware speed, on QEMU with the disks mounted
 * through FUSE.
 */
#include "client/cli.h"

#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "vdisk/kiosk.h"
#include "hv/hv.h"
#include "client/bootkit.h"
#include "client/progress.h"
#include "client/vm.h"

#define HARDWARE_SPEED_IPS 1e8 /* hardware virtualization: far above; emulation: ~1e6 */

static const char usage[] =
    "Usage: circ run URL NAME --key PUB [--reset] [OPTIONS]   (a kiosk: pull, update, boot)\n"
    "       circ run DISK [--reset] [OPTIONS]                 (a disk pulled before)\n"
    "       circ run --kernel FILE (--disk DISK | --disk-file FILE)... [OPTIONS]\n"
    "\n"
    "Boots a virtual machine whose virtio-blk disks are circ disks (pulled with\n"
    "`circ pull`) or raw files, in order (/dev/vda, /dev/vdb, ...), with its serial\n"
    "console on this terminal. Ctrl-A x leaves the VM.\n"
    "\n"
    "With URL NAME, or DISK, that disk is /dev/vda: pulled if it is not here (URL,\n"
    "NAME, --key), moved to the newest signed version unless it holds local writes,\n"
    "and booted with its version's own kernel, initrd and command line, verified\n"
    "like every block (--kernel, --initrd, --append override them). If the server\n"
    "cannot be reached, the version here boots if all of it is cached, saying so;\n"
    "else run refuses before booting. Every such boot is recorded (circ log DISK\n"
    "--boots). More disks may follow with --disk. A --kernel may also boot with no\n"
    "disk at all (an initramfs system, a test guest); with nothing to boot, run is\n"
    "a usage error.\n"
    "\n"
    "  --key PUB            the publisher's key, to pull NAME the first time\n"
    "  --reset              a clean image at every boot: the disk's writes are dropped\n"
    "                       before it boots and when it ends (a kiosk)\n"
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
    "  --stats              print VM exit counts and device statistics at the end\n" VM_NET_HELP
        VM_DISPLAY_HELP "\nHow circ disks reach their server:\n" CLI_NET_HELP "\n"
    "Exit status: 0 the guest powered off, 3 it rebooted, 4 left with Ctrl-A x,\n"
    "1 an error (no /dev/kvm, a bad kernel, a triple fault: with a register dump),\n"
    "2 a usage error, 128+N stopped by signal N (SIGINT, SIGTERM, SIGHUP: the VM is\n"
    "stopped and its disks unmounted first); the same on both VMMs.\n";

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

/* The kiosk's disk is /dev/vda: before any --disk. */
static int insert_first_disk(const struct cli *cli, struct vm_opts *o, const char *disk)
{
	struct vm_disk d;

	if (parse_disk(cli, o, disk, false))
		return -1;
	d = o->disks[o->n_disks - 1];
	memmove(&o->disks[1], &o->disks[0], (o->n_disks - 1) * sizeof(o->disks[0]));
	o->disks[0] = d;
	return 0;
}

static const char *outcome_name(int rc)
{
	switch (rc) {
	case 0:
		return "poweroff";
	case EXIT_REBOOT:
		return "reboot";
	case EXIT_STOPPED:
		return "stopped";
	default:
		return rc > 128 ? "signal" : "error";
	}
}

/* After a kiosk's boot: its writes dropped (--reset), and the boot recorded. */
static int after_kiosk_boot(const struct cli *cli, const char *state, const char *disk, bool reset,
                            const struct vm_opts *o, const struct bootkit *bk,
                            const struct kiosk_result *kr, int rc)
{
	struct boot_record r = {
		.time = (uint64_t)time(NULL),
		.image = bk->image,
		.version = bk->version,
		.cmdline = o->append,
		.vmm = o->vmm == VMM_HV ? "hv" : "qemu",
		.offline = kr->offline,
		.outcome = outcome_name(rc),
	};
	struct circ_err err;

	memcpy(r.manifest_sha256, bk->manifest_sha256, 32);
	memcpy(r.kernel_sha256, bk->kernel_sha256, 32);
	memcpy(r.initrd_sha256, bk->initrd_sha256, 32);
	r.have_kernel = true;
	r.have_initrd = o->initrd != NULL;
	if (bootlog_append(state, disk, &r, &err))
		fprintf(stderr, "circ run: %s\n", err.msg);
	if (reset && kiosk_discard_writes(state, disk, &err)) {
		int fail = cli_fail_err(cli, &err);

		return rc > 128 ? rc : fail;
	}
	return rc;
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
	OPT_KEY,
	OPT_RESET,
	OPT_NET,
	OPT_HOSTFWD,
	OPT_GUESTFWD,
	OPT_MAC,
	OPT_DISPLAY,
	OPT_VNC_PASSWORD_FILE,
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
		{ "key", required_argument, NULL, OPT_KEY },
		{ "reset", no_argument, NULL, OPT_RESET },
		{ "net", required_argument, NULL, OPT_NET },
		{ "hostfwd", required_argument, NULL, OPT_HOSTFWD },
		{ "guestfwd", required_argument, NULL, OPT_GUESTFWD },
		{ "mac", required_argument, NULL, OPT_MAC },
		{ "display", required_argument, NULL, OPT_DISPLAY },
		{ "vnc-password-file", required_argument, NULL, OPT_VNC_PASSWORD_FILE },
		{ 0 },
	};
	struct vm_opts o = { .vmm = VMM_AUTO, .mem = 512ull << 20, .cpus = 1 };
	const char *url = NULL, *kiosk = NULL, *key = NULL;
	struct kiosk_result kr = { 0 };
	struct bootkit bk = { 0 };
	struct state_net sn;
	sigset_t old_mask;
	bool reset = false, masked = false;
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
		case OPT_KEY:
			key = optarg;
			break;
		case OPT_RESET:
			reset = true;
			break;
		case OPT_NET:
		case OPT_HOSTFWD:
		case OPT_GUESTFWD:
		case OPT_MAC:
			if (vm_net_parse(cli, &o.nic,
			                 (enum vm_net_opt)(VM_NET_OPT_NET + c - OPT_NET), optarg)) {
				rc = EXIT_USAGE;
				goto out;
			}
			break;
		case OPT_DISPLAY:
			if (vm_display_parse(cli, &o.display, optarg)) {
				rc = EXIT_USAGE;
				goto out;
			}
			break;
		case OPT_VNC_PASSWORD_FILE:
			o.display.password_file = optarg;
			break;
		default:
			goto out;
		}
	}
	if (argc - optind > 2) {
		rc = cli_usage_error(cli, "unexpected argument '%s'", argv[optind + 2]);
		goto out;
	}
	if (argc - optind == 2) {
		url = argv[optind];
		kiosk = argv[optind + 1];
	} else if (argc - optind == 1) {
		kiosk = argv[optind];
	}
	if (kiosk && insert_first_disk(cli, &o, kiosk)) {
		rc = EXIT_USAGE;
		goto out;
	}
	if (kiosk)
		kiosk = o.disks[0].name; /* "DISK,ro" names DISK */
	/* A kernel alone may boot (an initramfs system, a test guest); nothing at all may not. */
	if (!kiosk && !o.kernel) {
		rc = cli_usage_error(cli, "--kernel is required: nothing to boot (give URL NAME, "
		                          "DISK, or --kernel and its disks)");
		goto out;
	}
	if ((key || reset) && !kiosk) {
		rc = cli_usage_error(cli, "--key and --reset go with URL NAME or DISK");
		goto out;
	}
	if (vm_net_finish(cli, &o.nic, o.n_disks ? o.disks[0].name : NULL)) {
		rc = EXIT_USAGE;
		goto out;
	}
	if (o.n_disks + (o.nic.kind != VM_NET_NONE) + 2 * o.display.on > HV_MAX_PCI) {
		rc = cli_usage_error(cli,
		                     "at most %d devices: each disk, the network card, and a "
		                     "display's keyboard and tablet count",
		                     HV_MAX_PCI);
		goto out;
	}
	if ((rc = vm_display_finish(cli, &o.display)) != 0)
		goto out;
	rc = EXIT_USAGE;
	state = cli_state_dir(cli, &err);
	if (!state) {
		rc = cli_fail_err(cli, &err);
		goto out;
	}
	if (kiosk) {
		struct progress_steps steps = { .verb = "run" };
		struct kiosk_options ko = { .url = url,
			                    .name = kiosk,
			                    .key_path = key,
			                    .reset = reset,
			                    .net = &sn,
			                    .cache_size = o.net.cache_size };

		sn = cli_state_net(&o.net, progress_step, &steps);
		/* Blocking the stop signals until the boot is recorded (and reset). */
		vm_stop_signals_block(&old_mask);
		masked = true;
		/* A run killed with -9 left the disk mounted: that is no reason not to boot. */
		vm_clean_up_after_dead_run(state, kiosk);
		rc = kiosk_prepare(state, kiosk, &ko, &kr, &err);
		progress_steps_end(&steps);
		if (rc) {
			rc = cli_fail_err(cli, &err);
			goto out;
		}
		if (kr.note[0])
			fprintf(stderr, "circ run: %s\n", kr.note);
		if (kr.from != kr.to)
			fprintf(stderr,
			        "circ run: %s moved from version %" PRIu64 " to %" PRIu64 "\n",
			        kiosk, kr.from, kr.to);
		if (o.kernel ? bootkit_identify(state, kiosk, &bk, &err)
		             : bootkit_extract(state, kiosk, &bk, &err)) {
			rc = cli_fail_err(cli, &err);
			goto out;
		}
		if (!o.kernel) {
			o.kernel = bk.kernel;
			if (!o.initrd)
				o.initrd = bk.initrd;
			if (!o.append)
				o.append = bk.cmdline;
		}
		/* The files booted, hashed before they boot: what the record says ran. */
		if ((o.kernel != bk.kernel &&
		     bootkit_file_sha256(o.kernel, bk.kernel_sha256, &err)) ||
		    (o.initrd && o.initrd != bk.initrd &&
		     bootkit_file_sha256(o.initrd, bk.initrd_sha256, &err))) {
			rc = cli_fail_err(cli, &err);
			goto out;
		}
	}
	/* Refused before anything is mounted, on either VMM. */
	if (bootkit_check_kernel(o.kernel, &err) ||
	    (o.initrd && access(o.initrd, R_OK) && err_sys(&err, errno, "initrd %s", o.initrd))) {
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
	/* Either stops the VM on a stop signal, one that came meanwhile included. */
	if (o.vmm == VMM_HV)
		rc = vm_run_hv(cli, &o, state);
	else
		rc = vm_run_qemu(cli, &o, state, ips >= HARDWARE_SPEED_IPS);
	if (kiosk)
		rc = after_kiosk_boot(cli, state, kiosk, reset, &o, &bk, &kr, rc);
	if (masked) {
		int sig = vm_stop_signals_take();

		if (sig && rc <= 128)
			rc = 128 + sig;
	}
out:
	vm_display_wipe(&o.display);
	if (masked)
		sigprocmask(SIG_SETMASK, &old_mask, NULL);
	for (size_t i = 0; i < o.n_disks; i++)
		free(o.disks[i].storage);
	bootkit_release(&bk);
	free(state);
	return rc;
}
