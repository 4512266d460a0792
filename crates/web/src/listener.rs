//! Serving the router over HTTP and HTTPS (the `listen.http` and `listen.https` listeners)
//! with the budgets a public listener needs: a share of the process's file descriptors
//! (`postfach_core::net::budget`, so that no flood of HTTP connections starves SMTP or
//! IMAP), a cap on open connections per client address, a deadline for the TLS handshake,
//! and a deadline for each request's header section that also ends idle keep-alive
//! connections (hyper's `header_read_timeout` runs whenever a new request head is awaited):
//! a client that sends half a request, or nothing, is closed.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use postfach_core::limits::Limiter;
use postfach_core::net::{Kind, budget};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// A client that has not finished its TLS handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A request's header section must be complete this long after the server started to wait
/// for it (after the connection opened, or after the previous response).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(15);
/// Open connections per client address (a browser opens six; API scripts a few).
pub const MAX_PER_CLIENT: usize = 64;
/// New connections per client address and minute.
const CONNECTS_PER_MINUTE: u32 = 1200;
/// Requests in flight get this long to finish at shutdown.
const DRAIN: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` (with TLS when `tls` is given) until `shutdown` resolves, then
/// lets requests in flight finish (up to a few seconds).
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let acceptor = tls.map(TlsAcceptor::from);
    let per_client = Limiter::new(MAX_PER_CLIENT, CONNECTS_PER_MINUTE, u32::MAX);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "http accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(place) = budget(Kind::Http).try_acquire_owned() else {
            tracing::warn!(%peer, "http: connection budget used up; closing a new connection");
            continue;
        };
        let Ok(slot) = per_client.connect(peer.ip()) else {
            tracing::debug!(%peer, "http: too many connections from one address");
            continue;
        };
        let acceptor = acceptor.clone();
        let watcher = graceful.watcher();
        let app = app.clone();
        tokio::spawn(async move {
            let (_place, _slot) = (place, slot);
            match acceptor {
                None => serve_connection(tcp, peer, app, watcher).await,
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => serve_connection(stream, peer, app, watcher).await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => {}
                    }
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!("http: requests still running at shutdown were cut off");
    }
}

async fn serve_connection<I>(
    io: I,
    peer: SocketAddr,
    app: Router,
    watcher: hyper_util::server::graceful::Watcher,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // The client's address for handlers (login throttling).
    let service =
        TowerToHyperService::new(app.layer(axum::Extension(axum::extract::ConnectInfo(peer))));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(%peer, error = %e, "http connection ended with an error");
    }
}
