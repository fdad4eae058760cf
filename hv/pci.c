/* SPDX-License-Identifier: MIT */
#include "hv/pci.h"

#include <errno.h>
#include <string.h>

void pci_cfg_set8(struct pci_dev *d, unsigned off, uint8_t v)
{
	d->cfg[off] = v;
}

void pci_cfg_set16(struct pci_dev *d, unsigned off, uint16_t v)
{
	d->cfg[off] = (uint8_t)v;
	d->cfg[off + 1] = (uint8_t)(v >> 8);
}

void pci_cfg_set32(struct pci_dev *d, unsigned off, uint32_t v)
{
	pci_cfg_set16(d, off, (uint16_t)v);
	pci_cfg_set16(d, off + 2, (uint16_t)(v >> 16));
}

uint32_t pci_cfg_get32(const struct pci_dev *d, unsigned off)
{
	return (uint32_t)d->cfg[off] | (uint32_t)d->cfg[off + 1] << 8 |
	       (uint32_t)d->cfg[off + 2] << 16 | (uint32_t)d->cfg[off + 3] << 24;
}

int pci_add_capability(struct pci_dev *d, const uint8_t *data, unsigned len)
{
	unsigned at = d->cap_end ? d->cap_end : 0x40, prev;

	at = (at + 3) & ~3u;
	if (len < 2 || at + len > PCI_CFG_SIZE)
		return -ENOSPC;
	memcpy(d->cfg + at, data, len);
	d->cfg[at + 1] = 0;
	if (!(d->cfg[PCI_STATUS] & PCI_STATUS_CAP_LIST)) {
		d->cfg[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
		d->cfg[PCI_CAPABILITY_LIST] = (uint8_t)at;
	} else {
		for (prev = d->cfg[PCI_CAPABILITY_LIST]; d->cfg[prev + 1]; prev = d->cfg[prev + 1])
			;
		d->cfg[prev + 1] = (uint8_t)at;
	}
	d->cap_end = (uint8_t)(at + len);
	return 0;
}

/* Puts BAR i where the config space says, if decoding is on; else takes it off. */
static void bar_update(struct pci_bus *pb, struct pci_dev *d, int i)
{
	uint16_t cmd = (uint16_t)(d->cfg[PCI_COMMAND] | d->cfg[PCI_COMMAND + 1] << 8);
	bool io = d->bar_io[i];
	struct bus *bus = io ? pb->pio : pb->mmio;
	uint32_t addr = pci_cfg_get32(d, PCI_BASE_ADDRESS_0 + 4 * i) & (io ? ~3u : ~15u);
	bool on = (cmd & (io ? PCI_COMMAND_IO : PCI_COMMAND_MEMORY)) && addr &&
	          (uint64_t)addr + d->bar_size[i] <= (io ? 0x10000ull : 0x100000000ull);

	if (!on)
		addr = 0;
	if (addr == d->bar_mapped[i])
		return;
	/* Unmapping: it fails only when not mapped, which is the aim. */
	if (d->bar_mapped[i])
		CIRC_BEST_EFFORT(bus_move(bus, d->opaque, d->bar_mapped[i], 0, 0));
	d->bar_mapped[i] = 0;
	/* An address that collides with another device stays unmapped, as it would decode nothing.
	 */
	if (addr && bus_register(bus, addr, d->bar_size[i], d->bar_fn[i], d->opaque, d->name) == 0)
		d->bar_mapped[i] = addr;
}

static void cfg_write(struct pci_bus *pb, struct pci_dev *d, unsigned off, const uint8_t *data,
                      uint32_t len)
{
	for (uint32_t k = 0; k < len; k++) {
		unsigned o = off + k;

		if (o == PCI_COMMAND || o == PCI_COMMAND + 1 || o == PCI_INTERRUPT_LINE) {
			d->cfg[o] = data[k];
		} else if (o >= PCI_BASE_ADDRESS_0 && o < PCI_BASE_ADDRESS_0 + 4 * PCI_NUM_BARS) {
			int i = (int)(o - PCI_BASE_ADDRESS_0) / 4;
			uint32_t v, keep;

			if (!d->bar_size[i])
				continue;
			d->cfg[o] = data[k];
			/* Low bits say what kind of BAR it is; bits below its size read as 0. */
			keep = d->bar_io[i] ? 1u : 0u;
			v = pci_cfg_get32(d, PCI_BASE_ADDRESS_0 + 4 * i);
			v = (v & ~(d->bar_size[i] - 1)) | keep;
			pci_cfg_set32(d, PCI_BASE_ADDRESS_0 + 4 * i, v);
		}
	}
	for (int i = 0; i < PCI_NUM_BARS; i++)
		if (d->bar_size[i])
			bar_update(pb, d, i);
}

void pci_conf1_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool write)
{
	struct pci_bus *pb = opaque;
	struct pci_dev *d = NULL;
	unsigned slot, reg;

	pthread_mutex_lock(&pb->lock);
	if (off < 4) {
		/* The address register is only ever accessed whole. */
		if (off == 0 && len == 4) {
			if (write)
				memcpy(&pb->conf_addr, data, 4);
			else
				memcpy(data, &pb->conf_addr, 4);
		} else if (!write) {
			memset(data, 0xff, len);
		}
		goto out;
	}
	slot = (pb->conf_addr >> 11) & 31;
	reg = (pb->conf_addr & 0xfc) + (unsigned)(off - 4);
	/* Bus 0, function 0 only; an access past the dword is cut off. */
	if ((pb->conf_addr & 0x80000000u) && !((pb->conf_addr >> 16) & 0xff) &&
	    !((pb->conf_addr >> 8) & 7))
		d = pb->devs[slot];
	if (reg + len > PCI_CFG_SIZE)
		d = NULL;
	if (!d) {
		if (!write)
			memset(data, 0xff, len);
		goto out;
	}
	if (write)
		cfg_write(pb, d, reg, data, len);
	else
		memcpy(data, d->cfg + reg, len);
out:
	pthread_mutex_unlock(&pb->lock);
}

int pci_init(struct pci_bus *pb, struct bus *pio, struct bus *mmio)
{
	memset(pb, 0, sizeof(*pb));
	pthread_mutex_init(&pb->lock, NULL);
	pb->pio = pio;
	pb->mmio = mmio;
	pb->mmio_next = PCI_MMIO_START;
	pb->io_next = PCI_IO_START;
	/* An i440FX-like host bridge, the one every x86 guest knows. */
	pci_cfg_set16(&pb->host, PCI_VENDOR_ID, 0x8086);
	pci_cfg_set16(&pb->host, PCI_DEVICE_ID, 0x1237);
	pci_cfg_set16(&pb->host, PCI_CLASS_DEVICE, 0x0600);
	pb->host.name = "pci-host-bridge";
	pb->devs[0] = &pb->host;
	return bus_register(pio, PCI_CONF1_ADDR_PORT, 8, pci_conf1_io, pb, "pci-conf1");
}

void pci_destroy(struct pci_bus *pb)
{
	pthread_mutex_destroy(&pb->lock);
}

int pci_register(struct pci_bus *pb, struct pci_dev *dev, uint8_t irq)
{
	int slot = -1;

	pthread_mutex_lock(&pb->lock);
	for (int s = 1; s < PCI_MAX_DEVICES; s++)
		if (!pb->devs[s]) {
			slot = s;
			break;
		}
	if (slot < 0) {
		pthread_mutex_unlock(&pb->lock);
		return -ENOSPC;
	}
	dev->slot = (uint8_t)slot;
	dev->irq = irq;
	for (int i = 0; i < PCI_NUM_BARS; i++) {
		uint32_t size = dev->bar_size[i], addr;

		if (!size)
			continue;
		if (size & (size - 1)) {
			pthread_mutex_unlock(&pb->lock);
			return -EINVAL;
		}
		if (dev->bar_io[i]) {
			addr = (pb->io_next + size - 1) & ~(size - 1);
			pb->io_next = addr + size;
		} else {
			addr = (pb->mmio_next + size - 1) & ~(size - 1);
			if ((uint64_t)addr + size > PCI_MMIO_END) {
				pthread_mutex_unlock(&pb->lock);
				return -ENOSPC;
			}
			pb->mmio_next = addr + size;
		}
		pci_cfg_set32(dev, PCI_BASE_ADDRESS_0 + 4 * i, addr | (dev->bar_io[i] ? 1u : 0u));
		dev->bar_addr[i] = addr;
	}
	/* As firmware leaves it: decoding on, INTA routed to irq. */
	pci_cfg_set16(dev, PCI_COMMAND, PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
	pci_cfg_set8(dev, PCI_INTERRUPT_LINE, irq);
	pci_cfg_set8(dev, PCI_INTERRUPT_PIN, 1);
	pb->devs[slot] = dev;
	for (int i = 0; i < PCI_NUM_BARS; i++)
		if (dev->bar_size[i])
			bar_update(pb, dev, i);
	pthread_mutex_unlock(&pb->lock);
	return 0;
}
