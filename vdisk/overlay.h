/* SPDX-License-Identifier: MIT */
/*
 * The local writable overlay: 4 KiB sectors written by the guest, on top of
 * the image. Log-structured so that no write ever overwrites data a durable
 * map still points to: a crash at any moment loses at most the writes since
 * the last flush, and never tears a sector.
 *
 *   overlay.data   4 KiB slots, allocated anywhere, reused only once free on disk
 *   overlay.map    checkpoint: for each sector, base / zero / slot
 *   overlay.log    map changes since the checkpoint, one checksummed batch per flush
 */
#ifndef CIRC_OVERLAY_H
#define CIRC_OVERLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define OVERLAY_SECTOR 4096u

enum overlay_state {
	OVERLAY_BASE, /* read the layers beneath */
	OVERLAY_ZERO, /* discarded: reads as zeros */
	OVERLAY_DATA, /* in the overlay */
};

struct overlay;

/* Opens (creating) the overlay in dir for a disk of `size` bytes, recovering after a crash. */
CIRC_MUST_CHECK int overlay_open(const char *dir, uint64_t size, struct overlay **out,
                                 struct circ_err *err);

struct fileio;
/*
 * The same with the file operations of fio (NULL: the system's) and a
 * checkpoint each time the log passes checkpoint_bytes (0: 8 MiB): the
 * crash harness records what the overlay does and checkpoints often.
 */
CIRC_MUST_CHECK int overlay_open_io(const char *dir, uint64_t size, const struct fileio *fio,
                                    uint64_t checkpoint_bytes, struct overlay **out,
                                    struct circ_err *err);
void overlay_close(struct overlay *o);

/*
 * What sector s holds. For OVERLAY_DATA, reads OVERLAY_SECTOR bytes into buf
 * (which may be NULL just to ask).
 */
int overlay_read_sector(struct overlay *o, uint64_t s, void *buf, enum overlay_state *state);
/* Writes one whole sector. */
CIRC_MUST_CHECK int overlay_write_sector(struct overlay *o, uint64_t s, const void *buf);

/*
 * A write of many sectors that is all or nothing: overlay_stage puts each
 * sector's bytes into a free slot that no map names yet; overlay_commit
 * then names them all at once, or none (-ENOMEM); overlay_unstage gives
 * back what a failed write staged. Until committed, nothing of it is read
 * or made durable by a flush.
 */
CIRC_MUST_CHECK int overlay_stage(struct overlay *o, const void *buf, uint32_t *slot);
CIRC_MUST_CHECK int overlay_commit(struct overlay *o, const uint64_t *sectors,
                                   const uint32_t *slots, size_t n);
void overlay_unstage(struct overlay *o, const uint32_t *slots, size_t n);
/* Makes sector s read as zeros and frees its space. */
CIRC_MUST_CHECK int overlay_zero_sector(struct overlay *o, uint64_t s);
/* Makes every completed write durable. */
CIRC_MUST_CHECK int overlay_flush(struct overlay *o);
/* Drops everything: the disk reads as its base again (durable on return). */
CIRC_MUST_CHECK int overlay_reset(struct overlay *o);

uint64_t overlay_bytes(struct overlay *o);           /* sectors holding data, in bytes */
uint64_t overlay_changed_sectors(struct overlay *o); /* sectors not reading the base */

#endif
