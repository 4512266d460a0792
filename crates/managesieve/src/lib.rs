//! Postfach's ManageSieve server (P7, RFC 5804): mail clients (Thunderbird's Sieve add-on,
//! Roundcube, `sieve-connect`) upload, check, activate and manage an address's Sieve scripts.
//! STARTTLS first (no AUTHENTICATE in plaintext, S-rules of the brief); AUTHENTICATE PLAIN;
//! PUTSCRIPT, CHECKSCRIPT, LISTSCRIPTS, SETACTIVE, GETSCRIPT, DELETESCRIPT, RENAMESCRIPT,
//! HAVESPACE, NOOP, UNAUTHENTICATE, LOGOUT. The scripts and every rule about them are the
//! service layer's (`Directory::sieve_*`), shared with the CLI and the API.

pub mod parse;
mod session;

use std::sync::Arc;
use std::time::Duration;

use postfach_core::Directory;
use postfach_core::limits::Limiter;
use postfach_core::net::accept_loop;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

pub struct ManageSieve {
    pub(crate) dir: Directory,
    pub(crate) tls: TlsAcceptor,
    pub(crate) limiter: Arc<Limiter>,
    /// Idle time before an unauthenticated / authenticated session is closed.
    pub(crate) login_timeout: Duration,
    pub(crate) idle_timeout: Duration,
}

impl ManageSieve {
    pub fn new(dir: Directory, tls: Arc<rustls::ServerConfig>) -> Arc<Self> {
        Arc::new(ManageSieve {
            dir,
            tls: TlsAcceptor::from(tls),
            limiter: Limiter::new(20, 120, u32::MAX),
            login_timeout: Duration::from_secs(120),
            idle_timeout: Duration::from_secs(30 * 60),
        })
    }

    pub fn spawn(
        self: &Arc<Self>,
        listener: TcpListener,
        stop: &watch::Receiver<bool>,
        tasks: &mut JoinSet<()>,
    ) {
        let server = self.clone();
        tasks.spawn(accept_loop(
            listener,
            stop.clone(),
            "ManageSieve",
            postfach_core::net::Kind::ManageSieve,
            move |tcp, peer| session::Session::run(server.clone(), tcp, peer),
        ));
    }
}
