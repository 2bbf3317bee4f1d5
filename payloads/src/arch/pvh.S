/*
 * The Xen PVH entry note (xen/include/public/elfnote.h, XEN_ELFNOTE_PHYS32_ENTRY = 18): name
 * "Xen", a 4-byte descriptor holding the physical address of the 32-bit entry, start32 (start.S),
 * entered in 32-bit protected mode, paging off, with EBX = the hvm_start_info.
 *
 * QEMU 7.2 (hw/i386/x86.c, read_pvh_start_addr) reads the descriptor of a 64-bit ELF as 8 bytes,
 * so an empty note (12 zero bytes, a valid note with no name) follows: those extra bytes are zero.
 * The section is 4-aligned, so the PT_NOTE's p_align is 4, which QEMU also uses to find the
 * descriptor after the name.
 */
.section .note.Xen, "a", @note
.balign 4
    .long   4                                      /* namesz: "Xen\0" */
    .long   4                                      /* descsz */
    .long   18                                     /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz  "Xen"
    .long   start32
    .long   0, 0, 0                                /* an empty note */
