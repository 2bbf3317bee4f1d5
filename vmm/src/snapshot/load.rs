//! Reading a snapshot into a built machine: the state is read and checked against the machine
//! before anything changes, then memory (mapped copy-on-write from a file, read from a
//! command's stream), then the devices, KVM's chips and the clock. The vCPUs are the caller's
//! (their threads own them).
use super::channel::{Channel, Direction};
use super::format::{self, Snapshot};
use super::uri::MigrationUri;
use super::MigrateError;
use crate::machine::MachineCore;
use crate::sandbox::broker::Broker;
use crate::vstate::vcpu_state::VcpuState;

/// Loads the snapshot at `uri` into `core`; returns it, for the vCPUs' states.
pub fn load(
    core: &MachineCore,
    uri: &MigrationUri,
    broker: Option<&Broker>,
) -> Result<Snapshot, MigrateError> {
    let mut channel = Channel::open(uri, Direction::Restore, broker)?;
    let read = format::read_state(&mut channel.file)?;
    let snapshot = read.snapshot;
    core.check(&snapshot)?;
    match (uri, read.sparse) {
        (MigrationUri::File(_), false) => {
            core.map_memory(&channel.file, read.memory_offset, &snapshot.memory)?
        }
        (_, sparse) => core.read_memory(&mut channel.file, &snapshot.memory, sparse)?,
    }
    channel.finish()?;
    core.apply(&snapshot)?;
    Ok(snapshot)
}

/// vCPU `id`'s saved state.
pub fn vcpu_state(snapshot: &Snapshot, id: usize) -> Result<VcpuState, MigrateError> {
    let bytes = snapshot
        .vcpus
        .get(id)
        .ok_or_else(|| MigrateError::Vcpu(format!("the snapshot has no state for vCPU {id}")))?;
    crate::snapshot::codec::decode("vCPU state", bytes).map_err(|e| MigrateError::Vcpu(e.to_string()))
}
