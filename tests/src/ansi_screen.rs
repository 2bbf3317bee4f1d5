//! Turns a full-screen serial console (memtest86+ paints its screen with ANSI escapes and hardly
//! ever sends a newline) into text lines a test can read: every cursor move to a new position
//! starts a line, other escapes are dropped, carriage returns too, and runs of spaces become one.

/// Feed it bytes as they arrive; it hands back the lines completed so far.
#[derive(Default)]
pub struct AnsiScreen {
    line: String,
    escape: Option<Vec<u8>>,
}

impl AnsiScreen {
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut done = Vec::new();
        for &b in bytes {
            if let Some(seq) = &mut self.escape {
                seq.push(b);
                // ESC c and other two-byte escapes end at once; CSI sequences at a letter.
                let finished = match seq.as_slice() {
                    [b'['] => false,
                    [b'[', .., last] => last.is_ascii_alphabetic(),
                    _ => true,
                };
                if finished {
                    let moves = matches!(seq.last(), Some(b'H' | b'f')) && seq.first() == Some(&b'[');
                    self.escape = None;
                    if moves {
                        self.end_line(&mut done);
                    }
                }
                continue;
            }
            match b {
                0x1B => self.escape = Some(Vec::new()),
                b'\n' => self.end_line(&mut done),
                b'\r' => {}
                b' ' if self.line.ends_with(' ') || self.line.is_empty() => {}
                _ => self.line.push(char::from(b)),
            }
        }
        done
    }

    /// The unfinished line, when the stream ends.
    pub fn finish(&mut self) -> Option<String> {
        let mut done = Vec::new();
        self.end_line(&mut done);
        done.pop()
    }

    fn end_line(&mut self, done: &mut Vec<String>) {
        let line = std::mem::take(&mut self.line);
        let line = line.trim_end();
        if !line.is_empty() {
            done.push(line.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_moves_split_lines_and_escapes_vanish() {
        let mut s = AnsiScreen::default();
        let mut lines = s.feed(b"\x1bc\x1b[2;1HMemory  :   511MB\x1b[0m\x1b[3;1H#0  [Address ");
        lines.extend(s.feed(b"test]\x1b[?25l\r\n  Testing: 4MB"));
        lines.extend(s.finish());
        assert_eq!(lines, ["Memory : 511MB", "#0 [Address test]", "Testing: 4MB"]);
    }
}
