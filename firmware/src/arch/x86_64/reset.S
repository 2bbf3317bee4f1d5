/*
 * From the reset vector to Rust, in as few instructions as we can.
 *
 * The CPU starts in 16-bit real mode at 0xFFFFFFF0 with CS.base = 0xFFFF0000, so real-mode
 * offsets here are (link address - 0xF0000): the ROM is linked at its low alias, 0xF0000, and its
 * last 64 KiB are also what CS addresses at reset.
 *
 * 16-bit: load the GDT, set CR0.PE, far-jump into flat 32-bit code.
 * 32-bit: point CR3 at the ROM's prebuilt identity map (1 GiB pages; CPUs without them get
 *         2 MiB-page tables built in RAM, see paging.rs), enable PAE, EFER.LME, then paging:
 *         that puts us in long mode (compatibility), and a far jump reaches 64-bit code.
 * 64-bit: set the stack, zero .bss, call firmware_main.
 *
 * Nothing here writes to the ROM: the GDT and page tables have their accessed/dirty bits preset,
 * because on pc/q35 the ROM is read-only and the CPU would otherwise try to set them.
 */

.set ROM_LOW_BASE,  0xF0000
.set CR0_PE,        0x00000001
.set CR0_ET,        0x00000010
.set CR0_PG,        0x80000000
.set CR4_PAE,       0x00000020
.set MSR_EFER,      0xC0000080
.set EFER_LME,      0x00000100
.set SEL_CODE64,    0x08
.set SEL_CODE32,    0x10
.set SEL_DATA,      0x18

/* ---- 16-bit real mode (CS.base = 0xFFFF0000) --------------------------------------------- */
.section .init, "ax"
.code16
real_mode_start:
    lgdtl   %cs:(gdt_descriptor - ROM_LOW_BASE)
    movl    %cr0, %eax
    orb     $CR0_PE, %al
    movl    %eax, %cr0
    /* Mode switch: real -> 32-bit protected mode, flat segments. */
    ljmpl   $SEL_CODE32, $protected_mode_start

/* The firmware's GDT. Accessed bits are preset (0x9B, 0x93): the table lives in ROM. */
.balign 8
gdt:
    .quad 0                         /* 0x00 null */
    .quad 0x00AF9B000000FFFF        /* 0x08 64-bit code: the firmware runs here */
    .quad 0x00CF9B000000FFFF        /* 0x10 flat 32-bit code: 32-bit handoffs (Linux __BOOT_CS) */
    .quad 0x00CF93000000FFFF        /* 0x18 flat data (Linux __BOOT_DS) */
gdt_end:
gdt_descriptor:
    .word gdt_end - gdt - 1
    .long gdt

/*
 * Real-mode BIOS services: there are none. Every vector of the real-mode IVT (bios_data.rs) points
 * here, for kernels that call the BIOS before they have their own handlers (Xen's trampoline asks
 * int 10h, 13h and 15h). It returns with CF set in the caller's saved FLAGS, the BIOS convention
 * for "function not supported": [bp+0] old BP, [bp+2] IP, [bp+4] CS, [bp+6] FLAGS.
 */
.code16
.globl unsupported_bios_call
unsupported_bios_call:
    pushw   %bp
    movw    %sp, %bp
    orb     $1, 6(%bp)
    popw    %bp
    iret

/* ---- the reset vector: the ROM's last 16 bytes ---------------------------------------------- */
.section .reset, "ax"
.code16
.globl reset_vector
reset_vector:
    jmp     real_mode_start
    .balign 16, 0xF4                /* pad with hlt */

/* ---- 32-bit protected mode, paging off ------------------------------------------------------ */
.section .text.start, "ax"
.code32
protected_mode_start:
    movl    $SEL_DATA, %eax
    movl    %eax, %ds
    movl    %eax, %es
    movl    %eax, %ss
    /* CPUID 0x80000001 EDX bit 26: 1 GiB pages. */
    movl    $0x80000001, %eax
    cpuid
    movl    $rom_pml4, %eax
    btl     $26, %edx
    jc      paging_ready
    /*
     * No 1 GiB pages: build a 4 GiB identity map in 2 MiB pages at fallback_page_tables: four
     * page directories (0x0000-0x3FFF), a PDPT (0x4000) and a PML4 (0x5000). Leaf flags 0xE3
     * and table flags 0x23 are paging.rs's LEAF_FLAGS and TABLE_FLAGS. No stack yet: inline.
     */
    movl    $(fallback_page_tables + 0x4000), %edi
    xorl    %eax, %eax
    movl    $(2 * 4096 / 4), %ecx
    rep stosl                               /* zero the PDPT and PML4 */
    movl    $fallback_page_tables, %edi
    movl    $0xE3, %eax
1:  movl    %eax, (%edi)                    /* 2048 entries: 2 MiB pages up to 4 GiB */
    movl    $0, 4(%edi)
    addl    $8, %edi
    addl    $0x200000, %eax
    jnc     1b
    movl    $(fallback_page_tables + 0x0023), (fallback_page_tables + 0x4000)
    movl    $(fallback_page_tables + 0x1023), (fallback_page_tables + 0x4008)
    movl    $(fallback_page_tables + 0x2023), (fallback_page_tables + 0x4010)
    movl    $(fallback_page_tables + 0x3023), (fallback_page_tables + 0x4018)
    movl    $(fallback_page_tables + 0x4023), (fallback_page_tables + 0x5000)
    movl    $(fallback_page_tables + 0x5000), %eax
paging_ready:
    movl    %eax, %cr3
    movl    $CR4_PAE, %eax
    movl    %eax, %cr4
    /* EFER is 0 after reset, so write LME without reading it first. */
    movl    $MSR_EFER, %ecx
    movl    $EFER_LME, %eax
    xorl    %edx, %edx
    wrmsr
    /* Mode switch: paging on with EFER.LME = long mode (compatibility). This also clears the
     * CD/NW cache-disable bits the CPU resets with. */
    movl    $(CR0_PG | CR0_ET | CR0_PE), %eax
    movl    %eax, %cr0
    /* Mode switch: compatibility -> 64-bit. */
    ljmpl   $SEL_CODE64, $long_mode_start

/* ---- 64-bit long mode ------------------------------------------------------------------------ */
.code64
long_mode_start:
    movl    $__stack_top, %esp
    movl    $__bss_start, %edi
    movl    $__bss_end, %ecx
    subl    %edi, %ecx
    shrl    $3, %ecx
    xorl    %eax, %eax
    rep stosq
    call    firmware_main
    ud2
