//! SMTP settings from `postfach.toml` (`[smtp]`, `[queue]`, `[dns]`, `[routes]`). Every limit
//! of a session is here, configurable, with a default an operator would pick.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpSettings {
    /// Largest message accepted, in bytes (advertised as SIZE, RFC 1870).
    pub max_message_size: u64,
    /// Bytes all messages in transit may hold in memory together (DATA/BDAT buffers and the
    /// copies the verdict makes, counted as three times the message); past it a message is
    /// refused with `452 4.3.1` for the client to try again.
    pub max_message_memory: u64,
    /// Recipients per message (O3: 100, "whatever the field").
    pub max_recipients: usize,
    /// Longest command line, CRLF included (RFC 5321 §4.5.3.1.4 asks for at least 512; the
    /// parser's ceiling is 4096).
    pub max_line_length: usize,
    /// Simultaneous connections per client IP.
    pub max_connections_per_ip: usize,
    /// New connections per client IP per minute.
    pub connections_per_minute_per_ip: u32,
    /// Commands per client IP per minute.
    pub commands_per_minute_per_ip: u32,
    /// Protocol errors tolerated in one session before it is closed.
    pub max_errors: usize,
    /// Idle time allowed between commands (RFC 5321 §4.5.3.2.7 asks for at least 5 minutes).
    pub command_timeout_seconds: u64,
    /// F2: HELO/EHLO names refused in addition to non-FQDNs, IP literals and `localhost`.
    pub banned_helo: Vec<String>,
    /// F4: refuse at DATA mail that fails DMARC of a domain publishing `p=reject`.
    pub dmarc_reject: bool,
    /// S4: pause before answering a failed AUTH, doubled with each further failure in the
    /// session (milliseconds).
    pub auth_failure_delay_ms: u64,
}

impl Default for SmtpSettings {
    fn default() -> Self {
        SmtpSettings {
            max_message_size: 50 * 1024 * 1024,
            max_message_memory: 256 * 1024 * 1024,
            max_recipients: 100,
            max_line_length: 4096,
            max_connections_per_ip: 20,
            connections_per_minute_per_ip: 120,
            commands_per_minute_per_ip: 1200,
            max_errors: 10,
            command_timeout_seconds: 300,
            banned_helo: Vec::new(),
            dmarc_reject: true,
            auth_failure_delay_ms: 1000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueSettings {
    /// How long a message is retried before it bounces (O1: 5 days).
    pub lifetime_hours: i64,
    /// First retry after this many seconds; each later one waits twice as long…
    pub retry_initial_seconds: i64,
    /// … up to this.
    pub retry_max_seconds: i64,
    /// Send all remote mail through this relay (`host:port`); empty = deliver to MX hosts.
    pub smarthost: String,
    /// Port of remote MX hosts (25; a test setup may change it).
    pub mx_port: u16,
    /// Seconds to wait for a remote server's answers.
    pub timeout_seconds: u64,
    /// Messages delivered at once. Local deliveries mostly wait for the store; enough of them
    /// in flight fill the group commit's batches (performance: 8 workers delivered 20 % fewer
    /// messages per second than 32 under the bench's ingest load).
    pub workers: usize,
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            lifetime_hours: 5 * 24,
            retry_initial_seconds: 300,
            retry_max_seconds: 4 * 3600,
            smarthost: String::new(),
            mx_port: 25,
            timeout_seconds: 60,
            workers: 32,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsSettings {
    /// Resolvers as `ip:port`; empty = the system's (/etc/resolv.conf).
    pub nameservers: Vec<String>,
    /// Seconds per DNS query.
    pub timeout_seconds: u64,
    /// D1: an SPF record of the platform for customer domains to include; empty = `mx`.
    pub spf_include: String,
    /// D1: DMARC policy recommended for customer domains.
    pub dmarc_policy: String,
}

impl Default for DnsSettings {
    fn default() -> Self {
        DnsSettings {
            nameservers: Vec::new(),
            timeout_seconds: 5,
            spf_include: String::new(),
            dmarc_policy: "quarantine".into(),
        }
    }
}

/// Sender authentication (`[auth]`, F4).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// Forwarders (mailing lists, other providers) whose ARC seal we trust: when the chain
    /// passes and its newest seal is by one of these domains, a DMARC `p=reject` failure is
    /// not refused (RFC 7489 §7.2 local policy; RFC 8617 §7.2). Empty: trust none.
    pub trusted_arc_sealers: Vec<String>,
}

/// Everything the SMTP side needs besides the service layer and TLS.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub hostname: String,
    /// This node's identity for queue claims (stable across restarts of the node).
    pub node_id: String,
    pub smtp: SmtpSettings,
    pub queue: QueueSettings,
    pub dns: DnsSettings,
    pub auth: AuthSettings,
    /// Static routes: recipient domain → `host:port` (O1 operator routes).
    pub routes: BTreeMap<String, String>,
    /// The spam filter's backend (F5).
    pub spam: postfach_delivery::rspamd::SpamSettings,
}

impl SmtpConfig {
    pub fn validate(&self) -> Result<(), String> {
        self.spam.validate()?;
        let s = &self.smtp;
        if s.max_message_size < 1024 {
            return Err("smtp.max_message_size must be at least 1024".into());
        }
        if s.max_message_memory < 3 * s.max_message_size {
            return Err(
                "smtp.max_message_memory must hold at least one largest message (3 × smtp.max_message_size)"
                    .into(),
            );
        }
        if !(512..=4096).contains(&s.max_line_length) {
            return Err("smtp.max_line_length must be between 512 and 4096".into());
        }
        if !(1..=1000).contains(&s.max_recipients) {
            return Err("smtp.max_recipients must be between 1 and 1000".into());
        }
        if s.max_connections_per_ip == 0
            || s.connections_per_minute_per_ip == 0
            || s.commands_per_minute_per_ip == 0
        {
            return Err("smtp: connection and command limits must be at least 1".into());
        }
        if s.command_timeout_seconds < 10 {
            return Err("smtp.command_timeout_seconds must be at least 10".into());
        }
        let q = &self.queue;
        if q.lifetime_hours < 0 {
            return Err("queue.lifetime_hours must not be negative".into());
        }
        if q.retry_initial_seconds < 1 || q.retry_max_seconds < q.retry_initial_seconds {
            return Err("queue.retry_initial_seconds must be at least 1 and at most queue.retry_max_seconds".into());
        }
        if q.workers == 0 {
            return Err("queue.workers must be at least 1".into());
        }
        if !q.smarthost.is_empty() && parse_host_port(&q.smarthost).is_none() {
            return Err(format!(
                "queue.smarthost: {:?} is not host:port",
                q.smarthost
            ));
        }
        for ns in &self.dns.nameservers {
            if ns.parse::<std::net::SocketAddr>().is_err() {
                return Err(format!("dns.nameservers: {ns:?} is not ip:port"));
            }
        }
        if !["none", "quarantine", "reject"].contains(&self.dns.dmarc_policy.as_str()) {
            return Err("dns.dmarc_policy: use none, quarantine or reject".into());
        }
        for d in &self.auth.trusted_arc_sealers {
            if postfach_core::validate::domain(d).is_err() {
                return Err(format!(
                    "auth.trusted_arc_sealers: {d:?} is not a domain name"
                ));
            }
        }
        for (domain, target) in &self.routes {
            if parse_host_port(target).is_none() {
                return Err(format!("routes.{domain}: {target:?} is not host:port"));
            }
        }
        Ok(())
    }

    /// Where mail for `domain` goes, if an operator route or the smarthost says so.
    pub fn route_for(&self, domain: &str) -> Option<(String, u16)> {
        self.routes
            .get(domain)
            .and_then(|t| parse_host_port(t))
            .or_else(|| parse_host_port(&self.queue.smarthost))
    }
}

/// `host:port` or `[v6]:port`.
pub fn parse_host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port.parse().ok()?;
    (!host.is_empty() && port > 0).then(|| (host.to_string(), port))
}
