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
    /// The day of the `Date:` header as written, its zone ignored (days since 1970-01-01;
    /// IMAP SEARCH SENT*, RFC 9051 §6.4.4).
    pub sent_day: Option<i64>,
}

/// Days since 1970-01-01 of the date a `Date:` field names as written.
pub fn written_day(d: &mail_parser::DateTime) -> Option<i64> {
    let date = chrono::NaiveDate::from_ymd_opt(d.year as i32, d.month as u32, d.day as u32)?;
    Some((date - chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?).num_days())
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
        sent_day: m.date().and_then(written_day),
    }
}
