/* SPDX-License-Identifier: MIT */
/*
 * X keysyms, as a VNC client sends them, to Linux key codes, for a US
 * layout: the guest's own keymap turns the codes back into characters, so
 * a shifted character maps to its unshifted key (the client sends Shift
 * itself).
 */
#ifndef CIRC_HV_KEYMAP_H
#define CIRC_HV_KEYMAP_H

#include <stdint.h>

/* The key code (KEY_*), or 0 for a keysym with no key on this layout. */
unsigned keymap_linux_code(uint32_t keysym);

#endif
