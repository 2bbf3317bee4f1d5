//! The KVM VM: memory slots, the in-kernel interrupt controllers and PIT.
use kvm_bindings::{
    kvm_enable_cap, kvm_pit_config, kvm_userspace_memory_region, KVM_CAP_SPLIT_IRQCHIP, KVM_PIT_SPEAKER_DUMMY,
};
use kvm_ioctls::{Kvm, VmFd};
use vm_memory::{GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

/// Where KVM puts the three pages of its real-mode TSS (Intel only): just below the ROM
/// (Firecracker's choice); not RAM on this machine.
const KVM_TSS_ADDRESS: usize = 0xFFFB_D000;

#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error(
        "/dev/kvm does not exist: this host has no KVM (load kvm_intel or kvm_amd, or enable virtualization)"
    )]
    NoKvm,
    #[error("/dev/kvm: permission denied: add yourself to group kvm (sudo usermod -aG kvm $USER) and log in again")]
    KvmPermission,
    #[error("opening /dev/kvm: {0}")]
    OpenKvm(kvm_ioctls::Error),
    #[error("KVM API version {0} is not 12")]
    ApiVersion(i32),
    #[error("creating the VM: {0}")]
    CreateVm(kvm_ioctls::Error),
    #[error("mapping guest memory at {addr:#x}: {source}")]
    MemorySlot { addr: u64, source: kvm_ioctls::Error },
    #[error("setting up KVM's {what}: {source}")]
    Setup {
        what: &'static str,
        source: kvm_ioctls::Error,
    },
}

/// Opens /dev/kvm with an error a user can act on.
pub fn open_kvm() -> Result<Kvm, VmError> {
    let kvm = Kvm::new().map_err(|e| match e.errno() {
        libc::ENOENT => VmError::NoKvm,
        libc::EACCES | libc::EPERM => VmError::KvmPermission,
        _ => VmError::OpenKvm(e),
    })?;
    match kvm.get_api_version() {
        12 => Ok(kvm),
        v => Err(VmError::ApiVersion(v)),
    }
}

/// Which interrupt controllers KVM runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Irqchip {
    /// PICs, I/O APIC and local APICs in KVM, and KVM's PIT when `pit`.
    InKernel { pit: bool },
    /// Only the local APICs: the VMM runs the I/O APICs, whose `pins` GSIs KVM reserves for
    /// their MSI routes. No PIC, no PIT.
    Split { pins: u32 },
}

/// Creates the VM with `memory` (RAM and ROM windows) and the interrupt controllers `irqchip`
/// asks for.
pub fn create(kvm: &Kvm, memory: &GuestMemoryMmap, irqchip: Irqchip) -> Result<VmFd, VmError> {
    let vm = kvm.create_vm().map_err(VmError::CreateVm)?;
    let mut slot = 0;
    let mut map = |addr: u64, size: u64, host: u64| -> Result<(), VmError> {
        let region = kvm_userspace_memory_region {
            slot,
            flags: 0,
            guest_phys_addr: addr,
            memory_size: size,
            userspace_addr: host,
        };
        slot += 1;
        // SAFETY: `host` points to `size` bytes of a live mapping (guest RAM or the ROM) that
        // outlives the VM: the machine owns both and drops the VM first.
        unsafe { vm.set_user_memory_region(region) }.map_err(|source| VmError::MemorySlot { addr, source })
    };
    for region in memory.iter() {
        let host = memory
            .get_host_address(region.start_addr())
            .map_err(|_| VmError::MemorySlot {
                addr: region.start_addr().0,
                source: kvm_ioctls::Error::new(libc::EFAULT),
            })?;
        map(region.start_addr().0, region.len(), host as u64)?;
    }
    let setup = |what| move |source| VmError::Setup { what, source };
    vm.set_tss_address(KVM_TSS_ADDRESS)
        .map_err(setup("TSS address"))?;
    match irqchip {
        Irqchip::InKernel { pit } => {
            vm.create_irq_chip().map_err(setup("interrupt controllers"))?;
            let routes = super::legacy_routes::table().ok_or(VmError::Setup {
                what: "interrupt routes",
                source: kvm_ioctls::Error::new(libc::ENOMEM),
            })?;
            vm.set_gsi_routing(&routes).map_err(setup("interrupt routes"))?;
            if pit {
                let config = kvm_pit_config {
                    flags: KVM_PIT_SPEAKER_DUMMY,
                    ..Default::default()
                };
                vm.create_pit2(config).map_err(setup("PIT"))?;
            }
        }
        Irqchip::Split { pins } => {
            let mut cap = kvm_enable_cap {
                cap: KVM_CAP_SPLIT_IRQCHIP,
                ..Default::default()
            };
            cap.args[0] = u64::from(pins);
            vm.enable_cap(&cap).map_err(setup("split irqchip (pic=off)"))?;
        }
    }
    Ok(vm)
}

vmm_sys_util::ioctl_io_nr!(KVM_REINJECT_CONTROL, 0xAE, 0x71);

/// `-global kvm-pit.lost_tick_policy=discard`: KVM's PIT drops the ticks a guest missed
/// instead of delivering them late, one after the other.
pub fn discard_lost_pit_ticks(vm: &VmFd) -> Result<(), VmError> {
    let control = kvm_bindings::kvm_reinject_control {
        pit_reinject: 0,
        ..Default::default()
    };
    // SAFETY: KVM_REINJECT_CONTROL reads one kvm_reinject_control from the reference.
    let r = unsafe { vmm_sys_util::ioctl::ioctl_with_ref(vm, KVM_REINJECT_CONTROL(), &control) };
    match r {
        0 => Ok(()),
        _ => Err(VmError::Setup {
            what: "PIT lost-tick policy (KVM_REINJECT_CONTROL)",
            source: kvm_ioctls::Error::last(),
        }),
    }
}

/// `-overcommit cpu-pm=on`: the guest's HLT, MWAIT, PAUSE and C-state instructions stay in the
/// guest instead of exiting to KVM, as QEMU does (only those this KVM offers; before any vCPU
/// exists). Returns whether MWAIT now runs in the guest, which the CPUID then shows.
pub fn disable_power_exits(vm: &VmFd) -> Result<bool, VmError> {
    use kvm_bindings::{
        KVM_CAP_X86_DISABLE_EXITS, KVM_X86_DISABLE_EXITS_CSTATE, KVM_X86_DISABLE_EXITS_HLT,
        KVM_X86_DISABLE_EXITS_MWAIT, KVM_X86_DISABLE_EXITS_PAUSE,
    };
    let offered = vm.check_extension_raw(libc::c_ulong::from(KVM_CAP_X86_DISABLE_EXITS));
    let wanted = KVM_X86_DISABLE_EXITS_MWAIT
        | KVM_X86_DISABLE_EXITS_HLT
        | KVM_X86_DISABLE_EXITS_PAUSE
        | KVM_X86_DISABLE_EXITS_CSTATE;
    let exits = u32::try_from(offered).unwrap_or(0) & wanted;
    let mut cap = kvm_enable_cap {
        cap: KVM_CAP_X86_DISABLE_EXITS,
        ..Default::default()
    };
    cap.args[0] = u64::from(exits);
    vm.enable_cap(&cap).map_err(|source| VmError::Setup {
        what: "-overcommit cpu-pm=on (KVM_CAP_X86_DISABLE_EXITS)",
        source,
    })?;
    Ok(exits & KVM_X86_DISABLE_EXITS_MWAIT != 0)
}

/// Level-triggered GSIs set with KVM_IRQ_LINE.
pub struct KvmIrqLines(pub std::sync::Arc<VmFd>);

impl crate::irq::LineLevel for KvmIrqLines {
    fn set_level(&self, gsi: u32, high: bool) -> std::io::Result<()> {
        self.0
            .set_irq_line(gsi, high)
            .map_err(|e| std::io::Error::from_raw_os_error(e.errno()))
    }
}
