/* SPDX-License-Identifier: MIT */
#include "tests/unit/cache_fixture.h"

#include <errno.h>

#include "tests/unit/suites.h"
#include "tests/unit/testutil.h"

/* Block i's bytes and ID: every test derives a block's content from its index. */
void block_of(uint64_t i, uint8_t *data, size_t bs, struct block_id *id)
{
	fill_random(data, bs, 1000 + i);
	block_id_compute(id, data, bs);
}

struct cache *open_cache(uint64_t max_bytes)
{
	struct cache *c = NULL;
	struct circ_err err;
	char dir[PATH_MAX];

	test_path(dir, "cache");
	ck_assert_msg(cache_open(dir, max_bytes, &c, &err) == 0, "%s", err.msg);
	return c;
}

void cache_dir(char out[PATH_MAX])
{
	test_path(out, "cache");
}

void put_block(struct cache *c, uint64_t i)
{
	static uint8_t data[BS];
	struct block_id id;

	block_of(i, data, BS, &id);
	ck_assert_int_eq(cache_put(c, &id, data, BS), 0);
}

/* Whether block i reads back from the cache with the right bytes. */
bool hits(struct cache *c, uint64_t i)
{
	static uint8_t data[BS], back[BS];
	struct block_id id;
	int rc;

	block_of(i, data, BS, &id);
	rc = cache_read(c, &id, BS, 0, BS, back);
	ck_assert_msg(rc == 0 || rc == -ENOENT, "cache_read: %d", rc);
	if (rc == 0)
		ck_assert_mem_eq(back, data, BS);
	return rc == 0;
}
