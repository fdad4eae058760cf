/* SPDX-License-Identifier: MIT */
/*
 * Publishing: a raw image becomes the next signed version of an image in a
 * directory repo. Blocks are hashed and compressed on every core; each new
 * block is stored once; the manifest and then the pointer are written last,
 * so a crash or a full disk at any moment leaves the previous version served.
 */
#ifndef CIRC_PUBLISH_H
#define CIRC_PUBLISH_H

#include <stdbool.h>
#include <stdint.h>

#include "blockfs/err.h"

struct publish_opts {
	const char *repo_dir;
	const char *key_path;
	const char *name;
	const char *image;
	uint32_t block_size;
	uint64_t expires_in;  /* seconds from now */
	unsigned threads;     /* 0: one per online CPU */
	int level;            /* zstd level */
	bool progress;        /* draw progress on a terminal */
	const char *prefetch; /* a file of block indices (circ mount --record-reads), or NULL */
};

struct publish_result {
	uint64_t version;
	uint64_t image_size;
	uint64_t blocks;      /* in the image */
	uint64_t zero_blocks; /* never stored */
	uint64_t new_blocks;  /* stored by this publish */
	uint64_t new_bytes;   /* their compressed size */
	double seconds;
};

int publish_image(const struct publish_opts *opts, struct publish_result *res,
                  struct circ_err *err);

#endif
