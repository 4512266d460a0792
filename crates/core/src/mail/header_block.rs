//! The header section of a message, read once and strictly (RFC 5322 §2.2, §2.2.3, §3.6), so
//! that every decision taken on a message — sender authentication (F4), sender ownership (P1),
//! DKIM authority (O2), the spam scorer, Sieve and the store — sees the same header fields.
//!
//! A message whose header section cannot be read one way only is refused at the end of DATA
//! instead of being handed to parsers that each guess differently (one would skip a line
//! without a colon, another would end the header section there, and a DMARC check that reads
//! "no From" lets through what a mail reader shows as "From: the bank"). What is refused:
//!
//! - a line that is neither a header field (`name:`, RFC 5322 §3.6.8 `ftext`) nor the
//!   continuation of one (it starts with WSP, §2.2.3), including a continuation as the first
//!   line (it would extend the header a receiving server prepends);
//! - white space between a field name and its colon (the obsolete §4.5 syntax: mail readers
//!   take `From :` as From, some checkers do not);
//! - a line of white space only (some parsers end the header section there);
//! - a header section over [`MAX_HEADER_BYTES`] or with more than [`MAX_FIELDS`] fields;
//! - anything but exactly one `From` field holding exactly one mailbox whose domain is a
//!   valid host name ([`HeaderBlock::author`]): RFC 5322 §3.6 allows one From field, and a
//!   From with several mailboxes needs a Sender field; DMARC (RFC 7489 §6.6.1) leaves such mail
//!   to local policy, and ours is to refuse it on the MX and on submission alike.
//!
//! Bare CR, bare LF and NUL are refused before this ([`content_fault`]); the header section
//! ends at the first empty line, or at the end of the message when there is none.

use mail_parser::MessageParser;

/// The largest header section accepted (Postfix's `header_size_limit` is 100 KiB; generous
/// for mailing-list and ARC-laden mail).
pub const MAX_HEADER_BYTES: usize = 256 * 1024;
/// The most header fields accepted.
pub const MAX_FIELDS: usize = 2000;

/// Why a message's content cannot be taken (each turns into an SMTP reply sentence).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Malformed {
    /// RFC 5321 §2.3.8 / RFC 5322 §2.3: CR and LF occur only together, as CRLF.
    BareCr,
    BareLf,
    /// RFC 5322 §3.5: NUL is not allowed in a message.
    Nul,
    /// The first line of the header section starts with white space.
    LeadingContinuation,
    /// Line `n` (1-based) of the header section is neither a field nor a continuation.
    NotAField(usize),
    /// White space between the name and the colon of the field on line `n`.
    SpaceBeforeColon(usize),
    /// Line `n` of the header section holds only white space.
    BlankContinuation(usize),
    TooLarge,
    TooManyFields,
    NoFrom,
    SeveralFrom,
    /// The From field names no mailbox, or one without an address.
    NoAuthor,
    /// The From field names more than one mailbox.
    SeveralAuthors,
    /// The author's domain is not a valid host name (a trailing dot, an empty label, an IP
    /// literal…).
    BadAuthorDomain(String),
    /// Two parsers disagree about the header fields or the author.
    Ambiguous,
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Malformed::BareCr => write!(f, "it contains a bare CR (lines must end with CRLF)"),
            Malformed::BareLf => write!(f, "it contains a bare LF (lines must end with CRLF)"),
            Malformed::Nul => write!(f, "it contains a NUL character"),
            Malformed::LeadingContinuation => {
                write!(f, "its header section starts with a continuation line")
            }
            Malformed::NotAField(n) => write!(
                f,
                "line {n} of its header section is neither a header field nor a continuation"
            ),
            Malformed::SpaceBeforeColon(n) => write!(
                f,
                "the header field on line {n} has white space before its colon"
            ),
            Malformed::BlankContinuation(n) => {
                write!(f, "line {n} of its header section holds only white space")
            }
            Malformed::TooLarge => write!(
                f,
                "its header section is larger than {} KiB",
                MAX_HEADER_BYTES / 1024
            ),
            Malformed::TooManyFields => {
                write!(f, "its header section has more than {MAX_FIELDS} fields")
            }
            Malformed::NoFrom => write!(f, "it has no From header field"),
            Malformed::SeveralFrom => write!(f, "it has more than one From header field"),
            Malformed::NoAuthor => write!(f, "its From header field names no sender address"),
            Malformed::SeveralAuthors => {
                write!(f, "its From header field names more than one address")
            }
            Malformed::BadAuthorDomain(d) => {
                write!(f, "the domain {d:?} of its From address is not valid")
            }
            Malformed::Ambiguous => write!(f, "its header section cannot be read unambiguously"),
        }
    }
}

/// The first bare CR, bare LF or NUL of a message, if any. Checked on the whole message (a
/// bare line end in the body would become a line end on the next hop, and sizes would differ
/// from the bytes served).
pub fn content_fault(raw: &[u8]) -> Option<Malformed> {
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            0 => return Some(Malformed::Nul),
            b'\r' => {
                if raw.get(i + 1) != Some(&b'\n') {
                    return Some(Malformed::BareCr);
                }
                i += 2;
                continue;
            }
            b'\n' => return Some(Malformed::BareLf),
            _ => {}
        }
        i += 1;
    }
    None
}

/// One header field: its name and the byte range of the whole field (name to final CRLF).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub start: usize,
    /// Where the value starts (after the colon).
    pub value_start: usize,
    /// After the field's final CRLF.
    pub end: usize,
}

/// The header section of a message that passed [`HeaderBlock::parse`].
#[derive(Debug, Clone)]
pub struct HeaderBlock<'a> {
    raw: &'a [u8],
    pub fields: Vec<Field>,
    /// Where the body starts (after the empty line), or the message's length.
    pub body_offset: usize,
}

/// The one author of a message (RFC 5322 §3.6.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    /// The address as written.
    pub address: String,
    /// Its domain, lower case (A-labels for international names).
    pub domain: String,
}

fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

impl<'a> HeaderBlock<'a> {
    /// Reads the header section of `raw`, which must be free of bare CR/LF (see
    /// [`content_fault`]; they are reported as [`Malformed::NotAField`] otherwise).
    pub fn parse(raw: &'a [u8]) -> Result<Self, Malformed> {
        let mut fields: Vec<Field> = Vec::new();
        let mut pos = 0;
        let mut line_no = 0;
        let body_offset = loop {
            if pos >= raw.len() {
                break raw.len();
            }
            if pos > MAX_HEADER_BYTES {
                return Err(Malformed::TooLarge);
            }
            line_no += 1;
            let rest = &raw[pos..];
            let (line, next) = match rest.windows(2).position(|w| w == b"\r\n") {
                Some(e) => (&rest[..e], pos + e + 2),
                // The last line of a message without a final CRLF.
                None => (rest, raw.len()),
            };
            if line.is_empty() {
                break next;
            }
            if line.contains(&b'\n') || line.contains(&b'\r') {
                return Err(Malformed::NotAField(line_no));
            }
            if is_wsp(line[0]) {
                let Some(last) = fields.last_mut() else {
                    return Err(Malformed::LeadingContinuation);
                };
                if line.iter().all(|&b| is_wsp(b)) {
                    return Err(Malformed::BlankContinuation(line_no));
                }
                last.end = next;
            } else {
                let Some(colon) = line.iter().position(|&b| b == b':') else {
                    return Err(Malformed::NotAField(line_no));
                };
                let name = &line[..colon];
                if name.last().is_some_and(|&b| is_wsp(b)) {
                    return Err(Malformed::SpaceBeforeColon(line_no));
                }
                // RFC 5322 §3.6.8: ftext is printable US-ASCII except the colon.
                if name.is_empty() || !name.iter().all(|&b| (33..=126).contains(&b)) {
                    return Err(Malformed::NotAField(line_no));
                }
                if fields.len() >= MAX_FIELDS {
                    return Err(Malformed::TooManyFields);
                }
                fields.push(Field {
                    name: String::from_utf8_lossy(name).into_owned(),
                    start: pos,
                    value_start: pos + colon + 1,
                    end: next,
                });
            }
            pos = next;
        };
        if body_offset > MAX_HEADER_BYTES {
            return Err(Malformed::TooLarge);
        }
        Ok(HeaderBlock {
            raw,
            fields,
            body_offset,
        })
    }

    /// The fields named `name` (case-insensitive), in order.
    pub fn named<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s Field> + 's {
        self.fields
            .iter()
            .filter(move |f| f.name.eq_ignore_ascii_case(name))
    }

    /// The raw value of a field (after the colon, up to and without its final CRLF).
    pub fn value(&self, f: &Field) -> &'a [u8] {
        let v = &self.raw[f.value_start..f.end];
        v.strip_suffix(b"\r\n").unwrap_or(v)
    }

    /// The one author: exactly one From field naming exactly one mailbox with a valid domain.
    /// The field is read by `mail-parser` (the parser of the store, IMAP ENVELOPE, Sieve and
    /// the spam scorer) and by `mail-auth` (the parser of DKIM and DMARC); both must find the
    /// same single address, or the message is [`Malformed::Ambiguous`].
    pub fn author(&self) -> Result<Author, Malformed> {
        let mut from = self.named("From");
        let field = from.next().ok_or(Malformed::NoFrom)?;
        if from.next().is_some() {
            return Err(Malformed::SeveralFrom);
        }
        let value = self.value(field);
        let mut one = b"From:".to_vec();
        one.extend_from_slice(value);
        one.extend_from_slice(b"\r\n\r\n");
        let parsed = MessageParser::default().parse_headers(&one[..]);
        let addrs: Vec<Option<String>> = parsed
            .as_ref()
            .and_then(|m| m.from())
            .map(|a| a.iter().map(|x| x.address().map(str::to_string)).collect())
            .unwrap_or_default();
        let address = match addrs.as_slice() {
            [] | [None] => return Err(Malformed::NoAuthor),
            [Some(a)] => a.trim().to_string(),
            _ => return Err(Malformed::SeveralAuthors),
        };
        // mail-auth's reading of the same field (what DMARC will check).
        let auth = mail_auth::AuthenticatedMessage::parse(&one[..]).ok_or(Malformed::Ambiguous)?;
        match auth.from.as_slice() {
            [a] if a.eq_ignore_ascii_case(&address) => {}
            [] => return Err(Malformed::NoAuthor),
            [_] => return Err(Malformed::Ambiguous),
            _ => return Err(Malformed::SeveralAuthors),
        }
        let Some((local, domain)) = address.rsplit_once('@') else {
            return Err(Malformed::NoAuthor);
        };
        if local.is_empty() {
            return Err(Malformed::NoAuthor);
        }
        // RFC 5322 §3.4.1 allows an "@" in the local part only inside a quoted string, and
        // parsers drop the quotes: "<ceo@bank.test>x@attack.test" or
        // "ceo@bank.test@attack.test" become one address of attack.test, while mail readers
        // show bank.test. No real author needs one; any "@" left in the local part is refused.
        if local.contains('@') {
            return Err(Malformed::Ambiguous);
        }
        if !single_mailbox_syntax(value) {
            return Err(Malformed::Ambiguous);
        }
        let bad = || Malformed::BadAuthorDomain(domain.to_string());
        // validate::domain forgives a trailing dot and white space (a typed domain name); an
        // author's domain must be written as DMARC will look it up (RFC 7489 §3.2: the
        // RFC5322.From domain), and short enough that "_dmarc." fits in front of it.
        if domain.ends_with('.')
            || domain.starts_with('.')
            || domain.contains("..")
            || domain.chars().any(|c| c.is_whitespace() || c.is_control())
            || domain.len() > MAX_AUTHOR_DOMAIN
        {
            return Err(bad());
        }
        let ascii = crate::validate::domain(domain).map_err(|_| bad())?;
        if ascii.len() > MAX_AUTHOR_DOMAIN {
            return Err(bad());
        }
        Ok(Author {
            address,
            domain: ascii,
        })
    }

    /// Checks that `mail-auth` splits the header section into the same fields and finds the
    /// body at the same place (it decides DKIM and DMARC; we decide everything else).
    pub fn agrees_with_mail_auth(&self) -> bool {
        self.agrees_with(mail_auth::AuthenticatedMessage::parse(self.raw).as_ref())
    }

    /// [`HeaderBlock::agrees_with_mail_auth`] with `mail-auth`'s reading of the same message
    /// already made (the SMTP session parses once and authenticates with that parse).
    pub fn agrees_with(&self, m: Option<&mail_auth::AuthenticatedMessage<'_>>) -> bool {
        let Some(m) = m else {
            return self.fields.is_empty();
        };
        m.raw_message.len() == self.raw.len()
            && m.headers.len() == self.fields.len()
            && m.body_offset as usize == self.body_offset
            && m.headers
                .iter()
                .zip(&self.fields)
                .all(|((name, _), f)| name.eq_ignore_ascii_case(f.name.as_bytes()))
    }

    /// The message without the fields for which `drop` says yes.
    pub fn without(&self, mut drop: impl FnMut(&Field, &[u8]) -> bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.raw.len());
        let mut pos = 0;
        for f in &self.fields {
            if drop(f, self.value(f)) {
                out.extend_from_slice(&self.raw[pos..f.start]);
                pos = f.end;
            }
        }
        out.extend_from_slice(&self.raw[pos..]);
        out
    }
}

/// The longest author domain: "_dmarc." in front of it must still be a DNS name (RFC 1035
/// §2.3.4: 253 characters written out).
pub const MAX_AUTHOR_DOMAIN: usize = 253 - "_dmarc.".len();

/// A From value holding one mailbox as RFC 5322 §3.4 writes it: after an angle-addr only
/// white space and comments may follow, and there is at most one angle-addr (quoted strings
/// and comments may hold anything).
fn single_mailbox_syntax(value: &[u8]) -> bool {
    let mut angles = 0;
    let mut in_angle = false;
    let mut after_angle = false;
    let mut depth = 0usize;
    let mut quoted = false;
    let mut escaped = false;
    // An '@' outside quotes, comments and the angle-addr.
    let mut bare_at = false;
    for &b in value {
        if escaped {
            escaped = false;
            continue;
        }
        match b {
            b'\\' if quoted || depth > 0 => escaped = true,
            b'"' if depth == 0 => quoted = !quoted,
            b'(' if !quoted => depth += 1,
            b')' if !quoted && depth > 0 => depth -= 1,
            // An address in a comment: readers show it as the author's name.
            b'@' | b'<' if depth > 0 => return false,
            _ if quoted || depth > 0 => {}
            b'<' => {
                angles += 1;
                if angles > 1 || after_angle {
                    return false;
                }
                in_angle = true;
            }
            b'>' => {
                in_angle = false;
                after_angle = true;
            }
            // Group syntax: From is a mailbox-list, never a group (RFC 5322 §3.6.2).
            b':' if !in_angle => return false,
            b'@' if !in_angle => bare_at = true,
            b' ' | b'\t' | b'\r' | b'\n' => {}
            _ if after_angle => return false,
            _ => {}
        }
    }
    // An address-like display name in front of the real address (`admin@bank.test
    // <eve@attack.test>`): not a phrase RFC 5322 allows unquoted, and readers show it.
    !quoted && depth == 0 && !(angles == 1 && bare_at)
}

/// The authserv-id of an `Authentication-Results` value (RFC 8601 §2.2: the first token,
/// after optional comments), or of an `ARC-Authentication-Results` value (RFC 8617 §4.1.1:
/// after the `i=` tag). Lower case; `None` when there is none.
pub fn authserv_id(value: &[u8], arc: bool) -> Option<String> {
    let text = String::from_utf8_lossy(value);
    let mut rest = skip_cfws(&text);
    if arc {
        // "i=1; authserv-id; ..."
        let (tag, after) = rest.split_once(';')?;
        if !tag.trim().to_ascii_lowercase().starts_with("i") {
            return None;
        }
        rest = skip_cfws(after);
    }
    let id = if let Some(q) = rest.strip_prefix('"') {
        q.split('"').next().unwrap_or_default()
    } else {
        rest.split(|c: char| c == ';' || c == '(' || c.is_whitespace())
            .next()
            .unwrap_or_default()
    };
    let id = id.trim().trim_end_matches('.').to_ascii_lowercase();
    (!id.is_empty()).then_some(id)
}

/// Whether `ours` occurs as a whole token anywhere in the value once quoting is undone (an
/// authserv-id written as `"mail\\.example"`, after a broken comment, or after tags in an
/// unexpected order). Removing a third party's result that merely mentions our name costs
/// nothing; keeping a forgery of ours would cost the recipient's trust.
fn names(value: &[u8], ours: &str) -> bool {
    let text: String = String::from_utf8_lossy(value)
        .chars()
        .filter(|c| *c != '\\' && *c != '"')
        .collect::<String>()
        .to_ascii_lowercase();
    let is_name_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_';
    text.match_indices(ours).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + ours.len()..]
            .trim_start_matches('.')
            .chars()
            .next();
        !before.is_some_and(is_name_char) && !after.is_some_and(is_name_char)
    })
}

/// Skips white space and (nested) comments.
fn skip_cfws(mut s: &str) -> &str {
    loop {
        s = s.trim_start();
        if !s.starts_with('(') {
            return s;
        }
        let mut depth = 0usize;
        let mut end = s.len();
        let mut escaped = false;
        for (i, c) in s.char_indices() {
            if escaped {
                escaped = false;
                continue;
            }
            match c {
                '\\' => escaped = true,
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        s = &s[end..];
    }
}

/// RFC 8601 §5: the message without any `Authentication-Results` (and, RFC 8617 §5.1,
/// `ARC-Authentication-Results`) field that claims to come from `authserv_id` — a sender's
/// forgery of our verdict, or a copy of it from an earlier pass through us. The header block
/// must have been read from `raw`.
pub fn strip_our_results(block: &HeaderBlock<'_>, our_id: &str) -> Option<Vec<u8>> {
    let ours = our_id.trim_end_matches('.').to_ascii_lowercase();
    let forged = |f: &Field, v: &[u8]| {
        let arc = f.name.eq_ignore_ascii_case("ARC-Authentication-Results");
        (arc || f.name.eq_ignore_ascii_case("Authentication-Results"))
            && (authserv_id(v, arc).is_some_and(|id| id == ours) || names(v, &ours))
    };
    block
        .fields
        .iter()
        .any(|f| forged(f, block.value(f)))
        .then(|| block.without(forged))
}

/// The fields that say who wrote a message, who to answer, and what was verified about it on
/// its way here.
const IDENTITY: [&str; 14] = [
    "From",
    "Sender",
    "Reply-To",
    "Resent-From",
    "Resent-Sender",
    "Return-Path",
    "X-Original-From",
    "Authentication-Results",
    "ARC-Authentication-Results",
    "ARC-Seal",
    "ARC-Message-Signature",
    "DKIM-Signature",
    "Received-SPF",
    "Received",
];

/// A message a Sieve script edited (RFC 5293 editheader) and redirects, with the identity
/// fields of the message as it arrived put back: the author, the sender, our MX's verdict and
/// the signatures. RFC 5293 §6 lets an implementation protect fields; without this a script
/// of one mailbox could make the platform deliver, or relay, mail claiming any author with
/// our own `dmarc=pass` (F4, O2). Other edits (a Subject tag, an added X- field) stay.
/// `None` when either message's header section cannot be read.
pub fn keep_identity(original: &[u8], edited: &[u8]) -> Option<Vec<u8>> {
    let arrived = HeaderBlock::parse(original).ok()?;
    let changed = HeaderBlock::parse(edited).ok()?;
    let is_identity = |f: &Field| IDENTITY.iter().any(|n| f.name.eq_ignore_ascii_case(n));
    let mut out = Vec::with_capacity(edited.len() + 1024);
    for f in arrived.fields.iter().filter(|f| is_identity(f)) {
        out.extend_from_slice(&original[f.start..f.end]);
    }
    out.extend(changed.without(|f, _| is_identity(f)));
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redirect_keeps_the_identity_it_arrived_with() {
        let arrived = "Authentication-Results: mx.test; dmarc=fail header.from=attack.test\r\n\
                       From: eve@attack.test\r\nSubject: hi\r\n\r\nbody\r\n";
        let edited = "Authentication-Results: mx.test; dmarc=pass header.from=bank.test\r\n\
                      From: CEO <ceo@bank.test>\r\nReply-To: ceo@bank.test\r\n\
                      Resent-From: ceo@bank.test\r\nSubject: [tag] hi\r\nX-Added: 1\r\n\r\nbody\r\n";
        let kept = keep_identity(arrived.as_bytes(), edited.as_bytes()).unwrap();
        let kept = String::from_utf8(kept).unwrap();
        assert!(kept.contains("From: eve@attack.test\r\n"), "{kept}");
        assert!(!kept.contains("bank.test"), "{kept}");
        assert!(
            kept.contains("dmarc=fail header.from=attack.test"),
            "{kept}"
        );
        assert!(
            kept.contains("Subject: [tag] hi\r\nX-Added: 1\r\n\r\nbody"),
            "{kept}"
        );
    }

    fn parse(s: &str) -> Result<HeaderBlock<'_>, Malformed> {
        HeaderBlock::parse(s.as_bytes())
    }

    fn author(s: &str) -> Result<Author, Malformed> {
        HeaderBlock::parse(s.as_bytes())?.author()
    }

    #[test]
    fn content_faults() {
        assert_eq!(content_fault(b"a\r\nb\r\n"), None);
        assert_eq!(content_fault(b"a\nb"), Some(Malformed::BareLf));
        assert_eq!(content_fault(b"a\rb"), Some(Malformed::BareCr));
        assert_eq!(content_fault(b"a\r\r\n"), Some(Malformed::BareCr));
        assert_eq!(content_fault(b"a\r"), Some(Malformed::BareCr));
        assert_eq!(content_fault(b"a\0b"), Some(Malformed::Nul));
    }

    #[test]
    fn fields_continuations_and_body() {
        let m = "From: a@b.example\r\nSubject: one\r\n two\r\nX-Empty:\r\n\r\nbody\r\n";
        let b = parse(m).unwrap();
        assert_eq!(b.fields.len(), 3);
        assert_eq!(b.value(&b.fields[1]), b" one\r\n two");
        assert_eq!(&m[b.body_offset..], "body\r\n");
        // No body at all.
        let b = parse("Subject: x\r\n").unwrap();
        assert_eq!(b.body_offset, 12);
        let b = parse("Subject: x").unwrap();
        assert_eq!(b.fields.len(), 1);
    }

    #[test]
    fn malformed_header_sections() {
        // RFC 5322 §2.2: every line is a field or the continuation of one.
        assert_eq!(
            parse("X-Junk\r\nFrom: a@b.example\r\n\r\n").unwrap_err(),
            Malformed::NotAField(1)
        );
        assert_eq!(
            parse("Subject: x\r\nX-Junk\r\nFrom: a@b.example\r\n\r\n").unwrap_err(),
            Malformed::NotAField(2)
        );
        assert_eq!(
            parse(" dkim=pass\r\nFrom: a@b.example\r\n\r\n").unwrap_err(),
            Malformed::LeadingContinuation
        );
        assert_eq!(
            parse("From : a@b.example\r\n\r\n").unwrap_err(),
            Malformed::SpaceBeforeColon(1)
        );
        assert_eq!(
            parse("Subject: x\r\n \r\nFrom: a@b.example\r\n\r\n").unwrap_err(),
            Malformed::BlankContinuation(2)
        );
        assert_eq!(
            parse(": no name\r\n\r\n").unwrap_err(),
            Malformed::NotAField(1)
        );
        assert_eq!(
            parse("Sub ject: x\r\n\r\n").unwrap_err(),
            Malformed::NotAField(1)
        );
        let big = format!("X: {}\r\n\r\n", "a".repeat(MAX_HEADER_BYTES));
        assert_eq!(parse(&big).unwrap_err(), Malformed::TooLarge);
        let many = "X: y\r\n".repeat(MAX_FIELDS + 1);
        assert_eq!(parse(&many).unwrap_err(), Malformed::TooManyFields);
    }

    #[test]
    fn exactly_one_author() {
        let a = author("From: Anna <Anna@Acme.Example>\r\n\r\n").unwrap();
        assert_eq!(a.address, "Anna@Acme.Example");
        assert_eq!(a.domain, "acme.example");
        assert_eq!(author("Subject: x\r\n\r\n"), Err(Malformed::NoFrom));
        assert_eq!(
            author("From: <a@attack.test>\r\nFROM: <admin@bank.test>\r\n\r\n"),
            Err(Malformed::SeveralFrom)
        );
        assert_eq!(
            author("From: a@attack.test, admin@bank.test\r\n\r\n"),
            Err(Malformed::SeveralAuthors)
        );
        assert_eq!(
            author("From: a@attack.test,admin@bank.test\r\n\r\n"),
            Err(Malformed::SeveralAuthors)
        );
        assert_eq!(
            author("From: grp: a@attack.test, admin@bank.test;\r\n\r\n"),
            Err(Malformed::SeveralAuthors)
        );
        assert_eq!(author("From: Nobody\r\n\r\n"), Err(Malformed::NoAuthor));
        // One mailbox as readers show it, or refused.
        for ambiguous in [
            "From: <ceo@bank.test>x@attack.test\r\n\r\n",
            "From: ceo@bank.test@attack.test\r\n\r\n",
            "From: <ceo@bank.test> <a@attack.test>\r\n\r\n",
        ] {
            assert!(author(ambiguous).is_err(), "{ambiguous}");
        }
        assert!(author("From: \"Bank <x>\" (c) <ceo@bank.test> (comment)\r\n\r\n").is_ok());
        // Address-like text where readers show the author's name: in a comment, as an
        // unquoted display name, or as a group's name.
        for shown_as_name in [
            "From: a@attack.test (comment\r\n <admin@bank.test>)\r\n\r\n",
            "From: a@attack.test (<admin@bank.test>)\r\n\r\n",
            "From: a@attack.test (admin@bank.test)\r\n\r\n",
            "From: admin@bank.test <a@attack.test>\r\n\r\n",
            "From: admin@bank.test : a@attack.test\r\n\r\n",
        ] {
            assert!(author(shown_as_name).is_err(), "{shown_as_name}");
        }
        // What real mail programs write stays fine, a quoted address as the name included.
        for fine in [
            "From: \"anna@acme.example\" <anna@acme.example>\r\n\r\n",
            "From: Anna Smith <anna@acme.example>\r\n\r\n",
            "From: anna@acme.example (Anna Smith)\r\n\r\n",
        ] {
            assert!(author(fine).is_ok(), "{fine}");
        }
        assert!(author("From: \"a@b\"@bank.test\r\n\r\n").is_err());
        // White space in the domain: DMARC would look up another name than the one checked.
        for spaced in [
            "<ceo@ bank.test>",
            "ceo @ bank.test",
            "<ceo@\tbank.test>",
            "<ceo@\u{a0}bank.test>",
        ] {
            assert!(
                author(&format!("From: {spaced}\r\n\r\n")).is_err(),
                "{spaced}"
            );
        }
        let long = format!("From: <a@{}bank.test>\r\n\r\n", "x123456789.".repeat(22));
        assert!(matches!(author(&long), Err(Malformed::BadAuthorDomain(_))));
        assert_eq!(author("From:\r\n\r\n"), Err(Malformed::NoAuthor));
        for bad in [
            "admin@bank.test.",
            "admin@bank..test",
            "admin@[127.0.0.1]",
            "admin@127.0.0.1",
            "admin@localhost",
            "admin@-bank.test",
        ] {
            assert!(
                matches!(
                    author(&format!("From: <{bad}>\r\n\r\n")),
                    Err(Malformed::BadAuthorDomain(_)) | Err(Malformed::Ambiguous)
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn authserv_ids() {
        assert_eq!(
            authserv_id(b" mx.example.net; dkim=pass", false).as_deref(),
            Some("mx.example.net")
        );
        assert_eq!(
            authserv_id(b" (c) MX.Example.NET 1; spf=pass", false).as_deref(),
            Some("mx.example.net")
        );
        assert_eq!(
            authserv_id(b"\r\n\tmx.example.net;\r\n\tdmarc=pass", false).as_deref(),
            Some("mx.example.net")
        );
        assert_eq!(
            authserv_id(b" i=1; mx.example.net; arc=none", true).as_deref(),
            Some("mx.example.net")
        );
        assert_eq!(authserv_id(b" ", false), None);
    }

    #[test]
    fn our_results_are_stripped_and_others_kept() {
        let m = "Authentication-Results: mx.ours.example; dmarc=pass\r\nAuthentication-Results: other.example; spf=pass\r\nauthentication-results:  (forged)\r\n MX.OURS.EXAMPLE; dkim=pass\r\nARC-Authentication-Results: i=1; mx.ours.example; arc=pass\r\nFrom: a@b.example\r\n\r\nbody";
        let b = parse(m).unwrap();
        let out = String::from_utf8(strip_our_results(&b, "mx.ours.example").unwrap()).unwrap();
        assert_eq!(
            out,
            "Authentication-Results: other.example; spf=pass\r\nFrom: a@b.example\r\n\r\nbody"
        );
        // Disguises: escapes inside a quoted authserv-id, i= not first, a broken comment.
        for forged in [
            "Authentication-Results: \"mail.ours\\.example\"; dmarc=pass\r\n",
            "ARC-Authentication-Results: mx.ours.example; i=1; arc=pass\r\n",
            "Authentication-Results: (a\\) mx.ours.example; dkim=pass\r\n",
        ] {
            let m = format!(
                "{}From: a@b.example\r\n\r\nbody",
                forged.replace("mail.ours", "mx.ours")
            );
            let b = parse(&m).unwrap();
            let out = strip_our_results(&b, "mx.ours.example").expect(forged);
            assert_eq!(out, b"From: a@b.example\r\n\r\nbody", "{forged}");
        }
        // Another server's result that only resembles our name is kept.
        let other = "Authentication-Results: mx.ours.example.net; spf=pass\r\n\r\n";
        assert!(strip_our_results(&parse(other).unwrap(), "mx.ours.example").is_none());
        let clean = "From: a@b.example\r\n\r\nbody";
        assert!(strip_our_results(&parse(clean).unwrap(), "mx.ours.example").is_none());
    }

    #[test]
    fn mail_auth_agrees_on_well_formed_blocks() {
        let m = "From: a@b.example\r\nSubject: one\r\n two\r\n\r\nbody\r\n";
        assert!(parse(m).unwrap().agrees_with_mail_auth());
    }
}
