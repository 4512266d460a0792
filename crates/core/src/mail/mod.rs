//! The mail side of the service layer: mailboxes and their default folders (P5),
//! recipient resolution (F1), mailbox authentication and sending limits for submission
//! (P1, O3), the durable spool and local delivery, the operator's queue commands, DKIM keys and
//! the DNS records a customer publishes (O2, D1). Protocol code (SMTP now, IMAP/POP3 later)
//! calls these; the rules live here.

pub mod access;
pub mod bayes;
mod check;
mod deliver;
mod dns;
mod folders;
pub mod header_block;
pub(crate) mod index_cache;
mod mailbox;
mod plan;
mod queue;
mod routing;
pub mod settings;
pub mod srs;
pub(crate) mod submit;
mod training;

pub use access::{
    AppendRequest, Appended, Changes, FlagChange, FlagOp, MailboxChange, MessageFlags, Snapshot,
    StoreOutcome, folder_name, special_use,
};

/// The system flags as bits of `messages.flags` (RFC 9051 §2.3.2; the order of
/// `mailbox::SYSTEM_FLAGS`).
pub mod flag {
    pub const SEEN: i64 = 1;
    pub const ANSWERED: i64 = 2;
    pub const FLAGGED: i64 = 4;
    pub const DELETED: i64 = 8;
    pub const DRAFT: i64 = 16;
}
pub use check::StoreReport;
pub use deliver::{MessageSummary, SUMMARY_SUBJECT_CHARS, listing_text, summarize, written_day};
pub use dns::{DkimSigningKey, DnsRecord, ED25519, RSA};
pub use folders::DEFAULT_FOLDERS;
pub use mailbox::{FolderChange, MailboxView, MessageView};
pub use plan::{Committed, DeliveryContext, DeliveryPlan, FileAction, Outgoing, autoreply_key};
pub use queue::{INLINE_BODY_MAX, QueueRcptView, QueueView, SendCount, SpoolRequest};
pub use routing::{LocalRcpt, Rcpt, Via};
pub use submit::MailboxLogin;
pub use training::{BayesStats, Class};
