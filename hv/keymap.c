/* SPDX-License-Identifier: MIT */
#include "hv/keymap.h"

#include <linux/input-event-codes.h>
#include <rfb/keysym.h>

/* Printable ASCII, 0x20 to 0x7e, on a US layout. */
static const uint8_t ascii[0x7f - 0x20] = {
	[' ' - 0x20] = KEY_SPACE,     ['!' - 0x20] = KEY_1,           ['"' - 0x20] = KEY_APOSTROPHE,
	['#' - 0x20] = KEY_3,         ['$' - 0x20] = KEY_4,           ['%' - 0x20] = KEY_5,
	['&' - 0x20] = KEY_7,         ['\'' - 0x20] = KEY_APOSTROPHE, ['(' - 0x20] = KEY_9,
	[')' - 0x20] = KEY_0,         ['*' - 0x20] = KEY_8,           ['+' - 0x20] = KEY_EQUAL,
	[',' - 0x20] = KEY_COMMA,     ['-' - 0x20] = KEY_MINUS,       ['.' - 0x20] = KEY_DOT,
	['/' - 0x20] = KEY_SLASH,     ['0' - 0x20] = KEY_0,           ['1' - 0x20] = KEY_1,
	['2' - 0x20] = KEY_2,         ['3' - 0x20] = KEY_3,           ['4' - 0x20] = KEY_4,
	['5' - 0x20] = KEY_5,         ['6' - 0x20] = KEY_6,           ['7' - 0x20] = KEY_7,
	['8' - 0x20] = KEY_8,         ['9' - 0x20] = KEY_9,           [':' - 0x20] = KEY_SEMICOLON,
	[';' - 0x20] = KEY_SEMICOLON, ['<' - 0x20] = KEY_COMMA,       ['=' - 0x20] = KEY_EQUAL,
	['>' - 0x20] = KEY_DOT,       ['?' - 0x20] = KEY_SLASH,       ['@' - 0x20] = KEY_2,
	['[' - 0x20] = KEY_LEFTBRACE, ['\\' - 0x20] = KEY_BACKSLASH,  [']' - 0x20] = KEY_RIGHTBRACE,
	['^' - 0x20] = KEY_6,         ['_' - 0x20] = KEY_MINUS,       ['`' - 0x20] = KEY_GRAVE,
	['{' - 0x20] = KEY_LEFTBRACE, ['|' - 0x20] = KEY_BACKSLASH,   ['}' - 0x20] = KEY_RIGHTBRACE,
	['~' - 0x20] = KEY_GRAVE,
};

/* Letters a to z. */
static const uint8_t letters[26] = {
	KEY_A, KEY_B, KEY_C, KEY_D, KEY_E, KEY_F, KEY_G, KEY_H, KEY_I, KEY_J, KEY_K, KEY_L, KEY_M,
	KEY_N, KEY_O, KEY_P, KEY_Q, KEY_R, KEY_S, KEY_T, KEY_U, KEY_V, KEY_W, KEY_X, KEY_Y, KEY_Z,
};

static const struct {
	uint16_t keysym;
	uint16_t code;
} special[] = {
	{ XK_BackSpace, KEY_BACKSPACE },
	{ XK_Tab, KEY_TAB },
	{ XK_Return, KEY_ENTER },
	{ XK_Escape, KEY_ESC },
	{ XK_Delete, KEY_DELETE },
	{ XK_Home, KEY_HOME },
	{ XK_Left, KEY_LEFT },
	{ XK_Up, KEY_UP },
	{ XK_Right, KEY_RIGHT },
	{ XK_Down, KEY_DOWN },
	{ XK_Page_Up, KEY_PAGEUP },
	{ XK_Page_Down, KEY_PAGEDOWN },
	{ XK_End, KEY_END },
	{ XK_Insert, KEY_INSERT },
	{ XK_Print, KEY_SYSRQ },
	{ XK_Scroll_Lock, KEY_SCROLLLOCK },
	{ XK_Pause, KEY_PAUSE },
	{ XK_Menu, KEY_COMPOSE },
	{ XK_Num_Lock, KEY_NUMLOCK },
	{ XK_KP_Enter, KEY_KPENTER },
	{ XK_KP_Multiply, KEY_KPASTERISK },
	{ XK_KP_Add, KEY_KPPLUS },
	{ XK_KP_Subtract, KEY_KPMINUS },
	{ XK_KP_Decimal, KEY_KPDOT },
	{ XK_KP_Divide, KEY_KPSLASH },
	{ XK_KP_0, KEY_KP0 },
	{ XK_KP_1, KEY_KP1 },
	{ XK_KP_2, KEY_KP2 },
	{ XK_KP_3, KEY_KP3 },
	{ XK_KP_4, KEY_KP4 },
	{ XK_KP_5, KEY_KP5 },
	{ XK_KP_6, KEY_KP6 },
	{ XK_KP_7, KEY_KP7 },
	{ XK_KP_8, KEY_KP8 },
	{ XK_KP_9, KEY_KP9 },
	{ XK_F1, KEY_F1 },
	{ XK_F2, KEY_F2 },
	{ XK_F3, KEY_F3 },
	{ XK_F4, KEY_F4 },
	{ XK_F5, KEY_F5 },
	{ XK_F6, KEY_F6 },
	{ XK_F7, KEY_F7 },
	{ XK_F8, KEY_F8 },
	{ XK_F9, KEY_F9 },
	{ XK_F10, KEY_F10 },
	{ XK_F11, KEY_F11 },
	{ XK_F12, KEY_F12 },
	{ XK_Shift_L, KEY_LEFTSHIFT },
	{ XK_Shift_R, KEY_RIGHTSHIFT },
	{ XK_Control_L, KEY_LEFTCTRL },
	{ XK_Control_R, KEY_RIGHTCTRL },
	{ XK_Caps_Lock, KEY_CAPSLOCK },
	{ XK_Meta_L, KEY_LEFTMETA },
	{ XK_Meta_R, KEY_RIGHTMETA },
	{ XK_Alt_L, KEY_LEFTALT },
	{ XK_Alt_R, KEY_RIGHTALT },
	{ XK_Super_L, KEY_LEFTMETA },
	{ XK_Super_R, KEY_RIGHTMETA },
	{ XK_ISO_Level3_Shift, KEY_RIGHTALT },
};

unsigned keymap_linux_code(uint32_t keysym)
{
	if (keysym >= 'a' && keysym <= 'z')
		return letters[keysym - 'a'];
	if (keysym >= 'A' && keysym <= 'Z')
		return letters[keysym - 'A'];
	if (keysym >= 0x20 && keysym < 0x7f)
		return ascii[keysym - 0x20];
	for (unsigned i = 0; i < sizeof(special) / sizeof(special[0]); i++)
		if (special[i].keysym == keysym)
			return special[i].code;
	return 0;
}
