//! A built machine's side of a snapshot: what it is (the spec a restore must match), and its
//! state (devices, KVM's chips and clock, the ROM, guest RAM) taken and put back. The vCPUs'
//! state is taken by their own threads (`runtime::lifecycle`).
use super::MachineCore;
use crate::bus::{lock, Bus, BusDevice};
use crate::snapshot::codec::{self, StateError};
use crate::snapshot::format::{self, DeviceSlot, MachineSpec, MemoryRange, SavedDevice, Snapshot};
use crate::vstate::irqchip_state::IrqchipState;
use crate::vstate::memory;
use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use vm_memory::{GuestAddress, GuestMemoryBackend};

#[derive(Debug, thiserror::Error)]
pub enum MachineStateError {
    #[error("this machine is not the one the snapshot was taken of: {0}")]
    Mismatch(String),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("guest memory: {0}")]
    Memory(String),
}

fn format_bus(bus: format::Bus) -> &'static str {
    match bus {
        format::Bus::Pio => "port",
        format::Bus::Mmio => "MMIO",
    }
}

fn ns_since_epoch() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl MachineCore {
    fn buses(&self) -> [(format::Bus, &Bus); 2] {
        [(format::Bus::Pio, &self.pio), (format::Bus::Mmio, &self.mmio)]
    }

    /// What this machine is, for a snapshot's header and a restore's check.
    pub fn spec(&self) -> MachineSpec {
        let mut spec = self.spec.clone();
        spec.devices = self
            .buses()
            .into_iter()
            .flat_map(|(bus, b)| {
                b.devices().map(move |(base, len, device)| DeviceSlot {
                    bus,
                    base,
                    len,
                    kind: lock(device).kind().to_string(),
                })
            })
            .collect();
        spec
    }

    /// The guest RAM ranges, as the file holds them.
    fn ram_ranges(&self) -> Vec<MemoryRange> {
        let alias = self
            .rom
            .as_ref()
            .map(|(r, _)| (r.windows()[1].0, r.windows()[1].1));
        memory::ram_ranges(self.spec.memory, alias)
            .into_iter()
            .map(|(addr, len)| MemoryRange {
                guest_addr: addr.0,
                len: len as u64,
            })
            .collect()
    }

    /// Tells every device the snapshot is written (or failed): what it stopped for the capture
    /// (vhost) runs again.
    pub fn state_saved(&self) {
        self.each_device(|d| d.state_saved());
    }

    /// Tells every device the whole machine is restored, before the guest runs: what each has
    /// to tell the guest (a new VM generation, vsock's transport reset) is raised now.
    pub fn after_restore(&self) {
        self.each_device(|d| d.after_restore());
    }

    /// `f` on every device of both buses, in the snapshot's order.
    fn each_device(&self, mut f: impl FnMut(&mut dyn BusDevice)) {
        for (_, b) in self.buses() {
            for (_, _, device) in b.devices() {
                f(&mut *lock(device));
            }
        }
    }

    /// Everything but RAM and the vCPUs (given, encoded), with the vCPUs parked and the devices
    /// paused. Call [`MachineCore::state_saved`] afterwards, whatever came of it.
    pub fn capture(&self, paused: bool, vcpus: Vec<Vec<u8>>) -> Result<Snapshot, MachineStateError> {
        let mut devices = Vec::new();
        for (bus, b) in self.buses() {
            for (base, _, device) in b.devices() {
                let state = lock(device).save_state()?;
                devices.push(SavedDevice { bus, base, state });
            }
        }
        let irqchip = match self.kvm_pit {
            Some(pit) => {
                let chips = IrqchipState::save(&self.vm, pit).map_err(StateError::from)?;
                Some(codec::encode("KVM's interrupt controllers", &chips)?)
            }
            None => None,
        };
        let clock_ns = match self.clock.stopped_at() {
            Some(clock) => clock,
            None => {
                self.vm
                    .get_clock()
                    .map_err(|source| StateError::Kvm {
                        what: "the guest's clock",
                        source,
                    })?
                    .clock
            }
        };
        Ok(Snapshot {
            spec: self.spec(),
            paused,
            vcpus,
            irqchip,
            clock_ns,
            saved_at_utc_ns: ns_since_epoch(),
            devices,
            rom: self.rom.as_ref().map(|(rom, _)| rom.contents()),
            memory: self.ram_ranges(),
        })
    }

    /// Writes guest RAM to `out`: sparse for a stream, raw (with holes) for a file.
    pub fn write_memory(&self, out: &mut File, ranges: &[MemoryRange], sparse: bool) -> std::io::Result<()> {
        match sparse {
            true => crate::snapshot::memory::write_sparse(&self.ram, out, ranges),
            false => crate::snapshot::memory::write_raw(&self.ram, out, ranges),
        }
    }

    /// Checks that `snapshot` is of a machine like this one.
    pub fn check(&self, snapshot: &Snapshot) -> Result<(), MachineStateError> {
        if let Some(diff) = snapshot.spec.difference(&self.spec()) {
            return Err(MachineStateError::Mismatch(diff));
        }
        if snapshot.memory != self.ram_ranges() {
            return Err(MachineStateError::Mismatch(
                "its RAM ranges are not this machine's".into(),
            ));
        }
        Ok(())
    }

    /// Puts back the devices', KVM's chips' and clock's and the ROM's state (checked first).
    pub fn apply(&self, snapshot: &Snapshot) -> Result<(), MachineStateError> {
        self.check(snapshot)?;
        let mut saved = snapshot.devices.iter();
        for (bus, b) in self.buses() {
            for (base, _, device) in b.devices() {
                let s = saved
                    .next()
                    .filter(|s| s.bus == bus && s.base == base)
                    .ok_or_else(|| {
                        MachineStateError::Mismatch(format!(
                            "no saved state for the device at {} {base:#x}",
                            format_bus(bus)
                        ))
                    })?;
                lock(device).restore_state(&s.state)?;
            }
        }
        if let Some(bytes) = &snapshot.irqchip {
            let chips: IrqchipState = codec::decode("KVM's interrupt controllers", bytes)?;
            chips.restore(&self.vm).map_err(StateError::from)?;
        }
        if let (Some((rom, _)), Some(bytes)) = (&self.rom, &snapshot.rom) {
            rom.restore(bytes);
        }
        // The guest's clock moves on by the time that passed since the save, so its wall
        // clock is right; the vCPUs' kvmclock is told they were stopped.
        let passed = ns_since_epoch().saturating_sub(snapshot.saved_at_utc_ns);
        self.clock
            .set_stopped_at(snapshot.clock_ns.saturating_add(passed));
        Ok(())
    }

    /// Guest RAM from `file` at `offset` (where the snapshot's memory starts), mapped
    /// copy-on-write over the RAM that is there: pages come from the page cache, shared with
    /// every other VM restored from the same file, and are copied only when written.
    pub fn map_memory(
        &self,
        file: &File,
        offset: u64,
        ranges: &[MemoryRange],
    ) -> Result<(), MachineStateError> {
        let mut at = offset;
        for r in ranges {
            let host = self
                .ram
                .get_host_address(GuestAddress(r.guest_addr))
                .map_err(|e| MachineStateError::Memory(e.to_string()))?;
            let len = usize::try_from(r.len).map_err(|e| MachineStateError::Memory(e.to_string()))?;
            let file_offset =
                libc::off_t::try_from(at).map_err(|e| MachineStateError::Memory(e.to_string()))?;
            // SAFETY: `host` is the start of a guest RAM mapping of at least `len` bytes (the
            // ranges were checked against this machine's); MAP_FIXED replaces those pages with
            // the file's, privately, with the same protection, so every pointer to guest RAM
            // (KVM's memory slot, the devices') stays valid and sees the new contents. The vCPUs
            // are parked and no device runs.
            let mapped = unsafe {
                libc::mmap(
                    host.cast(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_FIXED | libc::MAP_NORESERVE,
                    file.as_raw_fd(),
                    file_offset,
                )
            };
            if mapped == libc::MAP_FAILED {
                return Err(MachineStateError::Memory(format!(
                    "mapping the snapshot's memory at {:#x}: {}",
                    r.guest_addr,
                    std::io::Error::last_os_error()
                )));
            }
            memory::dont_fork(host, len);
            at += r.len;
        }
        Ok(())
    }

    /// Guest RAM read from a stream (`exec:`, or a file in the sparse layout).
    pub fn read_memory(
        &self,
        input: &mut impl Read,
        ranges: &[MemoryRange],
        sparse: bool,
    ) -> Result<(), MachineStateError> {
        let read = match sparse {
            true => crate::snapshot::memory::read_sparse(&self.ram, input, ranges),
            false => crate::snapshot::memory::read_raw(&self.ram, input, ranges),
        };
        read.map_err(|e| MachineStateError::Memory(format!("reading the snapshot's memory: {e}")))
    }
}
