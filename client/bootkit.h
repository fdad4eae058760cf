/* SPDX-License-Identifier: MIT */
/*
 * The boot kit a version carries (kernel, initrd, command line), written
 * out of the verified block store for a VMM to boot, and the check that a
 * kernel file is one either VMM can boot.
 */
#ifndef CIRC_BOOTKIT_H
#define CIRC_BOOTKIT_H

#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"
#include "blockfs/repo.h"

struct bootkit {
	char *kernel, *initrd; /* paths under disks/DISK/boot/; initrd NULL if none */
	char *cmdline;
	uint8_t kernel_sha256[32], initrd_sha256[32];
	/* The version it came from, for the boot record. */
	char image[REPO_NAME_MAX + 1];
	uint64_t version;
	uint8_t manifest_sha256[32];
};

/*
 * Writes DISK's version's kernel and initrd to disks/DISK/boot/, each block
 * verified on the way. ENOENT if the version has no boot kit.
 */
int bootkit_extract(const char *state, const char *disk, struct bootkit *bk, struct circ_err *err);
/* Only the version's identity (image, version, manifest hash), for a boot record. */
int bootkit_identify(const char *state, const char *disk, struct bootkit *bk, struct circ_err *err);
void bootkit_release(struct bootkit *bk);

/* A Linux bzImage or an ELF64 file, else a one-line error naming what it is. */
int bootkit_check_kernel(const char *path, struct circ_err *err);
/* SHA-256 of a whole file. */
int bootkit_file_sha256(const char *path, uint8_t out[32], struct circ_err *err);

#endif
