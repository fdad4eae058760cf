/* SPDX-License-Identifier: MIT */
#include "hv/irqfd.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
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
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = UINT32_MAX };

	/* Whatever happens, s can then be given to irqfd_set_destroy, once. */
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	s->vm_fd = vm_fd;
	s->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	s->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (s->epoll_fd < 0 || s->stop_fd < 0 ||
	    epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, s->stop_fd, &ev) < 0)
		return err_sys(err, errno, "irqfd set-up");
	return 0;
}

int irqfd_add(struct irqfd_set *s, unsigned gsi, struct irq_line *line, struct circ_err *err)
{
	struct irqfd_line *l;
	struct kvm_irqfd req;
	struct epoll_event ev = { .events = EPOLLIN };

	if (s->n == IRQFD_MAX_LINES)
		return err_set(err, ENOSPC, "too many interrupt lines");
	l = &s->lines[s->n];
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
	ev.data.u32 = s->n;
	if (epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, l->resample, &ev) < 0)
		goto fail;
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

static void *resampler(void *arg)
{
	struct irqfd_set *s = arg;
	struct epoll_event evs[IRQFD_MAX_LINES + 1];

	for (;;) {
		int n = epoll_wait(s->epoll_fd, evs, IRQFD_MAX_LINES + 1, -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return NULL;
		for (int i = 0; i < n; i++) {
			uint64_t v;
			struct irqfd_line *l;

			if (evs[i].data.u32 == UINT32_MAX)
				return NULL;
			l = &s->lines[evs[i].data.u32];
			if (read(l->resample, &v, sizeof(v)) < 0)
				continue;
			pthread_mutex_lock(&s->lock);
			if (l->level)
				kick(l->trigger); /* still held up: the guest must see it again */
			pthread_mutex_unlock(&s->lock);
		}
	}
}

int irqfd_start(struct irqfd_set *s, struct circ_err *err)
{
	if (pthread_create(&s->thread, NULL, resampler, s))
		return err_set(err, EAGAIN, "cannot start the interrupt thread");
	s->started = true;
	return 0;
}

void irqfd_set_destroy(struct irqfd_set *s)
{
	if (s->started) {
		kick(s->stop_fd);
		pthread_join(s->thread, NULL);
	}
	for (unsigned i = 0; i < s->n; i++) {
		close(s->lines[i].trigger);
		close(s->lines[i].resample);
	}
	if (s->epoll_fd >= 0)
		close(s->epoll_fd);
	if (s->stop_fd >= 0)
		close(s->stop_fd);
	s->epoll_fd = s->stop_fd = -1;
	pthread_mutex_destroy(&s->lock);
	s->n = 0;
}
