//! Postfach's POP3 server (P4, issue 4): RFC 1939 with the RFC 2449 extension mechanism
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
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

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
}

/// The bound listeners: STLS (110) and implicit TLS (995).
pub struct Listeners {
    pub pop3: TcpListener,
    pub pop3s: TcpListener,
}

impl Pop3 {
    pub fn new(dir: Directory, hostname: String, tls: Arc<rustls::ServerConfig>) -> Arc<Self> {
        Arc::new(Pop3 {
            dir,
            hostname,
            tls: TlsAcceptor::from(tls),
            locked: Mutex::new(HashSet::new()),
            autologout: Duration::from_secs(10 * 60),
        })
    }

    pub fn spawn(
        self: &Arc<Self>,
        listeners: Listeners,
        stop: &watch::Receiver<bool>,
        tasks: &mut JoinSet<()>,
    ) {
        for (listener, implicit_tls) in [(listeners.pop3, false), (listeners.pop3s, true)] {
            let pop3 = self.clone();
            let mut stop = stop.clone();
            tasks.spawn(async move {
                loop {
                    if *stop.borrow() {
                        return;
                    }
                    tokio::select! {
                        _ = stop.changed() => continue,
                        accepted = listener.accept() => match accepted {
                            Ok((tcp, peer)) => {
                                tokio::spawn(session::Session::run(pop3.clone(), tcp, peer, implicit_tls));
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "POP3 accept failed");
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                        }
                    }
                }
            });
        }
    }
}
