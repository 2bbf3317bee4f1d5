//! `cargo xtask <task>`: the single entry point for building the ROM, guest images and tests.
use clap::{Parser, Subcommand};
use std::path::PathBuf;

mod bench;
mod demo;
mod firmware;
mod fuzz;
mod guest;
mod kvm_unit_tests;
mod minnow_bin;
mod nested;
mod payloads;
mod seed_disk;
mod seed_kernel;
mod test;
mod third_party;
mod unprivileged;

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Minnow build tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Measure. Without an argument: VM start-up, launches per second and the boot matrix (every
    /// loader, both VMMs, every payload), written to bench/results/ with charts. `firmware`:
    /// instructions and device accesses from reset to kernel entry, for
    /// minnow.rom, qboot.rom and SeaBIOS on the same QEMU command line. `vmm`: VM start-to-exit
    /// time and peak RSS, minnow against QEMU. `monitor`: QMP round trip and stop/cont latency,
    /// minnow against QEMU. `sandbox`: start-to-exit and launches per second with and without
    /// the seccomp filters. `snapshot`: save, restore and clones against QEMU, on this host
    /// (`snapshot-host`) and in the nested KVM host (`snapshot-nested`). `nested`: real Linux boot times on the nested
    /// KVM host, every boot route and QEMU microvm. `disk`: virtio-blk throughput and IOPS in a
    /// guest on the nested KVM host, raw and qcow2, minnow against QEMU microvm and minnow
    /// without its filters. `net`: virtio-net throughput the same way, over a TAP and through
    /// passt.
    Bench {
        #[arg(value_parser = ["firmware", "vmm", "monitor", "sandbox", "snapshot", "snapshot-host", "snapshot-nested", "nested", "disk", "net"])]
        what: Option<String>,
    },
    /// Boot the in-tree hello guest with minnow, through minnow.rom and directly, and show the
    /// two boot timelines side by side.
    Demo {
        /// Boot Debian's cloud kernel instead, on a nested KVM host under QEMU TCG (for machines
        /// whose /dev/kvm cannot run Linux, like this project's CI).
        #[arg(long)]
        linux: bool,
        /// Boot Debian's cloud kernel instead, on this host's /dev/kvm (hardware virtualisation).
        #[arg(long, conflicts_with = "linux")]
        linux_host: bool,
    },
    /// Build the firmware ROM into target/firmware/minnow.rom.
    Firmware,
    /// Run each cargo-fuzz target (every device a guest can touch, qcow2 images, kernel images,
    /// the command line, QMP input) for a while and print executions and coverage; needs
    /// nightly. TARGETS picks some of them (all by default).
    Fuzz {
        targets: Vec<String>,
        #[arg(long, default_value_t = fuzz::CI_SECONDS)]
        seconds: u64,
        /// Ten minutes per target, for docs/fuzzing.md.
        #[arg(long, conflicts_with = "seconds")]
        long: bool,
    },
    /// Fetch and cache the Debian cloud kernel and build the busybox initramfs used by the tests.
    Guest,
    /// Boot real Linux and the payloads with a static minnow inside a nested KVM host (QEMU TCG
    /// emulating AMD SVM), and check what every guest reports. FILTER picks the cases whose name
    /// contains it, or one of its comma-separated parts.
    NestedTest {
        filter: Option<String>,
        /// Run each case QEMU can run again with QEMU as the L3 VMM in the same L2, and list the
        /// cases that fail on minnow only.
        #[arg(long)]
        control: bool,
        /// Keep a CPU-bound job running on one host core beside the nested host.
        #[arg(long)]
        load: bool,
        /// Run each chosen case N times, to measure how often it hangs.
        #[arg(long, default_value_t = 1)]
        repeat: usize,
    },
    /// kvm-unit-tests' x86 suite (pinned, from third_party/) with its own run_tests.sh on minnow
    /// and on QEMU 7.2's microvm, on this host's /dev/kvm; fails when a test that passes on QEMU
    /// does not pass on minnow. TESTS picks some (all by default).
    KvmUnitTests { tests: Vec<String> },
    /// Build the boot conformance payloads (multiboot 1 and 2, PVH, bzImage) into target/payloads/.
    Payloads,
    /// Build the seed workload's guest kernel (virtio-blk, virtio-mmio with command-line devices
    /// and ext4 built in) from Debian's linux-source; cached.
    SeedKernel,
    /// Fetch and cache the third-party systems the tests boot (memtest86+, iPXE, Xen) from
    /// Debian's packages.
    ThirdParty,
    /// Build everything the tests need, then run the whole test suite.
    Test {
        /// Extra arguments passed to `cargo test`.
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Bench { what } => match what.as_deref() {
            None => bench::all::run(),
            Some("vmm") => bench::vmm::run(),
            Some("monitor") => bench::monitor::run(),
            Some("sandbox") => bench::sandbox::run(),
            Some("snapshot") => bench::snapshot::run(),
            Some("snapshot-host") => bench::snapshot::run_host(),
            Some("snapshot-nested") => nested::bench_snapshot::run(),
            Some("nested") => nested::bench::run(),
            Some("disk") => nested::bench_disk::run(),
            Some("net") => nested::bench_net::run(),
            _ => bench::firmware::run(),
        },
        Task::Demo { linux, linux_host } => demo::run(linux, linux_host),
        Task::Fuzz {
            targets,
            seconds,
            long,
        } => fuzz::run(&targets, if long { fuzz::LONG_SECONDS } else { seconds }),
        Task::Firmware => firmware::build().map(|_| ()),
        Task::Guest => guest::prepare().map(|_| ()),
        Task::NestedTest {
            filter,
            control,
            load,
            repeat,
        } => nested::run(
            filter.as_deref(),
            nested::Options {
                control,
                load,
                repeat,
            },
        ),
        Task::KvmUnitTests { tests } => kvm_unit_tests::run(&tests),
        Task::Payloads => payloads::build().map(|_| ()),
        Task::SeedKernel => seed_kernel::build().map(|_| ()),
        Task::Test { args } => test::run(&args),
        Task::ThirdParty => third_party::prepare().map(|_| ()),
    }
}

/// The workspace root (xtask lives one level below it).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits inside the workspace")
        .to_path_buf()
}
