//! A session's view of its selected mailbox (RFC 9051 §2.3.1): message sequence numbers, UIDs,
//! flags and MODSEQs as this session last told the client. `sync` brings it up to date with
//! the store by MODSEQ (everything changed or expunged after the highest MODSEQ it knows) and
//! produces the untagged responses that tell the client: EXPUNGE (or VANISHED with QRESYNC),
//! EXISTS, RECENT, and FETCH FLAGS.
//!
//! Expunges are held back while the client is in the middle of a FETCH, STORE or SEARCH by
//! sequence number (RFC 9051 §7.5.1): sequence numbers must not shift under it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

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
    /// Shared, not copied: a view holds one per message and FETCH clones them.
    pub blob_id: Arc<str>,
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
            blob_id: Arc::from(m.blob_id.as_str()),
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
    /// In sequence-number order (index 0 = message 1). Shared with the other sessions that
    /// selected the same state of the mailbox ([`SharedViews`]) until this one changes it
    /// (`Arc::make_mut`).
    pub messages: Arc<Vec<Meta>>,
    /// UIDs that are \Recent for this session (IMAP4rev1).
    pub recent: HashSet<u32>,
    /// UIDs expunged elsewhere that the client has not been told of yet.
    pub pending_expunge: HashSet<u32>,
    /// When the store was last asked what changed (`sync`): changes made outside this process
    /// are not on its change feed, so the view is trusted only for a short while.
    pub checked_at: Instant,
    /// UIDs (first, last) this session's own APPEND claimed as \Recent that are not in the
    /// view yet: marked when `sync` brings them in.
    pub own_recent: Option<(u32, u32)>,
    /// The keywords announced to the client in `FLAGS` (RFC 9051 §7.3.5): those of the
    /// messages at SELECT, and each new one before the first FETCH that shows it.
    pub keywords: BTreeSet<String>,
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

/// The message lists of mailboxes as sessions selected them, shared: building one
/// copies every message's row (for 10,000 messages that was most of a SELECT's cost), and a
/// user's clients often have the same folder open in several connections. Keyed by mailbox
/// and held weakly, so a list lives only as long as a session uses it, and a version is
/// named by (UIDVALIDITY, HIGHESTMODSEQ): every change to a mailbox raises its MODSEQ. A
/// session that applies a change gets its own copy first (`Arc::make_mut`), which also cuts
/// the weak link, so a shared list never changes.
#[derive(Default)]
pub struct SharedViews {
    views: Mutex<HashMap<i64, SharedView>>,
}

struct SharedView {
    uidvalidity: i64,
    highestmodseq: i64,
    messages: Weak<Vec<Meta>>,
}

/// Dead entries are dropped when the map reaches this size (live ones are bounded by the
/// sessions that hold them).
const SHARED_VIEWS_PRUNE_AT: usize = 4096;

impl SharedViews {
    /// The message list of `snapshot`: the one another session holds for the same version,
    /// or a new one.
    pub fn view_of(&self, snapshot: &Snapshot) -> Arc<Vec<Meta>> {
        let m = &snapshot.mailbox;
        if let Ok(views) = self.views.lock()
            && let Some(v) = views.get(&m.id)
            && v.uidvalidity == m.uidvalidity
            && v.highestmodseq == m.highestmodseq
            && let Some(messages) = v.messages.upgrade()
        {
            return messages;
        }
        let messages = Arc::new(snapshot.messages.iter().map(Meta::from).collect::<Vec<_>>());
        if let Ok(mut views) = self.views.lock() {
            if views.len() >= SHARED_VIEWS_PRUNE_AT {
                views.retain(|_, v| v.messages.strong_count() > 0);
            }
            views.insert(
                m.id,
                SharedView {
                    uidvalidity: m.uidvalidity,
                    highestmodseq: m.highestmodseq,
                    messages: Arc::downgrade(&messages),
                },
            );
        }
        messages
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.views.lock().unwrap().len()
    }
}

impl Selected {
    /// `messages`: the snapshot's list, from [`SharedViews::view_of`].
    pub fn new(snapshot: &Snapshot, messages: Arc<Vec<Meta>>, read_only: bool) -> Self {
        let m = &snapshot.mailbox;
        Selected {
            mailbox_id: m.id,
            name: m.name.clone(),
            read_only,
            uidvalidity: m.uidvalidity as u32,
            uidnext: m.uidnext as u32,
            highestmodseq: m.highestmodseq,
            messages,
            recent: HashSet::new(),
            pending_expunge: HashSet::new(),
            checked_at: Instant::now(),
            own_recent: None,
            keywords: BTreeSet::new(),
        }
    }

    /// Keywords of `keywords` (a message's, space-separated) not announced yet; they are
    /// announced from now on.
    pub fn new_keywords(&mut self, keywords: &str) -> bool {
        let mut added = false;
        for k in keywords.split_ascii_whitespace() {
            if !self.keywords.contains(k) {
                self.keywords.insert(k.to_string());
                added = true;
            }
        }
        added
    }

    /// Takes this session's own APPEND into the view without asking the store (performance: the
    /// store was read five times after every APPEND), when nothing else changed the folder
    /// since the view was brought up to date: every change takes the folder's next MODSEQ in
    /// commit order, so a message with the MODSEQ right after the view's is the only change
    /// in between. `recent_from`: the first UID the append claimed as \Recent for this
    /// session. Returns the untagged responses (EXISTS, and RECENT for IMAP4rev1), or None
    /// when the store must be asked (`sync`) — then the claim is kept for it.
    pub fn own_append(
        &mut self,
        m: &Message,
        recent_from: Option<i64>,
        rev1: bool,
    ) -> Option<Vec<Update>> {
        let uid = m.uid as u32;
        let claimed = recent_from.map(|first| (first as u32, uid));
        if m.mailbox_id != self.mailbox_id
            || m.modseq != self.highestmodseq + 1
            || uid <= self.max_uid()
            || !self.pending_expunge.is_empty()
        {
            self.own_recent = claimed;
            return None;
        }
        if let Some((first, last)) = claimed {
            // Those below the new one are in the view already (nothing else changed).
            for u in first..=last {
                if u == uid || self.seq_of(u).is_some() {
                    self.recent.insert(u);
                }
            }
        }
        Arc::make_mut(&mut self.messages).push(Meta::from(m));
        self.highestmodseq = m.modseq;
        self.uidnext = self.uidnext.max(uid + 1);
        let mut updates = vec![Update::Exists(self.exists())];
        if rev1 {
            updates.push(Update::Recent(self.recent.len() as u32));
        }
        Some(updates)
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
        let asked = Instant::now();
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
            Arc::make_mut(&mut self.messages).retain(|m| !gone.contains(&m.uid));
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
                    let known = &self.messages[i];
                    if *known == meta {
                        // Already applied (this session's own STORE): no copy of a shared
                        // list for nothing.
                        continue;
                    }
                    let flags_changed =
                        known.flags != meta.flags || known.keywords != meta.keywords;
                    Arc::make_mut(&mut self.messages)[i] = meta.clone();
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
        self.checked_at = asked;
        if !new.is_empty() {
            new.sort_by_key(|m| m.uid);
            if rev1 && !self.read_only {
                // The first session to see new mail gets it as \Recent; what this session's
                // own APPEND claimed is its own already.
                let own = self.own_recent.take();
                let first = dir
                    .folder_claim_recent(&changes.mailbox, self.uidnext as i64)
                    .await
                    .ok();
                for m in &new {
                    if first.is_some_and(|f| m.uid as i64 >= f)
                        || own.is_some_and(|(a, b)| (a..=b).contains(&m.uid))
                    {
                        self.recent.insert(m.uid);
                    }
                }
            }
            Arc::make_mut(&mut self.messages).extend(new);
            updates.push(Update::Exists(self.exists()));
            if rev1 {
                updates.push(Update::Recent(self.recent.len() as u32));
            }
        }
        Some(updates)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use postfach_store::Mailbox;

    fn snapshot(highestmodseq: i64, uids: &[i64]) -> Snapshot {
        Snapshot {
            mailbox: Mailbox {
                id: 7,
                address_id: 1,
                name: "INBOX".into(),
                special_use: String::new(),
                subscribed: true,
                uidvalidity: 100,
                uidnext: uids.last().map_or(1, |u| u + 1),
                highestmodseq,
                created_at: 0,
                recent_uid: 0,
                noselect: false,
            },
            messages: Arc::new(
                uids.iter()
                    .map(|&uid| Message {
                        id: uid,
                        mailbox_id: 7,
                        uid,
                        blob_id: format!("i{uid:064}"),
                        size: 10,
                        internal_date: 0,
                        flags: 0,
                        keywords: String::new(),
                        modseq: uid,
                        header_from: String::new(),
                        subject: String::new(),
                        sent_at: None,
                        sent_day: None,
                        message_id: String::new(),
                    })
                    .collect(),
            ),
        }
    }

    #[test]
    fn views_are_shared_per_version_and_copied_before_a_change() {
        let views = SharedViews::default();
        let s2 = snapshot(2, &[1, 2]);
        let a = views.view_of(&s2);
        let b = views.view_of(&s2);
        assert!(
            Arc::ptr_eq(&a, &b),
            "the same state of the folder: one list"
        );
        assert_eq!(b.iter().map(|m| m.uid).collect::<Vec<_>>(), [1, 2]);
        // Another version of the folder gets its own list.
        let c = views.view_of(&snapshot(3, &[1, 2, 3]));
        assert!(!Arc::ptr_eq(&a, &c) && c.len() == 3);
        // A session that changes its list copies it; the other keeps the shared one as it was.
        let mut sel = Selected::new(&s2, b, false);
        Arc::make_mut(&mut sel.messages)[0].flags = SEEN;
        assert_eq!(a[0].flags, 0);
        assert!(!Arc::ptr_eq(&a, &sel.messages));
        // Held weakly: once no session uses a list, it is built anew.
        drop((a, sel));
        let d = views.view_of(&s2);
        assert_eq!(d[0].flags, 0);
        assert_eq!(views.len(), 1, "one entry per folder");
    }
}
