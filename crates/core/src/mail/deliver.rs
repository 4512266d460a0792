//! Local delivery into a mailbox, exactly once: the message row, the storage counter and the
//! spool recipient's "delivered" mark are written in one transaction, so a crash leaves the
//! recipient either delivered or still pending — never both, never lost.

use mail_parser::MessageParser;
use postfach_store::{NewMessage, QueueEntry, QueueRcpt};

use crate::Directory;
use crate::error::{Error, Result};

/// What listings show of a message without reading its body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageSummary {
    pub from: String,
    pub subject: String,
    /// The `Date:` header, Unix seconds.
    pub sent_at: Option<i64>,
    pub message_id: String,
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
    // Keep listings tidy: no control characters, bounded length.
    let clean = |s: &str, max: usize| -> String {
        s.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(max)
            .collect()
    };
    MessageSummary {
        from: clean(&from, 500),
        subject: clean(m.subject().unwrap_or_default(), 1000),
        sent_at: m.date().map(|d| d.to_timestamp()),
        message_id: clean(m.message_id().unwrap_or_default(), 500),
    }
}

impl Directory {
    /// Delivers a spooled message to one local recipient's INBOX and marks the recipient
    /// delivered, in one transaction. Returns the new UID, or `None` if the recipient was
    /// already delivered (a retried worker after a crash must not deliver twice).
    pub async fn deliver_to_inbox(
        &self,
        entry: &QueueEntry,
        rcpt: &QueueRcpt,
        summary: &MessageSummary,
    ) -> Result<Option<i64>> {
        let address_id = rcpt.address_id.ok_or_else(|| {
            Error::Conflict(format!("recipient {} has no local address", rcpt.rcpt))
        })?;
        let mut tx = self.store.begin_write().await?;
        let current = tx.queue_rcpts(entry.id).await?;
        if current
            .iter()
            .any(|r| r.id == rcpt.id && r.status != "pending")
        {
            return Ok(None);
        }
        let inbox = self.inbox(&mut *tx, address_id).await?;
        let m = tx
            .message_append(
                inbox.id,
                &NewMessage {
                    blob_id: entry.blob_id.clone(),
                    size: entry.size,
                    internal_date: entry.received_at,
                    flags: 0,
                    keywords: String::new(),
                    header_from: summary.from.clone(),
                    subject: summary.subject.clone(),
                    sent_at: summary.sent_at,
                    message_id: summary.message_id.clone(),
                },
            )
            .await?;
        tx.address_add_usage(address_id, entry.size).await?;
        tx.queue_rcpt_set(rcpt.id, "delivered", "", self.now())
            .await?;
        tx.commit().await?;
        // IDLE sessions on this INBOX hear of it now (P3: within a second of delivery).
        self.changed(inbox.id);
        Ok(Some(m.uid))
    }
}
