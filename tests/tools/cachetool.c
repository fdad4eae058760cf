/* SPDX-License-Identifier: MIT */
/*
 * What the shell tests need to damage one block in a client's cache:
 *   cachetool list CACHE_DIR
 * prints one line per whole record: ID PACK_FILE PAYLOAD_OFFSET LENGTH SLOT_OFFSET
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/packfile.h"

int main(int argc, char **argv)
{
	struct pack_record *v;
	size_t n;

	if (argc != 3 || strcmp(argv[1], "list") != 0) {
		fprintf(stderr, "usage: cachetool list CACHE_DIR\n");
		return 2;
	}
	n = pack_records(argv[2], &v);
	for (size_t i = 0; i < n; i++) {
		char hex[BLOCK_ID_HEX_LEN + 1];

		block_id_to_hex(&v[i].id, hex);
		printf("%s %s %ju %u %ju\n", hex, v[i].path, (uintmax_t)v[i].payload_off, v[i].len,
		       (uintmax_t)v[i].slot_off);
	}
	free(v);
	return 0;
}
