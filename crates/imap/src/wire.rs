//! FETCH responses written straight into the session's output buffer, for the items a
//! client's message list asks for again and again: UID, FLAGS, INTERNALDATE, RFC822.SIZE,
//! MODSEQ and ENVELOPE (RFC 9051 §7.5.2, RFC 7162 §3.1.4.1).
//!
//! Why not imap-codec's encoder for these: it builds a fragment list per response and copies
//! it out, and every item must first become an owned `MessageDataItem` (a `Vec` of flags, a
//! cloned envelope). For a window of 100 messages' flags that allocation, not the protocol,
//! was most of the command's cost (the profile in bench/RESULTS.md). Everything written here is an atom, a
//! number or a quoted date, whose forms RFC 9051 §9 fixes; the one structured item, the
//! ENVELOPE, is encoded once by imap-codec (`envelope_wire`) and kept in that form by the
//! envelope cache. The tests hold every line to imap-codec's own encoding of the same items.

use std::io::Write;

use imap_codec::ResponseCodec;
use imap_codec::encode::Encoder;
use imap_codec::imap_types::core::{Atom, Vec1};
use imap_codec::imap_types::envelope::Envelope;
use imap_codec::imap_types::fetch::{MessageDataItem, MessageDataItemName};
use imap_codec::imap_types::response::{Data, Response};

use crate::selected::{ANSWERED, DELETED, DRAFT, FLAGGED, Meta, SEEN};

/// Whether `wire` can write this item (otherwise the response goes through imap-codec).
pub(crate) fn is_simple(name: &MessageDataItemName<'_>) -> bool {
    matches!(
        name,
        MessageDataItemName::Uid
            | MessageDataItemName::Flags
            | MessageDataItemName::InternalDate
            | MessageDataItemName::Rfc822Size
            | MessageDataItemName::ModSeq
            | MessageDataItemName::Envelope
    )
}

/// The flag list of a FETCH FLAGS (RFC 9051 §2.3.2), without the parentheses: system flags
/// in a fixed order, then the keywords (each an atom; anything else stored is left out, as
/// `session::flags_of` does), then `\Recent` for IMAP4rev1 sessions that see it.
pub(crate) fn write_flags(out: &mut Vec<u8>, meta: &Meta, recent: bool) {
    let mut first = true;
    let mut put = |out: &mut Vec<u8>, s: &[u8]| {
        if !first {
            out.push(b' ');
        }
        first = false;
        out.extend_from_slice(s);
    };
    for (bit, name) in [
        (SEEN, b"\\Seen".as_slice()),
        (ANSWERED, b"\\Answered"),
        (FLAGGED, b"\\Flagged"),
        (DELETED, b"\\Deleted"),
        (DRAFT, b"\\Draft"),
    ] {
        if meta.flags & bit != 0 {
            put(out, name);
        }
    }
    for k in meta.keywords.split_whitespace() {
        if Atom::validate(k).is_ok() {
            put(out, k.as_bytes());
        }
    }
    if recent {
        put(out, b"\\Recent");
    }
}

/// `* seq FETCH (…)\r\n` for `names`, all of which must pass [`is_simple`]. `envelope` is the
/// message's ENVELOPE as [`envelope_wire`] wrote it (None: not asked for, or the message has
/// none, and the item is left out like imap-codec's path leaves it out). Writes nothing and
/// returns false when no item is left, as an empty FETCH cannot be sent.
pub(crate) fn write_fetch(
    out: &mut Vec<u8>,
    seq: u32,
    names: &[MessageDataItemName<'_>],
    meta: &Meta,
    recent: bool,
    envelope: Option<&[u8]>,
) -> bool {
    let start = out.len();
    let _ = write!(out, "* {seq} FETCH (");
    let open = out.len();
    for name in names {
        if out.len() > open {
            out.push(b' ');
        }
        let before = out.len();
        match name {
            MessageDataItemName::Uid => {
                let _ = write!(out, "UID {}", meta.uid.max(1));
            }
            MessageDataItemName::Flags => {
                out.extend_from_slice(b"FLAGS (");
                write_flags(out, meta, recent);
                out.push(b')');
            }
            MessageDataItemName::InternalDate => {
                match chrono::DateTime::from_timestamp(meta.internal_date, 0) {
                    Some(t) => {
                        let _ = write!(
                            out,
                            "INTERNALDATE \"{}\"",
                            t.fixed_offset().format("%d-%b-%Y %H:%M:%S %z")
                        );
                    }
                    None => out.truncate(before.saturating_sub(1).max(open)),
                }
            }
            MessageDataItemName::Rfc822Size => {
                let _ = write!(out, "RFC822.SIZE {}", meta.size as u32);
            }
            MessageDataItemName::ModSeq => {
                let _ = write!(out, "MODSEQ ({})", meta.modseq.max(1));
            }
            MessageDataItemName::Envelope => match envelope {
                Some(e) => {
                    out.extend_from_slice(b"ENVELOPE ");
                    out.extend_from_slice(e);
                }
                None => out.truncate(before.saturating_sub(1).max(open)),
            },
            // Not for this writer (`is_simple`); the caller checked.
            _ => out.truncate(before.saturating_sub(1).max(open)),
        }
    }
    if out.len() == open {
        out.truncate(start);
        return false;
    }
    out.extend_from_slice(b")\r\n");
    true
}

/// An ENVELOPE as it goes on the wire (RFC 9051 §7.5.2), encoded by imap-codec: the item of
/// a one-item FETCH response without what surrounds it.
pub(crate) fn envelope_wire(envelope: &Envelope<'_>) -> Vec<u8> {
    const HEAD: &[u8] = b"* 1 FETCH (ENVELOPE ";
    const TAIL: &[u8] = b")\r\n";
    let response = Response::Data(Data::Fetch {
        seq: std::num::NonZeroU32::MIN,
        items: Vec1::from(MessageDataItem::Envelope(envelope.clone())),
    });
    let bytes = ResponseCodec::default().encode(&response).dump();
    debug_assert!(bytes.starts_with(HEAD) && bytes.ends_with(TAIL));
    bytes[HEAD.len()..bytes.len() - TAIL.len()].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fetch;
    use imap_codec::imap_types::datetime::DateTime;
    use std::num::{NonZeroU32, NonZeroU64};

    fn meta(uid: u32, flags: i64, keywords: &str, date: i64) -> Meta {
        Meta {
            uid,
            flags,
            keywords: keywords.into(),
            modseq: 77,
            size: 4321,
            internal_date: date,
            blob_id: "".into(),
        }
    }

    /// The same response through imap-codec's encoder.
    fn codec(
        seq: u32,
        names: &[MessageDataItemName<'_>],
        m: &Meta,
        recent: bool,
        env: Option<&Envelope<'static>>,
    ) -> Vec<u8> {
        let date = chrono::DateTime::from_timestamp(m.internal_date, 0)
            .and_then(|t| DateTime::try_from(t.fixed_offset()).ok());
        let items: Vec<MessageDataItem<'static>> = names
            .iter()
            .filter_map(|n| match n {
                MessageDataItemName::Uid => Some(MessageDataItem::Uid(NonZeroU32::new(m.uid)?)),
                MessageDataItemName::Flags => {
                    Some(MessageDataItem::Flags(crate::session::flags_of(m, recent)))
                }
                MessageDataItemName::InternalDate => {
                    Some(MessageDataItem::InternalDate(date.clone()?))
                }
                MessageDataItemName::Rfc822Size => Some(MessageDataItem::Rfc822Size(m.size as u32)),
                MessageDataItemName::ModSeq => {
                    Some(MessageDataItem::ModSeq(NonZeroU64::new(m.modseq as u64)?))
                }
                MessageDataItemName::Envelope => Some(MessageDataItem::Envelope(env?.clone())),
                _ => None,
            })
            .collect();
        let Ok(items) = Vec1::try_from(items) else {
            return Vec::new();
        };
        ResponseCodec::default()
            .encode(&Response::Data(Data::Fetch {
                seq: NonZeroU32::new(seq).unwrap(),
                items,
            }))
            .dump()
    }

    #[test]
    fn lines_match_imap_codecs_encoding() {
        let raw = "From: \"Ann Example\" <ann@a.example>\r\nTo: b@b.example, \"C, D\" <c@c.example>\r\n\
                   Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= \"quoted\" \\ back\r\n\
                   Date: Tue, 24 Nov 2026 10:00:00 +0100\r\nMessage-ID: <x@y>\r\n\r\nbody\r\n";
        let parsed = fetch::parse_headers(raw.as_bytes()).unwrap();
        let envs = [
            fetch::envelope(&parsed, false),
            fetch::envelope(&parsed, true),
        ];
        let all = [
            MessageDataItemName::Uid,
            MessageDataItemName::Flags,
            MessageDataItemName::InternalDate,
            MessageDataItemName::Rfc822Size,
            MessageDataItemName::ModSeq,
            MessageDataItemName::Envelope,
        ];
        let metas = [
            meta(1, 0, "", 0),
            meta(42, SEEN | FLAGGED | DRAFT, "$Forwarded Junk", 1_795_000_000),
            meta(7, ANSWERED | DELETED, "bad(atom ok", -86_400),
        ];
        let name_lists: [&[MessageDataItemName<'_>]; 4] = [
            &all,
            &all[1..2],
            &[MessageDataItemName::Flags, MessageDataItemName::Uid],
            &[MessageDataItemName::Envelope, MessageDataItemName::Flags],
        ];
        for m in &metas {
            for names in name_lists {
                for recent in [false, true] {
                    for env in &envs {
                        let wire = envelope_wire(env);
                        let mut out = b"prefix".to_vec();
                        let wrote = write_fetch(&mut out, 3, names, m, recent, Some(&wire));
                        let want = codec(3, names, m, recent, Some(env));
                        assert_eq!(
                            String::from_utf8_lossy(&out[6..]),
                            String::from_utf8_lossy(&want)
                        );
                        assert!(wrote);
                    }
                }
            }
        }
        // An item with nothing to say is left out; a response with nothing left is not sent.
        let m = &metas[0];
        let mut out = Vec::new();
        write_fetch(&mut out, 1, &all[4..], m, false, None);
        assert_eq!(out, codec(1, &all[4..], m, false, None));
        let mut out = b"x".to_vec();
        assert!(!write_fetch(&mut out, 1, &all[5..], m, false, None));
        assert_eq!(out, b"x");
    }
}
