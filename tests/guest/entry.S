/* Entered in 64-bit mode with RSI -> boot_params and a stack, as hv boots Linux. */
	.section .text.entry, "ax"
	.globl _start
_start:
	mov	%rsi, %rdi
	call	guest_main
1:	hlt
	jmp	1b
	.section .note.GNU-stack, "", @progbits
