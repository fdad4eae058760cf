/* SPDX-License-Identifier: MIT */
/*
 * disk_conf_load on untrusted bytes (a disk.conf damaged on disk or edited by
 * hand): must never crash or leak; a refusal leaves nothing to free; what it
 * accepts is a usable configuration that survives disk_conf_save and a second
 * load unchanged.
 */
#include <stdlib.h>
#include <string.h>

#include "blockfs/repo.h"
#include "vdisk/state.h"
#include "tests/fuzz/fuzz.h"
#include "tests/fuzz/scratch.h"

static bool url_ok(const char *u)
{
	if (strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0)
		return false;
	for (; *u; u++)
		if ((unsigned char)*u <= ' ' || *u == 0x7f)
			return false;
	return true;
}

static void check_usable(const struct disk_conf *c)
{
	if (c->blank ? (c->size == 0 || !block_size_valid(c->block_size) || c->n_urls)
	             : (!repo_name_valid(c->image) || c->version == 0 || c->n_urls == 0 ||
	                c->n_urls > STATE_MAX_MIRRORS))
		abort();
	if (c->remote &&
	    (!url_ok(c->remote) || !repo_name_valid(c->user) || !repo_name_valid(c->remote_disk)))
		abort();
	for (size_t i = 0; i < c->n_urls; i++)
		if (!c->urls[i] || !url_ok(c->urls[i]))
			abort();
	for (size_t i = c->n_urls; i < STATE_MAX_MIRRORS; i++)
		if (c->urls[i])
			abort();
}

static void check_same(const struct disk_conf *a, const struct disk_conf *b)
{
	if (strcmp(a->image, b->image) != 0 || a->version != b->version || a->n_urls != b->n_urls ||
	    a->blank != b->blank || a->size != b->size || a->block_size != b->block_size ||
	    !a->remote != !b->remote || (a->remote && strcmp(a->remote, b->remote) != 0) ||
	    strcmp(a->user, b->user) != 0 || strcmp(a->remote_disk, b->remote_disk) != 0 ||
	    a->layer != b->layer)
		abort();
	for (size_t i = 0; i < a->n_urls; i++)
		if (strcmp(a->urls[i], b->urls[i]) != 0)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *dir = fuzz_scratch_dir();
	struct disk_conf c, back;
	struct circ_err err;

	fuzz_write_file("disk.conf", data, size);
	if (disk_conf_load(dir, &c, &err) != 0) {
		/* A refusal names its cause and leaves nothing behind. */
		if (!err.msg[0] || c.n_urls)
			abort();
		for (size_t i = 0; i < STATE_MAX_MIRRORS; i++)
			if (c.urls[i])
				abort();
		disk_conf_release(&c);
		return 0;
	}
	check_usable(&c);
	if (disk_conf_save(dir, &c, &err) || disk_conf_load(dir, &back, &err))
		abort();
	check_same(&c, &back);
	disk_conf_release(&back);
	disk_conf_release(&c);
	return 0;
}
