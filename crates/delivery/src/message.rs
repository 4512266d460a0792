//! Small, careful edits of a raw message: prepending header fields and putting a banner line
//! at the top of the first text part. The message is parsed with `mail-parser` to find where
//! things are; edits splice bytes at those offsets and never re-encode a part, so a signed
//! body stays as it was whenever we do not have to touch it.

use mail_parser::{Message, MimeHeaders, PartType};

/// Prepends header fields (each `Name: value`, without CRLF) to `raw`. Values are folded to
/// one line: anything that would break the header block is replaced.
pub fn prepend_headers(raw: &[u8], fields: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + 256);
    for (name, value) in fields {
        let clean: String = value
            .chars()
            .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
            .collect();
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(clean.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(raw);
    out
}

/// Puts `banner` as the first line(s) of each top-level text part that is stored as plain
/// 7bit/8bit/quoted-printable text: the first `text/plain` and the first `text/html` leaf
/// (in HTML, right after the `<body…>` tag, escaped). Base64 parts are left alone (the header
/// still marks the message). Returns `None` if no part could take the banner.
pub fn insert_banner(raw: &[u8], msg: &Message<'_>, banner: &str) -> Option<Vec<u8>> {
    let mut inserts: Vec<(usize, Vec<u8>)> = Vec::new();
    let mut plain_done = false;
    let mut html_done = false;
    for part in &msg.parts {
        let (is_plain, is_html) = match &part.body {
            PartType::Text(_) => (true, false),
            PartType::Html(_) => (false, true),
            _ => continue,
        };
        if part.is_content_type("text", "plain") || part.content_type().is_none() {
            // fine
        } else if !part.is_content_type("text", "html") {
            continue;
        }
        if (is_plain && plain_done) || (is_html && html_done) {
            continue;
        }
        // Attachments that happen to be text are not the message.
        if part
            .content_disposition()
            .is_some_and(|d| d.ctype().eq_ignore_ascii_case("attachment"))
        {
            continue;
        }
        let cte = part
            .content_transfer_encoding()
            .unwrap_or("7bit")
            .to_ascii_lowercase();
        if !matches!(
            cte.as_str(),
            "7bit" | "8bit" | "quoted-printable" | "binary"
        ) {
            continue;
        }
        let start = part.offset_body as usize;
        let end = (part.offset_end as usize).min(raw.len());
        if start > end {
            continue;
        }
        if is_plain {
            let mut line = banner.as_bytes().to_vec();
            line.extend_from_slice(b"\r\n\r\n");
            inserts.push((start, line));
            plain_done = true;
        } else {
            let body = &raw[start..end];
            let lower = body.to_ascii_lowercase();
            let at = find(&lower, b"<body")
                .and_then(|i| {
                    lower[i..]
                        .iter()
                        .position(|b| *b == b'>')
                        .map(|j| start + i + j + 1)
                })
                .unwrap_or(start);
            let html = format!(
                "<p style=\"border:1px solid #c80;padding:4px;color:#630\">{}</p>\r\n",
                escape_html(banner)
            );
            inserts.push((at, html.into_bytes()));
            html_done = true;
        }
    }
    if inserts.is_empty() {
        return None;
    }
    inserts.sort_by_key(|(at, _)| *at);
    let mut out = Vec::with_capacity(raw.len() + 512);
    let mut pos = 0;
    for (at, bytes) in inserts {
        out.extend_from_slice(&raw[pos..at]);
        out.extend_from_slice(&bytes);
        pos = at;
    }
    out.extend_from_slice(&raw[pos..]);
    Some(out)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The address part of the first `From:` mailbox, lower case ("" if none).
pub fn header_from(msg: &Message<'_>) -> String {
    msg.from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .map(|a| a.to_lowercase())
        .unwrap_or_default()
}

/// The value of the first header field named `name` as text, if any.
pub fn header_text<'a>(msg: &'a Message<'_>, name: &'a str) -> Option<&'a str> {
    msg.header_raw(name).map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    #[test]
    fn banner_goes_into_plain_and_html_parts_only() {
        let raw = b"From: a@x.org\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nHello\r\n--b\r\nContent-Type: text/html\r\n\r\n<html><body class=x>Hi</body></html>\r\n--b--\r\n";
        let m = MessageParser::default().parse(raw).unwrap();
        let out = insert_banner(raw, &m, "EXTERNAL <mail>").unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains("\r\n\r\nEXTERNAL <mail>\r\n\r\nHello"), "{s}");
        assert!(s.contains("<body class=x><p style"), "{s}");
        assert!(s.contains("EXTERNAL &lt;mail&gt;</p>"), "{s}");
        // The result still parses with both parts.
        let m2 = MessageParser::default().parse(s.as_bytes()).unwrap();
        assert!(m2.body_text(0).unwrap().starts_with("EXTERNAL"));
    }

    #[test]
    fn base64_text_is_left_alone() {
        let raw = b"From: a@x.org\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\nSGVsbG8=\r\n";
        let m = MessageParser::default().parse(raw).unwrap();
        assert!(insert_banner(raw, &m, "EXTERNAL").is_none());
    }

    #[test]
    fn headers_are_prepended_on_one_line() {
        let out = prepend_headers(
            b"Subject: x\r\n\r\nbody",
            &[("X-Test".into(), "a\r\nInjected: yes".into())],
        );
        assert_eq!(out, b"X-Test: a  Injected: yes\r\nSubject: x\r\n\r\nbody");
    }
}
