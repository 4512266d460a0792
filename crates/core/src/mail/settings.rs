//! The delivery settings of an address and of a mail service: Sieve scripts (F9,
//! P7), autoresponders (F10), the spam/promotions switches and allow/block lists (F5–F7),
//! external-mail marking (F8), signatures (M8). Each is one JSON document in the store's
//! `settings` table; this module owns their shape, their defaults and their limits, so the
//! CLI, the API, ManageSieve and the delivery pipeline all read the same thing.

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

use postfach_store::Tx;

use crate::error::{Error, Result};
use crate::validate;

/// Where a document belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Address(i64),
    Service(i64),
}

impl Scope {
    fn parts(self) -> (&'static str, i64) {
        match self {
            Scope::Address(id) => ("address", id),
            Scope::Service(id) => ("service", id),
        }
    }
}

/// A settings document: its name in the store and its default when none is stored.
pub trait Document: Serialize + DeserializeOwned + Default {
    const NAME: &'static str;
}

pub(crate) async fn load<D: Document>(tx: &mut dyn Tx, scope: Scope) -> Result<D> {
    let (s, id) = scope.parts();
    let text = tx.settings_get(s, id, D::NAME).await?;
    Ok(parse(scope, text.as_deref()))
}

fn parse<D: Document>(scope: Scope, text: Option<&str>) -> D {
    let Some(text) = text else {
        return D::default();
    };
    // A document the current code cannot read (written by a newer version, or damaged) must
    // not stop delivery: it reads as the default and the error is logged.
    serde_json::from_str(text).unwrap_or_else(|e| {
        let (s, id) = scope.parts();
        tracing::error!(scope = s, id, name = D::NAME, error = %e, "unreadable settings document");
        D::default()
    })
}

/// Every document of one scope, read with one query: the delivery pipeline needs most of
/// them for each message (performance: six queries became two).
pub(crate) struct Documents {
    scope: Scope,
    docs: Vec<(String, String)>,
}

impl Documents {
    /// The documents of several scopes, read in one statement.
    pub(crate) async fn load_many<const N: usize>(
        tx: &mut dyn Tx,
        scopes: [Scope; N],
    ) -> Result<[Self; N]> {
        let parts = scopes.map(Scope::parts);
        let rows = tx.settings_all(&parts).await?;
        Ok(scopes.map(|scope| {
            let (s, id) = scope.parts();
            Documents {
                scope,
                docs: rows
                    .iter()
                    .filter(|r| r.0 == s && r.1 == id)
                    .map(|r| (r.2.clone(), r.3.clone()))
                    .collect(),
            }
        }))
    }

    pub(crate) fn get<D: Document>(&self) -> D {
        let text = self
            .docs
            .iter()
            .find(|(name, _)| name == D::NAME)
            .map(|(_, text)| text.as_str());
        parse(self.scope, text)
    }
}

pub(crate) async fn save<D: Document>(
    tx: &mut dyn Tx,
    scope: Scope,
    doc: &D,
    now: i64,
) -> Result<()> {
    let (s, id) = scope.parts();
    let text = serde_json::to_string(doc).map_err(|e| Error::Internal(e.to_string()))?;
    tx.settings_put(s, id, D::NAME, &text, now).await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Sieve (F9, P7)

/// Largest script accepted (ManageSieve advertises it as MAXSCRIPTSIZE… via HAVESPACE).
pub const MAX_SCRIPT_BYTES: usize = 64 * 1024;
/// Scripts one address (or service) may keep.
pub const MAX_SCRIPTS: usize = 20;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct SieveScript {
    pub name: String,
    pub source: String,
    /// The one script that runs at delivery (RFC 5804 §1.2: at most one is active).
    pub active: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SieveScripts {
    pub scripts: Vec<SieveScript>,
}

impl Document for SieveScripts {
    const NAME: &'static str = "sieve";
}

impl SieveScripts {
    pub fn active(&self) -> Option<&SieveScript> {
        self.scripts.iter().find(|s| s.active)
    }
    pub fn get(&self, name: &str) -> Option<&SieveScript> {
        self.scripts.iter().find(|s| s.name == name)
    }
}

/// RFC 5804 §1.6: script names are non-empty UTF-8 without control characters; we also keep
/// them short and free of `/` so they can name files in exports.
pub fn script_name(name: &str) -> Result<String> {
    let ok = !name.is_empty()
        && name.chars().count() <= 128
        && !name.chars().any(|c| c.is_control() || c == '/');
    if ok {
        Ok(name.to_string())
    } else {
        Err(Error::invalid(
            "script name",
            format!("{name:?}: use 1 to 128 characters, no control characters and no '/'"),
        ))
    }
}

/// Compiles a script with the same compiler delivery uses; the error names its line and
/// column (P7: CHECKSCRIPT and PUTSCRIPT report where the mistake is).
pub fn check_sieve(source: &str) -> Result<sieve::Sieve> {
    if source.len() > MAX_SCRIPT_BYTES {
        return Err(Error::invalid(
            "Sieve script",
            format!("the script is larger than {MAX_SCRIPT_BYTES} bytes"),
        ));
    }
    sieve::Compiler::new()
        .with_max_script_size(MAX_SCRIPT_BYTES)
        .compile(source.as_bytes())
        .map_err(|e| {
            // sieve-rs's message ends with "at line N, column M." already.
            Error::invalid("Sieve script", e.to_string())
        })
}

// ---------------------------------------------------------------------------------------------
// Autoresponder (F10)

pub const MAX_AUTOREPLIES: usize = 20;
pub const MAX_AUTOREPLY_MESSAGE: usize = 16 * 1024;
/// The seed's rule: one reply per sender, again only after 7 days.
pub const AUTOREPLY_INTERVAL: i64 = 7 * 24 * 3600;

pub const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct Autoreply {
    pub name: String,
    /// Empty: "Auto: " and the original subject.
    #[serde(default)]
    pub subject: String,
    pub message: String,
    /// RFC 3339; replies start then. Its UTC offset is the time zone of `weekdays`.
    #[serde(default)]
    pub start: Option<String>,
    /// RFC 3339; no replies after it.
    #[serde(default)]
    pub end: Option<String>,
    /// Replies only on these days (`mon` … `sun`); empty means every day.
    #[serde(default)]
    pub weekdays: Vec<String>,
    /// Another of the user's own addresses (an alias) to send the reply from.
    #[serde(default)]
    pub from: Option<String>,
    /// Senders that never get a reply: `a@x.org` or `@x.org`.
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub active: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Autoreplies {
    pub list: Vec<Autoreply>,
}

impl Document for Autoreplies {
    const NAME: &'static str = "autoreplies";
}

impl Autoreplies {
    pub fn active(&self) -> Option<&Autoreply> {
        self.list.iter().find(|a| a.active)
    }
}

pub(crate) fn parse_time(field: &'static str, s: &str) -> Result<OffsetDateTime> {
    OffsetDateTime::parse(s.trim(), &Rfc3339).map_err(|_| {
        Error::invalid(
            field,
            format!("{s:?} is not an RFC 3339 date-time like 2026-12-24T08:00:00+01:00"),
        )
    })
}

impl Autoreply {
    /// Whether the schedule lets it answer at `now` (Unix seconds): after `start`, before
    /// `end`, on one of `weekdays` in the time zone of `start` (UTC without one).
    pub fn in_schedule(&self, now: i64) -> bool {
        let start = self
            .start
            .as_deref()
            .and_then(|s| parse_time("start", s).ok());
        let end = self.end.as_deref().and_then(|s| parse_time("end", s).ok());
        if start.is_some_and(|s| now < s.unix_timestamp()) {
            return false;
        }
        if end.is_some_and(|e| now >= e.unix_timestamp()) {
            return false;
        }
        if self.weekdays.is_empty() {
            return true;
        }
        let offset = start.map(|s| s.offset()).unwrap_or(time::UtcOffset::UTC);
        let Ok(at) = OffsetDateTime::from_unix_timestamp(now) else {
            return false;
        };
        let day = at.to_offset(offset).weekday().number_days_from_monday() as usize;
        self.weekdays.iter().any(|w| w == WEEKDAYS[day])
    }

    /// Whether `sender` is on the exclusion list (exact address or `@domain`).
    pub fn excludes(&self, sender: &str) -> bool {
        list_matches(&self.exclude, sender)
    }
}

// ---------------------------------------------------------------------------------------------
// Filters and lists (F5–F8)

pub const MAX_LIST_ENTRIES: usize = 1000;
/// Score from which a message is spam unless the service sets another threshold.
pub const DEFAULT_SPAM_THRESHOLD: f64 = 5.0;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AddressFilters {
    /// F5: on by default.
    #[serde(default = "yes")]
    pub spam: bool,
    /// F6: opt-in.
    #[serde(default)]
    pub promotions: bool,
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub block: Vec<String>,
}

fn yes() -> bool {
    true
}

impl Default for AddressFilters {
    fn default() -> Self {
        AddressFilters {
            spam: true,
            promotions: false,
            allow: Vec::new(),
            block: Vec::new(),
        }
    }
}

impl Document for AddressFilters {
    const NAME: &'static str = "filters";
}

/// What a block-list hit does (F7).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BlockAction {
    /// Accept and file into Spam (the seed's behaviour).
    #[default]
    Spam,
    /// Refuse at RCPT time with 550 (the sender hears of it; nothing is stored).
    Refuse,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServiceFilters {
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub block: Vec<String>,
    #[serde(default)]
    pub block_action: BlockAction,
    /// F8: opt-in per mail service.
    #[serde(default)]
    pub external_marking: bool,
    #[serde(default = "default_threshold")]
    pub spam_threshold: f64,
    /// F12: keep the winmail.dat part beside the files unpacked from it.
    #[serde(default = "yes")]
    pub tnef_keep_original: bool,
}

fn default_threshold() -> f64 {
    DEFAULT_SPAM_THRESHOLD
}

impl Default for ServiceFilters {
    fn default() -> Self {
        ServiceFilters {
            allow: Vec::new(),
            block: Vec::new(),
            block_action: BlockAction::Spam,
            external_marking: false,
            spam_threshold: DEFAULT_SPAM_THRESHOLD,
            tnef_keep_original: true,
        }
    }
}

impl Document for ServiceFilters {
    const NAME: &'static str = "filters";
}

/// A list entry: `name@domain` or `@domain`, in canonical form.
pub fn list_entry(input: &str) -> Result<String> {
    let input = input.trim();
    if let Some(d) = input.strip_prefix('@') {
        let d = validate::domain(d).map_err(|_| {
            Error::invalid(
                "list entry",
                format!("{input:?} is not a domain like @example.com"),
            )
        })?;
        return Ok(format!("@{d}"));
    }
    validate::external_address(input, "list entry").map(|a| a.to_lowercase())
}

/// Whether `sender` matches an entry of `list` (`a@x.org` exactly or `@x.org` for the whole
/// domain; case does not matter).
pub fn list_matches(list: &[String], sender: &str) -> bool {
    let sender = sender.trim().to_lowercase();
    let domain = sender.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
    list.iter().any(|e| {
        let e = e.to_lowercase();
        match e.strip_prefix('@') {
            Some(d) => !domain.is_empty() && d == domain,
            None => e == sender,
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Signatures (M8)

pub const MAX_SIGNATURE: usize = 8 * 1024;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct Signature {
    pub text: String,
}

impl Document for Signature {
    const NAME: &'static str = "signature";
}

// ---------------------------------------------------------------------------------------------
// Templates (M8)

/// Templates a mail service keeps at most.
pub const MAX_TEMPLATES: usize = 20;

/// Delivery defaults for addresses: applied to every new address of the service when
/// `default` is set, or to chosen (or all) addresses on request. Unset fields leave an
/// address's own setting alone.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Template {
    pub name: String,
    /// F5: the spam filter on or off.
    #[serde(default)]
    pub spam: Option<bool>,
    /// F6: Promotions/SocialNetworks sorting.
    #[serde(default)]
    pub promotions: Option<bool>,
    /// M8: the address's signature.
    #[serde(default)]
    pub signature: Option<String>,
    /// F10: an autoresponder saved into the address's list (replacing one of the same name).
    #[serde(default)]
    pub autoreply: Option<Autoreply>,
    /// Applied to every address created in the service (one template at most).
    #[serde(default)]
    pub default: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Templates {
    pub list: Vec<Template>,
}

impl Document for Templates {
    const NAME: &'static str = "templates";
}

impl Templates {
    pub fn get(&self, name: &str) -> Option<&Template> {
        self.list.iter().find(|t| t.name == name)
    }
    pub fn default_template(&self) -> Option<&Template> {
        self.list.iter().find(|t| t.default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_match_exact_and_domain_entries() {
        let l = vec!["boss@x.org".to_string(), "@spam.example".to_string()];
        assert!(list_matches(&l, "Boss@X.org"));
        assert!(list_matches(&l, "anyone@spam.example"));
        assert!(!list_matches(&l, "anyone@sub.spam.example"));
        assert!(!list_matches(&l, "other@x.org"));
        assert!(!list_matches(&l, ""));
        assert_eq!(list_entry("@Example.COM").unwrap(), "@example.com");
        assert_eq!(list_entry(" A@Example.com ").unwrap(), "a@example.com");
        assert!(list_entry("@").is_err());
        assert!(list_entry("nope").is_err());
    }

    #[test]
    fn schedule_and_weekdays() {
        // 2026-11-23 is a Monday.
        let monday_noon = OffsetDateTime::parse("2026-11-23T12:00:00Z", &Rfc3339)
            .unwrap()
            .unix_timestamp();
        let mut a = Autoreply {
            start: Some("2026-11-23T10:00:00+01:00".into()),
            end: Some("2026-11-30T00:00:00+01:00".into()),
            ..Default::default()
        };
        assert!(a.in_schedule(monday_noon));
        assert!(!a.in_schedule(monday_noon - 3 * 3600 - 1)); // 10:00 local is 09:00 UTC
        assert!(a.in_schedule(monday_noon - 3 * 3600));
        assert!(!a.in_schedule(monday_noon + 7 * 86400));
        a.weekdays = vec!["tue".into()];
        assert!(!a.in_schedule(monday_noon));
        assert!(a.in_schedule(monday_noon + 86400));
        // 23:30 UTC on Monday is already Tuesday at +01:00.
        assert!(a.in_schedule(monday_noon + 11 * 3600 + 1800));
    }

    #[test]
    fn sieve_errors_name_the_line() {
        assert!(check_sieve("require \"fileinto\";\nfileinto \"x\";\n").is_ok());
        let e = check_sieve("require \"fileinto\";\n\nfileinto \"x\"\nkeep;\n").unwrap_err();
        assert!(e.to_string().contains("line 4"), "{e}");
        // Said once.
        assert_eq!(e.to_string().matches("line 4").count(), 1, "{e}");
    }
}
