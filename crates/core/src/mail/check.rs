//! `postfach store check`: the invariants a crash must never break, checked on a
//! live or stopped store.
//!
//! - every stored message's body exists and is what its content address says (the blob id is
//!   the SHA-256 of the bytes) and as long as the recorded size;
//! - every spooled queue entry's body exists;
//! - per mailbox: every UID (present or expunged) is below UIDNEXT, no MODSEQ above
//!   HIGHESTMODSEQ (RFC 7162 §3.1.2), UIDs unique;
//! - per address: the storage counter equals the sum of its messages' sizes.

use std::collections::HashSet;

use serde::Serialize;
use utoipa::ToSchema;

use crate::error::Result;
use crate::{Actor, Directory};

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct StoreReport {
    pub addresses: usize,
    pub mailboxes: usize,
    pub messages: usize,
    pub queue_entries: usize,
    /// Distinct message bodies read and verified.
    pub blobs_verified: usize,
    /// Everything wrong, one sentence each; empty = the store is consistent.
    pub problems: Vec<String>,
}

impl Directory {
    /// Checks the store's invariants (operators only). Reads every message body once.
    pub async fn store_check(&self, actor: &Actor) -> Result<StoreReport> {
        actor.require_operator("check the store")?;
        let mut r = StoreReport::default();
        let mut verified: HashSet<String> = HashSet::new();
        let mut tx = self.store.begin().await?;
        for svc in tx.service_list(None).await? {
            for a in tx.address_list(svc.id).await? {
                r.addresses += 1;
                let name = format!("{}@{}", a.local_part, a.domain);
                let mut used = 0;
                for m in tx.mailbox_list(a.id).await? {
                    r.mailboxes += 1;
                    let where_ = format!("{name}/{}", m.name);
                    let messages = tx.message_list(m.id).await?;
                    let mut uids = HashSet::new();
                    for msg in &messages {
                        r.messages += 1;
                        used += msg.size;
                        if !uids.insert(msg.uid) {
                            r.problems.push(format!("{where_}: UID {} twice", msg.uid));
                        }
                        if msg.uid >= m.uidnext {
                            r.problems.push(format!(
                                "{where_}: UID {} is not below UIDNEXT {}",
                                msg.uid, m.uidnext
                            ));
                        }
                        if msg.modseq > m.highestmodseq {
                            r.problems.push(format!(
                                "{where_}: UID {} has MODSEQ {} above HIGHESTMODSEQ {}",
                                msg.uid, msg.modseq, m.highestmodseq
                            ));
                        }
                        if verified.insert(msg.blob_id.clone())
                            && let Some(p) = self.verify_blob(&msg.blob_id, Some(msg.size)).await
                        {
                            r.problems.push(format!("{where_}: UID {}: {p}", msg.uid));
                        }
                    }
                    for uid in tx.expunged_since(m.id, 0).await? {
                        if uid >= m.uidnext {
                            r.problems.push(format!(
                                "{where_}: expunged UID {uid} is not below UIDNEXT {}",
                                m.uidnext
                            ));
                        }
                    }
                }
                if used != a.storage_used_bytes {
                    r.problems.push(format!(
                        "{name}: storage counter says {} bytes, its messages hold {used}",
                        a.storage_used_bytes
                    ));
                }
            }
        }
        for q in tx.queue_list().await? {
            r.queue_entries += 1;
            if verified.insert(q.blob_id.clone())
                && let Some(p) = self.verify_blob(&q.blob_id, None).await
            {
                r.problems.push(format!("queue entry {}: {p}", q.id));
            }
        }
        r.blobs_verified = verified.len();
        Ok(r)
    }

    /// What is wrong with a body, if anything.
    async fn verify_blob(&self, blob: &str, size: Option<i64>) -> Option<String> {
        // Reading re-hashes the bytes: a body that is not what its id says is an error there.
        match self.message_body(blob).await {
            Err(e) => Some(format!("body {blob} unreadable: {e}")),
            Ok(data) if size.is_some_and(|s| s != data.len() as i64) => Some(format!(
                "body {blob} holds {} bytes, {} recorded",
                data.len(),
                size.unwrap_or_default()
            )),
            Ok(_) => None,
        }
    }
}
