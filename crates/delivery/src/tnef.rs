//! winmail.dat (F12): Outlook and Exchange sometimes wrap a message's attachments in a TNEF
//! part (`application/ms-tnef`, usually named `winmail.dat`) that other mail programs cannot
//! open. At delivery the files inside are unpacked (with the `tnef` crate) into ordinary MIME
//! attachments; the original part is kept beside them unless the mail service says otherwise.
//!
//! The rewritten message is a new `multipart/mixed` whose first part is the original body
//! (byte for byte, with its own Content-Type) and whose further parts are the unpacked files,
//! base64-encoded (RFC 2045 §6.8), named with RFC 2231 parameters when not ASCII.

use base64::Engine;
use mail_parser::{Message, MessagePart, MimeHeaders, PartType};

/// Unpacked files at most, and their total size: a TNEF part cannot make a stored copy grow
/// without bound.
const MAX_FILES: usize = 100;
const MAX_TOTAL: usize = 64 * 1024 * 1024;

/// The header of the rewritten message that says what happened.
pub const HEADER: &str = "X-Postfach-TNEF";

fn is_tnef(part: &MessagePart<'_>) -> bool {
    let ct = part
        .content_type()
        .map(|c| {
            format!(
                "{}/{}",
                c.ctype().to_ascii_lowercase(),
                c.subtype().unwrap_or("").to_ascii_lowercase()
            )
        })
        .unwrap_or_default();
    matches!(
        part.body,
        PartType::Binary(_) | PartType::InlineBinary(_) | PartType::Text(_)
    ) && (ct == "application/ms-tnef"
        || ct == "application/vnd.ms-tnef"
        || part
            .attachment_name()
            .is_some_and(|n| n.eq_ignore_ascii_case("winmail.dat")))
}

/// Whether the message has a TNEF part (cheap: no unpacking).
pub fn has_tnef(msg: &Message<'_>) -> bool {
    msg.parts.iter().any(is_tnef)
}

/// The files of a TNEF blob: (name, contents). A malformed blob yields none; the parser is
/// kept from taking the delivery down with it.
pub fn files(data: &[u8]) -> Vec<(String, Vec<u8>)> {
    let parsed = std::panic::catch_unwind(|| {
        tnef::read_attachments(data).map(|list| {
            list.into_iter()
                .map(|a| {
                    let name = a.transport_filename.clone().unwrap_or(a.title.clone());
                    (name, a.data.to_vec())
                })
                .collect::<Vec<_>>()
        })
    });
    let mut out = Vec::new();
    let mut total = 0;
    for (i, (name, data)) in parsed
        .ok()
        .and_then(|r| r.ok())
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        total += data.len();
        if out.len() >= MAX_FILES || total > MAX_TOTAL {
            break;
        }
        out.push((clean_name(&name, i + 1), data));
    }
    out
}

/// A file name fit for a Content-Disposition: no path, no control characters.
fn clean_name(name: &str, n: usize) -> String {
    let base = name
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control() && *c != '"')
        .collect::<String>();
    let base = base.trim();
    if base.is_empty() || base == "." || base == ".." {
        format!("attachment-{n}")
    } else {
        base.chars().take(200).collect()
    }
}

fn mime_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|x| x.1.to_ascii_lowercase());
    match ext.as_deref() {
        Some("pdf") => "application/pdf",
        Some("txt") => "text/plain",
        Some("htm" | "html") => "text/html",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("png") => "image/png",
        Some("gif") => "image/gif",
        Some("doc") => "application/msword",
        Some("docx") => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        Some("xls") => "application/vnd.ms-excel",
        Some("xlsx") => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        Some("ppt") => "application/vnd.ms-powerpoint",
        Some("pptx") => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        Some("zip") => "application/zip",
        Some("ics") => "text/calendar",
        _ => "application/octet-stream",
    }
}

/// `name="…"` or, for names that are not plain ASCII, RFC 2231 `name*=UTF-8''…`.
fn param(key: &str, value: &str) -> String {
    if value
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'\\')
    {
        format!("{key}=\"{value}\"")
    } else {
        let enc: String = value
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        format!("{key}*=UTF-8''{enc}")
    }
}

/// Splits the top-level header block into (fields kept on the outer message, fields that
/// describe the body: Content-*, MIME-Version dropped), each with its continuation lines.
fn split_headers(head: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let (mut outer, mut inner) = (Vec::new(), Vec::new());
    let mut to_inner = false;
    let mut drop = false;
    for line in head.split_inclusive(|b| *b == b'\n') {
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        if !matches!(line.first(), Some(b' ' | b'\t')) {
            let name = line
                .split(|b| *b == b':')
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            drop = name == b"mime-version";
            to_inner = name.starts_with(b"content-");
        }
        if drop {
            continue;
        }
        let out = if to_inner { &mut inner } else { &mut outer };
        out.extend_from_slice(line);
        if !line.ends_with(b"\n") {
            out.extend_from_slice(b"\r\n");
        }
    }
    (outer, inner)
}

/// The original body without the TNEF parts that are direct children of a top-level
/// multipart (each removed with its delimiter line). None when that is not possible or would
/// leave nothing.
fn without_tnef(raw: &[u8], msg: &Message<'_>) -> Option<Vec<u8>> {
    let root = msg.parts.first()?;
    let PartType::Multipart(children) = &root.body else {
        return None;
    };
    let tnef: Vec<&MessagePart<'_>> = children
        .iter()
        .filter_map(|i| msg.parts.get(*i as usize))
        .filter(|p| is_tnef(p))
        .collect();
    if tnef.is_empty() || tnef.len() == children.len() {
        return None;
    }
    let mut body = raw.to_vec();
    // From the last so that earlier offsets stay valid.
    for p in tnef.iter().rev() {
        let (start, end) = (p.raw_header_offset() as usize, p.raw_end_offset() as usize);
        if start > end || end > body.len() {
            return None;
        }
        let before = &body[..start];
        let delim = before.windows(3).rposition(|w| w == b"\n--").map(|p| {
            if p > 0 && before[p - 1] == b'\r' {
                p - 1
            } else {
                p
            }
        })?;
        body.drain(delim..end);
    }
    Some(body[root.raw_body_offset() as usize..].to_vec())
}

/// Rewrites `raw` with the files of its TNEF parts as ordinary attachments; None if it has
/// none that could be unpacked.
pub fn unpack(raw: &[u8], msg: &Message<'_>, keep_original: bool) -> Option<Vec<u8>> {
    let mut found: Vec<(String, Vec<u8>)> = Vec::new();
    for part in msg.parts.iter().filter(|p| is_tnef(p)) {
        found.extend(files(part.contents()));
    }
    if found.is_empty() {
        return None;
    }
    let root = msg.parts.first()?;
    let body_start = root.raw_body_offset() as usize;
    let (outer, inner) = split_headers(raw.get(..body_start)?);
    let original_body = if keep_original {
        None
    } else {
        without_tnef(raw, msg)
    };
    let body = original_body
        .as_deref()
        .unwrap_or_else(|| &raw[body_start..]);
    let mut rnd = [0u8; 12];
    getrandom::fill(&mut rnd).ok()?;
    let boundary = format!("=_postfach_tnef_{}", hex::encode(rnd));
    let names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
    let mut out = outer;
    out.extend_from_slice(
        format!(
            "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\
             {HEADER}: unpacked {} file(s) from winmail.dat{}\r\n\r\n",
            found.len(),
            if keep_original {
                " (original kept)"
            } else {
                ""
            }
        )
        .as_bytes(),
    );
    // A single-part TNEF message whose original is not kept has no first part.
    let single_tnef = !matches!(root.body, PartType::Multipart(_)) && is_tnef(root);
    if keep_original || !single_tnef {
        out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        if inner.is_empty() {
            out.extend_from_slice(b"Content-Type: text/plain; charset=us-ascii\r\n");
        } else {
            out.extend_from_slice(&inner);
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
        if !body.ends_with(b"\n") {
            out.extend_from_slice(b"\r\n");
        }
    }
    for (name, data) in &found {
        out.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Type: {}; {}\r\nContent-Disposition: attachment; {}\r\n\
                 Content-Transfer-Encoding: base64\r\n\r\n",
                mime_type(name),
                param("name", name),
                param("filename", name)
            )
            .as_bytes(),
        );
        let b64 = base64::engine::general_purpose::STANDARD.encode(data);
        for chunk in b64.as_bytes().chunks(76) {
            out.extend_from_slice(chunk);
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    tracing::debug!(files = ?names, "unpacked winmail.dat");
    Some(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use mail_parser::MessageParser;

    /// Writes a TNEF stream (MS-OXTNEF §2.1: signature, key, attributes with checksums) with
    /// one file attachment per entry — the shape Outlook writes.
    pub fn tnef_blob(files: &[(&str, &[u8])]) -> Vec<u8> {
        fn attr(out: &mut Vec<u8>, level: u8, id: u32, data: &[u8]) {
            out.push(level);
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(data);
            let sum = data.iter().fold(0u16, |s, b| s.wrapping_add(u16::from(*b)));
            out.extend_from_slice(&sum.to_le_bytes());
        }
        let date: Vec<u8> = [2026u16, 11, 23, 10, 0, 0, 1]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let mut out = Vec::new();
        out.extend_from_slice(&0x223e_9f78u32.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes());
        attr(&mut out, 1, 0x0008_9006, &[0, 0, 1, 0]); // attTnefVersion
        attr(&mut out, 1, 0x0006_9007, &[0xe4, 0x04, 0, 0, 0, 0, 0, 0]); // attOemCodepage 1252
        attr(&mut out, 1, 0x0007_8008, b"IPM.Microsoft Mail.Note\0"); // attMessageClass
        for (name, data) in files {
            // attAttachRendData: type file, position, width/height -1, flags 0.
            let mut rend = Vec::new();
            rend.extend_from_slice(&1u16.to_le_bytes());
            rend.extend_from_slice(&0xffff_ffffu32.to_le_bytes());
            rend.extend_from_slice(&0xffffu16.to_le_bytes());
            rend.extend_from_slice(&0xffffu16.to_le_bytes());
            rend.extend_from_slice(&0u32.to_le_bytes());
            attr(&mut out, 2, 0x0006_9002, &rend);
            let mut title = name.as_bytes().to_vec();
            title.push(0);
            attr(&mut out, 2, 0x0001_8010, &title); // attAttachTitle
            attr(&mut out, 2, 0x0003_8012, &date); // attAttachCreateDate
            attr(&mut out, 2, 0x0003_8013, &date); // attAttachModifyDate
            attr(&mut out, 2, 0x0006_800f, data); // attAttachData
            attr(&mut out, 2, 0x0006_9005, &[0, 0, 0, 0]); // attAttachment (no MAPI props)
        }
        out
    }

    pub fn message_with_winmail(files: &[(&str, &[u8])]) -> Vec<u8> {
        let b64 = base64::engine::general_purpose::STANDARD.encode(tnef_blob(files));
        format!(
            "From: boss@corp.example\r\nTo: info@acme.example\r\nSubject: Quarterly report\r\n\
             MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
             preamble\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee attached.\r\n\
             --b1\r\nContent-Type: application/ms-tnef; name=\"winmail.dat\"\r\n\
             Content-Disposition: attachment; filename=\"winmail.dat\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--b1--\r\n"
        )
        .into_bytes()
    }

    fn attachments(raw: &[u8]) -> Vec<(String, Vec<u8>)> {
        let m = MessageParser::default().parse(raw).unwrap();
        m.attachments()
            .map(|a| {
                (
                    a.attachment_name().unwrap_or("").to_string(),
                    a.contents().to_vec(),
                )
            })
            .collect()
    }

    #[test]
    fn files_come_out_as_attachments_and_the_original_stays() {
        let raw = message_with_winmail(&[("report.pdf", b"%PDF-1.4 data"), ("notes.txt", b"hi")]);
        let msg = MessageParser::default().parse(&raw).unwrap();
        assert!(has_tnef(&msg));
        let out = unpack(&raw, &msg, true).unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("Subject: Quarterly report"), "{text}");
        assert!(
            text.contains("X-Postfach-TNEF: unpacked 2 file(s)"),
            "{text}"
        );
        let att = attachments(&out);
        let names: Vec<&str> = att.iter().map(|a| a.0.as_str()).collect();
        assert_eq!(names, ["winmail.dat", "report.pdf", "notes.txt"], "{text}");
        assert_eq!(att[1].1, b"%PDF-1.4 data");
        let m = MessageParser::default().parse(&out).unwrap();
        assert_eq!(m.body_text(0).unwrap().trim(), "See attached.");
    }

    #[test]
    fn without_the_original_only_the_files_remain() {
        let raw = message_with_winmail(&[("report.pdf", b"%PDF")]);
        let msg = MessageParser::default().parse(&raw).unwrap();
        let out = unpack(&raw, &msg, false).unwrap();
        let names: Vec<String> = attachments(&out).into_iter().map(|a| a.0).collect();
        assert_eq!(names, ["report.pdf"], "{}", String::from_utf8_lossy(&out));
        let m = MessageParser::default().parse(&out).unwrap();
        assert_eq!(m.body_text(0).unwrap().trim(), "See attached.");
    }

    #[test]
    fn broken_tnef_and_odd_names_are_harmless() {
        assert!(files(b"not tnef at all").is_empty());
        let mut blob = tnef_blob(&[("a.txt", b"x")]);
        blob.truncate(blob.len() - 3);
        assert!(files(&blob).is_empty());
        assert_eq!(clean_name("..\\..\\evil.exe", 1), "evil.exe");
        assert_eq!(clean_name("", 2), "attachment-2");
        assert_eq!(
            param("filename", "Bericht Ü.pdf"),
            "filename*=UTF-8''Bericht%20%C3%9C.pdf"
        );
        let plain = b"From: a@b\r\nSubject: x\r\n\r\nno attachments\r\n";
        let msg = MessageParser::default().parse(&plain[..]).unwrap();
        assert!(!has_tnef(&msg));
        assert!(unpack(plain, &msg, true).is_none());
    }
}

#[cfg(test)]
mod exercise_tests {
    #[test]
    fn the_fuzz_entry_point_takes_anything() {
        crate::exercise(&super::tests::message_with_winmail(&[("a.txt", b"x")]));
        crate::exercise(b"");
        crate::exercise(b"\xff\xfe garbage\r\n\r\n");
        crate::exercise(b"Content-Type: application/ms-tnef\r\n\r\nnot tnef");
    }
}
