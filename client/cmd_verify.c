/* SPDX-License-Identifier: MIT */
#include "client/cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/json.h"
#include "blockfs/repo.h"
#include "vdisk/image.h"
#include "vdisk/verify.h"
#include "client/progress.h"

static const char usage[] =
    "Usage: circ verify (--repo DIR | --url URL...) --key PUB --name NAME [--version N]\n"
    "\n"
    "Checks the signed pointer and manifest of image NAME against PUB, then fetches\n"
    "every block of the version (default: the newest) and checks its SHA-256.\n"
    "Exits 1 naming each missing or damaged block.\n"
    "\n"
    "  --repo DIR      a repo directory\n"
    "  --url URL       a repo over HTTP; repeat for mirrors, tried in order\n"
    "  --key PUB       the publisher's Ed25519 public key (PEM)\n"
    "  --name NAME     the image\n"
    "  --version N     the version to check (default: the pointer's)\n"
    "  --threads N     blocks checked at once (default: 8 over HTTP, else one per CPU)\n"
    "  --json          one JSON object on stdout instead of the summary line\n";

/* Checks every block of m, naming each missing or damaged one; 0 when all are good. */
static int check_blocks(const struct cli *cli, struct repo *repo, unsigned threads,
                        const struct manifest *m, struct verify_result *res)
{
	struct progress prog;
	struct verify_opts o = { .threads = threads, .progress_ctx = &prog };
	struct circ_err err;
	int rc;

	progress_start(&prog, "verifying", 0);
	o.progress = prog.enabled ? progress_report : NULL;
	rc = verify_blocks(repo, m, &o, res, &err);
	progress_end(&prog, rc ? 0 : (uint64_t)res->distinct * m->block_size);
	if (rc)
		return cli_fail_err(cli, &err);
	for (size_t i = 0; i < res->n_damaged; i++) {
		const struct verify_damage *d = &res->damaged[i];
		const char *what = d->err.errnum == ENOENT ? "missing" : "damaged";
		char hex[BLOCK_ID_HEX_LEN + 1];
		const char *file;
		uint32_t block;

		block_id_to_hex(&d->id, hex);
		file = verify_locate(m, d->index, &block);
		if (strcmp(file, "image") == 0)
			cli_fail(cli, "%s version %llu: block %u (%s) is %s: %s", m->name,
			         (unsigned long long)m->version, block, hex, what, d->err.msg);
		else
			cli_fail(cli, "%s version %llu: %s block %u (%s) is %s: %s", m->name,
			         (unsigned long long)m->version, file, block, hex, what,
			         d->err.msg);
	}
	if (res->n_damaged)
		return cli_fail(cli, "%s version %llu: %zu of %zu blocks missing or damaged",
		                m->name, (unsigned long long)m->version, res->n_damaged,
		                res->distinct);
	return 0;
}

enum {
	OPT_REPO = OPT_LONG,
	OPT_URL,
	OPT_KEY,
	OPT_NAME,
	OPT_VERSION,
	OPT_THREADS
};

int cmd_verify(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "repo", required_argument, NULL, OPT_REPO },
		{ "url", required_argument, NULL, OPT_URL },
		{ "mirror", required_argument, NULL, OPT_URL },
		{ "key", required_argument, NULL, OPT_KEY },
		{ "name", required_argument, NULL, OPT_NAME },
		{ "version", required_argument, NULL, OPT_VERSION },
		{ "threads", required_argument, NULL, OPT_THREADS },
		{ 0 },
	};
	const char *dir = NULL, *key_path = NULL, *name = NULL;
	const char **urls = calloc((size_t)argc + 1, sizeof(*urls));
	struct verify_result res = { 0 };
	struct manifest m = { 0 };
	struct repo *repo = NULL;
	struct key *key = NULL;
	struct pointer pt;
	struct circ_err err;
	uint64_t version = 0, threads = 0;
	size_t n_urls = 0;
	int c, ret = 1;

	cli->usage = usage;
	cli->reports = true;
	if (!urls)
		return cli_fail(cli, "out of memory");
	while ((c = cli_getopt(cli, argc, argv, "", longopts)) != -1) {
		switch (c) {
		case CLI_EXIT_OK:
			ret = 0;
			goto out;
		case OPT_REPO:
			dir = optarg;
			break;
		case OPT_URL:
			urls[n_urls++] = optarg;
			break;
		case OPT_KEY:
			key_path = optarg;
			break;
		case OPT_NAME:
			name = optarg;
			break;
		case OPT_VERSION:
			if (cli_parse_u64(optarg, &version) || version == 0) {
				ret = cli_usage_error(cli, "bad version '%s'", optarg);
				goto out;
			}
			break;
		case OPT_THREADS:
			if (cli_parse_u64(optarg, &threads) || threads == 0 || threads > 256) {
				ret = cli_usage_error(cli, "bad thread count '%s'", optarg);
				goto out;
			}
			break;
		default:
			ret = EXIT_USAGE;
			goto out;
		}
	}
	if (optind != argc || !key_path || !name || (!dir == !n_urls)) {
		ret = cli_usage_error(cli, "give --key, --name and one of --repo or --url");
		goto out;
	}
	if (key_load_public(key_path, &key, &err))
		goto fail;
	if (dir) {
		if (repo_open_dir(dir, false, &repo, &err))
			goto fail;
		if (!threads)
			threads = (uint64_t)sysconf(_SC_NPROCESSORS_ONLN);
	} else {
		struct fetch_config fc = { .mirrors = urls, .n_mirrors = n_urls };

		if (repo_open_url(&fc, &repo, &err))
			goto fail;
		if (!threads)
			threads = 8;
	}
	if (image_load_pointer(repo, key, name, (uint64_t)time(NULL), &pt, &err) ||
	    image_load_manifest(repo, key, &pt, version, &m, NULL, &err))
		goto fail;

	if (check_blocks(cli, repo, (unsigned)threads, &m, &res))
		goto out;
	if (cli->json) {
		struct buf b = { 0 };
		struct json j;

		cli_json_start(&j, &b);
		json_str(&j, "name", name);
		json_u64(&j, "version", m.version);
		json_u64(&j, "image_size", m.image_size);
		json_u64(&j, "blocks", m.n_blocks);
		json_u64(&j, "distinct_blocks", res.distinct);
		json_u64(&j, "zero_blocks", res.zeros);
		json_bool(&j, "good", true);
		ret = cli_json_print(cli, &j);
		goto out;
	}
	printf("%s version %llu: %llu bytes, %u blocks (%zu distinct, %zu zero): "
	       "signatures and blocks good\n",
	       name, (unsigned long long)m.version, (unsigned long long)m.image_size, m.n_blocks,
	       res.distinct, res.zeros);
	ret = 0;
	goto out;
fail:
	ret = cli_fail_err(cli, &err);
out:
	verify_result_release(&res);
	manifest_release(&m);
	repo_close(repo);
	key_free(key);
	free(urls);
	return ret;
}
