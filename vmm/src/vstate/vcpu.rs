//! A vCPU: its CPUID and LAPIC setup, and the run loop, which only dispatches exits to the buses.
use super::cpuid;
use super::vcpu_state::{VcpuState, VcpuStateError};
use crate::bus::Bus;
use crate::direct_boot::CpuEntry;
use crate::exit::{ExitReason, ExitSignal};
use crate::runtime::guest_log::GuestLog;
use crate::runtime::vcpu_control::{self, Command, VcpuControl};
use crate::timeline::{Event, ExitKind, Timeline};
use kvm_bindings::{
    kvm_msr_entry, CpuId, Msrs, KVM_SYSTEM_EVENT_CRASH, KVM_SYSTEM_EVENT_RESET, KVM_SYSTEM_EVENT_SHUTDOWN,
};
use kvm_ioctls::{VcpuExit, VcpuFd, VmFd};

/// LAPIC register offsets and delivery modes for the two local interrupt pins.
const APIC_LVT0: usize = 0x350;
const APIC_LVT1: usize = 0x360;
const APIC_MODE_NMI: u32 = 0x4;
const APIC_MODE_EXTINT: u32 = 0x7;

/// IA32_MISC_ENABLE with fast strings on: the value QEMU gives a CPU at reset.
const MSR_IA32_MISC_ENABLE: u32 = 0x1A0;
const MISC_ENABLE_FAST_STRING: u64 = 1;
/// IA32_MTRR_DEF_TYPE: MTRRs on, memory write-back by default, as firmware leaves them; direct
/// boot has no firmware to do it.
const MSR_MTRR_DEF_TYPE: u32 = 0x2FF;
const MTRR_ENABLE_WRITE_BACK: u64 = (1 << 11) | 6;

#[derive(Debug, thiserror::Error)]
pub enum VcpuError {
    #[error("setting up vCPU {id}: KVM refused MSR {index:#x}")]
    Msr { id: u8, index: u32 },
    #[error("creating vCPU {id}: {source}")]
    Create { id: u8, source: kvm_ioctls::Error },
    #[error("setting up vCPU {id}'s {what}: {source}")]
    Setup {
        id: u8,
        what: &'static str,
        source: kvm_ioctls::Error,
    },
    #[error(transparent)]
    State(#[from] VcpuStateError),
}

pub struct Vcpu {
    fd: VcpuFd,
    id: u8,
    /// The state it was created in: what a reset returns to.
    power_on: Option<VcpuState>,
    /// KVM's MSR index list: what a snapshot saves.
    msr_list: std::sync::Arc<[u32]>,
}

/// What a vCPU thread needs to handle exits.
#[derive(Clone)]
pub struct ExitHandlers {
    pub pio: Bus,
    pub mmio: Bus,
    pub exit: ExitSignal,
    pub timeline: std::sync::Arc<Timeline>,
    /// `-d unimp`: where accesses no device claims are reported.
    pub unimp: Option<GuestLog>,
}

impl ExitHandlers {
    /// Reports an access no device claimed, under `-d unimp`.
    fn unclaimed(&self, access: Access, addr: u64, len: usize) {
        let Some(log) = &self.unimp else {
            return;
        };
        let (kind, space, what) = match access {
            Access::PortRead => ("unclaimed port read", "port", "read"),
            Access::PortWrite => ("unclaimed port write", "port", "write"),
            Access::MmioRead => ("unclaimed MMIO read", "MMIO", "read"),
            Access::MmioWrite => ("unclaimed MMIO write", "MMIO", "write"),
        };
        crate::guest_log!(
            log,
            Unimp,
            kind,
            "{space} {addr:#x}: {len}-byte {what}, no device there"
        );
    }
}

/// An access no device claimed, for `-d unimp`.
#[derive(Clone, Copy)]
enum Access {
    PortRead,
    PortWrite,
    MmioRead,
    MmioWrite,
}

impl Vcpu {
    /// Creates vCPU `id` of `count` in its architectural reset state (for firmware boot: the CPU
    /// starts at the reset vector; vCPUs other than 0 wait for the BSP's INIT/SIPI), and keeps
    /// that state for resets. `msrs` is KVM's MSR index list.
    pub fn new(
        vm: &VmFd,
        supported: &CpuId,
        msrs: &std::sync::Arc<[u32]>,
        id: u8,
        count: u8,
    ) -> Result<Self, VcpuError> {
        let fd = vm
            .create_vcpu(u64::from(id))
            .map_err(|source| VcpuError::Create { id, source })?;
        let setup = |what| move |source| VcpuError::Setup { id, what, source };
        fd.set_cpuid2(&cpuid::for_vcpu(supported, id, count))
            .map_err(setup("CPUID"))?;
        // Virtual-wire mode, as firmware leaves a PC: the PIC through LINT0, NMIs through LINT1.
        let mut lapic = fd.get_lapic().map_err(setup("LAPIC"))?;
        set_lvt(&mut lapic.regs, APIC_LVT0, APIC_MODE_EXTINT);
        set_lvt(&mut lapic.regs, APIC_LVT1, APIC_MODE_NMI);
        fd.set_lapic(&lapic).map_err(setup("LAPIC"))?;
        let mut vcpu = Self {
            fd,
            id,
            power_on: None,
            msr_list: msrs.clone(),
        };
        vcpu.set_msrs(&[(MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING)])?;
        vcpu.power_on = Some(VcpuState::save(&vcpu.fd, id, msrs)?);
        Ok(vcpu)
    }

    /// Back to the state it was created in (a machine reset); vCPU 0 then at `entry` when the
    /// VMM boots the kernel itself.
    pub fn reset_to_power_on(&mut self, entry: Option<&CpuEntry>) -> Result<(), VcpuError> {
        if let Some(state) = &self.power_on {
            state.restore(&self.fd, self.id)?;
        }
        match entry {
            Some(entry) if self.id == 0 => self.enter(entry),
            _ => Ok(()),
        }
    }

    fn set_msrs(&self, msrs: &[(u32, u64)]) -> Result<(), VcpuError> {
        let id = self.id;
        let entries: Vec<kvm_msr_entry> = msrs
            .iter()
            .map(|&(index, data)| kvm_msr_entry {
                index,
                data,
                ..Default::default()
            })
            .collect();
        let msrs = Msrs::from_entries(&entries).map_err(|_| VcpuError::Setup {
            id,
            what: "MSRs",
            source: kvm_ioctls::Error::new(libc::E2BIG),
        })?;
        match self.fd.set_msrs(&msrs) {
            Ok(n) if n == entries.len() => Ok(()),
            // KVM stops at the first MSR it refuses.
            Ok(n) => Err(VcpuError::Msr {
                id,
                index: entries.get(n).map_or(0, |e| e.index),
            }),
            Err(source) => Err(VcpuError::Setup {
                id,
                what: "MSRs",
                source,
            }),
        }
    }

    pub fn id(&self) -> u8 {
        self.id
    }

    /// Everything KVM holds for this vCPU, for a snapshot (the vCPU is parked).
    pub fn snapshot(&self) -> Result<VcpuState, VcpuError> {
        Ok(VcpuState::save_all(&self.fd, self.id, &self.msr_list)?)
    }

    /// Puts a snapshot's state back, then tells the guest's kvmclock that the vCPU was stopped
    /// (so its watchdogs do not take the gap for a lockup), where KVM offers that.
    pub fn restore(&self, state: &VcpuState) -> Result<(), VcpuError> {
        state.restore(&self.fd, self.id)?;
        match self.fd.kvmclock_ctrl() {
            // EINVAL: the guest has no kvmclock set up (a payload, or firmware still running).
            Err(e) if e.errno() != libc::EINVAL => Err(VcpuError::Setup {
                id: self.id,
                what: "kvmclock (KVM_KVMCLOCK_CTRL)",
                source: e,
            }),
            _ => Ok(()),
        }
    }

    /// Direct boot (`-bios none`): starts this vCPU at a kernel's entry, in the state its boot
    /// protocol promises, instead of at the reset vector.
    pub fn enter(&self, entry: &CpuEntry) -> Result<(), VcpuError> {
        let id = self.id;
        let setup = |what| move |source| VcpuError::Setup { id, what, source };
        let mut sregs = self.fd.get_sregs().map_err(setup("special registers"))?;
        entry.apply(&mut sregs);
        self.fd.set_sregs(&sregs).map_err(setup("special registers"))?;
        self.set_msrs(&[(MSR_MTRR_DEF_TYPE, MTRR_ENABLE_WRITE_BACK)])?;
        self.fd.set_regs(&entry.regs()).map_err(setup("registers"))
    }

    /// The vCPU's thread: runs the guest while the controller says so, parks while it says
    /// so (running the jobs it hands over), and returns when it says exit.
    pub fn run_thread(mut self, h: &ExitHandlers, control: &VcpuControl) {
        let id = usize::from(self.id);
        control.enter(id);
        // The kick sets this vCPU's immediate_exit; the mapping lives as long as `self`.
        vcpu_control::set_kick_target(&mut self.fd.get_kvm_run().immediate_exit);
        while control.wait_to_run(id, &mut self) == Command::Run {
            self.run(h, control);
        }
        vcpu_control::forget_kick_target();
        control.leave(id);
    }

    /// Runs the guest until the command is no longer `Run`.
    fn run(&mut self, h: &ExitHandlers, control: &VcpuControl) {
        if self.id == 0 {
            h.timeline.mark(Event::FirstInstruction);
        }
        // The port I/O exit's element size, read from the mapping while `run`'s data borrows it.
        let kvm_run: *const kvm_bindings::kvm_run = self.fd.get_kvm_run();
        loop {
            // Cleared before the command is read: a kick after this point stops the next entry.
            self.fd.set_kvm_immediate_exit(0);
            if control.command() != Command::Run {
                return;
            }
            match self.fd.run() {
                Ok(VcpuExit::IoIn(port, data)) => {
                    h.timeline.count(ExitKind::for_port(port));
                    let io_size = io_element_size(kvm_run);
                    // `rep ins`: one device access per element.
                    for element in data.chunks_mut(io_size) {
                        if !h.pio.read(u64::from(port), element) {
                            h.unclaimed(Access::PortRead, port.into(), element.len());
                        }
                    }
                }
                Ok(VcpuExit::IoOut(port, data)) => {
                    h.timeline.count(ExitKind::for_port(port));
                    let io_size = io_element_size(kvm_run);
                    for element in data.chunks(io_size) {
                        if !h.pio.write(u64::from(port), element) {
                            h.unclaimed(Access::PortWrite, port.into(), element.len());
                        }
                    }
                }
                Ok(VcpuExit::MmioRead(addr, data)) => {
                    h.timeline.count(ExitKind::for_mmio(addr));
                    if !h.mmio.read(addr, data) {
                        h.unclaimed(Access::MmioRead, addr, data.len());
                    }
                }
                Ok(VcpuExit::MmioWrite(addr, data)) => {
                    h.timeline.count(ExitKind::for_mmio(addr));
                    if !h.mmio.write(addr, data) {
                        h.unclaimed(Access::MmioWrite, addr, data.len());
                    }
                }
                // With the in-kernel LAPIC, HLT stays in KVM; without interrupts it would spin here.
                Ok(VcpuExit::Hlt) => h.timeline.count(ExitKind::Hlt),
                // Split irqchip: the guest EOId a level-triggered vector. Interrupts reach the
                // LAPICs as MSIs, so no I/O APIC entry waits on it.
                Ok(VcpuExit::IoapicEoi(_)) => h.timeline.count(ExitKind::Other),
                Ok(VcpuExit::Shutdown) => h.exit.request(ExitReason::TripleFault),
                Ok(VcpuExit::SystemEvent(kind, _)) => h.exit.request(match kind {
                    KVM_SYSTEM_EVENT_SHUTDOWN => ExitReason::PowerOff,
                    KVM_SYSTEM_EVENT_RESET => ExitReason::Reset,
                    KVM_SYSTEM_EVENT_CRASH => ExitReason::VmFailed,
                    _ => ExitReason::VmFailed,
                }),
                Ok(VcpuExit::FailEntry(reason, cpu)) => {
                    crate::report!(
                        "vCPU {} could not enter the guest (hardware reason {reason:#x} on CPU {cpu})",
                        self.id
                    );
                    h.exit.request(ExitReason::VmFailed);
                }
                Ok(VcpuExit::InternalError) => {
                    crate::report!(
                        "vCPU {}: KVM internal error (an instruction KVM cannot emulate)",
                        self.id
                    );
                    h.exit.request(ExitReason::VmFailed);
                }
                Ok(other) => {
                    crate::report!("vCPU {}: unexpected exit {other:?}", self.id);
                    h.exit.request(ExitReason::VmFailed);
                }
                // A kick (or another signal) ended KVM_RUN: look at the command again.
                Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {}
                Err(e) => {
                    crate::report!("vCPU {}: KVM_RUN failed: {e}", self.id);
                    h.exit.request(ExitReason::VmFailed);
                }
            }
        }
    }
}

/// The element size (1, 2 or 4 bytes) of the port I/O exit `kvm_run` holds: a `rep ins/outs`
/// exit carries `count` elements of it, each a device access of its own.
fn io_element_size(kvm_run: *const kvm_bindings::kvm_run) -> usize {
    // SAFETY: `kvm_run` is the vCPU's live kvm_run mapping, and after a KVM_EXIT_IO the union
    // holds `io`; `size` lies before the data area the exit's slice borrows, so no reference
    // overlaps this read.
    let size = unsafe { std::ptr::addr_of!((*kvm_run).__bindgen_anon_1.io.size).read_volatile() };
    usize::from(size).clamp(1, 4)
}

/// Sets a LAPIC local vector table entry's delivery mode (bits 8-10) and unmasks it.
fn set_lvt(regs: &mut [std::os::raw::c_char; 1024], offset: usize, mode: u32) {
    let mut bytes = [0u8; 4];
    bytes
        .iter_mut()
        .zip(&regs[offset..offset + 4])
        .for_each(|(b, &r)| *b = r as u8);
    let value = (u32::from_le_bytes(bytes) & !0x1_0700) | (mode << 8);
    regs[offset..offset + 4]
        .iter_mut()
        .zip(value.to_le_bytes())
        .for_each(|(r, b)| *r = b as std::os::raw::c_char);
}
