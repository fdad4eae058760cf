/* SPDX-License-Identifier: MIT */
#include "hv/guest_mem.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

int guest_mem_alloc(struct guest_mem *m, uint64_t size, struct circ_err *err)
{
	memset(m, 0, sizeof(*m));
	if (size < GUEST_MEM_MIN)
		return err_set(
		    err, EINVAL, "guest memory %llu MiB is below the minimum of %llu MiB",
		    (unsigned long long)(size >> 20), (unsigned long long)(GUEST_MEM_MIN >> 20));
	/* NORESERVE: untouched guest pages cost nothing on the host. */
	m->host = mmap(NULL, size, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m->host == MAP_FAILED) {
		m->host = NULL;
		return err_sys(err, errno, "allocating %llu MiB of guest memory",
		               (unsigned long long)(size >> 20));
	}
	madvise(m->host, size, MADV_MERGEABLE);
	m->size = size;
	m->low = size < GUEST_MEM_HOLE_START ? size : GUEST_MEM_HOLE_START;
	return 0;
}

void guest_mem_free(struct guest_mem *m)
{
	if (m->host)
		munmap(m->host, m->size);
	memset(m, 0, sizeof(*m));
}

void *guest_mem_ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	uint64_t high = m->size - m->low;

	if (gpa < m->low) {
		if (len > m->low - gpa)
			return NULL;
		return m->host + gpa;
	}
	if (gpa >= GUEST_MEM_HIGH_START && gpa - GUEST_MEM_HIGH_START < high) {
		uint64_t off = gpa - GUEST_MEM_HIGH_START;

		if (len > high - off)
			return NULL;
		return m->host + m->low + off;
	}
	return NULL;
}
