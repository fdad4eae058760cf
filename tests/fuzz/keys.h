/* SPDX-License-Identifier: MIT */
/*
 * A throwaway Ed25519 key pair for fuzz targets that check that whatever
 * parses also re-encodes, signs and verifies. A header, not a .c file: the
 * Makefile builds each target from its one source plus libcirc.a.
 */
#ifndef CIRC_FUZZ_KEYS_H
#define CIRC_FUZZ_KEYS_H

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "vdisk/key.h"

static struct key *fuzz_priv, *fuzz_pub;

/* Made once per process; nothing is left on disk. Aborts on failure. */
static void fuzz_keys_init(void)
{
	char dir[] = "/tmp/circ-fuzz-XXXXXX", prefix[64], path[80];
	struct circ_err err;
	int ok;

	if (fuzz_priv)
		return;
	if (!mkdtemp(dir))
		abort();
	snprintf(prefix, sizeof(prefix), "%s/k", dir);
	ok = key_generate(prefix, &err) == 0;
	snprintf(path, sizeof(path), "%s.key", prefix);
	ok = ok && key_load_private(path, &fuzz_priv, &err) == 0;
	unlink(path);
	snprintf(path, sizeof(path), "%s.pub", prefix);
	ok = ok && key_load_public(path, &fuzz_pub, &err) == 0;
	unlink(path);
	rmdir(dir);
	if (!ok) {
		fprintf(stderr, "fuzz: making a key pair: %s\n", err.msg);
		abort();
	}
}

#endif
