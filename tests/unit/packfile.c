/* SPDX-License-Identifier: MIT */
#include "tests/unit/packfile.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blockfs/pack.h"

/* Appends the whole records of one pack file to *v. */
static void read_pack(const char *path, uint64_t seq, struct pack_record **v, size_t *n,
                      size_t *cap)
{
	uint8_t hdr[PACK_HDR_SIZE], slot[PACK_SLOT_SIZE];
	struct pack_hdr h;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return;
	if (pread(fd, hdr, sizeof(hdr), 0) != sizeof(hdr) || pack_hdr_decode(hdr, seq, &h)) {
		close(fd);
		return;
	}
	for (uint32_t i = 0; i < h.n_slots; i++) {
		uint64_t at = PACK_HDR_SIZE + (uint64_t)i * PACK_SLOT_SIZE;
		struct pack_slot s;

		if (pread(fd, slot, sizeof(slot), (off_t)at) != sizeof(slot) ||
		    pack_slot_decode(slot, &h, &s))
			continue;
		if (*n == *cap) {
			*cap = *cap ? *cap * 2 : 64;
			*v = realloc(*v, *cap * sizeof(**v));
			if (!*v)
				abort();
		}
		(*v)[*n] = (struct pack_record){
			.id = s.id, .payload_off = h.data_off + s.off, .slot_off = at, .len = s.len
		};
		snprintf((*v)[*n].path, sizeof((*v)[*n].path), "%s", path);
		(*n)++;
	}
	close(fd);
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

size_t pack_records(const char *dir, struct pack_record **out)
{
	char packs[PATH_MAX - 32], path[PATH_MAX];
	struct dirent **names;
	size_t n = 0, cap = 0;
	int count;

	*out = NULL;
	if ((size_t)snprintf(packs, sizeof(packs), "%s/packs", dir) >= sizeof(packs))
		return 0;
	count = scandir(packs, &names, NULL, by_name);
	for (int i = 0; i < count; i++) {
		uint64_t seq;

		if (pack_name_parse(names[i]->d_name, &seq) == 0) {
			snprintf(path, sizeof(path), "%s/%.*s", packs, PACK_NAME_LEN,
			         names[i]->d_name);
			read_pack(path, seq, out, &n, &cap);
		}
		free(names[i]);
	}
	if (count >= 0)
		free(names);
	return n;
}

bool pack_record_find(const char *dir, const struct block_id *id, struct pack_record *out)
{
	struct pack_record *v;
	size_t n = pack_records(dir, &v);
	bool found = false;

	for (size_t i = 0; i < n && !found; i++)
		if (block_id_equal(&v[i].id, id)) {
			*out = v[i];
			found = true;
		}
	free(v);
	return found;
}

bool pack_record_forget(const char *dir, const struct block_id *id)
{
	static const uint8_t zeros[PACK_SLOT_SIZE];
	struct pack_record r;
	bool done;
	int fd;

	if (!pack_record_find(dir, id, &r))
		return false;
	fd = open(r.path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	done = pwrite(fd, zeros, sizeof(zeros), (off_t)r.slot_off) == (ssize_t)sizeof(zeros);
	close(fd);
	return done;
}

uint64_t pack_files_bytes(const char *dir, size_t *n)
{
	char packs[PATH_MAX];
	uint64_t bytes = 0;
	struct dirent *de;
	size_t files = 0;
	DIR *d;

	snprintf(packs, sizeof(packs), "%s/packs", dir);
	d = opendir(packs);
	while (d && (de = readdir(d))) {
		struct stat st;
		uint64_t seq;

		if (pack_name_parse(de->d_name, &seq) == 0 &&
		    fstatat(dirfd(d), de->d_name, &st, 0) == 0) {
			bytes += (uint64_t)st.st_size;
			files++;
		}
	}
	if (d)
		closedir(d);
	if (n)
		*n = files;
	return bytes;
}
