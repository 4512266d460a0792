//! Automatic replies (F10, RFC 3834) and Sieve rejection notices (RFC 5429).

use mail_builder::MessageBuilder;
use mail_builder::headers::raw::Raw;
use mail_parser::{HeaderName, Message};

use crate::message::header_text;

/// RFC 3834 §2 and the seed: whether a message may be answered automatically at all. Never
/// to the null sender or a mailer daemon, never to auto-submitted, list or bulk mail.
pub fn may_answer(envelope_sender: &str, msg: &Message<'_>) -> bool {
    let sender = envelope_sender.to_ascii_lowercase();
    let local = sender.split('@').next().unwrap_or("");
    if sender.is_empty()
        || [
            "mailer-daemon",
            "postmaster",
            "listserv",
            "majordomo",
            "owner-",
            "noreply",
            "no-reply",
        ]
        .iter()
        .any(|p| local == *p || (p.ends_with('-') && local.starts_with(p)))
        || local.ends_with("-request")
        || local.starts_with("bounce")
    {
        return false;
    }
    for h in msg.headers() {
        match &h.name {
            HeaderName::ListId
            | HeaderName::ListUnsubscribe
            | HeaderName::ListPost
            | HeaderName::ListHelp
            | HeaderName::ListSubscribe
            | HeaderName::ListOwner
            | HeaderName::ListArchive => return false,
            _ => {}
        }
    }
    if header_text(msg, "Auto-Submitted").is_some_and(|v| !v.eq_ignore_ascii_case("no")) {
        return false;
    }
    if header_text(msg, "Precedence").is_some_and(|v| {
        let v = v.to_ascii_lowercase();
        v == "bulk" || v == "list" || v == "junk"
    }) {
        return false;
    }
    if header_text(msg, "X-Auto-Response-Suppress").is_some_and(|v| {
        v.to_ascii_lowercase()
            .split(',')
            .any(|x| matches!(x.trim(), "all" | "oof" | "autoreply"))
    }) {
        return false;
    }
    true
}

pub fn message_id(hostname: &str) -> String {
    let mut r = [0u8; 12];
    let _ = getrandom::fill(&mut r);
    format!("{}@{hostname}", hex::encode(r))
}

/// The autoresponse: from the user (or their chosen alias), to the sender, `Auto-Submitted:
/// auto-replied`, threaded under the original (RFC 3834 §3).
pub fn autoresponse(
    from: &str,
    to: &str,
    subject: &str,
    text: &str,
    original: &Message<'_>,
    hostname: &str,
    now: i64,
) -> Vec<u8> {
    let subject = if subject.trim().is_empty() {
        format!("Auto: {}", original.subject().unwrap_or("your message"))
    } else {
        subject.to_string()
    };
    let mut b = MessageBuilder::new()
        .from(from.to_string())
        .to(to.to_string())
        .subject(subject)
        .date(now)
        .message_id(message_id(hostname))
        .header("Auto-Submitted", Raw::new("auto-replied"))
        .header("Precedence", Raw::new("bulk"))
        .text_body(text.replace("\r\n", "\n").replace('\n', "\r\n"));
    if let Some(id) = original.message_id() {
        b = b.in_reply_to(id.to_string()).references(id.to_string());
    }
    b.write_to_vec().unwrap_or_default()
}

/// A Sieve `reject` after the message was accepted (RFC 5429 §2.1.1: a rejection notice to
/// the envelope sender, which we send as a plain auto-replied message quoting the reason).
pub fn rejection(
    from: &str,
    to: &str,
    reason: &str,
    original: &Message<'_>,
    hostname: &str,
    now: i64,
) -> Vec<u8> {
    let text = format!(
        "Your message to {from} was rejected by the recipient's filter.\n\nReason: {reason}\n\nSubject of your message: {}\n",
        original.subject().unwrap_or("")
    );
    autoresponse(
        from,
        to,
        &format!("Rejected: {}", original.subject().unwrap_or("your message")),
        &text,
        original,
        hostname,
        now,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    fn m(raw: &str) -> Message<'_> {
        MessageParser::default().parse(raw.as_bytes()).unwrap()
    }

    #[test]
    fn rfc3834_exclusions() {
        let plain = m("From: a@x.org\r\nSubject: hi\r\n\r\nx\r\n");
        assert!(may_answer("a@x.org", &plain));
        assert!(!may_answer("", &plain));
        assert!(!may_answer("MAILER-DAEMON@x.org", &plain));
        assert!(!may_answer("owner-list@x.org", &plain));
        assert!(!may_answer("list-request@x.org", &plain));
        assert!(!may_answer(
            "a@x.org",
            &m("Auto-Submitted: auto-replied\r\n\r\nx")
        ));
        assert!(may_answer("a@x.org", &m("Auto-Submitted: no\r\n\r\nx")));
        assert!(!may_answer("a@x.org", &m("List-Id: <l.x.org>\r\n\r\nx")));
        assert!(!may_answer("a@x.org", &m("Precedence: bulk\r\n\r\nx")));
        assert!(!may_answer(
            "a@x.org",
            &m("X-Auto-Response-Suppress: OOF, DR\r\n\r\nx")
        ));
    }

    #[test]
    fn autoresponse_is_marked_and_threaded() {
        let orig = m("From: a@x.org\r\nSubject: Question\r\nMessage-ID: <q1@x.org>\r\n\r\nx\r\n");
        let raw = autoresponse(
            "me@h.example",
            "a@x.org",
            "",
            "I am away.\nBack Monday.",
            &orig,
            "mx.h.example",
            1_795_000_000,
        );
        let r = m(std::str::from_utf8(&raw).unwrap());
        assert_eq!(r.subject(), Some("Auto: Question"));
        assert_eq!(header_text(&r, "Auto-Submitted"), Some("auto-replied"));
        assert_eq!(r.in_reply_to().as_text(), Some("q1@x.org"));
        assert!(r.body_text(0).unwrap().contains("Back Monday."));
    }
}
