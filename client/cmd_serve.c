/* SPDX-License-Identifier: MIT */
#include "client/cli.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vdisk/state.h"
#include "server/server.h"

static const char usage[] =
    "Usage: circ serve --repo DIR [--listen HOST:PORT] [--threads N] [--quiet]\n"
    "                  [--users FILE [--quota SIZE]] [--max-connections N]\n"
    "                  [--max-per-client N] [--idle-timeout TIME]\n"
    "       circ serve --cache STATE [--listen HOST:PORT] [--threads N] [--quiet]\n"
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
    "With --cache, a lab machine serves its neighbours the blocks its client has\n"
    "fetched: those in STATE/cache (a client's state directory), at the repo's\n"
    "block paths. Each is checked against its SHA-256 on every request (a damaged\n"
    "entry is 404) and compressed as a repo stores it. Everything else (pointers,\n"
    "manifests) is 404: clients list peers before the origin, as in\n"
    "`circ pull PEER NAME --mirror ORIGIN`, and fetch those, and any block a peer\n"
    "lacks, from the next URL. Clients check every block against its ID, so a peer\n"
    "can slow them down but never feed them bad data.\n"
    "\n"
    "  --repo DIR          the repo to serve\n"
    "  --cache STATE       serve the block cache of client state directory STATE\n"
    "  --listen HOST:PORT  address (default " SERVER_DEFAULT_LISTEN "; port 0 picks a free one)\n"
    "  --threads N         worker threads (default 8)\n"
    "  --quiet             no access log\n"
    "  --users FILE        who may upload: an htpasswd file of bcrypt hashes, made with\n"
    "                      `htpasswd -B`; read at start and again on SIGHUP (without\n"
    "                      dropping a connection), passwords never logged\n"
    "  --quota SIZE        the most bytes each user may store under users/USER/\n"
    "                      (K, M, G suffixes; default no limit); past it PUT gets 507\n"
    "  --max-connections N connections held at once (default 4096; the open file\n"
    "                      limit is raised to fit, or bounds it)\n"
    "  --max-per-client N  connections from one client address (default 64): one\n"
    "                      host trickling requests (slowloris) cannot fill the server\n"
    "  --idle-timeout TIME a connection silent this long is closed (default 15s;\n"
    "                      s, m, h suffixes)\n";

enum {
	OPT_REPO = OPT_LONG,
	OPT_LISTEN,
	OPT_THREADS,
	OPT_QUIET,
	OPT_USERS,
	OPT_QUOTA,
	OPT_CACHE,
	OPT_MAX_CONN,
	OPT_MAX_PER_CLIENT,
	OPT_IDLE_TIMEOUT
};

/* HOST:PORT whose PORT is a number from 0 to 65535 (the host is checked on binding). */
static bool listen_valid(const char *listen)
{
	const char *colon = strrchr(listen, ':');
	uint64_t port;

	return colon && cli_parse_u64(colon + 1, &port) == 0 && port <= 65535;
}

int cmd_serve(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "repo", required_argument, NULL, OPT_REPO },
		{ "listen", required_argument, NULL, OPT_LISTEN },
		{ "threads", required_argument, NULL, OPT_THREADS },
		{ "quiet", no_argument, NULL, OPT_QUIET },
		{ "users", required_argument, NULL, OPT_USERS },
		{ "quota", required_argument, NULL, OPT_QUOTA },
		{ "cache", required_argument, NULL, OPT_CACHE },
		{ "max-connections", required_argument, NULL, OPT_MAX_CONN },
		{ "max-per-client", required_argument, NULL, OPT_MAX_PER_CLIENT },
		{ "idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT },
		{ 0 },
	};
	struct server_config cfg = { .access_log = stderr };
	struct server *srv;
	struct circ_err err;
	const char *cache_state = NULL;
	char *cache_dir = NULL;
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
			if (!listen_valid(optarg))
				return cli_usage_error(
				    cli,
				    "bad listen address '%s' (HOST:PORT, PORT from 0 to 65535)",
				    optarg);
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
		case OPT_CACHE:
			cache_state = optarg;
			break;
		case OPT_QUOTA:
			if (cli_parse_size(optarg, &v) || v == 0)
				return cli_usage_error(cli, "bad quota '%s'", optarg);
			cfg.quota = v;
			break;
		case OPT_MAX_CONN:
		case OPT_MAX_PER_CLIENT:
			if (cli_parse_u64(optarg, &v) || v == 0 || v > 1000000)
				return cli_usage_error(
				    cli, "bad %s limit '%s' (1 to 1000000)",
				    c == OPT_MAX_CONN ? "connection" : "per-client", optarg);
			*(c == OPT_MAX_CONN ? &cfg.max_connections : &cfg.max_per_client) =
			    (unsigned)v;
			break;
		case OPT_IDLE_TIMEOUT:
			if (cli_parse_duration(optarg, &v) || v == 0 || v > 86400)
				return cli_usage_error(cli, "bad idle timeout '%s' (1s to 24h)",
				                       optarg);
			cfg.idle_timeout = (unsigned)v;
			break;
		default:
			return EXIT_USAGE;
		}
	}
	if (optind != argc)
		return cli_usage_error(cli, "unexpected argument '%s'", argv[optind]);
	if (cfg.repo_dir && cache_state)
		return cli_usage_error(cli, "--repo and --cache are exclusive");
	if (!cfg.repo_dir && !cache_state)
		return cli_usage_error(cli, "--repo or --cache is required");
	if (cache_state && cfg.users_file)
		return cli_usage_error(cli, "--users needs --repo (a cache serves blocks only)");
	if (cfg.quota && !cfg.users_file)
		return cli_usage_error(cli,
		                       "--quota needs --users (without it nothing is uploaded)");

	/* Block the stop signals (and SIGHUP) before any thread exists, so only sigwait sees them.
	 */
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (cache_state) {
		cache_dir = state_cache_dir(cache_state);
		if (!cache_dir)
			return cli_fail(cli, "out of memory");
		cfg.cache_dir = cache_dir;
	}
	if (server_start(&cfg, &srv, &err)) {
		free(cache_dir);
		return cli_fail_err(cli, &err);
	}
	printf("listening on http://%s:%u\n",
	       cfg.listen && cfg.listen[0] == '[' ? "[::1]" : "127.0.0.1", server_port(srv));
	fflush(stdout);
	/* SIGHUP reads the users file again; connections and requests go on meanwhile. */
	while (sigwait(&stop, &sig) == 0 && sig == SIGHUP) {
		size_t n;

		if (server_reload_users(srv, &n, &err))
			fprintf(stderr, "circ serve: SIGHUP: %s; the users stay as they were\n",
			        err.msg);
		else
			fprintf(stderr, "circ serve: SIGHUP: read %s again: %zu users\n",
			        cfg.users_file, n);
	}
	server_stop(srv);
	free(cache_dir);
	cli_info(cli, "stopped on signal %d", sig);
	return 0;
}
