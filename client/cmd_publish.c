/* SPDX-License-Identifier: MIT */
#include "client/cli.h"
#include "util/json.h"
#include "vdisk/publish.h"
#include "client/progress.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "blockfs/block.h"
#include "vdisk/manifest.h"

static const char usage[] =
    "Usage: circ publish --repo DIR --key KEY --name NAME [OPTIONS] IMAGE\n"
    "\n"
    "Publishes IMAGE (a raw disk image or block device) as the next version of\n"
    "image NAME in repo DIR, and prints the new version number. Only blocks the\n"
    "repo does not hold yet are written; the signed pointer to the newest version\n"
    "is replaced last, so an interrupted publish leaves the previous version served.\n"
    "Then the repo's signed catalog (`circ ls URL`) is rewritten.\n"
    "\n"
    "  --repo DIR            repository directory (created if missing)\n"
    "  --key KEY             Ed25519 private key (PEM) from `circ keygen`\n"
    "  --name NAME           image name: letters, digits, '.', '_', '-'\n"
    "  --block-size SIZE     power of two from 4K to 4M (default 64K)\n"
    "  --expires DURATION    pointer lifetime with a unit: 30d, 12h, 90m, 45s\n"
    "                        (default 30d); clients refuse an expired pointer\n"
    "  --threads N           worker threads (default: one per CPU)\n"
    "  --level N             zstd compression level (default 3)\n"
    "  --prefetch FILE       block numbers a boot reads, in order (from `circ mount\n"
    "                        --record-reads`): clients fetch them ahead on mount\n"
    "  --kernel FILE         the version's boot kit: a kernel (bzImage or ELF64), stored\n"
    "                        as blocks like the image's; without it the previous\n"
    "                        version's kit is kept\n"
    "  --initrd FILE         the kit's initrd (with --kernel, or to replace the kept one's)\n"
    "  --cmdline STRING      the kernel command line, printable ASCII, at most 4096 bytes\n"
    "                        (default: none with --kernel, else the kept one)\n"
    "  --description TEXT    what `circ ls` shows, UTF-8, at most 1024 bytes (default:\n"
    "                        the previous version's)\n"
    "  --format 1|2          the manifest and pointer format (default 2; 1 for clients\n"
    "                        older than the boot kit: no kit, an uncompressed table)\n"
    "  --json                one JSON object on stdout: the version and its figures\n"
    "  -v, --verbose         print a summary on stderr\n";

enum {
	OPT_REPO = OPT_LONG,
	OPT_KEY,
	OPT_NAME,
	OPT_BLOCK_SIZE,
	OPT_EXPIRES,
	OPT_THREADS,
	OPT_LEVEL,
	OPT_PREFETCH,
	OPT_KERNEL,
	OPT_INITRD,
	OPT_CMDLINE,
	OPT_DESCRIPTION,
	OPT_FORMAT,
};

static int print_json(const struct cli *cli, const char *name, const struct publish_result *r)
{
	struct buf b = { 0 };
	struct json j;

	cli_json_start(&j, &b);
	json_str(&j, "name", name);
	json_u64(&j, "version", r->version);
	json_u64(&j, "image_size", r->image_size);
	json_u64(&j, "blocks", r->blocks);
	json_u64(&j, "zero_blocks", r->zero_blocks);
	json_u64(&j, "new_blocks", r->new_blocks);
	json_u64(&j, "new_bytes", r->new_bytes);
	json_u64(&j, "damaged_removed", r->damaged_removed);
	json_u64(&j, "kernel_size", r->kernel_size);
	json_u64(&j, "initrd_size", r->initrd_size);
	json_bool(&j, "kit_inherited", r->kit_inherited);
	json_u64(&j, "catalog_images", r->catalog_images);
	json_fixed(&j, "seconds", r->seconds, 3);
	return cli_json_print(cli, &j);
}

int cmd_publish(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "repo", required_argument, NULL, OPT_REPO },
		{ "key", required_argument, NULL, OPT_KEY },
		{ "name", required_argument, NULL, OPT_NAME },
		{ "block-size", required_argument, NULL, OPT_BLOCK_SIZE },
		{ "expires", required_argument, NULL, OPT_EXPIRES },
		{ "threads", required_argument, NULL, OPT_THREADS },
		{ "level", required_argument, NULL, OPT_LEVEL },
		{ "prefetch", required_argument, NULL, OPT_PREFETCH },
		{ "kernel", required_argument, NULL, OPT_KERNEL },
		{ "initrd", required_argument, NULL, OPT_INITRD },
		{ "cmdline", required_argument, NULL, OPT_CMDLINE },
		{ "description", required_argument, NULL, OPT_DESCRIPTION },
		{ "format", required_argument, NULL, OPT_FORMAT },
		{ 0 },
	};
	struct publish_opts opts = {
		.block_size = BLOCK_SIZE_DEFAULT,
		.expires_in = 30 * 86400,
		.level = 3,
	};
	struct progress prog;
	struct publish_result res;
	struct circ_err err;
	uint64_t v;
	int c, rc;

	cli->usage = usage;
	cli->reports = true;
	while ((c = cli_getopt(cli, argc, argv, "", longopts)) != -1) {
		switch (c) {
		case CLI_EXIT_OK:
			return 0;
		case OPT_REPO:
			opts.repo_dir = optarg;
			break;
		case OPT_KEY:
			opts.key_path = optarg;
			break;
		case OPT_NAME:
			opts.name = optarg;
			break;
		case OPT_BLOCK_SIZE:
			if (cli_parse_size(optarg, &v) || !block_size_valid(v))
				return cli_usage_error(
				    cli, "block size '%s' is not a power of two from 4K to 4M",
				    optarg);
			opts.block_size = (uint32_t)v;
			break;
		case OPT_EXPIRES:
			/* A unit is required: a bare "30" could mean seconds or days. */
			if (cli_parse_duration(optarg, &opts.expires_in) || opts.expires_in == 0 ||
			    optarg[strspn(optarg, "0123456789")] == '\0')
				return cli_usage_error(
				    cli, "bad duration '%s' (a unit is needed: 30d, 12h, 90m, 45s)",
				    optarg);
			break;
		case OPT_THREADS:
			if (cli_parse_u64(optarg, &v) || v == 0 || v > 1024)
				return cli_usage_error(cli, "bad thread count '%s'", optarg);
			opts.threads = (unsigned)v;
			break;
		case OPT_LEVEL:
			if (cli_parse_u64(optarg, &v) || v < 1 || v > 19)
				return cli_usage_error(cli, "zstd level '%s' not in 1..19", optarg);
			opts.level = (int)v;
			break;
		case OPT_PREFETCH:
			opts.prefetch = optarg;
			break;
		case OPT_KERNEL:
			opts.kernel = optarg;
			break;
		case OPT_INITRD:
			opts.initrd = optarg;
			break;
		case OPT_CMDLINE:
			if (!manifest_cmdline_valid(optarg, strlen(optarg)))
				return cli_usage_error(
				    cli, "--cmdline: at most %d printable ASCII characters",
				    MANIFEST_CMDLINE_MAX);
			opts.cmdline = optarg;
			break;
		case OPT_DESCRIPTION:
			if (!manifest_description_valid(optarg, strlen(optarg)))
				return cli_usage_error(cli,
				                       "--description: at most %d bytes of UTF-8 "
				                       "without control characters",
				                       MANIFEST_DESC_MAX);
			opts.description = optarg;
			break;
		case OPT_FORMAT:
			if (strcmp(optarg, "1") != 0 && strcmp(optarg, "2") != 0)
				return cli_usage_error(cli, "--format is 1 or 2");
			opts.format = optarg[0] == '1' ? 1 : 0;
			break;
		default:
			return EXIT_USAGE;
		}
	}
	if (!opts.repo_dir || !opts.key_path || !opts.name)
		return cli_usage_error(cli, "--repo, --key and --name are required");
	if (argc - optind != 1)
		return cli_usage_error(cli, "expected one IMAGE");
	opts.image = argv[optind];

	progress_start(&prog, "publishing", 0);
	opts.progress = prog.enabled ? progress_report : NULL;
	opts.progress_ctx = &prog;
	rc = publish_image(&opts, &res, &err);
	if (!rc) {
		prog.total = res.image_size;
		progress_end(&prog, res.image_size);
	} else if (prog.drawn) {
		progress_end(&prog, 0);
	}
	if (rc == PUBLISH_USAGE)
		return cli_usage_error(cli, "%s", err.msg);
	if (rc)
		return cli_fail_err(cli, &err);
	if (res.damaged_removed)
		cli_warn(
		    cli,
		    "%llu damaged blocks a crashed publish left were removed (and stored again "
		    "where needed)",
		    (unsigned long long)res.damaged_removed);
	if (cli->json)
		return print_json(cli, opts.name, &res);
	printf("%llu\n", (unsigned long long)res.version);
	cli_info(cli,
	         "%s version %llu: %llu bytes, %llu blocks (%llu zero), %llu new blocks stored "
	         "(%llu bytes compressed), %.2f s",
	         opts.name, (unsigned long long)res.version, (unsigned long long)res.image_size,
	         (unsigned long long)res.blocks, (unsigned long long)res.zero_blocks,
	         (unsigned long long)res.new_blocks, (unsigned long long)res.new_bytes,
	         res.seconds);
	if (res.kernel_size)
		cli_info(cli, "boot kit%s: kernel %llu bytes, initrd %llu bytes",
		         res.kit_inherited ? " (kept from the previous version)" : "",
		         (unsigned long long)res.kernel_size, (unsigned long long)res.initrd_size);
	cli_info(cli, "catalog: %u images%s", res.catalog_images,
	         res.catalog_skipped ? ", some left out: their pointer or manifest does not read"
	                             : "");
	return 0;
}
