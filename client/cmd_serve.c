/* SPDX-License-Identifier: MIT */
#include "client/cli.h"

#include <signal.h>
#include <stdio.h>

#include "server/server.h"

static const char usage[] =
    "Usage: circ serve --repo DIR [--listen HOST:PORT] [--threads N] [--quiet]\n"
    "                  [--users FILE [--quota SIZE]]\n"
    "\n"
    "Serves repo DIR over HTTP (GET and HEAD) until SIGINT or SIGTERM. Only the\n"
    "objects of the repository format are served; any other file in DIR (a key, a\n"
    "temporary) is 404. Blocks and manifests are sent as immutable, the pointer with\n"
    "a short max-age, so any HTTP cache can sit in front. Paths leading outside DIR\n"
    "are refused and logged. Prints \"listening on http://HOST:PORT\" on stdout once\n"
    "ready, and one access-log line per request on stderr (client, method, path,\n"
    "status, bytes, duration, and why a request was refused).\n"
    "\n"
    "Without --users the server is read-only and users/ does not exist. With it,\n"
    "users/USER/ holds USER's encrypted disks (keys, blocks, layers, heads), which\n"
    "only USER may read and write (PUT), with HTTP Basic authentication; public\n"
    "objects stay read-only and need no credentials. Use it behind TLS (a reverse\n"
    "proxy) anywhere but loopback: Basic sends the password with every request.\n"
    "\n"
    "  --repo DIR          the repo to serve\n"
    "  --listen HOST:PORT  address (default " SERVER_DEFAULT_LISTEN "; port 0 picks a free one)\n"
    "  --threads N         worker threads (default 8)\n"
    "  --quiet             no access log\n"
    "  --users FILE        who may upload: an htpasswd file of bcrypt hashes, made with\n"
    "                      `htpasswd -B`; read once at start, passwords never logged\n"
    "  --quota SIZE        the most bytes each user may store under users/USER/\n"
    "                      (K, M, G suffixes; default no limit); past it PUT gets 507\n";

enum {
	OPT_REPO = OPT_LONG,
	OPT_LISTEN,
	OPT_THREADS,
	OPT_QUIET,
	OPT_USERS,
	OPT_QUOTA
};

int cmd_serve(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "repo", required_argument, NULL, OPT_REPO },
		{ "listen", required_argument, NULL, OPT_LISTEN },
		{ "threads", required_argument, NULL, OPT_THREADS },
		{ "quiet", no_argument, NULL, OPT_QUIET },
		{ "users", required_argument, NULL, OPT_USERS },
		{ "quota", required_argument, NULL, OPT_QUOTA },
		{ 0 },
	};
	struct server_config cfg = { .access_log = stderr };
	struct server *srv;
	struct circ_err err;
	sigset_t stop;
	uint64_t v;
	int c, sig;

	cli->usage = usage;
	while ((c = cli_getopt(cli, argc, argv, "", longopts)) != -1) {
		switch (c) {
		case CLI_EXIT_OK:
			return 0;
		case OPT_REPO:
			cfg.repo_dir = optarg;
			break;
		case OPT_LISTEN:
			cfg.listen = optarg;
			break;
		case OPT_THREADS:
			if (cli_parse_u64(optarg, &v) || v == 0 || v > 1024)
				return cli_usage_error(cli, "bad thread count '%s'", optarg);
			cfg.threads = (unsigned)v;
			break;
		case OPT_QUIET:
			cfg.access_log = NULL;
			break;
		case OPT_USERS:
			cfg.users_file = optarg;
			break;
		case OPT_QUOTA:
			if (cli_parse_size(optarg, &v) || v == 0)
				return cli_usage_error(cli, "bad quota '%s'", optarg);
			cfg.quota = v;
			break;
		default:
			return EXIT_USAGE;
		}
	}
	if (optind != argc)
		return cli_usage_error(cli, "unexpected argument '%s'", argv[optind]);
	if (!cfg.repo_dir)
		return cli_usage_error(cli, "--repo is required");
	if (cfg.quota && !cfg.users_file)
		return cli_usage_error(cli,
		                       "--quota needs --users (without it nothing is uploaded)");

	/* Block the stop signals before any thread exists, so only sigwait sees them. */
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (server_start(&cfg, &srv, &err))
		return cli_fail_err(cli, &err);
	printf("listening on http://%s:%u\n",
	       cfg.listen && cfg.listen[0] == '[' ? "[::1]" : "127.0.0.1", server_port(srv));
	fflush(stdout);
	sigwait(&stop, &sig);
	server_stop(srv);
	cli_info(cli, "stopped on signal %d", sig);
	return 0;
}
