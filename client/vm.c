/* SPDX-License-Identifier: MIT */
#include "client/vm.h"

#include <errno.h>
#include <libgen.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "vdisk/disk.h"
#include "hv/blk_backend.h"

/*
 * The terminal's settings while the guest owns it. File-scope because an
 * atexit handler must restore them: the one piece of process state here.
 * The stop signals are not fatal while the guest runs (vm_run_hv takes them
 * through a signalfd), so exit paths are the only ones left to cover.
 */
static struct termios saved_tty;
static bool tty_saved;

static void tty_restore(void)
{
	if (tty_saved)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved_tty);
}

static void tty_raw(void)
{
	struct termios raw;

	if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved_tty))
		return;
	tty_saved = true;
	atexit(tty_restore);
	raw = saved_tty;
	cfmakeraw(&raw);
	raw.c_oflag |= OPOST | ONLCR; /* the guest writes "\n" and expects a new line */
	tcsetattr(STDIN_FILENO, TCSANOW, &raw);
}

/* Signals that stop a run: the VM is stopped and the disks unmounted first. */
static void stop_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGHUP);
}

int vm_run_hv(const struct cli *cli, const struct vm_opts *o, const char *state)
{
	struct hv_config cfg = { .kernel = o->kernel,
		                 .initrd = o->initrd,
		                 .cmdline = o->append,
		                 .mem = o->mem,
		                 .cpus = o->cpus,
		                 .console_in = isatty(STDIN_FILENO) ? STDIN_FILENO : -1,
		                 .console_out = STDOUT_FILENO,
		                 .stop_fd = -1,
		                 .stats = o->stats ? stderr : NULL,
		                 .display = vm_display_hv(&o->display) };
	struct vdisk *vds[HV_MAX_DISKS] = { 0 };
	struct blk_backend bes[HV_MAX_DISKS];
	struct net_backend nic = { .rx_fd = -1 };
	struct vdisk_options vo = {
		.net = cli_state_net(&o->net, NULL, NULL),
		.cache_size = o->net.cache_size,
		.readahead = VDISK_DEFAULT_READAHEAD,
	};
	enum hv_outcome outcome;
	struct circ_err err;
	sigset_t stops, old_mask;
	int rc = 1, stopped_by = 0;

	/*
	 * A stop signal stops the guest, as Ctrl-A x does: the disks are then
	 * flushed and closed, and a kiosk's boot recorded. Blocked before the
	 * vCPU threads start, so that they inherit it.
	 */
	stop_signals(&stops);
	sigprocmask(SIG_BLOCK, &stops, &old_mask);
	cfg.stop_fd = signalfd(-1, &stops, SFD_CLOEXEC | SFD_NONBLOCK);
	if (cfg.stop_fd < 0) {
		err_sys(&err, errno, "signalfd");
		goto fail;
	}
	for (size_t i = 0; i < o->n_disks; i++) {
		const struct vm_disk *d = &o->disks[i];

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
	if (o->nic.kind != VM_NET_NONE) {
		if (vm_net_open(&o->nic, &nic, &err))
			goto fail;
		cfg.nics[0].be = &nic;
		memcpy(cfg.nics[0].mac, o->nic.mac, sizeof(cfg.nics[0].mac));
		cfg.n_nics = 1;
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
	net_backend_close(&nic);
	for (size_t i = 0; i < cfg.n_disks; i++)
		blk_backend_close(cfg.disks[i]);
	for (size_t i = 0; i < o->n_disks; i++)
		if (vds[i] && vdisk_close(vds[i]))
			rc = cli_fail(cli, "flushing disk %s failed", o->disks[i].name);
	if (cfg.stop_fd >= 0) {
		struct signalfd_siginfo si;

		/* All of them: one left pending would kill us when the mask goes back. */
		while (read(cfg.stop_fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
			if (!stopped_by)
				stopped_by = (int)si.ssi_signo;
		close(cfg.stop_fd);
	}
	if (stopped_by) {
		fprintf(stderr, "circ run: stopped by %s: the VM is stopped, its disks flushed\n",
		        strsignal(stopped_by));
		rc = 128 + stopped_by;
	}
	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	return rc;
}

extern char **environ;

void vm_stop_signals_block(sigset_t *old)
{
	sigset_t set;

	stop_signals(&set);
	sigprocmask(SIG_BLOCK, &set, old);
}

int vm_stop_signals_take(void)
{
	struct timespec now = { 0 };
	sigset_t set;
	int sig, first = 0;

	stop_signals(&set);
	while ((sig = sigtimedwait(&set, NULL, &now)) > 0)
		if (!first)
			first = sig;
	return first;
}

/*
 * Starts argv with the signals this process blocks unblocked and, since a
 * VM must not outlive the run that owns it (kill -9 included), with a
 * parent-death signal.
 */
static pid_t spawn(char *const argv[], bool die_with_parent)
{
	pid_t parent = getpid(), pid = fork();
	sigset_t none;

	if (pid != 0)
		return pid;
	if (die_with_parent && (prctl(PR_SET_PDEATHSIG, SIGTERM) || getppid() != parent))
		_exit(127);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execvp(argv[0], argv);
	_exit(127);
}

static int exit_status(int status)
{
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int spawn_wait(char *const argv[])
{
	int status;
	pid_t pid = spawn(argv, false);

	if (pid < 0)
		return -1;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return exit_status(status);
}

/*
 * QEMU's monitor (QMP), read only for why the VM ends: its exit status is 0
 * for a power-off, a reboot (-no-reboot) and Ctrl-A x alike, and circ run's
 * statuses tell them apart, as under hv.
 */
struct qmp {
	const char *path;
	int fd;
	char buf[8192];
	size_t len;
	/* Of the SHUTDOWN event: guest-shutdown, guest-reset, host-qmp-quit (Ctrl-A x)... */
	char reason[32];
	/* Removed once QEMU answers: it has read it (a secret's file), no one else needs it. */
	const char *read_once;
};

static void qmp_poll(struct qmp *q)
{
	ssize_t n;

	if (q->fd < 0) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		static const char hello[] = "{\"execute\": \"qmp_capabilities\"}\n";

		if (strlen(q->path) >= sizeof(sa.sun_path))
			return;
		memcpy(sa.sun_path, q->path, strlen(q->path) + 1);
		q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (q->fd >= 0 && connect(q->fd, (struct sockaddr *)&sa, sizeof(sa))) {
			close(q->fd);
			q->fd = -1;
			return;
		}
		/* Events flow once capabilities are negotiated. */
		if (q->fd >= 0 && write(q->fd, hello, sizeof(hello) - 1) < 0) {
			close(q->fd);
			q->fd = -1;
		}
		/* QEMU makes its objects (the secret) before its monitor listens. */
		if (q->fd >= 0 && q->read_once) {
			unlink(q->read_once);
			q->read_once = NULL;
		}
		return;
	}
	while ((n = read(q->fd, q->buf + q->len, sizeof(q->buf) - 1 - q->len)) > 0) {
		char *nl;

		q->len += (size_t)n;
		q->buf[q->len] = '\0';
		while ((nl = strchr(q->buf, '\n'))) {
			char *r;

			*nl = '\0';
			if (strstr(q->buf, "\"SHUTDOWN\"") &&
			    (r = strstr(q->buf, "\"reason\": \""))) {
				r += strlen("\"reason\": \"");
				snprintf(q->reason, sizeof(q->reason), "%.*s",
				         (int)strcspn(r, "\""), r);
			}
			q->len -= (size_t)(nl + 1 - q->buf);
			memmove(q->buf, nl + 1, q->len + 1);
		}
		if (q->len == sizeof(q->buf) - 1)
			q->len = 0; /* a line too long to matter: dropped */
	}
}

/*
 * Waits for the VM, which ends by itself or, when a stop signal comes, by
 * SIGTERM (SIGKILL if it lingers). *stopped_by: that signal, or 0.
 */
static int supervise(pid_t vm, struct qmp *q, int *stopped_by)
{
	struct timespec tick = { .tv_sec = 0, .tv_nsec = 100 * 1000 * 1000 };
	int status, ticks_since_term = 0;
	sigset_t set;

	stop_signals(&set);
	*stopped_by = 0;
	for (;;) {
		pid_t w = waitpid(vm, &status, WNOHANG);
		int sig;

		qmp_poll(q);
		if (w == vm)
			return exit_status(status);
		if (w < 0 && errno != EINTR)
			return -1;
		sig = sigtimedwait(&set, NULL, &tick);
		if (sig > 0 && !*stopped_by) {
			*stopped_by = sig;
			kill(vm, SIGTERM);
		}
		if (*stopped_by && ++ticks_since_term == 100)
			kill(vm, SIGKILL); /* 10 s after SIGTERM */
	}
}

/* Runs circ itself (mount, umount) with the same state directory. */
static int circ_self(const char *state, const char *cmd, const char *a, const char *b)
{
	char *argv[] = { "/proc/self/exe", "--state", (char *)state, (char *)cmd,
		         (char *)a,        (char *)b, NULL };

	return spawn_wait(argv);
}

#define RUN_DIR_PREFIX "/tmp/circ-run."

/* A private directory for the run's mounts, naming its owner for a later run to check. */
static char *make_run_dir(char *tmpl)
{
	char own[64];
	FILE *f;

	if (!mkdtemp(tmpl))
		return NULL;
	snprintf(own, sizeof(own), "%s/owner", tmpl);
	f = fopen(own, "we");
	if (f) {
		fprintf(f, "%ld\n", (long)getpid());
		fclose(f);
	}
	return tmpl;
}

/* The pid in DIR/owner: the run that made DIR. */
static pid_t run_owner(const char *dir)
{
	char path[4200], text[32] = "";
	FILE *f;

	snprintf(path, sizeof(path), "%s/owner", dir);
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (!fgets(text, sizeof(text), f))
		text[0] = '\0';
	fclose(f);
	return (pid_t)strtol(text, NULL, 10);
}

/*
 * A run killed with -9 leaves its FUSE mounts behind (its VM goes with it):
 * a disk still mounted by a run whose process is gone is unmounted here, so
 * the next run can use it.
 */
void vm_clean_up_after_dead_run(const char *state, const char *disk)
{
	char *dir = state_disk_dir(state, disk), *path = NULL, mp[4096], *parent;
	FILE *f = NULL;
	pid_t owner;

	if (!dir || asprintf(&path, "%s/mountpoint", dir) < 0 || !(f = fopen(path, "re")) ||
	    !fgets(mp, sizeof(mp), f) || strncmp(mp, RUN_DIR_PREFIX, strlen(RUN_DIR_PREFIX)))
		goto out;
	mp[strcspn(mp, "\n")] = '\0';
	parent = dirname(strdupa(mp));
	owner = run_owner(parent);
	if (owner > 0 && (kill(owner, 0) == 0 || errno != ESRCH))
		goto out; /* that run is alive: the disk is really in use */
	fprintf(stderr, "circ run: unmounting %s, left by a run that died\n", mp);
	if (circ_self(state, "umount", mp, NULL) == 0) {
		char own[4200];

		rmdir(mp);
		snprintf(own, sizeof(own), "%s/owner", parent);
		unlink(own);
		rmdir(parent);
	}
out:
	if (f)
		fclose(f);
	free(path);
	free(dir);
}

int vm_run_qemu(const struct cli *cli, const struct vm_opts *o, const char *state, bool kvm_fast)
{
	sigset_t stops, old_mask;
	int stopped_by = 0;
	pid_t vm;
	char *argv[64 + 4 * HV_MAX_DISKS + VM_NET_QEMU_ARGS + VM_DISPLAY_QEMU_ARGS], mem[32],
	    cpus[16], *append = NULL;
	char *net_args[2] = { 0 }, *display_args[3] = { 0 };
	struct circ_err err;
	char *mounts[HV_MAX_DISKS] = { 0 }, *drives[HV_MAX_DISKS] = { 0 };
	char tmpl[] = RUN_DIR_PREFIX "XXXXXX";
	const char *base = NULL;
	sigset_t pending;
	char qmp_path[64], qmp_arg[96], vnc_pw[64];
	struct qmp monitor = { .path = qmp_path, .fd = -1 };
	size_t n = 0;
	int rc = 1, q;

	/* From here a stop signal is handled, never fatal: mounts come down first. */
	stop_signals(&stops);
	sigprocmask(SIG_BLOCK, &stops, &old_mask);
	if (!(base = make_run_dir(tmpl))) {
		rc = cli_fail(cli, "cannot make %s: %s", tmpl, strerror(errno));
		goto out;
	}
	snprintf(qmp_path, sizeof(qmp_path), "%s/qmp", base);
	snprintf(qmp_arg, sizeof(qmp_arg), "unix:%s,server=on,wait=off", qmp_path);
	snprintf(mem, sizeof(mem), "%lluM", (unsigned long long)(o->mem >> 20));
	snprintf(cpus, sizeof(cpus), "%u", o->cpus);
	if (asprintf(&append, "console=ttyS0 %s", o->append ? o->append : "") < 0) {
		append = NULL;
		rc = cli_fail(cli, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < o->n_disks; i++) {
		const struct vm_disk *d = &o->disks[i];
		const char *file = d->name;
		char *dir = NULL;

		if (!d->is_file) {
			vm_clean_up_after_dead_run(state, d->name);
			if (asprintf(&dir, "%s/%zu", base, i) < 0)
				dir = NULL;
			if (!dir || mkdir(dir, 0700) ||
			    circ_self(state, "mount", d->name, dir) != 0) {
				rc = cli_fail(cli, "cannot mount disk %s", d->name);
				if (dir)
					rmdir(dir);
				free(dir);
				goto out;
			}
			mounts[i] = dir; /* mounted: unmounted at the end whatever happens */
			dir = NULL;
			if (asprintf(&drives[i], "file=%s/disk.img,format=raw,if=virtio%s",
			             mounts[i], d->read_only ? ",readonly=on" : "") < 0) {
				drives[i] = NULL;
				rc = cli_fail(cli, "out of memory");
				goto out;
			}
		} else if (asprintf(&drives[i], "file=%s,format=raw,if=virtio%s", file,
		                    d->read_only ? ",readonly=on" : "") < 0) {
			drives[i] = NULL;
			rc = cli_fail(cli, "out of memory");
			goto out;
		}
	}
	argv[n++] = "qemu-system-x86_64";
	/* No window; a --display is QEMU's VNC server. */
	argv[n++] = o->display.on ? "-display" : "-nographic";
	if (o->display.on)
		argv[n++] = "none";
	/* Named, since -qmp would otherwise take the monitor off the console: Ctrl-A x. */
	argv[n++] = "-serial";
	argv[n++] = "mon:stdio";
	argv[n++] = "-no-reboot";
	argv[n++] = "-qmp";
	argv[n++] = qmp_arg;
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
	if (vm_net_qemu_args(&o->nic, argv, &n, net_args)) {
		rc = cli_fail(cli, "out of memory");
		goto out;
	}
	if (vm_display_qemu_args(&o->display, base, argv, &n, display_args, &err)) {
		rc = cli_fail_err(cli, &err);
		goto out;
	}
	snprintf(vnc_pw, sizeof(vnc_pw), "%s/vnc-password", base);
	if (o->display.have_password)
		monitor.read_once = vnc_pw;
	argv[n] = NULL;
	cli_info(cli, "running qemu-system-x86_64 (-accel %s)", kvm_fast ? "kvm" : "tcg");
	if (sigpending(&pending) == 0 &&
	    (sigismember(&pending, SIGINT) || sigismember(&pending, SIGTERM) ||
	     sigismember(&pending, SIGHUP))) {
		stopped_by = sigwaitinfo(&stops, NULL);
		goto out;
	}
	vm = spawn(argv, true);
	q = vm < 0 ? -1 : supervise(vm, &monitor, &stopped_by);
	if (q == 127 || q < 0)
		rc = cli_fail(cli, "cannot run qemu-system-x86_64 (is qemu-system-x86 installed?)");
	else if (q != 0 && !stopped_by)
		rc = cli_fail(cli, "qemu-system-x86_64 exited with status %d", q);
	else if (strcmp(monitor.reason, "host-ui") == 0 ||
	         strcmp(monitor.reason, "host-qmp-quit") == 0)
		rc = EXIT_STOPPED; /* Ctrl-A x */
	else if (strcmp(monitor.reason, "guest-reset") == 0)
		rc = EXIT_REBOOT;
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
	if (monitor.fd >= 0)
		close(monitor.fd);
	if (base) {
		char own[64];

		snprintf(own, sizeof(own), "%s/owner", base);
		unlink(own);
		unlink(vnc_pw);
		unlink(qmp_path);
		rmdir(base);
	}
	free(append);
	free(net_args[0]);
	free(net_args[1]);
	for (int i = 0; i < 3; i++)
		free(display_args[i]);
	if (stopped_by) {
		fprintf(stderr, "circ run: stopped by %s: the VM is stopped, its disks unmounted\n",
		        strsignal(stopped_by));
		rc = 128 + stopped_by;
	}
	/* A second stop signal, or one after the VM ended, is taken here, not fatal later. */
	{
		int sig = vm_stop_signals_take();

		if (sig && !stopped_by)
			rc = 128 + sig;
	}
	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	return rc;
}
