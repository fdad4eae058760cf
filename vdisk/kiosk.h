/* SPDX-License-Identifier: MIT */
/*
 * Kiosk boots (circ run URL NAME): a disk made ready to boot in one step
 * (pulled if missing, moved to the newest signed version unless it holds
 * writes to keep, its writes dropped for a reset), able to boot offline when
 * its version is all here, and a record of every boot.
 */
#ifndef CIRC_KIOSK_H
#define CIRC_KIOSK_H

#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"
#include "vdisk/state.h"

struct kiosk_options {
	const char *url, *name, *key_path; /* to pull DISK if it is not here; may be NULL */
	bool reset;                        /* drop the disk's writes: a clean image */
	const struct state_net *net;
	uint64_t cache_size;
};

struct kiosk_result {
	bool pulled;
	bool offline; /* the server could not be reached: booting what is here */
	uint64_t from, to;
	char note[320]; /* one line for the user about what happened, or "" */
};

CIRC_MUST_CHECK int kiosk_prepare(const char *state, const char *disk,
                                  const struct kiosk_options *o, struct kiosk_result *res,
                                  struct circ_err *err);

/* Drops DISK's local writes (durably); the disk must not be in use. */
CIRC_MUST_CHECK int kiosk_discard_writes(const char *state, const char *disk, struct circ_err *err);

/*
 * One boot, as disks/DISK/boots records it (a JSON object a line). Past
 * BOOTLOG_MAX bytes the file becomes boots.1 (replacing the one before), so
 * the record keeps the last few thousand boots at least.
 */
#define BOOTLOG_MAX (4u << 20)
struct boot_record {
	uint64_t time;
	const char *image; /* "" for a blank disk */
	uint64_t version;
	uint8_t manifest_sha256[32];
	uint8_t kernel_sha256[32], initrd_sha256[32]; /* of the files booted; zero if none */
	bool have_kernel, have_initrd;
	const char *cmdline;
	const char *vmm;
	bool offline;
	const char *outcome; /* "poweroff", "reboot", "stopped", "signal", "error" */
};

CIRC_MUST_CHECK int bootlog_append(const char *state, const char *disk, const struct boot_record *r,
                                   struct circ_err *err);

#endif
