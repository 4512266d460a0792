//! A session's view of its selected mailbox (RFC 9051 §2.3.1): message sequence numbers, UIDs,
//! flags and MODSEQs as this session last told the client. `sync` brings it up to date with
//! the store by MODSEQ (everything changed or expunged after the highest MODSEQ it knows) and
//! produces the untagged responses that tell the client: EXPUNGE (or VANISHED with QRESYNC),
//! EXISTS, RECENT, and FETCH FLAGS.
//!
//! Expunges are held back while the client is in the middle of a FETCH, STORE or SEARCH by
//! sequence number (RFC 9051 §7.5.1): sequence numbers must not shift under it.

use std::collections::HashSet;

use postfach_core::Directory;
use postfach_core::mail::Snapshot;
use postfach_store::Message;

pub use postfach_core::mail::flag::{ANSWERED, DELETED, DRAFT, FLAGGED, SEEN};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub uid: u32,
    pub flags: i64,
    pub keywords: String,
    pub modseq: i64,
    pub size: i64,
    pub internal_date: i64,
    pub blob_id: String,
}

impl From<&Message> for Meta {
    fn from(m: &Message) -> Self {
        Meta {
            uid: m.uid as u32,
            flags: m.flags,
            keywords: m.keywords.clone(),
            modseq: m.modseq,
            size: m.size,
            internal_date: m.internal_date,
            blob_id: m.blob_id.clone(),
        }
    }
}

pub struct Selected {
    pub mailbox_id: i64,
    pub name: String,
    pub read_only: bool,
    pub uidvalidity: u32,
    pub uidnext: u32,
    pub highestmodseq: i64,
    /// In sequence-number order (index 0 = message 1).
    pub messages: Vec<Meta>,
    /// UIDs that are \Recent for this session (IMAP4rev1).
    pub recent: HashSet<u32>,
    /// UIDs expunged elsewhere that the client has not been told of yet.
    pub pending_expunge: HashSet<u32>,
}

/// One untagged response to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    Expunge(u32),
    /// UIDs gone (QRESYNC clients get VANISHED instead of EXPUNGE).
    Vanished(Vec<u32>),
    Exists(u32),
    Recent(u32),
    /// (sequence number, message) whose flags changed.
    Flags(u32, Meta),
}

impl Selected {
    pub fn new(snapshot: &Snapshot, read_only: bool) -> Self {
        let m = &snapshot.mailbox;
        Selected {
            mailbox_id: m.id,
            name: m.name.clone(),
            read_only,
            uidvalidity: m.uidvalidity as u32,
            uidnext: m.uidnext as u32,
            highestmodseq: m.highestmodseq,
            messages: snapshot.messages.iter().map(Meta::from).collect(),
            recent: HashSet::new(),
            pending_expunge: HashSet::new(),
        }
    }

    pub fn exists(&self) -> u32 {
        self.messages.len() as u32
    }

    pub fn seq_of(&self, uid: u32) -> Option<u32> {
        self.messages
            .binary_search_by_key(&uid, |m| m.uid)
            .ok()
            .map(|i| i as u32 + 1)
    }

    pub fn max_uid(&self) -> u32 {
        self.messages.last().map_or(0, |m| m.uid)
    }

    /// Whether `uid` was expunged elsewhere and the client was not told yet.
    pub fn is_expunged(&self, uid: u32) -> bool {
        self.pending_expunge.contains(&uid)
    }

    /// Applies what the store says changed. With `allow_expunge`, pending expunges are
    /// reported first (and sequence numbers shift); otherwise they wait. Flag changes are
    /// then reported with the numbering the client has after those expunges. None when the
    /// mailbox is gone (deleted, or deleted and created again with a new UIDVALIDITY).
    pub async fn sync(
        &mut self,
        dir: &Directory,
        allow_expunge: bool,
        qresync: bool,
        rev1: bool,
    ) -> Option<Vec<Update>> {
        let mut updates = Vec::new();
        let changes = match dir
            .folder_changes(self.mailbox_id, self.highestmodseq)
            .await
        {
            Ok(Some(c)) => c,
            Ok(None) => return None,
            // A passing store error: nothing to report now.
            Err(_) => return Some(updates),
        };
        if changes.mailbox.uidvalidity as u32 != self.uidvalidity || changes.mailbox.noselect {
            return None;
        }
        let expunged: HashSet<u32> = changes.expunged.iter().map(|u| *u as u32).collect();
        for uid in &expunged {
            if self.seq_of(*uid).is_some() {
                self.pending_expunge.insert(*uid);
            }
        }
        if allow_expunge && !self.pending_expunge.is_empty() {
            let gone = std::mem::take(&mut self.pending_expunge);
            // Positions before removal, highest first: each EXPUNGE renumbers only the
            // messages after it (RFC 9051 §7.5.1), so the lower numbers stay right.
            let mut positions: Vec<usize> = gone
                .iter()
                .filter_map(|u| self.seq_of(*u).map(|s| s as usize - 1))
                .collect();
            positions.sort_unstable_by(|a, b| b.cmp(a));
            let mut uids: Vec<u32> = positions.iter().map(|&p| self.messages[p].uid).collect();
            self.messages.retain(|m| !gone.contains(&m.uid));
            if qresync {
                uids.sort_unstable();
                updates.push(Update::Vanished(uids));
            } else {
                updates.extend(positions.iter().map(|&p| Update::Expunge(p as u32 + 1)));
            }
            for uid in &gone {
                self.recent.remove(uid);
            }
        }
        // Changed or new messages, except those already gone again.
        let mut new: Vec<Meta> = Vec::new();
        for m in &changes.changed {
            let meta = Meta::from(m);
            if expunged.contains(&meta.uid) {
                continue;
            }
            match self.messages.binary_search_by_key(&meta.uid, |x| x.uid) {
                Ok(i) => {
                    let known = &mut self.messages[i];
                    let flags_changed =
                        known.flags != meta.flags || known.keywords != meta.keywords;
                    *known = meta.clone();
                    if flags_changed && !self.pending_expunge.contains(&meta.uid) {
                        updates.push(Update::Flags(i as u32 + 1, meta));
                    }
                }
                Err(_) if meta.uid > self.max_uid() => new.push(meta),
                // Older than the newest UID we know yet unseen: cannot happen while UIDs are
                // assigned under the mailbox lock in commit order; if it ever did, the view
                // could not be kept consistent.
                Err(_) => return None,
            }
        }
        self.highestmodseq = changes.mailbox.highestmodseq;
        self.uidnext = changes.mailbox.uidnext as u32;
        if !new.is_empty() {
            new.sort_by_key(|m| m.uid);
            if rev1 && !self.read_only {
                // The first session to see new mail gets it as \Recent.
                if let Ok(first) = dir
                    .folder_claim_recent(&changes.mailbox, self.uidnext as i64)
                    .await
                {
                    for m in &new {
                        if m.uid as i64 >= first {
                            self.recent.insert(m.uid);
                        }
                    }
                }
            }
            self.messages.extend(new);
            updates.push(Update::Exists(self.exists()));
            if rev1 {
                updates.push(Update::Recent(self.recent.len() as u32));
            }
        }
        Some(updates)
    }
}
