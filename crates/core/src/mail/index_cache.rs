//! The folder index cache: the message rows of recently selected folders, shared by every
//! session of this process (performance: an IMAP SELECT of a 10,000-message folder read all its
//! rows from the store each time, 0.08× Dovecot).
//!
//! Correctness does not depend on the cache being told about changes. Every change to a
//! folder's messages — append, flag change, expunge — takes a new MODSEQ from the folder row
//! in the same transaction (store `next_modseq`, which also serialises the folder's writers),
//! and every expunge leaves its UID in the `expunged` table with that MODSEQ. So a reader that
//! has read the folder row in its transaction knows whether the cached rows are current
//! (same HIGHESTMODSEQ) and, if not, exactly what to fetch to make them current: the rows
//! with a larger MODSEQ and the UIDs expunged after it (RFC 7162 §3.2.5 uses the same facts for
//! QRESYNC). This holds across processes too (the CLI, a second node on PostgreSQL): the
//! truth is always the store's folder row.
//!
//! Bounded: at most [`MAX_MESSAGES`] rows over all folders; the least recently used folder
//! goes first.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use postfach_store::{Mailbox, Message};

/// Rows kept over all folders (a row with its strings is a few hundred bytes: ~30 MiB).
pub const MAX_MESSAGES: usize = 100_000;

/// One folder's rows as of `highestmodseq`, sorted by UID.
#[derive(Debug, Clone)]
pub(crate) struct CachedIndex {
    /// What identifies the folder beyond its id: a deleted folder's id can come back (SQLite
    /// reuses the largest rowid), never with the same UIDVALIDITY and creation time.
    uidvalidity: i64,
    created_at: i64,
    pub highestmodseq: i64,
    pub messages: Arc<Vec<Message>>,
}

impl CachedIndex {
    pub fn new(mailbox: &Mailbox, messages: Arc<Vec<Message>>) -> Self {
        CachedIndex {
            uidvalidity: mailbox.uidvalidity,
            created_at: mailbox.created_at,
            highestmodseq: mailbox.highestmodseq,
            messages,
        }
    }

    /// Whether these rows belong to this folder (the same folder, not a later one with its id).
    pub fn is_of(&self, mailbox: &Mailbox) -> bool {
        self.uidvalidity == mailbox.uidvalidity && self.created_at == mailbox.created_at
    }

    /// Brings the rows to `mailbox.highestmodseq`: `changed` are the rows with a larger MODSEQ
    /// (new or with new flags), `expunged` the UIDs removed after it.
    pub fn apply(&mut self, mailbox: &Mailbox, changed: Vec<Message>, expunged: &[i64]) {
        let rows = Arc::make_mut(&mut self.messages);
        if !expunged.is_empty() {
            rows.retain(|m| expunged.binary_search(&m.uid).is_err());
        }
        for m in changed {
            match rows.binary_search_by_key(&m.uid, |r| r.uid) {
                Ok(i) => rows[i] = m,
                Err(i) => rows.insert(i, m),
            }
        }
        self.highestmodseq = mailbox.highestmodseq;
    }
}

#[derive(Default)]
pub(crate) struct IndexCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    folders: HashMap<i64, (CachedIndex, u64)>,
    rows: usize,
    clock: u64,
}

impl IndexCache {
    /// Takes a folder's entry out (the caller brings it up to date and puts it back); taking
    /// it out lets the rows be changed in place when no session holds them.
    pub fn take(&self, mailbox_id: i64) -> Option<CachedIndex> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (entry, _) = inner.folders.remove(&mailbox_id)?;
        inner.rows -= entry.messages.len();
        Some(entry)
    }

    pub fn put(&self, mailbox_id: i64, entry: CachedIndex) {
        let len = entry.messages.len();
        if len > MAX_MESSAGES / 2 {
            return; // one folder must not push out all the others
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.clock += 1;
        let now = inner.clock;
        if let Some((old, _)) = inner.folders.insert(mailbox_id, (entry, now)) {
            inner.rows -= old.messages.len();
        }
        inner.rows += len;
        while inner.rows > MAX_MESSAGES {
            let Some(oldest) = inner
                .folders
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(id, _)| *id)
            else {
                break;
            };
            if let Some((gone, _)) = inner.folders.remove(&oldest) {
                inner.rows -= gone.messages.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox(highestmodseq: i64) -> Mailbox {
        Mailbox {
            id: 1,
            address_id: 1,
            name: "INBOX".into(),
            special_use: String::new(),
            subscribed: true,
            uidvalidity: 7,
            uidnext: 10,
            highestmodseq,
            created_at: 100,
            recent_uid: 1,
            noselect: false,
        }
    }

    fn row(uid: i64, flags: i64, modseq: i64) -> Message {
        Message {
            id: uid,
            mailbox_id: 1,
            uid,
            blob_id: format!("b{uid}"),
            size: 1,
            internal_date: 0,
            flags,
            keywords: String::new(),
            modseq,
            header_from: String::new(),
            subject: String::new(),
            sent_at: None,
            sent_day: None,
            message_id: String::new(),
        }
    }

    #[test]
    fn apply_removes_expunged_replaces_changed_and_inserts_new_in_uid_order() {
        let rows = vec![row(1, 0, 1), row(2, 0, 2), row(4, 0, 3)];
        let mut c = CachedIndex::new(&mailbox(3), Arc::new(rows));
        c.apply(
            &mailbox(6),
            vec![row(3, 0, 6), row(4, 1, 5), row(9, 0, 6)],
            &[2],
        );
        let got: Vec<(i64, i64)> = c.messages.iter().map(|m| (m.uid, m.flags)).collect();
        assert_eq!(got, vec![(1, 0), (3, 0), (4, 1), (9, 0)]);
        assert_eq!(c.highestmodseq, 6);
    }

    #[test]
    fn a_folder_with_the_same_id_but_another_uidvalidity_is_not_the_cached_one() {
        let c = CachedIndex::new(&mailbox(3), Arc::new(vec![]));
        assert!(c.is_of(&mailbox(9)));
        let mut other = mailbox(3);
        other.uidvalidity = 8;
        assert!(!c.is_of(&other));
    }

    #[test]
    fn the_cache_stays_within_its_row_budget_dropping_the_least_recently_used() {
        let cache = IndexCache::default();
        let folder = |n: usize| {
            CachedIndex::new(
                &mailbox(1),
                Arc::new((1..=n as i64).map(|u| row(u, 0, 1)).collect()),
            )
        };
        cache.put(1, folder(MAX_MESSAGES / 2));
        cache.put(2, folder(MAX_MESSAGES / 2));
        assert!(cache.take(1).is_some());
        cache.put(1, folder(MAX_MESSAGES / 2));
        cache.put(3, folder(10));
        // 2 was used least recently: gone; 1 and 3 stay.
        assert!(cache.take(2).is_none());
        assert!(cache.take(1).is_some());
        assert!(cache.take(3).is_some());
        assert!(cache.take(3).is_none(), "taking removes");
        cache.put(4, folder(MAX_MESSAGES / 2 + 1));
        assert!(
            cache.take(4).is_none(),
            "a folder larger than half the budget is not kept"
        );
    }
}
