/* SPDX-License-Identifier: MIT */
/*
 * The server's request path, as a client controls it: the decoded URL path
 * mapped beneath the repository (server_path_to_rel), then classified as an
 * object of the format (repo_object_classify), as the server does before it
 * opens anything. Whatever the input, an accepted path has no ".", "..",
 * hidden, empty or backslashed segment, and a classified one has names that
 * are valid and classifies the same twice.
 */
#include <stdlib.h>
#include <string.h>

#include "blockfs/objects.h"
#include "blockfs/repo.h"
#include "server/path.h"
#include "tests/fuzz/fuzz.h"

#define URL_MAX 2048

static void check_rel(const char *rel)
{
	const char *seg = rel;

	if (!*rel || strchr(rel, '\\'))
		abort();
	for (;;) {
		const char *end = strchr(seg, '/');
		size_t len = end ? (size_t)(end - seg) : strlen(seg);

		if (len == 0 || seg[0] == '.')
			abort();
		if (!end)
			break;
		seg = end + 1;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char url[URL_MAX + 1], rel[REPO_PATH_MAX];
	struct repo_object a, b;
	unsigned status;

	/* What MHD hands over: a string, cut at its first NUL. */
	if (size > URL_MAX)
		size = URL_MAX;
	memcpy(url, data, size);
	url[size] = '\0';
	status = server_path_to_rel(url, rel, sizeof(rel));
	if (status) {
		if (status != 400 && status != 403 && status != 404)
			abort();
		return 0;
	}
	if (strlen(rel) >= sizeof(rel))
		abort();
	check_rel(rel);
	if (!repo_object_classify(rel, &a))
		return 0;
	if (!repo_object_classify(rel, &b) || a.kind != b.kind || a.version != b.version ||
	    strcmp(a.name, b.name) != 0 || strcmp(a.user, b.user) != 0 ||
	    memcmp(&a.id, &b.id, sizeof(a.id)) != 0)
		abort();
	if (a.name[0] && !repo_name_valid(a.name))
		abort();
	if (a.user[0] && !repo_name_valid(a.user))
		abort();
	return 0;
}
