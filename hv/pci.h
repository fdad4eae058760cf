/* SPDX-License-Identifier: MIT */
/*
 * PCI: the host bridge on the conf1 ports (0xcf8 address, 0xcfc data) and
 * devices on bus 0. A device fills its config space and declares its BARs;
 * pci_register places the BARs in the 32-bit MMIO hole (or port space) and
 * puts them on the buses, and moves them if the guest reprograms a BAR.
 */
#ifndef CIRC_HV_PCI_H
#define CIRC_HV_PCI_H

#include <stdbool.h>
#include <stdint.h>

#include <linux/pci_regs.h> /* the config space's offsets and bits */

#include "util/err.h"
#include "hv/bus.h"

#define PCI_CFG_SIZE        256
#define PCI_MAX_DEVICES     32
#define PCI_NUM_BARS        6
#define PCI_MMIO_START      0xd0000000u /* BARs are placed from here, inside the 32-bit hole */
#define PCI_MMIO_END        0xfe000000u /* below the IOAPIC and LAPIC */
#define PCI_IO_START        0xc000u
#define PCI_CONF1_ADDR_PORT 0xcf8
#define PCI_CONF1_DATA_PORT 0xcfc

struct pci_dev {
	uint8_t cfg[PCI_CFG_SIZE];       /* little-endian, as the guest reads it */
	uint32_t bar_size[PCI_NUM_BARS]; /* power of two, 0: no BAR */
	bool bar_io[PCI_NUM_BARS];       /* port I/O rather than MMIO */
	bus_io_fn bar_fn[PCI_NUM_BARS];  /* decodes accesses to the BAR */
	void *opaque;                    /* passed to bar_fn */
	const char *name;
	/* Filled in by pci_register: */
	uint8_t slot;
	uint32_t bar_addr[PCI_NUM_BARS];
	uint8_t irq;                       /* the INTx line's GSI */
	uint32_t bar_mapped[PCI_NUM_BARS]; /* where the BAR is on its bus now, 0: unmapped */
	uint8_t cap_end;                   /* where the next capability goes */
};

struct pci_bus {
	struct pci_dev host; /* the host bridge, slot 0 */
	struct pci_dev *devs[PCI_MAX_DEVICES];
	struct bus *mmio, *pio;
	uint32_t conf_addr; /* last value written to 0xcf8 */
	uint32_t mmio_next;
	uint32_t io_next;
	pthread_mutex_t lock;
};

/* Sets up bus 0 with a host bridge at slot 0 and claims the conf1 ports. */
CIRC_MUST_CHECK int pci_init(struct pci_bus *pb, struct bus *pio, struct bus *mmio);
void pci_destroy(struct pci_bus *pb);
/* Adds dev at the next free slot, with its INTx line on GSI irq. */
CIRC_MUST_CHECK int pci_register(struct pci_bus *pb, struct pci_dev *dev, uint8_t irq);

/* Little-endian config space accessors for device set-up. */
void pci_cfg_set8(struct pci_dev *d, unsigned off, uint8_t v);
void pci_cfg_set16(struct pci_dev *d, unsigned off, uint16_t v);
void pci_cfg_set32(struct pci_dev *d, unsigned off, uint32_t v);
uint32_t pci_cfg_get32(const struct pci_dev *d, unsigned off);
/* Appends a capability of len bytes (data starts with its ID; next is filled in). */
CIRC_MUST_CHECK int pci_add_capability(struct pci_dev *d, const uint8_t *data, unsigned len);

/* conf1 access, exposed for tests: the port bus calls these. */
void pci_conf1_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool write);

#endif
