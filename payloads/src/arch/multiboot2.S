/*
 * The multiboot 2 header (Multiboot2 Specification 2.0, section 3.1). multiboot2.ld puts it first
 * in the image, 8-aligned, so it lies in the file's first 32 KiB. Tags are 8-aligned.
 *
 * - information request (optional: a loader that cannot provide them may still boot us):
 *   command line (1), modules (3), memory map (6), ACPI old (14) and new (15) RSDP;
 * - address tag: load from the file like an a.out kludge, no ELF parsing needed;
 * - entry address tag: start32 (start.S), 32-bit protected mode, EAX = 0x36D76289,
 *   EBX = the boot information.
 */
.set MB2_MAGIC, 0xE85250D6
.set MB2_ARCH_I386, 0
.set MB2_TAG_OPTIONAL, 1

.section .multiboot2_header, "a"
.balign 8
multiboot2_header:
    .long   MB2_MAGIC
    .long   MB2_ARCH_I386
    .long   multiboot2_header_end - multiboot2_header
    .long   0x100000000 - (MB2_MAGIC + MB2_ARCH_I386 + (multiboot2_header_end - multiboot2_header))
mb2_request_tag:
    .short  1, MB2_TAG_OPTIONAL
    .long   mb2_request_tag_end - mb2_request_tag
    .long   1, 3, 6, 14, 15
mb2_request_tag_end:
    .balign 8
    .short  2, 0                                   /* address tag */
    .long   24
    .long   multiboot2_header                      /* header_addr */
    .long   __image_start                          /* load_addr */
    .long   __load_end                             /* load_end_addr */
    .long   __image_end                            /* bss_end_addr: .bss and the stack */
    .short  3, 0                                   /* entry address tag */
    .long   12
    .long   start32
    .balign 8
    .short  0, 0                                   /* end tag */
    .long   8
multiboot2_header_end:
