/* SPDX-License-Identifier: MIT */
/*
 * circ sync: copies a repository to another directory or host with rsync,
 * in the order that keeps a copy being read consistent: blocks, manifests,
 * pointers, then the catalog (docs/deploy.md).
 */
#include "client/cli.h"

#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char usage[] =
    "Usage: circ sync SRC DEST\n"
    "\n"
    "Copies repository SRC (a local directory) to DEST (a directory, or rsync's\n"
    "HOST:PATH over ssh) with rsync, in the order that keeps DEST consistent\n"
    "for clients reading it meanwhile: the blocks, then the manifests, then the\n"
    "images' pointers, then the catalog. Each file arrives whole under its name\n"
    "(rsync renames it into place), so a pointer or the catalog never names\n"
    "something DEST does not hold yet. Blocks and manifests never change and\n"
    "are not copied again; nothing is deleted from DEST. SRC may be published\n"
    "to meanwhile: what a step misses, the next sync takes. Needs rsync (and\n"
    "ssh for HOST:PATH).\n";

extern char **environ;

/* Runs rsync with args; its exit status, or -1 if it could not run. */
static int rsync(char *const args[])
{
	pid_t pid;
	int st;

	if (posix_spawnp(&pid, "rsync", NULL, NULL, args, environ))
		return -1;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	if (!WIFEXITED(st))
		return 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
	return WEXITSTATUS(st) == 127 ? -1 : WEXITSTATUS(st);
}

/* "DIR/NAME/", or "DIR/NAME" for a file; allocated. */
static char *path_of(const char *dir, const char *name, bool is_dir)
{
	char *p;
	size_t n = strlen(dir);

	if (asprintf(&p, "%s%s%s%s", dir, n && dir[n - 1] == '/' ? "" : "/", name,
	             is_dir ? "/" : "") < 0)
		return NULL;
	return p;
}

int cmd_sync(struct cli *cli, int argc, char **argv)
{
	static const char *const what[] = { "blocks", "manifests", "pointers", "catalog" };
	char *src[3] = { 0 }, *dst[3] = { 0 };
	const char *from, *to;
	struct stat st;
	int c, rc = 0;

	cli->usage = usage;
	while ((c = cli_getopt(cli, argc, argv, "", NULL)) != -1) {
		if (c == CLI_EXIT_OK)
			return 0;
		return EXIT_USAGE;
	}
	if (argc - optind != 2)
		return cli_usage_error(cli, "expected SRC and DEST");
	from = argv[optind];
	to = argv[optind + 1];
	if (stat(from, &st) || !S_ISDIR(st.st_mode))
		return cli_fail(cli, "%s: not a directory", from);
	src[0] = path_of(from, "blocks", true);
	src[1] = path_of(from, "images", true);
	src[2] = path_of(from, "catalog", false);
	dst[0] = path_of(to, "blocks", true);
	dst[1] = path_of(to, "images", true);
	dst[2] = path_of(to, "catalog", false);
	for (int i = 0; i < 3; i++)
		if (!src[i] || !dst[i]) {
			rc = cli_fail(cli, "out of memory");
			goto out;
		}
	if (stat(src[0], &st) || !S_ISDIR(st.st_mode) || stat(src[1], &st) ||
	    !S_ISDIR(st.st_mode)) {
		rc = cli_fail(cli, "%s: not a circ repository (no blocks/ and images/)", from);
		goto out;
	}
	{
		/*
		 * --mkpath makes DEST. A pointer keeps its size from version to
		 * version, and rsync's check of times is to the second: two
		 * publishes in one second would look the same. Pointers and the
		 * catalog are small: they are compared by content (--checksum).
		 */
		char *steps[4][12] = {
			{ "rsync", "-a", "--mkpath", "--ignore-existing", "--exclude=.*", src[0],
			  dst[0], NULL },
			{ "rsync", "-a", "--mkpath", "--ignore-existing", "--exclude=.*",
			  "--include=*/", "--include=*.manifest", "--exclude=*", src[1], dst[1],
			  NULL },
			{ "rsync", "-a", "--mkpath", "--checksum", "--exclude=.*", "--include=*/",
			  "--include=latest", "--exclude=*", src[1], dst[1], NULL },
			{ "rsync", "-a", "--mkpath", "--checksum", src[2], dst[2], NULL },
		};
		bool have_catalog = stat(src[2], &st) == 0;

		for (int i = 0; i < 4; i++) {
			int r;

			if (i == 3 && !have_catalog)
				break; /* a repo published before catalogs existed */
			cli_info(cli, "copying the %s", what[i]);
			r = rsync(steps[i]);
			if (r < 0) {
				rc = cli_fail(
				    cli,
				    "cannot run rsync (is it installed? apt-get install rsync)");
				goto out;
			}
			if (r) {
				/* Stopping here leaves DEST consistent: its pointers name what it
				 * holds. */
				rc = cli_fail(
				    cli,
				    "copying the %s failed (rsync exited %d); %s is as it was "
				    "before that step",
				    what[i], r, to);
				goto out;
			}
		}
	}
out:
	for (int i = 0; i < 3; i++) {
		free(src[i]);
		free(dst[i]);
	}
	return rc;
}
