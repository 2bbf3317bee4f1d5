//! The telnet side of `telnet:` monitors (RFC 854): the server offers to echo and to suppress
//! go-ahead, as QEMU's does, and strips the client's option negotiation from what it types.

/// What a telnet server says first: WILL ECHO, WILL SUPPRESS-GO-AHEAD, WILL BINARY, DO BINARY
/// (QEMU's four).
pub const NEGOTIATION: [u8; 12] = [
    0xFF, 0xFB, 0x01, 0xFF, 0xFB, 0x03, 0xFF, 0xFB, 0x00, 0xFF, 0xFD, 0x00,
];

const IAC: u8 = 0xFF;
const SB: u8 = 0xFA;
const SE: u8 = 0xF0;
const WILL: u8 = 0xFB;
const DONT: u8 = 0xFE;

/// Where the filter is in a command sequence.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum State {
    #[default]
    Data,
    /// After IAC.
    Command,
    /// After IAC WILL/WONT/DO/DONT: the option byte.
    Option,
    /// Inside a subnegotiation (IAC SB ... IAC SE).
    Sub,
    /// IAC inside a subnegotiation.
    SubCommand,
}

/// Strips telnet commands from a client's bytes, across reads.
#[derive(Default)]
pub struct TelnetFilter {
    state: State,
}

impl TelnetFilter {
    /// The data bytes of `bytes`.
    pub fn data(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes.len());
        for &b in bytes {
            self.state = match (self.state, b) {
                (State::Data, IAC) => State::Command,
                (State::Data, b) => {
                    out.push(b);
                    State::Data
                }
                // IAC IAC is a data byte 0xFF.
                (State::Command, IAC) => {
                    out.push(IAC);
                    State::Data
                }
                (State::Command, WILL..=DONT) => State::Option,
                (State::Command, SB) => State::Sub,
                (State::Command, _) => State::Data,
                (State::Option, _) => State::Data,
                (State::Sub, IAC) => State::SubCommand,
                (State::Sub, _) => State::Sub,
                (State::SubCommand, SE) => State::Data,
                (State::SubCommand, _) => State::Sub,
            };
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_is_stripped_across_reads_and_data_kept() {
        let mut f = TelnetFilter::default();
        // What a telnet client sends: DO ECHO, DO SGA, a window-size subnegotiation, then text.
        let mut got = f.data(&[IAC, 0xFD, 0x01, IAC, 0xFD]);
        got.extend(f.data(&[0x03, b'i', IAC, SB, 0x1F, 0, 80, 0, 24, IAC, SE, b'n', IAC, IAC]));
        got.extend(f.data(b"fo\r\0"));
        assert_eq!(got, b"in\xFFfo\r\0");
    }
}
