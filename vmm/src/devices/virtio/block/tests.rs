use super::disk::RawFile;
use super::*;
use crate::config::Drive;
use virtio_queue::desc::{split::Descriptor, RawDescriptor};
use virtio_queue::mock::MockSplitQueue;
use vm_memory::{Bytes, GuestAddress};

const WRITE: u16 = 2;
const NEXT: u16 = 1;
const HEADER: u64 = 0x1_0000;
const DATA: u64 = 0x2_0000;
const STATUS: u64 = 0x3_0000;

struct Fixture {
    mem: GuestMemoryMmap,
    path: std::path::PathBuf,
}

impl Fixture {
    fn new(name: &str, image: &[u8]) -> Self {
        let path = std::env::temp_dir().join(format!("minnow-blk-{name}-{}", std::process::id()));
        std::fs::write(&path, image).unwrap();
        Fixture {
            mem: GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap(),
            path,
        }
    }

    fn device(&self, read_only: bool) -> Block {
        // Tests open one image more than once at a time: as QEMU's locking=off.
        let drive = Drive {
            file: self.path.clone(),
            read_only,
            locking: false,
            ..Drive::default()
        };
        Block::new(
            Box::new(RawFile::open(&drive).unwrap()),
            read_only,
            "minnow-disk-0",
        )
    }

    /// Runs one request (header, then `data` of `len` bytes, readable or writable, then the
    /// status byte) and returns (status, used length).
    fn request(&self, dev: &mut Block, kind: u32, sector: u64, len: u32, data_writable: bool) -> (u8, u32) {
        let mut header = [0u8; 16];
        header[0..4].copy_from_slice(&kind.to_le_bytes());
        header[8..16].copy_from_slice(&sector.to_le_bytes());
        self.mem.write_slice(&header, GuestAddress(HEADER)).unwrap();
        self.mem.write_obj(0xFFu8, GuestAddress(STATUS)).unwrap();
        let vq = MockSplitQueue::new(&self.mem, 16);
        let mut descs = vec![RawDescriptor::from(Descriptor::new(HEADER, 16, NEXT, 1))];
        if len > 0 {
            let flags = if data_writable { WRITE | NEXT } else { NEXT };
            descs.push(RawDescriptor::from(Descriptor::new(DATA, len, flags, 2)));
        }
        let next = descs.len() as u16;
        descs.push(RawDescriptor::from(Descriptor::new(STATUS, 1, WRITE, next)));
        vq.build_desc_chain(&descs).unwrap();
        let mut queue: Queue = vq.create_queue().unwrap();
        assert!(dev.process(0, &mut queue, &self.mem).unwrap());
        let used = vq.used().ring().ref_at(0).unwrap().load().len();
        (self.mem.read_obj(GuestAddress(STATUS)).unwrap(), used)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[test]
fn writes_reach_the_file_and_read_back() {
    let f = Fixture::new("rw", &[0u8; 4096]);
    let mut dev = f.device(false);
    f.mem.write_slice(&[0x5A; 512], GuestAddress(DATA)).unwrap();
    assert_eq!(f.request(&mut dev, T_OUT, 2, 512, false), (S_OK, 1));
    assert_eq!(f.request(&mut dev, T_FLUSH, 0, 0, false), (S_OK, 1));
    assert_eq!(&std::fs::read(&f.path).unwrap()[1024..1536], &[0x5A; 512][..]);
    f.mem.write_slice(&[0u8; 512], GuestAddress(DATA)).unwrap();
    assert_eq!(f.request(&mut dev, T_IN, 2, 512, true), (S_OK, 513));
    let mut back = [0u8; 512];
    f.mem.read_slice(&mut back, GuestAddress(DATA)).unwrap();
    assert_eq!(back, [0x5A; 512]);
}

#[test]
fn requests_past_the_end_read_only_writes_and_unknown_types_fail_cleanly() {
    let f = Fixture::new("bad", &[0u8; 4096]);
    let mut dev = f.device(false);
    assert_eq!(f.request(&mut dev, T_IN, 8, 512, true).0, S_IOERR);
    assert_eq!(f.request(&mut dev, T_OUT, u64::MAX / 2, 512, false).0, S_IOERR);
    assert_eq!(f.request(&mut dev, 99, 0, 0, false).0, S_UNSUPP);
    let mut ro = f.device(true);
    assert_ne!(ro.features() & F_RO, 0);
    assert_eq!(f.request(&mut ro, T_OUT, 0, 512, false).0, S_IOERR);
    assert_eq!(f.request(&mut ro, T_DISCARD, 0, 16, false).0, S_IOERR);
}

#[test]
fn the_id_capacity_and_discard_are_served() {
    let f = Fixture::new("id", &[0xEE; 8192]);
    let mut dev = f.device(false);
    assert_eq!(f.request(&mut dev, T_GET_ID, 0, 20, true), (S_OK, 21));
    let mut id = [0u8; 13];
    f.mem.read_slice(&mut id, GuestAddress(DATA)).unwrap();
    assert_eq!(&id, b"minnow-disk-0");
    let mut cap = [0u8; 8];
    dev.read_config(0, &mut cap);
    assert_eq!(u64::from_le_bytes(cap), 16);
    // Zero sectors 1..3 of the 0xEE image.
    let mut seg = [0u8; 16];
    seg[0..8].copy_from_slice(&1u64.to_le_bytes());
    seg[8..12].copy_from_slice(&2u32.to_le_bytes());
    f.mem.write_slice(&seg, GuestAddress(DATA)).unwrap();
    assert_eq!(f.request(&mut dev, T_WRITE_ZEROES, 0, 16, false).0, S_OK);
    let image = std::fs::read(&f.path).unwrap();
    assert!(image[512..1536].iter().all(|&b| b == 0));
    assert!(image[..512].iter().chain(&image[1536..]).all(|&b| b == 0xEE));
}

#[test]
fn a_chain_without_a_status_byte_or_outside_memory_is_used_empty() {
    let f = Fixture::new("chain", &[0u8; 4096]);
    let mut dev = f.device(false);
    let vq = MockSplitQueue::new(&f.mem, 16);
    vq.build_desc_chain(&[RawDescriptor::from(Descriptor::new(HEADER, 16, 0, 0))])
        .unwrap();
    let mut queue: Queue = vq.create_queue().unwrap();
    assert!(dev.process(0, &mut queue, &f.mem).unwrap());
    assert_eq!(vq.used().ring().ref_at(0).unwrap().load().len(), 0);
    let vq = MockSplitQueue::new(&f.mem, 16);
    vq.build_desc_chain(&[
        RawDescriptor::from(Descriptor::new(0x1_0000_0000, 16, NEXT, 1)),
        RawDescriptor::from(Descriptor::new(STATUS, 1, WRITE, 2)),
    ])
    .unwrap();
    let mut queue: Queue = vq.create_queue().unwrap();
    assert!(dev.process(0, &mut queue, &f.mem).unwrap());
    assert_eq!(vq.used().ring().ref_at(0).unwrap().load().len(), 0);
}

/// A small xorshift generator: the hostile-guest test is random but repeatable.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<T: Copy>(&mut self, choices: &[T]) -> T {
        choices[(self.next() % choices.len() as u64) as usize]
    }
}

/// Thousands of queues a hostile driver could build: descriptors pointing anywhere (past guest
/// memory, across its end), with any length, flags and next index (loops, indirect tables that
/// are not there), avail rings naming heads past the table. The device must answer each without
/// panicking, and never grow or write past the end of its disk.
#[test]
fn random_hostile_queues_never_panic_or_escape_the_disk() {
    let f = Fixture::new("fuzz", &[0x11; 8192]);
    let mut dev = f.device(false);
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut answered = 0u64;
    for _ in 0..2000 {
        let vq = MockSplitQueue::new(&f.mem, 16);
        for i in 0..16u16 {
            let anywhere = rng.next() % 0x10_0000;
            let addr = rng.pick(&[HEADER, DATA, STATUS, 0xF_FFF0, 0x10_0000, 1 << 40, anywhere]);
            let any_len = (rng.next() % 70_000) as u32;
            let len = rng.pick(&[0, 1, 16, 512, 4096, 0xFFFF_FFFF, any_len]);
            let flags = (rng.next() % 8) as u16;
            let next = (rng.next() % 24) as u16;
            vq.desc_table()
                .store(i, RawDescriptor::from(Descriptor::new(addr, len, flags, next)))
                .unwrap();
        }
        // A request header that is sometimes valid, so requests get as far as the disk.
        let mut header = [0u8; 16];
        header[0..4].copy_from_slice(
            &rng.pick(&[T_IN, T_OUT, T_FLUSH, T_GET_ID, T_DISCARD, 7])
                .to_le_bytes(),
        );
        header[8..16].copy_from_slice(&rng.pick(&[0u64, 15, 16, u64::MAX]).to_le_bytes());
        f.mem.write_slice(&header, GuestAddress(HEADER)).unwrap();
        let heads = rng.next() % 20;
        for i in 0..heads.min(16) {
            vq.avail()
                .ring()
                .ref_at(i as usize)
                .unwrap()
                .store((rng.next() % 24) as u16);
        }
        vq.avail().idx().store(heads as u16);
        let mut queue: Queue = vq.create_queue().unwrap();
        let _ = dev.process(0, &mut queue, &f.mem);
        answered += u64::from(vq.used().idx().load());
    }
    assert_eq!(std::fs::metadata(&f.path).unwrap().len(), 8192);
    // The test reaches the device, not only the ring checks in front of it.
    assert!(answered > 5000, "only {answered} requests answered");
}

/// A 1 KiB read into two writable buffers, the second at `second`; returns what each got.
fn read_into_two_buffers(mem: &GuestMemoryMmap, dev: &mut Block, second: u64) -> (u8, u32, Vec<u8>) {
    let mut header = [0u8; 16];
    header[0..4].copy_from_slice(&T_IN.to_le_bytes());
    header[8..16].copy_from_slice(&1u64.to_le_bytes());
    mem.write_slice(&header, GuestAddress(HEADER)).unwrap();
    let vq = MockSplitQueue::new(mem, 16);
    vq.build_desc_chain(&[
        RawDescriptor::from(Descriptor::new(HEADER, 16, NEXT, 1)),
        RawDescriptor::from(Descriptor::new(DATA, 300, WRITE | NEXT, 2)),
        RawDescriptor::from(Descriptor::new(second, 724, WRITE | NEXT, 3)),
        RawDescriptor::from(Descriptor::new(STATUS, 1, WRITE, 0)),
    ])
    .unwrap();
    let mut queue: Queue = vq.create_queue().unwrap();
    assert!(dev.process(0, &mut queue, mem).unwrap());
    let used = vq.used().ring().ref_at(0).unwrap().load().len();
    let mut got = vec![0u8; 1024];
    mem.read_slice(&mut got[..300], GuestAddress(DATA)).unwrap();
    mem.read_slice(&mut got[300..], GuestAddress(second)).unwrap();
    (mem.read_obj(GuestAddress(STATUS)).unwrap(), used, got)
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 256) as u8).collect()
}

#[test]
fn reads_land_straight_in_guest_buffers_split_anywhere() {
    let image = pattern(8192);
    let f = Fixture::new("direct", &image);
    let mut dev = f.device(true);
    let (status, used, got) = read_into_two_buffers(&f.mem, &mut dev, 0x4_0000);
    assert_eq!((status, used), (S_OK, 1025));
    assert_eq!(got, image[512..1536]);
}

#[test]
fn a_buffer_across_two_memory_regions_is_still_read_right() {
    let image = pattern(8192);
    let f = Fixture::new("seam", &image);
    // Two regions adjacent for the guest, as RAM and the ROM window are; the second buffer
    // straddles them, so the device copies instead of reading into guest memory directly.
    let mem =
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x8_0000), (GuestAddress(0x8_0000), 0x8_0000)])
            .unwrap();
    let mut dev = f.device(true);
    let (status, used, got) = read_into_two_buffers(&mem, &mut dev, 0x8_0000 - 100);
    assert_eq!((status, used), (S_OK, 1025));
    assert_eq!(got, image[512..1536]);
}

/// A 1 KiB write from two readable buffers: the header and the first 300 bytes share one
/// descriptor (as a driver may lay them out), the other 724 bytes are at `second`.
fn write_from_two_buffers(mem: &GuestMemoryMmap, dev: &mut Block, second: u64, data: &[u8]) -> (u8, u32) {
    let mut header = [0u8; 16];
    header[0..4].copy_from_slice(&T_OUT.to_le_bytes());
    header[8..16].copy_from_slice(&1u64.to_le_bytes());
    mem.write_slice(&header, GuestAddress(HEADER)).unwrap();
    mem.write_slice(&data[..300], GuestAddress(HEADER + 16)).unwrap();
    mem.write_slice(&data[300..], GuestAddress(second)).unwrap();
    let vq = MockSplitQueue::new(mem, 16);
    vq.build_desc_chain(&[
        RawDescriptor::from(Descriptor::new(HEADER, 316, NEXT, 1)),
        RawDescriptor::from(Descriptor::new(second, 724, NEXT, 2)),
        RawDescriptor::from(Descriptor::new(STATUS, 1, WRITE, 0)),
    ])
    .unwrap();
    let mut queue: Queue = vq.create_queue().unwrap();
    assert!(dev.process(0, &mut queue, mem).unwrap());
    let used = vq.used().ring().ref_at(0).unwrap().load().len();
    (mem.read_obj(GuestAddress(STATUS)).unwrap(), used)
}

/// Counts how the device writes to a raw file: from guest memory, or through its copy.
struct CountingDisk {
    inner: RawFile,
    direct: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Disk for CountingDisk {
    fn size(&self) -> u64 {
        self.inner.size()
    }
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&mut self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.inner.write_at(buf, offset)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
    fn discard(&mut self, offset: u64, len: u64) -> std::io::Result<()> {
        self.inner.discard(offset, len)
    }
    fn write_zeroes(&mut self, offset: u64, len: u64) -> std::io::Result<()> {
        self.inner.write_zeroes(offset, len)
    }
    fn write_from(&mut self, bufs: &[VolatileSlice<'_>], offset: u64) -> std::io::Result<bool> {
        self.direct.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.write_from(bufs, offset)
    }
}

fn counting_device(f: &Fixture) -> (Block, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let drive = Drive {
        file: f.path.clone(),
        ..Drive::default()
    };
    let direct = std::sync::Arc::default();
    let disk = CountingDisk {
        inner: RawFile::open(&drive).unwrap(),
        direct: std::sync::Arc::clone(&direct),
    };
    (Block::new(Box::new(disk), false, "minnow-disk-0"), direct)
}

#[test]
fn writes_go_straight_from_guest_buffers_split_anywhere() {
    let f = Fixture::new("direct-write", &[0u8; 4096]);
    let (mut dev, direct) = counting_device(&f);
    let data = pattern(1024);
    assert_eq!(
        write_from_two_buffers(&f.mem, &mut dev, 0x4_0000, &data),
        (S_OK, 1)
    );
    assert_eq!(
        direct.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "pwritev, no copy"
    );
    let file = std::fs::read(&f.path).unwrap();
    assert_eq!(&file[512..1536], &data[..]);
    assert!(
        file[..512].iter().chain(&file[1536..]).all(|&b| b == 0),
        "nothing else written"
    );
}

#[test]
fn a_write_across_two_memory_regions_is_copied_and_still_right() {
    let f = Fixture::new("seam-write", &[0u8; 4096]);
    let mem =
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x8_0000), (GuestAddress(0x8_0000), 0x8_0000)])
            .unwrap();
    let (mut dev, direct) = counting_device(&f);
    let data = pattern(1024);
    assert_eq!(
        write_from_two_buffers(&mem, &mut dev, 0x8_0000 - 100, &data),
        (S_OK, 1)
    );
    assert_eq!(direct.load(std::sync::atomic::Ordering::Relaxed), 0, "copied");
    assert_eq!(&std::fs::read(&f.path).unwrap()[512..1536], &data[..]);
}

/// A request larger than the device serves fails whole: it used to be cut to 16 MiB and
/// reported done, the rest of the guest's buffer never read or written.
#[test]
fn a_request_over_the_transfer_limit_fails_instead_of_being_cut_short() {
    let len = MAX_TRANSFER as u64 + 4096;
    let image = std::env::temp_dir().join(format!("minnow-blk-large-{}", std::process::id()));
    std::fs::write(&image, vec![0u8; len as usize + 4096]).unwrap();
    let drive = Drive {
        file: image.clone(),
        locking: false,
        ..Drive::default()
    };
    let mut dev = Block::new(Box::new(RawFile::open(&drive).unwrap()), false, "big");
    // Guest memory for the whole buffer (mapped lazily: untouched pages cost nothing).
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x400_0000)]).unwrap();
    for (kind, writable) in [(T_IN, true), (T_OUT, false)] {
        let mut header = [0u8; 16];
        header[0..4].copy_from_slice(&kind.to_le_bytes());
        mem.write_slice(&header, GuestAddress(HEADER)).unwrap();
        mem.write_obj(0xFFu8, GuestAddress(STATUS)).unwrap();
        let vq = MockSplitQueue::new(&mem, 16);
        let flags = if writable { WRITE | NEXT } else { NEXT };
        vq.build_desc_chain(&[
            RawDescriptor::from(Descriptor::new(HEADER, 16, NEXT, 1)),
            RawDescriptor::from(Descriptor::new(0x100_0000, len as u32, flags, 2)),
            RawDescriptor::from(Descriptor::new(STATUS, 1, WRITE, 0)),
        ])
        .unwrap();
        let mut queue: Queue = vq.create_queue().unwrap();
        assert!(dev.process(0, &mut queue, &mem).unwrap());
        assert_eq!(
            mem.read_obj::<u8>(GuestAddress(STATUS)).unwrap(),
            S_IOERR,
            "type {kind}"
        );
    }
    std::fs::remove_file(image).unwrap();
}
