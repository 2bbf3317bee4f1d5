//! A `minnow` process under test: its serial log in a file, its QMP socket, its stderr piped;
//! killed if the test ends first.
use super::qmp::Qmp;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Vm {
    child: Child,
    qmp: PathBuf,
    serial: PathBuf,
}

impl Vm {
    /// `minnow -m 32M -nodefaults` with `args`, COM1 to `<group>-<name>.serial` and QMP on
    /// `<group>-<name>.qmp` (temporary paths), and `env` added to its environment.
    pub fn launch(group: &str, name: &str, args: &[&str], env: &[(&str, &Path)]) -> Vm {
        let qmp = super::temp(group, &format!("{name}.qmp"));
        let serial = super::temp(group, &format!("{name}.serial"));
        let child = Command::new(env!("CARGO_BIN_EXE_minnow"))
            .args(["-m", "32M", "-nodefaults"])
            .args(args)
            .arg("-serial")
            .arg(format!("file:{}", serial.display()))
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", qmp.display()))
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("minnow runs");
        Vm { child, qmp, serial }
    }

    pub fn monitor(&self) -> Qmp {
        Qmp::negotiated(&self.qmp)
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.serial).unwrap_or_default()
    }

    /// Waits until the guest has written `n` bytes.
    pub fn wait_for_output(&self, n: usize) -> String {
        self.wait_until(Duration::from_secs(20), |out| out.len() >= n)
    }

    /// Waits up to `within` until the guest has written `text`.
    pub fn wait_for_text(&self, text: &str, within: Duration) -> String {
        self.wait_until(within, |out| out.contains(text))
    }

    fn wait_until(&self, within: Duration, done: impl Fn(&str) -> bool) -> String {
        let until = Instant::now() + within;
        loop {
            let out = self.output();
            if done(&out) {
                return out;
            }
            assert!(
                Instant::now() < until,
                "the guest wrote {out:?} in {} s",
                within.as_secs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `quit`, then minnow's stderr.
    pub fn quit(mut self, q: &mut Qmp) -> String {
        q.send(br#"{"execute":"quit"}"#);
        let _ = self.child.wait();
        self.stderr()
    }

    fn stderr(&mut self) -> String {
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        err
    }

    /// Waits (up to `within`) for minnow to end by itself: its status and stderr.
    pub fn ended_within(mut self, within: Duration) -> (Option<i32>, String) {
        let until = Instant::now() + within;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("waiting") {
                break s.code();
            }
            assert!(Instant::now() < until, "minnow did not end");
            std::thread::sleep(Duration::from_millis(20));
        };
        (status, self.stderr())
    }

    /// [`Vm::ended_within`] 20 s.
    pub fn ended(self) -> (Option<i32>, String) {
        self.ended_within(Duration::from_secs(20))
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.serial);
    }
}
