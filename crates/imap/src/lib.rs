//! Postfach's IMAP server (P3): IMAP4rev2 and IMAP4rev1 (RFC 9051, RFC 3501) on
//! imap-codec. It works on the service layer's mailbox API (`postfach_core::mail::access`),
//! as POP3 (`postfach-pop3`) does; sessions hear about each other's changes, and about new
//! mail, through that layer's change feed.

mod envelope_cache;
mod fetch;
pub mod framing;
mod mutf7;
mod search;
mod selected;
mod session;
mod shim;
mod wire;

use std::sync::Arc;

use postfach_core::Directory;
use postfach_core::limits::Limiter;
use postfach_core::net::accept_loop;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// `[imap]` settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImapSettings {
    /// Largest literal accepted (APPEND of a message), in bytes.
    pub max_literal_size: u32,
    /// Longest command line outside literals, in bytes.
    pub max_line_length: usize,
    /// Minutes an idle authenticated client may stay (RFC 9051 §5.4: at least 30).
    pub autologout_minutes: u64,
    /// Seconds a client that has not logged in yet may stay idle (RFC 9051 §5.4 lets this be
    /// shorter; a connection that never logs in only holds resources).
    pub login_timeout_seconds: u64,
    /// Protocol errors tolerated in one session before it is closed.
    pub max_errors: usize,
    /// Connections at once from one client IP (a mail client opens several per account).
    pub max_connections_per_ip: usize,
    /// New connections per minute from one client IP.
    pub connections_per_minute_per_ip: u32,
    /// Allow LOGIN/AUTHENTICATE without TLS from a loopback address (a webmail or proxy on
    /// the same host, load tests). Off by default: credentials travel only inside TLS (P1).
    pub plaintext_auth_on_loopback: bool,
}

impl Default for ImapSettings {
    fn default() -> Self {
        ImapSettings {
            max_literal_size: 64 * 1024 * 1024,
            max_line_length: 64 * 1024,
            autologout_minutes: 30,
            login_timeout_seconds: 120,
            max_errors: 20,
            max_connections_per_ip: 50,
            connections_per_minute_per_ip: 300,
            plaintext_auth_on_loopback: false,
        }
    }
}

impl ImapSettings {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_literal_size < 1024 {
            return Err("imap.max_literal_size must be at least 1024".into());
        }
        if self.max_line_length < 1024 {
            return Err("imap.max_line_length must be at least 1024".into());
        }
        if self.autologout_minutes < 1 {
            return Err("imap.autologout_minutes must be at least 1".into());
        }
        if self.login_timeout_seconds < 1 {
            return Err("imap.login_timeout_seconds must be at least 1".into());
        }
        if self.max_errors < 1 {
            return Err("imap.max_errors must be at least 1".into());
        }
        if self.max_connections_per_ip < 1 || self.connections_per_minute_per_ip < 1 {
            return Err(
                "imap.max_connections_per_ip and imap.connections_per_minute_per_ip must be at least 1"
                    .into(),
            );
        }
        Ok(())
    }
}

pub struct Imap {
    pub(crate) dir: Directory,
    pub(crate) hostname: String,
    pub(crate) settings: ImapSettings,
    pub(crate) tls: TlsAcceptor,
    pub(crate) limiter: Arc<Limiter>,
    /// ENVELOPEs already built, by body (shared by all sessions).
    pub(crate) envelopes: envelope_cache::EnvelopeCache,
    /// Selected mailboxes' message lists, shared by the sessions that selected the same state.
    pub(crate) views: selected::SharedViews,
}

/// The bound listeners: STARTTLS (143) and implicit TLS (993).
pub struct Listeners {
    pub imap: TcpListener,
    pub imaps: TcpListener,
}

impl Imap {
    pub fn new(
        dir: Directory,
        hostname: String,
        settings: ImapSettings,
        tls: Arc<rustls::ServerConfig>,
    ) -> Result<Arc<Self>, String> {
        settings.validate()?;
        // No command rate: IMAP clients legitimately issue many (a folder sync is hundreds).
        let limiter = Limiter::new(
            settings.max_connections_per_ip,
            settings.connections_per_minute_per_ip,
            u32::MAX,
        );
        Ok(Arc::new(Imap {
            dir,
            hostname,
            settings,
            tls: TlsAcceptor::from(tls),
            limiter,
            envelopes: Default::default(),
            views: Default::default(),
        }))
    }

    pub fn spawn(
        self: &Arc<Self>,
        listeners: Listeners,
        stop: &watch::Receiver<bool>,
        tasks: &mut JoinSet<()>,
    ) {
        for (listener, implicit_tls) in [(listeners.imap, false), (listeners.imaps, true)] {
            let imap = self.clone();
            tasks.spawn(accept_loop(
                listener,
                stop.clone(),
                "IMAP",
                postfach_core::net::Kind::Imap,
                move |tcp, peer| session::Session::run(imap.clone(), tcp, peer, implicit_tls),
            ));
        }
    }
}
