/* SPDX-License-Identifier: MIT */
#include "vdisk/head.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "blockfs/objects.h"

static bool hex_valid(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

static bool host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

void head_sanitize_host(const char *in, char out[HEAD_HOST_MAX + 1])
{
	size_t n = 0;

	for (; in && in[n] && n < HEAD_HOST_MAX; n++)
		out[n] = host_char(in[n]) ? in[n] : '_';
	if (n == 0)
		out[n++] = '-';
	out[n] = '\0';
}

/* A decimal without sign, leading zeros or overflow, as the whole of s. */
static bool parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (!*s || (s[0] == '0' && s[1]))
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return true;
}

/* The next line as "key value", value NUL-terminated in line[]. */
static const char *next_line(const char **p, const char *end, const char *key, char *line, size_t n)
{
	const char *nl = memchr(*p, '\n', (size_t)(end - *p));
	size_t klen = strlen(key), len;

	if (!nl)
		return NULL;
	len = (size_t)(nl - *p);
	if (len >= n || len <= klen + 1 || memcmp(*p, key, klen) != 0 || (*p)[klen] != ' ' ||
	    memchr(*p, '\0', len))
		return NULL;
	memcpy(line, *p, len);
	line[len] = '\0';
	*p = nl + 1;
	return line + klen + 1;
}

int head_parse(const uint8_t *data, size_t len, struct user_head *h, struct circ_err *err)
{
	const char *p = (const char *)data, *end = p + len, *v;
	char line[160];

	memset(h, 0, sizeof(*h));
	if (len > REPO_USER_HEAD_MAX)
		return err_set(err, EBADMSG, "head: longer than %u bytes", REPO_USER_HEAD_MAX);
	v = next_line(&p, end, "circ-head", line, sizeof(line));
	if (!v || strcmp(v, "1") != 0)
		return err_set(err, EBADMSG, "head: not a format 1 head");
	v = next_line(&p, end, "version", line, sizeof(line));
	if (!v || !parse_u64(v, &h->version) || h->version == 0)
		return err_set(err, EBADMSG, "head: bad version line");
	v = next_line(&p, end, "layer", line, sizeof(line));
	if (!v || strlen(v) != 64 || !hex_valid(v, 64))
		return err_set(err, EBADMSG, "head: bad layer line");
	for (size_t i = 0; i < 32; i++)
		sscanf(v + 2 * i, "%2hhx", &h->layer_sha256[i]);
	v = next_line(&p, end, "holder", line, sizeof(line));
	if (!v)
		return err_set(err, EBADMSG, "head: bad holder line");
	if (strcmp(v, "-") != 0) {
		const char *host = v + HEAD_MACHINE_HEX + 1;
		size_t hl;

		if (strlen(v) <= HEAD_MACHINE_HEX + 1 || !hex_valid(v, HEAD_MACHINE_HEX) ||
		    v[HEAD_MACHINE_HEX] != ' ')
			return err_set(err, EBADMSG, "head: bad holder line");
		hl = strlen(host);
		if (hl > HEAD_HOST_MAX)
			return err_set(err, EBADMSG, "head: bad holder line");
		for (size_t i = 0; i < hl; i++)
			if (!host_char(host[i]))
				return err_set(err, EBADMSG, "head: bad holder line");
		memcpy(h->machine, v, HEAD_MACHINE_HEX);
		memcpy(h->host, host, hl + 1);
		h->held = true;
	}
	v = next_line(&p, end, "since", line, sizeof(line));
	if (!v || !parse_u64(v, &h->since))
		return err_set(err, EBADMSG, "head: bad since line");
	v = next_line(&p, end, "token", line, sizeof(line));
	if (!v)
		return err_set(err, EBADMSG, "head: bad token line");
	if (strcmp(v, "-") == 0) {
		if (h->held || h->since)
			return err_set(err, EBADMSG, "head: a holder without a token");
	} else {
		if (!h->held || strlen(v) != HEAD_TOKEN_HEX || !hex_valid(v, HEAD_TOKEN_HEX))
			return err_set(err, EBADMSG, "head: bad token line");
		memcpy(h->token, v, HEAD_TOKEN_HEX + 1);
	}
	if (p != end)
		return err_set(err, EBADMSG, "head: trailing bytes");
	return 0;
}

int head_encode(const struct user_head *h, struct buf *out, struct circ_err *err)
{
	char text[512], sha[65];
	int n;

	for (size_t i = 0; i < 32; i++)
		snprintf(sha + 2 * i, 3, "%02x", h->layer_sha256[i]);
	if (h->held)
		n = snprintf(text, sizeof(text),
		             "circ-head 1\nversion %" PRIu64
		             "\nlayer %s\nholder %s %s\nsince %" PRIu64 "\ntoken %s\n",
		             h->version, sha, h->machine, h->host, h->since, h->token);
	else
		n = snprintf(text, sizeof(text),
		             "circ-head 1\nversion %" PRIu64
		             "\nlayer %s\nholder -\nsince 0\ntoken -\n",
		             h->version, sha);
	buf_reset(out);
	if (n < 0 || (size_t)n >= sizeof(text) || buf_append(out, text, (size_t)n))
		return err_set(err, ENOMEM, "out of memory");
	return 0;
}
