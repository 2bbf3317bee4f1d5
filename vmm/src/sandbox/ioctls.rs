//! The ioctl request numbers the filters allow, computed from the kernel's structures as the
//! kernel computes them (kvm-ioctls keeps its own private; vhost's are public). The kernel takes
//! the request as a 32-bit `unsigned int`, so the filters compare 32 bits.
#![allow(non_snake_case)]
use kvm_bindings::{
    kvm_clock_data, kvm_debugregs, kvm_fpu, kvm_irq_level, kvm_irq_routing, kvm_irqchip, kvm_lapic_state,
    kvm_mp_state, kvm_msrs, kvm_pit_state2, kvm_regs, kvm_sregs, kvm_vcpu_events, kvm_xcrs, kvm_xsave,
};
use vhost::vhost_kern::vhost_binding as vhost;
use vmm_sys_util::{ioctl_io_nr, ioctl_ior_nr, ioctl_iow_nr, ioctl_iowr_nr};

const KVMIO: u32 = 0xAE;

ioctl_io_nr!(KVM_RUN, KVMIO, 0x80);
ioctl_iow_nr!(KVM_IRQ_LINE, KVMIO, 0x61, kvm_irq_level);
ioctl_iow_nr!(KVM_SET_GSI_ROUTING, KVMIO, 0x6a, kvm_irq_routing);
ioctl_ior_nr!(KVM_GET_REGS, KVMIO, 0x81, kvm_regs);
ioctl_iow_nr!(KVM_SET_REGS, KVMIO, 0x82, kvm_regs);
ioctl_ior_nr!(KVM_GET_SREGS, KVMIO, 0x83, kvm_sregs);
ioctl_iow_nr!(KVM_SET_SREGS, KVMIO, 0x84, kvm_sregs);
ioctl_iowr_nr!(KVM_GET_MSRS, KVMIO, 0x88, kvm_msrs);
ioctl_iow_nr!(KVM_SET_MSRS, KVMIO, 0x89, kvm_msrs);
ioctl_ior_nr!(KVM_GET_FPU, KVMIO, 0x8c, kvm_fpu);
ioctl_iow_nr!(KVM_SET_FPU, KVMIO, 0x8d, kvm_fpu);
ioctl_ior_nr!(KVM_GET_LAPIC, KVMIO, 0x8e, kvm_lapic_state);
ioctl_iow_nr!(KVM_SET_LAPIC, KVMIO, 0x8f, kvm_lapic_state);
ioctl_ior_nr!(KVM_GET_MP_STATE, KVMIO, 0x98, kvm_mp_state);
ioctl_iow_nr!(KVM_SET_MP_STATE, KVMIO, 0x99, kvm_mp_state);
ioctl_ior_nr!(KVM_GET_VCPU_EVENTS, KVMIO, 0x9f, kvm_vcpu_events);
ioctl_iow_nr!(KVM_SET_VCPU_EVENTS, KVMIO, 0xa0, kvm_vcpu_events);
ioctl_ior_nr!(KVM_GET_DEBUGREGS, KVMIO, 0xa1, kvm_debugregs);
ioctl_iow_nr!(KVM_SET_DEBUGREGS, KVMIO, 0xa2, kvm_debugregs);
ioctl_ior_nr!(KVM_GET_XSAVE, KVMIO, 0xa4, kvm_xsave);
ioctl_iow_nr!(KVM_SET_XSAVE, KVMIO, 0xa5, kvm_xsave);
ioctl_ior_nr!(KVM_GET_XCRS, KVMIO, 0xa6, kvm_xcrs);
ioctl_iow_nr!(KVM_SET_XCRS, KVMIO, 0xa7, kvm_xcrs);
ioctl_iowr_nr!(KVM_GET_IRQCHIP, KVMIO, 0x62, kvm_irqchip);
// The kernel declares KVM_SET_IRQCHIP with _IOR, for history's sake.
ioctl_ior_nr!(KVM_SET_IRQCHIP, KVMIO, 0x63, kvm_irqchip);
ioctl_iow_nr!(KVM_SET_CLOCK, KVMIO, 0x7b, kvm_clock_data);
ioctl_ior_nr!(KVM_GET_CLOCK, KVMIO, 0x7c, kvm_clock_data);
ioctl_ior_nr!(KVM_GET_PIT2, KVMIO, 0x9f, kvm_pit_state2);
ioctl_iow_nr!(KVM_SET_PIT2, KVMIO, 0xa0, kvm_pit_state2);
ioctl_io_nr!(KVM_KVMCLOCK_CTRL, KVMIO, 0xad);

/// What a vCPU's thread asks of KVM: running it, raising lines, and a reset in place (its state
/// read once and written back).
pub fn vcpu_kvm() -> Vec<u64> {
    [
        KVM_RUN(),
        KVM_IRQ_LINE(),
        KVM_SET_GSI_ROUTING(),
        KVM_GET_REGS(),
        KVM_SET_REGS(),
        KVM_GET_SREGS(),
        KVM_SET_SREGS(),
        KVM_GET_MSRS(),
        KVM_SET_MSRS(),
        KVM_GET_FPU(),
        KVM_SET_FPU(),
        KVM_GET_LAPIC(),
        KVM_SET_LAPIC(),
        KVM_GET_MP_STATE(),
        KVM_SET_MP_STATE(),
        KVM_GET_VCPU_EVENTS(),
        KVM_SET_VCPU_EVENTS(),
        KVM_GET_DEBUGREGS(),
        KVM_SET_DEBUGREGS(),
        KVM_GET_XSAVE(),
        KVM_SET_XSAVE(),
        KVM_GET_XCRS(),
        KVM_SET_XCRS(),
        // A restored vCPU tells its guest's kvmclock it was stopped.
        KVM_KVMCLOCK_CTRL(),
    ]
    .to_vec()
}

/// What the event thread asks of KVM: lines (timers, input), the paused clock, and the
/// interrupt controllers and PIT a reset puts back.
pub fn events_kvm() -> Vec<u64> {
    [
        KVM_IRQ_LINE(),
        KVM_SET_GSI_ROUTING(),
        KVM_GET_CLOCK(),
        KVM_SET_CLOCK(),
        KVM_GET_IRQCHIP(),
        KVM_SET_IRQCHIP(),
        KVM_GET_PIT2(),
        KVM_SET_PIT2(),
    ]
    .to_vec()
}

/// Starting and stopping vhost-vsock, which the guest's driver does through a vCPU's MMIO write.
pub fn vhost() -> Vec<u64> {
    [
        vhost::VHOST_SET_FEATURES(),
        vhost::VHOST_SET_MEM_TABLE(),
        vhost::VHOST_SET_VRING_NUM(),
        vhost::VHOST_SET_VRING_ADDR(),
        vhost::VHOST_SET_VRING_BASE(),
        vhost::VHOST_GET_VRING_BASE(),
        vhost::VHOST_SET_VRING_KICK(),
        vhost::VHOST_SET_VRING_CALL(),
        vhost::VHOST_VSOCK_SET_RUNNING(),
    ]
    .to_vec()
}

/// Descriptor and terminal requests: non-blocking mode (std sets it with FIONBIO), the raw
/// terminal and its restoring, `isatty`.
// The constants are c_ulong with glibc and c_int with musl: the cast is needed on one of them.
#[allow(clippy::unnecessary_cast)]
pub fn descriptors() -> Vec<u64> {
    [
        libc::FIONBIO,
        libc::TCGETS,
        libc::TCSETS,
        libc::TCSETSW,
        libc::TIOCGWINSZ,
    ]
    .map(|n| n as u64)
    .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The numbers as the kernel's headers spell them (and Firecracker's filters list them).
    #[test]
    fn the_numbers_are_the_kernels() {
        assert_eq!(KVM_RUN(), 0xae80);
        assert_eq!(KVM_KVMCLOCK_CTRL(), 0xaead);
        assert_eq!(KVM_IRQ_LINE(), 0x4008_ae61);
        assert_eq!(KVM_SET_GSI_ROUTING(), 0x4008_ae6a);
        assert_eq!(KVM_SET_SREGS(), 0x4138_ae84);
        assert_eq!(KVM_SET_REGS(), 0x4090_ae82);
        assert_eq!(KVM_SET_LAPIC(), 0x4400_ae8f);
        assert_eq!(KVM_SET_MSRS(), 0x4008_ae89);
        assert_eq!(KVM_GET_CLOCK(), 0x8030_ae7c);
        assert_eq!(KVM_SET_CLOCK(), 0x4030_ae7b);
        assert_eq!(KVM_GET_IRQCHIP(), 0xc208_ae62);
        assert_eq!(KVM_SET_IRQCHIP(), 0x8208_ae63);
        assert_eq!(KVM_SET_PIT2(), 0x4070_aea0);
        assert_eq!(KVM_SET_VCPU_EVENTS(), 0x4040_aea0);
        assert_eq!(vhost::VHOST_VSOCK_SET_RUNNING(), 0x4004_af61);
    }
}
