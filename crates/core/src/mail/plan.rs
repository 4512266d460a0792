//! What the per-recipient delivery pipeline (crate `postfach-delivery`) reads and writes.
//!
//! The pipeline is a pure decision: given a [`DeliveryContext`] (the recipient's settings,
//! read here) and the message, it produces a [`DeliveryPlan`]. [`Directory::commit_delivery`]
//! then applies the whole plan in **one transaction** together with the spool recipient's
//! "delivered" mark: the copies in folders, the forwarded and automatic messages queued for
//! sending, the autoresponder's memory and the log. A crash leaves the recipient either fully
//! delivered or still pending (retried from the start), never half done, so nothing is lost
//! and no autoresponse or forward goes out twice.

use std::collections::BTreeSet;

use postfach_store::{Mailbox, NewMessage, NewQueueEntry, NewQueueRcpt, QueueEntry, QueueRcpt, Tx};

use crate::Directory;
use crate::error::{Error, Result};
use crate::mail::access::{SEPARATOR, folder_name};
use crate::mail::routing::Rcpt;
use crate::mail::settings::{
    self, AddressFilters, Autoreplies, Autoreply, BlockAction, Scope, ServiceFilters, SieveScripts,
};
use crate::mail::srs::Srs;
use crate::mail::{MessageSummary, summarize};

/// Everything the pipeline needs to know about one recipient.
#[derive(Debug, Clone)]
pub struct DeliveryContext {
    pub address_id: i64,
    /// `local@domain` of the mailbox.
    pub address: String,
    /// The address and its aliases (lower case): "mail to me" for vacation and marking.
    pub own: Vec<String>,
    pub domain: String,
    /// The domains of the organization's mail services (F8: everything else is external).
    pub org_domains: Vec<String>,
    pub forward_to: Vec<String>,
    pub forward_keep_copy: bool,
    pub filters: AddressFilters,
    pub service: ServiceFilters,
    /// The service's scripts; the active one runs before the user's (M8).
    pub service_scripts: SieveScripts,
    /// The user's scripts; the active one runs (F9), the others can be `include`d.
    pub scripts: SieveScripts,
    /// Names of the address's folders (Sieve `mailboxexists`).
    pub folders: Vec<String>,
    pub autoreply: Option<Autoreply>,
    /// When the autoresponder last answered the current sender (None: never or forgotten).
    pub autoreply_last: Option<i64>,
}

/// One copy of the message in a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileAction {
    /// Folder name (`INBOX`, `Promotions`, `Lists/rust`…).
    pub folder: String,
    /// A special-use role (`\Junk`) that, if some folder has it, wins over `folder`.
    pub role: Option<String>,
    /// System flags as `messages.flags` bits.
    pub flags: i64,
    pub keywords: Vec<String>,
    /// The message as stored, if the pipeline changed it (added headers, a banner); `None`
    /// keeps the spooled original.
    pub raw: Option<Vec<u8>>,
}

/// A message the pipeline sends: a forward, a redirect, an autoresponse, a rejection notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Envelope sender (`""` for the null sender of automatic replies, RFC 3834 §3.3).
    pub mail_from: String,
    pub to: Vec<String>,
    pub raw: Vec<u8>,
    /// For the queue's `source` column and logs: `forward`, `redirect`, `autoreply`, `reject`.
    pub kind: &'static str,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryPlan {
    pub files: Vec<FileAction>,
    pub outgoing: Vec<Outgoing>,
    /// Keys to remember in `autoreply_sent` (the autoresponder's "answered" memory, Sieve
    /// vacation and duplicate ids).
    pub remember: Vec<String>,
    /// (kind, detail) lines for the address's delivery log.
    pub log: Vec<(String, String)>,
}

/// What [`Directory::commit_delivery`] did.
#[derive(Debug, Clone, Default)]
pub struct Committed {
    /// False if the recipient had already been delivered (a retried worker after a crash).
    pub delivered: bool,
    /// (folder, uid) of each copy stored.
    pub stored: Vec<(String, i64)>,
    /// Queue ids of the messages queued for sending.
    pub queued: Vec<i64>,
    /// No other recipient of the queue entry was pending: the entry was removed in the same
    /// transaction, and the worker has nothing left to record (issue 6: one commit fewer per
    /// delivered message).
    pub finished: bool,
    /// A stored copy is the spooled body itself (no header was added): the blob is in use
    /// and the worker need not ask the store whether to delete it.
    pub keeps_spooled_blob: bool,
}

/// How long a forward or automatic message is retried before it bounces.
const OUTGOING_LIFETIME: i64 = 5 * 86_400;
/// Name of the platform's SRS key in the `settings` table (scope `global`).
const SRS_SECRET: &str = "srs_secret";

impl Directory {
    /// Reads the recipient's settings for the pipeline. `sender` is the envelope sender (the
    /// autoresponder's memory is looked up for it).
    pub async fn delivery_context(&self, address_id: i64, sender: &str) -> Result<DeliveryContext> {
        let mut tx = self.store.begin_read().await?;
        let a = tx
            .address_by_id(address_id)
            .await?
            .ok_or_else(|| Error::not_found("address", address_id.to_string()))?;
        let svc = tx
            .service_by_domain(&a.domain)
            .await?
            .ok_or_else(|| Error::not_found("mail service", &a.domain))?;
        let address = format!("{}@{}", a.local_part, a.domain);
        let mut own = vec![address.clone()];
        for al in tx.alias_list(svc.id).await? {
            if al.address_id == a.id {
                own.push(format!("{}@{}", al.local_part, al.domain));
            }
        }
        let org_domains = tx
            .service_list(Some(svc.org_id))
            .await?
            .into_iter()
            .map(|s| s.domain)
            .collect();
        let own_settings = settings::Documents::load(&mut *tx, Scope::Address(a.id)).await?;
        let service_settings = settings::Documents::load(&mut *tx, Scope::Service(svc.id)).await?;
        let scripts: SieveScripts = own_settings.get();
        let service_scripts: SieveScripts = service_settings.get();
        let autoreplies: Autoreplies = own_settings.get();
        let autoreply_last = if sender.is_empty() {
            None
        } else {
            tx.autoreply_sent_get(a.id, &autoreply_key(sender)).await?
        };
        Ok(DeliveryContext {
            address_id: a.id,
            address,
            own,
            domain: a.domain.clone(),
            org_domains,
            forward_to: tx.forwards_get(a.id).await?,
            forward_keep_copy: a.forward_keep_copy,
            filters: own_settings.get(),
            service: service_settings.get(),
            service_scripts,
            scripts,
            folders: tx
                .mailbox_list(a.id)
                .await?
                .into_iter()
                .filter(|m| !m.noselect)
                .map(|m| m.name)
                .collect(),
            autoreply: autoreplies.active().cloned(),
            autoreply_last,
        })
    }

    /// When a Sieve `vacation`/`duplicate` id of this address was last recorded.
    pub async fn delivery_memory(&self, address_id: i64, key: &str) -> Result<Option<i64>> {
        let mut tx = self.store.begin_read().await?;
        Ok(tx.autoreply_sent_get(address_id, key).await?)
    }

    /// F7 with block action "refuse": whether mail from `sender` to this address is refused
    /// at RCPT time (the verdict runs before 250, DESIGN.md).
    pub async fn sender_refused(&self, address_id: i64, sender: &str) -> Result<bool> {
        if sender.is_empty() {
            return Ok(false);
        }
        let mut tx = self.store.begin_read().await?;
        let Some(a) = tx.address_by_id(address_id).await? else {
            return Ok(false);
        };
        let Some(svc) = tx.service_by_domain(&a.domain).await? else {
            return Ok(false);
        };
        let sf: ServiceFilters = settings::load(&mut *tx, Scope::Service(svc.id)).await?;
        if sf.block_action != BlockAction::Refuse {
            return Ok(false);
        }
        let af: AddressFilters = settings::load(&mut *tx, Scope::Address(a.id)).await?;
        let allowed =
            settings::list_matches(&af.allow, sender) || settings::list_matches(&sf.allow, sender);
        Ok(!allowed
            && (settings::list_matches(&af.block, sender)
                || settings::list_matches(&sf.block, sender)))
    }

    /// The platform's SRS key, created on first use and shared by every node (it lives in the
    /// store, so a bounce is recognised whichever node receives it); read once per process.
    pub async fn srs(&self) -> Result<std::sync::Arc<Srs>> {
        self.srs
            .get_or_try_init(|| async {
                let secret = self.srs_secret().await?;
                Ok(std::sync::Arc::new(Srs::new(secret.as_bytes())))
            })
            .await
            .cloned()
    }

    async fn srs_secret(&self) -> Result<String> {
        {
            let mut tx = self.store.begin().await?;
            if let Some(v) = tx.settings_get("global", 0, SRS_SECRET).await? {
                return Ok(v);
            }
        }
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| Error::Internal(e.to_string()))?;
        let hex = hex::encode(secret);
        let mut tx = self.store.begin_write().await?;
        // Two nodes may race here: the first write wins and both read it back.
        if tx.settings_get("global", 0, SRS_SECRET).await?.is_none() {
            tx.settings_put("global", 0, SRS_SECRET, &hex, self.now())
                .await?;
        }
        let v = tx
            .settings_get("global", 0, SRS_SECRET)
            .await?
            .unwrap_or(hex);
        tx.commit().await?;
        Ok(v)
    }

    /// Applies a plan (see the module documentation). Blobs are written first (an orphan blob
    /// after a crash is harmless); everything else in one transaction. `original` is the
    /// summary of the spooled message (the caller has parsed it already).
    pub async fn commit_delivery(
        &self,
        entry: &QueueEntry,
        rcpt: &QueueRcpt,
        plan: &DeliveryPlan,
        original: &MessageSummary,
    ) -> Result<Committed> {
        let address_id = rcpt.address_id.ok_or_else(|| {
            Error::Conflict(format!("recipient {} has no local address", rcpt.rcpt))
        })?;
        // Changed copies get their own blob and summary; the others share the spooled one.
        let mut copies = Vec::new();
        for f in &plan.files {
            copies.push(match &f.raw {
                Some(raw) => (
                    f,
                    self.blobs.put(raw).await?.to_string(),
                    raw.len() as i64,
                    summarize(raw),
                ),
                None => (f, entry.blob_id.clone(), entry.size, original.clone()),
            });
        }
        let mut outgoing = Vec::new();
        for o in &plan.outgoing {
            let blob = self.blobs.put(&o.raw).await?;
            let mut rcpts = Vec::new();
            for to in &o.to {
                match self.resolve_rcpt(to).await {
                    Ok(Rcpt::Local(l)) => rcpts.push(NewQueueRcpt {
                        rcpt: to.clone(),
                        address_id: Some(l.address_id),
                        via: l.via.as_str().into(),
                        domain: l.domain,
                        is_local: true,
                        notify: 0,
                        orcpt: None,
                    }),
                    Ok(Rcpt::Remote { domain }) => rcpts.push(NewQueueRcpt {
                        rcpt: to.clone(),
                        domain,
                        is_local: false,
                        ..Default::default()
                    }),
                    Ok(Rcpt::Reverse { original, domain }) => rcpts.push(NewQueueRcpt {
                        rcpt: original,
                        domain,
                        is_local: false,
                        ..Default::default()
                    }),
                    Ok(Rcpt::NoSuchUser) | Err(_) => {
                        tracing::info!(to = %to, kind = o.kind, "pipeline message to a nonexistent recipient dropped")
                    }
                }
            }
            if !rcpts.is_empty() {
                outgoing.push((o, blob, rcpts));
            }
        }

        let now = self.now();
        // In the shared transaction (group commit): blobs and lookups are done by now.
        let mut turn = self.group.turn().await?;
        let result = async {
            let tx = turn.tx();
            let current = tx.queue_rcpts(entry.id).await?;
            if current
                .iter()
                .any(|r| r.id == rcpt.id && r.status != "pending")
            {
                return Ok((Committed::default(), BTreeSet::new()));
            }
            let mut done = Committed {
                delivered: true,
                keeps_spooled_blob: plan.files.iter().any(|f| f.raw.is_none()),
                ..Default::default()
            };
            let mut touched = BTreeSet::new();
            for (f, blob_id, size, summary) in copies {
                let mb = self.pipeline_folder(tx, address_id, f).await?;
                let m = tx
                    .message_append(
                        mb.id,
                        &NewMessage {
                            blob_id,
                            size,
                            internal_date: entry.received_at,
                            flags: f.flags,
                            keywords: f.keywords.join(" "),
                            header_from: summary.from.clone(),
                            subject: summary.subject.clone(),
                            sent_at: summary.sent_at,
                            message_id: summary.message_id.clone(),
                        },
                    )
                    .await?;
                tx.address_add_usage(address_id, size).await?;
                touched.insert(mb.id);
                done.stored.push((mb.name.clone(), m.uid));
            }
            for (o, blob, rcpts) in outgoing {
                let id = tx
                    .queue_insert(
                        &NewQueueEntry {
                            blob_id: blob.to_string(),
                            size: o.raw.len() as i64,
                            mail_from: o.mail_from.clone(),
                            source: o.kind.to_string(),
                            sender_address_id: None,
                            env_id: None,
                            ret_full: false,
                            expires_at: now + OUTGOING_LIFETIME,
                        },
                        &rcpts,
                        now,
                    )
                    .await?;
                done.queued.push(id);
            }
            for key in &plan.remember {
                tx.autoreply_sent_put(address_id, key, now).await?;
            }
            for (kind, detail) in &plan.log {
                tx.delivery_log_insert(address_id, kind, detail, now)
                    .await?;
            }
            if current
                .iter()
                .any(|r| r.id != rcpt.id && r.status == "pending")
            {
                tx.queue_rcpt_set(rcpt.id, "delivered", "", now).await?;
            } else {
                // The last pending recipient: the entry goes, its recipients with it
                // (ON DELETE CASCADE), so marking this one first would be a wasted statement.
                tx.queue_delete(entry.id).await?;
                done.finished = true;
            }
            Ok((done, touched))
        }
        .await;
        let (done, touched) = turn.finish(result).await?;
        for id in touched {
            self.changed(id);
        }
        Ok(done)
    }

    /// The folder a copy goes to: the one with the requested role, else the named one,
    /// created (with its superiors) if missing; a name that cannot be a folder falls back to
    /// INBOX (never lose mail over a bad `fileinto`).
    async fn pipeline_folder(
        &self,
        tx: &mut dyn Tx,
        address_id: i64,
        f: &FileAction,
    ) -> Result<Mailbox> {
        // Most copies go to INBOX: no need to list every folder for that.
        if f.role.is_none() && folder_name(&f.folder).is_ok_and(|n| n == "INBOX") {
            return self.inbox(tx, address_id).await;
        }
        let all = tx.mailbox_list(address_id).await?;
        if let Some(role) = &f.role
            && let Some(m) = all.iter().find(|m| &m.special_use == role && !m.noselect)
        {
            return Ok(m.clone());
        }
        let Ok(name) = folder_name(&f.folder) else {
            return self.inbox(tx, address_id).await;
        };
        if name == "INBOX" {
            return self.inbox(tx, address_id).await;
        }
        if let Some(m) = all.iter().find(|m| m.name == name) {
            if !m.noselect {
                return Ok(m.clone());
            }
            return self.inbox(tx, address_id).await;
        }
        let mut prefix = String::new();
        let parts: Vec<&str> = name.split(SEPARATOR).collect();
        let mut last = None;
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                prefix.push(SEPARATOR);
            }
            prefix.push_str(part);
            last = match tx.mailbox_get(address_id, &prefix).await? {
                Some(m) => Some(m),
                None => {
                    let role = if i + 1 == parts.len() {
                        f.role.as_deref().unwrap_or("")
                    } else {
                        ""
                    };
                    Some(self.create_mailbox(tx, address_id, &prefix, role).await?)
                }
            };
        }
        match last {
            Some(m) if !m.noselect => Ok(m),
            _ => self.inbox(tx, address_id).await,
        }
    }
}

/// The autoresponder's memory key for a sender (F10: once per sender per 7 days).
pub fn autoreply_key(sender: &str) -> String {
    format!("auto:{}", sender.to_lowercase())
}
