//! What every mail protocol listener shares (SMTP, IMAP, POP3, ManageSieve): the accept loop
//! that stops on shutdown and survives accept errors, and a connection that is plain TCP or
//! TLS — implicit (SMTPS, IMAPS, POP3S) or upgraded by STARTTLS/STLS.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// A client that has not finished its TLS handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Accepts connections until `stop` turns true; `on_connection` is spawned for each. An
/// accept error (out of file descriptors and the like) is logged and waited out instead of
/// spinning.
pub async fn accept_loop<F, Fut>(
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
    what: &'static str,
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
                    tokio::spawn(on_connection(tcp, peer));
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
    /// in its future while it waits (issue 6: memory per idle connection).
    pub async fn read_buf(&mut self, buf: &mut Vec<u8>) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read_buf(buf).await,
            Stream::Tls(s) => s.read_buf(buf).await,
            Stream::Closed => Ok(0),
        }
    }

    pub async fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.write_all(data).await,
            Stream::Tls(s) => {
                s.write_all(data).await?;
                s.flush().await
            }
            Stream::Closed => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }
}
