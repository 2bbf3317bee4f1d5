//! KVM state: the VM, its memory and its vCPUs.
pub mod cpuid;
pub mod legacy_routes;
pub mod memory;
pub mod msi_routes;
pub mod vcpu;
pub mod vm;
