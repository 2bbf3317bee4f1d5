/*
 * Start-up code shared by every payload: record what the loader handed over, reach long mode
 * with the payload's own identity map of 0-4 GiB, call payload_main(&entry_state).
 *
 * start32  the 32-bit entry of every protocol (multiboot 1 and 2, PVH, Linux's 32-bit entry).
 *          The protocols promise flat 32-bit protected mode with paging off; we record the
 *          general registers, CR0, CR4, EFER, EFLAGS, the segment selectors and GDTR exactly as
 *          we find them (entry.rs reads the descriptors from the loader's GDT later; LSL/LAR
 *          would be simpler, but this machine's emulated KVM cannot execute them), then switch
 *          to long mode.
 * start64  Linux's 64-bit entry (bzImage only): record the same, then move to our page tables
 *          and our GDT.
 * common64 note whether .bss was zero (the loader's job for multiboot and PVH), zero it, call Rust.
 *
 * Nothing here has a stack until start32/start64 set ours: the loader's ESP may point anywhere.
 * Every instruction counts (KVM on this machine emulates each one): no loops except the page
 * table choice, the .bss check and the .bss clear, which are a few dozen iterations.
 */

.set CR0_PE,        0x00000001
.set CR0_PG,        0x80000000
.set CR4_PAE,       0x00000020
.set MSR_EFER,      0xC0000080
.set EFER_LME,      0x00000100
.set SEL_CODE64,    0x08
.set SEL_DATA,      0x18
/* Page table flags: present, writable, accessed (and for leaves: dirty, large page). The A and D
 * bits are preset so the CPU never writes the tables. */
.set PT_TABLE,      0x23
.set PT_LEAF,       0xE3

/* Offsets in EntryState (src/entry.rs checks them with const asserts). */
.set ES_BITS,       0
.set ES_RAX,        8
.set ES_RBX,        16
.set ES_RCX,        24
.set ES_RDX,        32
.set ES_RSI,        40
.set ES_RDI,        48
.set ES_RBP,        56
.set ES_RSP,        64
.set ES_CR0,        72
.set ES_CR4,        80
.set ES_RFLAGS,     88
.set ES_EFER,       96
.set ES_CS,         104
.set ES_DS,         112
.set ES_ES,         120
.set ES_SS,         128
.set ES_GDTR,       136
.set ES_BSS_DIRTY,  152
.set ES_GIB_PAGES,  160
.set ES_SIZE,       168

/* ---- 32-bit protected mode, paging off (as the loader left it) --------------------------- */
.section .text.start, "ax"
.code32
.globl start32
start32:
    movl    %eax, entry_state + ES_RAX
    movl    %ebx, entry_state + ES_RBX
    movl    %ecx, entry_state + ES_RCX
    movl    %edx, entry_state + ES_RDX
    movl    %esi, entry_state + ES_RSI
    movl    %edi, entry_state + ES_RDI
    movl    %ebp, entry_state + ES_RBP
    movl    %esp, entry_state + ES_RSP
    movl    $__stack_top, %esp
    pushfl
    popl    entry_state + ES_RFLAGS
    movl    %cr0, %eax
    movl    %eax, entry_state + ES_CR0
    movl    %cr4, %eax
    movl    %eax, entry_state + ES_CR4
    movl    $MSR_EFER, %ecx
    rdmsr
    movl    %eax, entry_state + ES_EFER
    movw    %cs, entry_state + ES_CS
    movw    %ds, entry_state + ES_DS
    movw    %es, entry_state + ES_ES
    movw    %ss, entry_state + ES_SS
    sgdtl   entry_state + ES_GDTR
    movl    $32, entry_state + ES_BITS

    /* CPUID 0x80000001 EDX bit 26: 1 GiB pages. Without them, PML4[0] keeps the 2 MiB tables. */
    movl    $0x80000001, %eax
    cpuid
    btl     $26, %edx
    jnc     1f
    movl    $(pdpt_1g + PT_TABLE), pml4
    movl    $1, entry_state + ES_GIB_PAGES
1:  movl    $pml4, %eax
    movl    %eax, %cr3
    movl    %cr4, %eax
    orl     $CR4_PAE, %eax
    movl    %eax, %cr4
    movl    $MSR_EFER, %ecx
    rdmsr
    orl     $EFER_LME, %eax
    wrmsr
    lgdt    gdt_descriptor
    /* Mode switch: paging on with EFER.LME set = long mode (compatibility, still our loader's
     * 32-bit CS). */
    movl    %cr0, %eax
    orl     $(CR0_PG | CR0_PE), %eax
    movl    %eax, %cr0
    /* Mode switch: compatibility -> 64-bit, with our GDT's 64-bit code segment. */
    ljmpl   $SEL_CODE64, $common64

/* ---- Linux's 64-bit entry: long mode, the loader's page tables and GDT ------------------- */
.code64
.globl start64
start64:
    movq    %rax, entry_state + ES_RAX(%rip)
    movq    %rbx, entry_state + ES_RBX(%rip)
    movq    %rcx, entry_state + ES_RCX(%rip)
    movq    %rdx, entry_state + ES_RDX(%rip)
    movq    %rsi, entry_state + ES_RSI(%rip)
    movq    %rdi, entry_state + ES_RDI(%rip)
    movq    %rbp, entry_state + ES_RBP(%rip)
    movq    %rsp, entry_state + ES_RSP(%rip)
    leaq    __stack_top(%rip), %rsp
    pushfq
    popq    entry_state + ES_RFLAGS(%rip)
    movq    %cr0, %rax
    movq    %rax, entry_state + ES_CR0(%rip)
    movq    %cr4, %rax
    movq    %rax, entry_state + ES_CR4(%rip)
    movl    $MSR_EFER, %ecx
    rdmsr
    movl    %eax, entry_state + ES_EFER(%rip)
    movw    %cs, entry_state + ES_CS(%rip)
    movw    %ds, entry_state + ES_DS(%rip)
    movw    %es, entry_state + ES_ES(%rip)
    movw    %ss, entry_state + ES_SS(%rip)
    sgdtq   entry_state + ES_GDTR(%rip)
    movl    $64, entry_state + ES_BITS(%rip)

    /* Our identity map: the loader only promises to map us, boot_params and the command line. */
    movl    $0x80000001, %eax
    cpuid
    btl     $26, %edx
    jnc     1f
    movl    $(pdpt_1g + PT_TABLE), pml4(%rip)
    movl    $1, entry_state + ES_GIB_PAGES(%rip)
1:  leaq    pml4(%rip), %rax
    movq    %rax, %cr3
    lgdt    gdt_descriptor(%rip)
    /* Reload CS from our GDT (still 64-bit mode) with a far return. */
    pushq   $SEL_CODE64
    leaq    common64(%rip), %rax
    pushq   %rax
    lretq

/* ---- 64-bit, our page tables and GDT ----------------------------------------------------- */
common64:
    movl    $SEL_DATA, %eax
    movl    %eax, %ds
    movl    %eax, %es
    movl    %eax, %ss
    /* Was .bss zero on entry? (repe scasq stops at the first non-zero quadword.) */
    leaq    __bss_start(%rip), %rdi
    leaq    __bss_end(%rip), %rcx
    subq    %rdi, %rcx
    shrq    $3, %rcx
    xorl    %eax, %eax
    xorl    %edx, %edx
    repe scasq
    setne   %dl
    movq    %rdx, entry_state + ES_BSS_DIRTY(%rip)
    /* Zero it: a bzImage's loader does not, and Rust expects zeroed statics. */
    leaq    __bss_start(%rip), %rdi
    leaq    __bss_end(%rip), %rcx
    subq    %rdi, %rcx
    shrq    $3, %rcx
    rep stosq
    leaq    entry_state(%rip), %rdi
    call    payload_main
    ud2

/* The entry state lives in .data, not .bss: common64 clears .bss after it is written. */
.section .data.entry_state, "aw"
.balign 8
.globl entry_state
entry_state:
    .fill   ES_SIZE, 1, 0

/* Our GDT: 0x08 64-bit code, 0x10 32-bit code, 0x18 flat data (accessed bits preset). */
.section .rodata.gdt, "a"
.balign 8
gdt:
    .quad   0
    .quad   0x00AF9B000000FFFF
    .quad   0x00CF9B000000FFFF
    .quad   0x00CF93000000FFFF
gdt_end:
gdt_descriptor:
    .word   gdt_end - gdt - 1
    .quad   gdt

/*
 * Identity map of 0-4 GiB, built at link time. PML4[0] points at the 2 MiB-page PDPT; start32 and
 * start64 repoint it at the 1 GiB-page PDPT when the CPU has 1 GiB pages (QEMU's default TCG model,
 * qemu64, does not).
 */
.section .data.page_tables, "aw"
.balign 4096
pml4:
    .quad   pdpt_2m + PT_TABLE
    .fill   511, 8, 0
pdpt_2m:
    .quad   pd_2m + 0x0000 + PT_TABLE
    .quad   pd_2m + 0x1000 + PT_TABLE
    .quad   pd_2m + 0x2000 + PT_TABLE
    .quad   pd_2m + 0x3000 + PT_TABLE
    .fill   508, 8, 0
pd_2m:
    .set    page, 0
    .rept   2048
    .quad   page + PT_LEAF
    .set    page, page + 0x200000
    .endr
pdpt_1g:
    .quad   0x00000000 + PT_LEAF
    .quad   0x40000000 + PT_LEAF
    .quad   0x80000000 + PT_LEAF
    .quad   0xC0000000 + PT_LEAF
    .fill   508, 8, 0
