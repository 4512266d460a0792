//! The vocabulary of the Manager (roles, grant levels) and the views the service layer returns
//! to its front ends (CLI, JSON API, web UI). Views never carry secrets.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{Error, Result};

/// M1: a user's role in one organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Legal representative: everything, including appointing other legal representatives.
    Legal,
    /// Administrator: every product of the organization.
    Admin,
    /// Collaborator: only the products granted to them.
    Collaborator,
    /// External user (restricted rights): only the products granted to them.
    External,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Legal => "legal",
            Role::Admin => "admin",
            Role::Collaborator => "collaborator",
            Role::External => "external",
        }
    }

    pub fn parse(s: &str) -> Result<Role> {
        match s.trim().to_ascii_lowercase().as_str() {
            "legal" | "legal-representative" | "legal_representative" => Ok(Role::Legal),
            "admin" | "administrator" => Ok(Role::Admin),
            "collaborator" => Ok(Role::Collaborator),
            "external" => Ok(Role::External),
            other => Err(Error::invalid(
                "role",
                format!("{other:?}: use legal, admin, collaborator or external"),
            )),
        }
    }

    /// Legal representatives and administrators see and manage every product (M1).
    pub fn manages_everything(self) -> bool {
        matches!(self, Role::Legal | Role::Admin)
    }
}

/// M1: what a product grant allows on one mail service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GrantLevel {
    /// See the service and its addresses.
    Use,
    /// Also create, change and delete addresses and aliases, import and export.
    Manage,
}

impl GrantLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            GrantLevel::Use => "use",
            GrantLevel::Manage => "manage",
        }
    }

    pub fn parse(s: &str) -> Result<GrantLevel> {
        match s.trim().to_ascii_lowercase().as_str() {
            "use" => Ok(GrantLevel::Use),
            "manage" => Ok(GrantLevel::Manage),
            other => Err(Error::invalid(
                "grant level",
                format!("{other:?}: use 'use' or 'manage'"),
            )),
        }
    }
}

/// Unix seconds as RFC 3339 UTC (`2026-11-23T18:51:00Z`).
pub fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|dt| {
            dt.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrgView {
    pub name: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MembershipView {
    pub org: String,
    pub role: Role,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GrantView {
    /// Domain of the mail service.
    pub service: String,
    pub level: GrantLevel,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserView {
    pub login: String,
    /// Platform operator (may manage every organization).
    pub is_operator: bool,
    pub memberships: Vec<MembershipView>,
    pub grants: Vec<GrantView>,
    pub created_at: String,
    pub last_login_at: Option<String>,
}

/// A newly created address, with the generated mail password if none was given (shown
/// once, never stored in clear).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NewAddressView {
    /// The address as [`AddressView`] shows it (its fields, flattened into this object).
    #[serde(flatten)]
    pub address: AddressView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generated_password: Option<String>,
}

/// A newly created user, with the generated password if none was given (shown once).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NewUserView {
    pub user: UserView,
    pub generated_password: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DomainView {
    pub name: String,
    /// The name in Unicode, when it is an internationalised domain name.
    pub unicode: String,
    pub org: String,
    /// Domain of the mail service bound to it, if any.
    pub mail_service: Option<String>,
    pub created_at: String,
    /// M2: `verified` once the organization proved control of the domain, else `pending`
    /// (a pending domain can have no mail service: it neither receives nor sends).
    pub status: DomainStatus,
    pub verified_at: Option<String>,
    /// While pending: the TXT record that proves control, to publish at the domain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<crate::mail::DnsRecord>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DomainStatus {
    Pending,
    Verified,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ServiceView {
    /// The domain the service is bound to; it identifies the service.
    pub domain: String,
    /// Display name (renamable).
    pub name: String,
    pub org: String,
    pub tags: Vec<String>,
    pub offer: String,
    /// Number of addresses the service may hold.
    pub address_quota: i64,
    pub addresses_used: i64,
    /// Messages per address per 24 h (O3), from the offer.
    pub daily_send_limit: i64,
    /// Whether the offer allows a catchall address (M5).
    pub catchall_allowed: bool,
    /// New addresses allowed per rolling 24 h (M6).
    pub new_address_limit: i64,
    /// M9: mail is received, but IMAP/POP3/webmail access is refused.
    pub maintenance: bool,
    pub created_at: String,
}

/// One folder of an address and the special role it plays (P5): `\\Drafts`, `\\Sent`,
/// `\\Trash`, `\\Archive`, `\\Junk`, or "" for none.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FolderRoleView {
    pub folder: String,
    pub role: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AddressView {
    pub address: String,
    pub local_part: String,
    pub domain: String,
    pub is_catchall: bool,
    pub aliases: Vec<String>,
    pub forward_to: Vec<String>,
    /// Keep a copy in the mailbox when forwarding.
    pub forward_keep_copy: bool,
    pub storage_used_bytes: i64,
    pub storage_quota_bytes: i64,
    /// M11: what the mailbox user may change themselves.
    pub may_change_password: bool,
    pub may_change_autoresponder: bool,
    pub may_change_folders: bool,
    pub created_at: String,
    pub last_login_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AliasView {
    pub alias: String,
    /// The address that receives the alias's mail.
    pub target: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditView {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub org: Option<String>,
    pub action: String,
    pub target: String,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiKeyView {
    pub id: i64,
    pub name: String,
    pub user: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    /// M1: what the key may reach on top of the account's rights.
    pub scope: crate::rules::m1_grants_and_roles::KeyScope,
}

/// A new API key or session: the token is shown once and never stored in clear.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TokenView {
    pub token: String,
    pub user: String,
    pub expires_at: Option<String>,
}

/// M6: outcome of one CSV row.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImportRow {
    /// Line number in the file (the header is line 1).
    pub line: usize,
    pub local_part: String,
    /// `created` or `refused`.
    pub status: String,
    /// Error code when refused (same codes as the API).
    pub code: Option<String>,
    pub message: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImportReport {
    pub service: String,
    pub created: usize,
    pub refused: usize,
    pub rows: Vec<ImportRow>,
}
