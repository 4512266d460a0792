//! Delivery to remote servers (O1, O2): DKIM signing of our users' mail, the route (operator
//! route, smarthost, or the domain's MX hosts in preference order, RFC 5321 §5.1), opportunistic
//! STARTTLS, and one outcome per recipient from the remote server's replies.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use mail_auth::arc::ArcSealer;
use mail_auth::common::cache::NoCache;
use mail_auth::common::crypto::{DkimKey, Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;
use mail_auth::{AuthenticatedMessage, AuthenticationResults};
use mail_auth::{DnsError, IpLookupStrategy, MX, RecordSet};
use mail_send::SmtpClient;
use postfach_store::{QueueEntry, QueueRcpt};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer};
use smtp_proto::EXT_START_TLS;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::Smtp;

/// What happened to one recipient in one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Delivered,
    /// Try again later; the text is the reason (a remote reply or a local error).
    Temporary(String),
    /// Give up and bounce; `remote` names the server that refused, if one did.
    Permanent {
        reply: String,
        remote: Option<String>,
    },
}

/// Headers covered by our DKIM signatures (RFC 6376 §5.4.1's recommendations).
const SIGNED_HEADERS: [&str; 12] = [
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
];

/// The message as it leaves: without the `Return-Path` we keep for final delivery, and with
/// DKIM signatures of the sender's domain when it is one of ours.
pub(crate) async fn prepare(smtp: &Smtp, entry: &QueueEntry, blob: &[u8]) -> Vec<u8> {
    let message = strip_return_path(blob);
    let signatures = dkim_signatures(smtp, entry, &message).await;
    let signed = [signatures.as_bytes(), &message].concat();
    // F11: a forward keeps its author's From and vouches for it with the platform's ARC seal
    // (RFC 8617): results of the message as it came to us, seal over the message as it
    // leaves (our DKIM signature included).
    if entry.source == "forward"
        && let Some(arc) = arc_seal(smtp, &message, &signed).await
    {
        return [arc.as_bytes(), &signed].concat();
    }
    signed
}

/// The DKIM-Signature fields for an outgoing message: only of the producer's own domain (O2,
/// `rules/o2_dkim_authority.rs`), Ed25519 and RSA.
async fn dkim_signatures(smtp: &Smtp, entry: &QueueEntry, message: &[u8]) -> String {
    let mut signatures = String::new();
    let domain = match smtp
        .dir
        .dkim_signing_domain(&entry.source, entry.sender_address_id, message)
        .await
    {
        Ok(Some(d)) => d,
        Ok(None) => return signatures,
        Err(e) => {
            tracing::warn!(error = %e, "DKIM authority unknown; sending unsigned");
            return signatures;
        }
    };
    let keys = match smtp.dir.dkim_signing_keys(&domain).await {
        Ok(k) => k,
        Err(e) => {
            tracing::warn!(error = %e, %domain, "DKIM keys unavailable; sending unsigned");
            return signatures;
        }
    };
    for k in keys {
        let key: DkimKey = if k.algorithm == postfach_core::mail::ED25519 {
            match Ed25519Key::from_pkcs8_der(&k.private_der) {
                Ok(key) => key.into(),
                Err(e) => {
                    tracing::warn!(error = %e, selector = %k.selector, "unusable DKIM key");
                    continue;
                }
            }
        } else {
            match rsa_key(&k.private_der) {
                Ok(key) => key.into(),
                Err(e) => {
                    tracing::warn!(error = %e, selector = %k.selector, "unusable DKIM key");
                    continue;
                }
            }
        };
        match DkimSigner::from_key(key)
            .domain(k.domain.as_str())
            .selector(k.selector.as_str())
            .headers(SIGNED_HEADERS)
            .sign(message)
        {
            Ok(sig) => signatures.push_str(&sig.to_header()),
            Err(e) => tracing::warn!(error = %e, selector = %k.selector, "DKIM signing failed"),
        }
    }
    signatures
}

pub(crate) fn rsa_key(pkcs1_der: &[u8]) -> mail_auth::Result<RsaKey<Sha256>> {
    RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(pkcs1_der)))
}

/// The ARC set (ARC-Seal, ARC-Message-Signature, ARC-Authentication-Results) the platform adds
/// to a message it forwards, or `None` when it cannot (no key, an existing chain that failed:
/// RFC 8617 §5.1.2 — a broken chain is not extended by us).
async fn arc_seal(smtp: &Smtp, received: &[u8], message: &[u8]) -> Option<String> {
    let key = match smtp.dir.arc_signing_key().await {
        Ok(k) => k,
        Err(e) => {
            tracing::warn!(error = %e, "ARC key unavailable; forwarding without a seal");
            return None;
        }
    };
    let rsa = rsa_key(&key.private_der)
        .map_err(|e| tracing::warn!(error = %e, "unusable ARC key"))
        .ok()?;
    // What the AAR records: the results of the message as it came to us, checked now.
    let before = AuthenticatedMessage::parse(received)?;
    let dkim = smtp.auth.verify_dkim(&before).await;
    let arc = smtp.auth.verify_arc(&before).await;
    if !arc.can_be_sealed() {
        tracing::info!("forwarding without an ARC seal: the message's ARC chain failed");
        return None;
    }
    let parsed = AuthenticatedMessage::parse(message)?;
    let from = parsed.from.first().map(String::as_str).unwrap_or_default();
    let client = received_client(received, &smtp.cfg.hostname)
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    let results = AuthenticationResults::new(&smtp.cfg.hostname)
        .with_dkim_results(&dkim, from)
        .with_arc_result(&arc, client);
    match ArcSealer::from_key(rsa)
        .domain(key.domain.as_str())
        .selector(key.selector.as_str())
        // RFC 8617 §4.1.2: as DKIM's, plus the DKIM signatures that travel with the message;
        // never ARC-Seal (§5.1.1).
        .headers(SIGNED_HEADERS.into_iter().chain(["DKIM-Signature"]))
        .seal(&parsed, &results, &arc)
    {
        Ok(set) => Some(set.to_header()),
        Err(e) => {
            tracing::warn!(error = %e, "ARC sealing failed; forwarding without a seal");
            None
        }
    }
}

/// The client address in the Received field we added when the message came in
/// (`from HELO (IP) by HOSTNAME (Postfach)`).
fn received_client(message: &[u8], hostname: &str) -> Option<IpAddr> {
    use postfach_core::mail::header_block::HeaderBlock;
    let block = HeaderBlock::parse(message).ok()?;
    let ours = format!("by {hostname} (Postfach)");
    block.named("Received").find_map(|f| {
        let v = String::from_utf8_lossy(block.value(f)).into_owned();
        if !v.contains(&ours) {
            return None;
        }
        let open = v.find('(')?;
        let close = v[open..].find(')')? + open;
        v[open + 1..close].trim().parse().ok()
    })
}

pub(crate) fn strip_return_path(blob: &[u8]) -> Vec<u8> {
    let mut rest = blob;
    while rest.len() >= 12 && rest[..12].eq_ignore_ascii_case(b"Return-Path:") {
        match rest.windows(2).position(|w| w == b"\r\n") {
            Some(end) => rest = &rest[end + 2..],
            None => break,
        }
    }
    rest.to_vec()
}

/// The servers to try for `domain`, best first.
async fn targets(smtp: &Smtp, domain: &str) -> Result<Vec<(String, u16)>, Outcome> {
    if let Some(route) = smtp.cfg.route_for(domain) {
        return Ok(vec![route]);
    }
    let port = smtp.cfg.queue.mx_port;
    match smtp
        .auth
        .mx_lookup(domain, None::<&NoCache<Box<str>, RecordSet<MX>>>)
        .await
    {
        Ok(set) => {
            let mut hosts = Vec::new();
            for mx in set.rrset.iter() {
                for host in mx.exchanges.iter() {
                    let host = host.trim_end_matches('.');
                    // RFC 7505: a "null MX" says the domain accepts no mail at all.
                    if host.is_empty() {
                        return Err(Outcome::Permanent {
                            reply: format!("556 5.1.10 {domain} does not accept mail (null MX)"),
                            remote: None,
                        });
                    }
                    hosts.push((host.to_string(), port));
                }
            }
            if hosts.is_empty() {
                hosts.push((domain.to_string(), port));
            }
            Ok(hosts)
        }
        // RFC 5321 §5.1: without MX records, the domain's own address is the mail server.
        Err(mail_auth::Error::Dns(DnsError::RecordNotFound(
            hickory_resolver::proto::op::ResponseCode::NoError,
        ))) => Ok(vec![(domain.to_string(), port)]),
        Err(mail_auth::Error::Dns(DnsError::RecordNotFound(_))) => Err(Outcome::Permanent {
            reply: format!("550 5.1.2 The domain {domain} does not exist"),
            remote: None,
        }),
        Err(e) => Err(Outcome::Temporary(format!(
            "DNS lookup of {domain} failed: {e}"
        ))),
    }
}

async fn addresses(smtp: &Smtp, host: &str) -> Vec<IpAddr> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return vec![ip];
    }
    smtp.auth
        .ip_lookup(
            host,
            IpLookupStrategy::Ipv4thenIpv6,
            4,
            None::<&NoCache<Box<str>, RecordSet<std::net::Ipv4Addr>>>,
            None::<&NoCache<Box<str>, RecordSet<std::net::Ipv6Addr>>>,
        )
        .await
        .unwrap_or_default()
}

/// One SMTP reply as text: `550 5.1.1 User unknown`.
fn reply_text(r: &smtp_proto::Response<String>) -> String {
    let esc = r.esc;
    let message = r.message.replace(['\r', '\n'], " ");
    if esc[0] > 0 {
        format!("{} {}.{}.{} {}", r.code, esc[0], esc[1], esc[2], message)
    } else {
        format!("{} {}", r.code, message)
    }
}

fn by_code(r: &smtp_proto::Response<String>, remote: &str) -> Outcome {
    match r.code {
        200..=299 => Outcome::Delivered,
        500..=599 => Outcome::Permanent {
            reply: reply_text(r),
            remote: Some(remote.to_string()),
        },
        _ => Outcome::Temporary(format!("{} (from {remote})", reply_text(r))),
    }
}

enum Attempt {
    /// The server took part: these are the outcomes.
    Done(Vec<Outcome>),
    /// Could not talk to this server; try the next one.
    Next(String),
}

async fn transact<T: AsyncRead + AsyncWrite + Unpin>(
    client: &mut SmtpClient<T>,
    remote: &str,
    entry: &QueueEntry,
    message: &[u8],
    rcpts: &[&QueueRcpt],
) -> Result<Vec<Outcome>, mail_send::Error> {
    let from = client
        .cmd(format!("MAIL FROM:<{}>\r\n", entry.mail_from).as_bytes())
        .await?;
    if from.code / 100 != 2 {
        let o = by_code(&from, remote);
        return Ok(vec![o; rcpts.len()]);
    }
    let mut outcomes = Vec::with_capacity(rcpts.len());
    for r in rcpts {
        let resp = client
            .cmd(format!("RCPT TO:<{}>\r\n", r.rcpt).as_bytes())
            .await?;
        outcomes.push(by_code(&resp, remote));
    }
    if !outcomes.contains(&Outcome::Delivered) {
        let _ = client.cmd(b"RSET\r\n").await;
        return Ok(outcomes);
    }
    let data = client.cmd(b"DATA\r\n").await?;
    let result = if data.code == 354 {
        // The transparency procedure is applied by write_message; it adds the final
        // "<CRLF>.<CRLF>", so the message's own last line end is left off.
        let body = message.strip_suffix(b"\r\n").unwrap_or(message);
        client.write_message(body).await?;
        client.read().await?
    } else {
        data
    };
    let verdict = by_code(&result, remote);
    for o in outcomes.iter_mut() {
        if *o == Outcome::Delivered {
            *o = verdict.clone();
        }
    }
    let _ = client.cmd(b"QUIT\r\n").await;
    Ok(outcomes)
}

async fn attempt(
    smtp: &Smtp,
    addr: SocketAddr,
    host: &str,
    entry: &QueueEntry,
    message: &[u8],
    rcpts: &[&QueueRcpt],
    use_tls: bool,
) -> Attempt {
    let timeout = Duration::from_secs(smtp.cfg.queue.timeout_seconds);
    let remote = format!("{host} [{}]", addr.ip());
    let mut client = match SmtpClient::connect(addr, timeout).await {
        Ok(c) => c,
        Err(e) => return Attempt::Next(format!("cannot connect to {remote}: {e}")),
    };
    let greeting = match client.read().await {
        Ok(g) => g,
        Err(e) => return Attempt::Next(format!("{remote} did not greet: {e}")),
    };
    if greeting.code / 100 != 2 {
        return Attempt::Next(format!("{} (from {remote})", reply_text(&greeting)));
    }
    let ehlo = match client.ehlo(&smtp.cfg.hostname).await {
        Ok(e) => e,
        Err(e) => return Attempt::Next(format!("EHLO refused by {remote}: {e}")),
    };
    let done = |r: Result<Vec<Outcome>, mail_send::Error>| match r {
        Ok(o) => Attempt::Done(o),
        Err(e) => Attempt::Done(vec![
            Outcome::Temporary(format!(
                "conversation with {remote} failed: {e}"
            ));
            rcpts.len()
        ]),
    };
    if use_tls && ehlo.has_capability(EXT_START_TLS) {
        // Opportunistic TLS (RFC 3207): encrypt whenever offered; certificates of MX hosts
        // are not verified (no MTA-STS/DANE yet), as in every MTA's default "may" level.
        let connector = match mail_send::smtp::tls::build_tls_connector(true) {
            Ok(c) => c,
            Err(e) => return Attempt::Next(format!("TLS setup failed: {e}")),
        };
        let mut tls = match client.start_tls(&connector, host).await {
            Ok(t) => t,
            Err(e) => {
                return Attempt::Next(format!(
                    "STARTTLS with {remote} failed: {e}; retrying without TLS"
                ));
            }
        };
        if let Err(e) = tls.ehlo(&smtp.cfg.hostname).await {
            return Attempt::Next(format!("EHLO after STARTTLS refused by {remote}: {e}"));
        }
        done(transact(&mut tls, &remote, entry, message, rcpts).await)
    } else {
        done(transact(&mut client, &remote, entry, message, rcpts).await)
    }
}

/// Delivers `message` to `rcpts` (all of `domain`); one outcome per recipient, same order.
pub(crate) async fn deliver(
    smtp: &Smtp,
    entry: &QueueEntry,
    message: &[u8],
    domain: &str,
    rcpts: &[&QueueRcpt],
) -> Vec<Outcome> {
    let hosts = match targets(smtp, domain).await {
        Ok(h) => h,
        Err(o) => return vec![o; rcpts.len()],
    };
    let mut last = format!("no mail server for {domain} could be reached");
    for (host, port) in hosts {
        let ips = addresses(smtp, &host).await;
        if ips.is_empty() {
            last = format!("the mail server {host} has no address");
            continue;
        }
        for ip in ips {
            let addr = SocketAddr::new(ip, port);
            match attempt(smtp, addr, &host, entry, message, rcpts, true).await {
                Attempt::Done(outcomes) => return outcomes,
                Attempt::Next(why) if why.ends_with("retrying without TLS") => {
                    match attempt(smtp, addr, &host, entry, message, rcpts, false).await {
                        Attempt::Done(outcomes) => return outcomes,
                        Attempt::Next(why) => last = why,
                    }
                }
                Attempt::Next(why) => last = why,
            }
        }
    }
    vec![Outcome::Temporary(last); rcpts.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_path_is_stripped_for_relaying() {
        let blob = b"Return-Path: <a@b.example>\r\nReceived: x\r\n\r\nbody\r\n";
        assert_eq!(strip_return_path(blob), b"Received: x\r\n\r\nbody\r\n");
        assert_eq!(
            strip_return_path(b"Subject: s\r\n\r\n"),
            b"Subject: s\r\n\r\n"
        );
    }
}
