//! What the guest programs and the tests that read their output must agree on.

/// The line the seed workload's `hello` prints on the console.
pub const SEED_GREETING: &str = "Hello from Minnow's seed workload: /usr/bin/hello on /dev/vda";
