//! Errors of the service layer. Each has a stable machine code (used by the JSON API and the
//! CLI's `--json` output) and a one-line human message (what the CLI prints, what the API puts in
//! `message`). Front ends map the *kind* to their status (HTTP, exit code); they never re-word it.

use postfach_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Malformed input: a name, an address, a number out of range.
    #[error("invalid {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("password too weak: {0}")]
    WeakPassword(String),
    #[error("{kind} {name} not found")]
    NotFound { kind: &'static str, name: String },
    #[error("{kind} {name} already exists")]
    Duplicate { kind: &'static str, name: String },
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Unauthenticated(String),
    /// S4: too many failed logins from this source; retry after `retry_after` seconds.
    #[error("too many failed logins; try again in {retry_after} seconds")]
    Throttled { retry_after: i64 },
    /// M2: the mail service holds as many addresses as its quota allows.
    #[error(
        "address quota of mail service {domain} reached ({quota} of {quota} addresses in use); raise the quota or change the offer"
    )]
    QuotaExceeded { domain: String, quota: i64 },
    /// M6: too many addresses created in the last 24 hours.
    #[error(
        "limit of {limit} new addresses per 24 hours reached for mail service {domain}; try again later or ask the operator to lift the limit"
    )]
    CreationLimit { domain: String, limit: i64 },
    /// M5: no `catchall` address on offers that exclude it (Starter).
    #[error(
        "a catchall address is not available on the {offer} offer of mail service {domain}; change the offer first"
    )]
    CatchallNotAvailable { domain: String, offer: String },
    /// M3: addresses cannot be renamed.
    #[error(
        "an address cannot be renamed; add {new} as an alias of {address} instead (postfach alias add {new} --to {address}), or create {new} and move the mail"
    )]
    RenameNotSupported { address: String, new: String },
    /// O3: the address has sent to as many recipients in the last 24 hours as its offer allows.
    #[error("Daily sending limit reached ({limit} recipients per 24 hours)")]
    SendingLimit { limit: i64 },
    /// A mailbox would exceed its storage quota (IMAP `NO [OVERQUOTA]`, RFC 9208).
    #[error("{0}")]
    OverQuota(String),
    /// The service is temporarily unavailable (M9 maintenance mode).
    #[error("{0}")]
    Unavailable(String),
    /// Any other rule that refuses a change in the current state (e.g. a downgrade that would
    /// leave more addresses than the new offer allows).
    #[error("{0}")]
    Conflict(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Stable machine-readable code; part of the API contract, never change an existing one.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Invalid { .. } => "invalid_input",
            Error::WeakPassword(_) => "weak_password",
            Error::NotFound { .. } => "not_found",
            Error::Duplicate { .. } => "already_exists",
            Error::Forbidden(_) => "forbidden",
            Error::Unauthenticated(_) => "unauthenticated",
            Error::Throttled { .. } => "too_many_attempts",
            Error::QuotaExceeded { .. } => "quota_exceeded",
            Error::CreationLimit { .. } => "creation_limit",
            Error::CatchallNotAvailable { .. } => "catchall_not_available",
            Error::RenameNotSupported { .. } => "rename_not_supported",
            Error::OverQuota(_) => "over_quota",
            Error::SendingLimit { .. } => "sending_limit",
            Error::Unavailable(_) => "unavailable",
            Error::Conflict(_) => "conflict",
            Error::Internal(_) => "internal",
        }
    }

    /// The human message as a protocol reply shows it: a sentence, first letter upper case.
    pub fn sentence(&self) -> String {
        let text = self.to_string();
        let mut chars = text.chars();
        match chars.next() {
            Some(first) => first.to_uppercase().chain(chars).collect(),
            None => text,
        }
    }

    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Error::Invalid {
            field,
            message: message.into(),
        }
    }

    pub(crate) fn not_found(kind: &'static str, name: impl Into<String>) -> Self {
        Error::NotFound {
            kind,
            name: name.into(),
        }
    }

    pub(crate) fn duplicate(kind: &'static str, name: impl Into<String>) -> Self {
        Error::Duplicate {
            kind,
            name: name.into(),
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store error");
        Error::Internal(e.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
