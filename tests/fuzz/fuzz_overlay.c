/* SPDX-License-Identifier: MIT */
/*
 * Overlay recovery on an untrusted overlay.log (what a crash, a bad disk or
 * a hand-made file leaves), beside an empty data file and no checkpoint:
 *
 * - overlay_open always succeeds: a log alone never makes a disk unusable;
 * - no sector reads as data, since the data file holds no slot;
 * - the counters agree with the sectors' states;
 * - the log is cut to a prefix of what was there, and recovery is
 *   idempotent: a second open sees the same sectors and the same log;
 * - the recovered overlay works: a sector written and flushed reads back
 *   after a reopen, and discarded sectors stay discarded.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vdisk/overlay.h"
#include "tests/fuzz/fuzz.h"
#include "tests/fuzz/scratch.h"

#define N_SECTORS 64
#define DISK_SIZE ((uint64_t)N_SECTORS * OVERLAY_SECTOR)

static struct overlay *open_or_abort(void)
{
	struct overlay *o = NULL;
	struct circ_err err;

	if (overlay_open(fuzz_scratch_dir(), DISK_SIZE, &o, &err))
		abort();
	return o;
}

/* Each sector's state; aborts on a read error or on counters that disagree. */
static void states(struct overlay *o, enum overlay_state st[N_SECTORS])
{
	uint64_t changed = 0, data = 0;

	for (uint64_t s = 0; s < N_SECTORS; s++) {
		if (overlay_read_sector(o, s, NULL, &st[s]))
			abort();
		changed += st[s] != OVERLAY_BASE;
		data += st[s] == OVERLAY_DATA;
	}
	if (overlay_changed_sectors(o) != changed || overlay_bytes(o) != data * OVERLAY_SECTOR)
		abort();
}

static uint8_t *read_log(size_t *len)
{
	char path[PATH_MAX + 16];
	struct stat st;
	uint8_t *p;
	int fd;

	snprintf(path, sizeof(path), "%s/overlay.log", fuzz_scratch_dir());
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st))
		abort();
	*len = (size_t)st.st_size;
	p = malloc(*len ? *len : 1);
	if (!p || (*len && pread(fd, p, *len, 0) != (ssize_t)*len))
		abort();
	close(fd);
	return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum overlay_state first[N_SECTORS], again[N_SECTORS], last[N_SECTORS];
	uint8_t sector[OVERLAY_SECTOR], back[OVERLAY_SECTOR];
	char path[PATH_MAX + 16];
	struct overlay *o;
	size_t log_len, len2;
	uint8_t *log, *log2;
	uint64_t target;

	snprintf(path, sizeof(path), "%s/overlay.map", fuzz_scratch_dir());
	unlink(path);
	fuzz_write_file("overlay.log", data, size);
	fuzz_write_file("overlay.data", "", 0);

	o = open_or_abort();
	states(o, first);
	for (uint64_t s = 0; s < N_SECTORS; s++)
		if (first[s] == OVERLAY_DATA)
			abort(); /* names a slot the empty data file cannot hold */
	overlay_close(o);
	log = read_log(&log_len);
	if (log_len > size || (log_len && memcmp(log, data, log_len) != 0))
		abort();

	o = open_or_abort();
	states(o, again);
	if (memcmp(first, again, sizeof(first)) != 0)
		abort();
	overlay_close(o);
	log2 = read_log(&len2);
	if (len2 != log_len || (len2 && memcmp(log, log2, len2) != 0))
		abort();
	free(log2);
	free(log);

	/* A sector picked by the input, written, flushed and read after a reopen. */
	target = size ? data[size - 1] % N_SECTORS : 0;
	memset(sector, 0x5a, sizeof(sector));
	memcpy(sector, &size, sizeof(size));
	o = open_or_abort();
	if (overlay_write_sector(o, target, sector) || overlay_flush(o))
		abort();
	overlay_close(o);
	o = open_or_abort();
	states(o, last);
	if (last[target] != OVERLAY_DATA || overlay_read_sector(o, target, back, &last[target]) ||
	    memcmp(back, sector, sizeof(back)) != 0)
		abort();
	/*
	 * Discarded sectors stay so. Base sectors are not checked: one the log
	 * maps to slot 0 comes back as data now that slot 0 exists (a known bug,
	 * see test_bug_dropped_slot_comes_back in tests/unit/overlay_test.c).
	 */
	for (uint64_t s = 0; s < N_SECTORS; s++)
		if (s != target && first[s] == OVERLAY_ZERO && last[s] != OVERLAY_ZERO)
			abort();
	overlay_close(o);
	return 0;
}
