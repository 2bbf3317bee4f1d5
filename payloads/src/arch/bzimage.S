/*
 * The bzImage's entries (Documentation/arch/x86/boot.rst).
 *
 * The protected-mode part starts at code32_start (1 MiB) with the 32-bit entry; the 64-bit entry
 * (XLF_KERNEL_64) is 0x200 bytes further. Both only jump to the shared start-up code, leaving
 * every register as the loader set it.
 */
.section .text.entry32, "ax"
.code32
.globl bzimage_entry32
bzimage_entry32:
    jmp     start32

.section .text.entry64, "ax"
.code64
.globl bzimage_entry64
bzimage_entry64:
    jmp     start64

/*
 * The real-mode setup code, for loaders that enter a bzImage the traditional way (qboot): at
 * setup + 0x200 (the header's 2-byte jump, which leads here: setup + 0x26C), in real mode, with
 * CS = setup segment + 0x20, IP = 0, DS = ES = SS = the setup segment, a stack below the command
 * line, and BIOS services. Linux's setup code would query the BIOS and switch to protected mode;
 * this does the least of that:
 *
 *   1. build boot_params at setup + 0x1000: zeroed, the setup header as the loader patched it
 *      (command line, initrd, loader type), the BIOS memory map (int 15h, AX = E820), and the
 *      marker SETUP16_MARK in its `scratch` field so the payload reports entry=16;
 *   2. switch to 32-bit protected mode with __BOOT_CS/__BOOT_DS (0x10/0x18), ESI = boot_params,
 *      EBX = EBP = EDI = 0, and jump to code32_start, as boot.rst's 32-bit protocol says.
 *
 * The section is linked at 0x26C, its offset in the setup area; xtask copies it there.
 */
.set BP,                0x1000          /* boot_params, relative to the setup segment */
.set BP_SCRATCH,        0x1E4
.set BP_E820_ENTRIES,   0x1E8
.set BP_HDR,            0x1F1
.set BP_HDR_LEN,        0x26C - 0x1F1   /* the whole 2.15 header */
.set BP_CODE32_START,   0x214
.set BP_E820_TABLE,     0x2D0
.set E820_MAX,          128
.set SMAP,              0x534D4150      /* "SMAP" */
.set SETUP16_MARK,      0x3631524D      /* "MR16": minnow_payloads::bzimage::SETUP16_MARK */
.set BOOT_CS,           0x10
.set BOOT_DS,           0x18

.section .setup16, "ax"
.code16
setup16_start:
    cli
    cld
    /* Make CS equal DS (it is DS + 0x20), so code and data offsets are both setup-relative. */
    pushw   %ds
    pushw   $setup16_same_cs
    lretw
setup16_same_cs:
    movw    %ds, %ax
    movw    %ax, %es
    xorw    %ax, %ax
    movw    $BP, %di
    movw    $2048, %cx
    rep stosw                                   /* boot_params = 0 */
    movw    $BP_HDR, %si
    movw    $(BP + BP_HDR), %di
    movw    $BP_HDR_LEN, %cx
    rep movsb                                   /* the setup header, as loaded */
    movl    $SETUP16_MARK, (BP + BP_SCRATCH)
    /* The memory map: int 15h E820, one 20-byte entry per call, EBX = continuation. */
    xorl    %ebx, %ebx
    movw    $(BP + BP_E820_TABLE), %di
1:  movl    $0xE820, %eax
    movl    $SMAP, %edx
    movl    $20, %ecx
    int     $0x15
    jc      2f
    cmpl    $SMAP, %eax
    jne     2f
    incb    (BP + BP_E820_ENTRIES)
    addw    $20, %di
    testl   %ebx, %ebx
    jz      2f
    cmpb    $E820_MAX, (BP + BP_E820_ENTRIES)
    jb      1b
2:  cli
    /* Linear address of the setup segment: the GDT's base and boot_params need it. */
    xorl    %eax, %eax
    movw    %ds, %ax
    shll    $4, %eax
    leal    setup16_gdt(%eax), %edx
    movl    %edx, (setup16_gdt_descriptor + 2)
    lgdtl   setup16_gdt_descriptor
    leal    BP(%eax), %esi                      /* ESI = boot_params */
    movl    (BP + BP_CODE32_START), %ecx
    movl    %ecx, setup16_far32
    /* Mode switch: real -> 16-bit protected mode (CS keeps its real-mode base until the jump). */
    movl    %cr0, %eax
    orb     $1, %al
    movl    %eax, %cr0
    movw    $BOOT_DS, %ax
    movw    %ax, %ds
    movw    %ax, %es
    movw    %ax, %ss
    movw    %ax, %fs
    movw    %ax, %gs
    xorl    %ebx, %ebx
    xorl    %ebp, %ebp
    xorl    %edi, %edi
    /* Mode switch: far jump through memory to __BOOT_CS:code32_start, 32-bit protected mode. */
    ljmpl   *%cs:setup16_far32

.balign 8
setup16_gdt:
    .quad   0
    .quad   0
    .quad   0x00CF9B000000FFFF                  /* 0x10 __BOOT_CS: flat 32-bit code */
    .quad   0x00CF93000000FFFF                  /* 0x18 __BOOT_DS: flat data */
setup16_gdt_descriptor:
    .word   31
    .long   0                                   /* patched: linear address of setup16_gdt */
setup16_far32:
    .long   0                                   /* patched: code32_start */
    .word   BOOT_CS
