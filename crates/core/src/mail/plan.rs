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

use postfach_store::{
    Mailbox, NewMessage, NewQueueEntry, QueueEntry, QueueRcpt, Tx, inline_id, is_inline_id,
};

use crate::Directory;
use crate::error::{Error, Result};
use crate::mail::access::{SEPARATOR, folder_name};
use crate::mail::routing::LocalRcpt;
use crate::mail::settings::{
    self, AddressFilters, Autoreplies, Autoreply, BlockAction, Scope, ServiceFilters, SieveScripts,
};
use crate::mail::srs::Srs;
use crate::mail::{MessageSummary, summarize};
use crate::rules::m3_storage_quota as quota;
use crate::rules::o3_daily_sending as o3;

/// Everything the pipeline needs to know about one recipient.
#[derive(Debug, Clone)]
pub struct DeliveryContext {
    pub address_id: i64,
    /// `local@domain` of the mailbox.
    pub address: String,
    /// The address and its aliases (lower case): "mail to me" for vacation and marking.
    pub own: Vec<String>,
    pub domain: String,
    /// The domains of the organization's mail services (F8: everything else is external);
    /// read only when the service marks external mail.
    pub org_domains: Vec<String>,
    pub forward_to: Vec<String>,
    pub forward_keep_copy: bool,
    pub filters: AddressFilters,
    pub service: ServiceFilters,
    /// The service's scripts; the active one runs before the user's (M8).
    pub service_scripts: SieveScripts,
    /// The user's scripts; the active one runs (F9), the others can be `include`d.
    pub scripts: SieveScripts,
    /// Names of the address's folders (Sieve `mailboxexists`); read only when a script is
    /// active.
    pub folders: Vec<String>,
    pub autoreply: Option<Autoreply>,
    /// When the autoresponder last answered the current sender (None: never or forgotten, or
    /// no autoresponder is active).
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
    /// For the queue's `source` column and logs: `forward` (also unchanged Sieve redirects),
    /// `forward-edited` (a redirect of a message a Sieve script changed), `autoreply`,
    /// `reject`.
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
    /// transaction, and the worker has nothing left to record (performance: one commit fewer per
    /// delivered message).
    pub finished: bool,
    /// The spooled body needs no tidying by the worker: a stored copy is the body itself (no
    /// header was added), or it was small (inline), unused, and removed with the entry.
    pub spooled_body_settled: bool,
}

/// The body of a copy or of a queued message, as decided before the delivery transaction.
struct NewBody {
    id: String,
    /// Small: to be stored inline inside the transaction (idempotent: same content, same
    /// id). Otherwise the spooled body itself, or one already written to the blob store (an
    /// orphan file after a crash is harmless).
    inline: bool,
}

impl NewBody {
    /// The bytes to store inline with the row that refers to this body, if any.
    fn inline_data<'a>(&self, raw: Option<&'a [u8]>) -> Result<Option<&'a [u8]>> {
        match (self.inline, raw) {
            (false, _) => Ok(None),
            (true, Some(raw)) => Ok(Some(raw)),
            (true, None) => Err(Error::Internal("inline body without data".into())),
        }
    }
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
        let own = super::submit::own_addresses(&mut *tx, svc.id, &a).await?;
        let [own_settings, service_settings] = settings::Documents::load_many(
            &mut *tx,
            [Scope::Address(a.id), Scope::Service(svc.id)],
        )
        .await?;
        let scripts: SieveScripts = own_settings.get();
        let service_scripts: SieveScripts = service_settings.get();
        let autoreplies: Autoreplies = own_settings.get();
        let autoreply = autoreplies.active().cloned();
        let service: ServiceFilters = service_settings.get();
        // What only a feature in use needs is read only then: every statement is a round trip
        // to the database's thread on each message.
        let org_domains = if service.external_marking {
            tx.service_list(Some(svc.org_id))
                .await?
                .into_iter()
                .map(|s| s.domain)
                .collect()
        } else {
            Vec::new()
        };
        let autoreply_last = if sender.is_empty() || autoreply.is_none() {
            None
        } else {
            tx.autoreply_sent_get(a.id, &autoreply_key(sender)).await?
        };
        let folders = if scripts.active().is_some() || service_scripts.active().is_some() {
            tx.mailbox_list(a.id)
                .await?
                .into_iter()
                .filter(|m| !m.noselect)
                .map(|m| m.name)
                .collect()
        } else {
            Vec::new()
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
            service,
            service_scripts,
            scripts,
            folders,
            autoreply,
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
    /// `rcpt` is what [`Directory::resolve_rcpt`] found (its address and mail service).
    pub async fn sender_refused(&self, rcpt: &LocalRcpt, sender: &str) -> Result<bool> {
        if sender.is_empty() {
            return Ok(false);
        }
        let mut tx = self.store.begin_read().await?;
        let sf: ServiceFilters = settings::load(&mut *tx, Scope::Service(rcpt.service_id)).await?;
        if sf.block_action != BlockAction::Refuse {
            return Ok(false);
        }
        let af: AddressFilters = settings::load(&mut *tx, Scope::Address(rcpt.address_id)).await?;
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
        self.global_setting_once(SRS_SECRET, || async {
            let mut secret = [0u8; 32];
            getrandom::fill(&mut secret).map_err(|e| Error::Internal(e.to_string()))?;
            Ok(hex::encode(secret))
        })
        .await
    }

    /// A platform-wide setting made once on first use (a secret, a key) and then shared by
    /// every delivery and every node. Deliveries (or nodes) may race to make it: the first
    /// insert wins, the other blocks on the unique key, inserts nothing and reads the
    /// winner's value — a read before the write would let both write and disagree.
    pub(crate) async fn global_setting_once<F, Fut>(&self, name: &str, make: F) -> Result<String>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<String>>,
    {
        {
            let mut tx = self.store.begin().await?;
            if let Some(v) = tx.settings_get("global", 0, name).await? {
                return Ok(v);
            }
        }
        let value = make().await?;
        let mut tx = self.store.begin_write().await?;
        tx.settings_put_new("global", 0, name, &value, self.now())
            .await?;
        let v = tx.settings_get("global", 0, name).await?.unwrap_or(value);
        tx.commit().await?;
        Ok(v)
    }

    /// Applies a plan (see the module documentation). Blobs are written first (an orphan blob
    /// after a crash is harmless); everything else in one transaction. `original` is the
    /// summary of the spooled message (the caller has parsed it already).
    ///
    /// `direct` is the message itself when it was never spooled (delivery during the SMTP
    /// transaction, before `250`; see `postfach_smtp`): then `entry` and `rcpt` describe it
    /// but are not in the queue, `entry.blob_id` is the message's [`inline_id`], and a copy
    /// that keeps the message unchanged stores it inline in this transaction.
    pub async fn commit_delivery(
        &self,
        entry: &QueueEntry,
        rcpt: &QueueRcpt,
        plan: &DeliveryPlan,
        original: &MessageSummary,
        direct: Option<&[u8]>,
    ) -> Result<Committed> {
        let address_id = rcpt.address_id.ok_or_else(|| {
            Error::Conflict(format!("recipient {} has no local address", rcpt.rcpt))
        })?;
        // Changed copies get their own body and summary; the others share the spooled one.
        // Almost every copy is changed (the spam filter's X-Spam-* headers), so a small one is
        // kept inline and written in the delivery's own transaction: no file, no fsync of its
        // own, one group commit for everything.
        let mut copies = Vec::new();
        for f in &plan.files {
            copies.push(match &f.raw {
                Some(raw) => (
                    f,
                    self.new_body(raw).await?,
                    raw.len() as i64,
                    summarize(raw),
                ),
                None => (
                    f,
                    NewBody {
                        id: entry.blob_id.clone(),
                        inline: direct.is_some(),
                    },
                    entry.size,
                    original.clone(),
                ),
            });
        }
        let mut outgoing = Vec::new();
        for o in &plan.outgoing {
            let blob = self.new_body(&o.raw).await?;
            let mut rcpts = Vec::new();
            for to in &o.to {
                match self.queue_rcpt(to).await? {
                    Some(r) => rcpts.push(r),
                    None => {
                        tracing::info!(to = %to, kind = o.kind, "pipeline message to a nonexistent recipient dropped")
                    }
                }
            }
            if !rcpts.is_empty() {
                outgoing.push((o, blob, rcpts));
            }
        }

        let now = self.now();
        // The INBOX most copies go to is looked up before the shared transaction, whose
        // writers wait for each other (it cannot be deleted, RFC 9051 §6.3.5; were it gone,
        // the append fails and the delivery is retried).
        let inbox = if plan.files.iter().any(goes_to_inbox) {
            let mut tx = self.store.begin_read().await?;
            tx.mailbox_get(address_id, "INBOX").await?
        } else {
            None
        };
        // O3: what the address's own rules send (forwards, redirects, automatic replies)
        // counts toward its daily limit like mail it submits.
        let daily_limit = if outgoing.is_empty() {
            0
        } else {
            self.daily_limit_of(address_id).await?
        };
        // In the shared transaction (group commit): blobs and lookups are done by now.
        let mut turn = self.group.turn().await?;
        let result = async {
            let tx = turn.tx();
            let current = match direct {
                Some(_) => Vec::new(),
                None => tx.queue_rcpts(entry.id).await?,
            };
            if current
                .iter()
                .any(|r| r.id == rcpt.id && r.status != "pending")
            {
                return Ok((Committed::default(), BTreeSet::new()));
            }
            let mut done = Committed {
                delivered: true,
                spooled_body_settled: plan.files.iter().any(|f| f.raw.is_none()),
                ..Default::default()
            };
            let mut touched = BTreeSet::new();
            for (f, body, size, summary) in copies {
                let inline = body.inline_data(f.raw.as_deref().or(direct))?;
                let mb = self
                    .pipeline_folder(tx, address_id, f, inbox.as_ref())
                    .await?;
                let d = tx
                    .message_deliver(
                        mb.id,
                        &NewMessage {
                            blob_id: body.id,
                            size,
                            internal_date: entry.received_at,
                            flags: f.flags,
                            keywords: f.keywords.join(" "),
                            header_from: summary.from.clone(),
                            subject: summary.subject.clone(),
                            sent_at: summary.sent_at,
                            message_id: summary.message_id.clone(),
                            sent_day: summary.sent_day,
                        },
                        address_id,
                        inline,
                    )
                    .await?;
                // M3 on the usage as written, copy by copy: a plan that does not fit is
                // undone whole (this writer's savepoint) and the recipient fails.
                quota::check_written(d.usage, size)?;
                touched.insert(mb.id);
                done.stored.push((mb.name.clone(), d.message.uid));
            }
            if !outgoing.is_empty() {
                // The address row first (the store's lock order): the count below is then
                // the one every other sender of this address waits for.
                tx.address_lock(address_id).await?;
            }
            for (o, blob, rcpts) in outgoing {
                let adding = rcpts.len() as i64;
                let sent = tx
                    .send_log_sum(address_id, now - o3::WINDOW_SECONDS)
                    .await?;
                if !o3::allows(sent, adding, daily_limit) {
                    if o.kind.starts_with("forward") {
                        // A forward (or redirect) is the mail itself for a mailbox that keeps
                        // no copy: never dropped; the delivery is retried once the window
                        // has room (or bounces when the message expires).
                        return Err(Error::SendingLimit { limit: daily_limit });
                    }
                    // An automatic reply is not sent past the limit.
                    tx.delivery_log_insert(
                        address_id,
                        "o3-limit",
                        &format!(
                            "{} to {} not sent: daily sending limit reached",
                            o.kind,
                            o.to.join(", ")
                        ),
                        now,
                    )
                    .await?;
                    continue;
                }
                tx.send_log_add(address_id, adding, now, now - o3::WINDOW_SECONDS)
                    .await?;
                if let Some(data) = blob.inline_data(Some(&o.raw))? {
                    tx.inline_blob_put(&blob.id, data).await?;
                }
                let id = tx
                    .queue_insert(
                        &NewQueueEntry {
                            blob_id: blob.id,
                            size: o.raw.len() as i64,
                            mail_from: o.mail_from.clone(),
                            source: o.kind.to_string(),
                            // O2: the producer decides whose key may sign it.
                            sender_address_id: Some(address_id),
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
            if direct.is_some() {
                // Never queued: nothing to mark or remove.
                done.finished = true;
            } else if current
                .iter()
                .any(|r| r.id != rcpt.id && r.status == "pending")
            {
                tx.queue_rcpt_set(rcpt.id, "delivered", "", now).await?;
            } else {
                // The last pending recipient: the entry goes, its recipients with it
                // (ON DELETE CASCADE), so marking this one first would be a wasted statement.
                tx.queue_delete(entry.id).await?;
                done.finished = true;
                // A small spooled body no copy kept goes in the same transaction (one group
                // commit fewer per message); a file is removed after the commit by the worker.
                if !done.spooled_body_settled && is_inline_id(&entry.blob_id) {
                    tx.inline_blob_delete_unused(&entry.blob_id).await?;
                    done.spooled_body_settled = true;
                }
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

    /// O3: the daily sending limit of an address, from its mail service's offer.
    async fn daily_limit_of(&self, address_id: i64) -> Result<i64> {
        let mut tx = self.store.begin_read().await?;
        let a = tx
            .address_by_id(address_id)
            .await?
            .ok_or_else(|| Error::not_found("address", address_id.to_string()))?;
        let svc = tx
            .service_by_domain(&a.domain)
            .await?
            .ok_or_else(|| Error::not_found("mail service", &a.domain))?;
        Ok(self.daily_limit(&svc))
    }

    /// Decides where a new body goes: inline if small, else written to the blob store now.
    async fn new_body(&self, raw: &[u8]) -> Result<NewBody> {
        Ok(if raw.len() <= crate::mail::INLINE_BODY_MAX {
            NewBody {
                id: inline_id(raw),
                inline: true,
            }
        } else {
            NewBody {
                id: self.blobs.put(raw).await?.to_string(),
                inline: false,
            }
        })
    }

    /// The folder a copy goes to: the one with the requested role, else the named one,
    /// created (with its superiors) if missing; a name that cannot be a folder falls back to
    /// INBOX (never lose mail over a bad `fileinto`).
    async fn pipeline_folder(
        &self,
        tx: &mut dyn Tx,
        address_id: i64,
        f: &FileAction,
        inbox: Option<&Mailbox>,
    ) -> Result<Mailbox> {
        // Most copies go to INBOX: no need to list every folder for that.
        if goes_to_inbox(f) {
            return match inbox {
                Some(m) => Ok(m.clone()),
                None => self.inbox(tx, address_id).await,
            };
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
                    let m = self.create_mailbox(tx, address_id, &prefix, role).await?;
                    // A folder delivery makes (Sieve fileinto :create, the spam folder) is
                    // subscribed, so that clients showing subscribed folders only show it.
                    tx.subscription_set(address_id, &prefix, true).await?;
                    Some(m)
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

/// A copy for INBOX itself (no special-use role asked for).
fn goes_to_inbox(f: &FileAction) -> bool {
    f.role.is_none() && folder_name(&f.folder).is_ok_and(|n| n == "INBOX")
}
