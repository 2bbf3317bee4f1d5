//! KVM state: the VM, its memory and its vCPUs, and what a reset puts back.
pub mod cpu_models;
pub mod cpuid;
pub mod irqchip_state;
pub mod legacy_routes;
pub mod memory;
pub mod msi_routes;
pub mod paused_clock;
pub mod vcpu;
pub mod vcpu_state;
pub mod vm;
