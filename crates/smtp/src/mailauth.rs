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
    ArcOutput, AuthenticatedMessage, AuthenticationResults, DkimResult, DmarcResult,
    MessageAuthenticator, SpfOutput, dmarc::verify::DmarcParameters, spf::verify::SpfParameters,
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
    /// The results in one line (`spf=fail dkim=none arc=none dmarc=fail`) for the log.
    pub summary: String,
}

/// The results in one line for the log, from the typed results — not from our header, whose
/// text holds what the sender wrote (its envelope address, its selectors) and could make a
/// `grep` find a `dmarc=pass` that was never given.
fn summary(
    spf: &SpfOutput,
    dkim: &[mail_auth::DkimOutput<'_>],
    dmarc: &mail_auth::DmarcOutput,
    arc: &ArcOutput<'_>,
) -> String {
    let dkim_word = |r: &DkimResult| match r {
        DkimResult::Pass => "pass",
        DkimResult::Neutral(_) => "neutral",
        DkimResult::Fail(_) => "fail",
        DkimResult::PermError(_) => "permerror",
        DkimResult::TempError(_) => "temperror",
        DkimResult::None => "none",
    };
    let spf_word = match spf.result() {
        mail_auth::SpfResult::Pass => "pass",
        mail_auth::SpfResult::Fail => "fail",
        mail_auth::SpfResult::SoftFail => "softfail",
        mail_auth::SpfResult::Neutral => "neutral",
        mail_auth::SpfResult::TempError => "temperror",
        mail_auth::SpfResult::PermError => "permerror",
        mail_auth::SpfResult::None => "none",
    };
    let dkim_words = if dkim.is_empty() {
        "none".to_string()
    } else {
        dkim.iter()
            .map(|d| dkim_word(d.result()))
            .collect::<Vec<_>>()
            .join(",")
    };
    let (s, d) = (dmarc.spf_result(), dmarc.dkim_result());
    let any = |f: fn(&DmarcResult) -> bool| f(s) || f(d);
    let dmarc_word = if any(|r| matches!(r, DmarcResult::Pass)) {
        "pass"
    } else if any(|r| matches!(r, DmarcResult::TempError(_))) {
        "temperror"
    } else if any(|r| matches!(r, DmarcResult::PermError(_))) {
        "permerror"
    } else if matches!(s, DmarcResult::None) && matches!(d, DmarcResult::None) {
        "none"
    } else {
        "fail"
    };
    format!(
        "spf={spf_word} dkim={dkim_words} dmarc={dmarc_word} arc={}",
        arc_word(arc)
    )
}

/// RFC 8617 §4.4 and the IANA "arc" result registry of RFC 8601: `none`, `pass` or `fail`.
/// `mail-auth` also reports `neutral`, `permerror` and `temperror`; a chain that cannot be
/// validated is not a pass, and nothing may trust it.
pub(crate) fn arc_word(arc: &ArcOutput<'_>) -> &'static str {
    match arc.result() {
        DkimResult::Pass => "pass",
        DkimResult::None => "none",
        _ => "fail",
    }
}

/// The domain of the newest ARC-Seal when the chain passed (RFC 8617 §5.2: the sealer the
/// receiver may decide to trust).
/// Only a sealer that recorded `dmarc=pass` in its ARC-Authentication-Results vouches for the
/// author: a trusted forwarder that relays whatever it was given must not turn a forgery into
/// an accepted message (RFC 8617 §7.2: the receiver decides what a seal is worth).
fn arc_sealer(arc: &ArcOutput<'_>) -> Option<String> {
    if !matches!(arc.result(), DkimResult::Pass) {
        return None;
    }
    let newest = arc.sets().last()?;
    let recorded = unquoted(&String::from_utf8_lossy(newest.results.value)).to_ascii_lowercase();
    let dmarc: Vec<&str> = recorded
        .split(';')
        .filter_map(|r| r.split_whitespace().next())
        .filter(|w| w.starts_with("dmarc="))
        .collect();
    let dmarc_passed = !dmarc.is_empty() && dmarc.iter().all(|w| *w == "dmarc=pass");
    dmarc_passed.then(|| {
        newest
            .seal
            .header
            .d
            .trim_end_matches('.')
            .to_ascii_lowercase()
    })
}

/// SPF (RFC 7208) of the envelope sender, or of the HELO name for the null sender
/// (§2.4: `postmaster@` the HELO name).
pub async fn spf(
    auth: &MessageAuthenticator,
    ip: IpAddr,
    helo: &str,
    hostname: &str,
    mail_from: &str,
) -> SpfOutput {
    if mail_from.is_empty() {
        auth.verify_spf(SpfParameters::verify_ehlo(ip, helo, hostname))
            .await
    } else {
        auth.verify_spf(SpfParameters::verify_mail_from(
            ip, helo, hostname, mail_from,
        ))
        .await
    }
}

/// An Authentication-Results value without its quoted strings and comments (RFC 8601 §2.2:
/// a value like `smtp.mailfrom="x; dmarc=pass"@…` holds a ";" that separates nothing).
fn unquoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let (mut quoted, mut depth, mut escaped) = (false, 0usize, false);
    for c in value.chars() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted || depth > 0 => escaped = true,
            '"' if depth == 0 => {
                quoted = !quoted;
                out.push(' ');
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => depth -= 1,
            _ if quoted || depth > 0 => {}
            c => out.push(c),
        }
    }
    out
}

/// Runs SPF, DKIM, ARC and DMARC for an inbound message whose header section passed
/// `header_block::HeaderBlock::parse` and whose author is `author_domain` (so `mail-auth`
/// reads the same single From address: DMARC is never skipped for want of one).
/// `trusted_sealers` are the forwarders whose `arc=pass` overrides a DMARC reject (RFC 7489
/// §7.2 local policy, RFC 8617 §7.2).
pub async fn authenticate(
    auth: &MessageAuthenticator,
    hostname: &str,
    message: Option<&AuthenticatedMessage<'_>>,
    ip: IpAddr,
    helo: &str,
    mail_from: &str,
    trusted_sealers: &[String],
) -> InboundAuth {
    let helo = helo.trim_start_matches('[').trim_end_matches(']');
    let spf = spf(auth, ip, helo, hostname, mail_from).await;
    let Some(message) = message else {
        // Unreachable for a message that passed the header check (it has a From field); kept
        // fail-closed: no verdict, no acceptance.
        return InboundAuth {
            header: String::new(),
            dmarc_reject: Some(String::from("(unreadable header)")),
            summary: "unreadable".into(),
        };
    };
    let dkim = auth.verify_dkim(message).await;
    let arc = auth.verify_arc(message).await;
    let mail_from_domain = match mail_from.rsplit_once('@') {
        Some((_, d)) => d,
        None => helo,
    };
    let dmarc = auth
        .verify_dmarc(DmarcParameters::new(message, &dkim, mail_from_domain, &spf))
        .await;
    let header_from = message.from.first().map(String::as_str).unwrap_or_default();
    let mut header = AuthenticationResults::new(hostname)
        .with_dkim_results(&dkim, header_from)
        .with_spf_mailfrom_result(&spf, ip, mail_from, helo)
        .with_dmarc_result(&dmarc)
        .to_header();
    let trusted = arc_sealer(&arc).filter(|d| {
        trusted_sealers
            .iter()
            .any(|t| t.trim_end_matches('.').eq_ignore_ascii_case(d))
    });
    // Our own arc= entry, in the registry's words (see `arc_word`); a chain of a trusted
    // forwarder says so in a comment, which the spam scorer reads (F5: the forwarder's hop
    // broke SPF and DMARC, its seal vouches for what it received).
    if header.ends_with("\r\n") {
        header.truncate(header.len() - 2);
        let comment = trusted
            .as_deref()
            .map(|d| format!(" (trusted sealer {d})"))
            .unwrap_or_default();
        header.push_str(&format!(
            ";\r\n\tarc={}{comment} smtp.remote-ip={ip}\r\n",
            arc_word(&arc)
        ));
    }
    // RFC 7489 §6.6.2: DMARC fails when neither an aligned SPF nor an aligned DKIM result
    // passes. A temporary DNS error is not a failure (§6.6.3): such mail is not refused.
    let passed = |r: &DmarcResult| matches!(r, DmarcResult::Pass);
    let temporary = |r: &DmarcResult| matches!(r, DmarcResult::TempError(_));
    let (spf_r, dkim_r) = (dmarc.spf_result(), dmarc.dkim_result());
    let fails = dmarc.policy() == Policy::Reject
        && !passed(spf_r)
        && !passed(dkim_r)
        && !temporary(spf_r)
        && !temporary(dkim_r);
    let mut summary = summary(&spf, &dkim, &dmarc, &arc);
    if let (true, Some(sealer)) = (fails, &trusted) {
        summary.push_str(&format!(
            " (DMARC reject overridden: arc=pass sealed by trusted {sealer})"
        ));
    }
    let dmarc_reject = (fails && trusted.is_none()).then(|| dmarc.domain().to_string());
    InboundAuth {
        header,
        dmarc_reject,
        summary,
    }
}

/// M2: the domain check of the service layer asks DNS through the same resolvers as the
/// mail checks (`[dns] nameservers`).
pub struct DomainProbe(pub std::sync::Arc<MessageAuthenticator>);

/// "No such record" is an empty answer, not an error.
fn none_if_missing<T>(r: mail_auth::Result<Vec<T>>) -> Result<Vec<T>, String> {
    match r {
        Ok(v) => Ok(v),
        Err(mail_auth::Error::Dns(mail_auth::DnsError::RecordNotFound(_))) => Ok(Vec::new()),
        Err(e) => Err(e.to_string()),
    }
}

#[async_trait::async_trait]
impl postfach_core::DomainDns for DomainProbe {
    async fn txt(&self, name: &str) -> Result<Vec<String>, String> {
        let fqdn = format!("{}.", name.trim_end_matches('.'));
        let lookup = async {
            let answer = self.0.0.txt_lookup(fqdn.as_str()).await?;
            Ok(answer
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    hickory_resolver::proto::rr::RData::TXT(txt) => Some(
                        txt.txt_data
                            .iter()
                            .map(|s| String::from_utf8_lossy(s).into_owned())
                            .collect::<String>(),
                    ),
                    _ => None,
                })
                .collect())
        };
        none_if_missing(lookup.await)
    }
}

#[cfg(test)]
mod tests {
    use super::unquoted;

    #[test]
    fn quoted_semicolons_separate_nothing() {
        let v = unquoted(
            " i=1; lists.example; spf=pass smtp.mailfrom=\"x; dmarc=pass y\"@a.test; (c; dmarc=pass) dmarc=fail header.from=bank.test",
        );
        let words: Vec<&str> = v
            .split(';')
            .filter_map(|r| r.split_whitespace().next())
            .collect();
        assert_eq!(words, ["i=1", "lists.example", "spf=pass", "dmarc=fail"]);
    }
}
