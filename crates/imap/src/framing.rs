//! Cutting the client's byte stream into commands (RFC 9051 §2.2, §4.3): imap-codec decodes;
//! this decides when to read more, when to send a continuation request for a synchronising
//! literal, and when input breaks a limit. No I/O here, so that the fuzz target and tests can
//! drive exactly the path a connection takes.
//!
//! - `Incomplete`: read more, unless the unfinished line, the command's literals or the whole
//!   command grew past its limit. Literal data already in the buffer (a LITERAL+ client sends
//!   it with its announcement, RFC 7888) is measured by the sizes the lines announce.
//! - `LiteralFound` (the buffer ends where a literal starts): check its size; a synchronising
//!   literal gets `+`; a non-synchronising one is already on its way.
//! - `Failed`: the command ends at the first line end after its last literal; it is dropped
//!   and answered BAD with its tag if it had a readable one.
//!
//! Literal limits: only APPEND of a logged-in client may carry a message-sized literal; every
//! other literal (a login, a search string, a mailbox name) is held to the line limit, so that
//! a client cannot make the server buffer megabytes before it has even logged in.
//!
//! `SEARCH RETURN (…)` (RFC 4731, RFC 9051 §6.4.4) is not in imap-codec's grammar yet: the
//! options are taken out of the command line before decoding and handed on with the command.

use imap_codec::CommandCodec;
use imap_codec::decode::{CommandDecodeError, Decoder};
use imap_codec::imap_types::IntoStatic;
use imap_codec::imap_types::command::Command;
use imap_codec::imap_types::core::{LiteralMode, Tag};

use crate::shim::{self, Shimmed};

/// `SEARCH RETURN (…)` options, upper case.
pub type SearchReturn = Vec<String>;

/// What the next bytes of input amount to.
#[derive(Debug)]
pub enum Framed {
    Command(Box<Command<'static>>, Option<SearchReturn>),
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

/// The size a line (without its LF) announces for the literal that follows it: `{n}`,
/// `{n+}`, `~{n}`.
fn announced_literal(line: &[u8]) -> Option<u64> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let l = line.strip_suffix(b"}")?;
    let open = l.iter().rposition(|&b| b == b'{')?;
    let digits = &l[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || digits.len() > 12 {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Where an incomplete command stands: the length of its unfinished line (0 inside literal
/// data) and the total its literals announce so far.
fn measure(buf: &[u8]) -> (usize, u64) {
    let mut pos = 0usize;
    let mut literals = 0u64;
    loop {
        let Some(nl) = find_newline(&buf[pos..]).map(|p| pos + p) else {
            return (buf.len() - pos, literals);
        };
        let Some(n) = announced_literal(&buf[pos..nl]) else {
            return (0, literals);
        };
        literals = literals.saturating_add(n);
        let next = (nl as u64 + 1).saturating_add(n);
        if next >= buf.len() as u64 {
            return (0, literals);
        }
        pos = next as usize;
    }
}

/// Where the command at the start of `buf` ends (after its final line end): lines that
/// announce a literal continue after its data. Literal data known to be there
/// (`literal_until`) is skipped as well. Without a final line end, the whole buffer.
fn command_end(buf: &[u8], literal_until: usize) -> usize {
    let mut pos = 0;
    loop {
        let Some(nl) = find_newline(&buf[pos..]).map(|p| pos + p) else {
            return buf.len();
        };
        match announced_literal(&buf[pos..nl]) {
            Some(n) => {
                pos = usize::try_from((nl as u64 + 1).saturating_add(n))
                    .unwrap_or(usize::MAX)
                    .min(buf.len())
            }
            None if nl < literal_until => pos = literal_until.min(buf.len()),
            None => return nl + 1,
        }
        if pos >= buf.len() {
            return buf.len();
        }
    }
}

/// Takes `RETURN (…)` out of a `tag [UID] SEARCH RETURN (…) criteria` line (without its line
/// end): the options, and the line without them.
fn strip_search_return(line: &[u8]) -> Option<(SearchReturn, Vec<u8>)> {
    let text = std::str::from_utf8(line).ok()?;
    let (tag, rest) = text.split_once(' ')?;
    let (mut verb, mut rest) = rest.split_once(' ')?;
    let mut prefix = format!("{tag} {verb}");
    if verb.eq_ignore_ascii_case("UID") {
        (verb, rest) = rest.split_once(' ')?;
        prefix = format!("{prefix} {verb}");
    }
    if !verb.eq_ignore_ascii_case("SEARCH") {
        return None;
    }
    let (word, rest) = rest.split_once(' ')?;
    if !word.eq_ignore_ascii_case("RETURN") {
        return None;
    }
    let inner = rest.strip_prefix('(')?;
    let (options, criteria) = inner.split_once(')')?;
    let options = options
        .split_whitespace()
        .map(|o| o.to_ascii_uppercase())
        .collect();
    Some((
        options,
        format!("{prefix} {}", criteria.trim_start()).into_bytes(),
    ))
}

pub struct Framer {
    /// Input not yet consumed.
    pub buf: Vec<u8>,
    /// The buffer holds literal data up to here: no line-length rule inside.
    literal_until: usize,
    /// Largest literal of an APPEND once logged in (a message).
    max_literal: u32,
    max_line: usize,
    /// Set by the session at login: message-sized literals are allowed from then on.
    pub authenticated: bool,
    /// RETURN options taken out of the command being framed.
    search_return: Option<SearchReturn>,
}

impl Framer {
    pub fn new(max_literal: u32, max_line: usize) -> Self {
        Framer {
            buf: Vec::with_capacity(4096),
            literal_until: 0,
            max_literal,
            max_line,
            authenticated: false,
            search_return: None,
        }
    }

    /// Gives back the room of a large input (an APPEND's literal) once it is consumed: a
    /// connection keeps only a small buffer while it waits for its next command.
    pub fn release_spare(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > 64 * 1024 {
            self.buf = Vec::new();
        }
    }

    /// Forgets all input (after STARTTLS nothing sent before the handshake may count).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.literal_until = 0;
        self.search_return = None;
    }

    /// The largest literal the command at the start of the buffer may carry.
    fn literal_limit(&self) -> u64 {
        let mut words = self.buf.split(|&b| b == b' ' || b == b'\r' || b == b'\n');
        let _tag = words.next();
        let append = words
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case(b"APPEND"));
        if self.authenticated && append {
            u64::from(self.max_literal)
        } else {
            self.max_line as u64
        }
    }

    /// The most one command may occupy: its literals plus its lines.
    fn command_cap(&self) -> u64 {
        self.literal_limit() + 2 * self.max_line as u64
    }

    /// The tag at the start of the buffer, if it is one.
    fn leading_tag(&self) -> Option<Tag<'static>> {
        let first = self.buf.split(|&b| b == b' ').next()?;
        Tag::try_from(std::str::from_utf8(first).ok()?.to_string()).ok()
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
            if let Some((options, rewritten)) = strip_search_return(line) {
                let len = line.len();
                self.buf.splice(..len, rewritten);
                self.search_return = Some(options);
            }
        }
        match CommandCodec::default().decode(&self.buf) {
            Ok((rest, cmd)) => {
                let used = self.buf.len() - rest.len();
                let cmd = cmd.into_static();
                self.buf.drain(..used);
                self.literal_until = 0;
                Framed::Command(Box::new(cmd), self.search_return.take())
            }
            Err(CommandDecodeError::Incomplete) => {
                let (open_line, literals) = measure(&self.buf);
                if literals > self.literal_limit() || self.buf.len() as u64 > self.command_cap() {
                    // Literal data is on its way that will not be read: the session ends.
                    let tag = self.leading_tag();
                    self.clear();
                    return match tag {
                        Some(tag) => Framed::LiteralTooBig { tag, close: true },
                        None => Framed::TooLong,
                    };
                }
                if open_line > self.max_line {
                    self.clear();
                    return Framed::TooLong;
                }
                Framed::NeedMore {
                    continuation: false,
                }
            }
            Err(CommandDecodeError::LiteralFound { tag, length, mode }) => {
                let total = self.buf.len() as u64 + u64::from(length);
                if u64::from(length) > self.literal_limit() || total > self.command_cap() {
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
                self.search_return = None;
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
/// in chunks (sizes taken from the input itself), every frame is taken. For the fuzz target
/// (`fuzz/`) and the tests; it must never panic, loop or keep more than one command's worth
/// of input. The first byte decides whether the client counts as logged in.
pub fn exercise(data: &[u8]) -> usize {
    let mut framer = Framer::new(4096, 1024);
    framer.authenticated = data.first().is_some_and(|b| b & 1 == 1);
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
                Framed::Command(cmd, _) => {
                    // Make sure what was decoded encodes back too.
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
        assert!(framer.buf.len() as u64 <= u64::from(framer.max_literal) + 3 * 1024 + 64);
    }
    frames
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames_as(input: &[u8], max_literal: u32, authenticated: bool) -> Vec<String> {
        let mut f = Framer::new(max_literal, 1024);
        f.authenticated = authenticated;
        f.buf.extend_from_slice(input);
        let mut out = Vec::new();
        loop {
            match f.next_frame() {
                Framed::NeedMore { continuation } => {
                    out.push(format!("more{}", if continuation { "+" } else { "" }));
                    return out;
                }
                Framed::Command(c, ret) => out.push(match ret {
                    Some(r) => format!("cmd {} RETURN {}", c.name(), r.join(" ")),
                    None => format!("cmd {}", c.name()),
                }),
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

    fn frames(input: &[u8], max_literal: u32) -> Vec<String> {
        frames_as(input, max_literal, true)
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
    fn message_sized_literals_only_for_append_after_login() {
        // Before login even APPEND is held to the line limit (1024 here).
        assert_eq!(
            frames_as(b"a APPEND INBOX {3000}\r\n", 1 << 20, false),
            ["toobig a false", "more"]
        );
        assert_eq!(
            frames_as(b"a APPEND INBOX {3000}\r\n", 1 << 20, true),
            ["more+"]
        );
        assert_eq!(
            frames_as(b"a LOGIN {3000}\r\n", 1 << 20, true),
            ["toobig a false", "more"]
        );
        assert_eq!(
            frames_as(b"a SEARCH TEXT {5000}\r\n", 1 << 20, true),
            ["toobig a false", "more"]
        );
    }

    #[test]
    fn a_literal_sent_with_its_announcement_is_measured_by_its_size() {
        // Past the limit: refused, and the connection must end.
        let mut input = b"a APPEND INBOX {100000+}\r\n".to_vec();
        input.extend(std::iter::repeat_n(b"line\r\n", 2000).flatten());
        assert_eq!(frames(&input, 4096), ["toobig a true", "more"]);
        // Within the limit, a long line inside the literal is message data, not a command
        // line: nothing to complain about.
        let body = format!("Subject: x\r\n\r\n{}\r\n", "y".repeat(3000));
        let mut input = format!("a APPEND INBOX {{{}+}}\r\n", body.len()).into_bytes();
        input.extend_from_slice(&body.as_bytes()[..2500]);
        assert_eq!(frames(&input, 1 << 20), ["more"]);
        input.extend_from_slice(&body.as_bytes()[2500..]);
        input.extend_from_slice(b"\r\n");
        assert_eq!(frames(&input, 1 << 20), ["cmd APPEND", "more"]);
    }

    #[test]
    fn search_return_options_are_taken_out() {
        assert_eq!(
            frames(b"a UID SEARCH RETURN (MIN count) UNSEEN\r\n", 1024),
            ["cmd SEARCH RETURN MIN COUNT", "more"]
        );
        assert_eq!(
            frames(b"a SEARCH RETURN () ALL\r\nb SEARCH ALL\r\n", 1024),
            ["cmd SEARCH RETURN ", "cmd SEARCH", "more"]
        );
        assert_eq!(
            frames(b"a SEARCH RETURN (ALL) SUBJECT {3}\r\nabc\r\n", 1024),
            ["cmd SEARCH RETURN ALL", "more"]
        );
    }

    #[test]
    fn exercise_survives_garbage() {
        // A deterministic pseudo-random walk over mutations of real commands; the fuzz
        // target runs the same function without end.
        let seeds: [&[u8]; 7] = [
            b"a LOGIN {3}\r\nann {2}\r\npw\r\n",
            b"b UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)]<0.100> FLAGS)\r\n",
            b"c APPEND INBOX (\\Seen) \"23-Nov-2026 10:00:00 +0000\" {5+}\r\nhello\r\n",
            b"d LIST (SUBSCRIBED) \"\" (\"*\" \"%\") RETURN (STATUS (MESSAGES))\r\n",
            b"e SEARCH CHARSET UTF-8 OR SUBJECT {3}\r\nabc HEADER X-Y z\r\n",
            b"f CREATE Projekte (USE (\\Archive))\r\ng IDLE\r\nDONE\r\n",
            b"h UID SEARCH RETURN (MIN MAX) SUBJECT {2+}\r\nab\r\n",
        ];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut rand = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..4000 {
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
