//! The durable spool (DESIGN.md "Acknowledged means durable") and the operator's view of it.
//!
//! `spool` is what an SMTP session calls before it answers 250: the blob is already on disk,
//! and the queue row with all recipients (plus the sender's O3 accounting) is committed in one
//! transaction. Workers then claim due entries, deliver, and reschedule or finish them.

use serde::Serialize;
use utoipa::ToSchema;

use postfach_store::{NewQueueEntry, NewQueueRcpt, QueueEntry, QueueRcpt, Tx};

use crate::error::{Error, Result};
use crate::model::rfc3339;
use crate::rules::o3_daily_sending as o3;
use crate::{Actor, Directory};

/// Days a platform notice (`Directory::platform_notice`) is retried before it is dropped.
const NOTICE_LIFETIME: i64 = 2 * 86_400;

impl Directory {
    /// The queue's recipient row for `to`: a hosted mailbox, a remote domain, or the original
    /// sender behind one of our SRS addresses; `None` when a hosted domain has no such
    /// address (or `to` is no address).
    pub async fn queue_rcpt(&self, to: &str) -> Result<Option<NewQueueRcpt>> {
        use crate::mail::routing::Rcpt;
        Ok(match self.resolve_rcpt(to).await {
            Ok(Rcpt::Local(l)) => Some(NewQueueRcpt {
                rcpt: to.to_string(),
                address_id: Some(l.address_id),
                via: l.via.as_str().into(),
                domain: l.domain,
                is_local: true,
                notify: 0,
                orcpt: None,
            }),
            Ok(Rcpt::Remote { domain }) => Some(NewQueueRcpt {
                rcpt: to.to_string(),
                domain,
                is_local: false,
                ..Default::default()
            }),
            Ok(Rcpt::Reverse { original, domain }) => Some(NewQueueRcpt {
                rcpt: original,
                domain,
                is_local: false,
                ..Default::default()
            }),
            Ok(Rcpt::NoSuchUser) | Err(_) => None,
        })
    }

    /// A message of the platform itself (an invitation, an alert) to `to`: from the
    /// platform's postmaster, with the null envelope sender so that nothing answers or
    /// bounces it (RFC 3834 §3.3, RFC 5321 §4.5.5), signed as the platform (O2), delivered by
    /// the queue like any other mail.
    pub async fn platform_notice(&self, to: &str, subject: &str, text: &str) -> Result<i64> {
        let rcpt = self
            .queue_rcpt(to)
            .await?
            .ok_or_else(|| Error::not_found("recipient", to))?;
        let host = self.policy.platform.hostname.trim_end_matches('.');
        let message = mail_builder::MessageBuilder::new()
            .from(("Postfach".to_string(), format!("postmaster@{host}")))
            .to(to)
            .subject(subject)
            .date(self.now())
            .message_id(format!("{}@{host}", crate::secret::random_hex(12)))
            .header(
                "Auto-Submitted",
                mail_builder::headers::raw::Raw::new("auto-generated"),
            )
            .text_body(text)
            .write_to_vec()
            .map_err(|e| Error::Internal(format!("composing a notice: {e}")))?;
        let request = SpoolRequest {
            entry: NewQueueEntry {
                blob_id: postfach_store::inline_id(&message),
                size: message.len() as i64,
                mail_from: String::new(),
                source: "notice".into(),
                sender_address_id: None,
                env_id: None,
                ret_full: false,
                expires_at: 0,
            },
            rcpts: vec![rcpt],
            count_for: None,
            lifetime: NOTICE_LIFETIME,
            inline_body: Some(message),
        };
        self.spool(&request).await
    }
}

/// O3: what a submitted message counts toward its sender's daily limit.
#[derive(Debug, Clone, Copy)]
pub struct SendCount {
    pub address_id: i64,
    /// Every distinct envelope recipient.
    pub recipients: i64,
    /// The offer's limit per 24 hours.
    pub daily_limit: i64,
}

/// Everything a session knows when it accepts a message.
#[derive(Debug, Clone)]
pub struct SpoolRequest {
    pub entry: NewQueueEntry,
    pub rcpts: Vec<NewQueueRcpt>,
    /// Submission: who sends, counted toward the daily limit (O3).
    pub count_for: Option<SendCount>,
    /// Seconds the message is retried before it bounces (`entry.expires_at` is set from it).
    pub lifetime: i64,
    /// The body itself, to be kept in the store in the spool's transaction (`entry.blob_id`
    /// is then its [`postfach_store::inline_id`]); `None` when it is already in the blob
    /// store. See [`INLINE_BODY_MAX`].
    pub inline_body: Option<Vec<u8>>,
}

/// Bodies up to this size are spooled into the metadata store (`inline_blobs`) with their
/// queue entry instead of into a file each: the file, its fsync, the rename and the
/// directory's fsync cost more than the message's whole delivery otherwise. Most mail is
/// smaller; larger bodies go to the blob store as before.
pub const INLINE_BODY_MAX: usize = 64 * 1024;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QueueRcptView {
    pub rcpt: String,
    pub local: bool,
    pub status: String,
    pub last_error: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QueueView {
    pub id: i64,
    pub from: String,
    pub source: String,
    pub size: i64,
    pub received_at: String,
    pub next_attempt_at: String,
    pub expires_at: String,
    pub attempts: i64,
    pub recipients: Vec<QueueRcptView>,
}

impl Directory {
    /// Commits a message to the spool. Returns the queue id.
    pub async fn spool(&self, req: &SpoolRequest) -> Result<i64> {
        let mut turn = self.group.turn().await?;
        let spooled = self.spool_in(turn.tx(), req, None).await;
        Ok(turn.finish(spooled).await?.0.id)
    }

    /// Commits a message to the spool already claimed for a worker of `node` for `lease`
    /// seconds, and returns it as `queue_claim` would: the session hands it to its own
    /// process's workers, saving the claim's write transaction. If this process
    /// stops first, `queue_release_node` at its next start (or the lease's end, for another
    /// node) frees the entry; nothing is lost either way.
    pub async fn spool_claimed(
        &self,
        req: &SpoolRequest,
        node: &str,
        lease: i64,
    ) -> Result<(QueueEntry, Vec<QueueRcpt>)> {
        let mut turn = self.group.turn().await?;
        let spooled = self.spool_in(turn.tx(), req, Some((lease, node))).await;
        turn.finish(spooled).await
    }

    /// A claimed entry with its recipients, as the claiming transaction sees them.
    async fn claimed(tx: &mut dyn Tx, id: i64) -> Result<(QueueEntry, Vec<QueueRcpt>)> {
        let entry = tx
            .queue_get(id)
            .await?
            .ok_or_else(|| Error::not_found("queue entry", id.to_string()))?;
        Ok((entry, tx.queue_rcpts(id).await?))
    }

    /// The spool's writes: the body if it is kept inline, the entry (claimed for `lease`
    /// seconds by a node, if given) with its recipients, the sender's O3 accounting.
    async fn spool_in(
        &self,
        tx: &mut dyn Tx,
        req: &SpoolRequest,
        claim: Option<(i64, &str)>,
    ) -> Result<(QueueEntry, Vec<QueueRcpt>)> {
        let now = self.now();
        let entry = NewQueueEntry {
            expires_at: now + req.lifetime,
            ..req.entry.clone()
        };
        // O3 first: it takes the sender's lock before anything else is written. A refusal
        // undoes the whole spool (this writer's savepoint).
        if let Some(c) = req.count_for {
            let sent = tx
                .send_log_add(c.address_id, c.recipients, now, now - o3::WINDOW_SECONDS)
                .await?;
            o3::check_written(sent, c.daily_limit)?;
        }
        if let Some(body) = &req.inline_body {
            tx.inline_blob_put(&entry.blob_id, body).await?;
        }
        let spooled = tx
            .queue_insert_returning(
                &entry,
                &req.rcpts,
                now,
                claim.map(|(lease, node)| (now + lease, node)),
            )
            .await?;

        Ok(spooled)
    }

    /// Due entries, for the delivery workers.
    pub async fn queue_due(&self, limit: i64) -> Result<Vec<QueueEntry>> {
        let mut tx = self.store.begin().await?;
        Ok(tx.queue_due(self.now(), limit).await?)
    }

    /// Claims an entry for a worker of `node` for `lease` seconds; the recipients come with
    /// it. None if another worker holds it.
    pub async fn queue_claim(
        &self,
        id: i64,
        lease: i64,
        node: &str,
    ) -> Result<Option<(QueueEntry, Vec<QueueRcpt>)>> {
        let now = self.now();
        let mut tx = self.store.begin_write().await?;
        if !tx.queue_claim(id, now, now + lease, node).await? {
            return Ok(None);
        }
        let claimed = Self::claimed(&mut *tx, id).await?;
        tx.commit().await?;
        Ok(Some(claimed))
    }

    /// The recipients of an entry as they are now.
    pub async fn queue_claim_rcpts(&self, id: i64) -> Result<Vec<QueueRcpt>> {
        let mut tx = self.store.begin().await?;
        Ok(tx.queue_rcpts(id).await?)
    }

    /// At start: the claims this node held before it stopped are void.
    pub async fn queue_release_node(&self, node: &str) -> Result<u64> {
        let mut tx = self.store.begin_write().await?;
        let n = tx.queue_release_node(node).await?;
        tx.commit().await?;
        Ok(n)
    }

    pub async fn queue_rcpt_result(&self, rcpt_id: i64, status: &str, error: &str) -> Result<()> {
        let mut tx = self.store.begin_write().await?;
        tx.queue_rcpt_set(rcpt_id, status, error, self.now())
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// After an attempt: removes the entry if no recipient is pending, else schedules the next
    /// attempt. Returns whether the entry is finished.
    pub async fn queue_after_attempt(
        &self,
        id: i64,
        next_attempt_at: i64,
        attempts: i64,
    ) -> Result<bool> {
        let mut tx = self.store.begin_write().await?;
        let pending = tx
            .queue_rcpts(id)
            .await?
            .iter()
            .any(|r| r.status == "pending");
        if pending {
            tx.queue_schedule(id, next_attempt_at, attempts).await?;
        } else {
            tx.queue_delete(id).await?;
        }
        tx.commit().await?;
        Ok(!pending)
    }

    /// Whether a blob is still needed by a message or a queue entry.
    pub async fn blob_in_use(&self, blob_id: &str) -> Result<bool> {
        let mut tx = self.store.begin_read().await?;
        Ok(tx.blob_referenced(blob_id).await?)
    }

    fn queue_view(e: &QueueEntry, rcpts: Vec<QueueRcpt>) -> QueueView {
        QueueView {
            id: e.id,
            from: if e.mail_from.is_empty() {
                "<>".into()
            } else {
                e.mail_from.clone()
            },
            source: e.source.clone(),
            size: e.size,
            received_at: rfc3339(e.received_at),
            next_attempt_at: rfc3339(e.next_attempt_at),
            expires_at: rfc3339(e.expires_at),
            attempts: e.attempts,
            recipients: rcpts
                .into_iter()
                .map(|r| QueueRcptView {
                    rcpt: r.rcpt,
                    local: r.is_local,
                    status: r.status,
                    last_error: r.last_error,
                })
                .collect(),
        }
    }

    /// `postfach queue list`.
    pub async fn queue_list(&self, actor: &Actor) -> Result<Vec<QueueView>> {
        actor.require_operator("manage the queue")?;
        let mut tx = self.store.begin().await?;
        let mut out = Vec::new();
        for e in tx.queue_list().await? {
            let rcpts = tx.queue_rcpts(e.id).await?;
            out.push(Self::queue_view(&e, rcpts));
        }
        Ok(out)
    }

    /// `postfach queue retry ID`: the next attempt happens now.
    pub async fn queue_retry(&self, actor: &Actor, id: i64) -> Result<QueueView> {
        actor.require_operator("manage the queue")?;
        let mut tx = self.store.begin_write().await?;
        let e = tx
            .queue_get(id)
            .await?
            .ok_or_else(|| Error::not_found("queue entry", id.to_string()))?;
        tx.queue_schedule(id, self.now(), e.attempts).await?;
        self.audit(
            &mut *tx,
            actor,
            None,
            "queue.retry",
            &id.to_string(),
            serde_json::json!({}),
        )
        .await?;
        let rcpts = tx.queue_rcpts(id).await?;
        let e = tx.queue_get(id).await?.expect("still there");
        tx.commit().await?;
        Ok(Self::queue_view(&e, rcpts))
    }

    /// `postfach queue remove ID`: drops an entry without delivering or bouncing it.
    pub async fn queue_remove(&self, actor: &Actor, id: i64) -> Result<QueueView> {
        actor.require_operator("manage the queue")?;
        let mut tx = self.store.begin_write().await?;
        let e = tx
            .queue_get(id)
            .await?
            .ok_or_else(|| Error::not_found("queue entry", id.to_string()))?;
        let rcpts = tx.queue_rcpts(id).await?;
        tx.queue_delete(id).await?;
        let view = Self::queue_view(&e, rcpts);
        self.audit(
            &mut *tx,
            actor,
            None,
            "queue.remove",
            &id.to_string(),
            serde_json::json!({"from": view.from, "recipients": view.recipients.iter().map(|r| &r.rcpt).collect::<Vec<_>>()}),
        )
        .await?;
        tx.commit().await?;
        Ok(view)
    }
}
