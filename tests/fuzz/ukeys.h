/* SPDX-License-Identifier: MIT */
/*
 * A fixed user key for fuzz_ulayer and its seed corpus: the corpus's layers
 * and keys file are sealed with it, so the fuzzer starts from inputs that
 * get past authentication. A header for the same reason as keys.h.
 */
#ifndef CIRC_FUZZ_UKEYS_H
#define CIRC_FUZZ_UKEYS_H

#include <stdint.h>

#define FUZZ_UKEY_USER "fuzz"
#define FUZZ_UKEY_PASS "fuzz passphrase"

static const uint8_t fuzz_ukey_master[32] = {
	0x63, 0x69, 0x72, 0x63, 0x20, 0x66, 0x75, 0x7a, 0x7a, 0x20, 0x6d,
	0x61, 0x73, 0x74, 0x65, 0x72, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05,
	0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
};

#endif
