/* SPDX-License-Identifier: MIT */
/* pointer_parse on untrusted bytes (formats 1 and 2), with the round-trip oracle of manifests. */
#include <stdlib.h>
#include <string.h>

#include "vdisk/manifest.h"
#include "tests/fuzz/fuzz.h"
#include "tests/fuzz/keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pointer p, back;
	struct buf enc = { 0 };
	struct circ_err err;

	fuzz_keys_init();
	if (pointer_parse(data, size, &p, &err) == 0) {
		if (p.version == 0 || !repo_name_valid(p.name))
			abort();
		if (pointer_encode(&p, fuzz_priv, &enc, &err) ||
		    pointer_decode(enc.data, enc.len, fuzz_pub, &back, &err))
			abort();
		if (strcmp(p.name, back.name) != 0 || p.version != back.version ||
		    p.created != back.created || p.expires != back.expires ||
		    memcmp(p.manifest_sha256, back.manifest_sha256, 32) != 0 ||
		    p.format != back.format || p.manifest_size != back.manifest_size)
			abort();
		/* Format 2 bounds the manifest a client will read; format 1 records no size. */
		if ((p.format == 1) != (p.manifest_size == 0) || p.manifest_size > MANIFEST_MAX_LEN)
			abort();
		buf_free(&enc);
	}
	/* The key is made at run time, so no input can carry a valid signature. */
	if (pointer_decode(data, size, fuzz_pub, &p, &err) == 0)
		abort();
	return 0;
}
