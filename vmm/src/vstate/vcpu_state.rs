//! A vCPU's architectural state as KVM holds it: taken right after the vCPU is set up, it is the
//! state a reset returns to (QEMU's reset puts the same registers back rather than building a
//! new VM). Each part is read and written with its own ioctl; a part this KVM does not offer
//! (XSAVE, XCRs) is left out of both.
use kvm_bindings::{
    kvm_debugregs, kvm_fpu, kvm_lapic_state, kvm_mp_state, kvm_msr_entry, kvm_regs, kvm_sregs,
    kvm_vcpu_events, kvm_xcrs, kvm_xsave, Msrs,
};
use kvm_ioctls::VcpuFd;

/// MSRs a reset must return to their first values: the clocks, the guest's paravirtual
/// structures in its memory (KVM would go on writing there), the syscall and sysenter entry
/// points, the TSC and its deadline, PAT and the MTRR default type.
const RESET_MSRS: &[u32] = &[
    0x10,        // IA32_TSC
    0x3B,        // IA32_TSC_ADJUST
    0x6E0,       // IA32_TSC_DEADLINE
    0x174,       // IA32_SYSENTER_CS
    0x175,       // IA32_SYSENTER_ESP
    0x176,       // IA32_SYSENTER_EIP
    0x1A0,       // IA32_MISC_ENABLE
    0x277,       // IA32_PAT
    0x2FF,       // IA32_MTRR_DEF_TYPE
    0xC000_0081, // STAR
    0xC000_0082, // LSTAR
    0xC000_0083, // CSTAR
    0xC000_0084, // SFMASK
    0xC000_0102, // KERNEL_GS_BASE
    0xC000_0103, // TSC_AUX
    0x4B56_4D00, // MSR_KVM_WALL_CLOCK_NEW
    0x4B56_4D01, // MSR_KVM_SYSTEM_TIME_NEW
    0x4B56_4D02, // MSR_KVM_ASYNC_PF_EN
    0x4B56_4D03, // MSR_KVM_STEAL_TIME
    0x4B56_4D04, // MSR_KVM_PV_EOI_EN
    0x4B56_4D06, // MSR_KVM_ASYNC_PF_INT
    0x11,        // MSR_KVM_WALL_CLOCK
    0x12,        // MSR_KVM_SYSTEM_TIME
];

#[derive(Debug, thiserror::Error)]
#[error("vCPU {id}: {what}: {source}")]
pub struct VcpuStateError {
    pub id: u8,
    pub what: &'static str,
    pub source: kvm_ioctls::Error,
}

/// Everything [`VcpuState::save`] took.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct VcpuState {
    regs: kvm_regs,
    sregs: kvm_sregs,
    fpu: FpuState,
    xsave: Option<Box<kvm_xsave>>,
    xcrs: Option<kvm_xcrs>,
    lapic: kvm_lapic_state,
    msrs: Vec<kvm_msr_entry>,
    mp_state: kvm_mp_state,
    events: kvm_vcpu_events,
    debugregs: kvm_debugregs,
}

impl VcpuState {
    /// Reads vCPU `id`'s state for a reset. `supported_msrs` is KVM's MSR index list: only
    /// the [`RESET_MSRS`] on it are kept.
    pub fn save(fd: &VcpuFd, id: u8, supported_msrs: &[u32]) -> Result<Self, VcpuStateError> {
        let wanted: Vec<u32> = RESET_MSRS
            .iter()
            .copied()
            .filter(|i| supported_msrs.contains(i))
            .collect();
        Self::save_with(fd, id, &wanted)
    }

    /// Reads all of vCPU `id`'s state, for a snapshot: every MSR on KVM's index list (the
    /// list KVM keeps for migration) that this vCPU can read.
    pub fn save_all(fd: &VcpuFd, id: u8, supported_msrs: &[u32]) -> Result<Self, VcpuStateError> {
        Self::save_with(fd, id, supported_msrs)
    }

    fn save_with(fd: &VcpuFd, id: u8, msr_indices: &[u32]) -> Result<Self, VcpuStateError> {
        let err = |what| move |source| VcpuStateError { id, what, source };
        Ok(Self {
            regs: fd.get_regs().map_err(err("registers"))?,
            sregs: fd.get_sregs().map_err(err("special registers"))?,
            fpu: FpuState::from(&fd.get_fpu().map_err(err("FPU"))?),
            xsave: fd.get_xsave().ok().map(Box::new),
            xcrs: fd.get_xcrs().ok(),
            lapic: fd.get_lapic().map_err(err("LAPIC"))?,
            msrs: read_msrs(fd, id, msr_indices)?,
            mp_state: fd.get_mp_state().map_err(err("MP state"))?,
            events: fd.get_vcpu_events().map_err(err("pending events"))?,
            debugregs: fd.get_debug_regs().map_err(err("debug registers"))?,
        })
    }

    /// Puts the state back, in an order KVM accepts: the mode (sregs) before what depends on it,
    /// the LAPIC after the APIC base, pending events last.
    pub fn restore(&self, fd: &VcpuFd, id: u8) -> Result<(), VcpuStateError> {
        let err = |what| move |source| VcpuStateError { id, what, source };
        fd.set_sregs(&self.sregs).map_err(err("special registers"))?;
        fd.set_regs(&self.regs).map_err(err("registers"))?;
        match &self.xsave {
            // SAFETY: the buffer came from KVM_GET_XSAVE on a vCPU of this VM, so its size and
            // layout are what KVM_SET_XSAVE expects.
            Some(xsave) => unsafe { fd.set_xsave(xsave) }.map_err(err("XSAVE state"))?,
            None => fd.set_fpu(&self.fpu.to_kvm()).map_err(err("FPU"))?,
        }
        if let Some(xcrs) = &self.xcrs {
            fd.set_xcrs(xcrs).map_err(err("XCRs"))?;
        }
        let msrs = Msrs::from_entries(&self.msrs).map_err(|_| VcpuStateError {
            id,
            what: "MSR list",
            source: kvm_ioctls::Error::new(libc::E2BIG),
        })?;
        let written = fd.set_msrs(&msrs).map_err(err("MSRs"))?;
        if written != self.msrs.len() {
            return Err(VcpuStateError {
                id,
                what: "MSRs (KVM refused one)",
                source: kvm_ioctls::Error::new(libc::EINVAL),
            });
        }
        fd.set_debug_regs(&self.debugregs)
            .map_err(err("debug registers"))?;
        fd.set_lapic(&self.lapic).map_err(err("LAPIC"))?;
        fd.set_mp_state(self.mp_state).map_err(err("MP state"))?;
        fd.set_vcpu_events(&self.events).map_err(err("pending events"))
    }
}

/// Reads the MSRs `indices` names, leaving out any this vCPU refuses (KVM stops a batch at the
/// first it cannot read: the rest are read in the next one).
fn read_msrs(fd: &VcpuFd, id: u8, indices: &[u32]) -> Result<Vec<kvm_msr_entry>, VcpuStateError> {
    let mut read = Vec::with_capacity(indices.len());
    let mut rest = indices;
    while !rest.is_empty() {
        let batch: Vec<kvm_msr_entry> = rest
            .iter()
            .map(|&index| kvm_msr_entry {
                index,
                ..Default::default()
            })
            .collect();
        let mut msrs = Msrs::from_entries(&batch).map_err(|_| VcpuStateError {
            id,
            what: "MSR list",
            source: kvm_ioctls::Error::new(libc::E2BIG),
        })?;
        let n = fd.get_msrs(&mut msrs).map_err(|source| VcpuStateError {
            id,
            what: "MSRs",
            source,
        })?;
        read.extend_from_slice(&msrs.as_slice()[..n]);
        // Skip the one KVM refused.
        rest = rest.get(n + 1..).unwrap_or_default();
    }
    Ok(read)
}

/// `kvm_fpu` (which kvm-bindings does not serialize), for hosts without XSAVE.
#[derive(serde::Serialize, serde::Deserialize)]
struct FpuState {
    fpr: [[u8; 16]; 8],
    control: [u16; 2],
    ftwx: u8,
    last_opcode: u16,
    last_ip: u64,
    last_dp: u64,
    xmm: [[u8; 16]; 16],
    mxcsr: u32,
}

impl From<&kvm_fpu> for FpuState {
    fn from(f: &kvm_fpu) -> Self {
        Self {
            fpr: f.fpr,
            control: [f.fcw, f.fsw],
            ftwx: f.ftwx,
            last_opcode: f.last_opcode,
            last_ip: f.last_ip,
            last_dp: f.last_dp,
            xmm: f.xmm,
            mxcsr: f.mxcsr,
        }
    }
}

impl FpuState {
    fn to_kvm(&self) -> kvm_fpu {
        kvm_fpu {
            fpr: self.fpr,
            fcw: self.control[0],
            fsw: self.control[1],
            ftwx: self.ftwx,
            last_opcode: self.last_opcode,
            last_ip: self.last_ip,
            last_dp: self.last_dp,
            xmm: self.xmm,
            mxcsr: self.mxcsr,
            ..Default::default()
        }
    }
}
