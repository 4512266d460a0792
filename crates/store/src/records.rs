//! Rows of the metadata store. Times are Unix seconds (UTC). These are storage records, not API
//! views: some carry secrets (password hashes) and must not be shown as they are.

use sqlx::FromRow;

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct Org {
    pub id: i64,
    pub name: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, FromRow)]
pub struct User {
    pub id: i64,
    pub login: String,
    pub password_hash: String,
    /// Platform operator: may act on every organization (the first account created on first run).
    pub is_operator: bool,
    pub created_at: i64,
    pub last_login_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub login: String,
    pub password_hash: String,
    pub is_operator: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct Membership {
    pub org_id: i64,
    pub org_name: String,
    pub user_id: i64,
    pub login: String,
    /// `legal`, `admin`, `collaborator` or `external` (parsed by core).
    pub role: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct Grant {
    pub user_id: i64,
    pub service_id: i64,
    pub domain: String,
    /// `use` or `manage`.
    pub level: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct Domain {
    pub id: i64,
    pub org_id: i64,
    pub name: String,
    pub created_at: i64,
    /// M2: when the organization proved control of the domain; `None` while pending.
    pub verified_at: Option<i64>,
    /// The token of the `postfach-verify=` TXT record that proves control.
    pub verify_token: String,
}

/// M1: an invitation of an account into an organization, waiting for the account to accept.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct Invitation {
    pub id: i64,
    pub org_id: i64,
    pub org_name: String,
    pub user_id: i64,
    pub login: String,
    pub role: String,
    /// Who invited (as the activity log names actors).
    pub invited_by: String,
    pub created_at: i64,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct MailService {
    pub id: i64,
    pub org_id: i64,
    pub org_name: String,
    pub domain_id: i64,
    pub domain: String,
    pub name: String,
    /// Tags, comma-separated, normalised by core.
    pub tags: String,
    pub offer: String,
    /// Number of addresses the service may hold.
    pub address_quota: i64,
    /// Override of the operator's "new addresses per 24 h" limit (None = operator default).
    pub new_address_limit: Option<i64>,
    pub maintenance: bool,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct NewService {
    pub org_id: i64,
    pub domain_id: i64,
    pub name: String,
    pub tags: String,
    pub offer: String,
    pub address_quota: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct Address {
    pub id: i64,
    pub service_id: i64,
    pub domain: String,
    pub local_part: String,
    pub password_hash: String,
    pub storage_quota_bytes: i64,
    pub storage_used_bytes: i64,
    /// Keep a local copy of forwarded mail (CSV column D: 0 = keep, 1 = delete).
    pub forward_keep_copy: bool,
    /// M11: what an invited mailbox user may change themselves.
    pub may_change_password: bool,
    pub may_change_autoresponder: bool,
    pub may_change_folders: bool,
    pub created_at: i64,
    pub last_login_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct NewAddress {
    pub service_id: i64,
    pub local_part: String,
    pub password_hash: String,
    pub storage_quota_bytes: i64,
    pub forward_keep_copy: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct Alias {
    pub id: i64,
    pub service_id: i64,
    pub domain: String,
    pub local_part: String,
    pub address_id: i64,
    /// Local part of the address the alias delivers to (same mail service).
    pub target_local_part: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct AuditEntry {
    pub id: i64,
    pub at: i64,
    /// Who: `user:LOGIN`, `cli:UNIXUSER`, `system`.
    pub actor: String,
    pub org_id: Option<i64>,
    /// What, as a stable dotted verb: `address.create`, `service.update`, …
    pub action: String,
    /// The object acted on (an address, a domain, an organization name…).
    pub target: String,
    /// JSON object with details; never secrets.
    pub detail: String,
}

#[derive(Debug, Clone)]
pub struct NewAudit {
    pub actor: String,
    pub org_id: Option<i64>,
    pub action: String,
    pub target: String,
    pub detail: String,
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub org_id: Option<i64>,
    pub actor: Option<String>,
    /// Entries with an id below this (paging backwards); None = newest.
    pub before_id: Option<i64>,
    pub limit: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ApiToken {
    pub id: i64,
    pub user_id: i64,
    /// `session` (from a login) or `apikey` (created by an operator).
    pub kind: String,
    pub name: String,
    pub token_hash: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    /// What an API key may reach (JSON, read by core); empty: the account's rights.
    pub scope: String,
}

#[derive(Debug, Clone)]
pub struct NewToken {
    pub user_id: i64,
    pub kind: String,
    pub name: String,
    pub token_hash: String,
    pub expires_at: Option<i64>,
    pub scope: String,
}

/// An IMAP mailbox (folder) of one address.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct Mailbox {
    pub id: i64,
    pub address_id: i64,
    pub name: String,
    pub special_use: String,
    pub subscribed: bool,
    pub uidvalidity: i64,
    pub uidnext: i64,
    pub highestmodseq: i64,
    pub created_at: i64,
    /// First UID not yet claimed as \Recent by a session (IMAP4rev1).
    pub recent_uid: i64,
    /// A name kept only as the superior of other folders (RFC 9051 §6.3.4 `\Noselect`).
    pub noselect: bool,
}

/// Counters of one mailbox (IMAP STATUS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, FromRow)]
pub struct MailboxStats {
    pub messages: i64,
    pub unseen: i64,
    pub size: i64,
}

#[derive(Debug, Clone)]
pub struct NewMailbox {
    pub address_id: i64,
    pub name: String,
    pub special_use: String,
    pub uidvalidity: i64,
}

/// One message in one mailbox; the body is the blob `blob_id`.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct Message {
    pub id: i64,
    pub mailbox_id: i64,
    pub uid: i64,
    pub blob_id: String,
    pub size: i64,
    pub internal_date: i64,
    pub flags: i64,
    pub keywords: String,
    pub modseq: i64,
    pub header_from: String,
    pub subject: String,
    pub sent_at: Option<i64>,
    pub message_id: String,
    /// The day of the `Date:` field as written (days since 1970-01-01, its zone ignored).
    pub sent_day: Option<i64>,
}

/// An address's storage after a write changed it: the facts the quota rule (M3, in
/// `postfach_core::rules`) is decided on, inside the transaction that wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromRow)]
pub struct Usage {
    /// Bytes in use, the write included.
    pub used: i64,
    pub quota: i64,
}

/// What [`crate::Tx::message_deliver`] stored, and the usage it left.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct Delivered {
    #[sqlx(flatten)]
    pub message: Message,
    #[sqlx(flatten)]
    pub usage: Usage,
}

#[derive(Debug, Clone, Default)]
pub struct NewMessage {
    pub blob_id: String,
    pub size: i64,
    pub internal_date: i64,
    pub flags: i64,
    pub keywords: String,
    pub header_from: String,
    pub subject: String,
    pub sent_at: Option<i64>,
    pub message_id: String,
    /// The day of the `Date:` field as written (days since 1970-01-01, its zone ignored).
    pub sent_day: Option<i64>,
}

/// A spooled message awaiting delivery to some of its recipients.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct QueueEntry {
    pub id: i64,
    pub blob_id: String,
    pub size: i64,
    pub mail_from: String,
    pub source: String,
    pub sender_address_id: Option<i64>,
    pub env_id: Option<String>,
    pub ret_full: bool,
    pub received_at: i64,
    pub expires_at: i64,
    pub next_attempt_at: i64,
    pub attempts: i64,
}

#[derive(Debug, Clone)]
pub struct NewQueueEntry {
    pub blob_id: String,
    pub size: i64,
    pub mail_from: String,
    pub source: String,
    pub sender_address_id: Option<i64>,
    pub env_id: Option<String>,
    pub ret_full: bool,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct QueueRcpt {
    pub id: i64,
    pub queue_id: i64,
    pub rcpt: String,
    pub address_id: Option<i64>,
    pub via: String,
    pub domain: String,
    pub is_local: bool,
    pub status: String,
    pub notify: i64,
    pub orcpt: Option<String>,
    pub last_error: String,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Default)]
pub struct NewQueueRcpt {
    pub rcpt: String,
    pub address_id: Option<i64>,
    pub via: String,
    pub domain: String,
    pub is_local: bool,
    pub notify: i64,
    pub orcpt: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct DkimKey {
    pub id: i64,
    pub domain_id: i64,
    pub selector: String,
    pub algorithm: String,
    pub private_key: String,
    pub public_key: String,
    pub created_at: i64,
}

/// Something the delivery pipeline did that its owner should see (Sieve errors, loops).
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct DeliveryLog {
    pub id: i64,
    pub address_id: i64,
    pub at: i64,
    pub kind: String,
    pub detail: String,
}

/// Counts of one token in one Bayes store (F5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromRow)]
pub struct TokenCount {
    pub token: i64,
    pub spam: i64,
    pub ham: i64,
}

/// A message a user reported as spam or phishing, kept for the operator (F5).
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct Report {
    pub id: i64,
    pub org_id: i64,
    pub address: String,
    pub kind: String,
    pub mail_from: String,
    pub subject: String,
    pub message_id: String,
    /// The reported message's header block (bounded), for tracing where it came from.
    pub headers: String,
    pub reported_by: String,
    pub at: i64,
}
