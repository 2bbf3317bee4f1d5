//! The monitors from a client's side, on the `minnow` binary: QMP's greeting, negotiation,
//! commands, errors and events; HMP over a Unix socket and telnet; and what bad clients do to
//! them (garbage, a 10 MiB line, deep nesting, leaving in the middle, a hundred coming and going
//! while the guest runs): each gets QEMU's error or a closed connection, the VM and the other
//! clients carry on. The guest is a few real-mode instructions in a ROM.
mod common;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn temp(name: &str) -> PathBuf {
    common::temp("monitor", name)
}

fn rom(name: &str, code: &[u8]) -> PathBuf {
    common::rom_file("monitor", name, code)
}

use common::HALT;

struct Vm {
    child: Child,
    rom: PathBuf,
}

impl Vm {
    fn start(name: &str, code: &[u8], args: &[&str]) -> Vm {
        let rom = rom(name, code);
        let child = Command::new(env!("CARGO_BIN_EXE_minnow"))
            .args(["-M", "microvm,acpi=on", "-m", "16M", "-serial", "none", "-bios"])
            .arg(&rom)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("minnow runs");
        Vm { child, rom }
    }

    /// Waits for minnow to end; its status.
    fn wait(&mut self, limit: Duration) -> Option<i32> {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if let Some(s) = self.child.try_wait().expect("waiting for minnow") {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.rom);
    }
}

use common::qmp::{connect, event, Qmp};

#[test]
fn qmp_speaks_as_qemu_7_2_does() {
    let sock = temp("qmp.sock");
    let _vm = Vm::start(
        "qmp",
        &HALT,
        &[
            "-name",
            "vm1",
            "-qmp",
            &format!("unix:{},server=on,wait=off", sock.display()),
        ],
    );
    let (mut q, greeting) = Qmp::connect(&sock);
    assert_eq!(
        greeting,
        r#"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "minnow 0.1.0"}, "capabilities": []}}"#
    );
    assert_eq!(
        q.call(r#"{"execute":"query-status"}"#),
        [
            r#"{"error": {"class": "CommandNotFound", "desc": "Expecting capabilities negotiation with 'qmp_capabilities'"}}"#
        ]
    );
    assert_eq!(q.call(r#"{"execute":"qmp_capabilities"}"#), [r#"{"return": {}}"#]);
    assert_eq!(
        q.call(r#"{"execute":"query-status","id":"x1"}"#),
        [r#"{"return": {"status": "running", "singlestep": false, "running": true}, "id": "x1"}"#]
    );
    assert_eq!(
        q.call(r#"{"execute":"query-name"}"#),
        [r#"{"return": {"name": "vm1"}}"#]
    );
    assert_eq!(
        q.call(r#"{"execute":"query-kvm"}"#),
        [r#"{"return": {"enabled": true, "present": true}}"#]
    );
    // Two commands in one write, and one split over three.
    q.send(br#"{"execute":"query-name"} {"execute":"query-kvm"}"#);
    assert_eq!(q.line(), r#"{"return": {"name": "vm1"}}"#);
    assert_eq!(q.line(), r#"{"return": {"enabled": true, "present": true}}"#);
    q.send(br#"{"exec"#);
    std::thread::sleep(Duration::from_millis(50));
    q.send(br#"ute":"query-n"#);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(q.call(r#"ame"}"#), [r#"{"return": {"name": "vm1"}}"#]);
    let stop = q.call(r#"{"execute":"stop"}"#);
    assert_eq!(stop.len(), 2, "the STOP event, then the reply: {stop:?}");
    assert_eq!(event(&stop[0]), r#""event": "STOP"}"#);
    assert_eq!(
        q.call(r#"{"execute":"query-status"}"#),
        [r#"{"return": {"status": "paused", "singlestep": false, "running": false}}"#]
    );
    let cont = q.call(r#"{"execute":"cont"}"#);
    assert_eq!(event(&cont[0]), r#""event": "RESUME"}"#);
    let reset = q.call(r#"{"execute":"system_reset"}"#);
    assert_eq!(
        event(&reset[0]),
        r#""event": "RESET", "data": {"guest": false, "reason": "host-qmp-system-reset"}}"#
    );
    let hmp = q.call(r#"{"execute":"human-monitor-command","arguments":{"command-line":"info status"}}"#);
    assert_eq!(hmp, [r#"{"return": "VM status: running\r\n"}"#]);
    assert_eq!(q.call(r#"{"execute":"quit"}"#), [r#"{"return": {}}"#]);
    assert_eq!(
        event(&q.line()),
        r#""event": "SHUTDOWN", "data": {"guest": false, "reason": "host-qmp-quit"}}"#
    );
}

#[test]
fn bad_input_gets_qemus_errors_and_the_vm_carries_on() {
    let sock = temp("bad.sock");
    let mut vm = Vm::start(
        "bad",
        &HALT,
        &["-qmp", &format!("unix:{},server,nowait", sock.display())],
    );
    let mut q = Qmp::negotiated(&sock);
    for (input, reply) in [
        (
            "[1, 2]",
            r#"{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}"#,
        ),
        (
            r#"{"foo": 1}"#,
            r#"{"error": {"class": "GenericError", "desc": "QMP input member 'foo' is unexpected"}}"#,
        ),
        (
            r#"{"execute": 5}"#,
            r#"{"error": {"class": "GenericError", "desc": "QMP input member 'execute' must be a string"}}"#,
        ),
        (
            r#"{"execute": "stop", "arguments": {"x": 1}}"#,
            r#"{"error": {"class": "GenericError", "desc": "Parameter 'x' is unexpected"}}"#,
        ),
        (
            r#"{"execute": "nope"}"#,
            r#"{"error": {"class": "CommandNotFound", "desc": "The command nope has not been found"}}"#,
        ),
        (
            r#"{"execute": "human-monitor-command", "arguments": {"command-line": 7}}"#,
            r#"{"error": {"class": "GenericError", "desc": "Invalid parameter type for 'command-line', expected: string"}}"#,
        ),
    ] {
        assert_eq!(q.call(input), [reply], "{input}");
    }
    let garbage = q.call("garbage");
    assert!(
        garbage[0].starts_with(r#"{"error": {"class": "GenericError", "desc": "JSON parse error"#),
        "{garbage:?}"
    );
    // Nesting deeper than any command needs.
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(q.call(&deep)[0].contains("GenericError"));
    // A 10 MiB object that never ends: refused, the connection stays usable.
    let big = format!(r#"{{"execute": "query-status", "id": "{}"#, "x".repeat(10 << 20));
    let _ = q.writer.write_all(big.as_bytes());
    let reply = q.line();
    assert!(
        reply.contains("JSON parse error"),
        "{}",
        &reply[..reply.len().min(200)]
    );
    // A client that leaves in the middle of a command, and a hundred that come and go.
    drop(q);
    {
        let mut half = Qmp::negotiated(&sock.clone());
        half.send(br#"{"execute": "sto"#);
    }
    for _ in 0..100 {
        let (mut c, greeting) = Qmp::connect(&sock);
        assert!(greeting.starts_with(r#"{"QMP": "#));
        c.send(br#"{"execute":"qmp_capabilities"}"#);
    }
    let mut q = Qmp::negotiated(&sock);
    assert_eq!(
        q.call(r#"{"execute":"query-status"}"#),
        [r#"{"return": {"status": "running", "singlestep": false, "running": true}}"#]
    );
    assert_eq!(
        vm.wait(Duration::from_millis(10)),
        None,
        "minnow is still running"
    );
}

#[test]
fn one_client_at_a_time_the_next_waits_its_turn() {
    let sock = temp("turns.sock");
    let _vm = Vm::start(
        "turns",
        &HALT,
        &["-qmp", &format!("unix:{},server=on,wait=off", sock.display())],
    );
    let first = Qmp::negotiated(&sock);
    let mut second = connect(&sock);
    second.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut buf = [0u8; 64];
    assert!(
        second.read(&mut buf).is_err(),
        "the second client heard from the monitor while the first was there"
    );
    drop(first);
    second.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let n = second.read(&mut buf).expect("the greeting, once the first left");
    assert!(buf[..n].starts_with(b"{\"QMP\": "));
}

/// Under `-no-reboot -no-shutdown` a guest's reset (here through the keyboard controller) stops
/// the VM in the `shutdown` state with QEMU's events, and minnow waits for its monitor.
#[test]
fn no_shutdown_keeps_a_shut_down_vm_and_its_monitor() {
    let sock = temp("noshut.sock");
    // out 0x64, 0xfe: reset, which -no-reboot turns into the end.
    let reset = [0xB0, 0xFE, 0xE6, 0x64, 0xF4];
    let mut vm = Vm::start(
        "noshut",
        &reset,
        &[
            "-S",
            "-no-reboot",
            "-no-shutdown",
            "-qmp",
            &format!("unix:{},server=on,wait=off", sock.display()),
        ],
    );
    let mut q = Qmp::negotiated(&sock);
    assert!(q.call(r#"{"execute":"query-status"}"#)[0].contains("\"prelaunch\""));
    let cont = q.call(r#"{"execute":"cont"}"#);
    assert_eq!(event(&cont[0]), r#""event": "RESUME"}"#);
    assert_eq!(
        event(&q.line()),
        r#""event": "SHUTDOWN", "data": {"guest": true, "reason": "guest-reset"}}"#
    );
    assert_eq!(event(&q.line()), r#""event": "STOP"}"#);
    assert!(q.call(r#"{"execute":"query-status"}"#)[0].contains("\"shutdown\""));
    assert_eq!(
        q.call(r#"{"execute":"cont"}"#),
        [r#"{"error": {"class": "GenericError", "desc": "Resetting the Virtual Machine is required"}}"#]
    );
    assert_eq!(vm.wait(Duration::from_millis(10)), None, "minnow waits");
    q.call(r#"{"execute":"quit"}"#);
    assert_eq!(vm.wait(Duration::from_secs(10)), Some(0));
}

/// A human monitor over a Unix socket and over telnet: banner, prompt, echo, QEMU's words.
#[test]
fn hmp_answers_people_over_a_unix_socket_and_telnet() {
    let sock = temp("hmp.sock");
    let port = 30_000 + (std::process::id() % 20_000) as u16;
    let mut vm = Vm::start(
        "hmp",
        &HALT,
        &[
            "-S",
            "-monitor",
            &format!("unix:{},server,nowait", sock.display()),
            "-monitor",
            &format!("telnet:127.0.0.1:{port},server,nowait"),
        ],
    );
    let mut unix = connect(&sock);
    let mut said = String::new();
    let read_until_prompt = |s: &mut dyn Read, said: &mut String| {
        said.clear();
        let mut buf = [0u8; 1];
        while !said.ends_with("(qemu) ") {
            let n = s.read(&mut buf).expect("the monitor writes");
            assert!(n > 0, "the monitor closed: {said:?}");
            said.push(char::from(buf[0]));
        }
    };
    read_until_prompt(&mut unix, &mut said);
    assert!(said.starts_with("QEMU 7.2.0 monitor"), "{said:?}");
    unix.write_all(b"info status\r\n").unwrap();
    read_until_prompt(&mut unix, &mut said);
    assert_eq!(said, "info status\r\nVM status: paused (prelaunch)\r\n(qemu) ");
    unix.write_all(b"cont\ninfo status\n").unwrap();
    read_until_prompt(&mut unix, &mut said);
    read_until_prompt(&mut unix, &mut said);
    assert_eq!(said, "info status\r\nVM status: running\r\n(qemu) ");
    unix.write_all(b"bogus\n").unwrap();
    read_until_prompt(&mut unix, &mut said);
    assert_eq!(said, "bogus\r\nunknown command: 'bogus'\r\n(qemu) ");
    let mut telnet = std::net::TcpStream::connect(("127.0.0.1", port)).expect("the telnet monitor");
    telnet.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 1];
    while !raw.ends_with(b"(qemu) ") {
        telnet
            .read_exact(&mut buf)
            .expect("telnet negotiation and banner");
        raw.push(buf[0]);
    }
    assert!(
        raw.starts_with(&[0xFF, 0xFB, 0x01, 0xFF, 0xFB, 0x03]),
        "WILL ECHO, WILL SGA first"
    );
    // A telnet client's DO answers and CR NUL line end.
    telnet.write_all(&[0xFF, 0xFD, 0x01, 0xFF, 0xFD, 0x03]).unwrap();
    telnet.write_all(b"stop\r\0").unwrap();
    read_until_prompt(&mut telnet, &mut said);
    assert_eq!(said, "stop\r\n(qemu) ");
    unix.write_all(b"info status\r").unwrap();
    read_until_prompt(&mut unix, &mut said);
    assert_eq!(said, "info status\r\nVM status: paused\r\n(qemu) ");
    telnet.write_all(b"quit\r\n").unwrap();
    assert_eq!(vm.wait(Duration::from_secs(10)), Some(0));
}
