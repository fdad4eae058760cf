/* SPDX-License-Identifier: MIT */
/*
 * The overlay tests' fixture: self-describing sectors, an overlay in the
 * test's scratch directory, and checks of every sector against a model.
 */
#ifndef CIRC_OVERLAY_FIXTURE_H
#define CIRC_OVERLAY_FIXTURE_H

#include <stdint.h>
#include <sys/types.h>

#include "vdisk/overlay.h"

#define SECTOR   OVERLAY_SECTOR
#define NSECT    64
#define DISK     ((uint64_t)NSECT * SECTOR)
#define TAG_ZERO UINT64_MAX /* in a model: the sector was discarded; 0: it reads the base */

/*
 * Sectors describe themselves: the first 8 bytes are a tag, the rest derive
 * from it, so any read can tell a whole, right sector from a torn or stray one.
 */
void fill_sector(uint8_t *buf, uint64_t tag);
/* The tag of a self-consistent sector, or 0 for one that is not. */
uint64_t sector_tag(const uint8_t *buf);

/* Opens the overlay in test_dir(), failing the test if it cannot. */
struct overlay *ov_open(uint64_t size);
void write_tag(struct overlay *o, uint64_t s, uint64_t tag);
/* Asserts what sector s holds: 0 the base, TAG_ZERO zeros, else data with that tag. */
void expect(struct overlay *o, uint64_t s, uint64_t tag);
/* Checks every sector against model, and the counters that follow from it. */
void expect_model(struct overlay *o, const uint64_t *model, uint64_t n);

/* The size of test_dir()/name, or -1 if there is none. */
off_t file_size(const char *name);

#endif
