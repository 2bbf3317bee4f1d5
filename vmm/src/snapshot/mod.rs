//! Snapshots: a VM's whole state saved to a stream (QEMU's `migrate`) and a new VM started
//! from it (`-incoming`), as QEMU's "fast launch by local migration" recipe does it. Memory is
//! page-aligned in the file, so a restore from `file:` maps it copy-on-write: clones of one
//! state share its pages in the host's page cache.
pub mod codec;
pub mod format;
