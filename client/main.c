/* SPDX-License-Identifier: MIT */
/* circ: git-style dispatch to subcommands, after the options they all share. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "client/cli.h"

/* The Makefile passes `git describe`; a build outside it names the release. */
#ifndef CIRC_VERSION
#define CIRC_VERSION "0.3.0"
#endif

static const char usage[] =
    "Usage: circ [--state DIR] [-v] COMMAND [ARGS...]\n"
    "\n"
    "circ circulates operating-system disk images: signed, content-addressed,\n"
    "compressed blocks on any HTTP server.\n"
    "\n"
    "Commands:\n"
    "  keygen OUTPREFIX             write an Ed25519 key pair (OUTPREFIX.key, OUTPREFIX.pub)\n"
    "  publish --repo DIR --key KEY --name NAME IMAGE\n"
    "                               publish IMAGE as the next version of NAME\n"
    "  verify (--repo DIR | --url URL) --key PUB --name NAME [--version N]\n"
    "                               check signatures and every block of a version\n"
    "  serve (--repo DIR | --cache STATE) [--listen HOST:PORT] [--users FILE]\n"
    "                               serve a repo, or a client's cache to its neighbours\n"
    "  sync SRC DEST                copy a repo to another directory or host, in the order\n"
    "                               that keeps it consistent for readers meanwhile\n"
    "  pull URL NAME --key PUB [--as DISK]\n"
    "                               create local disk DISK tracking image NAME at URL\n"
    "  mount DISK MOUNTPOINT [-f]   MOUNTPOINT/disk.img is the disk, read-write\n"
    "  umount MOUNTPOINT            flush and unmount\n"
    "  update DISK                  move DISK to the newest signed version\n"
    "  stats [DISK] [--json]        bytes fetched, cache hits and misses, cache size\n"
    "  ls [URL [--key PUB]]         the images at URL (its signed catalog), or the disks here\n"
    "  rm DISK                      remove a local disk (not while it is in use)\n"
    "  fetch DISK [--boot]          fetch all of DISK's version (or its boot set) for offline use\n"
    "  remote DISK [--set-url URL] [--add-mirror URL]\n"
    "                               where DISK's image comes from; change it\n"
    "  config [cache-size [SIZE]]   settings of the state directory\n"
    "  run URL NAME --key PUB [--reset] | run DISK\n"
    "                               pull, update and boot a version's own boot kit\n"
    "  run --kernel FILE (--disk DISK | --disk-file FILE)... [--vmm auto|hv|qemu]\n"
    "                               boot a VM from circ disks (hv on KVM, or QEMU)\n"
    "\n"
    "Cold migration (a user's disk follows its owner, encrypted):\n"
    "  create DISK --size SIZE      a blank local disk (a home disk)\n"
    "  push DISK [--to URL --user USER] [--keep-lease]\n"
    "                               check DISK in: a new encrypted check-in on the server\n"
    "  checkout URL DISK --user USER [--version N] [--steal]\n"
    "                               check DISK out here (takes its lease); blocks arrive lazily\n"
    "  log DISK [--boots]           DISK's check-ins, or its boot record\n"
    "  lease DISK                   who holds DISK's lease\n"
    "\n"
    "Options for every command:\n"
    "  --state DIR   client state directory (default $CIRC_STATE, else\n"
    "                $XDG_CACHE_HOME/circ, else ~/.cache/circ)\n"
    "  -v, --verbose say more\n"
    "  -h, --help    show help (`circ COMMAND --help` for a command's)\n"
    "  --version     print \"circ VERSION\" and exit\n"
    "\n"
    "Exit status: 0 success, 1 operational error, 2 usage error.\n";

struct command {
	const char *name;
	int (*run)(struct cli *cli, int argc, char **argv);
};

/* One command a line reads best. */
/* clang-format off */
static const struct command commands[] = {
	{ "keygen", cmd_keygen },
	{ "publish", cmd_publish },
	{ "verify", cmd_verify },
	{ "sync", cmd_sync },
	{ "serve", cmd_serve },
	{ "pull", cmd_pull },
	{ "mount", cmd_mount },
	{ "umount", cmd_umount },
	{ "update", cmd_update },
	{ "stats", cmd_stats },
	{ "ls", cmd_ls },
	{ "rm", cmd_rm },
	{ "run", cmd_run },
	{ "create", cmd_create },
	{ "push", cmd_push },
	{ "checkout", cmd_checkout },
	{ "log", cmd_log },
	{ "lease", cmd_lease },
	{ "config", cmd_config },
	{ "fetch", cmd_fetch },
	{ "remote", cmd_remote },
};
/* clang-format on */

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "version", no_argument, NULL, OPT_LONG },
		{ 0 },
	};
	struct cli cli = { .usage = usage };
	struct rlimit rl;
	int c;

	/*
	 * The block cache holds a descriptor per pack it reads (a pack is 1/16
	 * of its bound, or smaller when a short command made it): the soft
	 * limit's 1024 is for select(), which circ does not use.
	 */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	/* Options before the command; '+' stops at the command's name. */
	while ((c = cli_getopt(&cli, argc, argv, "+", longopts)) != -1) {
		if (c == OPT_LONG) {
			printf("circ %s\n", CIRC_VERSION);
			return 0;
		}
		if (c == CLI_EXIT_OK)
			return 0;
		return EXIT_USAGE;
	}
	if (optind >= argc)
		return cli_usage_error(&cli, "no command given");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[optind], commands[i].name) != 0)
			continue;
		cli.cmd = commands[i].name;
		argc -= optind;
		argv += optind;
		optind = 0; /* glibc: restart getopt for the command's own options */
		return commands[i].run(&cli, argc, argv);
	}
	return cli_usage_error(&cli, "unknown command '%s'", argv[optind]);
}
