/* SPDX-License-Identifier: MIT */
/* The overlay tests' sectors, opening and checks (see overlay_fixture.h). */
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/unit/overlay_fixture.h"
#include "tests/unit/testutil.h"

/*
 * Sectors describe themselves: the first 8 bytes are a tag, the rest derive
 * from it, so any read can tell a whole, right sector from a torn or stray one.
 */
void fill_sector(uint8_t *buf, uint64_t tag)
{
	fill_random(buf + 8, SECTOR - 8, tag);
	memcpy(buf, &tag, 8);
}

/* The tag of a self-consistent sector, or 0 for one that is not. */
uint64_t sector_tag(const uint8_t *buf)
{
	uint8_t want[SECTOR];
	uint64_t tag;

	memcpy(&tag, buf, 8);
	if (tag == 0 || tag == TAG_ZERO)
		return 0;
	fill_sector(want, tag);
	return memcmp(want, buf, SECTOR) == 0 ? tag : 0;
}

struct overlay *ov_open(uint64_t size)
{
	struct overlay *o = NULL;
	struct circ_err err;

	ck_assert_msg(overlay_open(test_dir(), size, &o, &err) == 0, "%s", err.msg);
	return o;
}

void write_tag(struct overlay *o, uint64_t s, uint64_t tag)
{
	uint8_t buf[SECTOR];

	fill_sector(buf, tag);
	ck_assert_int_eq(overlay_write_sector(o, s, buf), 0);
}

/*
 * Asserts what sector s holds: 0 the base, TAG_ZERO zeros, else data with that
 * tag. Called for millions of sectors, it asserts only on failure: every
 * passing ck_assert costs Check a write to its parent.
 */
void expect(struct overlay *o, uint64_t s, uint64_t tag)
{
	static const char *const names[] = { "base", "zero", "data" };
	enum overlay_state st, want;
	uint8_t buf[SECTOR];
	bool data = tag != 0 && tag != TAG_ZERO;
	int rc;

	/* Only data is read: other sectors are asked for their state alone. */
	if (data)
		memset(buf, 0, sizeof(buf));
	rc = overlay_read_sector(o, s, data ? buf : NULL, &st);
	if (rc)
		ck_abort_msg("sector %llu: read error %d", (unsigned long long)s, rc);
	want = tag == 0 ? OVERLAY_BASE : tag == TAG_ZERO ? OVERLAY_ZERO : OVERLAY_DATA;
	if (st != want)
		ck_abort_msg("sector %llu reads %s, want %s", (unsigned long long)s, names[st],
		             names[want]);
	if (data && sector_tag(buf) != tag)
		ck_abort_msg("sector %llu: wrong bytes (tag %llu, want %llu)",
		             (unsigned long long)s, (unsigned long long)sector_tag(buf),
		             (unsigned long long)tag);
}

/* Checks every sector against model, and the counters that follow from it. */
void expect_model(struct overlay *o, const uint64_t *model, uint64_t n)
{
	uint64_t data = 0, changed = 0;

	for (uint64_t s = 0; s < n; s++) {
		expect(o, s, model[s]);
		changed += model[s] != 0;
		data += model[s] != 0 && model[s] != TAG_ZERO;
	}
	ck_assert_uint_eq(overlay_changed_sectors(o), changed);
	ck_assert_uint_eq(overlay_bytes(o), data * SECTOR);
}

off_t file_size(const char *name)
{
	char path[PATH_MAX];
	struct stat st;

	test_path(path, name);
	if (stat(path, &st))
		return -1;
	return st.st_size;
}
