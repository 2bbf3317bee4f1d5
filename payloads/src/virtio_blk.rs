//! A polling virtio-blk driver over virtio-mmio (version 2, the modern interface), enough to
//! write and flush sectors: one queue of [`QUEUE_LEN`] descriptors, one request at a time,
//! interrupts ignored (the payload runs with them off). The device is found the way Linux finds
//! it without ACPI: `virtio_mmio.device=SIZE@BASE:IRQ` on the command line.
//!
//! The register offsets and bits are the virtio 1.2 specification's (4.2.2, 5.2.6); rust-vmm's
//! virtio-bindings has them too but needs std, which a bare-metal payload has not.

/// The base address of each `virtio_mmio.device=SIZE@BASE:IRQ` on a command line.
pub fn transports(cmdline: &[u8]) -> impl Iterator<Item = u64> + '_ {
    cmdline.split(|&b| b == b' ').filter_map(|word| {
        let spec = word.strip_prefix(b"virtio_mmio.device=")?;
        let at = spec.iter().position(|&b| b == b'@')?;
        let base = &spec[at + 1..];
        let end = base.iter().position(|&b| b == b':').unwrap_or(base.len());
        let hex = base[..end].strip_prefix(b"0x")?;
        let text = core::str::from_utf8(hex).ok()?;
        u64::from_str_radix(text, 16).ok()
    })
}

#[cfg(target_os = "none")]
pub use device::{Blk, BlkError};

#[cfg(target_os = "none")]
mod device {
    use core::ptr::{addr_of, addr_of_mut, read_volatile, write_volatile};
    use core::sync::atomic::{fence, Ordering};

    const MAGIC: u32 = 0x7472_6976; // "virt"
    const DEVICE_BLK: u32 = 2;
    const REG_MAGIC: u64 = 0x000;
    const REG_VERSION: u64 = 0x004;
    const REG_DEVICE_ID: u64 = 0x008;
    const REG_DEVICE_FEATURES: u64 = 0x010;
    const REG_DEVICE_FEATURES_SEL: u64 = 0x014;
    const REG_DRIVER_FEATURES: u64 = 0x020;
    const REG_DRIVER_FEATURES_SEL: u64 = 0x024;
    const REG_QUEUE_SEL: u64 = 0x030;
    const REG_QUEUE_NUM_MAX: u64 = 0x034;
    const REG_QUEUE_NUM: u64 = 0x038;
    const REG_QUEUE_READY: u64 = 0x044;
    const REG_QUEUE_NOTIFY: u64 = 0x050;
    const REG_STATUS: u64 = 0x070;
    const REG_QUEUE_DESC: u64 = 0x080;
    const REG_QUEUE_DRIVER: u64 = 0x090;
    const REG_QUEUE_DEVICE: u64 = 0x0A0;
    const STATUS_ACKNOWLEDGE: u32 = 1;
    const STATUS_DRIVER: u32 = 2;
    const STATUS_DRIVER_OK: u32 = 4;
    const STATUS_FEATURES_OK: u32 = 8;
    /// VIRTIO_F_VERSION_1 is bit 32: bit 0 of the second feature word.
    const F_VERSION_1_HIGH: u32 = 1;
    /// VIRTIO_BLK_F_FLUSH, bit 9 of the first word.
    const F_FLUSH: u32 = 1 << 9;
    const T_OUT: u32 = 1;
    const T_FLUSH: u32 = 4;
    const DESC_F_NEXT: u16 = 1;
    const DESC_F_WRITE: u16 = 2;
    const QUEUE_LEN: usize = 4;
    /// Polls of the used ring before a request counts as lost.
    const PATIENCE: u32 = 50_000_000;

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum BlkError {
        NoDevice,
        /// The device refused VIRTIO_F_VERSION_1 or our features.
        Features,
        NoQueue,
        /// The device answered a request with this status (1 IOERR, 2 UNSUPP).
        Status(u8),
        /// No answer in [`PATIENCE`] polls.
        Timeout,
    }

    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Desc {
        addr: u64,
        len: u32,
        flags: u16,
        next: u16,
    }

    #[repr(C)]
    struct Avail {
        flags: u16,
        idx: u16,
        ring: [u16; QUEUE_LEN],
    }

    #[repr(C)]
    struct Used {
        flags: u16,
        idx: u16,
        ring: [(u32, u32); QUEUE_LEN],
    }

    #[repr(C)]
    struct Header {
        kind: u32,
        reserved: u32,
        sector: u64,
    }

    /// The queue and one request's buffers, in the payload's .bss (the identity map makes their
    /// addresses physical).
    #[repr(C, align(4096))]
    struct Memory {
        desc: [Desc; QUEUE_LEN],
        avail: Avail,
        used: Used,
        header: Header,
        data: [u8; 512],
        status: u8,
    }

    static mut MEMORY: Memory = Memory {
        desc: [Desc {
            addr: 0,
            len: 0,
            flags: 0,
            next: 0,
        }; QUEUE_LEN],
        avail: Avail {
            flags: 0,
            idx: 0,
            ring: [0; QUEUE_LEN],
        },
        used: Used {
            flags: 0,
            idx: 0,
            ring: [(0, 0); QUEUE_LEN],
        },
        header: Header {
            kind: 0,
            reserved: 0,
            sector: 0,
        },
        data: [0; 512],
        status: 0,
    };

    pub struct Blk {
        base: u64,
        flush: bool,
        last_used: u16,
    }

    fn read(base: u64, reg: u64) -> u32 {
        // SAFETY: a register of the virtio-mmio transport at `base`, which the command line
        // named and the identity map maps (below 4 GiB).
        unsafe { read_volatile((base + reg) as *const u32) }
    }

    fn write(base: u64, reg: u64, value: u32) {
        // SAFETY: as for `read`.
        unsafe { write_volatile((base + reg) as *mut u32, value) }
    }

    fn write64(base: u64, reg: u64, value: u64) {
        write(base, reg, value as u32);
        write(base, reg + 4, (value >> 32) as u32);
    }

    impl Blk {
        /// The first virtio-blk device among `bases`, set up with its first queue.
        pub fn find(bases: impl Iterator<Item = u64>) -> Result<Blk, BlkError> {
            let base = bases
                .filter(|&b| b < 1 << 32)
                .find(|&b| {
                    read(b, REG_MAGIC) == MAGIC
                        && read(b, REG_VERSION) == 2
                        && read(b, REG_DEVICE_ID) == DEVICE_BLK
                })
                .ok_or(BlkError::NoDevice)?;
            Self::init(base)
        }

        fn init(base: u64) -> Result<Blk, BlkError> {
            write(base, REG_STATUS, 0);
            write(base, REG_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
            write(base, REG_DEVICE_FEATURES_SEL, 1);
            if read(base, REG_DEVICE_FEATURES) & F_VERSION_1_HIGH == 0 {
                return Err(BlkError::Features);
            }
            write(base, REG_DEVICE_FEATURES_SEL, 0);
            let flush = read(base, REG_DEVICE_FEATURES) & F_FLUSH != 0;
            write(base, REG_DRIVER_FEATURES_SEL, 1);
            write(base, REG_DRIVER_FEATURES, F_VERSION_1_HIGH);
            write(base, REG_DRIVER_FEATURES_SEL, 0);
            write(base, REG_DRIVER_FEATURES, if flush { F_FLUSH } else { 0 });
            let status = STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK;
            write(base, REG_STATUS, status);
            if read(base, REG_STATUS) & STATUS_FEATURES_OK == 0 {
                return Err(BlkError::Features);
            }
            write(base, REG_QUEUE_SEL, 0);
            if (read(base, REG_QUEUE_NUM_MAX) as usize) < QUEUE_LEN {
                return Err(BlkError::NoQueue);
            }
            write(base, REG_QUEUE_NUM, QUEUE_LEN as u32);
            // SAFETY: only the addresses of the static are taken; nothing is read or written.
            let (desc, avail, used) = unsafe {
                (
                    addr_of!(MEMORY.desc) as u64,
                    addr_of!(MEMORY.avail) as u64,
                    addr_of!(MEMORY.used) as u64,
                )
            };
            write64(base, REG_QUEUE_DESC, desc);
            write64(base, REG_QUEUE_DRIVER, avail);
            write64(base, REG_QUEUE_DEVICE, used);
            write(base, REG_QUEUE_READY, 1);
            write(base, REG_STATUS, status | STATUS_DRIVER_OK);
            Ok(Blk {
                base,
                flush,
                last_used: 0,
            })
        }

        /// Writes `data` to `sector`.
        pub fn write_sector(&mut self, sector: u64, data: &[u8; 512]) -> Result<(), BlkError> {
            self.request(T_OUT, sector, Some(data))
        }

        /// Makes every write so far durable (a no-op for a device without VIRTIO_BLK_F_FLUSH,
        /// which writes through).
        pub fn flush(&mut self) -> Result<(), BlkError> {
            match self.flush {
                true => self.request(T_FLUSH, 0, None),
                false => Ok(()),
            }
        }

        fn request(&mut self, kind: u32, sector: u64, data: Option<&[u8; 512]>) -> Result<(), BlkError> {
            // SAFETY: one request at a time, from this CPU only: the device does not touch the
            // buffers until the avail index below is published, and is done with them once the
            // used index moves, which is waited for before returning.
            unsafe {
                let m = &mut *addr_of_mut!(MEMORY);
                m.header = Header {
                    kind,
                    reserved: 0,
                    sector,
                };
                m.status = 0xFF;
                let mut chain = [(addr_of!(m.header) as u64, 16u32, 0u16); 3];
                let mut n = 1;
                if let Some(d) = data {
                    m.data = *d;
                    chain[n] = (addr_of!(m.data) as u64, 512, 0);
                    n += 1;
                }
                chain[n] = (addr_of!(m.status) as u64, 1, DESC_F_WRITE);
                n += 1;
                for (i, &(addr, len, flags)) in chain[..n].iter().enumerate() {
                    let next = if i + 1 < n { DESC_F_NEXT } else { 0 };
                    m.desc[i] = Desc {
                        addr,
                        len,
                        flags: flags | next,
                        next: i as u16 + 1,
                    };
                }
                let idx = read_volatile(addr_of!(m.avail.idx));
                write_volatile(addr_of_mut!(m.avail.ring[idx as usize % QUEUE_LEN]), 0);
                fence(Ordering::SeqCst);
                write_volatile(addr_of_mut!(m.avail.idx), idx.wrapping_add(1));
                fence(Ordering::SeqCst);
                write(self.base, REG_QUEUE_NOTIFY, 0);
                let mut polls = 0;
                while read_volatile(addr_of!(m.used.idx)) == self.last_used {
                    polls += 1;
                    if polls > PATIENCE {
                        return Err(BlkError::Timeout);
                    }
                    core::hint::spin_loop();
                }
                fence(Ordering::SeqCst);
                self.last_used = self.last_used.wrapping_add(1);
                match read_volatile(addr_of!(m.status)) {
                    0 => Ok(()),
                    s => Err(BlkError::Status(s)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_come_from_the_command_line() {
        let line = b"console=ttyS0 virtio_mmio.device=512@0xfeb00000:5 x virtio_mmio.device=512@0xfeb00200:6";
        let bases: Vec<u64> = transports(line).collect();
        assert_eq!(bases, [0xFEB0_0000, 0xFEB0_0200]);
        assert_eq!(transports(b"virtio_mmio.device=512@feb00000:5").count(), 0);
        assert_eq!(transports(b"").count(), 0);
    }
}
