use super::*;
use std::os::unix::net::UnixDatagram;
use virtio_queue::desc::{split::Descriptor, RawDescriptor};
use virtio_queue::mock::MockSplitQueue;
use vm_memory::{Bytes, GuestAddress};

fn setup() -> (Net, UnixDatagram, GuestMemoryMmap) {
    let (ours, host) = UnixDatagram::pair().unwrap();
    ours.set_nonblocking(true).unwrap();
    host.set_nonblocking(true).unwrap();
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
    (
        Net::new(
            Box::new(super::dgram::DgramFrames::connected(ours).unwrap()),
            DEFAULT_MAC,
            crate::runtime::guest_log::GuestLog::default(),
        ),
        host,
        mem,
    )
}

#[test]
fn a_transmitted_packet_leaves_without_its_header() {
    let (mut net, host, mem) = setup();
    let mut packet = vec![0u8; HEADER_LEN];
    packet.extend_from_slice(b"ethernet frame");
    mem.write_slice(&packet, GuestAddress(0x8000)).unwrap();
    let vq = MockSplitQueue::new(&mem, 16);
    vq.build_desc_chain(&[RawDescriptor::from(Descriptor::new(
        0x8000,
        packet.len() as u32,
        0,
        0,
    ))])
    .unwrap();
    let mut queue: Queue = vq.create_queue().unwrap();
    assert!(net.process(TX, &mut queue, &mem).unwrap());
    let mut got = [0u8; 64];
    let n = host.recv(&mut got).unwrap();
    assert_eq!(&got[..n], b"ethernet frame");
}

#[test]
fn a_frame_waits_for_a_receive_buffer_then_arrives_with_a_header() {
    let (mut net, host, mem) = setup();
    let mut queues = vec![Queue::new(256).unwrap(), Queue::new(256).unwrap()];
    // No receive buffers yet: the frame is held and the fd is no longer polled.
    host.send(b"incoming").unwrap();
    let vq = MockSplitQueue::new(&mem, 16);
    queues[RX] = vq.create_queue().unwrap();
    assert!(!net.handle_io(&mut queues, &mem).unwrap());
    assert!(net.io_fd().is_none(), "a held frame stops the polling");
    // The driver adds a buffer and notifies: the frame goes in.
    vq.build_desc_chain(&[RawDescriptor::from(Descriptor::new(0x9000, 2048, 2, 0))])
        .unwrap();
    assert!(net.process(RX, &mut queues[RX], &mem).unwrap());
    assert_eq!(
        vq.used().ring().ref_at(0).unwrap().load().len() as usize,
        HEADER_LEN + 8
    );
    let mut header = [0u8; HEADER_LEN];
    mem.read_slice(&mut header, GuestAddress(0x9000)).unwrap();
    assert_eq!(header[10], 1, "num_buffers");
    let mut frame = [0u8; 8];
    mem.read_slice(&mut frame, GuestAddress(0x9000 + HEADER_LEN as u64))
        .unwrap();
    assert_eq!(&frame, b"incoming");
    assert!(net.io_fd().is_some());
    let mut mac = [0u8; 6];
    net.read_config(0, &mut mac);
    assert_eq!(mac, DEFAULT_MAC);
}

/// A guest that sends nothing but headers floods nothing: a few lines, then one per interval,
/// and every one counted.
#[test]
fn a_flood_of_short_frames_is_logged_rate_limited_and_counted() {
    use crate::runtime::guest_log::{GuestLog, BURST};
    #[derive(Clone, Default)]
    struct Lines(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Lines {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let (ours, _host) = UnixDatagram::pair().unwrap();
    let lines = Lines::default();
    let log = GuestLog::new(Box::new(lines.clone()), Default::default());
    let mut net = Net::new(
        Box::new(super::dgram::DgramFrames::connected(ours).unwrap()),
        DEFAULT_MAC,
        log.clone(),
    );
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
    for _ in 0..200 {
        let vq = MockSplitQueue::new(&mem, 16);
        vq.build_desc_chain(&[RawDescriptor::from(Descriptor::new(0x8000, 4, 0, 0))])
            .unwrap();
        let mut queue: Queue = vq.create_queue().unwrap();
        assert!(net.process(TX, &mut queue, &mem).unwrap());
    }
    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    assert_eq!(text.lines().count(), BURST as usize, "{text}");
    assert_eq!(log.counts(), vec![("virtio-net short frame", 200)]);
}
