/* SPDX-License-Identifier: MIT */
/* A vdisk's writes and discards: into its overlay, all or nothing. */
#include "vdisk/disk.h"
#include "vdisk/disk_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "vdisk/overlay.h"

#define WRITE_SMALL 16 /* sectors a write stages without allocating: 64 KiB */

/* Writers of one sector take the same lock. */
static unsigned sector_stripe(uint64_t s)
{
	return (unsigned)(s % SECTOR_LOCKS);
}

/* Takes (or drops) the stripes of sectors first..last, in stripe order. */
static void stripes_lock(struct vdisk *vd, uint64_t first, uint64_t last, bool lock)
{
	bool want[SECTOR_LOCKS] = { false };

	for (uint64_t s = first; s <= last && s - first < SECTOR_LOCKS; s++)
		want[sector_stripe(s)] = true;
	for (unsigned i = 0; i < SECTOR_LOCKS; i++) {
		if (!want[i])
			continue;
		if (lock)
			pthread_mutex_lock(&vd->sector_locks[i]);
		else
			pthread_mutex_unlock(&vd->sector_locks[i]);
	}
}

/* Sector s's bytes within the disk: the image's last sector may be short. */
static size_t sector_have(const struct vdisk *vd, uint64_t s)
{
	uint64_t start = s * OVERLAY_SECTOR;

	return vd->size - start < OVERLAY_SECTOR ? (size_t)(vd->size - start) : OVERLAY_SECTOR;
}

/*
 * Sector s's new bytes: buf's where the write covers it all, else its
 * current bytes with the written part laid over (read-modify-write; the
 * image's last sector may be short).
 */
static int sector_bytes(struct vdisk *vd, uint64_t s, const uint8_t *buf, uint64_t off,
                        uint64_t end, uint8_t out[OVERLAY_SECTOR], const uint8_t **bytes)
{
	uint64_t start = s * OVERLAY_SECTOR, from = off > start ? off : start;
	uint64_t to = end < start + OVERLAY_SECTOR ? end : start + OVERLAY_SECTOR;
	int rc;

	if (from == start && to == start + OVERLAY_SECTOR) {
		*bytes = buf + (start - off);
		return 0;
	}
	memset(out, 0, OVERLAY_SECTOR);
	rc = vdisk_read(vd, out, sector_have(vd, s), start);
	if (rc)
		return rc;
	memcpy(out + (from - start), buf + (from - off), to - from);
	*bytes = out;
	return 0;
}

/*
 * All or nothing: every sector goes into a free slot first, and the map
 * names them only when all are written. A write that fails (a full file
 * system, the overlay's size) leaves nothing behind that the next flush
 * would make durable. The stripes are held throughout, so that a
 * read-modify-write never lays old bytes over a concurrent write.
 */
int vdisk_write(struct vdisk *vd, const void *buf, size_t len, uint64_t off)
{
	/* Most writes are a few pages: no allocation for them on this path. */
	uint64_t first, last, n, small_sectors[WRITE_SMALL], *sectors = small_sectors;
	uint32_t small_slots[WRITE_SMALL], *slots = small_slots;
	uint8_t sector[OVERLAY_SECTOR];
	size_t staged = 0;
	int rc = 0;

	if (vd->read_only)
		return -EROFS;
	if (off > vd->size || len > vd->size - off)
		return -ENOSPC;
	if (len == 0)
		return 0;
	first = off / OVERLAY_SECTOR;
	last = (off + len - 1) / OVERLAY_SECTOR;
	n = last - first + 1;
	if (n > WRITE_SMALL) {
		sectors = malloc(n * sizeof(*sectors));
		slots = malloc(n * sizeof(*slots));
		if (!sectors || !slots) {
			free(sectors);
			free(slots);
			return -ENOMEM;
		}
	}
	/*
	 * The ends a write covers in part are read under the locks; read them
	 * once before, so that a block of the image they need is fetched
	 * without holding every other writer up for a network round trip.
	 */
	if (off % OVERLAY_SECTOR)
		CIRC_BEST_EFFORT(
		    vdisk_read(vd, sector, sector_have(vd, first), first * OVERLAY_SECTOR));
	if ((off + len) % OVERLAY_SECTOR && last != first)
		CIRC_BEST_EFFORT(
		    vdisk_read(vd, sector, sector_have(vd, last), last * OVERLAY_SECTOR));
	stripes_lock(vd, first, last, true);
	for (uint64_t s = first; s <= last && !rc; s++) {
		const uint8_t *bytes;

		rc = sector_bytes(vd, s, buf, off, off + len, sector, &bytes);
		if (!rc)
			rc = overlay_stage(vd->ov, bytes, &slots[staged]);
		if (!rc)
			sectors[staged++] = s;
	}
	if (!rc)
		rc = overlay_commit(vd->ov, sectors, slots, staged);
	if (rc)
		overlay_unstage(vd->ov, slots, staged);
	stripes_lock(vd, first, last, false);
	if (sectors != small_sectors) {
		free(sectors);
		free(slots);
	}
	return rc;
}

int vdisk_discard(struct vdisk *vd, uint64_t off, uint64_t len)
{
	static const uint8_t zeros[OVERLAY_SECTOR];
	uint64_t end;

	if (vd->read_only)
		return -EROFS;
	if (off > vd->size || len > vd->size - off)
		return -EINVAL;
	end = off + len;
	while (off < end) {
		uint64_t s = off / OVERLAY_SECTOR, start = s * OVERLAY_SECTOR;
		uint64_t n = end - off < OVERLAY_SECTOR - (off - start)
		                 ? end - off
		                 : OVERLAY_SECTOR - (off - start);
		int rc;

		if (n == OVERLAY_SECTOR) {
			pthread_mutex_lock(&vd->sector_locks[sector_stripe(s)]);
			rc = overlay_zero_sector(vd->ov, s);
			pthread_mutex_unlock(&vd->sector_locks[sector_stripe(s)]);
		} else {
			rc = vdisk_write(vd, zeros, (size_t)n, off);
		}

		if (rc)
			return rc;
		off += n;
	}
	return 0;
}
