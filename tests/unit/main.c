/* SPDX-License-Identifier: MIT */
#include <stdlib.h>

#include "tests/unit/suites.h"

int main(void)
{
	SRunner *sr = srunner_create(err_suite());
	int failed;

	srunner_add_suite(sr, buf_suite());
	srunner_add_suite(sr, parallel_suite());
	srunner_add_suite(sr, json_suite());
	srunner_add_suite(sr, block_suite());
	srunner_add_suite(sr, repo_suite());
	srunner_add_suite(sr, key_suite());
	srunner_add_suite(sr, manifest_suite());
	srunner_add_suite(sr, pointer_suite());
	srunner_add_suite(sr, image_suite());
	srunner_add_suite(sr, cli_suite());
	srunner_add_suite(sr, cache_suite());
	srunner_add_suite(sr, cache_shared_suite());
	srunner_add_suite(sr, cache_migrate_suite());
	srunner_add_suite(sr, readahead_suite());
	srunner_add_suite(sr, store_suite());
	srunner_add_suite(sr, overlay_suite());
	srunner_add_suite(sr, overlay_checkpoint_suite());
	srunner_add_suite(sr, overlay_crash_suite());
	srunner_add_suite(sr, crash_suite());
	srunner_add_suite(sr, push_crash_suite());
	srunner_add_suite(sr, push_suite());
	srunner_add_suite(sr, state_suite());
	srunner_add_suite(sr, disk_suite());
	srunner_add_suite(sr, virtio_suite());
	srunner_add_suite(sr, virtio_queue_suite());
	srunner_add_suite(sr, virtio_pci_suite());
	srunner_add_suite(sr, virtio_net_suite());
	srunner_add_suite(sr, net_backend_suite());
	srunner_add_suite(sr, virtio_input_suite());
	srunner_add_suite(sr, boot_mptable_suite());
	srunner_add_suite(sr, boot_elf_suite());
	srunner_add_suite(sr, boot_suite());
	srunner_add_suite(sr, acpi_suite());
	srunner_add_suite(sr, objects_suite());
	srunner_add_suite(sr, ukey_suite());
	srunner_add_suite(sr, ulayer_suite());
	srunner_add_suite(sr, format2_suite());
	srunner_add_suite(sr, format2_image_suite());
	srunner_add_suite(sr, catalog_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
