//! The end of message data (RFC 5321 §4.1.1.4, §4.5.2): our own scanner instead of
//! smtp-proto's `DataReceiver`, which also ended DATA at `<CRLF>.<CR><CRLF>` and similar
//! sequences with stray CRs — a receiver and a relay that disagree about where a message ends
//! let a second, smuggled message through (SMTP smuggling, CVE-2023-51764 and its variants).
//!
//! Only `<CRLF>.<CRLF>` ends the data, where the first CRLF may be the one that ended the DATA
//! command. A line that starts with a dot loses that dot (transparency). Nothing else is
//! interpreted here: a bare CR or LF, or a NUL, is copied and the message is refused at its
//! end by `header_block::content_fault`, so nothing that two parsers could read differently
//! is ever stored or relayed.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// After a CRLF (or at the start of the data): a line begins.
    LineStart,
    /// A line began with a dot.
    Dot,
    /// A line began with a dot and a CR.
    DotCr,
    /// Inside a line.
    Text,
    /// Inside a line, after a CR.
    Cr,
}

/// Scans message data for its end, removing dot-stuffing.
#[derive(Debug, Clone)]
pub struct DataScanner {
    state: State,
}

impl Default for DataScanner {
    fn default() -> Self {
        DataScanner {
            state: State::LineStart,
        }
    }
}

impl DataScanner {
    /// Takes bytes of message data, appending the content to `out`. Returns how many bytes of
    /// `input` belong to the data when its end was found (what follows is the next command),
    /// or `None` when more data is needed.
    pub fn ingest(&mut self, input: &[u8], out: &mut Vec<u8>) -> Option<usize> {
        for (i, &b) in input.iter().enumerate() {
            self.state = match (self.state, b) {
                (State::LineStart, b'.') => State::Dot,
                (State::LineStart | State::Text, b'\r') => State::Cr,
                (State::Cr, b'\n') => {
                    out.extend_from_slice(b"\r\n");
                    State::LineStart
                }
                (State::Cr, b'\r') => {
                    out.push(b'\r');
                    State::Cr
                }
                (State::Cr, other) => {
                    out.extend_from_slice(&[b'\r', other]);
                    State::Text
                }
                (State::Dot, b'\r') => State::DotCr,
                // "If the first character is a period and there are other characters on the
                // line, the first character is deleted" (§4.5.2).
                (State::Dot, other) => {
                    out.push(other);
                    State::Text
                }
                (State::DotCr, b'\n') => {
                    self.state = State::LineStart;
                    return Some(i + 1);
                }
                // ".<CR>" followed by anything but LF is content (the dot was stuffing).
                (State::DotCr, b'\r') => {
                    out.push(b'\r');
                    State::Cr
                }
                (State::DotCr, other) => {
                    out.extend_from_slice(&[b'\r', other]);
                    State::Text
                }
                (State::LineStart | State::Text, other) => {
                    out.push(other);
                    State::Text
                }
            };
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the scanner over `input` in pieces of `step` bytes; returns (content, rest) if the
    /// end was found.
    fn scan(input: &[u8], step: usize) -> Option<(Vec<u8>, Vec<u8>)> {
        let mut s = DataScanner::default();
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < input.len() {
            let end = (pos + step).min(input.len());
            if let Some(n) = s.ingest(&input[pos..end], &mut out) {
                return Some((out, input[pos + n..].to_vec()));
            }
            pos = end;
        }
        None
    }

    #[test]
    fn only_crlf_dot_crlf_ends_the_data() {
        for step in [1, 2, 3, 7, 1000] {
            let (content, rest) = scan(b"a\r\n..b\r\n.\r\nQUIT\r\n", step).unwrap();
            assert_eq!(content, b"a\r\n.b\r\n");
            assert_eq!(rest, b"QUIT\r\n");
            // An empty message: the DATA command's CRLF is the first one.
            let (content, _) = scan(b".\r\n", step).unwrap();
            assert!(content.is_empty());
            for smuggle in [
                &b"x\n.\nMAIL"[..],
                b"x\r.\rMAIL",
                b"x\r\n.\nMAIL",
                b"x\n.\r\nMAIL",
                b"x\r\n.\rMAIL",
                b"x\r\n.\r\r\nMAIL",
                b"x\r\n.\r\r\r\nMAIL",
                b"x\r\r\n.\r\r\nMAIL",
                b"x\r\n\0.\r\nMAIL",
                b"x\r\n.\0\r\nMAIL",
                b"x\r\n .\r\nMAIL",
            ] {
                assert!(
                    scan(smuggle, step).is_none(),
                    "{:?} must not end the data",
                    String::from_utf8_lossy(smuggle)
                );
            }
        }
    }

    #[test]
    fn stray_crs_are_kept_for_the_content_check() {
        // "<CRLF>.<CR><CRLF>" is a dot-stuffed line holding a bare CR, not the end.
        let (content, rest) = scan(b"a\r\n.\r\r\nb\r\n.\r\n", 1).unwrap();
        assert_eq!(content, b"a\r\n\r\r\nb\r\n");
        assert!(rest.is_empty());
        assert_eq!(
            postfach_core::mail::header_block::content_fault(&content),
            Some(postfach_core::mail::header_block::Malformed::BareCr)
        );
    }
}
