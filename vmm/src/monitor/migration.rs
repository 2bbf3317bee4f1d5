//! The migration commands on both monitors: QMP `migrate`, `migrate-incoming`,
//! `query-migrate`, `migrate_cancel`, `migrate-set-parameters`, `migrate_set_speed`,
//! `migrate-set-capabilities`; HMP `migrate`, `migrate_incoming`, `migrate_cancel`,
//! `migrate_set_speed`, `migrate_set_parameter`, `info migrate`.
//!
//! Bandwidth and downtime settings are accepted and have no effect: a snapshot is written at
//! the speed of the stream with the VM stopped throughout. Of the capabilities, `events` turns
//! on `MIGRATION` events (off by default, as in QEMU); the rest are accepted without effect.
use super::qmp::QmpError;
use super::Context;
use crate::runtime::lifecycle::MigrationInfo;
use crate::snapshot::uri::MigrationUri;
use crate::snapshot::MigrateError;
use serde_json::{json, Map, Value};

/// The QMP commands this file answers.
pub const QMP_COMMANDS: &[&str] = &[
    "migrate",
    "migrate-incoming",
    "query-migrate",
    "migrate_cancel",
    "migrate-set-parameters",
    "migrate_set_speed",
    "migrate-set-capabilities",
    "query-migrate-capabilities",
];

/// QEMU 7.2's migration capabilities: `events` turns on `MIGRATION` events; the rest are
/// accepted and change nothing (a snapshot is one stopped copy).
const CAPABILITIES: &[&str] = &[
    "xbzrle",
    "rdma-pin-all",
    "auto-converge",
    "zero-blocks",
    "compress",
    "events",
    "postcopy-ram",
    "x-colo",
    "release-ram",
    "block",
    "return-path",
    "pause-before-switchover",
    "multifd",
    "dirty-bitmaps",
    "postcopy-blocktime",
    "late-block-activate",
    "x-ignore-shared",
    "validate-uuid",
    "background-snapshot",
    "zero-copy-send",
    "postcopy-preempt",
];

/// Parameters `migrate-set-parameters` accepts (QEMU 7.2's, all without effect here).
const PARAMETERS: &[&str] = &[
    "announce-initial",
    "announce-max",
    "announce-rounds",
    "announce-step",
    "compress-level",
    "compress-threads",
    "compress-wait-thread",
    "decompress-threads",
    "throttle-trigger-threshold",
    "cpu-throttle-initial",
    "cpu-throttle-increment",
    "cpu-throttle-tailslow",
    "tls-creds",
    "tls-hostname",
    "tls-authz",
    "max-bandwidth",
    "downtime-limit",
    "x-checkpoint-delay",
    "block-incremental",
    "multifd-channels",
    "xbzrle-cache-size",
    "max-postcopy-bandwidth",
    "max-cpu-throttle",
    "multifd-compression",
    "multifd-zlib-level",
    "multifd-zstd-level",
    "block-bitmap-mapping",
];

fn generic(desc: impl Into<String>) -> QmpError {
    QmpError {
        class: "GenericError",
        desc: desc.into(),
    }
}

fn string_arg(args: &Map<String, Value>, name: &str) -> Result<String, QmpError> {
    match args.get(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(generic(format!(
            "Invalid parameter type for '{name}', expected: string"
        ))),
        None => Err(generic(format!("Parameter '{name}' is missing"))),
    }
}

fn only(args: &Map<String, Value>, allowed: &[&str]) -> Result<(), QmpError> {
    match args.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(generic(format!("Parameter '{k}' is unexpected"))),
        None => Ok(()),
    }
}

fn migrate_error(e: MigrateError) -> QmpError {
    generic(e.to_string())
}

fn uri(text: &str) -> Result<MigrationUri, QmpError> {
    MigrationUri::parse(text).map_err(|e| generic(e.to_string()))
}

/// Runs QMP command `name` if it is one of [`QMP_COMMANDS`].
pub fn qmp(name: &str, args: &Map<String, Value>, ctx: &mut Context) -> Option<Result<Value, QmpError>> {
    let result = match name {
        "migrate" => only(args, &["uri", "blk", "inc", "detach", "resume"]).and_then(|()| {
            if args.get("blk") == Some(&Value::Bool(true)) || args.get("inc") == Some(&Value::Bool(true)) {
                return Err(generic(
                    "minnow does not copy disks in a migration: blk and inc are not supported",
                ));
            }
            let uri = uri(&string_arg(args, "uri")?)?;
            ctx.controller.migrate(&uri).map_err(migrate_error)?;
            Ok(json!({}))
        }),
        "migrate-incoming" => only(args, &["uri"]).and_then(|()| {
            let uri = uri(&string_arg(args, "uri")?)?;
            ctx.controller.incoming(&uri).map_err(migrate_error)?;
            Ok(json!({}))
        }),
        "query-migrate" => only(args, &[]).map(|()| query_migrate(ctx.controller.migration_info())),
        // The save runs to its end before `migrate` answers: there is never one to cancel.
        "migrate_cancel" => only(args, &[]).map(|()| json!({})),
        "migrate-set-parameters" => only(args, PARAMETERS).map(|()| json!({})),
        "migrate_set_speed" => only(args, &["value"]).and_then(|()| match args.get("value") {
            Some(Value::Number(_)) => Ok(json!({})),
            Some(_) => Err(generic("Invalid parameter type for 'value', expected: integer")),
            None => Err(generic("Parameter 'value' is missing")),
        }),
        "migrate-set-capabilities" => only(args, &["capabilities"]).and_then(|()| {
            let events = capabilities(args.get("capabilities"))?;
            if let Some(on) = events {
                ctx.controller.set_migration_events(on);
            }
            Ok(json!({}))
        }),
        "query-migrate-capabilities" => only(args, &[]).map(|()| {
            let events = ctx.controller.migration_events();
            Value::Array(
                CAPABILITIES
                    .iter()
                    .map(|c| json!({"state": *c == "events" && events, "capability": c}))
                    .collect(),
            )
        }),
        _ => return None,
    };
    Some(result)
}

/// `migrate-set-capabilities`' list, checked as QEMU checks it; returns what it says of
/// `events`, if anything.
fn capabilities(list: Option<&Value>) -> Result<Option<bool>, QmpError> {
    let Some(list) = list else {
        return Err(generic("Parameter 'capabilities' is missing"));
    };
    let Value::Array(items) = list else {
        return Err(generic(
            "Invalid parameter type for 'capabilities', expected: array",
        ));
    };
    let mut events = None;
    for item in items {
        let name = item.get("capability").and_then(Value::as_str);
        let state = item.get("state").and_then(Value::as_bool);
        match (name, state) {
            (Some(n), Some(on)) if CAPABILITIES.contains(&n) => {
                if n == "events" {
                    events = Some(on);
                }
            }
            (Some(n), Some(_)) => {
                return Err(generic(format!(
                    "Parameter 'capability' does not accept value '{n}'"
                )))
            }
            (None, _) => return Err(generic("Parameter 'capability' is missing")),
            (_, None) => return Err(generic("Parameter 'state' is missing")),
        }
    }
    Ok(events)
}

/// `query-migrate`, with QEMU's member names.
pub fn query_migrate(info: &MigrationInfo) -> Value {
    let Some(status) = info.status else {
        return json!({});
    };
    let mut m = Map::new();
    m.insert("status".into(), json!(status));
    if status == "completed" {
        let mbps = match info.total_time_ms {
            0 => 0.0,
            ms => info.bytes as f64 * 8.0 / 1e6 / (ms as f64 / 1e3),
        };
        m.insert("total-time".into(), json!(info.total_time_ms));
        m.insert("downtime".into(), json!(info.downtime_ms));
        m.insert("setup-time".into(), json!(0));
        m.insert(
            "ram".into(),
            json!({
                "transferred": info.bytes,
                "total": info.ram,
                "remaining": 0,
                "duplicate": 0,
                "normal": info.ram / 4096,
                "normal-bytes": info.ram,
                "dirty-sync-count": 1,
                "page-size": 4096,
                "mbps": mbps,
            }),
        );
    }
    if let Some(e) = &info.error {
        m.insert("error-desc".into(), json!(e));
    }
    Value::Object(m)
}

/// HMP's `info migrate`.
pub fn info_migrate(info: &MigrationInfo) -> String {
    let Some(status) = info.status else {
        return String::new();
    };
    let mut out = format!("Migration status: {status}\r\n");
    if status == "completed" {
        out += &format!(
            "total time: {} ms\r\ndowntime: {} ms\r\ntransferred ram: {} kbytes\r\ntotal ram: {} kbytes\r\n",
            info.total_time_ms,
            info.downtime_ms,
            info.bytes / 1024,
            info.ram / 1024
        );
    }
    if let Some(e) = &info.error {
        out += &format!("error description: {e}\r\n");
    }
    out
}

/// HMP's string argument: the rest of the line, in double quotes or not.
fn hmp_string(rest: &str) -> &str {
    let rest = rest.trim();
    rest.strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or(rest)
}

/// HMP's `migrate` and `migrate_incoming`: `run` on the URI the line gives; what it printed.
fn with_uri(rest: &str, run: impl FnOnce(&MigrationUri) -> Result<(), MigrateError>) -> String {
    let done = MigrationUri::parse(hmp_string(rest))
        .map_err(|e| e.to_string())
        .and_then(|uri| run(&uri).map_err(|e| e.to_string()));
    match done {
        Ok(()) => String::new(),
        Err(e) => format!("Error: {e}\r\n"),
    }
}

/// Runs HMP command `cmd` (with the rest of its line) if it is a migration one.
pub fn hmp(cmd: &str, rest: &str, ctx: &mut Context) -> Option<String> {
    let error = |e: String| format!("Error: {e}\r\n");
    let text = match cmd {
        "migrate" => {
            // -d (detach), -r (resume): accepted; -b/-i (copy disks): refused.
            let mut rest = rest.trim();
            while let Some((flag, tail)) = rest.split_once(' ').filter(|(f, _)| f.starts_with('-')) {
                if flag.contains('b') || flag.contains('i') {
                    return Some(error(
                        "minnow does not copy disks in a migration: -b and -i are not supported".into(),
                    ));
                }
                rest = tail.trim_start();
            }
            with_uri(rest, |uri| ctx.controller.migrate(uri))
        }
        "migrate_incoming" => with_uri(rest, |uri| ctx.controller.incoming(uri)),
        "migrate_cancel" => String::new(),
        "migrate_set_speed" => match rest.trim() {
            "" => "Parameter 'value' is missing\r\n".into(),
            _ => String::new(),
        },
        "migrate_set_capability" => {
            let mut words = rest.split_whitespace();
            match (words.next(), words.next()) {
                (Some("events"), Some(state)) => {
                    ctx.controller
                        .set_migration_events(state == "on" || state == "true");
                    String::new()
                }
                (Some(name), Some(_)) if CAPABILITIES.contains(&name) => String::new(),
                (Some(name), Some(_)) => {
                    error(format!("Parameter 'capability' does not accept value '{name}'"))
                }
                _ => error("migrate_set_capability needs a capability and on|off".into()),
            }
        }
        "migrate_set_parameter" => String::new(),
        _ => return None,
    };
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_migrate_says_what_qemu_says() {
        assert_eq!(query_migrate(&MigrationInfo::default()), json!({}));
        let done = MigrationInfo {
            status: Some("completed"),
            bytes: 1 << 20,
            ram: 1 << 20,
            total_time_ms: 10,
            downtime_ms: 10,
            error: None,
        };
        let q = query_migrate(&done);
        assert_eq!(q["status"], "completed");
        assert_eq!(q["ram"]["total"], 1 << 20);
        let failed = MigrationInfo {
            status: Some("failed"),
            error: Some("disk full".into()),
            ..Default::default()
        };
        assert_eq!(
            query_migrate(&failed),
            json!({"status": "failed", "error-desc": "disk full"})
        );
        assert!(info_migrate(&done).starts_with("Migration status: completed\r\ntotal time: 10 ms"));
    }

    #[test]
    fn hmp_strings_may_be_quoted() {
        assert_eq!(hmp_string(" \"exec:gzip -c > F.gz\" "), "exec:gzip -c > F.gz");
        assert_eq!(hmp_string("file:/tmp/x"), "file:/tmp/x");
    }
}
