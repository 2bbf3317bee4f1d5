//! The boot matrix: every loader (minnow.rom, qboot.rom, SeaBIOS, direct boot) × both VMMs
//! (minnow, QEMU microvm, each on this machine's /dev/kvm) × every payload format, run in rounds
//! (each configuration once per round) so drift hits all alike.
//!
//! Each run: exec to the first byte the guest writes to COM1, and to the exit (the payload exits
//! through isa-debug-exit right after its report). For minnow, also its `-boot-timeline` phases.
use super::vmm::stats;
use anyhow::{bail, Context, Result};
use minnow_tests::payload_check::{
    cmdline, initrd_bytes, not_supported, Loader, Payload, Route, DEBUG_EXIT_DEVICE,
};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ROUNDS: usize = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vmm {
    Minnow,
    Qemu,
}

impl Vmm {
    pub fn name(self) -> &'static str {
        match self {
            Vmm::Minnow => "minnow",
            Vmm::Qemu => "QEMU microvm",
        }
    }
}

pub fn loader_name(l: Loader) -> &'static str {
    match l {
        Loader::MinnowRom => "minnow.rom",
        Loader::Qboot => "qboot.rom",
        Loader::SeaBios => "SeaBIOS",
        Loader::Direct => "direct boot",
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Config {
    pub vmm: Vmm,
    pub loader: Loader,
    pub payload: Payload,
    pub route: Route,
}

impl Config {
    pub fn label(&self) -> String {
        format!("{} + {}", self.vmm.name(), loader_name(self.loader))
    }
}

/// A configuration's runs.
pub struct Row {
    pub config: Config,
    /// ms: exec to first guest output, and to exit.
    pub first_output: Vec<f64>,
    pub exit: Vec<f64>,
    /// minnow only: (event, ms since exec) of each run's timeline.
    pub phases: Vec<Vec<(String, f64)>>,
}

impl Row {
    pub fn median_exit(&self) -> f64 {
        stats(self.exit.clone()).0
    }

    /// The median time of each timeline event, in the order of the first run.
    pub fn median_phases(&self) -> Vec<(String, f64)> {
        let Some(first) = self.phases.first() else {
            return Vec::new();
        };
        first
            .iter()
            .map(|(event, _)| {
                let times: Vec<f64> = self
                    .phases
                    .iter()
                    .filter_map(|p| p.iter().find(|(e, _)| e == event).map(|(_, t)| *t))
                    .collect();
                (event.clone(), stats(times).0)
            })
            .collect()
    }
}

/// The configurations this machine can run, and the ones it cannot with why.
pub fn configs() -> (Vec<Config>, Vec<(Config, &'static str)>) {
    let (mut run, mut skip) = (Vec::new(), Vec::new());
    for payload in [
        Payload::Pvh,
        Payload::BzImage,
        Payload::Multiboot1,
        Payload::Multiboot2,
    ] {
        let route = if payload == Payload::Multiboot2 {
            Route::FwCfg
        } else {
            Route::Kernel
        };
        for vmm in [Vmm::Minnow, Vmm::Qemu] {
            for loader in [Loader::MinnowRom, Loader::Qboot, Loader::SeaBios, Loader::Direct] {
                let c = Config {
                    vmm,
                    loader,
                    payload,
                    route,
                };
                let why = match (vmm, loader) {
                    (Vmm::Qemu, Loader::Direct) => {
                        Some("QEMU's microvm always runs a firmware (its -kernel goes through qboot)")
                    }
                    _ => not_supported(loader, route, payload),
                };
                match why {
                    Some(w) => skip.push((c, w)),
                    None => run.push(c),
                }
            }
        }
    }
    (run, skip)
}

pub struct Inputs {
    pub minnow: PathBuf,
    pub payloads: PathBuf,
    pub rom: PathBuf,
    pub work: PathBuf,
}

fn command(i: &Inputs, c: &Config, initrd: &Path, timeline: &Path) -> Command {
    let mut cmd = match c.vmm {
        Vmm::Minnow => {
            let mut m = Command::new(&i.minnow);
            m.args(["-M", "microvm"])
                .arg(format!("-boot-timeline=json:{}", timeline.display()));
            m
        }
        Vmm::Qemu => {
            let mut q = Command::new("qemu-system-x86_64");
            // SeaBIOS boots -kernel only through QEMU's option ROMs; the others load it.
            let machine = match c.loader {
                Loader::SeaBios => "microvm,accel=kvm",
                _ => "microvm,accel=kvm,x-option-roms=off",
            };
            q.args(["-M", machine, "-no-user-config", "-display", "none"]);
            q
        }
    };
    cmd.args(["-m", "128M", "-smp", "1", "-nodefaults", "-serial", "stdio"])
        .args(["-device", DEBUG_EXIT_DEVICE]);
    match c.loader {
        Loader::MinnowRom => cmd.arg("-bios").arg(&i.rom),
        Loader::Qboot => cmd.args(["-bios", minnow_tests::QBOOT_ROM]),
        Loader::SeaBios => cmd.args(["-bios", minnow_tests::SEABIOS_MICROVM_ROM]),
        Loader::Direct => cmd.args(["-bios", "none"]),
    };
    let kernel = i.payloads.join(c.payload.file());
    let line = cmdline("bench");
    match c.route {
        Route::Kernel => {
            cmd.arg("-kernel")
                .arg(&kernel)
                .arg("-initrd")
                .arg(initrd)
                .arg("-append")
                .arg(&line);
        }
        Route::FwCfg => {
            cmd.arg("-fw_cfg")
                .arg(format!("name=opt/org.minnow/kernel,file={}", kernel.display()))
                .arg("-fw_cfg")
                .arg(format!("name=opt/org.minnow/initrd,file={}", initrd.display()));
        }
    }
    cmd
}

/// One boot: (exec to first output, exec to exit), in ms.
fn boot(mut cmd: Command) -> Result<(f64, f64)> {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut out = child.stdout.take().context("stdout")?;
    let mut first = [0u8; 1];
    let got = out.read(&mut first)?;
    let first_output = start.elapsed();
    let mut rest = first[..got].to_vec();
    out.read_to_end(&mut rest)?;
    let status = child.wait()?;
    let exit = start.elapsed();
    let text = String::from_utf8_lossy(&rest);
    // 33: the payload passed; 35: it failed, as qboot's known deviations make it.
    if got == 0
        || !text.contains(minnow_tests::payload_report::PREFIX)
        || !matches!(status.code(), Some(33 | 35))
    {
        bail!("no payload report, or exit status {status}");
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    Ok((ms(first_output), ms(exit)))
}

fn read_phases(path: &Path) -> Result<Vec<(String, f64)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text).context("parsing the boot timeline")?;
    Ok(v["phases"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    (
                        p["event"].as_str().unwrap_or("?").to_string(),
                        p["at_ms"].as_f64().unwrap_or(f64::NAN),
                    )
                })
                .collect()
        })
        .unwrap_or_default())
}

pub fn measure(i: &Inputs) -> Result<Vec<Row>> {
    let (configs, _) = configs();
    let initrd = i.work.join("bench-initrd.bin");
    std::fs::write(&initrd, initrd_bytes())?;
    let timeline = i.work.join("bench-timeline.json");
    let mut rows: Vec<Row> = configs
        .iter()
        .map(|c| Row {
            config: *c,
            first_output: vec![],
            exit: vec![],
            phases: vec![],
        })
        .collect();
    for round in 0..ROUNDS {
        for (n, row) in rows.iter_mut().enumerate() {
            eprint!(
                "\r[bench] matrix round {}/{ROUNDS}, {}/{}   ",
                round + 1,
                n + 1,
                configs.len()
            );
            let c = row.config;
            let (first, exit) = boot(command(i, &c, &initrd, &timeline))
                .with_context(|| format!("{} with {}", c.label(), c.payload.file()))?;
            row.first_output.push(first);
            row.exit.push(exit);
            if c.vmm == Vmm::Minnow {
                row.phases.push(read_phases(&timeline)?);
            }
        }
    }
    eprintln!();
    Ok(rows)
}

pub fn table(rows: &[Row]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nBoot matrix on this machine's /dev/kvm, -m 128M -smp 1, {ROUNDS} rounds (median (min-max), ms; \
         ratio: exec-to-exit against QEMU + qboot.rom with the same payload):\n"
    );
    let _ = writeln!(
        out,
        "| payload | VMM + loader | exec to first output | exec to exit | vs QEMU + qboot |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|");
    for r in rows {
        let reference = rows
            .iter()
            .find(|x| {
                x.config.payload == r.config.payload
                    && x.config.vmm == Vmm::Qemu
                    && x.config.loader == Loader::Qboot
            })
            .map(Row::median_exit);
        let (f, fl, fh) = stats(r.first_output.clone());
        let (e, el, eh) = stats(r.exit.clone());
        let ratio = reference.map_or("-".into(), |q| format!("{:.2}x", q / e));
        let _ = writeln!(
            out,
            "| {} | {} | {f:.1} ({fl:.1}-{fh:.1}) | {e:.1} ({el:.1}-{eh:.1}) | {ratio} |",
            r.config.payload.file(),
            r.config.label()
        );
    }
    let (_, skipped) = configs();
    let _ = writeln!(out);
    for (c, why) in skipped {
        let _ = writeln!(
            out,
            "- not supported: {} with {}: {why}",
            c.label(),
            c.payload.file()
        );
    }
    out
}
