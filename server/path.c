/* SPDX-License-Identifier: MIT */
#include "server/path.h"

#include <stdio.h>
#include <string.h>

#include <microhttpd.h>

unsigned server_path_to_rel(const char *url, char *out, size_t n)
{
	const char *seg;

	if (url[0] != '/')
		return MHD_HTTP_BAD_REQUEST;
	while (*url == '/')
		url++;
	if (*url == '\0' || strlen(url) >= n)
		return MHD_HTTP_NOT_FOUND;
	/* url is already percent-decoded, so "%2e%2e" arrives here as "..". */
	for (seg = url; seg; seg = strchr(seg, '/')) {
		if (*seg == '/')
			seg++;
		if (seg[0] == '.' && (seg[1] == '.' || seg[1] == '/' || seg[1] == '\0'))
			return MHD_HTTP_FORBIDDEN;
		if (seg[0] == '.' || seg[0] == '/' || seg[0] == '\0')
			return MHD_HTTP_NOT_FOUND;
		if (strchr(seg, '\\'))
			return MHD_HTTP_FORBIDDEN;
	}
	snprintf(out, n, "%s", url);
	return 0;
}
