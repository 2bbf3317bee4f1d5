//! The one line a boot conformance payload prints, and the checksum it reports the initrd with.
use std::collections::HashMap;

/// Every report line starts with this.
pub const PREFIX: &str = "MINNOW-PAYLOAD ";

/// FNV-1a 32, as the payloads compute it.
pub fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811C_9DC5, |h: u32, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// The report line, split into fields; the quoted cmdline is kept whole, quotes removed.
pub fn parse(line: &str) -> HashMap<String, String> {
    let mut fields = HashMap::new();
    let mut rest = line.strip_prefix(PREFIX).unwrap_or(line);
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let (value, next) = match after.strip_prefix('"') {
            // The payload escapes '"', so the next one closes the value.
            Some(quoted) => match quoted.split_once('"') {
                Some((v, n)) => (v, n),
                None => (quoted, ""),
            },
            None => after.split_once(' ').unwrap_or((after, "")),
        };
        fields.insert(key.trim().to_string(), value.to_string());
        rest = next.trim_start();
    }
    fields
}

/// Undoes the payload's escaping: `\xNN` is the byte NN.
pub fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1] == b'x' {
            if let Ok(v) = u8::from_str_radix(&s[i + 2..i + 4], 16) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_lines_parse_and_unescape() {
        let line = "MINNOW-PAYLOAD proto=pvh entry=32 cmdline=\"a \\x22b\\x22 c=d\\x09\\xc2\\xb5\" \
                    initrd_len=5 result=pass";
        let f = parse(line);
        assert_eq!(f["proto"], "pvh");
        assert_eq!(unescape(&f["cmdline"]), "a \"b\" c=d\t\u{b5}".as_bytes());
        assert_eq!(f["initrd_len"], "5");
        assert_eq!(f["result"], "pass");
        assert_eq!(fnv1a32(b"foobar"), 0xBF9C_F968);
    }
}
