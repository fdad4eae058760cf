/* SPDX-License-Identifier: MIT */
#include "hv/bus.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void bus_init(struct bus *b)
{
	memset(b, 0, sizeof(*b));
	pthread_rwlock_init(&b->lock, NULL);
}

void bus_destroy(struct bus *b)
{
	free(b->ranges);
	pthread_rwlock_destroy(&b->lock);
	memset(b, 0, sizeof(*b));
}

static bool overlaps(const struct bus_range *r, uint64_t base, uint64_t len)
{
	return base < r->base + r->len && r->base < base + len;
}

static int add_locked(struct bus *b, uint64_t base, uint64_t len, bus_io_fn io, void *opaque,
                      const char *name)
{
	if (len == 0 || base + len < base)
		return -EINVAL;
	for (size_t i = 0; i < b->n; i++)
		if (overlaps(&b->ranges[i], base, len))
			return -EBUSY;
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 16;
		struct bus_range *p = realloc(b->ranges, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		b->ranges = p;
		b->cap = cap;
	}
	b->ranges[b->n++] = (struct bus_range){ base, len, io, opaque, name };
	return 0;
}

int bus_register(struct bus *b, uint64_t base, uint64_t len, bus_io_fn io, void *opaque,
                 const char *name)
{
	int rc;

	pthread_rwlock_wrlock(&b->lock);
	rc = add_locked(b, base, len, io, opaque, name);
	pthread_rwlock_unlock(&b->lock);
	return rc;
}

int bus_move(struct bus *b, void *opaque, uint64_t old_base, uint64_t new_base, uint64_t len)
{
	struct bus_range r = { 0 };
	int rc = -ENOENT;

	pthread_rwlock_wrlock(&b->lock);
	for (size_t i = 0; i < b->n; i++) {
		if (b->ranges[i].opaque != opaque || b->ranges[i].base != old_base)
			continue;
		r = b->ranges[i];
		b->ranges[i] = b->ranges[--b->n];
		rc = 0;
		break;
	}
	if (!rc && len)
		rc = add_locked(b, new_base, len, r.io, r.opaque, r.name);
	pthread_rwlock_unlock(&b->lock);
	return rc;
}

bool bus_access(struct bus *b, uint64_t addr, uint8_t *data, uint32_t len, bool write)
{
	pthread_rwlock_rdlock(&b->lock);
	for (size_t i = 0; i < b->n; i++) {
		struct bus_range *r = &b->ranges[i];

		if (addr >= r->base && addr - r->base < r->len) {
			bus_io_fn io = r->io;
			void *opaque = r->opaque;
			uint64_t off = addr - r->base;

			pthread_rwlock_unlock(&b->lock);
			io(opaque, off, data, len, write);
			return true;
		}
	}
	__atomic_fetch_add(&b->unclaimed, 1, __ATOMIC_RELAXED);
	pthread_rwlock_unlock(&b->lock);
	if (!write)
		memset(data, 0xff, len);
	return false;
}
