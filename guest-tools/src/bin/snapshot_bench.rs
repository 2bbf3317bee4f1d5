//! `snapshot-bench VARIANT SAVES RUNS CLONES FILL_MIB DIR -- MINNOW ARGS... -- QEMU ARGS...`:
//! the snapshot benchmark (VARIANT: minnow-file, minnow-exec, qemu-exec or all) inside the
//! nested KVM host (see `minnow_guest_tools::snapshot_bench`), on
//! the test initramfs's guest booted with `minnow.monitor` (a shell on its console). Before each
//! save the guest fills FILL_MIB of a tmpfs with random bytes, so the state holds that much
//! touched memory. Prints one `MINNOW-SNAPBENCH VARIANT METRIC VALUE` line per result as it
//! comes; exits 1 on the first failure, 2 on a usage mistake.
use minnow_guest_tools::snapshot_bench::{measure, Kind, Setup, Step, Vm};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str =
    "usage: snapshot-bench VARIANT SAVES RUNS CLONES FILL_MIB DIR -- MINNOW ARGS... -- QEMU ARGS...";

/// The longest wait for the nested host to be idle after a VM ends (see `Setup::settle`):
/// a restore that began within seconds of a 256 MiB source's end took 2 to 9 s to answer, and
/// froze L2 far more often; one that began 20 s later answered in about 1 s.
const SETTLE: Duration = Duration::from_secs(30);

fn step(ask: String, answer: &str, secs: u64) -> Step {
    Step {
        ask,
        answer: answer.into(),
        within: Duration::from_secs(secs),
    }
}

fn vm(kind: Kind, words: &[String]) -> Result<Vm, String> {
    let (program, args) = words.split_first().ok_or(USAGE)?;
    Ok(Vm {
        kind,
        program: program.into(),
        args: args.to_vec(),
    })
}

fn setup(args: &[String]) -> Result<(String, Setup), String> {
    let mut parts = args.split(|a| a == "--");
    let (Some(head), Some(minnow), Some(qemu), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(USAGE.into());
    };
    let [variant, saves, runs, clones, fill, dir] = head else {
        return Err(USAGE.into());
    };
    let number = |s: &str| {
        s.parse::<usize>()
            .map_err(|_| format!("{s:?} is not a count; {USAGE}"))
    };
    // The shell /init runs. Random bytes: nothing a VMM could skip or share. The '' keeps the
    // typed command from being its own answer.
    let fill_mib = number(fill)?;
    let fill = format!(
        "mkdir -p /fill && mount -t tmpfs -o size={}M fill /fill && dd if=/dev/urandom of=/fill/f bs=1M count={fill_mib} 2>/dev/null && echo MINNOW-FI''LLED",
        fill_mib + 8
    );
    let setup = Setup {
        minnow: vm(Kind::Minnow, minnow)?,
        qemu: vm(Kind::Qemu, qemu)?,
        prepare: vec![
            step(String::new(), "MINNOW-INIT shell=ready", 300),
            step(fill, "MINNOW-FILLED", 300),
        ],
        probe: step("echo MINNOW-ANS''WER".into(), "MINNOW-ANSWER", 300),
        saves: number(saves)?,
        runs: number(runs)?,
        clones: number(clones)?,
        dir: PathBuf::from(dir),
        settle: SETTLE,
    };
    Ok((variant.clone(), setup))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (variant, setup) = match setup(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("snapshot-bench: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = std::fs::create_dir_all(&setup.dir) {
        eprintln!("snapshot-bench: {}: {e}", setup.dir.display());
        return ExitCode::from(1);
    }
    let only: Vec<&str> = match variant.as_str() {
        "all" => vec![],
        one => vec![one],
    };
    // Where the host's kernel log is writable (the nested host makes it so), each result goes
    // there too: it reaches the console at once, where stdout is read only at the end.
    let mut kmsg = std::fs::OpenOptions::new().write(true).open("/dev/kmsg").ok();
    let result = measure(&setup, &only, |variant, metric, value| {
        let line = format!("MINNOW-SNAPBENCH {variant} {metric} {value:.3}");
        println!("{line}");
        if let Some(k) = kmsg.as_mut() {
            let _ = std::io::Write::write_all(k, format!("snapshot-bench: {line}\n").as_bytes());
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!("MINNOW-SNAPBENCH failed: {e}");
            eprintln!("snapshot-bench: {e}");
            ExitCode::from(1)
        }
    }
}
