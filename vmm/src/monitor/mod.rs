//! QEMU's two monitors, wire-compatible: QMP (`-qmp`, `-mon mode=control`: JSON commands,
//! replies and events, as QEMU 7.2 writes them) and HMP (`-monitor`, `-mon mode=readline`: lines
//! for people, over telnet, a Unix socket or stdio). They run on the VM's event loop and are thin
//! layers over the lifecycle controller, the same one `VmHandle` drives.
mod format;
mod hmp;
mod migration;
pub mod qmp;
mod server;
mod telnet;

pub(crate) use hmp::PROMPT as HMP_PROMPT;

pub use server::{MonitorError, MonitorServer};

use crate::runtime::lifecycle::Controller;

/// The QEMU whose microvm and monitors Minnow follows, as `query-version` gives it: QEMU 7.2,
/// Debian 12's, which the compatibility tests run beside minnow.
pub const QEMU_VERSION: (u64, u64, u64) = (7, 2, 0);
/// What `query-version` calls the package.
pub const PACKAGE: &str = concat!("minnow ", env!("CARGO_PKG_VERSION"));

/// What the monitors say about the VM that the controller does not know.
#[derive(Clone, Debug, Default)]
pub struct VmFacts {
    /// `-name`.
    pub name: Option<String>,
    /// The character devices `query-chardev` lists: (label, filename), QEMU's way.
    pub chardevs: Vec<(String, String)>,
}

/// What a command runs against.
pub struct Context<'a> {
    pub controller: &'a mut Controller,
    pub facts: &'a VmFacts,
}

/// What a monitor connection speaks.
pub trait Session: Send {
    /// What a new client hears first.
    fn greeting(&mut self) -> Vec<u8>;
    /// Bytes from the client; returns what to send back.
    fn input(&mut self, bytes: &[u8], ctx: &mut Context) -> Vec<u8>;
    /// A VM event, as this protocol tells it (HMP says nothing).
    fn event(&mut self, event: &crate::runtime::lifecycle::VmEvent) -> Vec<u8>;
    /// The client asked to end the VM (`quit`): the server sends what is left, then ends it.
    fn quit_requested(&self) -> bool;
}
