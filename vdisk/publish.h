/* SPDX-License-Identifier: MIT */
/*
 * Publishing: a raw image becomes the next signed version of an image in a
 * directory repo. Blocks are hashed and compressed on every core; each new
 * block is stored once; the manifest and then the pointer are written last,
 * so a crash or a full disk at any moment leaves the previous version served.
 * The repo's signed catalog is rewritten right after the pointer.
 *
 * A version may carry a boot kit (a kernel, an initrd, a command line) stored
 * as blocks like the image's; a version published without a kernel inherits
 * its parent's kit. A description, when not given, is the parent's too.
 */
#ifndef CIRC_PUBLISH_H
#define CIRC_PUBLISH_H

#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"

struct fileio;

struct publish_opts {
	const char *repo_dir;
	const char *key_path;
	const char *name;
	const char *image;
	uint32_t block_size;
	uint64_t expires_in; /* seconds from now */
	unsigned threads;    /* 0: one per online CPU */
	int level;           /* zstd level */
	/* Bytes of the image done so far, every 100 ms and at the end; may be NULL. */
	void (*progress)(void *ctx, uint64_t done, uint64_t total);
	void *progress_ctx;
	const char *prefetch; /* a file of block indices (circ mount --record-reads), or NULL */
	/*
	 * The boot kit. With a kernel (a bzImage or an ELF64 file) the kit is
	 * exactly the kernel, initrd (or none) and cmdline (or "") given. Without
	 * one, the parent's kit is kept, an initrd or cmdline given replacing its
	 * own; with no parent kit to keep, either is a usage error.
	 */
	const char *kernel;       /* or NULL */
	const char *initrd;       /* or NULL */
	const char *cmdline;      /* or NULL */
	const char *description;  /* or NULL: the parent's */
	uint32_t format;          /* manifest and pointer format: 0 the newest, 1 for old clients */
	const struct fileio *fio; /* the repo's writes go through it; NULL: the system's */
};

struct publish_result {
	uint64_t version;
	uint64_t image_size;
	uint64_t blocks;                   /* in the image */
	uint64_t zero_blocks;              /* never stored */
	uint64_t new_blocks;               /* stored by this publish */
	uint64_t new_bytes;                /* their compressed size */
	uint64_t damaged_removed;          /* torn blocks a crashed publish left, removed */
	uint64_t kernel_size, initrd_size; /* the version's boot kit; 0: none */
	bool kit_inherited;                /* the kernel is the parent's */
	uint32_t catalog_images;           /* listed in the catalog */
	uint32_t catalog_skipped;          /* images whose pointer or manifest did not read */
	double seconds;
};

/* publish_image's answer when the options contradict the repo (exit status 2). */
#define PUBLISH_USAGE -2

/* 0; -1 on an error, with nothing published; or PUBLISH_USAGE. */
int publish_image(const struct publish_opts *opts, struct publish_result *res,
                  struct circ_err *err);

#endif
