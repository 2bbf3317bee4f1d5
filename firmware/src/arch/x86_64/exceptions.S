/*
 * CPU exception entry stubs: a fault in the firmware prints one line and halts, instead of
 * escalating to a triple fault. Stub n sits at exception_stubs + 16 * n, so idt.rs can compute
 * each handler's address; each pushes a dummy error code where the CPU pushes none, then the
 * vector, and joins the common path, which calls Rust's `exception_report(vector, error, rip)`.
 */
.section .text.exceptions, "ax"
.code64
.balign 16
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
