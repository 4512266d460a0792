//! Postfach storage (DESIGN.md "Storage").
//!
//! Two halves:
//! - **metadata** behind the [`Store`] / [`Tx`] traits, implemented for SQLite (the embedded
//!   default, one file in the data directory) and PostgreSQL (scale-out). Both implementations
//!   are compiled from one source file (`sql/imp.rs`) against each driver, so they cannot drift;
//!   only connection setup, locking and migrations differ per backend.
//! - **blobs** (message bodies) behind [`BlobStore`]: immutable, content-addressed (SHA-256),
//!   with a filesystem implementation ([`FsBlobStore`]); S3 comes later behind the same trait.
//!
//! The store holds data, not rules: every Manager rule (quotas, limits, roles) lives in
//! `postfach-core`, which runs its checks inside a [`Tx`] so that check and write are atomic.

mod blob;
mod records;
mod sql;
pub mod testing;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;

pub use blob::{
    BlobId, BlobStore, FsBlobStore, READ_IN_PLACE_MAX, inline_id, is_inline_id, verify_inline,
};
pub use records::*;

/// Errors of the storage layer. Rules violations are not store errors: core reports those.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness constraint refused the write (the caller maps it to a domain message).
    #[error("already exists ({0})")]
    Conflict(String),
    #[error("database: {0}")]
    Database(sqlx::Error),
    #[error("database migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("blob store: {0}")]
    Io(#[from] std::io::Error),
    #[error("blob {0} is corrupt: its content does not match its hash")]
    Corrupt(String),
    #[error("store configuration: {0}")]
    Config(String),
    /// A read on the calling thread (`sql::in_place`) failed.
    #[error("database (read in place): {0}")]
    InPlace(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::Database(ref db) if db.is_unique_violation() => {
                StoreError::Conflict(db.constraint().unwrap_or(db.message()).to_string())
            }
            e => StoreError::Database(e),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which metadata backend a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The metadata store. Every access happens in a transaction ([`Tx`]): reads get a consistent
/// snapshot, and writes that must respect a rule (e.g. "at most N addresses") take the write
/// lock first so that check and insert are atomic across processes (the CLI and the server
/// share one store).
#[async_trait]
pub trait Store: Send + Sync {
    fn backend(&self) -> Backend;
    /// A transaction for reading (and writes that need no serialisation beyond constraints).
    async fn begin(&self) -> Result<Box<dyn Tx>>;
    /// Reads without a transaction: each statement sees the latest committed state on its
    /// own. Saves BEGIN and ROLLBACK (two round trips to SQLite's worker thread) on the hot
    /// lookups of every delivered message, where statements need no common snapshot.
    async fn begin_read(&self) -> Result<Box<dyn Tx>>;
    /// A transaction that holds the store's write lock from its first statement (SQLite:
    /// `BEGIN IMMEDIATE`; PostgreSQL: row locks taken with [`Tx::lock_service`]).
    async fn begin_write(&self) -> Result<Box<dyn Tx>>;
    /// [`Tx::inline_blobs_get`] on the calling thread, for a backend that can read there
    /// cheaply (SQLite, `sql::in_place`); None: it cannot, read through a [`Tx`].
    fn inline_blobs_now(&self, ids: &[&str]) -> Option<Result<InlineBodies>> {
        let _ = ids;
        None
    }
    /// Quick liveness check for health endpoints.
    async fn ping(&self) -> Result<()>;
    /// Closes the pool, waiting for connections to be returned.
    async fn close(&self);
}

/// Inline bodies as read: (id, bytes), unverified ([`verify_inline`] checks them).
pub type InlineBodies = Vec<(String, Vec<u8>)>;

/// One transaction. Dropping it without [`Tx::commit`] rolls it back.
#[async_trait]
pub trait Tx: Send {
    async fn commit(self: Box<Self>) -> Result<()>;
    /// Marks a point to return to (`SAVEPOINT`): the group commit opens one before each job
    /// of a batch, and a job that fails is undone alone with [`Tx::rollback_to_savepoint`].
    /// Savepoints nest and are all released by COMMIT; a job that succeeds leaves its own in
    /// place (no `RELEASE`: one round trip less per job).
    async fn savepoint(&mut self) -> Result<()>;
    /// Undoes everything since the latest savepoint, which stays in place.
    async fn rollback_to_savepoint(&mut self) -> Result<()>;

    // -- organizations (M1)
    async fn org_insert(&mut self, name: &str, now: i64) -> Result<Org>;
    async fn org_by_name(&mut self, name: &str) -> Result<Option<Org>>;
    async fn org_by_id(&mut self, id: i64) -> Result<Option<Org>>;
    async fn org_list(&mut self) -> Result<Vec<Org>>;

    // -- user accounts and memberships (M1, S1)
    async fn user_insert(&mut self, user: &NewUser, now: i64) -> Result<User>;
    async fn user_by_login(&mut self, login: &str) -> Result<Option<User>>;
    async fn user_by_id(&mut self, id: i64) -> Result<Option<User>>;
    async fn user_set_password(&mut self, user_id: i64, password_hash: &str) -> Result<()>;
    async fn user_touch_login(&mut self, user_id: i64, now: i64) -> Result<()>;
    async fn operator_count(&mut self) -> Result<i64>;
    /// Logins of the platform operators, oldest first.
    async fn operator_logins(&mut self) -> Result<Vec<String>>;
    async fn membership_upsert(
        &mut self,
        org_id: i64,
        user_id: i64,
        role: &str,
        now: i64,
    ) -> Result<()>;
    async fn membership_get(&mut self, org_id: i64, user_id: i64) -> Result<Option<Membership>>;
    async fn memberships_of_user(&mut self, user_id: i64) -> Result<Vec<Membership>>;
    async fn memberships_of_org(&mut self, org_id: i64) -> Result<Vec<Membership>>;

    // -- product grants (M1): use/manage of one mail service
    async fn grant_set(
        &mut self,
        user_id: i64,
        service_id: i64,
        level: &str,
        now: i64,
    ) -> Result<()>;
    async fn grant_delete(&mut self, user_id: i64, service_id: i64) -> Result<bool>;
    async fn grant_get(&mut self, user_id: i64, service_id: i64) -> Result<Option<String>>;
    async fn grants_of_user(&mut self, user_id: i64) -> Result<Vec<Grant>>;

    // -- invitations (M1)
    /// Invites `user_id` into `org_id` (or renews the invitation: new role, token and expiry).
    #[allow(clippy::too_many_arguments)]
    async fn invitation_upsert(
        &mut self,
        org_id: i64,
        user_id: i64,
        role: &str,
        invited_by: &str,
        token_hash: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<Invitation>;
    async fn invitation_by_token(&mut self, token_hash: &str) -> Result<Option<Invitation>>;
    async fn invitation_get(&mut self, org_id: i64, user_id: i64) -> Result<Option<Invitation>>;
    async fn invitations_of_user(&mut self, user_id: i64) -> Result<Vec<Invitation>>;
    async fn invitations_of_org(&mut self, org_id: i64) -> Result<Vec<Invitation>>;
    async fn invitation_delete(&mut self, id: i64) -> Result<bool>;

    // -- domains
    /// Adds a domain, verified at `verified_at` or (`None`) pending with `verify_token`.
    async fn domain_insert(
        &mut self,
        org_id: i64,
        name: &str,
        now: i64,
        verified_at: Option<i64>,
        verify_token: &str,
    ) -> Result<Domain>;
    async fn domain_set_verified(&mut self, id: i64, at: i64) -> Result<()>;
    /// Removes a domain nothing refers to (a pending claim that lapsed).
    async fn domain_delete(&mut self, id: i64) -> Result<()>;
    async fn domain_by_name(&mut self, name: &str) -> Result<Option<Domain>>;
    async fn domain_list(&mut self, org_id: Option<i64>) -> Result<Vec<Domain>>;

    // -- mail services (M2, M9)
    async fn service_insert(&mut self, s: &NewService, now: i64) -> Result<MailService>;
    async fn service_by_domain(&mut self, domain: &str) -> Result<Option<MailService>>;
    async fn service_by_id(&mut self, id: i64) -> Result<Option<MailService>>;
    async fn service_list(&mut self, org_id: Option<i64>) -> Result<Vec<MailService>>;
    async fn service_update(&mut self, s: &MailService) -> Result<()>;
    /// Serialises writers of one mail service until the transaction ends (quota checks).
    async fn lock_service(&mut self, id: i64) -> Result<()>;

    // -- addresses (M3), forwarding targets (M6/F11), creation log (M6 rolling limit)
    async fn address_insert(&mut self, a: &NewAddress, now: i64) -> Result<Address>;
    async fn address_get(&mut self, service_id: i64, local_part: &str) -> Result<Option<Address>>;
    async fn address_by_id(&mut self, id: i64) -> Result<Option<Address>>;
    async fn address_list(&mut self, service_id: i64) -> Result<Vec<Address>>;
    async fn address_count(&mut self, service_id: i64) -> Result<i64>;
    async fn address_update(&mut self, a: &Address) -> Result<()>;
    async fn address_set_password(&mut self, id: i64, password_hash: &str) -> Result<()>;
    async fn address_delete(&mut self, id: i64) -> Result<()>;
    async fn forwards_get(&mut self, address_id: i64) -> Result<Vec<String>>;
    async fn forwards_set(&mut self, address_id: i64, targets: &[String]) -> Result<()>;
    async fn creation_log_insert(
        &mut self,
        service_id: i64,
        local_part: &str,
        now: i64,
    ) -> Result<()>;
    async fn creations_since(&mut self, service_id: i64, since: i64) -> Result<i64>;

    // -- aliases (M4)
    async fn alias_insert(
        &mut self,
        service_id: i64,
        local_part: &str,
        address_id: i64,
        now: i64,
    ) -> Result<Alias>;
    async fn alias_get(&mut self, service_id: i64, local_part: &str) -> Result<Option<Alias>>;
    async fn alias_list(&mut self, service_id: i64) -> Result<Vec<Alias>>;
    async fn alias_delete(&mut self, id: i64) -> Result<()>;

    // -- audit log (M12)
    async fn audit_insert(&mut self, e: &NewAudit, now: i64) -> Result<()>;
    async fn audit_list(&mut self, filter: &AuditFilter) -> Result<Vec<AuditEntry>>;

    // -- API credentials: login sessions and API keys (stored as SHA-256 of the token)
    async fn token_insert(&mut self, t: &NewToken, now: i64) -> Result<ApiToken>;
    async fn token_by_hash(&mut self, token_hash: &str) -> Result<Option<ApiToken>>;
    async fn token_touch(&mut self, id: i64, now: i64) -> Result<()>;
    async fn token_delete(&mut self, id: i64) -> Result<()>;
    async fn tokens_of_user(&mut self, user_id: i64, kind: &str) -> Result<Vec<ApiToken>>;

    // -- mailboxes and messages (IMAP model: UID, UIDVALIDITY, MODSEQ)
    async fn mailbox_insert(&mut self, m: &NewMailbox, now: i64) -> Result<Mailbox>;
    async fn mailbox_get(&mut self, address_id: i64, name: &str) -> Result<Option<Mailbox>>;
    async fn mailbox_by_id(&mut self, id: i64) -> Result<Option<Mailbox>>;
    async fn mailbox_list(&mut self, address_id: i64) -> Result<Vec<Mailbox>>;
    /// Appends a message: takes the mailbox's next UID and a new MODSEQ atomically (the
    /// mailbox row is locked until the transaction ends). Returns the stored message.
    async fn message_append(&mut self, mailbox_id: i64, m: &NewMessage) -> Result<Message>;
    /// A delivery's append: [`Tx::message_append`], plus the message's size added to
    /// `address_id`'s usage and, when `inline` is given, the body stored under `m.blob_id`
    /// (as [`Tx::inline_blob_put`]). On SQLite one round trip to the database thread instead
    /// of four, which matters inside the group commit, where every writer waits for the one
    /// before it. Returns the usage it left, read in the same statement (on PostgreSQL
    /// under the address row's lock): the caller decides the quota on it and undoes the
    /// write (its savepoint or transaction) when it does not fit, so concurrent appends
    /// cannot overshoot together. `NotFound` when the mailbox does not exist.
    async fn message_deliver(
        &mut self,
        mailbox_id: i64,
        m: &NewMessage,
        address_id: i64,
        inline: Option<&[u8]>,
    ) -> Result<Delivered>;
    async fn message_get(&mut self, mailbox_id: i64, uid: i64) -> Result<Option<Message>>;
    /// Takes the mailbox row's write lock for the rest of the transaction, so that a
    /// read-modify-write of its messages (STORE, EXPUNGE) sees no concurrent change. A no-op
    /// on SQLite, whose write transaction excludes every other writer already (a missing
    /// mailbox shows when its messages are read or its MODSEQ taken).
    async fn mailbox_lock(&mut self, mailbox_id: i64) -> Result<()>;
    /// Locks an address's row to the end of the transaction (PostgreSQL; SQLite's write
    /// transaction excludes every other writer already). The lock order of the mail store:
    /// a transaction that changes several rows of one address's mail takes the address row
    /// before any of its mailboxes — delivery, APPEND and COPY do so by counting the usage
    /// first — so that two of them cannot deadlock (SQLSTATE 40P01).
    async fn address_lock(&mut self, address_id: i64) -> Result<()>;
    async fn message_list(&mut self, mailbox_id: i64) -> Result<Vec<Message>>;
    /// Adds `delta` bytes to an address's storage usage and returns the usage it left (on
    /// PostgreSQL the row stays locked to the end of the transaction).
    async fn address_add_usage(&mut self, address_id: i64, delta: i64) -> Result<Usage>;
    /// Renames one mailbox (the caller renames its inferiors too).
    async fn mailbox_rename(&mut self, id: i64, name: &str) -> Result<()>;
    /// Deletes a mailbox with its messages.
    async fn mailbox_delete(&mut self, id: i64) -> Result<()>;
    async fn mailbox_set_subscribed(&mut self, id: i64, subscribed: bool) -> Result<()>;
    /// IMAP subscriptions (names, independent of mailboxes).
    async fn subscription_set(&mut self, address_id: i64, name: &str, on: bool) -> Result<()>;
    async fn subscriptions(&mut self, address_id: i64) -> Result<Vec<String>>;
    /// Turns a folder into a `\Noselect` name (RFC 9051 §6.3.4) or back into a folder, with
    /// a new UIDVALIDITY; either way it loses its special use.
    async fn mailbox_set_noselect(
        &mut self,
        id: i64,
        noselect: bool,
        uidvalidity: i64,
    ) -> Result<()>;
    async fn mailbox_set_special_use(&mut self, id: i64, special_use: &str) -> Result<()>;
    /// Claims the messages below `upto` as \Recent for one session: returns the first UID
    /// that was still unclaimed (the session's messages from it on are \Recent).
    async fn mailbox_claim_recent(&mut self, id: i64, upto: i64) -> Result<i64>;
    async fn mailbox_stats(&mut self, id: i64) -> Result<MailboxStats>;
    /// Messages added or changed after `modseq` (RFC 7162), by UID.
    async fn messages_changed_since(
        &mut self,
        mailbox_id: i64,
        modseq: i64,
    ) -> Result<Vec<Message>>;
    /// UIDs expunged after `modseq`.
    async fn expunged_since(&mut self, mailbox_id: i64, modseq: i64) -> Result<Vec<i64>>;
    /// IMAP STORE from what the session saw: sets `writes` (UID, flags, keywords,
    /// the MODSEQ the caller saw the message at) under one new MODSEQ, provided that every one
    /// of them and every one of `unchanged` (UID, MODSEQ seen) is still at that MODSEQ — a
    /// message's MODSEQ changes with every change to it, and an expunged one has no row.
    /// On SQLite one round trip that also opens a pending savepoint, in place of a read
    /// under the write lock and then the write. Returns the new MODSEQ (0 without writes),
    /// or None when a message was not as seen: then whatever this call wrote must be undone
    /// (the caller's savepoint) and the change made from the stored state. On PostgreSQL
    /// always None, without writing.
    async fn messages_set_flags_if_current(
        &mut self,
        mailbox_id: i64,
        writes: &[(i64, i64, String, i64)],
        unchanged: &[(i64, i64)],
    ) -> Result<Option<i64>>;
    /// Sets flags and keywords of messages, all under one new MODSEQ, which is returned.
    async fn messages_set_flags(
        &mut self,
        mailbox_id: i64,
        changes: &[(i64, i64, String)],
    ) -> Result<i64>;
    /// Removes messages (recording them as expunged) under one new MODSEQ, which is returned.
    async fn messages_delete(&mut self, mailbox_id: i64, uids: &[i64]) -> Result<i64>;

    // -- delivery settings and state
    /// A settings document (JSON text) of `scope` ("address", "service", "global").
    async fn settings_get(
        &mut self,
        scope: &str,
        scope_id: i64,
        name: &str,
    ) -> Result<Option<String>>;
    /// Every settings document of the given scopes, in one statement (the delivery path
    /// reads an address's and its service's together): (scope, scope id, name, JSON text).
    async fn settings_all(
        &mut self,
        scopes: &[(&str, i64)],
    ) -> Result<Vec<(String, i64, String, String)>>;
    async fn settings_put(
        &mut self,
        scope: &str,
        scope_id: i64,
        name: &str,
        value: &str,
        now: i64,
    ) -> Result<()>;
    /// Writes a settings document only if none exists; the first writer wins even when
    /// several nodes race (the unique index decides, not a read before the write).
    async fn settings_put_new(
        &mut self,
        scope: &str,
        scope_id: i64,
        name: &str,
        value: &str,
        now: i64,
    ) -> Result<bool>;
    /// Ids of the mail services in maintenance (M9).
    async fn services_in_maintenance(&mut self) -> Result<Vec<i64>>;
    async fn settings_delete(&mut self, scope: &str, scope_id: i64, name: &str) -> Result<bool>;
    /// When `address_id` last answered `sender` automatically.
    async fn autoreply_sent_get(&mut self, address_id: i64, sender: &str) -> Result<Option<i64>>;
    async fn autoreply_sent_put(&mut self, address_id: i64, sender: &str, at: i64) -> Result<()>;
    /// Forgets whom `address_id` answered (keys starting with `prefix`); returns how many.
    async fn autoreply_sent_clear(&mut self, address_id: i64, prefix: &str) -> Result<i64>;
    async fn delivery_log_insert(
        &mut self,
        address_id: i64,
        kind: &str,
        detail: &str,
        now: i64,
    ) -> Result<()>;
    /// The newest entries first.
    async fn delivery_log_list(&mut self, address_id: i64, limit: i64) -> Result<Vec<DeliveryLog>>;

    // -- Bayes classifier and reports (F5)
    /// Counts of `tokens` in the store `scope_id` (0 = platform-wide, else an address id);
    /// tokens never seen are left out.
    async fn bayes_counts(&mut self, scope_id: i64, tokens: &[i64]) -> Result<Vec<TokenCount>>;
    /// (spam, ham) messages each store was trained with, in the order of `scope_ids`
    /// ((0, 0) for a store never trained), in one statement.
    async fn bayes_totals(&mut self, scope_ids: &[i64]) -> Result<Vec<(i64, i64)>>;
    /// Adds `spam`/`ham` (which may be negative, to un-train) to every token and the totals.
    async fn bayes_learn(
        &mut self,
        scope_id: i64,
        tokens: &[i64],
        spam: i64,
        ham: i64,
    ) -> Result<()>;
    /// What `address_id` trained the message `msg_key` as ("spam"/"ham").
    async fn bayes_trained_get(&mut self, address_id: i64, msg_key: &str)
    -> Result<Option<String>>;
    async fn bayes_trained_put(
        &mut self,
        address_id: i64,
        msg_key: &str,
        class: &str,
        at: i64,
    ) -> Result<()>;
    async fn report_insert(&mut self, r: &Report) -> Result<Report>;
    /// The newest first; `org_id` None = all organizations.
    async fn report_list(
        &mut self,
        org_id: Option<i64>,
        kind: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Report>>;

    // -- the spool / queue
    async fn queue_insert(
        &mut self,
        q: &NewQueueEntry,
        rcpts: &[NewQueueRcpt],
        now: i64,
    ) -> Result<i64>;
    /// Inserts an entry, optionally already claimed by a node until a time (`claim`), and
    /// returns it as [`Tx::queue_get`] and [`Tx::queue_rcpts`] would (the SMTP hand-off,
    /// performance: one statement per row, no claim or read-back after it).
    async fn queue_insert_returning(
        &mut self,
        q: &NewQueueEntry,
        rcpts: &[NewQueueRcpt],
        now: i64,
        claim: Option<(i64, &str)>,
    ) -> Result<(QueueEntry, Vec<QueueRcpt>)>;
    async fn queue_get(&mut self, id: i64) -> Result<Option<QueueEntry>>;
    async fn queue_list(&mut self) -> Result<Vec<QueueEntry>>;
    /// Entries whose next attempt is due and that no worker holds, oldest first.
    async fn queue_due(&mut self, now: i64, limit: i64) -> Result<Vec<QueueEntry>>;
    /// Claims a due entry for a worker of `node` until `lease_until`; false if another worker
    /// got it first. Scheduling the next attempt releases the claim.
    async fn queue_claim(
        &mut self,
        id: i64,
        now: i64,
        lease_until: i64,
        node: &str,
    ) -> Result<bool>;
    /// Releases every claim of `node` (it restarted: its workers are gone).
    async fn queue_release_node(&mut self, node: &str) -> Result<u64>;
    async fn queue_schedule(&mut self, id: i64, next_attempt_at: i64, attempts: i64) -> Result<()>;
    async fn queue_delete(&mut self, id: i64) -> Result<()>;
    async fn queue_rcpts(&mut self, queue_id: i64) -> Result<Vec<QueueRcpt>>;
    async fn queue_rcpt_set(
        &mut self,
        id: i64,
        status: &str,
        last_error: &str,
        now: i64,
    ) -> Result<()>;
    /// Whether any message or queue entry still refers to a blob.
    async fn blob_referenced(&mut self, blob_id: &str) -> Result<bool>;
    /// Small bodies kept in the store ([`inline_id`]); putting existing content again
    /// is a no-op.
    async fn inline_blob_put(&mut self, id: &str, data: &[u8]) -> Result<()>;
    /// The inline bodies among `ids` that exist, as (id, bytes), unverified.
    async fn inline_blobs_get(&mut self, ids: &[&str]) -> Result<InlineBodies>;
    /// Removes an inline body unless a message or queue entry still refers to it; true if
    /// removed.
    async fn inline_blob_delete_unused(&mut self, id: &str) -> Result<bool>;

    // -- DKIM keys (O2) and the sending log (O3)
    async fn dkim_insert(&mut self, k: &DkimKey, now: i64) -> Result<()>;
    async fn dkim_keys(&mut self, domain_id: i64) -> Result<Vec<DkimKey>>;
    /// Counts `recipients` sent by `address_id` at `now` and returns how many it sent after
    /// `since`, this message included. On PostgreSQL the address row is locked first, so
    /// that concurrent senders of one address count one after the other (SQLite's write
    /// transaction excludes them already): the caller decides the O3 rule on the sum and
    /// undoes the write when it refuses.
    async fn send_log_add(
        &mut self,
        address_id: i64,
        recipients: i64,
        now: i64,
        since: i64,
    ) -> Result<i64>;
    async fn send_log_sum(&mut self, address_id: i64, since: i64) -> Result<i64>;
}

/// Opens (and migrates) the metadata store named by `url`:
/// `sqlite:PATH` (PATH relative to `data_dir` unless absolute) or `postgres://…`.
pub async fn open(url: &str, data_dir: &Path) -> Result<Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(sql::postgres::open(url).await?))
    } else if let Some(path) = url.strip_prefix("sqlite:") {
        let path = path.trim_start_matches("//");
        if path.is_empty() {
            return Err(StoreError::Config("sqlite: URL without a file path".into()));
        }
        let path = data_dir.join(path);
        Ok(Arc::new(sql::sqlite::open(&path).await?))
    } else {
        Err(StoreError::Config(format!(
            "unsupported store URL {url:?}: use sqlite:FILE or postgres://USER@HOST/DB"
        )))
    }
}
