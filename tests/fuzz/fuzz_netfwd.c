/* SPDX-License-Identifier: MIT */
/*
 * The forward specs of circ run's --hostfwd and --guestfwd on untrusted
 * text, with the oracle of what each accepted spec must hold: ports not
 * zero, a guest forward in 10.0.2.0/24 and on no address of the network's
 * own, a host forward's guest address in the network too or the default.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "hv/net_user.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char spec[256];
	struct net_fwd f;
	struct circ_err err;

	if (size >= sizeof(spec))
		return 0;
	memcpy(spec, data, size);
	spec[size] = 0;
	if (net_fwd_parse_host(spec, &f, &err) == 0) {
		if (!f.host_port || !f.guest_port)
			abort();
	} else if (!strstr(err.msg, "hostfwd")) {
		abort();
	}
	if (net_fwd_parse_guest(spec, &f, &err) == 0) {
		uint32_t a = ntohl(f.guest_addr.s_addr);

		if (!f.host_port || !f.guest_port || f.udp || (a & 0xffffff00u) != 0x0a000200u ||
		    a == 0x0a000202u || a == 0x0a000203u || a == 0x0a00020fu)
			abort();
	} else if (!strstr(err.msg, "guestfwd")) {
		abort();
	}
	return 0;
}
