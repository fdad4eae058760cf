/* SPDX-License-Identifier: MIT */
/*
 * Runs a fuzz target without libFuzzer: each file named on the command line
 * (or each file in a named directory) is passed once to LLVMFuzzerTestOneInput.
 * Exits 1 if any could not be read; a target that finds a bug aborts.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/fuzz/fuzz.h"

static int replay_file(const char *path)
{
	struct stat st;
	uint8_t *data;
	size_t len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st)) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	/* Exactly the file's size, so ASan builds catch a read past the input. */
	data = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!data) {
		fprintf(stderr, "%s: out of memory\n", path);
		close(fd);
		return -1;
	}
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, data + len, (size_t)st.st_size - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, "%s: %s\n", path, n ? strerror(errno) : "file shrank");
			free(data);
			close(fd);
			return -1;
		}
		len += (size_t)n;
	}
	close(fd);
	LLVMFuzzerTestOneInput(data, len);
	free(data);
	return 0;
}

static int replay_dir(const char *dir, unsigned *count)
{
	struct dirent **names;
	char path[4096];
	int n = scandir(dir, &names, NULL, alphasort), ret = 0;

	if (n < 0) {
		fprintf(stderr, "%s: %s\n", dir, strerror(errno));
		return -1;
	}
	for (int i = 0; i < n; i++) {
		struct stat st;

		if (names[i]->d_name[0] == '.')
			goto next;
		if (snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name) >=
		    (int)sizeof(path)) {
			fprintf(stderr, "%s/%s: path too long\n", dir, names[i]->d_name);
			ret = -1;
			goto next;
		}
		if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
			goto next;
		if (replay_file(path))
			ret = -1;
		else
			(*count)++;
	next:
		free(names[i]);
	}
	free(names);
	return ret;
}

int main(int argc, char **argv)
{
	unsigned count = 0;
	int status = 0;

	for (int i = 1; i < argc; i++) {
		struct stat st;

		if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
			if (replay_dir(argv[i], &count))
				status = 1;
		} else if (replay_file(argv[i])) {
			status = 1;
		} else {
			count++;
		}
	}
	printf("%s: replayed %u inputs%s\n", argc > 0 ? argv[0] : "replay", count,
	       status ? ", some could not be read" : "");
	return status;
}
