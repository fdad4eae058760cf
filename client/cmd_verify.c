/* SPDX-License-Identifier: MIT */
#include "client/cli.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/json.h"
#include "util/parallel.h"
#include "blockfs/repo.h"
#include "vdisk/image.h"
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

struct entry {
	struct block_id id;
	uint32_t index; /* the first block of the image with this ID */
};

struct damage {
	uint32_t index;
	struct block_id id;
	struct circ_err err;
};

struct check {
	struct repo *repo;
	uint32_t block_size;
	struct entry *entries;
	size_t n_entries;
	atomic_uint_fast64_t bytes_done;
	struct progress *prog;

	pthread_mutex_t lock;
	struct damage *damaged;
	size_t n_damaged, cap_damaged;
	bool out_of_memory;
};

static int entry_cmp(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	int c = memcmp(x->id.b, y->id.b, BLOCK_ID_LEN);

	if (c)
		return c;
	return x->index < y->index ? -1 : x->index > y->index;
}

static int damage_cmp(const void *a, const void *b)
{
	const struct damage *x = a, *y = b;

	return x->index < y->index ? -1 : x->index > y->index;
}

static void record_damage(struct check *ck, const struct entry *e, const struct circ_err *err)
{
	pthread_mutex_lock(&ck->lock);
	if (ck->n_damaged == ck->cap_damaged) {
		size_t cap = ck->cap_damaged ? ck->cap_damaged * 2 : 16;
		struct damage *p = realloc(ck->damaged, cap * sizeof(*p));

		if (!p) {
			ck->out_of_memory = true;
			pthread_mutex_unlock(&ck->lock);
			return;
		}
		ck->damaged = p;
		ck->cap_damaged = cap;
	}
	ck->damaged[ck->n_damaged++] =
	    (struct damage){ .index = e->index, .id = e->id, .err = *err };
	pthread_mutex_unlock(&ck->lock);
}

struct check_scratch {
	uint8_t *data;
	struct buf comp;
};

static void *check_scratch_new(void *ctx, struct circ_err *err)
{
	struct check *ck = ctx;
	struct check_scratch *sc = calloc(1, sizeof(*sc));

	if (sc && !(sc->data = malloc(ck->block_size))) {
		free(sc);
		sc = NULL;
	}
	if (!sc)
		err_set(err, ENOMEM, "out of memory");
	return sc;
}

static void check_scratch_free(void *ctx, void *scratch)
{
	struct check_scratch *sc = scratch;

	(void)ctx;
	buf_free(&sc->comp);
	free(sc->data);
	free(sc);
}

/* A damaged block is recorded, not a failure: every block is checked. */
static int check_block(void *ctx, void *scratch, uint64_t i, struct circ_err *err)
{
	struct check *ck = ctx;
	struct check_scratch *sc = scratch;
	const struct entry *e = &ck->entries[i];
	struct circ_err bad;

	(void)err;
	if (repo_read_block(ck->repo, &e->id, ck->block_size, sc->data, &sc->comp, &bad))
		record_damage(ck, e, &bad);
	atomic_fetch_add(&ck->bytes_done, ck->block_size);
	return 0;
}

static void check_progress(void *ctx)
{
	struct check *ck = ctx;

	progress_update(ck->prog, atomic_load(&ck->bytes_done));
}

/*
 * Lists each distinct non-zero block once, by the first index that uses it:
 * the image's, then the boot kit's (numbered on after the image's).
 */
static size_t distinct_blocks(const struct manifest *m, struct entry *out, size_t *zeros)
{
	const struct manifest_file *kit[2] = { &m->kernel, &m->initrd };
	size_t n = 0, w = 0;
	uint32_t index = m->n_blocks;

	for (uint32_t i = 0; i < m->n_blocks; i++)
		if (!block_id_is_zero(&m->blocks[i]))
			out[n++] = (struct entry){ .id = m->blocks[i], .index = i };
	*zeros = m->n_blocks - n;
	for (int f = 0; f < 2; f++)
		for (uint32_t i = 0; i < kit[f]->n_blocks; i++, index++)
			if (!block_id_is_zero(&kit[f]->blocks[i]))
				out[n++] =
				    (struct entry){ .id = kit[f]->blocks[i], .index = index };
	if (n)
		qsort(out, n, sizeof(*out), entry_cmp);
	for (size_t i = 0; i < n; i++)
		if (w == 0 || !block_id_equal(&out[w - 1].id, &out[i].id))
			out[w++] = out[i];
	return w;
}

static int check_blocks(const struct cli *cli, struct check *ck, unsigned threads,
                        const struct manifest *m)
{
	const struct parallel_ops ops = { .thread_start = check_scratch_new,
		                          .thread_end = check_scratch_free,
		                          .item = check_block,
		                          .progress = check_progress };
	struct progress prog;
	struct circ_err err;
	int rc;

	progress_start(&prog, "verifying", (uint64_t)ck->n_entries * ck->block_size);
	ck->prog = &prog;
	rc = parallel_for(ck->n_entries, threads, 1, &ops, ck, &err);
	progress_end(&prog, atomic_load(&ck->bytes_done));
	if (rc)
		return cli_fail(cli, "%s", err.msg);
	if (ck->out_of_memory)
		return cli_fail(cli, "out of memory");
	if (ck->n_damaged)
		qsort(ck->damaged, ck->n_damaged, sizeof(*ck->damaged), damage_cmp);
	for (size_t i = 0; i < ck->n_damaged; i++) {
		const struct damage *d = &ck->damaged[i];
		char hex[BLOCK_ID_HEX_LEN + 1];

		block_id_to_hex(&d->id, hex);
		if (d->index < m->n_blocks)
			cli_fail(cli, "%s version %llu: block %u (%s) is %s: %s", m->name,
			         (unsigned long long)m->version, d->index, hex,
			         d->err.errnum == ENOENT ? "missing" : "damaged", d->err.msg);
		else
			cli_fail(cli, "%s version %llu: %s block %u (%s) is %s: %s", m->name,
			         (unsigned long long)m->version,
			         d->index - m->n_blocks < m->kernel.n_blocks ? "kernel" : "initrd",
			         d->index - m->n_blocks < m->kernel.n_blocks
			             ? d->index - m->n_blocks
			             : d->index - m->n_blocks - m->kernel.n_blocks,
			         hex, d->err.errnum == ENOENT ? "missing" : "damaged", d->err.msg);
	}
	if (ck->n_damaged)
		return cli_fail(cli, "%s version %llu: %zu of %zu blocks missing or damaged",
		                m->name, (unsigned long long)m->version, ck->n_damaged,
		                ck->n_entries);
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
	struct check ck = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct manifest m = { 0 };
	struct repo *repo = NULL;
	struct key *key = NULL;
	struct pointer pt;
	struct circ_err err;
	uint64_t version = 0, threads = 0;
	size_t n_urls = 0, zeros = 0;
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

	ck.repo = repo;
	ck.block_size = m.block_size;
	ck.entries = malloc(((size_t)m.n_blocks + m.kernel.n_blocks + m.initrd.n_blocks + 1) *
	                    sizeof(*ck.entries));
	if (!ck.entries) {
		ret = cli_fail(cli, "out of memory");
		goto out;
	}
	ck.n_entries = distinct_blocks(&m, ck.entries, &zeros);
	if (check_blocks(cli, &ck, (unsigned)threads, &m))
		goto out;
	if (cli->json) {
		struct buf b = { 0 };
		struct json j;

		cli_json_start(&j, &b);
		json_str(&j, "name", name);
		json_u64(&j, "version", m.version);
		json_u64(&j, "image_size", m.image_size);
		json_u64(&j, "blocks", m.n_blocks);
		json_u64(&j, "distinct_blocks", ck.n_entries);
		json_u64(&j, "zero_blocks", zeros);
		json_bool(&j, "good", true);
		ret = cli_json_print(cli, &j);
		goto out;
	}
	printf("%s version %llu: %llu bytes, %u blocks (%zu distinct, %zu zero): "
	       "signatures and blocks good\n",
	       name, (unsigned long long)m.version, (unsigned long long)m.image_size, m.n_blocks,
	       ck.n_entries, zeros);
	ret = 0;
	goto out;
fail:
	ret = cli_fail_err(cli, &err);
out:
	free(ck.entries);
	free(ck.damaged);
	manifest_release(&m);
	repo_close(repo);
	key_free(key);
	free(urls);
	return ret;
}
