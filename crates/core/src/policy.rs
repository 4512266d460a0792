//! The operator's policy: offers (M2, O3), limits (M6), password rules (M3/S1), sessions.
//! Deserialised from the `[offers.*]`, `[limits]`, `[passwords]` and `[api]` sections of
//! `postfach.toml`; every field has the default the product documents.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One offer of a mail service. The offer fixes the address quota range and the daily sending
/// limit of every address (seed: Starter = 1 address, 100 mails / 24 h; 5 addresses and more =
/// 1440 / 24 h).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Offer {
    /// Smallest (and default) address quota of a service on this offer.
    pub min_addresses: i64,
    /// Largest address quota; absent = no upper bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_addresses: Option<i64>,
    /// O3: messages per address per rolling 24 h, every recipient counted.
    pub daily_send_limit: i64,
    /// M5: whether the generic `catchall` address may be created.
    pub catchall: bool,
    /// Default storage quota of a new address, in MiB.
    pub storage_per_address_mib: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// M6: new addresses per mail service per rolling 24 h (the seed's 50).
    pub new_addresses_per_day: i64,
    /// Upper bound on the rows of one CSV import (bad-input guard).
    pub csv_max_rows: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            new_addresses_per_day: 50,
            csv_max_rows: 10_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordRules {
    /// Minimum length (characters) of a mail or Manager password.
    pub min_length: usize,
}

impl Default for PasswordRules {
    fn default() -> Self {
        PasswordRules { min_length: 10 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiPolicy {
    /// Lifetime of a login session token, in hours.
    pub session_hours: i64,
}

impl Default for ApiPolicy {
    fn default() -> Self {
        ApiPolicy { session_hours: 12 }
    }
}

/// What the platform publishes about itself: the facts behind the DNS records a customer
/// must set (D1) and the client settings (P6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// The mail server's name (MX target, SMTP greeting).
    pub hostname: String,
    /// Where mail to `postmaster` goes when nobody nearer takes it (RFC 5321 §4.5.1); None:
    /// the platform operators.
    pub postmaster: Option<String>,
    /// An SPF record of the operator to include (`include:…`); None = `mx`.
    pub spf_include: Option<String>,
    /// DMARC policy recommended for customer domains (`none`, `quarantine`, `reject`).
    pub dmarc_policy: String,
    /// Ports clients use (RFC 6186 SRV records).
    pub submission_port: u16,
    pub submissions_port: u16,
    pub imaps_port: u16,
    pub pop3s_port: u16,
}

impl Default for Platform {
    fn default() -> Self {
        Platform {
            hostname: "localhost".into(),
            postmaster: None,
            spf_include: None,
            dmarc_policy: "quarantine".into(),
            submission_port: 587,
            submissions_port: 465,
            imaps_port: 993,
            pop3s_port: 995,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub offers: BTreeMap<String, Offer>,
    pub limits: Limits,
    pub passwords: PasswordRules,
    pub api: ApiPolicy,
    pub platform: Platform,
}

pub fn default_offers() -> BTreeMap<String, Offer> {
    BTreeMap::from([
        (
            "starter".to_string(),
            Offer {
                min_addresses: 1,
                max_addresses: Some(1),
                daily_send_limit: 100,
                catchall: false,
                storage_per_address_mib: 1024,
            },
        ),
        (
            "standard".to_string(),
            Offer {
                min_addresses: 5,
                max_addresses: None,
                daily_send_limit: 1440,
                catchall: true,
                storage_per_address_mib: 20 * 1024,
            },
        ),
        (
            "pro".to_string(),
            Offer {
                min_addresses: 5,
                max_addresses: None,
                daily_send_limit: 1440,
                catchall: true,
                storage_per_address_mib: 50 * 1024,
            },
        ),
    ])
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            offers: default_offers(),
            limits: Limits::default(),
            passwords: PasswordRules::default(),
            api: ApiPolicy::default(),
            platform: Platform::default(),
        }
    }
}

impl Policy {
    /// Checks the policy for contradictions; the message names the offending option.
    pub fn validate(&self) -> Result<(), String> {
        if self.offers.is_empty() {
            return Err("offers: at least one offer must be defined".into());
        }
        for (name, o) in &self.offers {
            let valid_name = !name.is_empty()
                && name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !valid_name {
                return Err(format!(
                    "offers.{name}: offer names use lower-case letters, digits, '-' and '_'"
                ));
            }
            if o.min_addresses < 1 {
                return Err(format!("offers.{name}.min_addresses must be at least 1"));
            }
            if let Some(max) = o.max_addresses
                && max < o.min_addresses
            {
                return Err(format!(
                    "offers.{name}.max_addresses ({max}) is below min_addresses ({})",
                    o.min_addresses
                ));
            }
            if o.daily_send_limit < 0 {
                return Err(format!(
                    "offers.{name}.daily_send_limit must not be negative"
                ));
            }
            if o.storage_per_address_mib < 1 {
                return Err(format!(
                    "offers.{name}.storage_per_address_mib must be at least 1"
                ));
            }
        }
        if self.limits.new_addresses_per_day < 1 {
            return Err("limits.new_addresses_per_day must be at least 1".into());
        }
        if self.limits.csv_max_rows < 1 {
            return Err("limits.csv_max_rows must be at least 1".into());
        }
        if self.passwords.min_length < 8 {
            return Err("passwords.min_length must be at least 8".into());
        }
        if self.api.session_hours < 1 {
            return Err("api.session_hours must be at least 1".into());
        }
        Ok(())
    }
}
