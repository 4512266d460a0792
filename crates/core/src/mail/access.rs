//! Mailbox access for IMAP, POP3 (and later the webmail): the folder tree with its
//! `\Noselect` names (P3), special-use roles (P5, M11), messages with their flags and MODSEQs, appends,
//! copies and moves under the storage quota, expunges — and a feed of changes so that every
//! session on a mailbox hears about the others' changes (IDLE).
//!
//! Folder names use `/` as hierarchy separator and are stored in UTF-8; the IMAP layer encodes
//! them for the wire. `INBOX` is case-insensitive and always spelled `INBOX`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use postfach_store::{
    BlobId, Mailbox, MailboxStats, Message, NewMessage, Tx, inline_id, is_inline_id, verify_inline,
};

use crate::error::{Error, Result};
use crate::mail::index_cache::CachedIndex;
use crate::mail::{Class, MailboxLogin};
use crate::rules::m3_storage_quota as quota;
use crate::rules::m9_maintenance as m9;
use crate::rules::m11_mailbox_user_rights as m11;
use crate::{Actor, Directory, validate};

/// The hierarchy separator of folder names.
pub const SEPARATOR: char = '/';

/// RFC 6154 roles a folder can play, and the names users know them by.
pub const ROLES: &[(&str, &str)] = &[
    ("drafts", "\\Drafts"),
    ("sent", "\\Sent"),
    ("trash", "\\Trash"),
    ("archive", "\\Archive"),
    ("junk", "\\Junk"),
    ("spam", "\\Junk"),
    ("all", "\\All"),
    ("flagged", "\\Flagged"),
];

/// `\Drafts`, `drafts`, `Drafts` → `\Drafts`; `none`/empty → "".
pub fn special_use(input: &str) -> Result<String> {
    let s = input.trim().trim_start_matches('\\').to_ascii_lowercase();
    if s.is_empty() || s == "none" {
        return Ok(String::new());
    }
    ROLES
        .iter()
        .find(|(name, _)| *name == s)
        .map(|(_, attr)| attr.to_string())
        .ok_or_else(|| {
            Error::invalid(
                "folder role",
                format!("{input:?}: use drafts, sent, trash, archive, junk, all, flagged or none"),
            )
        })
}

/// Canonical folder name: `/`-separated non-empty parts without IMAP wildcards or control
/// characters; the inbox is `INBOX` whatever its case.
pub fn folder_name(input: &str) -> Result<String> {
    let field = "folder name";
    if input.is_empty() || input.chars().count() > 255 {
        return Err(Error::invalid(field, "use 1 to 255 characters"));
    }
    if input
        .chars()
        .any(|c| c.is_control() || c == '*' || c == '%')
    {
        return Err(Error::invalid(
            field,
            format!("{input:?} contains a character folders cannot have"),
        ));
    }
    let parts: Vec<&str> = input.split(SEPARATOR).collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(Error::invalid(
            field,
            format!("{input:?} has an empty level"),
        ));
    }
    let mut out = String::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push(SEPARATOR);
        }
        out.push_str(if i == 0 && p.eq_ignore_ascii_case("INBOX") {
            "INBOX"
        } else {
            p
        });
    }
    Ok(out)
}

/// A selected mailbox as one transaction saw it.
///
/// The rows are shared with the folder index cache (`index_cache`) and other sessions: a
/// snapshot is read-only.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub mailbox: Mailbox,
    pub messages: Arc<Vec<Message>>,
}

/// One entry of the mailbox change feed ([`Directory::mailbox_changes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailboxChange {
    pub mailbox_id: i64,
    /// The folder's HIGHESTMODSEQ after the change, where the writer knows it; 0: not known
    /// (look).
    pub modseq: i64,
}

/// What changed in a mailbox after some MODSEQ.
#[derive(Debug, Clone)]
pub struct Changes {
    pub mailbox: Mailbox,
    /// New and changed messages, by UID.
    pub changed: Vec<Message>,
    /// UIDs removed.
    pub expunged: Vec<i64>,
}

/// A message to store (IMAP APPEND).
#[derive(Debug, Clone, Default)]
pub struct AppendRequest {
    pub raw: Vec<u8>,
    pub flags: i64,
    pub keywords: String,
    /// INTERNALDATE; None = now.
    pub date: Option<i64>,
}

/// What an APPEND stored ([`Directory::append_claiming`]).
#[derive(Debug, Clone)]
pub struct Appended {
    pub uidvalidity: i64,
    /// The message's row as committed (UID, MODSEQ, …): a session with the folder selected
    /// takes it into its view without asking the store.
    pub message: Message,
    /// With `claim_recent`: the first UID this append claimed as \Recent for the caller (all
    /// from it up to the message's UID; IMAP4rev1 §2.3.2). None: nothing claimed.
    pub recent_from: Option<i64>,
}

/// How STORE changes flags (RFC 9051 §6.4.6): add, remove or replace; `bits` are the system
/// flags (store bit order), `keywords` the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagChange {
    pub op: FlagOp,
    pub bits: i64,
    pub keywords: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagOp {
    Add,
    Remove,
    Replace,
}

impl FlagChange {
    /// The flags and keywords a message gets. Keywords compare case-insensitively (RFC 9051
    /// §2.3.2) and keep their first spelling.
    pub fn apply(&self, flags: i64, keywords: &str) -> (i64, String) {
        let mut kw: Vec<String> = keywords.split_whitespace().map(String::from).collect();
        let bits = match self.op {
            FlagOp::Replace => {
                kw.clear();
                for k in &self.keywords {
                    if !kw.iter().any(|x| x.eq_ignore_ascii_case(k)) {
                        kw.push(k.clone());
                    }
                }
                self.bits
            }
            FlagOp::Add => {
                for k in &self.keywords {
                    if !kw.iter().any(|x| x.eq_ignore_ascii_case(k)) {
                        kw.push(k.clone());
                    }
                }
                flags | self.bits
            }
            FlagOp::Remove => {
                kw.retain(|x| !self.keywords.iter().any(|k| k.eq_ignore_ascii_case(x)));
                flags & !self.bits
            }
        };
        (bits, kw.join(" "))
    }
}

/// What a STORE did.
#[derive(Debug, Clone)]
pub struct StoreOutcome {
    /// The MODSEQ of the change (0 if nothing changed).
    pub modseq: i64,
    /// Every message the STORE applied to, as it is now.
    pub messages: Vec<MessageFlags>,
    /// UIDs whose flags actually changed.
    pub changed: std::collections::HashSet<i64>,
    /// UIDs left alone because they changed after UNCHANGEDSINCE.
    pub modified: Vec<i64>,
}

/// A message's flags with the MODSEQ they carry: as a session saw them
/// ([`Directory::store_flags_as_seen`]) or as a STORE left them ([`StoreOutcome`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageFlags {
    pub uid: i64,
    pub flags: i64,
    pub keywords: String,
    pub modseq: i64,
}

impl From<&Message> for MessageFlags {
    fn from(m: &Message) -> Self {
        MessageFlags {
            uid: m.uid,
            flags: m.flags,
            keywords: m.keywords.clone(),
            modseq: m.modseq,
        }
    }
}

/// Messages a STORE may name for [`Directory::store_flags_as_seen`] (a client's flag change
/// names one or a few; "mark all read" takes the other way).
const STORE_AS_SEEN_MAX: usize = 100;

impl Directory {
    /// IMAP/POP3 login: the mailbox password, S4 throttling, and M9 maintenance mode.
    pub async fn mailbox_login(
        &self,
        login: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<MailboxLogin> {
        let l = self.authenticate_mailbox(login, password, client).await?;
        m9::allows(m9::Access::Mailbox, l.maintenance, &l.domain)?;
        let mut tx = self.store.begin_write().await?;
        if let Some(mut a) = tx.address_by_id(l.address_id).await? {
            a.last_login_at = Some(self.now());
            tx.address_update(&a).await?;
            tx.commit().await?;
        }
        Ok(l)
    }

    /// Mailbox change feed: every mailbox that changed, after the change committed.
    pub fn mailbox_changes(&self) -> tokio::sync::broadcast::Receiver<MailboxChange> {
        self.changes.subscribe()
    }

    pub(crate) fn changed(&self, mailbox_id: i64) {
        self.changed_at(mailbox_id, 0);
    }

    /// A change that took the folder to HIGHESTMODSEQ `modseq`: a session that knows the
    /// folder at that MODSEQ already (its own STORE) need not look.
    pub(crate) fn changed_at(&self, mailbox_id: i64, modseq: i64) {
        // No receiver is fine: nobody has the mailbox open.
        let _ = self.changes.send(MailboxChange { mailbox_id, modseq });
    }

    /// The folders, each `subscribed` as the subscriptions say.
    pub async fn folders(&self, address_id: i64) -> Result<Vec<Mailbox>> {
        let mut tx = self.store.begin().await?;
        let subscribed: std::collections::HashSet<String> =
            tx.subscriptions(address_id).await?.into_iter().collect();
        let mut all = tx.mailbox_list(address_id).await?;
        for m in &mut all {
            m.subscribed = subscribed.contains(&m.name);
        }
        Ok(all)
    }

    /// A folder that can hold messages (not a `\Noselect` name).
    pub async fn folder(&self, address_id: i64, name: &str) -> Result<Option<Mailbox>> {
        let name = folder_name(name)?;
        let mut tx = self.store.begin().await?;
        selectable(&mut *tx, address_id, &name).await
    }

    fn no_folder(name: &str) -> Error {
        Error::not_found("folder", name)
    }

    /// Creates a folder and, as RFC 9051 §6.3.4 recommends, any missing superiors.
    pub async fn folder_create(&self, address_id: i64, name: &str, role: &str) -> Result<Mailbox> {
        let name = folder_name(name)?;
        let mut tx = self.store.begin_write().await?;
        // A role moves between mailboxes: the address row first (`Tx::address_lock`).
        tx.address_lock(address_id).await?;
        let existing = tx.mailbox_get(address_id, &name).await?;
        if existing.as_ref().is_some_and(|m| !m.noselect) {
            return Err(Error::duplicate("folder", name));
        }
        if !role.is_empty() {
            self.mailbox_user_may(&mut *tx, address_id, m11::Right::SpecialFolders)
                .await?;
            self.take_role(&mut *tx, address_id, role).await?;
        }
        if let Some(ghost) = existing {
            // A \Noselect name becomes a folder again, with a new UIDVALIDITY (RFC 9051
            // §2.3.1.1: a name reused must not pair old UIDs with new messages).
            let uidvalidity = self.next_uidvalidity(&mut *tx, address_id).await?;
            tx.mailbox_set_noselect(ghost.id, false, uidvalidity)
                .await?;
            if !role.is_empty() {
                tx.mailbox_set_special_use(ghost.id, role).await?;
            }
            let created = tx
                .mailbox_by_id(ghost.id)
                .await?
                .ok_or_else(|| Self::no_folder(&name))?;
            tx.commit().await?;
            return Ok(created);
        }
        let mut prefix = String::new();
        let parts: Vec<&str> = name.split(SEPARATOR).collect();
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                prefix.push(SEPARATOR);
            }
            prefix.push_str(part);
            let last = i + 1 == parts.len();
            if tx.mailbox_get(address_id, &prefix).await?.is_none() {
                self.create_mailbox(&mut *tx, address_id, &prefix, if last { role } else { "" })
                    .await?;
            }
        }
        let created = tx
            .mailbox_get(address_id, &name)
            .await?
            .ok_or_else(|| Self::no_folder(&name))?;
        tx.commit().await?;
        Ok(created)
    }

    /// M11 for the mailbox user of `address_id` (the one caller of the folder operations
    /// that change roles: IMAP, logged in as the address), on the address row in `tx`.
    async fn mailbox_user_may(
        &self,
        tx: &mut dyn Tx,
        address_id: i64,
        right: m11::Right,
    ) -> Result<()> {
        let a = tx
            .address_by_id(address_id)
            .await?
            .ok_or_else(|| Error::not_found("address", address_id.to_string()))?;
        m11::mailbox_user_may(&a, right)
    }

    /// A role belongs to one folder at most: whoever had it loses it.
    async fn take_role(&self, tx: &mut dyn Tx, address_id: i64, role: &str) -> Result<()> {
        for m in tx.mailbox_list(address_id).await? {
            if m.special_use == role {
                tx.mailbox_set_special_use(m.id, "").await?;
            }
        }
        Ok(())
    }

    /// Deletes a folder and its messages (RFC 9051 §6.3.4). INBOX cannot be deleted. A folder
    /// with inferiors loses its messages and stays as a `\Noselect` name; such a name can be
    /// deleted once its inferiors are gone.
    pub async fn folder_delete(&self, address_id: i64, name: &str) -> Result<()> {
        let name = folder_name(name)?;
        if name == "INBOX" {
            return Err(Error::Conflict("INBOX cannot be deleted".into()));
        }
        let mut tx = self.store.begin_write().await?;
        // The address row before the mailbox (the store's lock order, `Tx::address_lock`).
        tx.address_lock(address_id).await?;
        let prefix = format!("{name}{SEPARATOR}");
        let has_children = tx
            .mailbox_list(address_id)
            .await?
            .iter()
            .any(|x| x.name.starts_with(&prefix));
        let Some(m) = tx.mailbox_get(address_id, &name).await? else {
            return Err(if has_children {
                Self::has_inferiors(&name)
            } else {
                Self::no_folder(&name)
            });
        };
        if m.noselect && has_children {
            return Err(Self::has_inferiors(&name));
        }
        // Deleting a special folder takes its role away.
        if !m.special_use.is_empty() {
            self.mailbox_user_may(&mut *tx, address_id, m11::Right::SpecialFolders)
                .await?;
        }
        let size = tx.mailbox_stats(m.id).await?.size;
        if has_children {
            let uids: Vec<i64> = tx.message_list(m.id).await?.iter().map(|x| x.uid).collect();
            tx.messages_delete(m.id, &uids).await?;
            let uidvalidity = self.next_uidvalidity(&mut *tx, address_id).await?;
            tx.mailbox_set_noselect(m.id, true, uidvalidity).await?;
        } else {
            tx.mailbox_delete(m.id).await?;
        }
        tx.address_add_usage(address_id, -size).await?;
        tx.commit().await?;
        self.changed(m.id);
        Ok(())
    }

    fn has_inferiors(name: &str) -> Error {
        Error::Conflict(format!("{name} has folders inside it; delete those first"))
    }

    /// Renames a folder with its inferiors. Renaming INBOX moves its messages into a new
    /// folder and leaves INBOX empty (RFC 9051 §6.3.6).
    pub async fn folder_rename(&self, address_id: i64, from: &str, to: &str) -> Result<()> {
        let (from, to) = (folder_name(from)?, folder_name(to)?);
        let mut tx = self.store.begin_write().await?;
        tx.address_lock(address_id).await?;
        let all = tx.mailbox_list(address_id).await?;
        let src = all
            .iter()
            .find(|m| m.name == from)
            .ok_or_else(|| Self::no_folder(&from))?;
        if all.iter().any(|m| m.name == to) {
            return Err(Error::duplicate("folder", to));
        }
        if to.starts_with(&format!("{from}{SEPARATOR}")) {
            return Err(Error::Conflict(format!(
                "{from} cannot become a folder inside itself"
            )));
        }
        if from == "INBOX" {
            let dst = self.create_mailbox(&mut *tx, address_id, &to, "").await?;
            let uids: Vec<i64> = tx
                .message_list(src.id)
                .await?
                .iter()
                .map(|m| m.uid)
                .collect();
            self.transfer(&mut *tx, src.id, &uids, dst.id, true).await?;
            tx.commit().await?;
            self.changed(src.id);
            return Ok(());
        }
        let prefix = format!("{from}{SEPARATOR}");
        for m in &all {
            if m.name == from {
                tx.mailbox_rename(m.id, &to).await?;
            } else if let Some(rest) = m.name.strip_prefix(&prefix) {
                tx.mailbox_rename(m.id, &format!("{to}{SEPARATOR}{rest}"))
                    .await?;
            }
        }
        // The subscriptions of the renamed folders follow them (as Dovecot does): the user's
        // clients keep showing what they showed.
        for name in tx.subscriptions(address_id).await? {
            let moved = if name == from {
                Some(to.clone())
            } else {
                name.strip_prefix(&prefix)
                    .map(|rest| format!("{to}{SEPARATOR}{rest}"))
            };
            if let Some(new) = moved {
                tx.subscription_set(address_id, &name, false).await?;
                tx.subscription_set(address_id, &new, true).await?;
            }
        }
        // Superiors of the new name are created like CREATE would.
        let parts: Vec<&str> = to.split(SEPARATOR).collect();
        let mut prefix = String::new();
        for part in &parts[..parts.len() - 1] {
            if !prefix.is_empty() {
                prefix.push(SEPARATOR);
            }
            prefix.push_str(part);
            if tx.mailbox_get(address_id, &prefix).await?.is_none() {
                self.create_mailbox(&mut *tx, address_id, &prefix, "")
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn folder_subscribe(
        &self,
        address_id: i64,
        name: &str,
        subscribed: bool,
    ) -> Result<()> {
        let name = folder_name(name)?;
        let mut tx = self.store.begin_write().await?;
        // RFC 9051 §6.3.9: subscriptions are names of their own. SUBSCRIBE may check that the
        // mailbox exists (we do, to catch typing errors); UNSUBSCRIBE takes any name, also one
        // whose mailbox was deleted.
        if subscribed && tx.mailbox_get(address_id, &name).await?.is_none() {
            return Err(Self::no_folder(&name));
        }
        tx.subscription_set(address_id, &name, subscribed).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The subscribed names, existing or not (IMAP LSUB, LIST (SUBSCRIBED)).
    pub async fn subscribed_names(&self, address_id: i64) -> Result<Vec<String>> {
        let mut tx = self.store.begin().await?;
        Ok(tx.subscriptions(address_id).await?)
    }

    /// Everything a session needs when it selects a folder.
    ///
    /// The rows come from the folder index cache when it holds them: one read of the folder
    /// row tells whether they are current, and if not, the rows changed and the UIDs expunged
    /// since bring them up to date (see `index_cache` for why that is exact).
    pub async fn folder_snapshot(&self, mailbox_id: i64) -> Result<Snapshot> {
        let mut tx = self.store.begin().await?;
        let mailbox = tx
            .mailbox_by_id(mailbox_id)
            .await?
            .ok_or_else(|| Self::no_folder(&mailbox_id.to_string()))?;
        let cached = self
            .folder_index
            .take(mailbox_id)
            .filter(|c| c.is_of(&mailbox) && c.highestmodseq <= mailbox.highestmodseq);
        let entry = match cached {
            Some(c) if c.highestmodseq == mailbox.highestmodseq => c,
            Some(mut c) => {
                let changed = tx
                    .messages_changed_since(mailbox_id, c.highestmodseq)
                    .await?;
                let expunged = tx.expunged_since(mailbox_id, c.highestmodseq).await?;
                c.apply(&mailbox, changed, &expunged);
                c
            }
            None => {
                let rows = Arc::new(tx.message_list(mailbox_id).await?);
                CachedIndex::new(&mailbox, rows)
            }
        };
        let messages = entry.messages.clone();
        self.folder_index.put(mailbox_id, entry);
        Ok(Snapshot { mailbox, messages })
    }

    /// What changed after `modseq` (None: the folder is gone).
    pub async fn folder_changes(&self, mailbox_id: i64, modseq: i64) -> Result<Option<Changes>> {
        // Every IMAP command asks this. Most of the time nothing changed, and one statement
        // outside a transaction says so: BEGIN and ROLLBACK would be two more round trips to
        // the database thread per command. Only when something changed are the
        // folder row and its changes read together, in one transaction.
        {
            let mut read = self.store.begin_read().await?;
            match read.mailbox_by_id(mailbox_id).await? {
                None => return Ok(None),
                Some(mailbox) if mailbox.highestmodseq <= modseq => {
                    return Ok(Some(Changes {
                        mailbox,
                        changed: Vec::new(),
                        expunged: Vec::new(),
                    }));
                }
                Some(_) => {}
            }
        }
        let mut tx = self.store.begin().await?;
        let Some(mailbox) = tx.mailbox_by_id(mailbox_id).await? else {
            return Ok(None);
        };
        let changed = tx.messages_changed_since(mailbox_id, modseq).await?;
        let expunged = tx.expunged_since(mailbox_id, modseq).await?;
        Ok(Some(Changes {
            mailbox,
            changed,
            expunged,
        }))
    }

    /// IMAP4rev1 \Recent: claims the folder's new messages for one session. `seen` is the
    /// folder as the caller read it: when every message below `upto` was claimed already
    /// (`recent_uid` only grows), there is nothing to claim and no write — a SELECT of an
    /// unchanged folder costs no transaction commit.
    pub async fn folder_claim_recent(&self, seen: &Mailbox, upto: i64) -> Result<i64> {
        if seen.recent_uid >= upto {
            return Ok(seen.recent_uid);
        }
        let mailbox_id = seen.id;
        let mut tx = self.store.begin_write().await?;
        let first = tx.mailbox_claim_recent(mailbox_id, upto).await?;
        tx.commit().await?;
        Ok(first)
    }

    pub async fn folder_stats(&self, mailbox_id: i64) -> Result<MailboxStats> {
        let mut tx = self.store.begin_read().await?;
        Ok(tx.mailbox_stats(mailbox_id).await?)
    }

    /// Several stored messages' bodies, in the order asked, read in one go: the inline ones
    /// (small spooled messages, `inline_blobs`) with one query, the files with one hand-off
    /// to the blocking pool (or none, when `expected_bytes`, what the caller knows they add up
    /// to, is small: `postfach_store::READ_IN_PLACE_MAX`). Each is verified against its
    /// content address.
    pub async fn message_bodies(
        &self,
        blob_ids: &[&str],
        expected_bytes: u64,
    ) -> Vec<Result<Vec<u8>>> {
        let mut out: Vec<Option<Result<Vec<u8>>>> = blob_ids.iter().map(|_| None).collect();
        let (mut files, mut file_at, mut inline, mut inline_at) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (i, b) in blob_ids.iter().enumerate() {
            if is_inline_id(b) {
                inline.push(*b);
                inline_at.push(i);
            } else if let Some(id) = BlobId::parse(b) {
                files.push(id);
                file_at.push(i);
            } else {
                out[i] = Some(Err(Error::Internal(format!("malformed blob id {b}"))));
            }
        }
        if !inline.is_empty() {
            let found = match self.store.inline_blobs_now(&inline) {
                Some(read) => read.map_err(Error::from),
                None => {
                    async {
                        let mut tx = self.store.begin_read().await?;
                        Ok::<_, Error>(tx.inline_blobs_get(&inline).await?)
                    }
                    .await
                }
            }
            .map(|rows| rows.into_iter().collect::<HashMap<_, _>>());
            for (id, at) in inline.iter().zip(inline_at) {
                out[at] = Some(match &found {
                    Ok(rows) => match rows.get(*id) {
                        Some(data) => verify_inline(id, data.clone()).map_err(Error::from),
                        None => Err(Error::not_found("message body", *id)),
                    },
                    Err(e) => Err(Error::Internal(format!("reading message bodies: {e}"))),
                });
            }
        }
        if !files.is_empty() {
            let reads = self.blobs.get_many(&files, expected_bytes).await;
            for (read, at) in reads.into_iter().zip(file_at) {
                out[at] = Some(read.map_err(Error::from));
            }
        }
        out.into_iter()
            .map(|o| {
                o.unwrap_or_else(|| Err(Error::Internal("a message body was not read".into())))
            })
            .collect()
    }

    /// A stored message's body.
    pub async fn message_body(&self, blob_id: &str) -> Result<Vec<u8>> {
        self.message_bodies(&[blob_id], 0)
            .await
            .pop()
            .unwrap_or_else(|| Err(Error::Internal("a message body was not read".into())))
    }

    /// After a queue entry is finished: removes its body unless a mailbox or another entry
    /// still holds it.
    pub async fn drop_body_unless_used(&self, blob_id: &str) -> Result<()> {
        if is_inline_id(blob_id) {
            let mut turn = self.group.turn().await?;
            let r = turn.tx().inline_blob_delete_unused(blob_id).await;
            turn.finish(r.map_err(Error::from)).await?;
        } else if let Some(id) = BlobId::parse(blob_id)
            && !self.blob_in_use(blob_id).await?
        {
            self.blobs.delete(&id).await?;
        }
        Ok(())
    }

    /// (used, limit) bytes of an address's storage (RFC 9208 STORAGE, P3 QUOTA).
    pub async fn storage(&self, address_id: i64) -> Result<(i64, i64)> {
        let mut tx = self.store.begin_read().await?;
        let a = tx
            .address_by_id(address_id)
            .await?
            .ok_or_else(|| Error::not_found("address", address_id.to_string()))?;
        Ok((a.storage_used_bytes, a.storage_quota_bytes))
    }

    /// IMAP APPEND: stores a message in a folder, under the quota. Returns (UIDVALIDITY, UID).
    pub async fn append(
        &self,
        address_id: i64,
        folder: &str,
        req: AppendRequest,
    ) -> Result<(i64, i64)> {
        let a = self.append_claiming(address_id, folder, req, false).await?;
        Ok((a.uidvalidity, a.message.uid))
    }

    /// [`Directory::append`] for a session that may have the folder selected. With
    /// `claim_recent` (an IMAP4rev1 session with the folder selected read-write) the message
    /// — and any other not yet claimed — is claimed as \Recent for that session in the same
    /// transaction (performance: a claim of its own after the append was a second write
    /// transaction, with its own fsync, per APPEND).
    pub async fn append_claiming(
        &self,
        address_id: i64,
        folder: &str,
        req: AppendRequest,
        claim_recent: bool,
    ) -> Result<Appended> {
        let name = folder_name(folder)?;
        // Stored with CRLF line ends (RFC 5322 §2.1), so that the size every protocol reports
        // (RFC822.SIZE, POP3 LIST) is the size of what it sends.
        let req = AppendRequest {
            raw: crlf(req.raw),
            ..req
        };
        let size = req.raw.len() as i64;
        // A small message is kept in the store with its row, written in the shared
        // transaction: one COMMIT, shared with whoever else writes then, instead of a file's
        // two fsyncs and a hand-off before it, as small deliveries are. A large one
        // becomes a file, after a look at the quota, so that no file is written in vain.
        let inline = req.raw.len() <= crate::mail::INLINE_BODY_MAX;
        let blob_id = if inline {
            inline_id(&req.raw)
        } else {
            let (used, limit) = self.storage(address_id).await?;
            if !quota::has_room(used, limit, size) {
                return Err(quota::full(used, limit));
            }
            self.blobs.put(&req.raw).await?.to_string()
        };
        let summary = crate::mail::summarize(&req.raw);
        // The folder is looked up before the shared transaction, whose writers wait for each
        // other; were it deleted in between, the append finds no mailbox and fails as if it
        // had been gone before (performance: the turn is one statement, as a delivery's is).
        let m = {
            let mut tx = self.store.begin_read().await?;
            selectable(&mut *tx, address_id, &name).await?
        }
        .ok_or_else(|| Self::no_folder(&name))?;
        let mut turn = self.group.turn().await?;
        let result = async {
            let tx = turn.tx();
            let stored = tx
                .message_deliver(
                    m.id,
                    &NewMessage {
                        blob_id,
                        size,
                        internal_date: req.date.unwrap_or_else(|| self.now()),
                        flags: req.flags,
                        keywords: req.keywords,
                        header_from: summary.from,
                        subject: summary.subject,
                        sent_at: summary.sent_at,
                        message_id: summary.message_id,
                        sent_day: summary.sent_day,
                    },
                    address_id,
                    inline.then_some(req.raw.as_slice()),
                )
                .await;
            let stored = match stored {
                // M3, decided on the usage this append left; the refusal undoes it (the
                // writer's savepoint), so concurrent APPENDs cannot overshoot together.
                Ok(d) => {
                    quota::check_written(d.usage, size)?;
                    d.message
                }
                // The folder went away meanwhile.
                Err(postfach_store::StoreError::NotFound) => return Err(Self::no_folder(&name)),
                Err(e) => return Err(e.into()),
            };
            let claimed = if claim_recent {
                let first = tx.mailbox_claim_recent(m.id, stored.uid + 1).await?;
                (first <= stored.uid).then_some(first)
            } else {
                None
            };
            Ok((m, stored, claimed))
        }
        .await;
        let (m, stored, recent_from) = turn.finish(result).await?;
        // With its MODSEQ: a session that knows the folder up to the MODSEQ before (the one
        // that appended) need not look.
        self.changed_at(m.id, stored.modseq);
        Ok(Appended {
            uidvalidity: m.uidvalidity,
            message: stored,
            recent_from,
        })
    }

    /// STORE as [`Directory::store_flags`] does, computed from the flags the session saw
    /// (`seen`, its view) instead of read under the write lock, and written only if every
    /// message is still as seen — checked by MODSEQ in the same statement (performance: on SQLite
    /// the change is one round trip inside the shared transaction, a STORE that changes
    /// nothing no transaction at all). None when that cannot be done or a message was not as
    /// seen (another session changed or expunged it, the change is a junk-training keyword,
    /// PostgreSQL, too many messages): nothing was written, and [`Directory::store_flags`]
    /// does the change from the stored state.
    pub async fn store_flags_as_seen(
        &self,
        mailbox_id: i64,
        seen: &[MessageFlags],
        change: &FlagChange,
        unchanged_since: Option<i64>,
    ) -> Result<Option<StoreOutcome>> {
        let trains = change.op != FlagOp::Remove
            && change
                .keywords
                .iter()
                .any(|k| Class::of_keyword(k).is_some());
        if self.store.backend() != postfach_store::Backend::Sqlite
            || trains
            || seen.is_empty()
            || seen.len() > STORE_AS_SEEN_MAX
        {
            return Ok(None);
        }
        let mut messages = Vec::with_capacity(seen.len());
        let (mut writes, mut unchanged) = (Vec::new(), Vec::new());
        let mut modified = Vec::new();
        let mut changed = std::collections::HashSet::new();
        for m in seen {
            if unchanged_since.is_some_and(|since| m.modseq > since) {
                // Still modified if still there (its MODSEQ can only have grown).
                modified.push(m.uid);
                unchanged.push((m.uid, m.modseq));
                continue;
            }
            let (flags, keywords) = change.apply(m.flags, &m.keywords);
            if flags != m.flags || keywords != m.keywords {
                writes.push((m.uid, flags, keywords.clone(), m.modseq));
                changed.insert(m.uid);
            } else {
                unchanged.push((m.uid, m.modseq));
            }
            messages.push(MessageFlags {
                uid: m.uid,
                flags,
                keywords,
                modseq: m.modseq,
            });
        }
        let modseq = if writes.is_empty() {
            // Nothing to write: whether the flags are still as seen is one read.
            let mut tx = self.store.begin_read().await?;
            match tx
                .messages_set_flags_if_current(mailbox_id, &[], &unchanged)
                .await?
            {
                Some(_) => 0,
                None => return Ok(None),
            }
        } else {
            let mut turn = self.group.turn().await?;
            let written = turn
                .tx()
                .messages_set_flags_if_current(mailbox_id, &writes, &unchanged)
                .await
                .map_err(Error::from)
                .and_then(|w| {
                    // Not as seen: undone with this writer's savepoint.
                    w.ok_or_else(|| Error::Conflict("changed meanwhile".into()))
                });
            match turn.finish(written).await {
                Ok(modseq) => modseq,
                Err(Error::Conflict(_)) => return Ok(None),
                Err(e) => return Err(e),
            }
        };
        if modseq > 0 {
            for m in &mut messages {
                if changed.contains(&m.uid) {
                    m.modseq = modseq;
                }
            }
            self.changed_at(mailbox_id, modseq);
        }
        Ok(Some(StoreOutcome {
            modseq,
            messages,
            changed,
            modified,
        }))
    }

    /// STORE (RFC 9051 §6.4.6, RFC 7162 UNCHANGEDSINCE): changes the flags of the messages
    /// `uids` of a mailbox against their current state, under the mailbox's lock, so that
    /// concurrent changes by other sessions are neither lost nor overwritten. Messages whose
    /// MODSEQ is above `unchanged_since` are left alone and reported as `modified`.
    pub async fn store_flags(
        &self,
        mailbox_id: i64,
        uids: &[i64],
        change: &FlagChange,
        unchanged_since: Option<i64>,
    ) -> Result<StoreOutcome> {
        let wanted: std::collections::HashSet<i64> = uids.iter().copied().collect();
        let junk_keywords = change.op != FlagOp::Remove
            && change
                .keywords
                .iter()
                .any(|k| Class::of_keyword(k).is_some());
        // In the shared transaction (group commit): sessions flagging at the same time share
        // one COMMIT.
        let mut turn = self.group.turn().await?;
        let result = async {
            let tx = turn.tx();
            tx.mailbox_lock(mailbox_id).await?;
            let mut current = messages_by_uid(tx, mailbox_id, &wanted).await?;
            let before = if junk_keywords {
                current.clone()
            } else {
                Vec::new()
            };
            let mut writes = Vec::new();
            let mut modified = Vec::new();
            let mut changed = std::collections::HashSet::new();
            current.retain(|m| {
                if unchanged_since.is_some_and(|since| m.modseq > since) {
                    modified.push(m.uid);
                    return false;
                }
                true
            });
            for m in &mut current {
                let (flags, keywords) = change.apply(m.flags, &m.keywords);
                if flags != m.flags || keywords != m.keywords {
                    writes.push((m.uid, flags, keywords.clone()));
                    changed.insert(m.uid);
                    m.flags = flags;
                    m.keywords = keywords;
                }
            }
            let modseq = if writes.is_empty() {
                0
            } else {
                let modseq = tx.messages_set_flags(mailbox_id, &writes).await?;
                for m in &mut current {
                    if changed.contains(&m.uid) {
                        m.modseq = modseq;
                    }
                }
                modseq
            };
            Ok((current, before, writes, modified, changed, modseq))
        }
        .await;
        let (current, before, writes, modified, changed, modseq) = turn.finish(result).await?;
        if !writes.is_empty() {
            self.changed_at(mailbox_id, modseq);
        }
        if junk_keywords {
            self.train_on_keywords(mailbox_id, &before, &current).await;
        }
        Ok(StoreOutcome {
            modseq,
            messages: current.iter().map(MessageFlags::from).collect(),
            changed,
            modified,
        })
    }

    /// IMAP EXPUNGE / CLOSE / UID EXPUNGE (RFC 9051 §6.4.3, RFC 4315): removes the messages that
    /// have `\Deleted` now — as stored, not as a session last saw them — optionally only
    /// among `within`. Returns the UIDs removed.
    pub async fn expunge_deleted(
        &self,
        address_id: i64,
        mailbox_id: i64,
        within: Option<&[i64]>,
    ) -> Result<Vec<i64>> {
        let within: Option<std::collections::HashSet<i64>> =
            within.map(|w| w.iter().copied().collect());
        let mut tx = self.store.begin_write().await?;
        // The address row before the mailbox (the store's lock order, `Tx::address_lock`):
        // a delivery counts the usage first, then takes the mailbox.
        tx.address_lock(address_id).await?;
        tx.mailbox_lock(mailbox_id).await?;
        let messages = tx.message_list(mailbox_id).await?;
        let doomed: Vec<&Message> = messages
            .iter()
            .filter(|m| m.flags & crate::mail::flag::DELETED != 0)
            .filter(|m| within.as_ref().is_none_or(|w| w.contains(&m.uid)))
            .collect();
        if doomed.is_empty() {
            return Ok(Vec::new());
        }
        let uids: Vec<i64> = doomed.iter().map(|m| m.uid).collect();
        let size: i64 = doomed.iter().map(|m| m.size).sum();
        tx.messages_delete(mailbox_id, &uids).await?;
        tx.address_add_usage(address_id, -size).await?;
        tx.commit().await?;
        self.changed(mailbox_id);
        Ok(uids)
    }

    /// EXPUNGE: removes messages and gives their space back.
    pub async fn expunge(&self, address_id: i64, mailbox_id: i64, uids: &[i64]) -> Result<()> {
        if uids.is_empty() {
            return Ok(());
        }
        let wanted: std::collections::HashSet<i64> = uids.iter().copied().collect();
        let mut tx = self.store.begin_write().await?;
        tx.address_lock(address_id).await?;
        let size: i64 = messages_by_uid(&mut *tx, mailbox_id, &wanted)
            .await?
            .iter()
            .map(|m| m.size)
            .sum();
        tx.messages_delete(mailbox_id, uids).await?;
        tx.address_add_usage(address_id, -size).await?;
        tx.commit().await?;
        self.changed(mailbox_id);
        Ok(())
    }

    /// Copies (and with `remove`, moves) messages between two mailboxes in one transaction.
    /// Returns (source UID, new UID) pairs with the message's blob.
    async fn transfer(
        &self,
        tx: &mut dyn Tx,
        from: i64,
        uids: &[i64],
        to: i64,
        remove: bool,
    ) -> Result<Vec<((i64, i64), String)>> {
        let wanted: std::collections::HashSet<i64> = uids.iter().copied().collect();
        let messages: std::collections::HashMap<i64, Message> = messages_by_uid(tx, from, &wanted)
            .await?
            .into_iter()
            .map(|m| (m.uid, m))
            .collect();
        let mut pairs = Vec::new();
        for uid in uids {
            let Some(m) = messages.get(uid) else {
                continue;
            };
            let copy = tx
                .message_append(
                    to,
                    &NewMessage {
                        blob_id: m.blob_id.clone(),
                        size: m.size,
                        internal_date: m.internal_date,
                        flags: m.flags,
                        keywords: m.keywords.clone(),
                        header_from: m.header_from.clone(),
                        subject: m.subject.clone(),
                        sent_at: m.sent_at,
                        message_id: m.message_id.clone(),
                        sent_day: m.sent_day,
                    },
                )
                .await?;
            pairs.push(((m.uid, copy.uid), m.blob_id.clone()));
        }
        if remove && !pairs.is_empty() {
            let moved: Vec<i64> = pairs.iter().map(|p| p.0.0).collect();
            tx.messages_delete(from, &moved).await?;
        }
        Ok(pairs)
    }

    /// COPY/MOVE to the folder `to` of the same address: all or nothing, under the quota (a
    /// move does not need space). Returns (destination UIDVALIDITY, (source, new) UID pairs).
    pub async fn copy_messages(
        &self,
        address_id: i64,
        from: i64,
        uids: &[i64],
        to: &str,
        remove: bool,
    ) -> Result<(i64, Vec<(i64, i64)>)> {
        let to = folder_name(to)?;
        let mut tx = self.store.begin_write().await?;
        // The address row first (the store's lock order): two MOVEs in opposite directions
        // would otherwise each hold one mailbox and wait for the other.
        tx.address_lock(address_id).await?;
        let dst = selectable(&mut *tx, address_id, &to)
            .await?
            .ok_or_else(|| Self::no_folder(&to))?;
        if !remove {
            let wanted: std::collections::HashSet<i64> = uids.iter().copied().collect();
            let added: i64 = tx
                .message_list(from)
                .await?
                .iter()
                .filter(|m| wanted.contains(&m.uid))
                .map(|m| m.size)
                .sum();
            // M3 on the usage as written (the row is locked until the commit); a refusal
            // drops the transaction, and with it the count.
            let usage = tx.address_add_usage(address_id, added).await?;
            quota::check_written(usage, added)?;
        }
        let src_role = tx
            .mailbox_by_id(from)
            .await?
            .map(|m| m.special_use)
            .unwrap_or_default();
        let blobs = self.transfer(&mut *tx, from, uids, dst.id, remove).await?;
        tx.commit().await?;
        self.changed(dst.id);
        if remove {
            self.changed(from);
        }
        // F5: into Spam trains spam, out of Spam trains ham.
        if let Some(class) = Class::of_move(&src_role, &dst.special_use) {
            let trained = blobs.iter().map(|(_, b)| b.clone()).collect();
            self.train_quietly(address_id, trained, class).await;
        }
        let pairs = blobs.into_iter().map(|(p, _)| p).collect();
        Ok((dst.uidvalidity, pairs))
    }

    /// Who may see (`write` false) or change a mailbox's special folders: its own user
    /// always sees them and changes them if M11 allows; anyone else needs M1's `use` grant
    /// to see them and `manage` to change them.
    async fn authorize_folder_roles(
        &self,
        tx: &mut dyn Tx,
        actor: &Actor,
        address: &str,
        write: bool,
    ) -> Result<(postfach_store::MailService, postfach_store::Address)> {
        let (svc, a) = self.load_address(&mut *tx, address).await?;
        match actor {
            Actor::Mailbox(own)
                if validate::address(own).ok() == validate::address(address).ok() =>
            {
                if write {
                    m11::mailbox_user_may(&a, m11::Right::SpecialFolders)?
                }
            }
            _ => {
                let (need, what) = if write {
                    (crate::access::Need::Manage, "change special folders")
                } else {
                    (crate::access::Need::Use, "see special folders")
                };
                self.require_service(&mut *tx, actor, &svc, need, what)
                    .await?
            }
        }
        Ok((svc, a))
    }

    fn role_views(mailboxes: Vec<Mailbox>) -> Vec<crate::model::FolderRoleView> {
        mailboxes
            .into_iter()
            .filter(|m| !m.noselect)
            .map(|m| crate::model::FolderRoleView {
                folder: m.name,
                role: m.special_use,
            })
            .collect()
    }

    /// P5: the folders of an address with their roles (CLI, API).
    pub async fn folder_roles(
        &self,
        actor: &Actor,
        address: &str,
    ) -> Result<Vec<crate::model::FolderRoleView>> {
        let mut tx = self.store.begin().await?;
        let (_, a) = self
            .authorize_folder_roles(&mut *tx, actor, address, false)
            .await?;
        Ok(Self::role_views(tx.mailbox_list(a.id).await?))
    }

    /// P5: which folder plays which role, set by a mailbox's user (if M11 allows) or by a
    /// manager of its mail service (CLI, API). `role` "" clears it; a role moves from the
    /// folder that had it.
    pub async fn set_folder_role(
        &self,
        actor: &Actor,
        address: &str,
        folder: &str,
        role: &str,
    ) -> Result<Vec<crate::model::FolderRoleView>> {
        let role = special_use(role)?;
        let name = folder_name(folder)?;
        let mut tx = self.store.begin_write().await?;
        let (svc, a) = self
            .authorize_folder_roles(&mut *tx, actor, address, true)
            .await?;
        let m = selectable(&mut *tx, a.id, &name)
            .await?
            .ok_or_else(|| Self::no_folder(&name))?;
        if !role.is_empty() {
            self.take_role(&mut *tx, a.id, &role).await?;
        }
        tx.mailbox_set_special_use(m.id, &role).await?;
        let target = format!("{}@{}", a.local_part, a.domain);
        self.audit(
            &mut *tx,
            actor,
            Some(svc.org_id),
            "folder.role",
            &target,
            serde_json::json!({"folder": name, "role": role}),
        )
        .await?;
        let all = tx.mailbox_list(a.id).await?;
        tx.commit().await?;
        Ok(Self::role_views(all))
    }
}

/// `raw` with every bare LF (and bare CR) turned into CRLF.
fn crlf(raw: Vec<u8>) -> Vec<u8> {
    let bare = raw.iter().enumerate().any(|(i, &b)| {
        (b == b'\n' && (i == 0 || raw[i - 1] != b'\r'))
            || (b == b'\r' && raw.get(i + 1) != Some(&b'\n'))
    });
    if !bare {
        return raw;
    }
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 32);
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'\r' if raw.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 2;
                continue;
            }
            b'\r' | b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// The folder `name` of an address if it can hold messages (is not a `\Noselect` name).
/// The messages of `uids` that exist, in UID order. A few are looked up one by one through
/// the (mailbox, uid) key; for many, one scan of the folder is cheaper. (A STORE on one
/// message of a 10,000-message folder read the whole folder before: bench/RESULTS.md.)
async fn messages_by_uid(
    tx: &mut dyn Tx,
    mailbox_id: i64,
    uids: &std::collections::HashSet<i64>,
) -> Result<Vec<Message>> {
    const ONE_BY_ONE: usize = 64;
    if uids.len() <= ONE_BY_ONE {
        let mut sorted: Vec<i64> = uids.iter().copied().collect();
        sorted.sort_unstable();
        let mut found = Vec::with_capacity(sorted.len());
        for uid in sorted {
            if let Some(m) = tx.message_get(mailbox_id, uid).await? {
                found.push(m);
            }
        }
        return Ok(found);
    }
    Ok(tx
        .message_list(mailbox_id)
        .await?
        .into_iter()
        .filter(|m| uids.contains(&m.uid))
        .collect())
}

async fn selectable(tx: &mut dyn Tx, address_id: i64, name: &str) -> Result<Option<Mailbox>> {
    Ok(tx
        .mailbox_get(address_id, name)
        .await?
        .filter(|m| !m.noselect))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_ends_become_crlf() {
        assert_eq!(crlf(b"a\r\nb".to_vec()), b"a\r\nb");
        assert_eq!(crlf(b"a\nb\rc\r\n".to_vec()), b"a\r\nb\r\nc\r\n");
        assert_eq!(crlf(b"\n".to_vec()), b"\r\n");
    }

    #[test]
    fn folder_names() {
        assert_eq!(folder_name("inbox").unwrap(), "INBOX");
        assert_eq!(folder_name("Inbox/Projects").unwrap(), "INBOX/Projects");
        assert_eq!(folder_name("Archiv/2026 Q1").unwrap(), "Archiv/2026 Q1");
        assert_eq!(folder_name("Entwürfe").unwrap(), "Entwürfe");
        for bad in ["", "/a", "a/", "a//b", "a*", "b%", "x\u{1}"] {
            assert!(folder_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(special_use("Drafts").unwrap(), "\\Drafts");
        assert_eq!(special_use("\\Junk").unwrap(), "\\Junk");
        assert_eq!(special_use("spam").unwrap(), "\\Junk");
        assert_eq!(special_use("none").unwrap(), "");
        assert!(special_use("inbox").is_err());
    }
}
