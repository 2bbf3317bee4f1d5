//! `migrate` and `migrate-incoming` on the controller: a VM saved to a stream, and a VM
//! (waiting under `-incoming defer`) loaded from one. Both run on the event thread with the
//! vCPUs parked; the stream's file or command comes from the broker, as the filters forbid
//! this thread to open or spawn anything.
//!
//! As QEMU's: a VM that runs when `migrate` starts is stopped for the copy and stays stopped
//! (`postmigrate`) until `cont`; a failed save runs it again; `MIGRATION` events tell each
//! status. Unlike QEMU's, the save runs to its end before `migrate` answers (the VM is stopped
//! throughout, so there is nothing to converge), and `migrate_cancel` finds nothing to cancel.
use super::{Controller, RunState, VmEvent, PARK_LIMIT};
use crate::machine::MachineCore;
use crate::sandbox::broker::Broker;
use crate::snapshot::channel::{Channel, Direction};
use crate::snapshot::format::{self, Snapshot};
use crate::snapshot::uri::MigrationUri;
use crate::snapshot::{load, MigrateError};
use crate::vstate::vcpu::Vcpu;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What `-incoming URI` did before the VM started.
#[derive(Clone, Copy, Debug)]
pub struct Restored {
    /// The saved VM was paused: this one waits for `cont`.
    pub paused: bool,
    pub ram: u64,
    pub took: std::time::Duration,
}

/// What `query-migrate` reports of the last save or restore.
#[derive(Clone, Debug, Default)]
pub struct MigrationInfo {
    /// QEMU's status names; `None` before any.
    pub status: Option<&'static str>,
    /// Bytes written or read.
    pub bytes: u64,
    /// Guest RAM, bytes.
    pub ram: u64,
    pub total_time_ms: u64,
    /// Time the vCPUs were stopped for it, ms.
    pub downtime_ms: u64,
    pub error: Option<String>,
}

impl Controller {
    /// A new status; the `MIGRATION` event only with the `events` capability, as QEMU's.
    fn migration_status(&mut self, status: &'static str) {
        self.migration.status = Some(status);
        if self.migration_events {
            self.emit(VmEvent::Migration { status });
        }
    }

    /// `migrate-set-capabilities` with `events`: `MIGRATION` events from now on (or not).
    pub fn set_migration_events(&mut self, on: bool) {
        self.migration_events = on;
    }

    pub fn migration_events(&self) -> bool {
        self.migration_events
    }

    /// What `query-migrate` says.
    pub fn migration_info(&self) -> &MigrationInfo {
        &self.migration
    }

    /// `migrate`: saves the whole VM to `uri`.
    pub fn migrate(&mut self, uri: &MigrationUri) -> Result<(), MigrateError> {
        match self.state() {
            RunState::Ended => return Err(MigrateError::Lifecycle("the VM has ended".into())),
            RunState::InMigrate => {
                return Err(MigrateError::Lifecycle(
                    "the VM is waiting for its incoming state: there is nothing to save".into(),
                ))
            }
            _ if self.migration.status == Some("active") => return Err(MigrateError::InProgress),
            _ => {}
        }
        let started = Instant::now();
        self.migration = MigrationInfo::default();
        self.migration_status("setup");
        let was_running = self.state() == RunState::Running;
        if let Err(e) = self.pause() {
            self.migration_failed(&e.to_string(), started);
            return Err(MigrateError::Lifecycle(e.to_string()));
        }
        self.migration_status("active");
        if self.migration_events {
            self.emit(VmEvent::MigrationPass { pass: 1 });
        }
        match self.save_to(uri, !was_running) {
            Ok(bytes) => {
                self.migration.bytes = bytes;
                self.migration.total_time_ms = started.elapsed().as_millis() as u64;
                self.migration.downtime_ms = self.migration.total_time_ms;
                if was_running {
                    self.set_state(RunState::PostMigrate);
                }
                self.migration_status("completed");
                Ok(())
            }
            Err(e) => {
                self.migration_failed(&e.to_string(), started);
                if was_running {
                    let _ = self.resume();
                }
                Err(e)
            }
        }
    }

    fn migration_failed(&mut self, error: &str, started: Instant) {
        self.migration.error = Some(error.to_string());
        self.migration.total_time_ms = started.elapsed().as_millis() as u64;
        self.migration_status("failed");
    }

    /// Takes the state (vCPUs parked) and writes it; returns the bytes written.
    fn save_to(&mut self, uri: &MigrationUri, paused: bool) -> Result<u64, MigrateError> {
        let vcpus = self.vcpu_states()?;
        let core = self
            .core
            .as_ref()
            .ok_or_else(|| MigrateError::Lifecycle("the VM has ended".into()))?;
        let written = core
            .capture(paused, vcpus)
            .map_err(MigrateError::from)
            .and_then(|snapshot| {
                self.migration.ram = snapshot.ram_bytes();
                write_snapshot(core, &snapshot, uri, self.broker.as_ref())
            });
        core.state_saved();
        written
    }

    /// Each vCPU's state, encoded, taken by its own thread.
    fn vcpu_states(&self) -> Result<Vec<Vec<u8>>, MigrateError> {
        let count = self.control.thread_ids().len();
        let states: Arc<Mutex<Vec<Option<Vec<u8>>>>> = Arc::new(Mutex::new(vec![None; count]));
        let into = states.clone();
        self.control
            .run_on_each(
                move |vcpu: &mut Vcpu| {
                    let state = vcpu.snapshot().map_err(|e| e.to_string())?;
                    let bytes =
                        crate::snapshot::codec::encode("vCPU state", &state).map_err(|e| e.to_string())?;
                    let mut all = into.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(slot) = all.get_mut(usize::from(vcpu.id())) {
                        *slot = Some(bytes);
                    }
                    Ok(())
                },
                PARK_LIMIT,
            )
            .map_err(|e| MigrateError::Vcpu(e.to_string()))?;
        let all = std::mem::take(&mut *states.lock().unwrap_or_else(|p| p.into_inner()));
        all.into_iter()
            .enumerate()
            .map(|(id, s)| s.ok_or_else(|| MigrateError::Vcpu(format!("vCPU {id} gave no state"))))
            .collect()
    }

    /// `migrate-incoming` (after `-incoming defer`): loads the VM's state from `uri`. As QEMU,
    /// a failure ends the VM: no half-restored VM may run.
    pub fn incoming(&mut self, uri: &MigrationUri) -> Result<(), MigrateError> {
        if self.state() != RunState::InMigrate {
            return Err(MigrateError::Lifecycle(
                "The incoming migration has not been requested: start with -incoming defer".into(),
            ));
        }
        let started = Instant::now();
        self.migration = MigrationInfo::default();
        self.migration_status("setup");
        self.migration_status("active");
        match self.load_from(uri) {
            Ok(paused) => {
                self.migration.total_time_ms = started.elapsed().as_millis() as u64;
                self.migration_status("completed");
                self.set_state(RunState::Paused);
                if !paused && !self.start_paused {
                    let _ = self.resume();
                }
                Ok(())
            }
            Err(e) => {
                self.migration_failed(&e.to_string(), started);
                crate::report!("restoring the VM: {e}");
                self.finish(crate::exit::ExitReason::Failure);
                Err(e)
            }
        }
    }

    /// Loads the machine's and the vCPUs' state; returns whether the saved VM was paused.
    fn load_from(&mut self, uri: &MigrationUri) -> Result<bool, MigrateError> {
        let core = self
            .core
            .as_ref()
            .ok_or_else(|| MigrateError::Lifecycle("the VM has ended".into()))?;
        let snapshot = Arc::new(load::load(core, uri, self.broker.as_ref())?);
        self.migration.ram = snapshot.ram_bytes();
        let paused = snapshot.paused;
        let from = snapshot.clone();
        self.control
            .run_on_each(
                move |vcpu: &mut Vcpu| {
                    let state = load::vcpu_state(&from, usize::from(vcpu.id())).map_err(|e| e.to_string())?;
                    vcpu.restore(&state).map_err(|e| e.to_string())
                },
                PARK_LIMIT,
            )
            .map_err(|e| MigrateError::Vcpu(e.to_string()))?;
        core.after_restore();
        Ok(paused)
    }

    /// `-incoming URI` loaded the VM before it started: `query-migrate` says so, and a VM
    /// saved paused is paused.
    pub fn restored_at_start(&mut self, restored: Restored) {
        self.migration = MigrationInfo {
            status: Some("completed"),
            ram: restored.ram,
            bytes: restored.ram,
            total_time_ms: restored.took.as_millis() as u64,
            ..Default::default()
        };
        if restored.paused {
            self.set_devices_paused(true);
            self.set_state(RunState::Paused);
        }
    }

    /// `-incoming defer`: the VM waits for `migrate-incoming`.
    pub fn wait_for_incoming(&mut self) {
        self.set_state(RunState::InMigrate);
    }
}

/// Writes `snapshot` and the guest's RAM to `uri`; returns the bytes written.
fn write_snapshot(
    core: &MachineCore,
    snapshot: &Snapshot,
    uri: &MigrationUri,
    broker: Option<&Broker>,
) -> Result<u64, MigrateError> {
    let mut channel = Channel::open(uri, Direction::Save, broker)?;
    // A file gets memory page-aligned (a restore maps it), a stream only the pages in use.
    let sparse = matches!(uri, MigrationUri::Exec(_));
    let flags = if sparse { format::FLAG_SPARSE } else { 0 };
    let written = format::write_state(&mut channel.file, snapshot, flags)
        .map_err(MigrateError::from)
        .and_then(|offset| {
            core.write_memory(&mut channel.file, &snapshot.memory, sparse)
                .map_err(MigrateError::Write)?;
            Ok(offset + snapshot.ram_bytes())
        });
    // A command that stopped reading says why it did: its status is the error to report.
    let finished = channel.finish();
    match (written, finished) {
        (_, Err(e)) => Err(e.into()),
        (written, Ok(())) => written,
    }
}
