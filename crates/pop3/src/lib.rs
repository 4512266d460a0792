//! Postfach's POP3 server (P4): RFC 1939 with the RFC 2449 extension mechanism
//! (CAPA, RESP-CODES, AUTH-RESP-CODE, PIPELINING), STLS (RFC 2595) and AUTH PLAIN (RFC 5034).
//!
//! A session works on a snapshot of the address's INBOX taken at login (RFC 1939 §8: message
//! numbers stay fixed for the session). DELE only marks; the marked messages are expunged in
//! the UPDATE state, after QUIT, through the same service-layer call IMAP EXPUNGE uses, so IMAP
//! sessions on the mailbox hear of it. A connection that drops without QUIT deletes nothing.
//! Unique ids are `UIDVALIDITY.UID`, stable across sessions and shared with IMAP's view.

mod session;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use postfach_core::Directory;
use postfach_core::limits::Limiter;
use postfach_core::net::accept_loop;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// `[pop3]` settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pop3Settings {
    /// Minutes an idle client may stay (RFC 1939 §3: at least 10).
    pub autologout_minutes: u64,
    /// Seconds a client that has not logged in yet may stay idle.
    pub login_timeout_seconds: u64,
    /// Connections at once from one client IP.
    pub max_connections_per_ip: usize,
    /// New connections per minute from one client IP.
    pub connections_per_minute_per_ip: u32,
    /// Allow USER/PASS and AUTH without TLS from a loopback address (a webmail or proxy on
    /// the same host, load tests). Off by default: credentials travel only inside TLS (P1).
    pub plaintext_auth_on_loopback: bool,
}

impl Default for Pop3Settings {
    fn default() -> Self {
        Pop3Settings {
            autologout_minutes: 10,
            login_timeout_seconds: 120,
            max_connections_per_ip: 20,
            connections_per_minute_per_ip: 120,
            plaintext_auth_on_loopback: false,
        }
    }
}

impl Pop3Settings {
    pub fn validate(&self) -> Result<(), String> {
        if self.autologout_minutes < 1 || self.login_timeout_seconds < 1 {
            return Err(
                "pop3.autologout_minutes and pop3.login_timeout_seconds must be at least 1".into(),
            );
        }
        if self.max_connections_per_ip < 1 || self.connections_per_minute_per_ip < 1 {
            return Err(
                "pop3.max_connections_per_ip and pop3.connections_per_minute_per_ip must be at least 1"
                    .into(),
            );
        }
        Ok(())
    }
}

pub struct Pop3 {
    pub(crate) dir: Directory,
    pub(crate) hostname: String,
    pub(crate) tls: TlsAcceptor,
    /// Addresses with a POP3 session in the TRANSACTION state: RFC 1939 §8 gives one session
    /// exclusive access to the maildrop (a second gets `-ERR [IN-USE]`).
    pub(crate) locked: Mutex<HashSet<i64>>,
    /// Idle time after which a session is closed without UPDATE (RFC 1939 §3: at least 10
    /// minutes).
    pub(crate) autologout: Duration,
    pub(crate) login_timeout: Duration,
    pub(crate) plaintext_auth_on_loopback: bool,
    pub(crate) limiter: Arc<Limiter>,
}

/// The bound listeners: STLS (110) and implicit TLS (995).
pub struct Listeners {
    pub pop3: TcpListener,
    pub pop3s: TcpListener,
}

impl Pop3 {
    pub fn new(
        dir: Directory,
        hostname: String,
        settings: &Pop3Settings,
        tls: Arc<rustls::ServerConfig>,
    ) -> Result<Arc<Self>, String> {
        settings.validate()?;
        Ok(Arc::new(Pop3 {
            dir,
            hostname,
            tls: TlsAcceptor::from(tls),
            locked: Mutex::new(HashSet::new()),
            autologout: Duration::from_secs(settings.autologout_minutes * 60),
            login_timeout: Duration::from_secs(settings.login_timeout_seconds),
            plaintext_auth_on_loopback: settings.plaintext_auth_on_loopback,
            limiter: Limiter::new(
                settings.max_connections_per_ip,
                settings.connections_per_minute_per_ip,
                u32::MAX,
            ),
        }))
    }

    pub fn spawn(
        self: &Arc<Self>,
        listeners: Listeners,
        stop: &watch::Receiver<bool>,
        tasks: &mut JoinSet<()>,
    ) {
        for (listener, implicit_tls) in [(listeners.pop3, false), (listeners.pop3s, true)] {
            let pop3 = self.clone();
            tasks.spawn(accept_loop(
                listener,
                stop.clone(),
                "POP3",
                postfach_core::net::Kind::Pop3,
                move |tcp, peer| session::Session::run(pop3.clone(), tcp, peer, implicit_tls),
            ));
        }
    }
}
