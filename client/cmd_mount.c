/* SPDX-License-Identifier: MIT */
/*
 * The FUSE front end: MOUNTPOINT/disk.img is the disk, so QEMU or any VMM
 * can use it. Multi-threaded; the kernel page cache is kept, as all changes
 * to the file pass through here.
 */
#define FUSE_USE_VERSION 35

#include "client/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/file.h"
#include "vdisk/disk.h"

#define DISK_FILE      "disk.img"
#define DISK_PATH      "/" DISK_FILE
#define MAX_IO         (1u << 20)
#define STATS_EVERY_S  2
#define UMOUNT_WAIT_MS 60000

static const char usage[] =
    "Usage: circ mount DISK MOUNTPOINT [-f] [--read-only] [OPTIONS]\n"
    "\n"
    "Exposes DISK as the file MOUNTPOINT/disk.img (FUSE), read-write. Blocks are\n"
    "fetched on first read, verified and cached; writes stay local and an fsync\n"
    "makes them durable. Runs in the background once mounted, unless -f.\n"
    "`circ umount MOUNTPOINT` (or SIGINT/SIGTERM to the mount) flushes and unmounts.\n"
    "Blocks that cannot be read are named in STATE/disks/DISK/mount.log.\n"
    "\n"
    "  -f, --foreground   stay in the foreground, logging to stderr\n"
    "  --read-only        refuse writes\n"
    "  --no-prefetch      do not fetch the image's boot prefetch list\n"
    "  --record-reads FILE  write the image blocks read, in first-read order, to FILE\n"
    "                     at unmount (a boot's working set for `circ publish "
    "--prefetch`)\n" CLI_NET_HELP;

static struct vdisk *disk_of_context(void)
{
	return fuse_get_context()->private_data;
}

static void *fs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	cfg->kernel_cache = 1;
	cfg->attr_timeout = 3600;
	cfg->entry_timeout = 3600;
	cfg->negative_timeout = 3600;
	conn->max_write = MAX_IO;
	conn->max_readahead = MAX_IO;
	/*
	 * Small writes gather in the kernel's page cache and reach the overlay
	 * in larger batches, at an fsync (which the overlay then makes durable)
	 * or when the kernel writes back: what was not fsynced may be lost to
	 * a crash of circ, as to a crash of any disk, and what was is not.
	 */
	if (conn->capable & FUSE_CAP_WRITEBACK_CACHE)
		conn->want |= FUSE_CAP_WRITEBACK_CACHE;
	return disk_of_context();
}

static int fs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	struct vdisk *vd = disk_of_context();

	(void)fi;
	memset(st, 0, sizeof(*st));
	st->st_uid = getuid();
	st->st_gid = getgid();
	st->st_mtime = st->st_ctime = st->st_atime = (time_t)vdisk_created(vd);
	if (strcmp(path, "/") == 0) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
		return 0;
	}
	if (strcmp(path, DISK_PATH) != 0)
		return -ENOENT;
	st->st_mode = S_IFREG | (vdisk_read_only(vd) ? 0444 : 0644);
	st->st_nlink = 1;
	st->st_size = (off_t)vdisk_size(vd);
	st->st_blocks = (blkcnt_t)((vdisk_size(vd) + 511) / 512);
	st->st_blksize = 4096;
	return 0;
}

static int fs_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
                      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	(void)off;
	(void)fi;
	(void)flags;
	if (strcmp(path, "/") != 0)
		return -ENOTDIR;
	fill(buf, ".", NULL, 0, 0);
	fill(buf, "..", NULL, 0, 0);
	fill(buf, DISK_FILE, NULL, 0, 0);
	return 0;
}

static int fs_open(const char *path, struct fuse_file_info *fi)
{
	if (strcmp(path, DISK_PATH) != 0)
		return -ENOENT;
	if (vdisk_read_only(disk_of_context()) && (fi->flags & O_ACCMODE) != O_RDONLY)
		return -EROFS;
	fi->keep_cache = 1;
	return 0;
}

static int fs_read(const char *path, char *buf, size_t len, off_t off, struct fuse_file_info *fi)
{
	struct vdisk *vd = disk_of_context();
	uint64_t size = vdisk_size(vd);
	int rc;

	(void)path;
	(void)fi;
	if (off < 0)
		return -EINVAL;
	if ((uint64_t)off >= size)
		return 0;
	if (len > size - (uint64_t)off)
		len = size - (uint64_t)off;
	rc = vdisk_read(vd, buf, len, (uint64_t)off);
	return rc ? rc : (int)len;
}

static int fs_write(const char *path, const char *buf, size_t len, off_t off,
                    struct fuse_file_info *fi)
{
	int rc;

	(void)path;
	(void)fi;
	if (off < 0)
		return -EINVAL;
	rc = vdisk_write(disk_of_context(), buf, len, (uint64_t)off);
	return rc ? rc : (int)len;
}

static int fs_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	(void)path;
	(void)datasync;
	(void)fi;
	return vdisk_flush(disk_of_context());
}

static int fs_fallocate(const char *path, int mode, off_t off, off_t len, struct fuse_file_info *fi)
{
	struct vdisk *vd = disk_of_context();

	(void)path;
	(void)fi;
	if (off < 0 || len <= 0)
		return -EINVAL;
	if (mode == (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE))
		return vdisk_discard(vd, (uint64_t)off, (uint64_t)len);
	/* Every byte of the disk exists already: allocating inside it is a no-op. */
	if ((mode & ~FALLOC_FL_KEEP_SIZE) == 0 && (uint64_t)off <= vdisk_size(vd) &&
	    (uint64_t)len <= vdisk_size(vd) - (uint64_t)off)
		return 0;
	return -EOPNOTSUPP;
}

static int fs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	(void)path;
	(void)fi;
	return (uint64_t)size == vdisk_size(disk_of_context()) ? 0 : -EPERM;
}

/*
 * The kernel, caching writes, sets the file's times as it writes back: the
 * disk keeps none of its own (getattr shows the version's), so this is a
 * no-op that must not fail the write-back.
 */
static int fs_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	(void)tv;
	(void)fi;
	return strcmp(path, "/disk.img") == 0 || strcmp(path, "/") == 0 ? 0 : -ENOENT;
}

static int fs_statfs(const char *path, struct statvfs *sv)
{
	(void)path;
	memset(sv, 0, sizeof(*sv));
	sv->f_bsize = sv->f_frsize = 4096;
	sv->f_blocks = (vdisk_size(disk_of_context()) + 4095) / 4096;
	sv->f_files = 1;
	sv->f_namemax = 255;
	return 0;
}

static const struct fuse_operations ops = {
	.init = fs_init,
	.getattr = fs_getattr,
	.readdir = fs_readdir,
	.open = fs_open,
	.read = fs_read,
	.write = fs_write,
	.fsync = fs_fsync,
	.fallocate = fs_fallocate,
	.truncate = fs_truncate,
	.utimens = fs_utimens,
	.statfs = fs_statfs,
};

struct stats_saver {
	struct vdisk *vd;
	pthread_mutex_t lock;
	pthread_cond_t stop;
	bool stopping;
};

/* Keeps `circ stats` at most a few seconds behind a mounted disk. */
static void *stats_saver(void *arg)
{
	struct stats_saver *s = arg;
	struct timespec ts;

	pthread_mutex_lock(&s->lock);
	while (!s->stopping) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += STATS_EVERY_S;
		pthread_cond_timedwait(&s->stop, &s->lock, &ts);
		pthread_mutex_unlock(&s->lock);
		vdisk_save_stats(s->vd);
		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

struct mount_opts {
	const char *disk, *mountpoint;
	bool foreground, read_only, prefetch;
	char *record_reads; /* absolute: the daemon leaves the working directory */
	struct cli_net net;
};

/* Tells the waiting parent how mounting went; a message, or "" for success. */
static void report(int fd, const char *msg)
{
	if (fd < 0)
		return;
	if (write(fd, msg, strlen(msg) + 1) < 0) {
		/* The parent is gone: nobody to tell. */
	}
	close(fd);
}

static int run_mount(const struct cli *cli, const char *state, const struct mount_opts *mo,
                     int report_fd)
{
	struct vdisk_options vo = {
		.net = cli_state_net(&mo->net, NULL, NULL),
		.cache_size = mo->net.cache_size,
		.readahead = VDISK_DEFAULT_READAHEAD,
		.read_only = mo->read_only,
		.record_reads = mo->record_reads,
	};
	struct stats_saver saver = { .lock = PTHREAD_MUTEX_INITIALIZER,
		                     .stop = PTHREAD_COND_INITIALIZER };
	char *args_v[] = { "circ", "-o", NULL, NULL };
	struct fuse_args args = FUSE_ARGS_INIT(3, args_v);
	struct fuse_loop_config loop = { .clone_fd = 0, .max_idle_threads = 16 };
	char *dir = state_disk_dir(state, mo->disk), *logpath = NULL, *mpfile = NULL,
	     *pidfile = NULL;
	char *fsopts = NULL, msg[CIRC_ERR_MSG_MAX + 64];
	struct circ_err err;
	struct vdisk *vd = NULL;
	struct fuse *fuse = NULL;
	pthread_t saver_tid;
	bool saver_started = false, mounted = false;
	FILE *log = NULL;
	int rc = 1, loop_rc;

	if (!dir || asprintf(&logpath, "%s/mount.log", dir) < 0 ||
	    asprintf(&mpfile, "%s/mountpoint", dir) < 0 ||
	    asprintf(&pidfile, "%s/mount.pid", dir) < 0 ||
	    asprintf(&fsopts, "fsname=circ:%s,subtype=circ%s", mo->disk,
	             mo->read_only ? ",ro" : "") < 0) {
		snprintf(msg, sizeof(msg), "out of memory");
		goto fail;
	}
	args_v[2] = fsopts;
	if (!mo->foreground) {
		log = fopen(logpath, "ae");
		vo.log = log;
	}
	if (vdisk_open(state, mo->disk, &vo, &vd, &err)) {
		snprintf(msg, sizeof(msg), "%s", err.msg);
		goto fail;
	}
	fuse = fuse_new(&args, &ops, sizeof(ops), vd);
	if (!fuse) {
		snprintf(msg, sizeof(msg), "cannot set up FUSE");
		goto fail;
	}
	if (fuse_mount(fuse, mo->mountpoint)) {
		snprintf(msg, sizeof(msg), "cannot mount on %s (is /dev/fuse usable?)",
		         mo->mountpoint);
		goto fail;
	}
	mounted = true;
	if (fuse_set_signal_handlers(fuse_get_session(fuse))) {
		snprintf(msg, sizeof(msg), "cannot set signal handlers");
		goto fail;
	}
	snprintf(msg, sizeof(msg), "%ld\n", (long)getpid());
	if (file_write_atomic(mpfile, mo->mountpoint, strlen(mo->mountpoint), 0644, &err) ||
	    file_write_atomic(pidfile, msg, strlen(msg), 0644, &err)) {
		snprintf(msg, sizeof(msg), "%s", err.msg);
		goto fail;
	}
	saver.vd = vd;
	saver_started = pthread_create(&saver_tid, NULL, stats_saver, &saver) == 0;
	/* The prefetch only saves waiting: the disk reads the same without it. */
	if (mo->prefetch && vdisk_prefetch(vd) && log)
		fprintf(log,
		        "circ: the boot set's prefetch could not start; blocks come as read\n");
	report(report_fd, "");
	report_fd = -1;
	if (!mo->foreground) {
		int null = open("/dev/null", O_RDWR);

		if (null >= 0) {
			dup2(null, STDIN_FILENO);
			dup2(null, STDOUT_FILENO);
			dup2(null, STDERR_FILENO);
			close(null);
		}
	}
	/* A stop signal ends the loop with its number: a clean stop, the disk flushed below. */
	loop_rc = fuse_loop_mt(fuse, &loop);
	rc = loop_rc == 0 || loop_rc == SIGTERM || loop_rc == SIGINT || loop_rc == SIGHUP ? 0 : 1;
	fuse_remove_signal_handlers(fuse_get_session(fuse));
	goto out;
fail:
	if (report_fd >= 0)
		report(report_fd, msg);
	else
		cli_fail(cli, "%s", msg);
	report_fd = -1;
out:
	if (saver_started) {
		pthread_mutex_lock(&saver.lock);
		saver.stopping = true;
		pthread_cond_signal(&saver.stop);
		pthread_mutex_unlock(&saver.lock);
		pthread_join(saver_tid, NULL);
	}
	if (mounted)
		fuse_unmount(fuse);
	if (fuse)
		fuse_destroy(fuse);
	/* Unmounted: no write can arrive any more; make them all durable. */
	if (vd && vdisk_close(vd)) {
		rc = 1;
		if (log)
			fprintf(log, "circ: flushing %s failed\n", mo->disk);
	}
	if (mpfile && mounted)
		unlink(mpfile);
	if (pidfile && mounted)
		unlink(pidfile);
	if (log)
		fclose(log);
	fuse_opt_free_args(&args);
	free(dir);
	free(logpath);
	free(mpfile);
	free(pidfile);
	free(fsopts);
	return rc;
}

enum {
	OPT_RO = OPT_LONG,
	OPT_RECORD,
	OPT_NO_PREFETCH
};

int cmd_mount(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "foreground", no_argument, NULL, 'f' },
		{ "read-only", no_argument, NULL, OPT_RO },
		{ "no-prefetch", no_argument, NULL, OPT_NO_PREFETCH },
		{ "record-reads", required_argument, NULL, OPT_RECORD },
		{ 0 },
	};
	struct mount_opts mo = { .prefetch = true };
	char *state, *mp, status[CIRC_ERR_MSG_MAX + 64];
	struct circ_err err;
	struct stat st;
	int c, pipefd[2], rc;
	size_t got = 0;
	pid_t pid;

	cli->usage = usage;
	cli->net = &mo.net;
	while ((c = cli_getopt(cli, argc, argv, "f", longopts)) != -1) {
		if (c == CLI_EXIT_OK)
			return 0;
		switch (c) {
		case 'f':
			mo.foreground = true;
			break;
		case OPT_RO:
			mo.read_only = true;
			break;
		case OPT_NO_PREFETCH:
			mo.prefetch = false;
			break;
		case OPT_RECORD:
			free(mo.record_reads);
			mo.record_reads = cli_absolute_path(optarg);
			if (!mo.record_reads)
				return cli_fail(cli, "out of memory");
			break;
		default:
			return EXIT_USAGE;
		}
	}
	if (argc - optind != 2)
		return cli_usage_error(cli, "expected DISK and MOUNTPOINT");
	mo.disk = argv[optind];
	if (!state_disk_name_valid(mo.disk))
		return cli_fail(cli, "invalid disk name '%s'", mo.disk);
	if (stat(argv[optind + 1], &st) && errno == ENOTCONN)
		return cli_fail(cli,
		                "%s is a dead FUSE mount (the process that served it was killed): "
		                "`circ umount %s` clears it",
		                argv[optind + 1], argv[optind + 1]);
	if (stat(argv[optind + 1], &st))
		return cli_fail(cli, "%s: %s", argv[optind + 1], strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return cli_fail(cli, "%s is not a directory", argv[optind + 1]);
	mp = realpath(argv[optind + 1], NULL);
	state = cli_state_dir(cli, &err);
	if (!mp || !state) {
		free(mp);
		free(state);
		return cli_fail_err(cli, &err);
	}
	mo.mountpoint = mp;
	if (mo.foreground) {
		rc = run_mount(cli, state, &mo, -1);
		goto out;
	}
	/* Fork before any thread exists; the parent waits until the disk is mounted. */
	if (pipe2(pipefd, O_CLOEXEC)) {
		rc = cli_fail(cli, "pipe: %s", strerror(errno));
		goto out;
	}
	pid = fork();
	if (pid < 0) {
		rc = cli_fail(cli, "fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0) {
		close(pipefd[0]);
		setsid();
		if (chdir("/")) {
			/* Nothing relies on the working directory: paths are absolute. */
		}
		_exit(run_mount(cli, state, &mo, pipefd[1]));
	}
	close(pipefd[1]);
	while (got < sizeof(status) - 1) {
		ssize_t n = read(pipefd[0], status + got, sizeof(status) - 1 - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(pipefd[0]);
	status[got] = '\0';
	if (got == 0) {
		waitpid(pid, NULL, 0);
		rc = cli_fail(cli, "the mount process died before mounting %s", mo.disk);
	} else if (status[0]) {
		waitpid(pid, NULL, 0);
		rc = cli_fail(cli, "%s", status);
	} else {
		rc = 0;
	}
out:
	free(mo.record_reads);
	free(mp);
	free(state);
	return rc;
}
