//! FETCH data (RFC 9051 §6.4.5, §7.5.2) from a stored message: ENVELOPE, BODYSTRUCTURE, the
//! body sections (`BODY[1.2.MIME]`, `BODY[HEADER.FIELDS (…)]`, partial fetches), and BINARY
//! (RFC 3516) with the content transfer encoding undone. The MIME tree and the byte offsets of
//! every part come from mail-parser; sections are cut from the raw bytes, so what the client
//! gets is exactly what was stored.

use std::num::NonZeroU32;

use base64::Engine;
use imap_codec::imap_types::body::{
    BasicFields, Body, BodyStructure, Disposition, Language, Location, MultiPartExtensionData,
    SinglePartExtensionData, SpecificFields,
};
use imap_codec::imap_types::core::{IString, Literal, NString, Vec1};
use imap_codec::imap_types::envelope::{Address, Envelope};
use imap_codec::imap_types::fetch::{Part, Section};
use mail_parser::{HeaderValue, Message, MessageParser, MimeHeaders, PartType};

fn istring(s: impl Into<String>) -> IString<'static> {
    let s: String = s.into();
    IString::try_from(s.clone()).unwrap_or_else(|_| {
        // Not representable as a quoted string (CR, LF, 8-bit…): a literal always works once
        // NUL bytes are out.
        IString::Literal(Literal::try_from(s.replace('\0', "").into_bytes()).expect("no NUL"))
    })
}

fn nstring(s: Option<impl Into<String>>) -> NString<'static> {
    NString(s.map(istring))
}

/// Bytes as an IMAP string: always a literal (bodies are large and may hold anything but NUL,
/// which RFC 9051 §4.3 forbids outside BINARY; such bytes are dropped).
pub fn literal(data: Vec<u8>) -> NString<'static> {
    let data = if data.contains(&0) {
        data.into_iter().filter(|&b| b != 0).collect()
    } else {
        data
    };
    NString(Some(IString::Literal(
        Literal::try_from(data).expect("no NUL left"),
    )))
}

pub fn parse(raw: &[u8]) -> Option<Message<'_>> {
    MessageParser::default().parse(raw)
}

/// The header fields alone: all an ENVELOPE needs (a client's message list fetches nothing
/// else from the message itself, and the body need not be parsed for it).
pub fn parse_headers(raw: &[u8]) -> Option<Message<'_>> {
    // A message without header fields is no header block to mail-parser; the full parse
    // still serves it (as `parse` callers expect an answer for every message it reads).
    MessageParser::default()
        .parse_headers(raw)
        .or_else(|| parse(raw))
}

/// A header field's raw value, unfolded, without the trailing CRLF.
fn raw_header(m: &Message<'_>, name: &str) -> Option<String> {
    m.header_raw(name)
        .map(|v| v.replace("\r\n", "").replace('\n', "").trim().to_string())
        .filter(|v| !v.is_empty())
}

/// RFC 2047 encoded-word for display names that are not ASCII (IMAP4rev1 clients expect the
/// header's own encoding; UTF-8 clients get UTF-8).
fn display_name(name: &str, utf8: bool) -> String {
    if utf8 || name.is_ascii() {
        name.to_string()
    } else {
        format!(
            "=?utf-8?b?{}?=",
            base64::engine::general_purpose::STANDARD.encode(name.as_bytes())
        )
    }
}

fn addresses(value: &HeaderValue<'_>, utf8: bool) -> Vec<Address<'static>> {
    // A NIL mailbox or host marks group syntax in an ENVELOPE (RFC 9051 §7.5.2), so an
    // address without an addr-spec gets the placeholders other servers use.
    let addr = |name: Option<&str>, email: Option<&str>| {
        // An obsolete source route (RFC 5322 §4.4 obs-route, `<@relay.example:user@host>`)
        // is the address's at-domain-list (adl), not part of its mailbox.
        let (adl, email) = match email {
            Some(e) if e.starts_with('@') => match e.split_once(':') {
                Some((route, rest)) => (Some(route.to_string()), Some(rest)),
                None => (None, Some(e)),
            },
            other => (None, other),
        };
        let (mailbox, host) = match email.map(|e| e.rsplit_once('@').unwrap_or((e, ""))) {
            Some((l, d)) if !l.is_empty() && !d.is_empty() => (l.to_string(), d.to_string()),
            Some((l, _)) if !l.is_empty() => (l.to_string(), "MISSING_DOMAIN".to_string()),
            _ => ("MISSING_MAILBOX".to_string(), "MISSING_DOMAIN".to_string()),
        };
        Address {
            name: nstring(name.map(|n| display_name(n, utf8))),
            adl: nstring(adl),
            mailbox: nstring(Some(mailbox)),
            host: nstring(Some(host)),
        }
    };
    match value {
        HeaderValue::Address(mail_parser::Address::List(list)) => list
            .iter()
            .map(|a| addr(a.name.as_deref(), a.address.as_deref()))
            .collect(),
        HeaderValue::Address(mail_parser::Address::Group(groups)) => {
            let mut out = Vec::new();
            for g in groups {
                // RFC 9051 §7.5.2: a group is [NIL NIL name NIL] members… [NIL NIL NIL NIL].
                if let Some(name) = &g.name {
                    out.push(Address {
                        name: NString(None),
                        adl: NString(None),
                        mailbox: nstring(Some(name.to_string())),
                        host: NString(None),
                    });
                }
                // A member without an addr-spec (`group: (comment) ;`) is no address: an
                // empty group lists none.
                for a in g.addresses.iter().filter(|a| a.address.is_some()) {
                    out.push(addr(a.name.as_deref(), a.address.as_deref()));
                }
                if g.name.is_some() {
                    out.push(Address {
                        name: NString(None),
                        adl: NString(None),
                        mailbox: NString(None),
                        host: NString(None),
                    });
                }
            }
            out
        }
        _ => Vec::new(),
    }
}

fn header_addresses(m: &Message<'_>, name: &str, utf8: bool) -> Vec<Address<'static>> {
    m.header(name)
        .map(|v| addresses(v, utf8))
        .unwrap_or_default()
}

/// RFC 9051 §7.5.2 ENVELOPE. Sender and Reply-To default to From.
pub fn envelope(m: &Message<'_>, utf8: bool) -> Envelope<'static> {
    let from = header_addresses(m, "From", utf8);
    let sender = match header_addresses(m, "Sender", utf8) {
        v if v.is_empty() => from.clone(),
        v => v,
    };
    let reply_to = match header_addresses(m, "Reply-To", utf8) {
        v if v.is_empty() => from.clone(),
        v => v,
    };
    Envelope {
        date: nstring(raw_header(m, "Date")),
        subject: nstring(raw_header(m, "Subject")),
        from,
        sender,
        reply_to,
        to: header_addresses(m, "To", utf8),
        cc: header_addresses(m, "Cc", utf8),
        bcc: header_addresses(m, "Bcc", utf8),
        in_reply_to: nstring(raw_header(m, "In-Reply-To")),
        message_id: nstring(raw_header(m, "Message-ID")),
    }
}

/// Lines of a part's body: its line ends, plus a last line without one (the CRLF before a
/// boundary belongs to the boundary, RFC 2046 §5.1.1, so a part's last line usually has none).
fn lines(data: &[u8]) -> u32 {
    let ends = data.iter().filter(|&&b| b == b'\n').count();
    let partial = !data.is_empty() && !data.ends_with(b"\n");
    (ends + usize::from(partial)) as u32
}

fn params(ct: Option<&mail_parser::ContentType<'_>>) -> Vec<(IString<'static>, IString<'static>)> {
    ct.and_then(|c| c.attributes())
        .map(|attrs| {
            attrs
                .iter()
                .map(|a| {
                    (
                        istring(a.name.to_ascii_uppercase()),
                        istring(a.value.to_string()),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The bytes between two part offsets of `m`. mail-parser gives the parts of an encapsulated
/// message (message/rfc822) offsets into the outermost message, while its `raw_message()`
/// starts at its own first header: rebase on that.
pub(crate) fn span<'a>(m: &'a Message<'_>, from: u32, to: Option<u32>) -> &'a [u8] {
    let raw = m.raw_message();
    let base = m.parts.first().map_or(0, |p| p.offset_header as usize);
    let start = (from as usize).saturating_sub(base).min(raw.len());
    let end = to.map_or(raw.len(), |t| {
        (t as usize).saturating_sub(base).min(raw.len())
    });
    raw.get(start..end.max(start)).unwrap_or_default()
}

fn part_bytes<'a>(m: &'a Message<'_>, idx: usize) -> &'a [u8] {
    let p = &m.parts[idx];
    span(m, p.offset_body, Some(p.offset_end))
}

fn extension_tail(p: &mail_parser::MessagePart<'_>) -> Option<Disposition<'static>> {
    let disposition = p
        .content_disposition()
        .map(|d| (istring(d.ctype().to_ascii_uppercase()), params(Some(d))));
    let language: Vec<IString<'static>> = p
        .content_language()
        .as_text_list()
        .map(|l| l.iter().map(|s| istring(s.to_string())).collect())
        .unwrap_or_default();
    Some(Disposition {
        disposition,
        tail: Some(Language {
            language,
            tail: Some(Location {
                location: nstring(p.content_location()),
                extensions: Vec::new(),
            }),
        }),
    })
}

/// BODYSTRUCTURE (`extensible`) or BODY of part `idx` of `m`.
pub fn structure(
    m: &Message<'_>,
    idx: usize,
    extensible: bool,
    utf8: bool,
) -> BodyStructure<'static> {
    structure_at(m, idx, extensible, utf8, 0)
}

/// MIME nesting shown in BODYSTRUCTURE. Deeper parts are shown as opaque data: building (and
/// encoding, and dropping) the structure recurses once per level, and a hostile message with
/// thousands of levels would overflow the stack of the whole server.
pub const MAX_NESTING: usize = 40;

fn structure_at(
    m: &Message<'_>,
    idx: usize,
    extensible: bool,
    utf8: bool,
    depth: usize,
) -> BodyStructure<'static> {
    let p = &m.parts[idx];
    let ct = p.content_type();
    let (mut ctype, mut subtype) = match ct {
        Some(c) => (
            c.ctype().to_ascii_uppercase(),
            c.subtype().map(|s| s.to_ascii_uppercase()),
        ),
        None => ("TEXT".into(), Some("PLAIN".into())),
    };
    let too_deep = depth >= MAX_NESTING;
    if let PartType::Multipart(children) = &p.body
        && !too_deep
    {
        let bodies: Vec<BodyStructure<'static>> = children
            .iter()
            .map(|c| structure_at(m, *c as usize, extensible, utf8, depth + 1))
            .collect();
        let bodies = Vec1::try_from(bodies).unwrap_or_else(|_| {
            // An empty multipart: present one empty text part, as most servers do.
            Vec1::from(empty_text())
        });
        return BodyStructure::Multi {
            bodies,
            subtype: istring(subtype.unwrap_or_else(|| "MIXED".into())),
            extension_data: extensible.then(|| MultiPartExtensionData {
                parameter_list: params(ct),
                tail: extension_tail(p),
            }),
        };
    }
    // A part whose declared type promises a structure it does not have (a multipart without a
    // boundary, a message/rfc822 that did not parse) or that is nested too deep: clients'
    // parsers expect that structure, so it is shown as what it is, opaque data.
    let is_message = matches!(p.body, PartType::Message(_));
    if too_deep
        || ctype == "MULTIPART"
        || (ctype == "MESSAGE" && !is_message && subtype.as_deref() == Some("RFC822"))
    {
        ctype = "APPLICATION".into();
        subtype = Some("OCTET-STREAM".into());
    }
    let data = part_bytes(m, idx);
    let mut parameter_list = params(ct);
    if ct.is_none() {
        parameter_list.push((istring("CHARSET"), istring("US-ASCII")));
    }
    let basic = BasicFields {
        parameter_list,
        id: nstring(p.content_id().map(|i| format!("<{i}>"))),
        description: nstring(p.content_description()),
        content_transfer_encoding: istring(
            p.content_transfer_encoding()
                .map(|e| e.to_ascii_uppercase())
                .unwrap_or_else(|| "7BIT".into()),
        ),
        size: data.len() as u32,
    };
    let specific = match &p.body {
        // message/rfc822 has its envelope and structure in BODYSTRUCTURE (RFC 9051 §7.5.2);
        // other message subtypes (message/global, …) are shown as basic parts.
        PartType::Message(inner)
            if !too_deep && ctype == "MESSAGE" && subtype.as_deref() == Some("RFC822") =>
        {
            SpecificFields::Message {
                envelope: Box::new(envelope(inner, utf8)),
                body_structure: Box::new(structure_at(inner, 0, extensible, utf8, depth + 1)),
                number_of_lines: lines(data),
            }
        }
        _ if ctype == "TEXT" => SpecificFields::Text {
            subtype: istring(subtype.unwrap_or_else(|| "PLAIN".into())),
            number_of_lines: lines(data),
        },
        _ => SpecificFields::Basic {
            r#type: istring(ctype),
            subtype: istring(subtype.unwrap_or_else(|| "OCTET-STREAM".into())),
        },
    };
    BodyStructure::Single {
        body: Body { basic, specific },
        extension_data: extensible.then(|| SinglePartExtensionData {
            md5: NString(None),
            tail: extension_tail(p),
        }),
    }
}

fn empty_text() -> BodyStructure<'static> {
    BodyStructure::Single {
        body: Body {
            basic: BasicFields {
                parameter_list: vec![(istring("CHARSET"), istring("US-ASCII"))],
                id: NString(None),
                description: NString(None),
                content_transfer_encoding: istring("7BIT"),
                size: 0,
            },
            specific: SpecificFields::Text {
                subtype: istring("PLAIN"),
                number_of_lines: 0,
            },
        },
        extension_data: None,
    }
}

/// The message and part a section number path designates (RFC 9051 §6.4.5): in a multipart
/// part, number n is its n-th child; in a message/rfc822 part, the numbers continue in the
/// encapsulated message; a single-part message has only part 1, its body.
fn locate<'m>(m: &'m Message<'m>, path: &[NonZeroU32]) -> Option<(&'m Message<'m>, usize)> {
    let mut msg = m;
    let mut idx = 0usize;
    let mut at_root = true;
    for n in path {
        let n = n.get() as usize;
        let part = &msg.parts[idx];
        match &part.body {
            PartType::Multipart(children) => {
                idx = *children.get(n - 1)? as usize;
            }
            PartType::Message(inner) if !at_root => {
                msg = inner;
                match &inner.parts[0].body {
                    PartType::Multipart(children) => idx = *children.get(n - 1)? as usize,
                    _ if n == 1 => idx = 0,
                    _ => return None,
                }
            }
            _ if at_root && n == 1 => idx = 0,
            _ => return None,
        }
        at_root = false;
    }
    Some((msg, idx))
}

fn header_block<'a>(m: &'a Message<'_>) -> &'a [u8] {
    span(m, m.parts[0].offset_header, Some(m.parts[0].offset_body))
}

/// Header field lines (with continuations) whose names are, or with `not` are not, in `names`.
fn filter_headers(block: &[u8], names: &[String], not: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut keep = false;
    for line in block.split_inclusive(|&b| b == b'\n') {
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        if !line.starts_with(b" ") && !line.starts_with(b"\t") {
            let name = line.split(|&b| b == b':').next().unwrap_or_default();
            let name = String::from_utf8_lossy(name).trim().to_ascii_lowercase();
            keep = names.iter().any(|n| n.eq_ignore_ascii_case(&name)) != not;
        }
        if keep {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The bytes of `BODY[section]` (None when the section does not exist: RFC 9051 answers "").
pub fn section(raw: &[u8], m: &Message<'_>, section: Option<&Section<'_>>) -> Vec<u8> {
    let text_of = |msg: &Message<'_>| span(msg, msg.parts[0].offset_body, None).to_vec();
    let names = |list: &Vec1<imap_codec::imap_types::core::AString<'_>>| -> Vec<String> {
        list.as_ref()
            .iter()
            .map(|a| String::from_utf8_lossy(a.as_ref()).into_owned())
            .collect()
    };
    // The message a HEADER/TEXT section of `part` refers to: the top level, or the one
    // encapsulated in a message/rfc822 part.
    let inner = |part: &Option<Part>| -> Option<&Message<'_>> {
        match part {
            None => Some(m),
            Some(p) => {
                let (msg, idx) = locate(m, p.0.as_ref())?;
                match &msg.parts[idx].body {
                    PartType::Message(inner) => Some(inner),
                    _ => None,
                }
            }
        }
    };
    match section {
        None => raw.to_vec(),
        Some(Section::Part(p)) => match locate(m, p.0.as_ref()) {
            Some((msg, idx)) => part_bytes(msg, idx).to_vec(),
            None => Vec::new(),
        },
        Some(Section::Header(p)) => inner(p)
            .map(|msg| header_block(msg).to_vec())
            .unwrap_or_default(),
        Some(Section::HeaderFields(p, list)) => inner(p)
            .map(|msg| filter_headers(header_block(msg), &names(list), false))
            .unwrap_or_default(),
        Some(Section::HeaderFieldsNot(p, list)) => inner(p)
            .map(|msg| filter_headers(header_block(msg), &names(list), true))
            .unwrap_or_default(),
        // The text of an encapsulated message runs to the end of its part in the outer
        // message, epilogue included (mail-parser's inner message may stop at its closing
        // boundary).
        Some(Section::Text(Some(p))) => match locate(m, p.0.as_ref()) {
            Some((msg, idx)) => match &msg.parts[idx].body {
                PartType::Message(inner) => {
                    let whole = part_bytes(msg, idx);
                    let header = (inner.parts[0].offset_body as usize)
                        .saturating_sub(inner.parts[0].offset_header as usize);
                    whole.get(header..).unwrap_or_default().to_vec()
                }
                _ => Vec::new(),
            },
            None => Vec::new(),
        },
        Some(Section::Text(None)) => text_of(m),
        Some(Section::Mime(p)) => match locate(m, p.0.as_ref()) {
            Some((msg, idx)) => {
                let part = &msg.parts[idx];
                span(msg, part.offset_header, Some(part.offset_body)).to_vec()
            }
            None => Vec::new(),
        },
    }
}

/// `BINARY[path]`: the part's content with its transfer encoding undone (RFC 3516) — and
/// nothing else: a text part keeps its charset. None when the part is unknown or its encoding
/// cannot be undone (→ `NO [UNKNOWN-CTE]`).
pub fn binary(raw: &[u8], m: &Message<'_>, path: &[NonZeroU32]) -> Option<Vec<u8>> {
    if path.is_empty() {
        return Some(raw.to_vec());
    }
    let (msg, idx) = locate(m, path)?;
    let part = &msg.parts[idx];
    if matches!(part.body, PartType::Multipart(_)) {
        return Some(part_bytes(msg, idx).to_vec());
    }
    let data = part_bytes(msg, idx);
    let encoding = part
        .content_transfer_encoding()
        .map(|e| e.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match encoding.as_str() {
        "" | "7bit" | "8bit" | "binary" => Some(data.to_vec()),
        "base64" => mail_parser::decoders::base64::base64_decode(data),
        "quoted-printable" => {
            mail_parser::decoders::quoted_printable::quoted_printable_decode(data)
        }
        _ => None,
    }
}

/// A partial fetch `<origin.count>` of `data`.
pub fn partial(data: Vec<u8>, partial: Option<(u32, NonZeroU32)>) -> Vec<u8> {
    match partial {
        None => data,
        Some((origin, count)) => {
            let start = (origin as usize).min(data.len());
            let end = start.saturating_add(count.get() as usize).min(data.len());
            data[start..end].to_vec()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imap_codec::imap_types::fetch::Part;

    const NESTED: &[u8] = b"From: Ann <ann@example.org>\r\nTo: bob@example.net, \"C. Dee\" <cd@example.net>\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <m1@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"outer\"\r\n\r\npreamble\r\n--outer\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nHallo =C3=BC\r\n--outer\r\nContent-Type: message/rfc822\r\n\r\nFrom: x@example.com\r\nSubject: inner\r\nContent-Type: multipart/alternative; boundary=\"inner\"\r\n\r\n--inner\r\nContent-Type: text/plain\r\n\r\ninner text\r\n--inner\r\nContent-Type: text/html\r\n\r\n<p>inner</p>\r\n--inner--\r\n\r\n--outer\r\nContent-Type: application/octet-stream; name=\"a.bin\"\r\nContent-Disposition: attachment; filename=\"a.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC\r\n--outer--\r\n";

    fn p(n: &[u32]) -> Part {
        Part(
            Vec1::try_from(
                n.iter()
                    .map(|x| NonZeroU32::new(*x).unwrap())
                    .collect::<Vec<_>>(),
            )
            .unwrap(),
        )
    }

    fn s(m: &Message<'_>, sec: Section<'_>) -> String {
        String::from_utf8(section(NESTED, m, Some(&sec))).unwrap()
    }

    #[test]
    fn sections_follow_rfc_9051_numbering() {
        let m = parse(NESTED).unwrap();
        assert_eq!(s(&m, Section::Part(p(&[1]))), "Hallo =C3=BC");
        assert_eq!(
            s(&m, Section::Mime(p(&[1]))),
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        );
        assert!(
            s(&m, Section::Part(p(&[2]))).starts_with("From: x@example.com\r\n"),
            "the encapsulated message"
        );
        assert_eq!(
            s(&m, Section::Header(Some(p(&[2])))),
            "From: x@example.com\r\nSubject: inner\r\nContent-Type: multipart/alternative; boundary=\"inner\"\r\n\r\n"
        );
        assert_eq!(s(&m, Section::Part(p(&[2, 1]))), "inner text");
        assert_eq!(s(&m, Section::Part(p(&[2, 2]))), "<p>inner</p>");
        assert_eq!(s(&m, Section::Part(p(&[3]))), "AAEC");
        assert_eq!(s(&m, Section::Part(p(&[4]))), "", "no such part");
        let fields = Vec1::try_from(vec![
            imap_codec::imap_types::core::AString::try_from("subject").unwrap(),
            "FROM".try_into().unwrap(),
        ])
        .unwrap();
        assert_eq!(
            s(&m, Section::HeaderFields(None, fields)),
            "From: Ann <ann@example.org>\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\r\n"
        );
        assert!(s(&m, Section::Text(None)).starts_with("preamble\r\n--outer"));
        assert_eq!(binary(NESTED, &m, p(&[3]).0.as_ref()), Some(vec![0, 1, 2]));
        assert_eq!(
            binary(NESTED, &m, p(&[1]).0.as_ref()),
            Some("Hallo ü".as_bytes().to_vec())
        );
        assert_eq!(
            partial(
                b"0123456789".to_vec(),
                Some((2, NonZeroU32::new(3).unwrap()))
            ),
            b"234"
        );
        assert_eq!(
            partial(b"01".to_vec(), Some((5, NonZeroU32::new(3).unwrap()))),
            b""
        );

        // A message that is not multipart has exactly part 1, its body.
        let plain = b"Subject: x\r\n\r\nbody\r\n";
        let pm = parse(plain).unwrap();
        assert_eq!(
            section(plain, &pm, Some(&Section::Part(p(&[1])))),
            b"body\r\n"
        );
    }

    #[test]
    fn doubly_encapsulated_messages() {
        let raw = b"Subject: outer\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\nContent-Type: text/plain\r\n\r\nfirst\r\n--a\r\nContent-Type: message/rfc822\r\n\r\nSubject: middle\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nmiddle text\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: deep\r\n\r\ndeep body\r\n--b--\r\n--a--\r\n";
        let m = parse(raw).unwrap();
        assert_eq!(s_raw(raw, &m, Section::Part(p(&[2, 1]))), "middle text");
        assert_eq!(
            s_raw(raw, &m, Section::Header(Some(p(&[2, 2])))),
            "Subject: deep\r\n\r\n"
        );
        assert_eq!(s_raw(raw, &m, Section::Text(Some(p(&[2, 2])))), "deep body");
        assert_eq!(s_raw(raw, &m, Section::Part(p(&[2, 2, 1]))), "deep body");
    }

    fn s_raw(raw: &[u8], m: &Message<'_>, sec: Section<'_>) -> String {
        String::from_utf8(section(raw, m, Some(&sec))).unwrap()
    }

    #[test]
    fn hostile_nesting_does_not_overflow_the_stack() {
        let mut raw = String::new();
        for i in 0..5000 {
            raw.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n"
            ));
        }
        raw.push_str("Content-Type: text/plain\r\n\r\nhi\r\n");
        // Run where the server runs: a thread with a 2 MiB stack.
        let encoded = std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(move || {
                let m = parse(raw.as_bytes()).unwrap();
                let s = structure(&m, 0, true, false);
                let item = imap_codec::imap_types::fetch::MessageDataItem::BodyStructure(s);
                let data = imap_codec::imap_types::response::Data::Fetch {
                    seq: NonZeroU32::new(1).unwrap(),
                    items: Vec1::from(item),
                };
                let r = imap_codec::imap_types::response::Response::Data(data);
                imap_codec::encode::Encoder::encode(&imap_codec::ResponseCodec::default(), &r)
                    .dump()
                    .len()
            })
            .unwrap()
            .join()
            .unwrap();
        assert!(encoded > 0);
    }

    #[test]
    fn declared_structure_that_is_not_there_is_shown_as_data() {
        let raw = b"Content-Type: multipart/mixed\r\n\r\nno boundary at all\r\n";
        let m = parse(raw).unwrap();
        match structure(&m, 0, false, false) {
            BodyStructure::Single { body, .. } => match body.specific {
                SpecificFields::Basic { r#type, subtype } => {
                    assert_eq!(String::from_utf8_lossy(r#type.as_ref()), "APPLICATION");
                    assert_eq!(String::from_utf8_lossy(subtype.as_ref()), "OCTET-STREAM");
                }
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    /// ENVELOPE (RFC 9051 §7.5.2): an empty group is `(NIL NIL "g" NIL)(NIL NIL NIL NIL)`
    /// with no made-up member for its comment; a source route is the address's adl.
    #[test]
    fn empty_groups_and_source_routes() {
        let raw = b"From: <@relay.example:user@host.example>\r\nCc: group2: (foo) ;\r\n\
                    Subject: x\r\n\r\nbody\r\n";
        let m = parse(raw).unwrap();
        let wire = String::from_utf8(crate::wire::envelope_wire(&envelope(&m, false))).unwrap();
        assert!(!wire.contains("MISSING_MAILBOX"), "{wire}");
        assert!(
            wire.contains("(NIL NIL \"group2\" NIL)(NIL NIL NIL NIL)"),
            "{wire}"
        );
        assert!(
            wire.contains("\"@relay.example\" \"user\" \"host.example\""),
            "{wire}"
        );
    }

    #[test]
    fn envelope_and_structure() {
        let m = parse(NESTED).unwrap();
        let e = envelope(&m, false);
        assert_eq!(e.to.len(), 2);
        assert_eq!(e.sender, e.from, "Sender defaults to From");
        let encoded = imap_codec::ResponseCodec::default();
        let _ = encoded;
        match structure(&m, 0, true, false) {
            BodyStructure::Multi {
                bodies, subtype, ..
            } => {
                assert_eq!(bodies.as_ref().len(), 3);
                assert_eq!(String::from_utf8_lossy(subtype.as_ref()), "MIXED");
                match &bodies.as_ref()[1] {
                    BodyStructure::Single { body, .. } => {
                        assert!(matches!(body.specific, SpecificFields::Message { .. }))
                    }
                    _ => panic!("message/rfc822 is a single part"),
                }
            }
            _ => panic!("multipart"),
        }
    }

    #[test]
    fn the_envelope_from_the_header_fields_alone_is_the_full_parse_envelope() {
        let plain = b"From: Dora <dora@example.org>\r\nTo: a@b.example, \"C\" <c@d.example>\r\n\
Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nDate: Tue, 24 Nov 2026 04:00:00 +0100\r\n\
Message-ID: <x@y>\r\nIn-Reply-To: <w@y>\r\n\r\nbody\r\n";
        for raw in [plain.as_slice(), NESTED, b"\r\njust a body\r\n", b""] {
            for utf8 in [false, true] {
                assert_eq!(
                    parse(raw).map(|m| envelope(&m, utf8)),
                    parse_headers(raw).map(|m| envelope(&m, utf8)),
                    "{:?}",
                    String::from_utf8_lossy(raw)
                );
            }
        }
    }
}
