//! The command line, as a user (or a script built from untrusted input) may write it: any
//! arguments, split at NUL bytes. Parsing must return a config or an error, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let args = String::from_utf8_lossy(data)
        .split('\0')
        .map(String::from)
        .collect::<Vec<_>>();
    let _ = minnow_vmm::config::parse(args);
});
