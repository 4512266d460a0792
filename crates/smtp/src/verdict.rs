//! Checks that refuse a message inside the SMTP session (DESIGN.md "The verdict runs before we
//! say 250"): bogus HELO names (F2) and forbidden attachments (F3). Authentication of inbound
//! mail (F4) is in `mailauth.rs`.

use std::io::{Cursor, Read};
use std::net::IpAddr;

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};

/// F2: a HELO/EHLO name that is not a fully qualified domain name (`server`, `www`), an IP
/// address bare or in brackets, `localhost` (and `localhost.localdomain`), or a name on the
/// operator's ban list. RFC 5321 §4.1.1.1 asks clients for their FQDN (or an address literal,
/// which this platform does not accept from unauthenticated senders, as the seed documents).
pub fn bogus_helo(helo: &str, banned: &[String]) -> bool {
    let h = helo.trim().trim_end_matches('.').to_ascii_lowercase();
    if h.is_empty() || h.starts_with('[') || h.parse::<IpAddr>().is_ok() {
        return true;
    }
    if h == "localhost" || h.starts_with("localhost.") || h.ends_with(".localhost") {
        return true;
    }
    if banned
        .iter()
        .any(|b| b.trim().trim_end_matches('.').eq_ignore_ascii_case(&h))
    {
        return true;
    }
    postfach_core::validate::domain(&h).is_err()
}

/// F3: extensions refused as attachments, also inside archives (the seed's list).
pub const FORBIDDEN_EXTENSIONS: &[&str] = &[
    "exe", "com", "cmd", "cpl", "hta", "scf", "sct", "lnk", "bat", "js", "jse", "wsh", "ws", "wsf",
    "wsc", "vbe", "vb", "vbs", "shs", "pif", "scr",
];

/// Bounds for looking into archives: how deep zips may nest and how much one inner archive
/// may inflate to before we stop reading it (zip bombs).
const MAX_ZIP_DEPTH: usize = 4;
const MAX_INNER_ZIP: u64 = 64 * 1024 * 1024;
/// Nested messages (message/rfc822) looked into.
const MAX_MESSAGE_DEPTH: usize = 8;

fn extension(name: &str) -> Option<String> {
    // Trailing dots and spaces are ignored by Windows ("x.exe." runs x.exe).
    let name = name.trim().trim_end_matches(['.', ' ']);
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    base.rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
}

fn is_forbidden(name: &str) -> bool {
    extension(name).is_some_and(|e| FORBIDDEN_EXTENSIONS.contains(&e.as_str()))
}

fn is_zip(name: Option<&str>, data: &[u8]) -> bool {
    name.and_then(extension).is_some_and(|e| e == "zip") || data.starts_with(b"PK\x03\x04")
}

/// The first forbidden file name inside a zip archive (names only; nested zips are opened).
fn forbidden_in_zip(data: &[u8], depth: usize) -> Option<String> {
    if depth > MAX_ZIP_DEPTH {
        return None;
    }
    let mut archive = zip::ZipArchive::new(Cursor::new(data)).ok()?;
    let names: Vec<String> = archive.file_names().map(String::from).collect();
    if let Some(bad) = names.iter().find(|n| is_forbidden(n)) {
        return Some(bad.clone());
    }
    for i in 0..archive.len() {
        let Ok(mut entry) = archive.by_index(i) else {
            continue;
        };
        let name = entry.name().to_string();
        if extension(&name).as_deref() != Some("zip") || entry.size() > MAX_INNER_ZIP {
            continue;
        }
        let mut inner = Vec::new();
        if (&mut entry)
            .take(MAX_INNER_ZIP)
            .read_to_end(&mut inner)
            .is_err()
        {
            continue;
        }
        if let Some(bad) = forbidden_in_zip(&inner, depth + 1) {
            return Some(format!("{name}/{bad}"));
        }
    }
    None
}

fn forbidden_in_message(m: &Message<'_>, depth: usize) -> Option<String> {
    for part in &m.parts {
        let name = part.attachment_name();
        if let Some(n) = name
            && is_forbidden(n)
        {
            return Some(n.to_string());
        }
        match &part.body {
            PartType::Binary(data) | PartType::InlineBinary(data) => {
                if is_zip(name, data)
                    && let Some(bad) = forbidden_in_zip(data, 1)
                {
                    return Some(format!("{}/{bad}", name.unwrap_or("archive")));
                }
            }
            PartType::Message(inner) if depth < MAX_MESSAGE_DEPTH => {
                if let Some(bad) = forbidden_in_message(inner, depth + 1) {
                    return Some(bad);
                }
            }
            _ => {}
        }
    }
    None
}

/// F3: the name of the first forbidden attachment of a message, if any.
pub fn forbidden_attachment(raw: &[u8]) -> Option<String> {
    let m = MessageParser::default().parse(raw)?;
    forbidden_in_message(&m, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn helo_names() {
        for bogus in [
            "server",
            "www",
            "127.0.0.1",
            "[127.0.0.1]",
            "[IPv6:::1]",
            "localhost",
            "LOCALHOST.",
            "localhost.localdomain",
            "",
            "a..b",
        ] {
            assert!(bogus_helo(bogus, &[]), "{bogus:?} is bogus");
        }
        for good in [
            "mail.example.com",
            "mx1.example.org.",
            "xn--bcher-kva.example",
        ] {
            assert!(!bogus_helo(good, &[]), "{good:?} is fine");
        }
        assert!(bogus_helo(
            "fakedomain.xyz",
            &["FakeDomain.xyz".to_string()]
        ));
    }

    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, data) in entries {
            w.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    fn with_attachment(name: &str, data: &[u8]) -> Vec<u8> {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(data);
        format!(
            "From: a@b.example\r\nSubject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"B\"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nhi\r\n--B\r\nContent-Type: application/octet-stream; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--B--\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn attachments() {
        assert_eq!(
            forbidden_attachment(&with_attachment("setup.EXE", b"MZ")),
            Some("setup.EXE".into())
        );
        assert!(forbidden_attachment(&with_attachment("x.exe. ", b"MZ")).is_some());
        assert_eq!(
            forbidden_attachment(&with_attachment("report.pdf", b"%PDF")),
            None
        );
        let inner = zip_of(&[("readme.txt", b"hi"), ("tools/run.vbs", b"x")]);
        assert_eq!(
            forbidden_attachment(&with_attachment("files.zip", &inner)),
            Some("files.zip/tools/run.vbs".into())
        );
        let nested = zip_of(&[("docs.zip", &inner)]);
        assert_eq!(
            forbidden_attachment(&with_attachment("outer.zip", &nested)),
            Some("outer.zip/docs.zip/tools/run.vbs".into())
        );
        let harmless = zip_of(&[("a.txt", b"1"), ("b.pdf", b"2")]);
        assert_eq!(
            forbidden_attachment(&with_attachment("ok.zip", &harmless)),
            None
        );
        // A zip without a .zip name is recognised by its signature.
        assert!(forbidden_attachment(&with_attachment("data.bin", &inner)).is_some());
        // Inside a forwarded message.
        let fwd = format!(
            "From: a@b.example\r\nMIME-Version: 1.0\r\nContent-Type: message/rfc822\r\n\r\n{}",
            String::from_utf8(with_attachment("evil.scr", b"x")).unwrap()
        );
        assert_eq!(
            forbidden_attachment(fwd.as_bytes()),
            Some("evil.scr".into())
        );
        assert_eq!(
            forbidden_attachment(b"Subject: plain\r\n\r\nno attachments\r\n"),
            None
        );
    }
}
