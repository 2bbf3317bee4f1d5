//! What a `-netdev stream` peer (passt, or whatever listens where minnow connects) sends:
//! any bytes, arriving in any pieces. Framing them must give frames of at most MAX_FRAME bytes
//! or take the link down, never panic, loop or grow without bound.
#![no_main]
use libfuzzer_sys::fuzz_target;
use minnow_vmm::devices::virtio::net::stream::{StreamFrames, MAX_FRAME};
use minnow_vmm::devices::virtio::net::tap::FrameIo;
use std::io::Write;
use std::os::unix::net::UnixStream;

fuzz_target!(|data: &[u8]| {
    let Some((&piece, mut rest)) = data.split_first() else {
        return;
    };
    let piece = usize::from(piece).max(1) * 97;
    let (ours, mut peer) = UnixStream::pair().expect("a socket pair");
    let Ok(mut frames) = StreamFrames::new(ours, "-netdev fuzz") else {
        return;
    };
    let mut buf = vec![0u8; MAX_FRAME];
    while !rest.is_empty() {
        let n = piece.min(rest.len());
        if peer.write_all(&rest[..n]).is_err() {
            break;
        }
        rest = &rest[n..];
        while let Ok(len) = frames.recv(&mut buf) {
            assert!(len <= MAX_FRAME);
        }
        if frames.fd().is_none() {
            break;
        }
    }
});
