/* SPDX-License-Identifier: MIT */
#include "hv/irqfd.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

static void kick(int fd)
{
	uint64_t one = 1;

	while (write(fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

static void line_set(void *ctx, unsigned gsi, bool level)
{
	struct irqfd_set *s = ctx;

	pthread_mutex_lock(&s->lock);
	for (unsigned i = 0; i < s->n; i++) {
		struct irqfd_line *l = &s->lines[i];

		if (l->gsi != gsi)
			continue;
		/* KVM lowers the line itself at the guest's EOI; only raising needs us. */
		if (level && !l->level)
			kick(l->trigger);
		l->level = level;
	}
	pthread_mutex_unlock(&s->lock);
}

int irqfd_set_init(struct irqfd_set *s, int vm_fd, struct circ_err *err)
{
	/* Whatever happens, s can then be given to irqfd_set_destroy, once. */
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	s->vm_fd = vm_fd;
	return evloop_init(&s->resampler, err) ? err_prefix(err, "irqfd set-up") : 0;
}

/* The guest acknowledged line's interrupt: a line still held up must be seen again. */
static enum evloop_next resampled(void *ctx, int fd)
{
	struct irqfd_line *l = ctx;
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0)
		return EVLOOP_KEEP; /* nonblocking: nothing to read after all */
	pthread_mutex_lock(&l->set->lock);
	if (l->level)
		kick(l->trigger);
	pthread_mutex_unlock(&l->set->lock);
	return EVLOOP_KEEP;
}

int irqfd_add(struct irqfd_set *s, unsigned gsi, struct irq_line *line, struct circ_err *err)
{
	struct irqfd_line *l;
	struct kvm_irqfd req;

	if (s->n == IRQFD_MAX_LINES)
		return err_set(err, ENOSPC, "too many interrupt lines");
	l = &s->lines[s->n];
	l->set = s;
	l->gsi = gsi;
	l->trigger = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	l->resample = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->trigger < 0 || l->resample < 0)
		goto fail;
	req = (struct kvm_irqfd){ .fd = (uint32_t)l->trigger,
		                  .gsi = gsi,
		                  .flags = KVM_IRQFD_FLAG_RESAMPLE,
		                  .resamplefd = (uint32_t)l->resample };
	if (ioctl(s->vm_fd, KVM_IRQFD, &req) < 0)
		goto fail;
	if (evloop_add(&s->resampler, l->resample, resampled, l, err)) {
		close(l->trigger);
		close(l->resample);
		return err_prefix(err, "irqfd for GSI %u", gsi);
	}
	s->n++;
	*line = (struct irq_line){ .set = line_set, .ctx = s, .gsi = gsi };
	return 0;
fail:
	err_sys(err, errno, "irqfd for GSI %u", gsi);
	if (l->trigger >= 0)
		close(l->trigger);
	if (l->resample >= 0)
		close(l->resample);
	return -1;
}

int irqfd_start(struct irqfd_set *s, struct circ_err *err)
{
	return evloop_start(&s->resampler, "the interrupt resampler", err);
}

void irqfd_set_destroy(struct irqfd_set *s)
{
	/* The thread goes first: it reads the lines' descriptors. */
	evloop_destroy(&s->resampler);
	for (unsigned i = 0; i < s->n; i++) {
		close(s->lines[i].trigger);
		close(s->lines[i].resample);
	}
	pthread_mutex_destroy(&s->lock);
	s->n = 0;
}
