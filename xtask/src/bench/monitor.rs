//! `cargo xtask bench monitor`: what a QMP client waits for, minnow against QEMU's microvm, both
//! running the same halted ROM with a QMP socket, measured side by side in one run.
//!
//! - `query-status` round trip: from the request's write to its reply's last byte.
//! - `stop`: to its reply, which both send once no vCPU runs guest code; `cont`: to its reply.
//!
//! Rounds alternate between the VMMs (a batch of each per round) so drift on this shared
//! machine hits both alike. Also the host CPU time each VMM used while idle with a client
//! connected, over the same wall time: the cost of a VM nobody talks to.
use super::vmm::{stats, write_rom};
use anyhow::{bail, Context, Result};
use minnow_guest_tools::qmp::Qmp;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ROUNDS: usize = 10;
const QUERIES_PER_ROUND: usize = 50;
const STOPS_PER_ROUND: usize = 10;
const IDLE: Duration = Duration::from_secs(2);
/// `cli ; hlt ; jmp $-1`.
const HALT_AT_RESET: [u8; 4] = [0xFA, 0xF4, 0xEB, 0xFD];

struct Vmm {
    name: &'static str,
    child: Child,
    client: Qmp,
    query: Vec<f64>,
    stop: Vec<f64>,
    cont: Vec<f64>,
    idle_cpu_ms: f64,
}

/// Sends `request` on `qmp`; the time to its reply (events before it are read and kept).
fn timed(qmp: &mut Qmp, request: &str) -> Result<Duration> {
    let start = Instant::now();
    qmp.reply(request).map_err(anyhow::Error::msg)?;
    Ok(start.elapsed())
}

impl Vmm {
    fn start(name: &'static str, mut cmd: Command, socket: PathBuf) -> Result<Vmm> {
        let _ = std::fs::remove_file(&socket);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let wait = Duration::from_secs(10);
        let alive = || matches!(child.try_wait(), Ok(None));
        let client = Qmp::connect(&socket, wait, wait, alive, |_| {}).map_err(anyhow::Error::msg)?;
        Ok(Vmm {
            name,
            child,
            client,
            query: Vec::new(),
            stop: Vec::new(),
            cont: Vec::new(),
            idle_cpu_ms: 0.0,
        })
    }

    fn round(&mut self) -> Result<()> {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        for _ in 0..QUERIES_PER_ROUND {
            let d = timed(&mut self.client, r#"{"execute": "query-status"}"#)?;
            self.query.push(ms(d));
        }
        for _ in 0..STOPS_PER_ROUND {
            let d = timed(&mut self.client, r#"{"execute": "stop"}"#)?;
            self.stop.push(ms(d));
            let d = timed(&mut self.client, r#"{"execute": "cont"}"#)?;
            self.cont.push(ms(d));
        }
        Ok(())
    }

    /// utime + stime of the process, in ms.
    fn cpu_ms(&self) -> Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))?;
        let after_name = stat.rsplit_once(") ").context("/proc/PID/stat")?.1;
        let fields: Vec<&str> = after_name.split(' ').collect();
        let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
        // SAFETY: sysconf reads a constant of the system.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        Ok(ticks * 1e3 / hz)
    }

    fn quit(mut self) -> Result<Vmm> {
        // Its answer, or the connection closing, either way: the exit below is what counts.
        let _ = self.client.reply("quit");
        let until = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait()?.is_none() {
            if Instant::now() > until {
                let _ = self.child.kill();
                bail!("{} did not quit", self.name);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(self)
    }
}

/// `cargo xtask bench monitor`: measures and prints the table.
pub fn run() -> Result<()> {
    print!("{}", measure()?);
    Ok(())
}

/// Runs both VMMs side by side and returns the markdown table (`cargo xtask bench` adds it to
/// its results).
pub fn measure() -> Result<String> {
    let root = crate::workspace_root();
    let minnow_bin = super::vmm::build_minnow()?;
    let rom = write_rom(&root, "halt-at-reset.rom", &HALT_AT_RESET)?;
    let dir = root.join("target/bench");
    let (minnow_sock, qemu_sock) = (dir.join("minnow-qmp.sock"), dir.join("qemu-qmp.sock"));
    let qmp = |p: &Path| format!("unix:{},server=on,wait=off", p.display());
    let mut minnow_cmd = Command::new(&minnow_bin);
    minnow_cmd
        .args(["-M", "microvm", "-m", "128M", "-serial", "none", "-bios"])
        .arg(&rom)
        .args(["-qmp", &qmp(&minnow_sock)]);
    let mut qemu_cmd = Command::new("qemu-system-x86_64");
    qemu_cmd
        .args([
            "-M",
            "microvm,accel=kvm,x-option-roms=off",
            "-cpu",
            "host",
            "-m",
            "128M",
        ])
        .args(["-nodefaults", "-no-user-config", "-display", "none", "-bios"])
        .arg(&rom)
        .args(["-qmp", &qmp(&qemu_sock)]);
    let mut vmms = [
        Vmm::start("minnow", minnow_cmd, minnow_sock)?,
        Vmm::start("QEMU microvm", qemu_cmd, qemu_sock).context("apt-get install qemu-system-x86")?,
    ];
    for vmm in &mut vmms {
        let before = vmm.cpu_ms()?;
        std::thread::sleep(IDLE);
        vmm.idle_cpu_ms = vmm.cpu_ms()? - before;
    }
    for round in 0..ROUNDS {
        eprintln!("[bench] monitor round {}/{ROUNDS}", round + 1);
        for vmm in &mut vmms {
            vmm.round()?;
        }
    }
    let [minnow, qemu] = vmms;
    Ok(table(&minnow.quit()?, &qemu.quit()?))
}

fn table(minnow: &Vmm, qemu: &Vmm) -> String {
    use std::fmt::Write as _;
    let cell = |v: &[f64]| {
        let (m, lo, hi) = stats(v.to_vec());
        format!("{m:.3} ({lo:.3}-{hi:.3})")
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nQMP over a Unix socket, halted ROM, {} query-status and {} stop/cont per VMM, rounds \
         alternating (median (min-max), ms):\n",
        ROUNDS * QUERIES_PER_ROUND,
        ROUNDS * STOPS_PER_ROUND
    );
    let _ = writeln!(
        out,
        "| VMM | query-status round trip | stop | cont | idle host CPU, ms per {} s |",
        IDLE.as_secs()
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|");
    for v in [minnow, qemu] {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.0} |",
            v.name,
            cell(&v.query),
            cell(&v.stop),
            cell(&v.cont),
            v.idle_cpu_ms
        );
    }
    let ratio = |a: &[f64], b: &[f64]| stats(b.to_vec()).0 / stats(a.to_vec()).0;
    let _ = writeln!(
        out,
        "\nminnow vs QEMU (medians): query-status {:.1}x, stop {:.1}x, cont {:.1}x faster.",
        ratio(&minnow.query, &qemu.query),
        ratio(&minnow.stop, &qemu.stop),
        ratio(&minnow.cont, &qemu.cont)
    );
    out
}
