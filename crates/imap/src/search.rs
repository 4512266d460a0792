//! SEARCH (RFC 9051 §6.4.4) over a session's view of its mailbox: flags, sizes, dates and
//! UID/sequence sets from the message index; SUBJECT and the SENT* dates from the summary the
//! store keeps of each message (decoded subject, `Date:`), so that they need no message body;
//! FROM/TO/CC/BCC/HEADER/BODY/TEXT from the message itself, parsed by mail-parser only when a
//! criterion needs it.
//! Text matches are case-insensitive substrings on decoded (UTF-8) text, as RFC 9051 asks.

use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};

use chrono::{DateTime, NaiveDate, Utc};
use imap_codec::imap_types::search::SearchKey;
use mail_parser::{Message, PartType};

use crate::selected::{ANSWERED, DELETED, DRAFT, FLAGGED, Meta, SEEN};

/// What the criteria need beyond the session's index: the stored summary of each message
/// (SUBJECT and the SENT* dates, kept in the store's message row at delivery) and/or the
/// message itself (everything else about content).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    pub summary: bool,
    pub content: bool,
}

pub fn needs(keys: &[SearchKey<'_>]) -> Needs {
    let mut n = Needs::default();
    let mut todo: Vec<&SearchKey<'_>> = keys.iter().collect();
    while let Some(k) = todo.pop() {
        match k {
            SearchKey::Subject(_)
            | SearchKey::SentBefore(_)
            | SearchKey::SentOn(_)
            | SearchKey::SentSince(_) => n.summary = true,
            SearchKey::Bcc(_)
            | SearchKey::Body(_)
            | SearchKey::Cc(_)
            | SearchKey::From(_)
            | SearchKey::Header(..)
            | SearchKey::Text(_)
            | SearchKey::To(_) => n.content = true,
            SearchKey::And(v) => todo.extend(v.as_ref().iter()),
            SearchKey::Not(k) => todo.push(k.as_ref()),
            SearchKey::Or(a, b) => todo.extend([a.as_ref(), b.as_ref()]),
            _ => {}
        }
    }
    n
}

/// What a criterion is evaluated against.
pub struct Candidate<'a> {
    pub seq: u32,
    pub meta: &'a Meta,
    pub recent: bool,
    /// Largest sequence number and UID of the view ("*").
    pub max_seq: u32,
    pub max_uid: u32,
    pub message: Option<&'a Message<'a>>,
    /// The message's stored row (subject and `Date:` as delivery summarised them).
    pub summary: Option<&'a postfach_store::Message>,
}

fn contains(haystack: &str, needle: &str) -> bool {
    needle.is_empty() || haystack.to_lowercase().contains(&needle.to_lowercase())
}

fn day(t: i64) -> NaiveDate {
    DateTime::<Utc>::from_timestamp(t, 0)
        .map(|d| d.date_naive())
        .unwrap_or_default()
}

/// RFC 9051 §6.4.4 HEADER: a message matches when any of its fields of that name contains
/// the string (a message may have several, e.g. `Received` or an `X-` field twice). The raw
/// text (as written) and the decoded form both count: a search for a display name or for the
/// address must hit either way.
fn header_matches(m: &Message<'_>, name: &str, needle: &str) -> bool {
    m.headers()
        .iter()
        .filter(|h| h.name.as_str().eq_ignore_ascii_case(name))
        .any(|h| {
            let raw = m
                .raw_message
                .get(h.offset_start as usize..h.offset_end as usize)
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            contains(&raw, needle) || contains(&value_text(&h.value), needle)
        })
}

fn value_text(v: &mail_parser::HeaderValue<'_>) -> String {
    match v {
        mail_parser::HeaderValue::Address(a) => a
            .iter()
            .map(|x| {
                format!(
                    "{} <{}>",
                    x.name.as_deref().unwrap_or(""),
                    x.address.as_deref().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
        mail_parser::HeaderValue::Text(t) => t.to_string(),
        mail_parser::HeaderValue::TextList(l) => l.join(" "),
        _ => String::new(),
    }
}

fn body_text(m: &Message<'_>) -> String {
    let mut out = String::new();
    // Encapsulated messages, iteratively (a hostile nesting depth must not use the stack).
    let mut todo = vec![(m, 0usize)];
    while let Some((msg, depth)) = todo.pop() {
        for part in &msg.parts {
            match &part.body {
                PartType::Text(t) | PartType::Html(t) => {
                    out.push_str(t);
                    out.push('\n');
                }
                PartType::Message(inner) if depth < crate::fetch::MAX_NESTING => {
                    todo.push((inner, depth + 1))
                }
                _ => {}
            }
        }
    }
    out
}

fn headers_text(m: &Message<'_>) -> String {
    String::from_utf8_lossy(crate::fetch::span(
        m,
        m.parts[0].offset_header,
        Some(m.parts[0].offset_body),
    ))
    .into_owned()
}

/// Whether `value` is in a sequence set where `*` stands for `largest` (RFC 9051 §9
/// `seq-range`: `a:b` and `b:a` are the same range). Checked range by range, never expanded:
/// a client may send `1:4294967295`.
/// The set as inclusive (low, high) ranges, `*` standing for `largest` (a range may be
/// written either way round, RFC 9051 §9 seq-range).
pub(crate) fn set_ranges(set: &SequenceSet, largest: u32) -> impl Iterator<Item = (u32, u32)> + '_ {
    let expand = move |s: &SeqOrUid| match s {
        SeqOrUid::Value(v) => v.get(),
        SeqOrUid::Asterisk => largest,
    };
    set.0.as_ref().iter().map(move |seq| match seq {
        Sequence::Single(s) => (expand(s), expand(s)),
        Sequence::Range(a, b) => {
            let (a, b) = (expand(a), expand(b));
            (a.min(b), a.max(b))
        }
    })
}

pub(crate) fn in_set(set: &SequenceSet, value: u32, largest: u32) -> bool {
    let expand = |s: &SeqOrUid| match s {
        SeqOrUid::Value(v) => v.get(),
        SeqOrUid::Asterisk => largest,
    };
    set.0.as_ref().iter().any(|seq| match seq {
        Sequence::Single(s) => expand(s) == value,
        Sequence::Range(a, b) => {
            let (a, b) = (expand(a), expand(b));
            (a.min(b)..=a.max(b)).contains(&value)
        }
    })
}

/// The day of the `Date:` header (RFC 9051 §6.4.4 SENT*: "disregarding time and timezone").
fn sent_day(c: &Candidate<'_>) -> Option<NaiveDate> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    let days = match (c.message, c.summary) {
        (Some(m), _) => m.date().and_then(postfach_core::mail::written_day),
        (None, Some(row)) => match row.sent_day {
            Some(d) => Some(d),
            // Stored before the written day was kept: its UTC day stands in.
            None => return row.sent_at.map(day),
        },
        (None, None) => None,
    }?;
    epoch.checked_add_signed(chrono::Duration::days(days))
}

pub fn matches(key: &SearchKey<'_>, c: &Candidate<'_>) -> bool {
    let flag = |bit: i64| c.meta.flags & bit != 0;
    let text = |s: &imap_codec::imap_types::core::AString<'_>| {
        String::from_utf8_lossy(s.as_ref()).into_owned()
    };
    let msg = c.message;
    match key {
        SearchKey::And(keys) => keys.as_ref().iter().all(|k| matches(k, c)),
        SearchKey::SequenceSet(set) => in_set(set, c.seq, c.max_seq),
        SearchKey::Uid(set) => in_set(set, c.meta.uid, c.max_uid),
        SearchKey::All => true,
        SearchKey::Answered => flag(ANSWERED),
        SearchKey::Unanswered => !flag(ANSWERED),
        SearchKey::Deleted => flag(DELETED),
        SearchKey::Undeleted => !flag(DELETED),
        SearchKey::Draft => flag(DRAFT),
        SearchKey::Undraft => !flag(DRAFT),
        SearchKey::Flagged => flag(FLAGGED),
        SearchKey::Unflagged => !flag(FLAGGED),
        SearchKey::Seen => flag(SEEN),
        SearchKey::Unseen => !flag(SEEN),
        SearchKey::Recent => c.recent,
        SearchKey::New => c.recent && !flag(SEEN),
        SearchKey::Old => !c.recent,
        SearchKey::Keyword(k) => c
            .meta
            .keywords
            .split_whitespace()
            .any(|x| x.eq_ignore_ascii_case(k.as_ref())),
        SearchKey::Unkeyword(k) => !c
            .meta
            .keywords
            .split_whitespace()
            .any(|x| x.eq_ignore_ascii_case(k.as_ref())),
        SearchKey::Larger(n) => c.meta.size > i64::from(*n),
        SearchKey::Smaller(n) => c.meta.size < i64::from(*n),
        SearchKey::Before(d) => day(c.meta.internal_date) < *d.as_ref(),
        SearchKey::On(d) => day(c.meta.internal_date) == *d.as_ref(),
        SearchKey::Since(d) => day(c.meta.internal_date) >= *d.as_ref(),
        SearchKey::Not(k) => !matches(k, c),
        SearchKey::Or(a, b) => matches(a, c) || matches(b, c),
        SearchKey::From(s) => msg.is_some_and(|m| header_matches(m, "From", &text(s))),
        SearchKey::To(s) => msg.is_some_and(|m| header_matches(m, "To", &text(s))),
        SearchKey::Cc(s) => msg.is_some_and(|m| header_matches(m, "Cc", &text(s))),
        SearchKey::Bcc(s) => msg.is_some_and(|m| header_matches(m, "Bcc", &text(s))),
        // The decoded subject (RFC 2047), in the form the stored summary holds it, so that a
        // key matches the same messages whether or not another key made us read them.
        SearchKey::Subject(s) => match (msg, c.summary) {
            (Some(m), _) => contains(
                &postfach_core::mail::listing_text(m.subject().unwrap_or_default(), usize::MAX),
                &text(s),
            ),
            (None, Some(row)) => contains(&row.subject, &text(s)),
            (None, None) => false,
        },
        SearchKey::Header(name, value) => {
            msg.is_some_and(|m| header_matches(m, &text(name), &text(value)))
        }
        SearchKey::Body(s) => msg.is_some_and(|m| contains(&body_text(m), &text(s))),
        SearchKey::Text(s) => msg.is_some_and(|m| {
            let needle = text(s);
            contains(&headers_text(m), &needle) || contains(&body_text(m), &needle)
        }),
        SearchKey::SentBefore(d) => sent_day(c).is_some_and(|x| x < *d.as_ref()),
        SearchKey::SentOn(d) => sent_day(c).is_some_and(|x| x == *d.as_ref()),
        SearchKey::SentSince(d) => sent_day(c).is_some_and(|x| x >= *d.as_ref()),
        SearchKey::ModSequence { modseq, .. } => c.meta.modseq >= *modseq as i64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `set_ranges` (binary search in FETCH/STORE) and `in_set` (SEARCH) agree on every
    /// value, including `*`, reversed ranges and values past the largest.
    #[test]
    fn ranges_agree_with_membership() {
        for text in [
            "1", "3:5", "5:3", "*", "2,9:*", "12:*", "1:*", "4,4,2:3", "20:15,7",
        ] {
            let set = SequenceSet::try_from(text).unwrap();
            for largest in [1, 10, 14] {
                let ranges: Vec<(u32, u32)> = set_ranges(&set, largest).collect();
                for v in 1..=25 {
                    let by_ranges = ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&v));
                    assert_eq!(
                        by_ranges,
                        in_set(&set, v, largest),
                        "{text} {v} of {largest}"
                    );
                }
            }
        }
    }
}
