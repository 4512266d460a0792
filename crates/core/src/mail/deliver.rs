//! What listings show of a delivered message. Local delivery itself is
//! `plan::commit_delivery` (the pipeline's plan, applied in one transaction).

use mail_parser::MessageParser;

/// What listings show of a message without reading its body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageSummary {
    pub from: String,
    pub subject: String,
    /// The `Date:` header, Unix seconds.
    pub sent_at: Option<i64>,
    pub message_id: String,
}

/// Characters of the subject a summary keeps; a stored subject of fewer bytes is complete.
pub const SUMMARY_SUBJECT_CHARS: usize = 1000;

/// A header value as listings show it and the summary keeps it: control characters (a tab
/// left by unfolding, say) become spaces, at most `max` characters.
pub fn listing_text(s: &str, max: usize) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect()
}

/// Extracts the summary with the MIME parser; a message it cannot parse gets an empty one.
pub fn summarize(raw: &[u8]) -> MessageSummary {
    let Some(m) = MessageParser::default().parse(raw) else {
        return MessageSummary::default();
    };
    let from = m
        .from()
        .and_then(|a| a.first())
        .map(|a| match (a.name(), a.address()) {
            (Some(n), Some(addr)) => format!("{n} <{addr}>"),
            (None, Some(addr)) => addr.to_string(),
            (Some(n), None) => n.to_string(),
            (None, None) => String::new(),
        })
        .unwrap_or_default();
    let clean = listing_text;
    MessageSummary {
        from: clean(&from, 500),
        subject: clean(m.subject().unwrap_or_default(), SUMMARY_SUBJECT_CHARS),
        sent_at: m.date().map(|d| d.to_timestamp()),
        message_id: clean(m.message_id().unwrap_or_default(), 500),
    }
}
