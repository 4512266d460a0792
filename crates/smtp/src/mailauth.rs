//! F4: authentication of inbound mail — SPF (RFC 7208), DKIM (RFC 6376), ARC (RFC 8617) and
//! DMARC (RFC 7489) with `mail-auth` — and the `Authentication-Results` header (RFC 8601) that
//! records them. A DMARC failure of a domain that publishes `p=reject` is refused in the
//! session, so the sender's server bounces it and nothing is accepted that must not be.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dmarc::Policy;
use mail_auth::{
    AuthenticatedMessage, AuthenticationResults, DmarcResult, MessageAuthenticator,
    dmarc::verify::DmarcParameters, spf::verify::SpfParameters,
};

use crate::config::DnsSettings;

/// The resolver for SPF/DKIM/DMARC lookups and MX resolution: the configured nameservers, or
/// the system's.
pub fn authenticator(dns: &DnsSettings) -> Result<MessageAuthenticator, String> {
    let mut opts = ResolverOpts::default();
    opts.timeout = Duration::from_secs(dns.timeout_seconds.max(1));
    opts.attempts = 2;
    if dns.nameservers.is_empty() {
        return MessageAuthenticator::new_system_conf()
            .map_err(|e| format!("dns: cannot use the system resolver: {e}"));
    }
    let mut servers = Vec::new();
    for ns in &dns.nameservers {
        let addr: SocketAddr = ns
            .parse()
            .map_err(|_| format!("dns.nameservers: {ns:?} is not ip:port"))?;
        let mut udp = ConnectionConfig::udp();
        udp.port = addr.port();
        let mut tcp = ConnectionConfig::tcp();
        tcp.port = addr.port();
        servers.push(NameServerConfig::new(addr.ip(), true, vec![udp, tcp]));
    }
    MessageAuthenticator::new(ResolverConfig::from_name_servers(servers), opts)
        .map_err(|e| format!("dns.nameservers: {e}"))
}

/// What the checks found.
pub struct InboundAuth {
    /// `Authentication-Results: …\r\n`, to prepend to the message.
    pub header: String,
    /// Set when the message must be refused: the RFC5322.From domain whose DMARC policy
    /// is `reject`.
    pub dmarc_reject: Option<String>,
}

impl InboundAuth {
    /// The header when the checks could not finish in time (RFC 8601 §2.7: temperror).
    pub fn timed_out(hostname: &str) -> Self {
        InboundAuth {
            header: format!(
                "Authentication-Results: {hostname};\r\n\tspf=temperror (DNS timeout);\r\n\tdkim=temperror (DNS timeout);\r\n\tdmarc=temperror (DNS timeout)\r\n"
            ),
            dmarc_reject: None,
        }
    }
}

/// Runs SPF, DKIM, ARC and DMARC for an inbound message.
pub async fn authenticate(
    auth: &MessageAuthenticator,
    hostname: &str,
    raw: &[u8],
    ip: IpAddr,
    helo: &str,
    mail_from: &str,
) -> InboundAuth {
    let helo = helo.trim_start_matches('[').trim_end_matches(']');
    let spf = if mail_from.is_empty() {
        auth.verify_spf(SpfParameters::verify_ehlo(ip, helo, hostname))
            .await
    } else {
        auth.verify_spf(SpfParameters::verify_mail_from(
            ip, helo, hostname, mail_from,
        ))
        .await
    };
    let Some(message) = AuthenticatedMessage::parse(raw) else {
        // Not a message mail-auth can read (no header section): record SPF only.
        let header = AuthenticationResults::new(hostname)
            .with_spf_mailfrom_result(&spf, ip, mail_from, helo)
            .to_header();
        return InboundAuth {
            header,
            dmarc_reject: None,
        };
    };
    let dkim = auth.verify_dkim(&message).await;
    let arc = auth.verify_arc(&message).await;
    let mail_from_domain = match mail_from.rsplit_once('@') {
        Some((_, d)) => d,
        None => helo,
    };
    let dmarc = auth
        .verify_dmarc(DmarcParameters::new(
            &message,
            &dkim,
            mail_from_domain,
            &spf,
        ))
        .await;
    let header_from = message.from.first().map(String::as_str).unwrap_or_default();
    let header = AuthenticationResults::new(hostname)
        .with_dkim_results(&dkim, header_from)
        .with_spf_mailfrom_result(&spf, ip, mail_from, helo)
        .with_arc_result(&arc, ip)
        .with_dmarc_result(&dmarc)
        .to_header();
    // RFC 7489 §6.6.2: DMARC fails when neither an aligned SPF nor an aligned DKIM result
    // passes. A temporary DNS error is not a failure (§6.6.3): such mail is not refused.
    let passed = |r: &DmarcResult| matches!(r, DmarcResult::Pass);
    let temporary = |r: &DmarcResult| matches!(r, DmarcResult::TempError(_));
    let (spf_r, dkim_r) = (dmarc.spf_result(), dmarc.dkim_result());
    let dmarc_reject = (dmarc.policy() == Policy::Reject
        && !passed(spf_r)
        && !passed(dkim_r)
        && !temporary(spf_r)
        && !temporary(dkim_r))
    .then(|| dmarc.domain().to_string());
    InboundAuth {
        header,
        dmarc_reject,
    }
}
