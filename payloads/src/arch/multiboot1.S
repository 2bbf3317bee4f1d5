/*
 * The multiboot 1 header (GNU Multiboot Specification 0.6.96, section 3.1). multiboot1.ld puts it
 * first in the image, 4-aligned, so it lies in the file's first 8 KiB.
 *
 * Flags: bit 1 (pass memory information) and bit 16 (the address fields below are valid: the
 * "a.out kludge"), so loaders need not parse the ELF, and QEMU's -kernel accepts an ELF64.
 * Bit 2 (video mode) stays clear. The entry is start32 (start.S), in 32-bit protected mode with
 * EAX = 0x2BADB002 and EBX = the multiboot information structure.
 */
.set MB1_MAGIC, 0x1BADB002
.set MB1_FLAGS, 0x00010002

.section .multiboot1_header, "a"
.balign 4
multiboot1_header:
    .long   MB1_MAGIC
    .long   MB1_FLAGS
    .long   0x100000000 - (MB1_MAGIC + MB1_FLAGS)   /* magic + flags + checksum == 0 (mod 2^32) */
    .long   multiboot1_header                      /* header_addr */
    .long   __image_start                          /* load_addr: file data from here... */
    .long   __load_end                             /* load_end_addr: ...to here */
    .long   __image_end                            /* bss_end_addr: .bss and the stack, zeroed */
    .long   start32                                /* entry_addr */
