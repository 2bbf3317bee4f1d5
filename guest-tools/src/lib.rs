//! What the guest programs and the tests that read their output must agree on, and what the
//! small static programs of the test guests and the nested KVM host share.
pub mod qmp;
pub mod snapshot_bench;

/// The line the seed workload's `hello` prints on the console.
pub const SEED_GREETING: &str = "Hello from Minnow's seed workload: /usr/bin/hello on /dev/vda";
