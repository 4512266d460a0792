//! `postfach serve`: first-run setup, then the listeners (SMTP, IMAP, POP3, HTTP), until
//! SIGINT/SIGTERM. ManageSieve joins here when it is built; its address is already part of
//! the configuration.

use std::future::Future;
use std::io::IsTerminal;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

use crate::app::{self, Paths};
use crate::config::Config;

fn init_logging(cfg: &Config) {
    let filter = EnvFilter::try_new(&cfg.log.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    // Ignore "already set" (tests may start several servers in one process).
    let _ = if cfg.log.format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Resolves when the process is asked to stop.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn bind(option: &str, addr: std::net::SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("listen.{option}: cannot listen on {addr}"))
}

fn stopped(rx: &watch::Receiver<bool>) -> impl Future<Output = ()> + Send + 'static {
    let mut rx = rx.clone();
    async move {
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

pub async fn run(paths: Paths) -> Result<()> {
    let (app, first) = app::init(paths).await?;
    init_logging(&app.config);
    first.report(&app);
    let cfg = &app.config;
    let tls = crate::tls::server_config(cfg, &app.paths.data)?;

    let router = postfach_web::router(app.dir.clone());
    let smtp_listeners = postfach_smtp::Listeners {
        inbound: bind("smtp", cfg.listen.smtp).await?,
        submission: bind("submission", cfg.listen.submission).await?,
        submissions: bind("submissions", cfg.listen.submissions).await?,
    };
    let smtp = postfach_smtp::Smtp::new(app.dir.clone(), cfg.smtp(&app.node_id()?), tls.clone())
        .map_err(|e| anyhow::anyhow!(e))?;
    let imap_listeners = postfach_imap::Listeners {
        imap: bind("imap", cfg.listen.imap).await?,
        imaps: bind("imaps", cfg.listen.imaps).await?,
    };
    let imap = postfach_imap::Imap::new(
        app.dir.clone(),
        cfg.server.hostname.clone(),
        cfg.imap.clone(),
        tls.clone(),
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    let pop3_listeners = postfach_pop3::Listeners {
        pop3: bind("pop3", cfg.listen.pop3).await?,
        pop3s: bind("pop3s", cfg.listen.pop3s).await?,
    };
    let pop3 = postfach_pop3::Pop3::new(
        app.dir.clone(),
        cfg.server.hostname.clone(),
        &cfg.pop3,
        tls.clone(),
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    let sieve_listener = bind("managesieve", cfg.listen.managesieve).await?;
    let managesieve = postfach_managesieve::ManageSieve::new(app.dir.clone(), tls.clone());
    let http = bind("http", cfg.listen.http).await?;
    let https = match cfg.https() {
        Some(addr) => Some(bind("https", addr).await?),
        None => None,
    };

    // Raised to the hard limit now; each listener gets its share (core::net::budget).
    let fds = postfach_core::net::fd_limit();
    tracing::info!(file_descriptors = fds, "connection budgets set");
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for (name, listener, what) in [
        ("smtp", &smtp_listeners.inbound, "inbound MX, STARTTLS"),
        ("submission", &smtp_listeners.submission, "STARTTLS, AUTH"),
        (
            "submissions",
            &smtp_listeners.submissions,
            "implicit TLS, AUTH",
        ),
        ("imap", &imap_listeners.imap, "STARTTLS"),
        ("imaps", &imap_listeners.imaps, "implicit TLS"),
        ("pop3", &pop3_listeners.pop3, "STLS"),
        ("pop3s", &pop3_listeners.pop3s, "implicit TLS"),
        ("managesieve", &sieve_listener, "STARTTLS"),
    ] {
        let addr = listener.local_addr()?;
        println!("Listening: {name}://{addr} ({what})");
    }
    smtp.spawn(smtp_listeners, &stop_rx, &mut tasks);
    imap.spawn(imap_listeners, &stop_rx, &mut tasks);
    pop3.spawn(pop3_listeners, &stop_rx, &mut tasks);
    managesieve.spawn(sieve_listener, &stop_rx, &mut tasks);
    let http_addr = http.local_addr()?;
    println!("Listening: http://{http_addr} (admin API at /api/v1)");
    {
        let router = router.clone();
        let stop = stopped(&stop_rx);
        tasks.spawn(postfach_web::serve(http, None, router, stop));
    }
    if let Some(listener) = https {
        let addr = listener.local_addr()?;
        println!("Listening: https://{addr}");
        tasks.spawn(postfach_web::serve(
            listener,
            Some(tls.clone()),
            router,
            stopped(&stop_rx),
        ));
    }
    tracing::info!(hostname = %cfg.server.hostname, data = %app.paths.data.display(), "postfach started");
    // RFC 5321 §4.5.1: mail to the bare <Postmaster> must reach somebody.
    if matches!(
        app.dir.resolve_rcpt("postmaster").await,
        Ok(postfach_core::mail::Rcpt::NoSuchUser)
    ) {
        tracing::warn!(
            "mail to <Postmaster> has no mailbox to go to (no operator has a hosted address): \
             set [server] postmaster to a hosted address"
        );
    }
    println!("Postfach is ready.");

    shutdown_signal().await;
    tracing::info!("shutting down: no new connections, finishing requests in flight");
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    app.dir.store().close().await;
    tracing::info!("stopped");
    Ok(())
}
