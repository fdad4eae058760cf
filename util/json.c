/* SPDX-License-Identifier: MIT */
#include "util/json.h"

#include <errno.h>
#include <stdio.h>

void json_init(struct json *j, struct buf *out)
{
	*j = (struct json){ .out = out };
	j->first[0] = true;
}

static void put(struct json *j, const void *data, size_t len)
{
	if (!j->error && buf_append(j->out, data, len))
		j->error = -ENOMEM;
}

/* The length of the valid UTF-8 sequence at p (0 if it is not one). */
static size_t utf8_len(const unsigned char *p)
{
	unsigned char c = p[0];
	size_t n;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4;
	else
		return 0;
	/* No overlong forms, no surrogates, nothing past U+10FFFF. */
	if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f) ||
	    (c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] > 0x8f))
		return 0;
	for (size_t i = 1; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

/*
 * s as a JSON string: '"', '\' and control bytes escaped, UTF-8 as it is;
 * a byte that is not UTF-8 (a name from a server, a damaged file) becomes
 * U+FFFD, so the text stays JSON whatever the input.
 */
static void put_string(struct json *j, const char *s)
{
	const unsigned char *p = (const unsigned char *)s, *run = p;
	char esc[8];

	put(j, "\"", 1);
	while (*p) {
		size_t n = utf8_len(p);

		if (n > 1 || (n == 1 && *p >= 0x20 && *p != '"' && *p != '\\' && *p != 0x7f)) {
			p += n;
			continue;
		}
		put(j, run, (size_t)(p - run));
		if (n == 0) {
			put(j, "\\ufffd", 6);
		} else if (*p == '"' || *p == '\\') {
			esc[0] = '\\';
			esc[1] = (char)*p;
			put(j, esc, 2);
		} else {
			snprintf(esc, sizeof(esc), "\\u%04x", *p);
			put(j, esc, 6);
		}
		run = ++p;
	}
	put(j, run, (size_t)(p - run));
	put(j, "\"", 1);
}

/* The comma and the key before a value. */
static void lead(struct json *j, const char *key)
{
	if (!j->first[j->depth])
		put(j, ",", 1);
	j->first[j->depth] = false;
	if (key) {
		put_string(j, key);
		put(j, ":", 1);
	}
}

static void open_nested(struct json *j, const char *key, const char *bracket)
{
	lead(j, key);
	put(j, bracket, 1);
	if (j->depth + 1 >= JSON_DEPTH_MAX) {
		j->error = j->error ? j->error : -EINVAL;
		return;
	}
	j->first[++j->depth] = true;
}

static void close_nested(struct json *j, const char *bracket)
{
	if (j->depth == 0) {
		j->error = j->error ? j->error : -EINVAL;
		return;
	}
	j->depth--;
	put(j, bracket, 1);
}

void json_object_begin(struct json *j, const char *key)
{
	open_nested(j, key, "{");
}

void json_object_end(struct json *j)
{
	close_nested(j, "}");
}

void json_array_begin(struct json *j, const char *key)
{
	open_nested(j, key, "[");
}

void json_array_end(struct json *j)
{
	close_nested(j, "]");
}

void json_str(struct json *j, const char *key, const char *s)
{
	lead(j, key);
	if (s)
		put_string(j, s);
	else
		put(j, "null", 4);
}

void json_u64(struct json *j, const char *key, uint64_t v)
{
	char text[24];
	int n = snprintf(text, sizeof(text), "%llu", (unsigned long long)v);

	lead(j, key);
	put(j, text, (size_t)n);
}

void json_bool(struct json *j, const char *key, bool v)
{
	lead(j, key);
	put(j, v ? "true" : "false", v ? 4 : 5);
}

void json_null(struct json *j, const char *key)
{
	lead(j, key);
	put(j, "null", 4);
}

void json_fixed(struct json *j, const char *key, double v, int decimals)
{
	char text[64];
	int n;

	/* JSON has no NaN or infinity, and a huge value would not fit. */
	if (!(v > -1e15 && v < 1e15) || decimals < 0 || decimals > 9) {
		json_null(j, key);
		return;
	}
	n = snprintf(text, sizeof(text), "%.*f", decimals, v);
	lead(j, key);
	put(j, text, (size_t)n);
}

void json_hex(struct json *j, const char *key, const uint8_t *bytes, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	char pair[2];

	lead(j, key);
	if (!bytes) {
		put(j, "null", 4);
		return;
	}
	put(j, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		pair[0] = digits[bytes[i] >> 4];
		pair[1] = digits[bytes[i] & 15];
		put(j, pair, 2);
	}
	put(j, "\"", 1);
}

int json_finish(struct json *j)
{
	put(j, "\n", 1);
	if (!j->error && j->depth)
		j->error = -EINVAL;
	return j->error;
}
