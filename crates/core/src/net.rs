//! What every mail protocol listener shares (SMTP, IMAP, POP3, ManageSieve): the accept loop
//! that stops on shutdown and survives accept errors, and a connection that is plain TCP or
//! TLS — implicit (SMTPS, IMAPS, POP3S) or upgraded by STARTTLS/STLS.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// A client that has not finished its TLS handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// The kinds of listener, each with its own share of the process's file descriptors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// SMTP: MX, submission and submissions together.
    Smtp,
    Imap,
    Pop3,
    ManageSieve,
    /// HTTP and HTTPS together.
    Http,
}

impl Kind {
    /// Percent of the descriptors its client connections may hold. The shares add up to 85:
    /// the rest is the reserve for the database, blob files, outbound SMTP and DNS, so that
    /// a flood on one listener starves neither another listener nor the process itself.
    fn share(self) -> usize {
        match self {
            Kind::Smtp => 20,
            Kind::Imap => 30,
            Kind::Pop3 => 10,
            Kind::ManageSieve => 5,
            Kind::Http => 20,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The longest a session waits for a client to take what it is sent. A client that stops
/// reading would otherwise keep its task and its connection slot for as long as the TCP
/// stack keeps retrying (hours); past this the session ends.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// Writes all of `data` within [`WRITE_TIMEOUT`] (a session's output on a stream of its own;
/// [`Stream::write_all`] does the same).
pub async fn write_within<W: tokio::io::AsyncWrite + Unpin>(
    w: &mut W,
    data: &[u8],
) -> std::io::Result<()> {
    within(w.write_all(data)).await
}

async fn within(write: impl Future<Output = std::io::Result<()>>) -> std::io::Result<()> {
    match tokio::time::timeout(WRITE_TIMEOUT, write).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the client stopped reading",
        )),
    }
}

/// File descriptors this process may hold: its soft `RLIMIT_NOFILE`, raised to the hard
/// limit the first time it is asked (the default soft limit, often 1024, is far below what
/// a mail server with idle IMAP clients needs).
pub fn fd_limit() -> usize {
    static LIMIT: OnceLock<usize> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        #[repr(C)]
        struct Rlimit {
            cur: u64,
            max: u64,
        }
        unsafe extern "C" {
            fn getrlimit(resource: i32, rlim: *mut Rlimit) -> i32;
            fn setrlimit(resource: i32, rlim: *const Rlimit) -> i32;
        }
        const RLIMIT_NOFILE: i32 = 7;
        let mut r = Rlimit { cur: 0, max: 0 };
        // SAFETY: plain system calls on a struct of the layout Linux defines (two rlim_t).
        unsafe {
            if getrlimit(RLIMIT_NOFILE, &mut r) != 0 {
                return 1024;
            }
            if r.cur < r.max {
                let raised = Rlimit {
                    cur: r.max,
                    max: r.max,
                };
                if setrlimit(RLIMIT_NOFILE, &raised) == 0 {
                    r.cur = r.max;
                }
            }
        }
        usize::try_from(r.cur).unwrap_or(usize::MAX).min(1 << 20)
    })
}

/// How many client connections a kind of listener may hold at once (its share of
/// [`fd_limit`]), shared by all its ports.
pub fn budget(kind: Kind) -> Arc<Semaphore> {
    static BUDGETS: OnceLock<[Arc<Semaphore>; 5]> = OnceLock::new();
    BUDGETS.get_or_init(|| {
        let of = |k: Kind| Arc::new(Semaphore::new((fd_limit() * k.share() / 100).max(16)));
        [
            of(Kind::Smtp),
            of(Kind::Imap),
            of(Kind::Pop3),
            of(Kind::ManageSieve),
            of(Kind::Http),
        ]
    })[kind.index()]
    .clone()
}

/// Accepts connections until `stop` turns true; `on_connection` is spawned for each, holding
/// a place in its kind's [`budget`] until it ends; past the budget a connection is closed at
/// once. An accept error (out of file descriptors and the like) is logged and waited out
/// instead of spinning.
pub async fn accept_loop<F, Fut>(
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
    what: &'static str,
    kind: Kind,
    on_connection: F,
) where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        if *stop.borrow() {
            return;
        }
        tokio::select! {
            _ = stop.changed() => continue,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let Ok(place) = budget(kind).try_acquire_owned() else {
                        tracing::warn!(%peer, "{what}: connection budget used up; closing a new connection");
                        drop(tcp);
                        continue;
                    };
                    let connection = on_connection(tcp, peer);
                    tokio::spawn(async move {
                        connection.await;
                        drop(place);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "{what} accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// A client connection.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Only while upgrading, or after a failed upgrade.
    Closed,
}

impl Stream {
    /// A new connection: with `implicit_tls`, after the TLS handshake (None if it fails or
    /// times out).
    pub async fn accept(tcp: TcpStream, tls: &TlsAcceptor, implicit_tls: bool) -> Option<Self> {
        if !implicit_tls {
            return Some(Stream::Plain(tcp));
        }
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(tcp)).await {
            Ok(Ok(s)) => Some(Stream::Tls(Box::new(s))),
            _ => None,
        }
    }

    /// STARTTLS/STLS: the plain connection becomes TLS. False (and the connection closed)
    /// when it was not plain or the handshake failed.
    pub async fn start_tls(&mut self, tls: &TlsAcceptor) -> bool {
        let Stream::Plain(tcp) = std::mem::replace(self, Stream::Closed) else {
            return false;
        };
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(tcp)).await {
            Ok(Ok(s)) => {
                *self = Stream::Tls(Box::new(s));
                true
            }
            _ => false,
        }
    }

    pub async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf).await,
            Stream::Tls(s) => s.read(buf).await,
            Stream::Closed => Ok(0),
        }
    }

    /// Reads into `buf`'s spare room (tokio's `read_buf`): no buffer of the caller's own
    /// in its future while it waits (performance: memory per idle connection).
    pub async fn read_buf(&mut self, buf: &mut Vec<u8>) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read_buf(buf).await,
            Stream::Tls(s) => s.read_buf(buf).await,
            Stream::Closed => Ok(0),
        }
    }

    /// Writes all of `data` within [`WRITE_TIMEOUT`].
    pub async fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        let write = async {
            match self {
                Stream::Plain(s) => s.write_all(data).await,
                Stream::Tls(s) => {
                    s.write_all(data).await?;
                    s.flush().await
                }
                Stream::Closed => Err(std::io::ErrorKind::NotConnected.into()),
            }
        };
        within(write).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client that stops reading does not keep a session's task: the write gives up after
    /// `WRITE_TIMEOUT` (the clock is paused, so the test does not wait a minute).
    #[tokio::test(start_paused = true)]
    async fn a_client_that_stops_reading_ends_the_write() {
        let (mut ours, _theirs) = tokio::io::duplex(1024);
        let big = vec![b'x'; 1024 * 1024];
        let started = tokio::time::Instant::now();
        let e = write_within(&mut ours, &big).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= WRITE_TIMEOUT);
    }
}
