/*
 * Jumps to a kernel. Each routine is entered in 64-bit mode from Rust and never returns.
 */
.set CR0_PG,        0x80000000
.set MSR_EFER,      0xC0000080
.set SEL_CODE32,    0x10
.set SEL_DATA,      0x18
.set LINUX_BOOT_CS, 0x10
.set LINUX_BOOT_DS, 0x18

.section .text.handoff, "ax"
.code64

/*
 * handoff_linux64(entry: u64 [rdi], boot_params: u64 [rsi]) -> !
 * boot.rst's 64-bit entry: RSI = boot_params, __BOOT_CS (0x10) a 64-bit code segment and
 * __BOOT_DS (0x18) flat data. The firmware's own 0x10 is 32-bit code, so load a GDT whose 0x10
 * is 64-bit code, then reload CS with a far return.
 */
.globl handoff_linux64
handoff_linux64:
    lgdt    gdt_linux64_descriptor(%rip)
    movl    $LINUX_BOOT_DS, %eax
    movl    %eax, %ds
    movl    %eax, %es
    movl    %eax, %ss
    movl    %eax, %fs
    movl    %eax, %gs
    pushq   $LINUX_BOOT_CS
    pushq   %rdi
    xorl    %eax, %eax
    xorl    %ebx, %ebx
    xorl    %ebp, %ebp
    xorl    %edi, %edi
    lretq

/*
 * handoff_protected32(entry: u32 [edi], eax: u32 [esi], ebx: u32 [edx], esi: u32 [ecx]) -> !
 * The 32-bit entries (PVH, multiboot 1 and 2, Linux's 32-bit entry): flat 32-bit protected mode,
 * paging off, CR4 = 0, EFER = 0, interrupts off, with EAX, EBX and ESI as given and the other
 * general registers zero. The code runs identity-mapped, so turning paging off does not move it.
 */
.globl handoff_protected32
handoff_protected32:
    movl    %esi, %eax              /* EAX at entry (multiboot magic) */
    movl    %edx, %ebx              /* EBX at entry (start_info / MBI) */
    movl    %ecx, %esi              /* ESI at entry (Linux boot_params) */
    movl    %eax, %ebp              /* keep EAX across wrmsr */
    pushq   $SEL_CODE32
    leaq    compat_mode(%rip), %rcx
    pushq   %rcx
    /* Mode switch: 64-bit -> compatibility mode (32-bit code, still paged). */
    lretq
.code32
compat_mode:
    /* Mode switch: paging off leaves long mode (EFER.LMA clears)... */
    movl    %cr0, %ecx
    andl    $~CR0_PG, %ecx
    movl    %ecx, %cr0
    /* ...then EFER.LME off and CR4.PAE off: plain 32-bit protected mode. */
    movl    $MSR_EFER, %ecx
    xorl    %eax, %eax
    xorl    %edx, %edx
    wrmsr
    movl    %eax, %cr4
    movl    $SEL_DATA, %ecx
    movl    %ecx, %ds
    movl    %ecx, %es
    movl    %ecx, %ss
    movl    %ecx, %fs
    movl    %ecx, %gs
    movl    %ebp, %eax
    pushl   %edi                    /* the entry point, for ret */
    xorl    %ecx, %ecx
    xorl    %edx, %edx
    xorl    %edi, %edi
    xorl    %ebp, %ebp
    ret

/* Linux's 64-bit entry GDT: 0x10 64-bit code, 0x18 flat data (accessed bits preset: in ROM). */
.section .rodata.gdt_linux64, "a"
.balign 8
gdt_linux64:
    .quad 0
    .quad 0
    .quad 0x00AF9B000000FFFF
    .quad 0x00CF93000000FFFF
gdt_linux64_end:
gdt_linux64_descriptor:
    .word gdt_linux64_end - gdt_linux64 - 1
    .quad gdt_linux64
