/*
 * CPU exceptions: a fault in the firmware prints one line and halts instead of escalating to a
 * triple fault.
 *
 * The stubs sit at a fixed address (EXCEPTION_STUBS, firmware.ld asserts it), 16 bytes apart, so
 * the IDT below is made of assembler constants and lives in ROM: installing it is one `lidt`.
 * Each stub pushes a dummy error code where the CPU pushes none, then the vector, and joins the
 * common path, which calls Rust's `exception_report(vector, error, rip)`.
 */
.set EXCEPTION_STUBS, 0xF2000
.set CODE64_SELECTOR, 0x08
.set GATE_INTERRUPT64, 0x8E00      /* present, DPL 0, 64-bit interrupt gate */

.section .exception_stubs, "ax"
.code64
.globl exception_stubs
exception_stubs:
.irp vec, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .balign 16
    /* Vectors 8, 10-14, 17, 21, 29 and 30 push an error code; the others do not. */
    .if (\vec == 8) || (\vec >= 10 && \vec <= 14) || (\vec == 17) || (\vec == 21) || (\vec == 29) || (\vec == 30)
    .else
    pushq   $0
    .endif
    pushq   $\vec
    jmp     exception_common
.endr

exception_common:
    popq    %rdi                    /* vector */
    popq    %rsi                    /* error code */
    movq    (%rsp), %rdx            /* faulting RIP, from the interrupt frame */
    andq    $~0xF, %rsp
    call    exception_report
    ud2

.section .rodata.idt, "a"
.balign 16
idt:
.irp vec, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .word   (EXCEPTION_STUBS + 16 * \vec) & 0xFFFF
    .word   CODE64_SELECTOR
    .word   GATE_INTERRUPT64
    .word   (EXCEPTION_STUBS + 16 * \vec) >> 16
    .long   0
    .long   0
.endr
idt_end:

.globl idt_descriptor
.balign 8
idt_descriptor:
    .word   idt_end - idt - 1
    .quad   idt
