//! Snapshots: a VM's whole state saved to a stream (QEMU's `migrate`) and a new VM started
//! from it (`-incoming`), as QEMU's "fast launch by local migration" recipe does it. Memory is
//! page-aligned in the file, so a restore from `file:` maps it copy-on-write: clones of one
//! state share its pages in the host's page cache.
pub mod channel;
pub mod codec;
pub mod format;
pub mod load;
pub mod memory;
pub mod uri;

use channel::ChannelError;
use format::FormatError;

/// Why a save or a restore failed; the VM that was saving keeps running (or stays paused).
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("There's a migration process in progress")]
    InProgress,
    #[error(transparent)]
    Uri(#[from] uri::UriError),
    #[error(transparent)]
    Channel(#[from] ChannelError),
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error(transparent)]
    Machine(#[from] crate::machine::snapshot::MachineStateError),
    #[error("vCPU state: {0}")]
    Vcpu(String),
    #[error("writing the snapshot: {0}")]
    Write(std::io::Error),
    #[error("{0}")]
    Lifecycle(String),
}
