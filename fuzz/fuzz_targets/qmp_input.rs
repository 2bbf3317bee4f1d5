//! What a QMP client sends is anything: the input, cut into writes where its bytes say, goes
//! through the monitor's framer and request checks as a client's bytes do. Nothing may panic, an
//! unfinished value may not grow past its limit, and every value becomes a request or QEMU's
//! error.
#![no_main]
use libfuzzer_sys::fuzz_target;
use minnow_vmm::monitor::qmp::{parse_request, Framer, MAX_INPUT};

fuzz_target!(|data: &[u8]| {
    let mut framer = Framer::default();
    // Each chunk: a length byte, then that many bytes.
    let mut rest = data;
    while let [len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        framer.push(&tail[..n]);
        rest = &tail[n..];
        while let Some(value) = framer.next_value() {
            if let Ok(v) = value {
                let _ = parse_request(v);
            }
        }
        assert!(
            framer.pending() <= MAX_INPUT + 255,
            "{} bytes held",
            framer.pending()
        );
    }
});
