/* SPDX-License-Identifier: MIT */
/*
 * A scratch directory for fuzz targets that work on files: made once per
 * process, emptied and removed at exit. On tmpfs (/dev/shm) where there is
 * one, so that the fsyncs of the code under test cost nothing.
 */
#ifndef CIRC_FUZZ_SCRATCH_H
#define CIRC_FUZZ_SCRATCH_H

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char fuzz_scratch[PATH_MAX];

static void fuzz_scratch_remove(void)
{
	char path[PATH_MAX + 256];
	struct dirent *de;
	DIR *d = opendir(fuzz_scratch);

	if (d) {
		while ((de = readdir(d))) {
			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			snprintf(path, sizeof(path), "%s/%s", fuzz_scratch, de->d_name);
			unlink(path);
		}
		closedir(d);
	}
	rmdir(fuzz_scratch);
}

/* The directory's path; aborts if it cannot be made. */
static const char *fuzz_scratch_dir(void)
{
	const char *tmp = getenv("TMPDIR");
	struct stat st;

	if (fuzz_scratch[0])
		return fuzz_scratch;
	if (!tmp || !*tmp)
		tmp = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) &&
		              access("/dev/shm", W_OK) == 0
		          ? "/dev/shm"
		          : "/tmp";
	snprintf(fuzz_scratch, sizeof(fuzz_scratch), "%s/circ-fuzz-XXXXXX", tmp);
	if (!mkdtemp(fuzz_scratch))
		abort();
	atexit(fuzz_scratch_remove);
	return fuzz_scratch;
}

/* Replaces dir/name with len bytes of data; aborts on failure. */
static void fuzz_write_file(const char *name, const void *data, size_t len)
{
	char path[PATH_MAX + 64];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", fuzz_scratch_dir(), name);
	f = fopen(path, "we");
	if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f))
		abort();
}

#endif
