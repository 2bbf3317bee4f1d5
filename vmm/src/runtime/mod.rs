//! A VM at run time: its threads and their lifecycle, and the one event loop that serves every
//! host fd. [`vm::Vm`] is the library's handle on a running VM.
pub mod event_loop;
pub mod guest_log;
pub mod lifecycle;
pub mod output;
pub mod rtc_timer;
pub mod signals;
pub mod stdin;
pub mod stdio_mux;
pub mod terminal;
pub mod vcpu_control;
pub mod vcpu_threads;
pub mod virtio_io;
pub mod vm;
