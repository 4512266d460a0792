//! Postfach's service layer (DESIGN.md "One service layer"): the directory of the Manager —
//! organizations, user accounts and roles, product grants, domains, mail services, addresses,
//! aliases, catchall, CSV import/export, API credentials — and every rule about them (PRODUCT.md
//! M1–M7, M9, M11, M12). The CLI, the JSON API and the web UI only parse input and call
//! [`Directory`]; authorization is decided here, whatever front end calls.

mod access;
pub mod csvio;
pub mod error;
mod group_commit;
pub mod limits;
pub mod mail;
pub mod model;
pub mod net;
mod ops;
pub mod policy;
pub mod rules;
pub mod secret;
pub mod sessions;
pub mod throttle;
pub mod validate;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use postfach_store::{BlobStore, NewAudit, Store, Tx};

pub use error::{Error, Result};
pub use ops::addresses::AddressChanges;
pub use ops::domains::DomainDns;
pub use ops::filters;
pub use ops::invitations;
pub use ops::reports;
pub use ops::services::{NewServiceRequest, ServiceChanges};
pub use ops::templates;
pub use policy::Policy;

/// Who is acting. Every operation takes one; rules and the audit log (M12) depend on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// The operator at the command line, acting directly on the store (root-equivalent: whoever
    /// can read the data directory owns the platform anyway). Holds the Unix user name.
    Cli(String),
    /// A Manager user account: API or web session, API key, or the CLI with `--as LOGIN`.
    User {
        id: i64,
        login: String,
        is_operator: bool,
        /// The API key it authenticated with, if any (M1: a key's scope narrows the rights;
        /// the activity log names the key).
        key: Option<std::sync::Arc<rules::m1_grants_and_roles::ApiKey>>,
    },
    /// The owner of one mailbox, authenticated with its mail password (webmail settings).
    Mailbox(String),
    /// The server itself (first-run bootstrap).
    System,
}

impl Actor {
    /// How the actor appears in the audit log.
    pub fn audit_name(&self) -> String {
        match self {
            Actor::Cli(name) => format!("cli:{name}"),
            Actor::User { login, .. } => format!("user:{login}"),
            Actor::Mailbox(address) => format!("mailbox:{address}"),
            Actor::System => "system".into(),
        }
    }

    /// Platform operators (and the local CLI) may act on every organization.
    /// Refuses anyone but a platform operator: "only platform operators may {what}".
    pub(crate) fn require_operator(&self, what: &str) -> Result<()> {
        if self.is_operator() {
            Ok(())
        } else {
            Err(Error::Forbidden(format!(
                "only platform operators may {what}"
            )))
        }
    }

    pub fn is_operator(&self) -> bool {
        match self {
            Actor::Cli(_) | Actor::System => true,
            Actor::User { is_operator, .. } => *is_operator,
            Actor::Mailbox(_) => false,
        }
    }

    pub fn login(&self) -> Option<&str> {
        match self {
            Actor::User { login, .. } => Some(login),
            _ => None,
        }
    }
}

/// Source of "now" (Unix seconds); tests substitute a clock they can move.
pub trait Clock: Send + Sync {
    fn now(&self) -> i64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }
}

/// A clock that stands still until moved (tests of rolling windows and expiry).
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(t: i64) -> Self {
        ManualClock(AtomicI64::new(t))
    }
    pub fn advance(&self, seconds: i64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The system clock moved by the number of seconds written in a file, re-read on every call.
/// End-to-end tests move a running server through days (the autoresponder's 7-day rule, F10)
/// without sleeping; `postfach serve` uses it only when `POSTFACH_TESTING_CLOCK_FILE` is set.
pub struct OffsetFileClock(pub std::path::PathBuf);

impl Clock for OffsetFileClock {
    fn now(&self) -> i64 {
        let offset = std::fs::read_to_string(&self.0)
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .unwrap_or(0);
        SystemClock.now() + offset
    }
}

/// The service layer. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Directory {
    store: Arc<dyn Store>,
    blobs: Arc<dyn BlobStore>,
    policy: Arc<Policy>,
    clock: Arc<dyn Clock>,
    login_throttle: Arc<throttle::LoginThrottle>,
    /// Ids of mailboxes that changed (IMAP sessions and IDLE listen here).
    changes: tokio::sync::broadcast::Sender<mail::MailboxChange>,
    /// The platform's SRS key, read from the store once (it never changes once created).
    srs: Arc<tokio::sync::OnceCell<Arc<mail::srs::Srs>>>,
    /// Message rows of recently selected folders (performance; `mail::index_cache`).
    folder_index: Arc<mail::index_cache::IndexCache>,
    /// The shared transaction of the hot write paths (performance; `group_commit`).
    group: Arc<group_commit::GroupCommit>,
    /// M9: the services in maintenance, for open sessions (`sessions`).
    maintenance: Arc<sessions::MaintenanceFeed>,
    /// M2: the resolver that checks a domain's proof of control (`ops::domains`).
    domain_dns: Option<Arc<dyn ops::domains::DomainDns>>,
    /// M12: how many refused attempts each actor may still have logged this minute.
    refusal_budget: Arc<RefusalCounter>,
}

/// Refused attempts logged per actor and minute.
pub const REFUSALS_PER_MINUTE: u32 = 30;

enum RefusalBudget {
    Log,
    /// The last one of the minute.
    LastOne,
    Spent,
}

/// Counts refused attempts per actor in the current minute (bounded: forgotten each minute).
#[derive(Default)]
struct RefusalCounter {
    state: std::sync::Mutex<(i64, std::collections::HashMap<String, u32>)>,
}

impl RefusalCounter {
    fn take(&self, actor: &str, now: i64) -> RefusalBudget {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let minute = now / 60;
        if state.0 != minute {
            *state = (minute, std::collections::HashMap::new());
        }
        let n = state.1.entry(actor.to_string()).or_insert(0);
        *n += 1;
        match (*n).cmp(&REFUSALS_PER_MINUTE) {
            std::cmp::Ordering::Less => RefusalBudget::Log,
            std::cmp::Ordering::Equal => RefusalBudget::LastOne,
            std::cmp::Ordering::Greater => RefusalBudget::Spent,
        }
    }
}

impl Directory {
    pub fn new(store: Arc<dyn Store>, blobs: Arc<dyn BlobStore>, policy: Policy) -> Self {
        Directory {
            group: Arc::new(group_commit::GroupCommit::new(store.clone())),
            store,
            blobs,
            policy: Arc::new(policy),
            clock: Arc::new(SystemClock),
            login_throttle: Arc::new(throttle::LoginThrottle::new(Default::default())),
            changes: tokio::sync::broadcast::channel(4096).0,
            srs: Arc::new(tokio::sync::OnceCell::new()),
            folder_index: Arc::default(),
            maintenance: Arc::default(),
            domain_dns: None,
            refusal_budget: Arc::default(),
        }
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn blobs(&self) -> &Arc<dyn BlobStore> {
        &self.blobs
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// S4: the throttle shared by every login surface of this process (`rules::s4_login_throttle`).
    pub fn login_throttle(&self) -> &throttle::LoginThrottle {
        &self.login_throttle
    }

    /// Now, by the service layer's clock (Unix seconds).
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// Records a change in the same transaction as the change itself (M12): either both are
    /// committed or neither. `detail` must never contain secrets.
    pub(crate) async fn audit(
        &self,
        tx: &mut dyn Tx,
        actor: &Actor,
        org_id: Option<i64>,
        action: &str,
        target: &str,
        detail: serde_json::Value,
    ) -> Result<()> {
        let detail = with_key(actor, detail);
        tx.audit_insert(
            &NewAudit {
                actor: actor.audit_name(),
                org_id,
                action: action.into(),
                target: target.into(),
                detail: detail.to_string(),
            },
            self.now(),
        )
        .await?;
        Ok(())
    }

    /// Records a refused attempt (a permission or a rule said no) in the activity log of the
    /// actor and of the organization it aimed at (M12), and returns nothing: the caller
    /// answers with its error. Written in a transaction of its own, after the caller's is
    /// gone (the refused change was never made), so that it is not rolled back with it; the
    /// log is best effort and never changes the answer.
    pub(crate) async fn refused(
        &self,
        actor: &Actor,
        org_id: Option<i64>,
        action: &str,
        target: &str,
        error: &Error,
    ) {
        let entry = refusal(actor, org_id, action, target, error);
        self.log_refusal(entry).await;
    }

    async fn log_refusal(&self, entry: NewAudit) {
        // At most REFUSALS_PER_MINUTE entries per actor: a script that probes cannot fill an
        // organization's log (nor keep the store's writer busy); one line says it was cut.
        match self.refusal_budget.take(&entry.actor, self.now()) {
            RefusalBudget::Log => {}
            RefusalBudget::LastOne => tracing::info!(
                actor = entry.actor,
                "refused attempts of this actor are not logged for the rest of the minute"
            ),
            RefusalBudget::Spent => return,
        }
        let write = async {
            let mut tx = self.store.begin_write().await?;
            tx.audit_insert(&entry, self.now()).await?;
            tx.commit().await?;
            Ok::<_, Error>(())
        };
        if let Err(e) = write.await {
            tracing::warn!(error = %e, action = entry.action, "could not log a refused attempt");
        }
    }

    /// [`Directory::refused`] for a caller that still holds its transaction (a second writer
    /// would wait for it): written by a task of its own once that transaction is gone.
    pub(crate) fn refused_later(
        &self,
        actor: &Actor,
        org_id: Option<i64>,
        action: &str,
        target: &str,
        error: &Error,
    ) {
        let entry = refusal(actor, org_id, action, target, error);
        let dir = self.clone();
        tokio::spawn(async move { dir.log_refusal(entry).await });
    }
}

/// M12: an entry made through an API key names the key (`api_key`: its id and name).
fn with_key(actor: &Actor, mut detail: serde_json::Value) -> serde_json::Value {
    if let Actor::User { key: Some(k), .. } = actor {
        let named = serde_json::json!({"id": k.id, "name": k.name});
        match detail.as_object_mut() {
            Some(map) => {
                map.insert("api_key".into(), named);
            }
            None => detail = serde_json::json!({"value": detail, "api_key": named}),
        }
    }
    detail
}

/// The activity-log entry of a refused attempt (`ACTION.refused`, with the error's code and
/// sentence).
fn refusal(
    actor: &Actor,
    org_id: Option<i64>,
    action: &str,
    target: &str,
    error: &Error,
) -> NewAudit {
    NewAudit {
        actor: actor.audit_name(),
        org_id,
        action: format!("{action}.refused"),
        target: target.into(),
        detail: with_key(
            actor,
            serde_json::json!({"refused": error.code(), "reason": error.to_string()}),
        )
        .to_string(),
    }
}
