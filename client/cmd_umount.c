/* SPDX-License-Identifier: MIT */
#include "client/cli.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/file.h"
#include "vdisk/state.h"

#define WAIT_FOR_FLUSH_MS 120000

static const char usage[] = "Usage: circ umount MOUNTPOINT\n"
                            "\n"
                            "Unmounts a disk mounted with `circ mount` and waits until the mount\n"
                            "process has flushed every write and exited.\n";

extern char **environ;

/* The directory of the disk whose mount recorded mountpoint mp, or NULL. */
static char *find_disk(const char *state, const char *mp)
{
	struct dirent *de;
	char *disks, *found = NULL;
	DIR *d;

	if (asprintf(&disks, "%s/disks", state) < 0)
		return NULL;
	d = opendir(disks);
	while (d && !found && (de = readdir(d))) {
		struct circ_err err;
		struct buf b = { 0 };
		char *file;

		if (!state_disk_name_valid(de->d_name) ||
		    asprintf(&file, "%s/%s/mountpoint", disks, de->d_name) < 0)
			continue;
		if (file_read_all(file, 4096, &b, &err) == 0 && b.len == strlen(mp) &&
		    memcmp(b.data, mp, b.len) == 0 &&
		    asprintf(&found, "%s/%s", disks, de->d_name) < 0)
			found = NULL;
		buf_free(&b);
		free(file);
	}
	if (d)
		closedir(d);
	free(disks);
	return found;
}

static int unmount(const char *mp, struct circ_err *err)
{
	char *argv[] = { "fusermount3", "-u", (char *)mp, NULL };
	int status;
	pid_t pid;

	if (geteuid() == 0) {
		if (umount2(mp, 0) == 0)
			return 0;
		if (errno != EPERM)
			return err_sys(err, errno, "unmounting %s", mp);
	}
	if (posix_spawnp(&pid, "fusermount3", NULL, NULL, argv, environ))
		return err_set(err, ENOENT, "fusermount3 not found");
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
		return err_set(err, EIO, "fusermount3 -u %s failed", mp);
	return 0;
}

/* The mount holds the disk's lock until it has flushed and exited. */
static int wait_unlocked(const char *dir, struct circ_err *err)
{
	struct timespec tick = { 0, 20 * 1000000 };
	char *path;
	int fd;

	if (asprintf(&path, "%s/lock", dir) < 0)
		return err_set(err, ENOMEM, "out of memory");
	fd = open(path, O_RDWR | O_CLOEXEC);
	free(path);
	if (fd < 0)
		return 0;
	for (int waited = 0; flock(fd, LOCK_EX | LOCK_NB); waited += 20) {
		if (waited >= WAIT_FOR_FLUSH_MS) {
			close(fd);
			return err_set(err, ETIMEDOUT, "the mount of %s did not exit", dir);
		}
		nanosleep(&tick, NULL);
	}
	close(fd);
	return 0;
}

int cmd_umount(struct cli *cli, int argc, char **argv)
{
	struct circ_err err;
	char *state = NULL, *mp = NULL, *dir = NULL;
	int c, rc = 1;

	cli->usage = usage;
	while ((c = cli_getopt(cli, argc, argv, "", NULL)) != -1)
		return c == CLI_EXIT_OK ? 0 : EXIT_USAGE;
	if (argc - optind != 1)
		return cli_usage_error(cli, "expected one MOUNTPOINT");
	mp = realpath(argv[optind], NULL);
	/* A dead FUSE mount cannot be resolved, but its path still unmounts. */
	if (!mp && errno == ENOTCONN)
		mp = cli_absolute_path(argv[optind]);
	if (!mp)
		return cli_fail(cli, "%s: %s", argv[optind], strerror(errno));
	state = cli_state_dir(cli, &err);
	if (!state)
		goto fail;
	dir = find_disk(state, mp);
	if (unmount(mp, &err) || (dir && wait_unlocked(dir, &err)))
		goto fail;
	rc = 0;
	goto out;
fail:
	rc = cli_fail_err(cli, &err);
out:
	free(state);
	free(mp);
	free(dir);
	return rc;
}
