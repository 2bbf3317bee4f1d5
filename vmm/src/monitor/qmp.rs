//! QMP as QEMU 7.2 speaks it: the greeting, nothing but `qmp_capabilities` before negotiation,
//! a stream of JSON objects (no newline needed, several in one write, one split over writes),
//! `id` echoed, errors with QEMU's classes and words, events with their timestamp, written before
//! the reply of the command that caused them. Checked byte for byte against QEMU 7.2's own
//! replies (the tests below, and tests/qmp/ against both).
use super::format::message;
use super::{hmp, migration, Context, Session, PACKAGE, QEMU_VERSION};
use crate::runtime::lifecycle::{LifecycleError, RunState, VmEvent};
use serde_json::{json, Map, Value};
use std::time::{SystemTime, UNIX_EPOCH};

/// Bytes of one unfinished JSON object a client may send before it is refused.
pub const MAX_INPUT: usize = 1 << 20;

/// The commands, as `query-commands` lists them.
pub const COMMANDS: &[&str] = &[
    "qmp_capabilities",
    "query-version",
    "query-commands",
    "query-status",
    "query-name",
    "query-kvm",
    "query-cpus-fast",
    "query-chardev",
    "query-vm-generation-id",
    "stop",
    "cont",
    "system_reset",
    "system_powerdown",
    "quit",
    "human-monitor-command",
];

/// A QMP error: QEMU's class and words.
#[derive(Debug, PartialEq, Eq)]
pub struct QmpError {
    pub class: &'static str,
    pub desc: String,
}

fn generic(desc: impl Into<String>) -> QmpError {
    QmpError {
        class: "GenericError",
        desc: desc.into(),
    }
}

fn not_found(desc: impl Into<String>) -> QmpError {
    QmpError {
        class: "CommandNotFound",
        desc: desc.into(),
    }
}

/// Cuts a client's byte stream into JSON values: a value may come in pieces, several may come
/// at once; an unfinished one may grow to [`MAX_INPUT`] bytes.
#[derive(Default)]
pub struct Framer {
    pending: Vec<u8>,
}

impl Framer {
    pub fn push(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
    }

    /// The next complete value, an error for bytes that cannot start one (which are dropped),
    /// or `None` when more bytes are needed.
    pub fn next_value(&mut self) -> Option<Result<Value, QmpError>> {
        let text = std::mem::take(&mut self.pending);
        let mut stream = serde_json::Deserializer::from_slice(&text).into_iter::<Value>();
        match stream.next()? {
            Ok(value) => {
                self.pending = text[stream.byte_offset()..].to_vec();
                Some(Ok(value))
            }
            Err(e) if e.is_eof() && text.len() <= MAX_INPUT => {
                self.pending = text;
                None
            }
            Err(e) if e.is_eof() => Some(Err(generic(format!(
                "JSON parse error, input exceeds {MAX_INPUT} bytes"
            )))),
            Err(e) => Some(Err(generic(format!("JSON parse error, {e}")))),
        }
    }

    /// Bytes held for an unfinished value.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

/// A command as the client asked for it.
#[derive(Debug, PartialEq)]
pub struct Request {
    pub name: String,
    pub args: Map<String, Value>,
}

/// Checks one value from the client as QEMU's dispatcher does. Returns the request (or QEMU's
/// error) and the `id` to echo.
pub fn parse_request(value: Value) -> (Result<Request, QmpError>, Option<Value>) {
    let Value::Object(mut obj) = value else {
        return (Err(generic("QMP input must be a JSON object")), None);
    };
    let id = obj.remove("id");
    let name = match obj.remove("execute") {
        Some(Value::String(n)) => n,
        Some(_) => return (Err(generic("QMP input member 'execute' must be a string")), id),
        None => {
            let e = match obj.keys().next() {
                Some(k) if k != "arguments" => generic(format!("QMP input member '{k}' is unexpected")),
                _ => generic("QMP input lacks member 'execute'"),
            };
            return (Err(e), id);
        }
    };
    let args = match obj.remove("arguments") {
        None => Map::new(),
        Some(Value::Object(a)) => a,
        Some(_) => return (Err(generic("QMP input member 'arguments' must be an object")), id),
    };
    if let Some(k) = obj.keys().next() {
        return (Err(generic(format!("QMP input member '{k}' is unexpected"))), id);
    }
    (Ok(Request { name, args }), id)
}

pub struct QmpSession {
    negotiated: bool,
    pretty: bool,
    framer: Framer,
    quit: bool,
}

impl QmpSession {
    pub fn new(pretty: bool) -> Self {
        Self {
            negotiated: false,
            pretty,
            framer: Framer::default(),
            quit: false,
        }
    }

    fn reply(&self, result: Result<Value, QmpError>, id: Option<Value>) -> Vec<u8> {
        let mut m = Map::new();
        match result {
            Ok(v) => {
                m.insert("return".into(), v);
            }
            Err(e) => {
                m.insert("error".into(), json!({"class": e.class, "desc": e.desc}));
            }
        }
        if let Some(id) = id {
            m.insert("id".into(), id);
        }
        message(&Value::Object(m), self.pretty)
    }

    /// One JSON value from the client.
    fn request(&mut self, value: Value, ctx: &mut Context) -> Vec<u8> {
        let (request, id) = parse_request(value);
        let result = request.and_then(|r| self.command(r, ctx));
        self.reply(result, id)
    }

    fn command(&mut self, r: Request, ctx: &mut Context) -> Result<Value, QmpError> {
        if r.name == "qmp_capabilities" {
            return self.negotiate(r.args);
        }
        if !self.negotiated {
            return Err(not_found(
                "Expecting capabilities negotiation with 'qmp_capabilities'",
            ));
        }
        if r.name == "quit" {
            no_arguments(&r.args)?;
            self.quit = true;
            return Ok(json!({}));
        }
        execute(&r.name, r.args, ctx)
    }

    fn negotiate(&mut self, args: Map<String, Value>) -> Result<Value, QmpError> {
        if self.negotiated {
            return Err(not_found(
                "Capabilities negotiation is already complete, command ignored",
            ));
        }
        match args.get("enable") {
            None => {}
            Some(Value::Array(caps)) if caps.is_empty() => {}
            Some(Value::Array(caps)) => {
                let cap = caps.first().and_then(Value::as_str).unwrap_or("?");
                return Err(generic(format!("Capability '{cap}' not available")));
            }
            Some(_) => return Err(generic("Invalid parameter type for 'enable', expected: array")),
        }
        if let Some(k) = args.keys().find(|k| *k != "enable") {
            return Err(generic(format!("Parameter '{k}' is unexpected")));
        }
        self.negotiated = true;
        Ok(json!({}))
    }
}

fn no_arguments(args: &Map<String, Value>) -> Result<(), QmpError> {
    match args.keys().next() {
        Some(k) => Err(generic(format!("Parameter '{k}' is unexpected"))),
        None => Ok(()),
    }
}

fn lifecycle(result: Result<(), LifecycleError>) -> Result<Value, QmpError> {
    result.map(|()| json!({})).map_err(|e| generic(e.to_string()))
}

/// `query-status`: QEMU's state names, `running` as QEMU computes it.
fn status(state: RunState) -> Value {
    json!({
        "status": state.as_str(),
        "singlestep": false,
        "running": state == RunState::Running,
    })
}

fn query_cpus_fast(ctx: &Context) -> Value {
    let cpus: Vec<Value> = ctx
        .controller
        .vcpu_thread_ids()
        .iter()
        .enumerate()
        .map(|(i, tid)| {
            json!({
                "thread-id": tid,
                "props": {"core-id": 0, "thread-id": 0, "socket-id": i},
                "qom-path": format!("/machine/unattached/device[{i}]"),
                "cpu-index": i,
                "target": "x86_64",
            })
        })
        .collect();
    Value::Array(cpus)
}

/// Runs command `name` (negotiation done, `quit` handled by the session).
fn execute(name: &str, mut args: Map<String, Value>, ctx: &mut Context) -> Result<Value, QmpError> {
    if name == "human-monitor-command" {
        let line = match args.remove("command-line") {
            Some(Value::String(l)) => l,
            Some(_) => {
                return Err(generic(
                    "Invalid parameter type for 'command-line', expected: string",
                ))
            }
            None => return Err(generic("Parameter 'command-line' is missing")),
        };
        match args.remove("cpu-index") {
            None | Some(Value::Number(_)) => {}
            Some(_) => {
                return Err(generic(
                    "Invalid parameter type for 'cpu-index', expected: integer",
                ))
            }
        }
        no_arguments(&args)?;
        return Ok(Value::String(hmp::run_line(&line, ctx).text));
    }
    if let Some(result) = migration::qmp(name, &args, ctx) {
        return result;
    }
    no_arguments(&args)?;
    let (major, minor, micro) = QEMU_VERSION;
    match name {
        "query-version" => Ok(json!({
            "qemu": {"micro": micro, "minor": minor, "major": major},
            "package": PACKAGE,
        })),
        "query-commands" => Ok(Value::Array(
            COMMANDS
                .iter()
                .chain(migration::QMP_COMMANDS)
                .map(|c| json!({ "name": c }))
                .collect(),
        )),
        "query-status" => Ok(status(ctx.controller.state())),
        "query-name" => Ok(match &ctx.facts.name {
            Some(n) => json!({ "name": n }),
            None => json!({}),
        }),
        "query-kvm" => Ok(json!({"enabled": true, "present": true})),
        "query-cpus-fast" => Ok(query_cpus_fast(ctx)),
        "query-chardev" => Ok(Value::Array(
            ctx.facts
                .chardevs
                .iter()
                .map(|(label, filename)| json!({"frontend-open": true, "filename": filename, "label": label}))
                .collect(),
        )),
        "query-vm-generation-id" => match ctx.controller.generation_id() {
            Some(guid) => Ok(json!({ "guid": crate::devices::vmgenid::guid_text(&guid) })),
            None => Err(generic("VM Generation ID device not found")),
        },
        "stop" => lifecycle(ctx.controller.pause()),
        "cont" => lifecycle(ctx.controller.resume()),
        "system_reset" => lifecycle(ctx.controller.reset()),
        "system_powerdown" => lifecycle(ctx.controller.powerdown()),
        _ => Err(not_found(format!("The command {name} has not been found"))),
    }
}

/// A QMP event as QEMU writes it.
pub fn event_message(event: &VmEvent, pretty: bool) -> Vec<u8> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let mut m = Map::new();
    m.insert(
        "timestamp".into(),
        json!({"seconds": now.as_secs(), "microseconds": now.subsec_micros()}),
    );
    let (name, data) = match event {
        VmEvent::Stop => ("STOP", None),
        VmEvent::Resume => ("RESUME", None),
        VmEvent::Powerdown => ("POWERDOWN", None),
        VmEvent::Reset { guest, reason } => ("RESET", Some(json!({"guest": guest, "reason": reason}))),
        VmEvent::Shutdown { guest, reason } => ("SHUTDOWN", Some(json!({"guest": guest, "reason": reason}))),
        VmEvent::Migration { status } => ("MIGRATION", Some(json!({ "status": status }))),
        VmEvent::MigrationPass { pass } => ("MIGRATION_PASS", Some(json!({ "pass": pass }))),
    };
    m.insert("event".into(), Value::String(name.into()));
    if let Some(d) = data {
        m.insert("data".into(), d);
    }
    message(&Value::Object(m), pretty)
}

impl Session for QmpSession {
    fn greeting(&mut self) -> Vec<u8> {
        let (major, minor, micro) = QEMU_VERSION;
        let greeting = json!({"QMP": {
            "version": {"qemu": {"micro": micro, "minor": minor, "major": major}, "package": PACKAGE},
            "capabilities": [],
        }});
        message(&greeting, self.pretty)
    }

    fn input(&mut self, bytes: &[u8], ctx: &mut Context) -> Vec<u8> {
        self.framer.push(bytes);
        let mut out = Vec::new();
        while !self.quit {
            match self.framer.next_value() {
                None => break,
                Some(Ok(value)) => out.extend(self.request(value, ctx)),
                Some(Err(e)) => out.extend(self.reply(Err(e), None)),
            }
        }
        out
    }

    fn event(&mut self, event: &VmEvent) -> Vec<u8> {
        match self.negotiated {
            true => event_message(event, self.pretty),
            false => Vec::new(),
        }
    }

    fn quit_requested(&self) -> bool {
        self.quit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(chunks: &[&[u8]]) -> Vec<Result<Value, QmpError>> {
        let mut f = Framer::default();
        let mut got = Vec::new();
        for c in chunks {
            f.push(c);
            while let Some(v) = f.next_value() {
                got.push(v);
            }
        }
        got
    }

    #[test]
    fn a_stream_is_cut_into_values_whatever_the_writes() {
        let got = values(&[br#"{"a": 1} {"b""#, br#": 2}"#, b"\r\n", br#"[3]"#]);
        assert_eq!(got, [Ok(json!({"a": 1})), Ok(json!({"b": 2})), Ok(json!([3]))]);
        let got = values(&[b"garbage {\"c\": 4}"]);
        assert!(matches!(&got[0], Err(e) if e.desc.starts_with("JSON parse error")));
    }

    #[test]
    fn requests_are_checked_as_qemus_dispatcher_checks_them() {
        let desc = |v: Value| parse_request(v).0.unwrap_err().desc;
        assert_eq!(desc(json!([1])), "QMP input must be a JSON object");
        assert_eq!(desc(json!({"foo": 1})), "QMP input member 'foo' is unexpected");
        assert_eq!(desc(json!({"arguments": {}})), "QMP input lacks member 'execute'");
        assert_eq!(
            desc(json!({"execute": 1})),
            "QMP input member 'execute' must be a string"
        );
        assert_eq!(
            desc(json!({"execute": "x", "arguments": 2})),
            "QMP input member 'arguments' must be an object"
        );
        let (r, id) = parse_request(json!({"execute": "stop", "id": [1, "a"]}));
        assert_eq!(r.unwrap().name, "stop");
        assert_eq!(id, Some(json!([1, "a"])));
    }
}
