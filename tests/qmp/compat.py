#!/usr/bin/env python3
"""QEMU's own monitor clients against a running VM: PyPI's qemu.qmp (the async QMPClient and the
legacy QEMUMonitorProtocol), its qmp-shell (QMP and HMP modes), a raw socket for what the
libraries hide (negotiation, a JSON stream cut anywhere, timestamps), and HMP over telnet through
socat.

The same checks run against QEMU and against minnow, with the same command line: passing on
both is the proof that clients written for QEMU drive minnow unchanged.

    compat.py --vmm /usr/bin/qemu-system-x86_64
    compat.py --vmm target/debug/minnow

The guest is a ROM that halts with interrupts off, so it ignores the power button and never
ends by itself. Prints one line per check; exits 1 if any failed.
"""
import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from qemu.qmp import ExecuteError, QMPClient
from qemu.qmp.legacy import QEMUMonitorProtocol

# `cli; hlt; jmp $-1` at the reset vector of a 64 KiB ROM.
HALT_ROM = bytes([0xF4]) * 0xFFF0 + bytes([0xFA, 0xF4, 0xEB, 0xFD]) + bytes([0xF4]) * 12
NAME = "compat"
TIMEOUT = 10.0
COMMANDS = [
    "qmp_capabilities", "query-version", "query-commands", "query-status", "query-name",
    "query-kvm", "query-cpus-fast", "query-chardev", "stop", "cont", "system_reset",
    "system_powerdown", "quit", "human-monitor-command",
]


class CheckFailed(Exception):
    pass


def expect(what, got, want):
    if got != want:
        raise CheckFailed(f"{what}: got {got!r}, want {want!r}")


def expect_in(what, needle, haystack):
    if needle not in haystack:
        raise CheckFailed(f"{what}: {needle!r} not in {haystack!r}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Vm:
    """The VM under test: one QMP socket, one HMP telnet port, the halting ROM."""

    def __init__(self, vmm, workdir, name="qmp", extra=()):
        self.qmp_path = str(workdir / f"{name}.sock")
        self.hmp_port = free_port()
        rom = workdir / "halt.rom"
        rom.write_bytes(HALT_ROM)
        self.args = [
            vmm, "-M", "microvm,accel=kvm,acpi=on", "-cpu", "host", "-m", "16M",
            "-nodefaults", "-no-user-config", "-display", "none", "-serial", "none",
            "-bios", str(rom), "-name", f"guest={NAME}",
            "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
            "-monitor", f"telnet:127.0.0.1:{self.hmp_port},server=on,wait=off",
            *extra,
        ]
        self.vmm, self.workdir = vmm, workdir
        self.stderr = open(workdir / f"{name}.stderr", "w+")
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self.stderr)
        self.wait_for_socket()

    def wait_for_socket(self):
        until = time.monotonic() + TIMEOUT
        while time.monotonic() < until:
            if self.proc.poll() is not None:
                raise CheckFailed(f"the VM ended with {self.proc.returncode}: {self.log()}")
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(self.qmp_path)
                    s.recv(4096)  # the greeting; leaving frees the monitor for the next client
                return
            except OSError:
                time.sleep(0.05)
        raise CheckFailed(f"no QMP socket at {self.qmp_path} after {TIMEOUT} s")

    def log(self):
        self.stderr.seek(0)
        return self.stderr.read().strip()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.stderr.close()


async def next_event(listener, name):
    event = await asyncio.wait_for(listener.get(), TIMEOUT)
    expect("event", event["event"], name)
    return event


async def qmp_client_queries(vm):
    """QMPClient: the greeting and every query, as QEMU 7.2 answers them."""
    qmp = QMPClient("compat")
    await qmp.connect(vm.qmp_path)
    try:
        version = qmp.greeting.QMP.version["qemu"]
        expect("greeting version", (version["major"], version["minor"]), (7, 2))
        reply = await qmp.execute("query-version")
        expect("query-version", (reply["qemu"]["major"], reply["qemu"]["minor"]), (7, 2))
        expect("query-status", await qmp.execute("query-status"),
               {"status": "running", "singlestep": False, "running": True})
        expect("query-name", await qmp.execute("query-name"), {"name": NAME})
        expect("query-kvm", await qmp.execute("query-kvm"), {"enabled": True, "present": True})
        cpus = await qmp.execute("query-cpus-fast")
        expect("query-cpus-fast", [(c["cpu-index"], c["target"]) for c in cpus], [(0, "x86_64")])
        names = {c["name"] for c in await qmp.execute("query-commands")}
        expect("query-commands lacks", [c for c in COMMANDS if c not in names], [])
        chardevs = await qmp.execute("query-chardev")
        filenames = " ".join(c["filename"] for c in chardevs)
        expect_in("query-chardev", f"unix:{vm.qmp_path},server=on", filenames)
        expect_in("query-chardev", f"telnet:127.0.0.1:{vm.hmp_port},server=on", filenames)
    finally:
        await qmp.disconnect()


async def qmp_client_lifecycle(vm):
    """QMPClient: stop, cont, reset and the power button, each with its event and state."""
    qmp = QMPClient("compat")
    await qmp.connect(vm.qmp_path)
    try:
        with qmp.listener() as events:
            expect("stop", await qmp.execute("stop"), {})
            await next_event(events, "STOP")
            expect("query-status when stopped", await qmp.execute("query-status"),
                   {"status": "paused", "singlestep": False, "running": False})
            expect("stop when stopped", await qmp.execute("stop"), {})
            expect("cont", await qmp.execute("cont"), {})
            await next_event(events, "RESUME")
            expect("system_reset", await qmp.execute("system_reset"), {})
            reset = await next_event(events, "RESET")
            expect("RESET data", reset["data"], {"guest": False, "reason": "host-qmp-system-reset"})
            expect("system_powerdown", await qmp.execute("system_powerdown"), {})
            await next_event(events, "POWERDOWN")
            expect("after the power button", (await qmp.execute("query-status"))["status"],
                   "running")
    finally:
        await qmp.disconnect()


async def qmp_client_errors(vm):
    """QMPClient: QEMU's error classes and words, and HMP through human-monitor-command."""
    qmp = QMPClient("compat")
    await qmp.connect(vm.qmp_path)
    try:
        cases = [
            ("no-such-command", None, "CommandNotFound", "The command no-such-command has not been found"),
            ("query-status", {"verbose": True}, "GenericError", "Parameter 'verbose' is unexpected"),
            ("human-monitor-command", {"command-line": 5}, "GenericError",
             "Invalid parameter type for 'command-line', expected: string"),
            ("human-monitor-command", {}, "GenericError", "Parameter 'command-line' is missing"),
        ]
        for name, args, klass, desc in cases:
            try:
                reply = await qmp.execute(name, args)
                raise CheckFailed(f"{name} {args}: no error, got {reply!r}")
            except ExecuteError as e:
                expect(f"{name} {args}", (e.error_class, str(e)), (klass, desc))
        expect("info status", await qmp.execute("human-monitor-command",
                                                {"command-line": "info status"}),
               "VM status: running\r\n")
        expect("info kvm", await qmp.execute("human-monitor-command", {"command-line": "info kvm"}),
               "kvm support: enabled\r\n")
    finally:
        await qmp.disconnect()


def legacy_client(vm):
    """QEMUMonitorProtocol, the synchronous client older tools (iotests, avocado) use."""
    with QEMUMonitorProtocol(vm.qmp_path) as qmp:
        greeting = qmp.connect(negotiate=True)
        expect("legacy greeting", sorted(greeting["QMP"]), ["capabilities", "version"])
        expect("legacy query-name", qmp.cmd("query-name"), {"name": NAME})
        reply = qmp.cmd_obj({"execute": "query-status", "id": "legacy-1"})
        expect("legacy id echoed", reply["id"], "legacy-1")
        qmp.cmd("stop")
        event = qmp.pull_event(wait=TIMEOUT)
        expect("legacy event", event and event["event"], "STOP")
        expect("legacy timestamp", sorted(event["timestamp"]), ["microseconds", "seconds"])
        qmp.cmd("cont")
        expect("legacy RESUME", qmp.pull_event(wait=TIMEOUT)["event"], "RESUME")


def qmp_shell(vm, hmp, lines):
    shell = Path(sys.executable).with_name("qmp-shell")
    args = [str(shell)] + (["-H"] if hmp else []) + [vm.qmp_path]
    done = subprocess.run(args, input="\n".join(lines) + "\n", capture_output=True, text=True,
                          timeout=TIMEOUT)
    expect("qmp-shell exit status", done.returncode, 0)
    return done.stdout


def qmp_shell_qmp(vm):
    """qmp-shell, its own command syntax turned into QMP."""
    out = qmp_shell(vm, False, ["query-status", "stop", "query-status", "cont", "query-name",
                                "no-such-command"])
    expect_in("qmp-shell", '{"return": {"status": "paused", "singlestep": false, "running": false}}', out)
    expect_in("qmp-shell", '{"return": {"name": "compat"}}', out)
    expect_in("qmp-shell", '{"error": {"class": "CommandNotFound", "desc": "The command '
              'no-such-command has not been found"}}', out)


def qmp_shell_hmp(vm):
    """qmp-shell -H: HMP through human-monitor-command."""
    out = qmp_shell(vm, True, ["stop", "info status", "cont", "info status", "info name"])
    expect_in("qmp-shell -H", "VM status: paused (QEMU)", out.replace("\n", ""))
    expect_in("qmp-shell -H", "VM status: running", out)
    expect_in("qmp-shell -H", NAME, out)


def read_messages(sock, count):
    """`count` JSON messages from a raw QMP socket, each checked for QEMU's CR LF ending."""
    data = b""
    until = time.monotonic() + TIMEOUT
    while data.count(b"\r\n") < count:
        if time.monotonic() > until:
            raise CheckFailed(f"wanted {count} messages, have {data!r}")
        chunk = sock.recv(65536)
        if not chunk:
            raise CheckFailed(f"the monitor closed the connection after {data!r}")
        data += chunk
    return [json.loads(line) for line in data.split(b"\r\n") if line]


def raw_stream(vm):
    """A raw socket: negotiation first, a JSON stream without newlines, cut in the middle."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(TIMEOUT)
        s.connect(vm.qmp_path)
        read_messages(s, 1)
        s.sendall(b'{"execute": "query-status", "id": 1}')
        expect("before negotiation", read_messages(s, 1), [{"id": 1, "error": {
            "class": "CommandNotFound",
            "desc": "Expecting capabilities negotiation with 'qmp_capabilities'"}}])
        s.sendall(b'{"execute": "qmp_capabilities"}{"execute": "query-name", "id": "two"}')
        expect("two in one write", read_messages(s, 2),
               [{"return": {}}, {"return": {"name": NAME}, "id": "two"}])
        s.sendall(b'{"execute": "query-')
        time.sleep(0.2)
        s.sendall(b'kvm", "id": [1, {"a": null}]}')
        expect("split over writes", read_messages(s, 1),
               [{"return": {"enabled": True, "present": True}, "id": [1, {"a": None}]}])
        s.sendall(b'{"execute": 5}')
        expect("bad execute", read_messages(s, 1), [{"error": {
            "class": "GenericError", "desc": "QMP input member 'execute' must be a string"}}])
        s.sendall(b'{"execute": "stop"}')
        event, reply = read_messages(s, 2)
        expect("STOP before its reply", (event.get("event"), reply), ("STOP", {"return": {}}))
        expect("event timestamp", sorted(event["timestamp"]), ["microseconds", "seconds"])
        expect("event time", abs(event["timestamp"]["seconds"] - time.time()) < 60, True)
        s.sendall(b'{"execute": "cont"}')
        read_messages(s, 2)


def telnet_hmp(vm):
    """HMP over telnet, through socat as a plain TCP client (the telnet options are ignored)."""
    lines = ["info status", "stop", "info status", "c", "info status", "info name", "info kvm",
             "info version", "no-such-command"]
    socat = subprocess.Popen(["socat", "-t", "2", "-", f"TCP:127.0.0.1:{vm.hmp_port}"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    for line in lines:
        socat.stdin.write(line.encode() + b"\n")
        socat.stdin.flush()
        time.sleep(0.2)
    out, _ = socat.communicate(timeout=TIMEOUT)
    text = out.decode(errors="replace")
    for want in ["VM status: running\r\n", "VM status: paused\r\n", f"{NAME}\r\n",
                 "kvm support: enabled\r\n", "unknown command: 'no-such-command'\r\n",
                 "monitor - type 'help' for more information\r\n"]:
        expect_in("telnet HMP", want, text)
    expect("telnet HMP order", text.index("VM status: paused") < text.rindex("VM status: running"),
           True)
    expect_in("telnet HMP info version", "7.2.", text)


async def migrate_and_clone(vm):
    """QMPClient: the events capability, stop, migrate to exec:, MIGRATION events to completed,
    query-migrate; then a clone from the state (-incoming exec:cat) comes up paused, as its
    source was, and runs on cont."""
    state = vm.workdir / "state"
    qmp = QMPClient("compat")
    await qmp.connect(vm.qmp_path)
    try:
        caps = [{"capability": "events", "state": True}]
        expect("migrate-set-capabilities", await qmp.execute("migrate-set-capabilities",
                                                             {"capabilities": caps}), {})
        with qmp.listener() as events:
            expect("stop", await qmp.execute("stop"), {})
            await next_event(events, "STOP")
            expect("migrate", await qmp.execute("migrate", {"uri": f"exec:cat > {state}"}), {})
            seen, passes = [], 0
            while "completed" not in seen and "failed" not in seen:
                event = await asyncio.wait_for(events.get(), TIMEOUT)
                if event["event"] == "MIGRATION_PASS":
                    passes += 1
                    continue
                expect("event", event["event"], "MIGRATION")
                seen.append(event["data"]["status"])
            expect("MIGRATION_PASS events", passes > 0, True)
            expect("MIGRATION statuses", seen[-1], "completed")
            expect_in("MIGRATION statuses", "setup", seen)
        expect("query-migrate", (await qmp.execute("query-migrate"))["status"], "completed")
        # QEMU sends "completed" before its migration thread has cleaned up: until then its
        # cont says "Migration is not finalized yet". Minnow's save is over when it replies.
        until = time.monotonic() + TIMEOUT
        while True:
            try:
                expect("cont after migrate", await qmp.execute("cont"), {})
                break
            except ExecuteError as e:
                if "not finalized" not in str(e) or time.monotonic() > until:
                    raise
                await asyncio.sleep(0.05)
    finally:
        await qmp.disconnect()
    clone = Vm(vm.vmm, vm.workdir, "clone", ["-incoming", f"exec:cat {state}"])
    try:
        qmp = QMPClient("compat-clone")
        await qmp.connect(clone.qmp_path)
        try:
            until = time.monotonic() + TIMEOUT
            status = (await qmp.execute("query-status"))["status"]
            while status == "inmigrate" and time.monotonic() < until:
                await asyncio.sleep(0.05)
                status = (await qmp.execute("query-status"))["status"]
            expect("the clone of a paused VM", status, "paused")
            expect("cont", await qmp.execute("cont"), {})
            expect("the clone runs", (await qmp.execute("query-status"))["status"], "running")
        finally:
            await qmp.disconnect()
    finally:
        clone.stop()


async def quit_ends_the_vm(vm):
    """quit: SHUTDOWN with QEMU's reason, the reply, and the process ends with status 0."""
    qmp = QMPClient("compat")
    await qmp.connect(vm.qmp_path)
    with qmp.listener() as events:
        await qmp.execute("quit")
        event = await next_event(events, "SHUTDOWN")
        expect("SHUTDOWN data", event["data"], {"guest": False, "reason": "host-qmp-quit"})
    try:
        await qmp.disconnect()
    except EOFError:
        pass  # the VM is gone, as it should be: the client's reader saw the connection close
    expect("exit status", vm.proc.wait(timeout=TIMEOUT), 0)
    expect("socket removed", os.path.exists(vm.qmp_path), False)


CHECKS = [
    ("QMPClient queries", qmp_client_queries),
    ("QMPClient stop/cont/reset/powerdown", qmp_client_lifecycle),
    ("QMPClient errors and HMP passthrough", qmp_client_errors),
    ("QEMUMonitorProtocol (legacy)", legacy_client),
    ("qmp-shell", qmp_shell_qmp),
    ("qmp-shell -H", qmp_shell_hmp),
    ("raw JSON stream", raw_stream),
    ("HMP over telnet (socat)", telnet_hmp),
    ("migrate and a clone (-incoming exec:)", migrate_and_clone),
    ("quit", quit_ends_the_vm),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vmm", required=True, help="qemu-system-x86_64 or minnow")
    vmm = parser.parse_args().vmm
    if not shutil.which("socat"):
        sys.exit("socat is missing: apt-get install socat (or run ./setup.sh)")
    failed = 0
    with tempfile.TemporaryDirectory(prefix="minnow-qmp-") as tmp:
        vm = Vm(vmm, Path(tmp))
        try:
            for name, check in CHECKS:
                try:
                    result = check(vm)
                    if asyncio.iscoroutine(result):
                        asyncio.run(result)
                    print(f"ok    {name}")
                except (CheckFailed, ExecuteError, OSError, subprocess.SubprocessError,
                        asyncio.TimeoutError, KeyError, TypeError) as e:
                    failed += 1
                    print(f"FAIL  {name}: {type(e).__name__}: {e}")
        finally:
            if failed:
                print(f"{vmm} said on stderr: {vm.log() or '(nothing)'}")
            vm.stop()
    print(f"{len(CHECKS) - failed} of {len(CHECKS)} checks passed against {vmm}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
