//! Cutting the client's byte stream into commands (RFC 9051 §2.2, §4.3): imap-codec decodes;
//! this decides when to read more, when to send a continuation request for a synchronising
//! literal, and when input breaks a limit. No I/O here, so that the fuzz target and tests can
//! drive exactly the path a connection takes.
//!
//! - `Incomplete`: read more, unless the command line (outside literals) or the whole
//!   command grew past its limit.
//! - `LiteralFound` (the buffer ends where a literal starts): check its size; a synchronising
//!   literal gets `+`; a non-synchronising one (LITERAL+, RFC 7888) is already on its way.
//! - `Failed`: the command ends at the first line end after its last literal; it is dropped
//!   and answered BAD with its tag if it had a readable one.

use imap_codec::CommandCodec;
use imap_codec::decode::{CommandDecodeError, Decoder};
use imap_codec::imap_types::IntoStatic;
use imap_codec::imap_types::command::Command;
use imap_codec::imap_types::core::{LiteralMode, Tag};

use crate::shim::{self, Shimmed};

/// What the next bytes of input amount to.
#[derive(Debug)]
pub enum Framed {
    Command(Box<Command<'static>>),
    /// A command form imap-codec does not parse yet (see `shim`).
    Shim(Shimmed),
    /// Read more input; with `continuation`, send a continuation request first.
    NeedMore {
        continuation: bool,
    },
    /// A literal past the limit: answer `NO [TOOBIG]`; with `close`, the data is already on
    /// its way (non-synchronising) and the connection must end.
    LiteralTooBig {
        tag: Tag<'static>,
        close: bool,
    },
    /// The command line (outside literals) or the whole command is too long: the connection
    /// must end, as there is no telling where the command stops.
    TooLong,
    /// Not a command: BAD, with the tag if there is one.
    Syntax {
        tag: Option<Tag<'static>>,
    },
}

pub fn find_newline(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b == b'\n')
}

/// Where the command at the start of `buf` ends (after its final line end): line ends that
/// announce a literal (`{n}`, `{n+}`, `~{n}`) continue the command after n bytes. Literal
/// data known to be there (`literal_until`) is skipped as well. Without a final line end, the
/// whole buffer.
fn command_end(buf: &[u8], literal_until: usize) -> usize {
    let mut pos = 0;
    loop {
        let Some(nl) = find_newline(&buf[pos..]).map(|p| pos + p) else {
            return buf.len();
        };
        let line = &buf[pos..nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let announced = line.strip_suffix(b"}").and_then(|l| {
            let open = l.iter().rposition(|&b| b == b'{')?;
            let digits = &l[open + 1..];
            let digits = digits.strip_suffix(b"+").unwrap_or(digits);
            std::str::from_utf8(digits).ok()?.parse::<usize>().ok()
        });
        match announced {
            Some(n) => pos = (nl + 1).saturating_add(n).min(buf.len()),
            None if nl < literal_until => pos = literal_until.min(buf.len()),
            None => return nl + 1,
        }
        if pos >= buf.len() {
            return buf.len();
        }
    }
}

pub struct Framer {
    /// Input not yet consumed.
    pub buf: Vec<u8>,
    /// The buffer holds literal data up to here: no line-length rule inside.
    literal_until: usize,
    max_literal: u32,
    max_line: usize,
}

impl Framer {
    pub fn new(max_literal: u32, max_line: usize) -> Self {
        Framer {
            buf: Vec::with_capacity(4096),
            literal_until: 0,
            max_literal,
            max_line,
        }
    }

    /// Forgets all input (after STARTTLS nothing sent before the handshake may count).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.literal_until = 0;
    }

    /// The most one command may occupy: its literals plus its lines.
    fn command_cap(&self) -> u64 {
        u64::from(self.max_literal) + 2 * self.max_line as u64
    }

    pub fn next_frame(&mut self) -> Framed {
        // While a literal is arriving there is nothing to decode yet (and re-decoding a
        // large APPEND after every read would be quadratic).
        if self.buf.is_empty() || self.buf.len() < self.literal_until {
            return Framed::NeedMore {
                continuation: false,
            };
        }
        if self.literal_until == 0
            && let Some(end) = find_newline(&self.buf)
        {
            let line = &self.buf[..end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if !line.ends_with(b"}")
                && let Some(s) = shim::parse(line)
            {
                self.buf.drain(..=end);
                return Framed::Shim(s);
            }
        }
        match CommandCodec::default().decode(&self.buf) {
            Ok((rest, cmd)) => {
                let used = self.buf.len() - rest.len();
                let cmd = cmd.into_static();
                self.buf.drain(..used);
                self.literal_until = 0;
                Framed::Command(Box::new(cmd))
            }
            Err(CommandDecodeError::Incomplete) => {
                // Only the part of the line after the last literal counts against the line
                // limit; literal data has its own limit, and so has the whole command (a
                // LITERAL+ client may send a literal together with its announcement).
                let line_start = self.literal_until.max(
                    self.buf
                        .iter()
                        .rposition(|&b| b == b'\n')
                        .map_or(0, |p| p + 1),
                );
                if self.buf.len().saturating_sub(line_start) > self.max_line
                    || self.buf.len() as u64 > self.command_cap()
                {
                    self.clear();
                    return Framed::TooLong;
                }
                Framed::NeedMore {
                    continuation: false,
                }
            }
            Err(CommandDecodeError::LiteralFound { tag, length, mode }) => {
                let total = self.buf.len() as u64 + u64::from(length);
                if length > self.max_literal || total > self.command_cap() {
                    let tag = tag.into_static();
                    self.clear();
                    return Framed::LiteralTooBig {
                        tag,
                        close: mode == LiteralMode::NonSync,
                    };
                }
                self.literal_until = self.buf.len() + length as usize;
                Framed::NeedMore {
                    continuation: mode == LiteralMode::Sync,
                }
            }
            Err(CommandDecodeError::Failed) => {
                // The bad command ends at the first line end after its last literal.
                let end = command_end(&self.buf, self.literal_until);
                let line: Vec<u8> = self.buf.drain(..end).collect();
                self.literal_until = 0;
                let tag = line
                    .split(|&b| b == b' ')
                    .next()
                    .and_then(|t| std::str::from_utf8(t).ok())
                    .and_then(|t| Tag::try_from(t.trim().to_string()).ok());
                Framed::Syntax { tag }
            }
        }
    }

    /// One line for SASL or IDLE, without its line end; None until a whole line is there.
    pub fn take_line(&mut self) -> Option<Vec<u8>> {
        let end = find_newline(&self.buf)?;
        let line: Vec<u8> = self.buf.drain(..=end).collect();
        let line = line.strip_suffix(b"\n").unwrap_or(&line);
        Some(line.strip_suffix(b"\r").unwrap_or(line).to_vec())
    }
}

/// Drives the command path over arbitrary input the way a connection does: the input arrives
/// in chunks (sizes taken from the input itself), every frame is taken, continuation requests
/// are answered by sending more. For the fuzz target (`fuzz/`) and the tests; it must never
/// panic, loop or keep more than one command's worth of input.
pub fn exercise(data: &[u8]) -> usize {
    let mut framer = Framer::new(4096, 1024);
    let mut frames = 0;
    let mut rest = data;
    while !rest.is_empty() {
        let n = (usize::from(rest[0]) % 64 + 1).min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        framer.buf.extend_from_slice(chunk);
        loop {
            let before = framer.buf.len();
            match framer.next_frame() {
                Framed::NeedMore { .. } => break,
                Framed::Command(cmd) => {
                    // Responses are built from commands; make sure they encode back too.
                    let _ =
                        imap_codec::encode::Encoder::encode(&CommandCodec::default(), &cmd).dump();
                }
                _ => {}
            }
            frames += 1;
            assert!(
                framer.buf.len() < before || before == 0,
                "a frame must consume input"
            );
        }
        assert!(framer.buf.len() as u64 <= framer.command_cap() + 64);
    }
    frames
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(input: &[u8], max_literal: u32) -> Vec<String> {
        let mut f = Framer::new(max_literal, 1024);
        f.buf.extend_from_slice(input);
        let mut out = Vec::new();
        loop {
            match f.next_frame() {
                Framed::NeedMore { continuation } => {
                    out.push(format!("more{}", if continuation { "+" } else { "" }));
                    return out;
                }
                Framed::Command(c) => out.push(format!("cmd {}", c.name())),
                Framed::Shim(_) => out.push("shim".into()),
                Framed::LiteralTooBig { tag, close } => {
                    out.push(format!("toobig {} {close}", tag.as_ref()))
                }
                Framed::TooLong => out.push("toolong".into()),
                Framed::Syntax { tag } => out.push(format!(
                    "bad {}",
                    tag.map(|t| t.as_ref().to_string()).unwrap_or_default()
                )),
            }
        }
    }

    #[test]
    fn commands_literals_and_limits() {
        assert_eq!(
            frames(b"a NOOP\r\nb LOGOUT\r\n", 1024),
            ["cmd NOOP", "cmd LOGOUT", "more"]
        );
        assert_eq!(frames(b"a LOGIN {3}\r\n", 1024), ["more+"]);
        assert_eq!(frames(b"a LOGIN {3+}\r\n", 1024), ["more"]);
        assert_eq!(
            frames(b"a LOGIN {3}\r\nann {2}\r\npw\r\n", 1024),
            ["cmd LOGIN", "more"]
        );
        assert_eq!(
            frames(b"t1 APPEND INBOX {5000}\r\n", 1024),
            ["toobig t1 false", "more"]
        );
        assert_eq!(
            frames(b"t1 APPEND INBOX {5000+}\r\n", 1024),
            ["toobig t1 true", "more"]
        );
        assert_eq!(
            frames(b"x FOO bar\r\n* junk\r\nc NOOP\r\n", 1024),
            ["bad x", "bad ", "cmd NOOP", "more"]
        );
        // A bad command whose literal holds a line end is dropped as a whole.
        assert_eq!(
            frames(b"a LOGIN {4}\r\nx\r\ny (bad\r\nb NOOP\r\n", 1024),
            ["bad a", "cmd NOOP", "more"]
        );
        let long = [b"a LOGIN ".as_slice(), &[b'x'; 2000]].concat();
        assert_eq!(frames(&long, 1024), ["toolong", "more"]);
        assert_eq!(
            frames(b"a LIST (SUBSCRIBED) \"\" *\r\n", 1024),
            ["shim", "more"]
        );
    }

    #[test]
    fn a_literal_sent_with_its_announcement_is_bounded_too() {
        let mut input = b"a APPEND INBOX {100000+}\r\n".to_vec();
        input.extend(std::iter::repeat_n(b"line\r\n", 2000).flatten());
        assert_eq!(frames(&input, 4096), ["toolong", "more"]);
    }

    #[test]
    fn exercise_survives_garbage() {
        // A deterministic pseudo-random walk over mutations of real commands; the fuzz
        // target runs the same function without end.
        let seeds: [&[u8]; 6] = [
            b"a LOGIN {3}\r\nann {2}\r\npw\r\n",
            b"b UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)]<0.100> FLAGS)\r\n",
            b"c APPEND INBOX (\\Seen) \"23-Nov-2026 10:00:00 +0000\" {5+}\r\nhello\r\n",
            b"d LIST (SUBSCRIBED) \"\" (\"*\" \"%\") RETURN (STATUS (MESSAGES))\r\n",
            b"e SEARCH CHARSET UTF-8 OR SUBJECT {3}\r\nabc HEADER X-Y z\r\n",
            b"f CREATE Projekte (USE (\\Archive))\r\ng IDLE\r\nDONE\r\n",
        ];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut rand = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..3000 {
            let mut input = seeds[round % seeds.len()].to_vec();
            for _ in 0..(rand() % 6) {
                let pos = (rand() as usize) % (input.len() + 1);
                match rand() % 4 {
                    0 if pos < input.len() => input[pos] = rand() as u8,
                    1 => input.insert(pos, rand() as u8),
                    2 if pos < input.len() => {
                        input.remove(pos);
                    }
                    _ => input.extend_from_slice(b"{99999}\r\n"),
                }
            }
            exercise(&input);
        }
    }
}
