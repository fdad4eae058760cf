/* SPDX-License-Identifier: MIT */
/*
 * virtio-pci, without KVM: the tests play the guest driver, finding the
 * virtio-blk device on PCI, negotiating features and setting its queue up
 * through the BAR, then submitting requests (virtio_fixture.h builds them)
 * and checking the interrupts, resets and the worker thread's completions.
 */
#include <endian.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "hv/blk_backend.h"
#include "hv/bus.h"
#include "hv/guest_mem.h"
#include "hv/irq.h"
#include "hv/pci.h"
#include "hv/virtio_blk.h"
#include "hv/virtio_pci.h"
#include "hv/virtq.h"
#include "tests/unit/suites.h"
#include "tests/unit/testutil.h"
#include "tests/unit/virtio_fixture.h"

/* The transport: PCI discovery, driver initialisation and requests through the BAR. */

struct irq_rec {
	unsigned gsi;
	int level;
	unsigned raises, lowers;
};

static void rec_set(void *ctx, unsigned gsi, bool level)
{
	struct irq_rec *rec = ctx;

	__atomic_store_n(&rec->gsi, gsi, __ATOMIC_RELAXED);
	__atomic_store_n(&rec->level, level, __ATOMIC_RELAXED);
	__atomic_fetch_add(level ? &rec->raises : &rec->lowers, 1, __ATOMIC_RELEASE);
}

struct trig {
	struct guest_mem m;
	struct bus pio, mmio;
	struct pci_bus pb;
	struct blk_backend be;
	struct irq_rec rec;
	struct irq_line line;
	struct virtio_blk_pci *dev;
	struct drv d;
	uint8_t slot;
	uint32_t bar;
	uint32_t common, isr, devcfg, notify, mult;
};

static uint32_t conf_read(struct trig *t, uint8_t slot, unsigned off, unsigned len)
{
	uint32_t addr = 0x80000000u | (uint32_t)slot << 11 | (off & 0xfc);
	uint8_t data[4] = { 0 };

	pci_conf1_io(&t->pb, 0, (uint8_t *)&addr, 4, true);
	pci_conf1_io(&t->pb, 4 + (off & 3), data, len, false);
	return data[0] | data[1] << 8 | data[2] << 16 | (uint32_t)data[3] << 24;
}

static uint64_t mmio_read(struct trig *t, uint32_t off, unsigned len)
{
	uint8_t data[8] = { 0 };
	uint64_t v = 0;

	ck_assert(bus_access(&t->mmio, (uint64_t)t->bar + off, data, len, false));
	for (unsigned i = len; i-- > 0;)
		v = v << 8 | data[i];
	return v;
}

static void mmio_write(struct trig *t, uint32_t off, uint64_t v, unsigned len)
{
	uint8_t data[8];

	for (unsigned i = 0; i < len; i++)
		data[i] = (uint8_t)(v >> (8 * i));
	ck_assert(bus_access(&t->mmio, (uint64_t)t->bar + off, data, len, true));
}

static uint8_t status_reg(struct trig *t)
{
	return (uint8_t)mmio_read(t, t->common + VIRTIO_PCI_COMMON_STATUS, 1);
}

static void set_status_reg(struct trig *t, uint8_t v)
{
	mmio_write(t, t->common + VIRTIO_PCI_COMMON_STATUS, v, 1);
}

/* Finds the device by its IDs and its regions by walking the capability list, as a driver does. */
static void discover(struct trig *t)
{
	bool found = false;
	unsigned seen = 0;

	for (unsigned s = 0; s < PCI_MAX_DEVICES && !found; s++) {
		if (conf_read(t, (uint8_t)s, PCI_VENDOR_ID, 2) != VIRTIO_PCI_VENDOR_ID ||
		    conf_read(t, (uint8_t)s, PCI_DEVICE_ID, 2) != 0x1042)
			continue;
		t->slot = (uint8_t)s;
		found = true;
	}
	ck_assert(found);
	ck_assert_uint_eq(conf_read(t, t->slot, PCI_REVISION_ID, 1), 1);
	ck_assert_uint_eq(conf_read(t, t->slot, PCI_SUBSYSTEM_VENDOR_ID, 2), VIRTIO_PCI_VENDOR_ID);
	ck_assert_uint_ge(conf_read(t, t->slot, PCI_SUBSYSTEM_ID, 2), 0x40);
	ck_assert_uint_eq(conf_read(t, t->slot, PCI_CLASS_DEVICE, 2), 0x0180);
	ck_assert_uint_eq(conf_read(t, t->slot, PCI_INTERRUPT_PIN, 1), 1);
	ck_assert_uint_eq(conf_read(t, t->slot, PCI_INTERRUPT_LINE, 1), 11);
	ck_assert(conf_read(t, t->slot, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	t->bar = conf_read(t, t->slot, PCI_BASE_ADDRESS_0, 4);
	ck_assert_uint_eq(t->bar & 0xf, 0); /* 32-bit memory BAR */
	t->bar &= ~0xfu;
	ck_assert_uint_ne(t->bar, 0);
	for (unsigned at = conf_read(t, t->slot, PCI_CAPABILITY_LIST, 1), n = 0; at;
	     at = conf_read(t, t->slot, at + 1, 1)) {
		unsigned type, off, len;

		ck_assert_uint_lt(++n, 48); /* a capability list must end */
		if (conf_read(t, t->slot, at, 1) != PCI_CAP_ID_VNDR)
			continue;
		type = conf_read(t, t->slot, at + 3, 1);
		ck_assert_uint_eq(conf_read(t, t->slot, at + 4, 1), 0); /* BAR 0 */
		off = conf_read(t, t->slot, at + 8, 4);
		len = conf_read(t, t->slot, at + 12, 4);
		ck_assert_uint_le((uint64_t)off + len, VIRTIO_PCI_BAR_SIZE);
		switch (type) {
		case VIRTIO_PCI_CAP_COMMON_CFG:
			ck_assert_uint_ge(len, 0x38);
			t->common = off;
			break;
		case VIRTIO_PCI_CAP_NOTIFY_CFG:
			ck_assert_uint_ge(conf_read(t, t->slot, at + 2, 1), 20);
			t->notify = off;
			t->mult = conf_read(t, t->slot, at + 16, 4);
			ck_assert_uint_ge(len, 2);
			break;
		case VIRTIO_PCI_CAP_ISR_CFG:
			t->isr = off;
			break;
		case VIRTIO_PCI_CAP_DEVICE_CFG:
			ck_assert_uint_ge(len, VIRTIO_BLK_CONFIG_LEN);
			t->devcfg = off;
			break;
		}
		seen |= 1u << type;
	}
	ck_assert_uint_eq(seen & 0x1e, 0x1e);
	ck_assert_uint_eq(t->mult, 4);
}

static void trig_init(struct trig *t)
{
	struct circ_err err;

	memset(t, 0, sizeof(*t));
	ck_assert_int_eq(guest_mem_alloc(&t->m, MEM_SIZE, &err), 0);
	memset(t->m.host, CANARY, t->m.size);
	bus_init(&t->pio);
	bus_init(&t->mmio);
	ck_assert_int_eq(pci_init(&t->pb, &t->pio, &t->mmio), 0);
	ck_assert_int_eq(blk_backend_open_memory(DISK_SIZE, &t->be), 0);
	t->line = (struct irq_line){ .set = rec_set, .ctx = &t->rec, .gsi = 99 };
	ck_assert_int_eq(virtio_blk_pci_create(&t->pb, &t->be, &t->m, &t->line, 11, &t->dev, &err),
	                 0);
	drv_init(&t->d, &t->m);
	memset(gptr(&t->d, AVAIL_GPA, 4), 0, 4);
	memset(gptr(&t->d, USED_GPA, 4), 0, 4);
	discover(t);
}

static void trig_fini(struct trig *t)
{
	virtio_blk_pci_destroy(t->dev);
	pci_destroy(&t->pb);
	bus_destroy(&t->mmio);
	bus_destroy(&t->pio);
	blk_backend_close(&t->be);
	guest_mem_free(&t->m);
}

static uint64_t device_features(struct trig *t)
{
	uint64_t f;

	mmio_write(t, t->common + VIRTIO_PCI_COMMON_DFSELECT, 0, 4);
	f = mmio_read(t, t->common + VIRTIO_PCI_COMMON_DF, 4);
	mmio_write(t, t->common + VIRTIO_PCI_COMMON_DFSELECT, 1, 4);
	return f | mmio_read(t, t->common + VIRTIO_PCI_COMMON_DF, 4) << 32;
}

static void driver_features(struct trig *t, uint64_t f)
{
	mmio_write(t, t->common + VIRTIO_PCI_COMMON_GFSELECT, 0, 4);
	mmio_write(t, t->common + VIRTIO_PCI_COMMON_GF, (uint32_t)f, 4);
	mmio_write(t, t->common + VIRTIO_PCI_COMMON_GFSELECT, 1, 4);
	mmio_write(t, t->common + VIRTIO_PCI_COMMON_GF, f >> 32, 4);
}

/* Negotiates features and sets queue 0 up with size qsize; returns the status read back. */
static uint8_t driver_init(struct trig *t, uint64_t want, uint16_t qsize, bool driver_ok)
{
	uint64_t offered;
	uint8_t st;

	set_status_reg(t, 0);
	ck_assert_uint_eq(status_reg(t), 0);
	set_status_reg(t, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	set_status_reg(t, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	offered = device_features(t);
	ck_assert(offered & (1ull << VIRTIO_F_VERSION_1));
	driver_features(t, want);
	set_status_reg(t, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
	                      VIRTIO_CONFIG_S_FEATURES_OK);
	st = status_reg(t);
	if (!(st & VIRTIO_CONFIG_S_FEATURES_OK))
		return st;
	ck_assert_uint_eq(mmio_read(t, t->common + VIRTIO_PCI_COMMON_NUMQ, 2), 1);
	mmio_write(t, t->common + VIRTIO_PCI_COMMON_Q_SELECT, 0, 2);
	ck_assert_uint_eq(mmio_read(t, t->common + VIRTIO_PCI_COMMON_Q_SIZE, 2), VIRTQ_MAX_SIZE);
	ck_assert_uint_eq(mmio_read(t, t->common + VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
	mmio_write(t, t->common + VIRTIO_PCI_COMMON_Q_SIZE, qsize, 2);
	/* 64-bit addresses in two 32-bit halves, as Linux writes them. */
	mmio_write(t, t->common + VIRTIO_PCI_COMMON_Q_DESCLO, (uint32_t)t->d.desc, 4);
	mmio_write(t, t->common + VIRTIO_PCI_COMMON_Q_DESCHI, t->d.desc >> 32, 4);
	mmio_write(t, t->common + VIRTIO_PCI_COMMON_Q_AVAILLO, (uint32_t)t->d.avail, 4);
	mmio_write(t, t->common + VIRTIO_PCI_COMMON_Q_AVAILHI, t->d.avail >> 32, 4);
	mmio_write(t, t->common + VIRTIO_PCI_COMMON_Q_USEDLO, (uint32_t)t->d.used, 4);
	mmio_write(t, t->common + VIRTIO_PCI_COMMON_Q_USEDHI, t->d.used >> 32, 4);
	ck_assert_uint_eq(mmio_read(t, t->common + VIRTIO_PCI_COMMON_Q_DESCLO, 8), t->d.desc);
	ck_assert_uint_eq(mmio_read(t, t->common + VIRTIO_PCI_COMMON_Q_MSIX, 2),
	                  VIRTIO_MSI_NO_VECTOR);
	ck_assert_uint_eq(mmio_read(t, t->common + VIRTIO_PCI_COMMON_MSIX, 2),
	                  VIRTIO_MSI_NO_VECTOR);
	ck_assert_uint_eq(mmio_read(t, t->common + VIRTIO_PCI_COMMON_Q_NOFF, 2), 0);
	mmio_write(t, t->common + VIRTIO_PCI_COMMON_Q_ENABLE, 1, 2);
	ck_assert_uint_eq(mmio_read(t, t->common + VIRTIO_PCI_COMMON_Q_ENABLE, 2),
	                  qsize && !(qsize & (qsize - 1)) && qsize <= VIRTQ_MAX_SIZE);
	t->d.size = qsize;
	if (driver_ok)
		set_status_reg(t, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
		                      VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
	return status_reg(t);
}

static const uint64_t want_features = 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_BLK_F_FLUSH |
                                      1ull << VIRTIO_BLK_F_BLK_SIZE | 1ull << VIRTIO_BLK_F_SEG_MAX;

static void notify_queue(struct trig *t)
{
	mmio_write(t, t->notify + 0 * t->mult, 0, 2);
}

START_TEST(test_pci_init_and_request)
{
	struct trig t;
	struct treq rq;
	uint32_t len = 4096;
	uint8_t src[4096], got[4096];
	uint8_t st;
	uint64_t cap;

	trig_init(&t);
	ck_assert_uint_eq(virtio_pci_notify_addr(&t.dev->vp, 0), t.bar + t.notify);
	ck_assert_uint_eq(virtio_pci_notify_addr(&t.dev->vp, 1), 0);
	st = driver_init(&t, want_features, 128, true);
	ck_assert_uint_eq(st, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
	                          VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
	ck_assert_uint_eq(virtio_pci_features(&t.dev->vp), want_features);
	/* The device configuration, in two 32-bit halves and whole. */
	cap = mmio_read(&t, t.devcfg, 4) | mmio_read(&t, t.devcfg + 4, 4) << 32;
	ck_assert_uint_eq(cap, DISK_SECTS);
	ck_assert_uint_eq(mmio_read(&t, t.devcfg, 8), DISK_SECTS);
	ck_assert_uint_eq(mmio_read(&t, t.devcfg + 20, 4), 512);                /* blk_size */
	ck_assert_uint_eq(mmio_read(&t, t.devcfg + 12, 4), VIRTIO_BLK_SEG_MAX); /* seg_max */
	ck_assert_uint_eq(mmio_read(&t, t.devcfg + 0x800, 4), 0);               /* past the end */

	/* A write, then a read, each notified through the BAR. */
	fill_random(src, sizeof(src), 9);
	blk_req(&t.d, VIRTIO_BLK_T_OUT, 10, &len, 1, false, &rq);
	treq_fill(&t.d, &rq, src);
	notify_queue(&t);
	ck_assert_uint_eq(used_idx(&t.d), 1);
	ck_assert_uint_eq(status_of(&t.d, &rq), VIRTIO_BLK_S_OK);
	ck_assert_uint_eq(t.rec.raises, 1);
	ck_assert_int_eq(t.rec.level, 1);
	ck_assert_uint_eq(t.rec.gsi, 11);
	/* Reading the ISR returns it, clears it and lowers the line. */
	ck_assert_uint_eq(mmio_read(&t, t.isr, 1), VIRTIO_PCI_ISR_QUEUE);
	ck_assert_int_eq(t.rec.level, 0);
	ck_assert_uint_eq(t.rec.lowers, 1);
	ck_assert_uint_eq(mmio_read(&t, t.isr, 1), 0);
	ck_assert_uint_eq(t.rec.lowers, 1);

	t.d.next_desc = 0;
	blk_req(&t.d, VIRTIO_BLK_T_IN, 10, &len, 1, true, &rq);
	notify_queue(&t);
	ck_assert_uint_eq(used_idx(&t.d), 2);
	ck_assert_uint_eq(used_elem(&t.d, 1).len, len + 1);
	ck_assert_uint_eq(status_of(&t.d, &rq), VIRTIO_BLK_S_OK);
	treq_collect(&t.d, &rq, got);
	ck_assert_mem_eq(got, src, sizeof(src));
	ck_assert_uint_eq(t.rec.raises, 2);
	ck_assert_uint_eq(mmio_read(&t, t.isr, 1), VIRTIO_PCI_ISR_QUEUE);

	/* NO_INTERRUPT: the request completes, and no interrupt is raised. */
	avail_ring(&t.d)->flags = htole16(VIRTQ_AVAIL_F_NO_INTERRUPT);
	t.d.next_desc = 0;
	blk_req(&t.d, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, true, &rq);
	notify_queue(&t);
	ck_assert_uint_eq(used_idx(&t.d), 3);
	ck_assert_uint_eq(t.rec.raises, 2);
	ck_assert_uint_eq(mmio_read(&t, t.isr, 1), 0);

	/* Reset: everything back to its power-on value, line low. */
	set_status_reg(&t, 0);
	ck_assert_uint_eq(status_reg(&t), 0);
	ck_assert_uint_eq(mmio_read(&t, t.common + VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
	ck_assert_uint_eq(mmio_read(&t, t.common + VIRTIO_PCI_COMMON_Q_SIZE, 2), VIRTQ_MAX_SIZE);
	ck_assert_uint_eq(mmio_read(&t, t.common + VIRTIO_PCI_COMMON_Q_DESCLO, 8), 0);
	ck_assert_uint_eq(virtio_pci_features(&t.dev->vp), 0);
	ck_assert_int_eq(t.rec.level, 0);
	trig_fini(&t);
}
END_TEST

START_TEST(test_pci_refuses_features)
{
	struct trig t;
	uint8_t st;

	trig_init(&t);
	/* A feature the device did not offer (multiqueue). */
	st = driver_init(&t, want_features | 1ull << VIRTIO_BLK_F_MQ, 128, false);
	ck_assert(!(st & VIRTIO_CONFIG_S_FEATURES_OK));
	/* Bit 63, far outside the offer. */
	st = driver_init(&t, want_features | 1ull << 63, 128, false);
	ck_assert(!(st & VIRTIO_CONFIG_S_FEATURES_OK));
	/* A legacy driver, without VERSION_1, on a device that has no legacy interface. */
	st = driver_init(&t, want_features & ~(1ull << VIRTIO_F_VERSION_1), 128, false);
	ck_assert(!(st & VIRTIO_CONFIG_S_FEATURES_OK));
	/* Features in select window 2. */
	set_status_reg(&t, 0);
	set_status_reg(&t, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	driver_features(&t, want_features);
	mmio_write(&t, t.common + VIRTIO_PCI_COMMON_GFSELECT, 2, 4);
	mmio_write(&t, t.common + VIRTIO_PCI_COMMON_GF, 1, 4);
	set_status_reg(&t, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
	                       VIRTIO_CONFIG_S_FEATURES_OK);
	ck_assert(!(status_reg(&t) & VIRTIO_CONFIG_S_FEATURES_OK));
	/* After a refusal and a reset, a good offer is accepted, and then features are fixed. */
	st = driver_init(&t, want_features, 128, true);
	ck_assert(st & VIRTIO_CONFIG_S_FEATURES_OK);
	driver_features(&t, want_features | 1ull << VIRTIO_BLK_F_MQ);
	ck_assert_uint_eq(virtio_pci_features(&t.dev->vp), want_features);
	mmio_write(&t, t.common + VIRTIO_PCI_COMMON_GFSELECT, 0, 4);
	ck_assert_uint_eq(mmio_read(&t, t.common + VIRTIO_PCI_COMMON_GF, 4),
	                  (uint32_t)want_features);
	/* The device offers F_RO only for a read-only disk, and never MQ. */
	ck_assert(!(device_features(&t) & (1ull << VIRTIO_BLK_F_RO)));
	ck_assert(!(device_features(&t) & (1ull << VIRTIO_BLK_F_MQ)));
	trig_fini(&t);
}
END_TEST

START_TEST(test_pci_queue_rules)
{
	struct trig t;
	struct treq rq;

	trig_init(&t);
	/* A queue size that is not a power of two cannot be enabled. */
	ck_assert_uint_eq(driver_init(&t, want_features, 100, false) & VIRTIO_CONFIG_S_FEATURES_OK,
	                  VIRTIO_CONFIG_S_FEATURES_OK);
	ck_assert_uint_eq(mmio_read(&t, t.common + VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
	/* Nor one larger than the device's. */
	driver_init(&t, want_features, 512, false);
	ck_assert_uint_eq(mmio_read(&t, t.common + VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
	/* A queue that does not exist reads size 0 and ignores set-up. */
	mmio_write(&t, t.common + VIRTIO_PCI_COMMON_Q_SELECT, 5, 2);
	ck_assert_uint_eq(mmio_read(&t, t.common + VIRTIO_PCI_COMMON_Q_SIZE, 2), 0);
	mmio_write(&t, t.common + VIRTIO_PCI_COMMON_Q_ENABLE, 1, 2);
	ck_assert_uint_eq(mmio_read(&t, t.common + VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
	mmio_write(&t, t.notify + 5 * t.mult, 5, 2); /* notifying it does nothing */

	/* Before DRIVER_OK nothing is processed; once it is set, the next notify is. */
	driver_init(&t, want_features, 64, false);
	t.d.next_desc = 0;
	blk_req(&t.d, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, true, &rq);
	notify_queue(&t);
	ck_assert_uint_eq(used_idx(&t.d), 0);
	ck_assert_uint_eq(status_of(&t.d, &rq), SENTINEL);
	/* An enabled queue's set-up is fixed. */
	mmio_write(&t, t.common + VIRTIO_PCI_COMMON_Q_SIZE, 32, 2);
	ck_assert_uint_eq(mmio_read(&t, t.common + VIRTIO_PCI_COMMON_Q_SIZE, 2), 64);
	set_status_reg(&t, status_reg(&t) | VIRTIO_CONFIG_S_DRIVER_OK);
	notify_queue(&t);
	ck_assert_uint_eq(used_idx(&t.d), 1);
	ck_assert_uint_eq(status_of(&t.d, &rq), VIRTIO_BLK_S_OK);
	/* Odd accesses: bytes of a 16-bit register, reads of nothing, read-only fields. */
	ck_assert_uint_eq(mmio_read(&t, t.common + VIRTIO_PCI_COMMON_NUMQ, 1), 1);
	ck_assert_uint_eq(mmio_read(&t, t.common + VIRTIO_PCI_COMMON_NUMQ + 1, 1), 0);
	mmio_write(&t, t.common + VIRTIO_PCI_COMMON_NUMQ, 7, 2);
	ck_assert_uint_eq(mmio_read(&t, t.common + VIRTIO_PCI_COMMON_NUMQ, 2), 1);
	ck_assert_uint_eq(mmio_read(&t, t.common + 0x100, 4), 0);
	ck_assert_uint_eq(mmio_read(&t, t.common + VIRTIO_PCI_COMMON_LEN - 2, 4), 0);
	mmio_write(&t, t.devcfg, 0x12345678, 4); /* read-only configuration */
	ck_assert_uint_eq(mmio_read(&t, t.devcfg, 8), DISK_SECTS);
	trig_fini(&t);
}
END_TEST

/* Rings outside RAM: the device asks for a reset (NEEDS_RESET and a configuration interrupt). */
START_TEST(test_pci_needs_reset)
{
	struct trig t;

	trig_init(&t);
	t.d.desc = MEM_SIZE + 4096;
	driver_init(&t, want_features, 64, true);
	t.d.desc = DESC_GPA;
	publish(&t.d, 0);
	notify_queue(&t);
	ck_assert(status_reg(&t) & VIRTIO_CONFIG_S_NEEDS_RESET);
	ck_assert_uint_eq(mmio_read(&t, t.isr, 1), VIRTIO_PCI_ISR_CONFIG);
	/* The driver cannot clear the bit, only a reset can. */
	set_status_reg(&t, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
	                       VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
	ck_assert(status_reg(&t) & VIRTIO_CONFIG_S_NEEDS_RESET);
	set_status_reg(&t, 0);
	ck_assert_uint_eq(status_reg(&t), 0);
	trig_fini(&t);
}
END_TEST

static bool wait_raises(struct irq_rec *rec, unsigned n)
{
	for (int i = 0; i < 5000; i++) {
		struct timespec ts = { 0, 1000000 };

		if (__atomic_load_n(&rec->raises, __ATOMIC_ACQUIRE) >= n)
			return true;
		nanosleep(&ts, NULL);
	}
	return false;
}

/* The KVM path: notifications arrive on an eventfd and a worker thread completes them. */
START_TEST(test_pci_worker)
{
	struct trig t;
	struct treq rq;
	struct circ_err err;
	uint32_t len = 512;
	uint64_t one = 1;
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	ck_assert_int_ge(efd, 0);
	trig_init(&t);
	ck_assert_int_eq(virtio_blk_pci_start_worker(t.dev, efd, &err), 0);
	ck_assert_int_eq(virtio_blk_pci_start_worker(t.dev, efd, &err), -1);
	driver_init(&t, want_features, 128, true);

	/* As KVM's ioeventfd would: the eventfd is signalled, no MMIO exit at all. */
	blk_req(&t.d, VIRTIO_BLK_T_GET_ID, 0, &len, 1, true, &rq);
	ck_assert_int_eq(write(efd, &one, sizeof(one)), sizeof(one));
	ck_assert(wait_raises(&t.rec, 1));
	ck_assert_uint_eq(used_idx(&t.d), 1);
	ck_assert_uint_eq(status_of(&t.d, &rq), VIRTIO_BLK_S_OK);
	ck_assert_uint_eq(mmio_read(&t, t.isr, 1), VIRTIO_PCI_ISR_QUEUE);

	/* A notify that does reach the BAR is passed to the worker. */
	t.d.next_desc = 0;
	blk_req(&t.d, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, true, &rq);
	notify_queue(&t);
	ck_assert(wait_raises(&t.rec, 2));
	ck_assert_uint_eq(used_idx(&t.d), 2);
	ck_assert_uint_eq(status_of(&t.d, &rq), VIRTIO_BLK_S_OK);
	trig_fini(&t);
	close(efd);
}
END_TEST

Suite *virtio_pci_suite(void)
{
	Suite *s = suite_create("virtio-pci");
	TCase *pci = tcase_create("virtio-pci");

	tcase_set_timeout(pci, 30);
	tcase_add_test(pci, test_pci_init_and_request);
	tcase_add_test(pci, test_pci_refuses_features);
	tcase_add_test(pci, test_pci_queue_rules);
	tcase_add_test(pci, test_pci_needs_reset);
	tcase_add_test(pci, test_pci_worker);
	suite_add_tcase(s, pci);
	return s;
}
