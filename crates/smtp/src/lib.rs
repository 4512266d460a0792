//! Postfach SMTP: the inbound MX and the submission listeners (P1, P2), the verdict
//! that refuses mail inside the session (F1–F4, O3), the durable spool, and the queue runner
//! that delivers locally and to remote MX hosts with DKIM (O1, O2) and bounces with DSNs.

#[cfg(test)]
mod arc_conformance;
pub mod config;
pub mod data;
mod dsn;
mod mailauth;
mod outbound;
mod runner;
mod session;
#[cfg(test)]
mod spf_conformance;
#[cfg(test)]
mod test_dns;
mod verdict;

use std::sync::Arc;
use std::time::Duration;

use mail_auth::MessageAuthenticator;
use postfach_core::Directory;
use postfach_core::net::accept_loop;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

pub use config::{AuthSettings, DnsSettings, QueueSettings, SmtpConfig, SmtpSettings};
pub use mailauth::DomainProbe;
pub use postfach_delivery::rspamd::{SpamBackend, SpamSettings};
pub use session::Kind;

/// M2: the domain check's resolver, from `[dns]` (the same resolvers the mail checks use).
pub fn domain_probe(dns: &DnsSettings) -> Result<mailauth::DomainProbe, String> {
    Ok(mailauth::DomainProbe(Arc::new(mailauth::authenticator(
        dns,
    )?)))
}
pub use verdict::{bogus_helo, forbidden_attachment};

/// What every session and worker shares.
pub struct Smtp {
    pub(crate) dir: Directory,
    pub(crate) cfg: SmtpConfig,
    pub(crate) tls: TlsAcceptor,
    /// DNS for SPF/DKIM/DMARC and MX lookups.
    pub(crate) auth: MessageAuthenticator,
    pub(crate) limiter: Arc<postfach_core::limits::Limiter>,
    /// What messages in transit may hold in memory, all sessions together.
    pub(crate) message_memory: Arc<postfach_core::limits::MemoryBudget>,
    /// Wakes the queue runner when a message was spooled.
    pub(crate) queue_wake: Notify,
    /// Spooled entries already claimed for this process's workers (`runner::Handoff`).
    pub(crate) handoff: runner::Handoff,
    pub(crate) auth_failure_delay: Duration,
    /// Sieve, filters, autoresponder and forwarding for local recipients.
    pub(crate) pipeline: postfach_delivery::Pipeline,
}

/// The bound SMTP listeners (bound by the caller, so that errors name the option).
pub struct Listeners {
    pub inbound: TcpListener,
    pub submission: TcpListener,
    pub submissions: TcpListener,
}

impl Smtp {
    pub fn new(
        dir: Directory,
        cfg: SmtpConfig,
        tls: Arc<rustls::ServerConfig>,
    ) -> Result<Arc<Self>, String> {
        cfg.validate()?;
        let auth = mailauth::authenticator(&cfg.dns)?;
        let s = &cfg.smtp;
        Ok(Arc::new(Smtp {
            limiter: postfach_core::limits::Limiter::new(
                s.max_connections_per_ip,
                s.connections_per_minute_per_ip,
                s.commands_per_minute_per_ip,
            ),
            message_memory: postfach_core::limits::MemoryBudget::new(
                usize::try_from(s.max_message_memory).unwrap_or(usize::MAX),
            ),
            auth_failure_delay: Duration::from_millis(s.auth_failure_delay_ms),
            pipeline: postfach_delivery::Pipeline::new(dir.clone(), &cfg.hostname, &cfg.spam),
            dir,
            cfg,
            tls: TlsAcceptor::from(tls),
            auth,
            queue_wake: Notify::new(),
            handoff: runner::Handoff::new(),
        }))
    }

    /// Starts the accept loops and the queue runner; they stop when `stop` turns true.
    pub fn spawn(
        self: &Arc<Self>,
        listeners: Listeners,
        stop: &watch::Receiver<bool>,
        tasks: &mut JoinSet<()>,
    ) {
        for (listener, kind) in [
            (listeners.inbound, Kind::Inbound),
            (listeners.submission, Kind::Submission),
            (listeners.submissions, Kind::Submissions),
        ] {
            let smtp = self.clone();
            tasks.spawn(accept_loop(
                listener,
                stop.clone(),
                "SMTP",
                postfach_core::net::Kind::Smtp,
                move |tcp, peer| session::Session::run(smtp.clone(), kind, tcp, peer),
            ));
        }
        tasks.spawn(runner::run(self.clone(), stop.clone()));
    }
}

/// The message as it leaves us: without the `Return-Path` kept for final delivery.
pub(crate) fn outbound_strip(blob: &[u8]) -> Vec<u8> {
    outbound::strip_return_path(blob)
}

/// A short random identifier for messages (shown in the 250 reply and Received headers).
pub(crate) fn random_id() -> String {
    postfach_core::secret::random_hex(8).to_uppercase()
}

/// The current time as an RFC 5322 §3.3 date (`Mon, 23 Nov 2026 19:00:00 +0000`).
pub(crate) fn rfc5322_now() -> String {
    rfc5322(time::OffsetDateTime::now_utc().unix_timestamp())
}

pub(crate) fn rfc5322(t: i64) -> String {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day padding:none] [month repr:short] [year] [hour]:[minute]:[second] +0000"
    );
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|dt| dt.format(&format).ok())
        .unwrap_or_default()
}
