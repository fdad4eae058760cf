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

#include "hv/blk_backend.h"
#include "hv/hv.h"
#include "vdisk/disk.h"

#define HARDWARE_SPEED_IPS 1e8 /* hardware virtualization: far above; emulation: ~1e6 */
#define EXIT_REBOOT        3
#define EXIT_STOPPED       4

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

enum vmm {
	VMM_AUTO,
	VMM_HV,
	VMM_QEMU
};

struct disk_arg {
	const char *name; /* a circ disk or a file */
	bool is_file, read_only;
	char *storage;
};

struct run_opts {
	enum vmm vmm;
	const char *kernel, *initrd, *append;
	struct disk_arg disks[HV_MAX_DISKS];
	size_t n_disks;
	uint64_t mem;
	unsigned cpus;
	bool stats;
	struct cli_net net;
};

/*
 * The terminal's settings while the guest owns it. File-scope because a
 * signal handler must restore them: the one piece of process state here.
 */
static struct termios saved_tty;
static bool tty_saved;

static void tty_restore(void)
{
	if (tty_saved)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved_tty);
}

static void tty_restore_and_die(int sig)
{
	tty_restore();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void tty_raw(void)
{
	struct termios raw;

	if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved_tty))
		return;
	tty_saved = true;
	atexit(tty_restore);
	signal(SIGTERM, tty_restore_and_die);
	signal(SIGHUP, tty_restore_and_die);
	raw = saved_tty;
	cfmakeraw(&raw);
	raw.c_oflag |= OPOST | ONLCR; /* the guest writes "\n" and expects a new line */
	tcsetattr(STDIN_FILENO, TCSANOW, &raw);
}

static int parse_disk(const struct cli *cli, struct run_opts *o, const char *arg, bool is_file)
{
	struct disk_arg *d;
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

static int run_hv(const struct cli *cli, const struct run_opts *o, const char *state)
{
	struct hv_config cfg = { .kernel = o->kernel,
		                 .initrd = o->initrd,
		                 .cmdline = o->append,
		                 .mem = o->mem,
		                 .cpus = o->cpus,
		                 .console_in = isatty(STDIN_FILENO) ? STDIN_FILENO : -1,
		                 .console_out = STDOUT_FILENO,
		                 .stats = o->stats ? stderr : NULL };
	struct vdisk *vds[HV_MAX_DISKS] = { 0 };
	struct blk_backend bes[HV_MAX_DISKS];
	struct vdisk_options vo = {
		.net = { .extra_mirrors = o->net.mirrors,
		         .n_extra = o->net.n_mirrors,
		         .timeout_ms = o->net.timeout_ms },
		.cache_size = o->net.cache_size,
		.readahead = VDISK_DEFAULT_READAHEAD,
	};
	enum hv_outcome outcome;
	struct circ_err err;
	int rc = 1;

	for (size_t i = 0; i < o->n_disks; i++) {
		const struct disk_arg *d = &o->disks[i];

		if (d->is_file) {
			if (blk_backend_open_file(d->name, d->read_only, &bes[i], &err))
				goto fail;
		} else {
			vo.read_only = d->read_only;
			if (vdisk_open(state, d->name, &vo, &vds[i], &err))
				goto fail;
			if (blk_backend_from_vdisk(vds[i], &bes[i])) {
				err_set(&err, ENOMEM, "out of memory");
				goto fail;
			}
		}
		cfg.disks[i] = &bes[i];
		cfg.n_disks++;
	}
	tty_raw();
	rc = hv_run(&cfg, &outcome, NULL, &err);
	tty_restore();
	if (rc)
		goto fail;
	rc = outcome == HV_POWEROFF ? 0 : outcome == HV_REBOOT ? EXIT_REBOOT : EXIT_STOPPED;
	goto out;
fail:
	rc = cli_fail_err(cli, &err);
out:
	for (size_t i = 0; i < cfg.n_disks; i++)
		blk_backend_close(cfg.disks[i]);
	for (size_t i = 0; i < o->n_disks; i++)
		if (vds[i] && vdisk_close(vds[i]))
			rc = cli_fail(cli, "flushing disk %s failed", o->disks[i].name);
	return rc;
}

extern char **environ;

static int spawn_wait(char *const argv[])
{
	int status;
	pid_t pid;

	if (posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ))
		return -1;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Runs circ itself (mount, umount) with the same state directory. */
static int circ_self(const char *state, const char *cmd, const char *a, const char *b)
{
	char *argv[] = { "/proc/self/exe", "--state", (char *)state, (char *)cmd,
		         (char *)a,        (char *)b, NULL };

	return spawn_wait(argv);
}

static int run_qemu(const struct cli *cli, const struct run_opts *o, const char *state,
                    bool kvm_fast)
{
	char *argv[64 + 4 * HV_MAX_DISKS], mem[32], cpus[16], *append = NULL;
	char *mounts[HV_MAX_DISKS] = { 0 }, *drives[HV_MAX_DISKS] = { 0 };
	char tmpl[] = "/tmp/circ-run.XXXXXX";
	const char *base = NULL;
	size_t n = 0;
	int rc = 1, q;

	snprintf(mem, sizeof(mem), "%lluM", (unsigned long long)(o->mem >> 20));
	snprintf(cpus, sizeof(cpus), "%u", o->cpus);
	if (asprintf(&append, "console=ttyS0 %s", o->append ? o->append : "") < 0)
		return cli_fail(cli, "out of memory");
	for (size_t i = 0; i < o->n_disks; i++) {
		const struct disk_arg *d = &o->disks[i];
		const char *file = d->name;

		if (!d->is_file) {
			if (!base && !(base = mkdtemp(tmpl))) {
				rc = cli_fail(cli, "mkdtemp: %s", strerror(errno));
				goto out;
			}
			if (asprintf(&mounts[i], "%s/%zu", base, i) < 0 || mkdir(mounts[i], 0700) ||
			    circ_self(state, "mount", d->name, mounts[i]) != 0) {
				rc = cli_fail(cli, "cannot mount disk %s", d->name);
				goto out;
			}
			if (asprintf(&drives[i], "file=%s/disk.img,format=raw,if=virtio%s",
			             mounts[i], d->read_only ? ",readonly=on" : "") < 0)
				goto out;
		} else if (asprintf(&drives[i], "file=%s,format=raw,if=virtio%s", file,
		                    d->read_only ? ",readonly=on" : "") < 0) {
			goto out;
		}
	}
	argv[n++] = "qemu-system-x86_64";
	argv[n++] = "-nographic";
	argv[n++] = "-no-reboot";
	argv[n++] = "-accel";
	argv[n++] = kvm_fast ? "kvm" : "tcg";
	argv[n++] = "-m";
	argv[n++] = mem;
	argv[n++] = "-smp";
	argv[n++] = cpus;
	argv[n++] = "-kernel";
	argv[n++] = (char *)o->kernel;
	if (o->initrd) {
		argv[n++] = "-initrd";
		argv[n++] = (char *)o->initrd;
	}
	argv[n++] = "-append";
	argv[n++] = append;
	for (size_t i = 0; i < o->n_disks; i++) {
		argv[n++] = "-drive";
		argv[n++] = drives[i];
	}
	argv[n] = NULL;
	cli_info(cli, "running qemu-system-x86_64 (-accel %s)", kvm_fast ? "kvm" : "tcg");
	q = spawn_wait(argv);
	if (q < 0)
		rc = cli_fail(cli, "cannot run qemu-system-x86_64 (is qemu-system-x86 installed?)");
	else if (q != 0)
		rc = cli_fail(cli, "qemu-system-x86_64 exited with status %d", q);
	else
		rc = 0;
out:
	for (size_t i = 0; i < o->n_disks; i++) {
		if (mounts[i]) {
			if (circ_self(state, "umount", mounts[i], NULL) != 0)
				rc = cli_fail(cli, "cannot unmount %s", mounts[i]);
			rmdir(mounts[i]);
		}
		free(mounts[i]);
		free(drives[i]);
	}
	if (base)
		rmdir(base);
	free(append);
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
	struct run_opts o = { .vmm = VMM_AUTO, .mem = 512ull << 20, .cpus = 1 };
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
	rc = o.vmm == VMM_HV ? run_hv(cli, &o, state)
	                     : run_qemu(cli, &o, state, ips >= HARDWARE_SPEED_IPS);
out:
	for (size_t i = 0; i < o.n_disks; i++)
		free(o.disks[i].storage);
	free(state);
	return rc;
}
