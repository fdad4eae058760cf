/* SPDX-License-Identifier: MIT */
/*
 * A JSON writer into a buf, for reports (--json) and records (a disk's boot
 * record). Commas and escapes are the writer's business, the structure the
 * caller's. Errors are sticky, so a report is built without checking every
 * call and json_finish says once whether it is whole.
 */
#ifndef CIRC_JSON_H
#define CIRC_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

#define JSON_DEPTH_MAX 16

struct json {
	struct buf *out;
	unsigned depth;
	bool first[JSON_DEPTH_MAX]; /* nothing written yet at this depth */
	int error;                  /* the first failure: -ENOMEM, or -EINVAL for a misuse */
};

void json_init(struct json *j, struct buf *out);

/* In an object, key names the member; in an array or at the top it must be NULL. */
void json_object_begin(struct json *j, const char *key);
void json_object_end(struct json *j);
void json_array_begin(struct json *j, const char *key);
void json_array_end(struct json *j);

/* s NULL writes null. Bytes below 0x20, '"' and '\' are escaped; the rest pass. */
void json_str(struct json *j, const char *key, const char *s);
void json_u64(struct json *j, const char *key, uint64_t v);
void json_bool(struct json *j, const char *key, bool v);
void json_null(struct json *j, const char *key);
/* v with `decimals` digits after the point (a percentage, seconds). */
void json_fixed(struct json *j, const char *key, double v, int decimals);
/* bytes as lower-case hex; NULL writes null. */
void json_hex(struct json *j, const char *key, const uint8_t *bytes, size_t n);

/* Ends the text with a newline; 0, or -ENOMEM / -EINVAL (unbalanced). */
CIRC_MUST_CHECK int json_finish(struct json *j);

#endif
