//! JSON as QEMU writes it on QMP: `{"a": 1, "b": [2, 3]}` (a space after each colon and comma),
//! or indented by four with `-qmp-pretty`; each message ends with CR LF.
use serde_json::ser::{Formatter, PrettyFormatter, Serializer};
use serde_json::Value;
use std::io::{self, Write};

/// serde_json's compact form with QEMU's spaces.
struct Spaced;

impl Formatter for Spaced {
    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }
}

/// `value` as one QMP message, CR LF included.
pub fn message(value: &Value, pretty: bool) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing to a Vec cannot fail, and a serde_json::Value always serializes.
    let _ = match pretty {
        true => {
            let mut ser = Serializer::with_formatter(&mut out, PrettyFormatter::with_indent(b"    "));
            serde::Serialize::serialize(value, &mut ser)
        }
        false => {
            let mut ser = Serializer::with_formatter(&mut out, Spaced);
            serde::Serialize::serialize(value, &mut ser)
        }
    };
    out.extend_from_slice(b"\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_read_as_qemus() {
        let v = json!({"return": {"status": "running", "singlestep": false, "running": true}, "id": "x1"});
        assert_eq!(
            message(&v, false),
            b"{\"return\": {\"status\": \"running\", \"singlestep\": false, \"running\": true}, \"id\": \"x1\"}\r\n"
        );
        let list = json!({"return": [{"a": 1}, {"b": []}]});
        assert_eq!(
            message(&list, false),
            b"{\"return\": [{\"a\": 1}, {\"b\": []}]}\r\n"
        );
        let pretty = String::from_utf8(message(&json!({"return": {}}), true)).unwrap();
        assert_eq!(pretty, "{\n    \"return\": {}\n}\r\n");
    }
}
