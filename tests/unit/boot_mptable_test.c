/* SPDX-License-Identifier: MIT */
/* The MP table hv writes for its guests, and the GDT helpers the boot loader uses. */
#include "hv/boot.h"
#include "hv/mptable.h"
#include "tests/unit/boot_fixture.h"
#include "tests/unit/suites.h"
#include "tests/unit/testutil.h"

/* ---- the MP table ---- */

static const unsigned mp_cpu_counts[] = { 1, 2, 4, 27, 64, MPTABLE_MAX_CPUS };

START_TEST(test_mptable_layout)
{
	const struct mptable_pci_irq irqs[] = { { 1, 5 }, { 2, 6 }, { 3, 7 }, { 31, 20 } };
	unsigned cpus = mp_cpu_counts[_i];
	struct circ_err err = { 0 };
	struct guest_mem m;
	struct mp_seen s;

	alloc_mem(&m, 16 * MiB);
	ck_assert_msg(mptable_write(&m, cpus, irqs, 4, &err) == 0, "%s", err.msg);
	parse_mptable(&m, &s);
	ck_assert_uint_eq(s.cpus, cpus);
	ck_assert_uint_eq(s.bsp, 1);
	ck_assert_uint_eq(s.ioapics, 1);
	ck_assert_uint_eq(s.ioapic_id, cpus);
	ck_assert_uint_eq(s.buses, 2);
	ck_assert_uint_eq(s.localints, 2);
	/* IRQ 0 on pin 2, no cascade, pins the PCI devices own left to them. */
	ck_assert_int_eq(s.isa_pin[0], 2);
	ck_assert_int_eq(s.isa_pin[2], -1);
	for (int irq = 1; irq < 16; irq++)
		if (irq != 2)
			ck_assert_int_eq(s.isa_pin[irq], irq >= 5 && irq <= 7 ? -1 : irq);
	for (int slot = 0; slot < 32; slot++) {
		int want = -1;

		for (size_t i = 0; i < 4; i++)
			if (irqs[i].slot == slot)
				want = irqs[i].gsi;
		ck_assert_int_eq(s.pci_gsi[slot], want);
	}
	ck_assert_uint_eq(s.ioints, 12 + 4);
	ck_assert_uint_le(get_u32le(gp(&m, MPTABLE_START, 16) + 4) +
	                      rd16(gp(&m, MPTABLE_START + 16, 8) + 4) - MPTABLE_START,
	                  mptable_size(cpus, 4));
	guest_mem_free(&m);
}
END_TEST

START_TEST(test_mptable_no_pci)
{
	struct circ_err err = { 0 };
	struct guest_mem m;
	struct mp_seen s;

	alloc_mem(&m, 16 * MiB);
	/* Written twice: the second, smaller table must not keep the first's entries. */
	ck_assert_msg(mptable_write(&m, 8, (const struct mptable_pci_irq[]){ { 1, 5 } }, 1, &err) ==
	                  0,
	              "%s", err.msg);
	ck_assert_msg(mptable_write(&m, 1, NULL, 0, &err) == 0, "%s", err.msg);
	parse_mptable(&m, &s);
	ck_assert_uint_eq(s.cpus, 1);
	ck_assert_uint_eq(s.ioints, 15);
	ck_assert_int_eq(s.isa_pin[5], 5);
	for (int slot = 0; slot < 32; slot++)
		ck_assert_int_eq(s.pci_gsi[slot], -1);
	guest_mem_free(&m);
}
END_TEST

START_TEST(test_mptable_rejects)
{
	struct circ_err err = { 0 };
	struct guest_mem m;
	struct mptable_pci_irq many[32];

	alloc_mem(&m, 16 * MiB);
	ck_assert_int_eq(mptable_write(&m, 0, NULL, 0, &err), -1);
	ck_assert_err_has(&err, "CPUs");
	ck_assert_int_eq(mptable_write(&m, MPTABLE_MAX_CPUS + 1, NULL, 0, &err), -1);
	ck_assert_err_has(&err, "CPUs");
	ck_assert_int_eq(
	    mptable_write(&m, 1, (const struct mptable_pci_irq[]){ { 0, 5 } }, 1, &err), -1);
	ck_assert_err_has(&err, "slot 0");
	ck_assert_int_eq(
	    mptable_write(&m, 1, (const struct mptable_pci_irq[]){ { 32, 5 } }, 1, &err), -1);
	ck_assert_err_has(&err, "slot 32");
	ck_assert_int_eq(
	    mptable_write(&m, 1, (const struct mptable_pci_irq[]){ { 1, 2 } }, 1, &err), -1);
	ck_assert_err_has(&err, "GSI 2");
	ck_assert_int_eq(
	    mptable_write(&m, 1, (const struct mptable_pci_irq[]){ { 1, 0 } }, 1, &err), -1);
	ck_assert_int_eq(
	    mptable_write(&m, 1, (const struct mptable_pci_irq[]){ { 1, 24 } }, 1, &err), -1);
	ck_assert_err_has(&err, "GSI 24");
	ck_assert_int_eq(
	    mptable_write(&m, 1, (const struct mptable_pci_irq[]){ { 4, 5 }, { 4, 6 } }, 2, &err),
	    -1);
	ck_assert_err_has(&err, "twice");
	for (int i = 0; i < 32; i++)
		many[i] = (struct mptable_pci_irq){ (uint8_t)(i % 31 + 1), 5 };
	ck_assert_int_eq(mptable_write(&m, 1, many, 32, &err), -1);
	ck_assert_int_eq(mptable_write(&m, 1, NULL, 3, &err), -1);
	guest_mem_free(&m);
}
END_TEST

/* ---- GDT helpers ---- */

START_TEST(test_gdt_round_trip)
{
	struct boot_segment s =
	    boot_segment_from_gdt(boot_gdt_entry(0x4093, 0x12345678, 0xabcde), 0x20);

	ck_assert_uint_eq(s.base, 0x12345678);
	ck_assert_uint_eq(s.limit, 0xabcde); /* byte granular: G clear */
	ck_assert_uint_eq(s.selector, 0x20);
	ck_assert(s.db && !s.g && !s.l && s.present && s.s);
	ck_assert_uint_eq(s.type, 3);
	ck_assert_uint_eq(s.dpl, 0);
}
END_TEST

Suite *boot_mptable_suite(void)
{
	Suite *s = suite_create("boot-mptable");
	TCase *mp = tcase_create("mptable");

	tcase_add_loop_test(mp, test_mptable_layout, 0,
	                    (int)(sizeof(mp_cpu_counts) / sizeof(mp_cpu_counts[0])));
	tcase_add_test(mp, test_mptable_no_pci);
	tcase_add_test(mp, test_mptable_rejects);
	tcase_add_test(mp, test_gdt_round_trip);
	suite_add_tcase(s, mp);
	return s;
}
