//! Reading ManageSieve commands (RFC 5804 §4) from a byte buffer, without I/O, so the same
//! code runs in the server and in the fuzz target.
//!
//! A command is an atom followed by arguments — atoms, numbers, quoted strings (`"…"` with
//! `\"` and `\\` escapes, no CR/LF) and literals (`{N+}` CRLF then N octets; `{N}` is accepted
//! too, since the server never has to ask for a literal's continuation) — and ends at CRLF.
//! No crate in the field parses this grammar; it is small, and bounded here by
//! [`Limits`], so a client can make us hold at most one script's worth of input.

/// One argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    Atom(String),
    /// A quoted string or a literal (both are "strings" to the commands).
    Str(Vec<u8>),
}

impl Arg {
    pub fn text(&self) -> Option<String> {
        match self {
            Arg::Atom(a) => Some(a.clone()),
            Arg::Str(s) => String::from_utf8(s.clone()).ok(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// Upper case.
    pub name: String,
    pub args: Vec<Arg>,
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest line outside literals.
    pub line: usize,
    /// Largest literal.
    pub literal: usize,
    /// Most arguments of one command.
    pub args: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// More input is needed.
    Incomplete,
    /// A command and how many bytes of the buffer it used.
    Command(Command, usize),
    /// Malformed input: the reply text and how many bytes to drop (through the line's end).
    Bad(String, usize),
    /// Input beyond the limits: the connection is closed with this reason.
    TooBig(String),
}

/// Reads the first command of `buf`.
pub fn parse(buf: &[u8], limits: &Limits) -> Parsed {
    let mut pos = 0;
    let mut args: Vec<Arg> = Vec::new();
    let mut name: Option<String> = None;
    // Bytes consumed outside literals on the current line (the line limit).
    let mut line_len = 0usize;
    let line_end = |from: usize| {
        buf[from..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|i| from + i + 1)
    };
    let bad = |msg: &str, from: usize| match line_end(from) {
        Some(end) => Parsed::Bad(msg.to_string(), end),
        None if buf.len() - from > limits.line => Parsed::TooBig("line too long".into()),
        None => Parsed::Incomplete,
    };
    loop {
        if line_len > limits.line {
            return Parsed::TooBig("line too long".into());
        }
        let Some(&b) = buf.get(pos) else {
            return if buf.len() > limits.line + limits.literal {
                Parsed::TooBig("command too long".into())
            } else {
                Parsed::Incomplete
            };
        };
        match b {
            b' ' => {
                pos += 1;
                line_len += 1;
            }
            b'\r' | b'\n' => {
                let end = if b == b'\r' {
                    match buf.get(pos + 1) {
                        None => return Parsed::Incomplete,
                        Some(b'\n') => pos + 2,
                        Some(_) => return bad("stray CR", pos),
                    }
                } else {
                    pos + 1
                };
                return match name {
                    Some(name) => Parsed::Command(Command { name, args }, end),
                    // An empty line: nothing to do, but it is not a command either.
                    None => Parsed::Bad("empty command".into(), end),
                };
            }
            b'"' => {
                if name.is_none() {
                    return bad("a command starts with its name", pos);
                }
                let mut s = Vec::new();
                let mut i = pos + 1;
                loop {
                    match buf.get(i) {
                        None => {
                            return if i - pos > limits.line {
                                Parsed::TooBig("line too long".into())
                            } else {
                                Parsed::Incomplete
                            };
                        }
                        Some(b'"') => break,
                        Some(b'\\') => match buf.get(i + 1) {
                            None => return Parsed::Incomplete,
                            Some(c @ (b'"' | b'\\')) => {
                                s.push(*c);
                                i += 2;
                            }
                            Some(_) => return bad("bad escape in a quoted string", pos),
                        },
                        Some(b'\r' | b'\n') => return bad("unterminated quoted string", pos),
                        Some(c) => {
                            s.push(*c);
                            i += 1;
                        }
                    }
                }
                line_len += i + 1 - pos;
                pos = i + 1;
                args.push(Arg::Str(s));
            }
            b'{' => {
                if name.is_none() {
                    return bad("a command starts with its name", pos);
                }
                let Some(close) = buf[pos..].iter().take(24).position(|&b| b == b'}') else {
                    return if buf.len() - pos >= 24 {
                        bad("bad literal", pos)
                    } else {
                        Parsed::Incomplete
                    };
                };
                let spec = &buf[pos + 1..pos + close];
                let digits = spec.strip_suffix(b"+").unwrap_or(spec);
                let Some(n) = std::str::from_utf8(digits)
                    .ok()
                    .and_then(|d| d.parse::<usize>().ok())
                else {
                    return bad("bad literal length", pos);
                };
                if n > limits.literal {
                    return Parsed::TooBig(format!("literal larger than {} bytes", limits.literal));
                }
                let mut start = pos + close + 1;
                match (buf.get(start), buf.get(start + 1)) {
                    (Some(b'\r'), Some(b'\n')) => start += 2,
                    (Some(b'\n'), _) => start += 1,
                    (None, _) | (Some(b'\r'), None) => return Parsed::Incomplete,
                    _ => return bad("a literal's length is followed by CRLF", pos),
                }
                if buf.len() < start + n {
                    return Parsed::Incomplete;
                }
                args.push(Arg::Str(buf[start..start + n].to_vec()));
                pos = start + n;
                line_len = 0;
            }
            _ => {
                let end = buf[pos..]
                    .iter()
                    .position(|&c| matches!(c, b' ' | b'\r' | b'\n' | b'"' | b'{'))
                    .map(|i| pos + i);
                let Some(end) = end else {
                    return if buf.len() - pos > limits.line {
                        Parsed::TooBig("line too long".into())
                    } else {
                        Parsed::Incomplete
                    };
                };
                let word = &buf[pos..end];
                if !word.iter().all(|c| c.is_ascii_graphic()) {
                    return bad("invalid characters", pos);
                }
                let word = String::from_utf8_lossy(word).into_owned();
                line_len += end - pos;
                pos = end;
                match name {
                    None => name = Some(word.to_ascii_uppercase()),
                    Some(_) => args.push(Arg::Atom(word)),
                }
            }
        }
        if args.len() > limits.args {
            return bad("too many arguments", pos);
        }
    }
}

/// A quoted string for a response (RFC 5804 §4: `"` and `\` escaped); text with CR or LF
/// goes out as a literal instead.
pub fn quote(s: &str) -> String {
    if s.contains(['\r', '\n']) || s.len() > 1024 {
        return format!("{{{}}}\r\n{s}", s.len());
    }
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Runs the reader over arbitrary input until it is used up (the fuzz target).
pub fn exercise(data: &[u8]) {
    let limits = Limits {
        line: 256,
        literal: 4096,
        args: 8,
    };
    let mut buf = data;
    loop {
        match parse(buf, &limits) {
            Parsed::Command(_, used) | Parsed::Bad(_, used) => {
                assert!(used > 0 && used <= buf.len());
                buf = &buf[used..];
            }
            Parsed::Incomplete | Parsed::TooBig(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Limits = Limits {
        line: 100,
        literal: 1000,
        args: 4,
    };

    #[test]
    fn commands_strings_and_literals() {
        let p = parse(b"putscript \"my \\\"s\\\\\" {5+}\r\nkeep;\r\nNOOP\r\n", &L);
        let Parsed::Command(c, used) = p else {
            panic!("{p:?}")
        };
        assert_eq!(c.name, "PUTSCRIPT");
        assert_eq!(
            c.args,
            vec![Arg::Str(b"my \"s\\".to_vec()), Arg::Str(b"keep;".to_vec())]
        );
        assert_eq!(used, 34);
        assert!(matches!(parse(b"NOOP\r\n", &L), Parsed::Command(c, 6) if c.args.is_empty()));
        assert!(
            matches!(parse(b"AUTHENTICATE \"PLAIN\" \"AGEAYg==\"\r\n", &L), Parsed::Command(c, _) if c.args.len() == 2)
        );
    }

    #[test]
    fn incomplete_bad_and_too_big() {
        assert_eq!(
            parse(b"PUTSCRIPT \"x\" {5+}\r\nkee", &L),
            Parsed::Incomplete
        );
        assert_eq!(parse(b"LISTSCRIPTS", &L), Parsed::Incomplete);
        assert_eq!(parse(b"LISTSCRIPTS\r", &L), Parsed::Incomplete);
        assert!(matches!(
            parse(b"PUTSCRIPT \"x\" {99999+}\r\n", &L),
            Parsed::TooBig(_)
        ));
        assert!(matches!(
            parse(b"X \"unterminated\r\nNOOP\r\n", &L),
            Parsed::Bad(_, 17)
        ));
        assert!(matches!(
            parse(b"\"quoted first\"\r\n", &L),
            Parsed::Bad(_, 16)
        ));
        assert!(matches!(parse(b"X {abc}\r\n", &L), Parsed::Bad(_, 9)));
        assert!(matches!(parse(&[b'A'; 300], &L), Parsed::TooBig(_)));
        assert!(matches!(
            parse(b"X a b c d e f\r\n", &L),
            Parsed::Bad(_, 15)
        ));
        assert!(matches!(parse(b"\r\n", &L), Parsed::Bad(_, 2)));
    }

    #[test]
    fn quoting_round_trips_through_the_reader() {
        let q = quote("a \"b\" \\ c");
        let Parsed::Command(c, _) = parse(format!("X {q}\r\n").as_bytes(), &L) else {
            panic!()
        };
        assert_eq!(c.args[0].text().unwrap(), "a \"b\" \\ c");
        assert_eq!(quote("two\nlines"), "{9}\r\ntwo\nlines");
    }

    #[test]
    fn exercise_survives_garbage() {
        for input in [
            &b"{"[..],
            b"X {3}\r\nab",
            b"\"\\",
            b"A\rB\r\n{0}\r\n",
            b"X {18446744073709551616}\r\n",
        ] {
            exercise(input);
        }
    }
}
