/* SPDX-License-Identifier: MIT */
/*
 * The disks of a state directory as a reader sees them (circ ls, circ stats):
 * configuration, how much of the image the shared cache holds, the figures a
 * mount last saved, and where the disk is mounted. Read-only; takes no lock.
 */
#ifndef CIRC_INVENTORY_H
#define CIRC_INVENTORY_H

#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"
#include "blockfs/repo.h"
#include "vdisk/state.h"

struct disk_info {
	char name[REPO_NAME_MAX + 1];
	struct disk_conf conf;
	bool conf_ok;           /* disk.conf was read: conf is valid */
	bool cached_known;      /* the base's manifest was read and the cache opened */
	uint64_t base_blocks;   /* the base's non-zero blocks */
	uint64_t cached_blocks; /* those the shared cache holds */
	struct disk_stats st;
	char *mountpoint; /* NULL: not mounted */
};

/* base_blocks' share in the cache, 0..100; 100 for an image of zeros. */
double disk_info_cached_percent(const struct disk_info *d);
/* The same for a table: "12.3%", "-" for a blank disk, "?" when not known. */
void disk_info_cached_text(const struct disk_info *d, char out[16]);

struct json;
/*
 * The members every report of a disk has: disk, image, version, blank,
 * base_blocks, cached_blocks, cached_percent, overlay_bytes (into an open
 * object).
 */
void disk_info_json(struct json *j, const struct disk_info *d);

/*
 * The disks under state, sorted by name; only `only` when not NULL (an error
 * if there is no such disk). The caller frees with inventory_free.
 */
CIRC_MUST_CHECK int inventory_load(const char *state, const char *only, struct disk_info **out,
                                   size_t *n, struct circ_err *err);
void inventory_free(struct disk_info *d, size_t n);

#endif
