//! The host's vhost-vsock device: `/dev/vhost-vsock` opened by minnow, or an fd the caller opened
//! and handed over (`vhostfd=N`, as QEMU takes it), so a sandboxed minnow needs no access to the
//! device node. rust-vmm's `vhost` crate does the generic vhost ioctls through
//! [`VhostKernBackend`]; the two vsock ones are here.
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;
use vhost::vhost_kern::vhost_binding::{VHOST_VSOCK_SET_GUEST_CID, VHOST_VSOCK_SET_RUNNING};
use vhost::vhost_kern::VhostKernBackend;
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::ioctl::ioctl_with_ref;

pub const DEVICE_PATH: &str = "/dev/vhost-vsock";

pub struct Backend {
    file: File,
    mem: Arc<GuestMemoryMmap>,
}

impl Backend {
    /// Opens [`DEVICE_PATH`].
    pub fn open(mem: &GuestMemoryMmap) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(DEVICE_PATH)?;
        Ok(Backend {
            file,
            mem: Arc::new(mem.clone()),
        })
    }

    /// Takes a duplicate of the caller's open `fd` (the caller keeps its own).
    pub fn adopt(fd: RawFd, mem: &GuestMemoryMmap) -> io::Result<Self> {
        Ok(Backend {
            file: crate::host_fd::adopt(fd)?,
            mem: Arc::new(mem.clone()),
        })
    }

    pub fn set_guest_cid(&self, cid: u64) -> io::Result<()> {
        // SAFETY: VHOST_VSOCK_SET_GUEST_CID reads one u64 from the reference.
        let ret = unsafe { ioctl_with_ref(&self.file, VHOST_VSOCK_SET_GUEST_CID(), &cid) };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    pub fn set_running(&self, running: bool) -> io::Result<()> {
        let on = libc::c_int::from(running);
        // SAFETY: VHOST_VSOCK_SET_RUNNING reads one int from the reference.
        let ret = unsafe { ioctl_with_ref(&self.file, VHOST_VSOCK_SET_RUNNING(), &on) };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl AsRawFd for Backend {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

impl VhostKernBackend for Backend {
    type AS = Arc<GuestMemoryMmap>;

    fn mem(&self) -> &Self::AS {
        &self.mem
    }
}
