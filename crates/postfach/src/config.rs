//! `postfach.toml`: the one configuration file (X1). Every option has a default; the file
//! written on first run lists them all, commented. `POSTFACH_<SECTION>_<KEY>` environment
//! variables override single options (e.g. `POSTFACH_LISTEN_HTTP=0.0.0.0:80`,
//! `POSTFACH_STORE_URL=postgres://…`, `POSTFACH_OFFERS_STARTER_DAILY_SEND_LIMIT=200`).
//! A bad option is reported in one line that names it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use postfach_core::Policy;
use postfach_core::policy::{ApiPolicy, Limits, Offer, PasswordRules, Platform, default_offers};
use postfach_imap::ImapSettings;
use postfach_pop3::Pop3Settings;
use postfach_smtp::{
    AuthSettings, DnsSettings, QueueSettings, SmtpConfig, SmtpSettings, SpamSettings,
};
use serde::{Deserialize, Serialize};
use toml::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// The name this server answers with (SMTP greeting, TLS certificate, autoconfig).
    pub hostname: String,
    /// Where mail to `postmaster` goes when the domain's administrators cannot be reached
    /// (and the bare `postmaster`); empty: the platform operators (RFC 5321 §4.5.1).
    pub postmaster: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            hostname: default_hostname(),
            postmaster: String::new(),
        }
    }
}

/// The machine's name if it is fully qualified, `localhost` otherwise.
fn default_hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_lowercase())
        .filter(|h| h.contains('.') && postfach_core::validate::domain(h).is_ok())
        .unwrap_or_else(|| "localhost".into())
}

/// Listener addresses. The embedded profile uses unprivileged ports on loopback; a
/// deployment sets 25/587/465/143/993/110/995/4190/443 on its public address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Listeners {
    pub smtp: SocketAddr,
    pub submission: SocketAddr,
    pub submissions: SocketAddr,
    pub imap: SocketAddr,
    pub imaps: SocketAddr,
    pub pop3: SocketAddr,
    pub pop3s: SocketAddr,
    pub managesieve: SocketAddr,
    pub http: SocketAddr,
    /// HTTPS with the certificate of `[tls]`; empty = off.
    pub https: String,
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

impl Default for Listeners {
    fn default() -> Self {
        Listeners {
            smtp: loopback(2525),
            submission: loopback(5587),
            submissions: loopback(4465),
            imap: loopback(1143),
            imaps: loopback(1993),
            pop3: loopback(1110),
            pop3s: loopback(1995),
            managesieve: loopback(4190),
            http: loopback(8080),
            https: String::new(),
        }
    }
}

/// The ports mail clients are told to use (P6 auto-configuration, RFC 6186 SRV records), when
/// they differ from the listeners' (e.g. port forwarding from 993 to an unprivileged 1993).
/// 0 = the listener's port.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientPorts {
    pub imaps_port: u16,
    pub pop3s_port: u16,
    pub submission_port: u16,
    pub submissions_port: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain; relative paths are inside the data directory. A self-signed
    /// certificate for `server.hostname` is created here on first run if neither file exists.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert: "tls/cert.pem".into(),
            key: "tls/key.pem".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Metadata store: `sqlite:FILE` (inside the data directory) or `postgres://USER@HOST/DB`.
    pub url: String,
    /// Directory of message bodies (content-addressed files), inside the data directory.
    pub blobs: PathBuf,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: "sqlite:postfach.sqlite3".into(),
            blobs: "blobs".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `error`, `warn`, `info`, `debug`, `trace`, or a tracing filter like `info,postfach_web=debug`.
    pub level: String,
    /// `text` for people, `json` for log collectors.
    pub format: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: "text".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub listen: Listeners,
    pub clients: ClientPorts,
    pub tls: TlsConfig,
    pub store: StoreConfig,
    pub log: LogConfig,
    pub limits: Limits,
    pub passwords: PasswordRules,
    pub api: ApiPolicy,
    pub smtp: SmtpSettings,
    pub queue: QueueSettings,
    pub dns: DnsSettings,
    pub auth: AuthSettings,
    pub imap: ImapSettings,
    pub pop3: Pop3Settings,
    pub spam: SpamSettings,
    /// O1: static routes, recipient domain → `host:port`.
    pub routes: BTreeMap<String, String>,
    pub offers: BTreeMap<String, Offer>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: ServerConfig::default(),
            listen: Listeners::default(),
            clients: ClientPorts::default(),
            tls: TlsConfig::default(),
            store: StoreConfig::default(),
            log: LogConfig::default(),
            limits: Limits::default(),
            passwords: PasswordRules::default(),
            api: ApiPolicy::default(),
            smtp: SmtpSettings::default(),
            queue: QueueSettings::default(),
            dns: DnsSettings::default(),
            auth: AuthSettings::default(),
            imap: ImapSettings::default(),
            pop3: Pop3Settings::default(),
            spam: SpamSettings::default(),
            routes: BTreeMap::new(),
            offers: default_offers(),
        }
    }
}

impl Config {
    pub fn policy(&self) -> Policy {
        let (c, l) = (&self.clients, &self.listen);
        let or_listener = |port: u16, listener: SocketAddr| {
            if port == 0 { listener.port() } else { port }
        };
        Policy {
            offers: self.offers.clone(),
            limits: self.limits.clone(),
            passwords: self.passwords.clone(),
            api: self.api.clone(),
            platform: Platform {
                hostname: self.server.hostname.clone(),
                postmaster: Some(self.server.postmaster.trim().to_string())
                    .filter(|s| !s.is_empty()),
                spf_include: Some(self.dns.spf_include.clone()).filter(|s| !s.is_empty()),
                dmarc_policy: self.dns.dmarc_policy.clone(),
                submission_port: or_listener(c.submission_port, l.submission),
                submissions_port: or_listener(c.submissions_port, l.submissions),
                imaps_port: or_listener(c.imaps_port, l.imaps),
                pop3s_port: or_listener(c.pop3s_port, l.pop3s),
            },
        }
    }

    pub fn smtp(&self, node_id: &str) -> SmtpConfig {
        SmtpConfig {
            hostname: self.server.hostname.clone(),
            node_id: node_id.to_string(),
            smtp: self.smtp.clone(),
            queue: self.queue.clone(),
            dns: self.dns.clone(),
            auth: self.auth.clone(),
            routes: self.routes.clone(),
            spam: self.spam.clone(),
        }
    }

    /// Paths in the configuration are relative to the data directory.
    pub fn resolve(&self, data_dir: &Path, p: &Path) -> PathBuf {
        data_dir.join(p)
    }

    /// The HTTPS listener, if configured (validated at load time).
    pub fn https(&self) -> Option<SocketAddr> {
        self.listen.https.parse().ok()
    }

    fn validate(&self) -> Result<(), String> {
        postfach_core::validate::login(&format!("admin@{}", self.server.hostname)).map_err(
            |_| {
                format!(
                    "server.hostname: {:?} is not a host name",
                    self.server.hostname
                )
            },
        )?;
        let postmaster = self.server.postmaster.trim();
        if !postmaster.is_empty() && postfach_core::validate::address(postmaster).is_err() {
            return Err(format!(
                "server.postmaster: {postmaster:?} is not an e-mail address (or empty for the operators)"
            ));
        }
        if !self.listen.https.is_empty() && self.listen.https.parse::<SocketAddr>().is_err() {
            return Err(format!(
                "listen.https: {:?} is not an address like 127.0.0.1:8443 (or empty for off)",
                self.listen.https
            ));
        }
        let l = &self.listen;
        let mut seen: Vec<(&str, SocketAddr)> = Vec::new();
        let https = self.https();
        for (name, addr) in [
            ("smtp", Some(l.smtp)),
            ("submission", Some(l.submission)),
            ("submissions", Some(l.submissions)),
            ("imap", Some(l.imap)),
            ("imaps", Some(l.imaps)),
            ("pop3", Some(l.pop3)),
            ("pop3s", Some(l.pop3s)),
            ("managesieve", Some(l.managesieve)),
            ("http", Some(l.http)),
            ("https", https),
        ] {
            let Some(addr) = addr else { continue };
            if addr.port() != 0
                && let Some((other, _)) = seen.iter().find(|(_, a)| *a == addr)
            {
                return Err(format!(
                    "listen.{name}: {addr} is already used by listen.{other}"
                ));
            }
            seen.push((name, addr));
        }
        if self.log.format != "text" && self.log.format != "json" {
            return Err(format!(
                "log.format: {:?}: use \"text\" or \"json\"",
                self.log.format
            ));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err(format!(
                "log.level: {:?} is not a log level or filter",
                self.log.level
            ));
        }
        if self.store.url.is_empty() {
            return Err("store.url: must not be empty".into());
        }
        self.smtp("validation").validate()?;
        self.imap.validate()?;
        self.pop3.validate()?;
        self.policy().validate()
    }
}

/// The commented file written on first run. Kept complete by a test that compares its keys
/// with the defaults.
pub fn default_file(hostname: &str) -> String {
    let offers: String = default_offers()
        .iter()
        .map(|(name, o)| {
            let max = match o.max_addresses {
                Some(m) => format!("max_addresses = {m}"),
                None => "# max_addresses = 1000            # absent: no upper bound".into(),
            };
            format!(
                "[offers.{name}]\nmin_addresses = {}\n{max}\ndaily_send_limit = {}\ncatchall = {}\nstorage_per_address_mib = {}\n\n",
                o.min_addresses, o.daily_send_limit, o.catchall, o.storage_per_address_mib
            )
        })
        .collect();
    format!(
        r#"# Postfach configuration. Every option is shown with its default value.
# Relative paths are inside the data directory. Any option can be overridden by an
# environment variable POSTFACH_<SECTION>_<KEY>, e.g. POSTFACH_LISTEN_HTTP=0.0.0.0:80.

[server]
# Name of this mail server: SMTP greeting, TLS certificate, client auto-configuration.
hostname = "{hostname}"
# Where mail to postmaster goes when a domain's administrators cannot be reached, and the
# bare <postmaster> (RFC 5321 4.5.1): a hosted mailbox (not itself named postmaster; mail
# to postmaster is never relayed outside). Empty: the platform operators' logins.
postmaster = ""

[listen]
# Where each service listens. The defaults are unprivileged ports on loopback; a real
# deployment uses 25, 587, 465, 143, 993, 110, 995, 4190 and 443 on a public address.
smtp = "127.0.0.1:2525"          # inbound MX (STARTTLS offered)
submission = "127.0.0.1:5587"    # authenticated submission, STARTTLS
submissions = "127.0.0.1:4465"   # authenticated submission, implicit TLS
imap = "127.0.0.1:1143"          # STARTTLS
imaps = "127.0.0.1:1993"         # implicit TLS
pop3 = "127.0.0.1:1110"          # STLS
pop3s = "127.0.0.1:1995"         # implicit TLS
managesieve = "127.0.0.1:4190"
http = "127.0.0.1:8080"          # JSON admin API, Manager, webmail, autoconfig
https = ""                       # e.g. "0.0.0.0:443"; empty = off

[clients]
# Ports mail clients are told to use (auto-configuration, DNS SRV records) when they differ
# from the listeners above, e.g. behind port forwarding; 0 = the listener's port.
imaps_port = 0
pop3s_port = 0
submission_port = 0
submissions_port = 0

[tls]
# PEM files. If neither exists, a self-signed certificate for server.hostname is created.
cert = "tls/cert.pem"
key = "tls/key.pem"

[store]
# Metadata: "sqlite:FILE" (embedded) or "postgres://USER@HOST:PORT/DATABASE" (scale-out).
url = "sqlite:postfach.sqlite3"
# Message bodies (content-addressed files).
blobs = "blobs"

[log]
level = "info"                   # error, warn, info, debug, trace, or a filter
format = "text"                  # text or json

[limits]
# New addresses per mail service per rolling 24 hours (M6).
new_addresses_per_day = 50
# Largest number of rows in one CSV import.
csv_max_rows = 10000

[passwords]
# Minimum length of mail and Manager passwords (at least 8).
min_length = 10

[api]
# Lifetime of a login session of the admin API, in hours.
session_hours = 12

[smtp]
# Largest message accepted, in bytes (advertised as SIZE).
max_message_size = 52428800
# Bytes all messages in transit may hold in memory together (each counted three times: the
# buffer and the verdict's copies); past it a message gets 452 4.3.1 (try again).
max_message_memory = 268435456
# Recipients per message.
max_recipients = 100
# Longest command line in bytes (512 to 4096).
max_line_length = 4096
# Per client IP: connections at once, new connections per minute, commands per minute.
max_connections_per_ip = 20
connections_per_minute_per_ip = 120
commands_per_minute_per_ip = 1200
# Protocol errors tolerated in one session before it is closed.
max_errors = 10
# Idle seconds allowed between commands.
command_timeout_seconds = 300
# HELO/EHLO names refused besides non-FQDNs, IP addresses and localhost.
banned_helo = []
# Refuse mail that fails DMARC of a domain publishing p=reject.
dmarc_reject = true
# Pause before answering a failed AUTH, doubled with each further failure (milliseconds).
auth_failure_delay_ms = 1000

[queue]
# Hours a message is retried before it bounces (0: bounce after the first failed attempt).
lifetime_hours = 120
# First retry after this many seconds, doubling up to retry_max_seconds.
retry_initial_seconds = 300
retry_max_seconds = 14400
# Send all remote mail through this relay ("host:port"); empty = to the MX hosts.
smarthost = ""
# Port of remote MX hosts.
mx_port = 25
# Seconds to wait for a remote server.
timeout_seconds = 60
# Messages delivered at once.
workers = 32

[dns]
# Resolvers for SPF/DKIM/DMARC and MX lookups ("ip:port"); empty = the system's.
nameservers = []
timeout_seconds = 5
# An SPF record of this platform for customer domains to include; empty = "mx".
spf_include = ""
# DMARC policy recommended to customer domains: none, quarantine or reject.
dmarc_policy = "quarantine"

[auth]
# Forwarders (mailing lists, other providers) whose ARC seal is trusted: mail they forward
# that fails DMARC of a p=reject domain is accepted when their ARC chain passes.
trusted_arc_sealers = []

[imap]
# Largest literal (an APPENDed message) in bytes.
max_literal_size = 67108864
# Longest command line outside literals, in bytes.
max_line_length = 65536
# Minutes an idle client may stay connected (RFC 9051 asks for at least 30).
autologout_minutes = 30
# Seconds a client may stay idle before it has logged in.
login_timeout_seconds = 120
# Protocol errors tolerated in one session before it is closed.
max_errors = 20
# Per client IP: connections at once (mail clients open several per account), new
# connections per minute.
max_connections_per_ip = 50
connections_per_minute_per_ip = 300
# Allow LOGIN without TLS from 127.0.0.1/::1 (a webmail or proxy on this host, load tests).
plaintext_auth_on_loopback = false

[pop3]
# Minutes an idle client may stay connected (RFC 1939 asks for at least 10).
autologout_minutes = 10
# Seconds a client may stay idle before it has logged in.
login_timeout_seconds = 120
# Per client IP: connections at once, new connections per minute.
max_connections_per_ip = 20
connections_per_minute_per_ip = 120
# Allow USER/PASS and AUTH without TLS from 127.0.0.1/::1.
plaintext_auth_on_loopback = false

[spam]
# Who scores incoming mail (F5): "builtin" (rules, authentication results and a Bayesian
# classifier trained by moving mail into and out of Spam) or "rspamd" (an operator's Rspamd;
# its score is compared with each mail service's threshold; if it cannot be reached the
# built-in scorer decides).
backend = "builtin"
rspamd_url = "http://127.0.0.1:11333"
rspamd_password = ""
rspamd_timeout_seconds = 15

[routes]
# Static routes for remote mail: "example.net" = "relay.example.net:25"

# Offers of mail services (M2, O3). Replacing this section replaces all offers.
{offers}"#
    )
}

/// Deep-merges `over` into `base`; the `offers` table is replaced as a whole so that an
/// operator can drop offers, not only add them.
fn merge(base: &mut Value, over: Value, path: &str) {
    match (base, over) {
        (Value::Table(b), Value::Table(o)) if path != "offers" => {
            for (k, v) in o {
                let sub = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match b.get_mut(&k) {
                    Some(existing) => merge(existing, v, &sub),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

/// Applies `POSTFACH_<PATH>` variables to every leaf of the (merged) tree.
fn apply_env(
    v: &mut Value,
    path: &mut Vec<String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), String> {
    match v {
        Value::Table(t) => {
            for (k, child) in t.iter_mut() {
                path.push(k.clone());
                apply_env(child, path, env)?;
                path.pop();
            }
            Ok(())
        }
        leaf => {
            let name = format!(
                "POSTFACH_{}",
                path.join("_").to_uppercase().replace('-', "_")
            );
            let Some(raw) = env(&name) else { return Ok(()) };
            let dotted = path.join(".");
            *leaf = match leaf {
                Value::Integer(_) => Value::Integer(raw.trim().parse().map_err(|_| {
                    format!("{name} (for {dotted}): {raw:?} is not a whole number")
                })?),
                // Lists from the environment are comma-separated.
                Value::Array(_) => Value::Array(
                    raw.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| Value::String(s.to_string()))
                        .collect(),
                ),
                Value::Boolean(_) => Value::Boolean(match raw.trim() {
                    "true" | "1" | "yes" | "on" => true,
                    "false" | "0" | "no" | "off" => false,
                    _ => {
                        return Err(format!(
                            "{name} (for {dotted}): {raw:?} is not true or false"
                        ));
                    }
                }),
                _ => Value::String(raw),
            };
            Ok(())
        }
    }
}

/// Parses a configuration file's text (with environment overrides) into a valid `Config`.
pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, String> {
    let file: Value = toml::from_str(text).map_err(|e| {
        // toml's message spans several lines (with a caret drawing); keep the first one.
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
        let msg = e
            .message()
            .lines()
            .next()
            .unwrap_or("syntax error")
            .to_string();
        match line {
            Some(l) => format!("line {l}: {msg}"),
            None => msg,
        }
    })?;
    let mut tree = Value::try_from(Config::default()).map_err(|e| e.to_string())?;
    merge(&mut tree, file, "");
    apply_env(&mut tree, &mut Vec::new(), env)?;
    let config: Config = serde_path_to_error::deserialize(tree).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let inner = inner.lines().next().unwrap_or_default().to_string();
        if path == "." {
            inner
        } else {
            format!("{path}: {inner}")
        }
    })?;
    config.validate()?;
    Ok(config)
}

pub fn load(path: &Path) -> Result<Config, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let names: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .collect();
    unknown_variables(&names)?;
    parse(&text, &|k| std::env::var(k).ok()).map_err(|e| {
        // A variable's mistake is the variable's, not the file's.
        if e.starts_with("POSTFACH_") {
            e
        } else {
            format!("{}: {e}", path.display())
        }
    })
}

/// Environment variables of Postfach that are not settings.
const NOT_SETTINGS: [&str; 3] = ["POSTFACH_ACT_AS", "POSTFACH_CONFIG", "POSTFACH_DATA"];

/// A misspelt `POSTFACH_*` variable is refused, as a misspelt key of the file is: silently
/// ignoring it would leave the operator believing the setting took. Test harnesses use
/// `POSTFACH_TEST*` and `POSTFACH_CRASH_*`.
fn unknown_variables(names: &[String]) -> Result<(), String> {
    let mut known = Vec::new();
    let tree = Value::try_from(Config::default()).map_err(|e| e.to_string())?;
    leaf_variables(&tree, &mut Vec::new(), &mut known);
    for name in names.iter().filter(|n| n.starts_with("POSTFACH_")) {
        if NOT_SETTINGS.contains(&name.as_str())
            || name.starts_with("POSTFACH_TEST")
            || name.starts_with("POSTFACH_CRASH_")
            || known.contains(name)
            // Offers are the operator's own names: POSTFACH_OFFERS_<NAME>_<KEY>.
            || name.starts_with("POSTFACH_OFFERS_")
            || name.starts_with("POSTFACH_ROUTES_")
        {
            continue;
        }
        let section = name
            .trim_start_matches("POSTFACH_")
            .split('_')
            .next()
            .unwrap_or("");
        let near: Vec<&str> = known
            .iter()
            .filter(|k| {
                k.trim_start_matches("POSTFACH_")
                    .starts_with(&format!("{section}_"))
            })
            .map(String::as_str)
            .collect();
        let hint = if near.is_empty() {
            "variables are POSTFACH_<SECTION>_<KEY> of a setting in postfach.toml".to_string()
        } else {
            format!("settings of that section: {}", near.join(", "))
        };
        return Err(format!("{name} is not a setting ({hint})"));
    }
    Ok(())
}

fn leaf_variables(v: &Value, path: &mut Vec<String>, out: &mut Vec<String>) {
    match v {
        Value::Table(t) => {
            for (k, child) in t {
                path.push(k.clone());
                leaf_variables(child, path, out);
                path.pop();
            }
        }
        _ => out.push(format!(
            "POSTFACH_{}",
            path.join("_").to_uppercase().replace('-', "_")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn keys(v: &Value, prefix: &str, out: &mut Vec<String>) {
        if let Value::Table(t) = v {
            for (k, c) in t {
                let p = format!("{prefix}{k}");
                match c {
                    Value::Table(_) => keys(c, &format!("{p}."), out),
                    _ => out.push(p),
                }
            }
        }
    }

    #[test]
    fn written_file_lists_every_option_with_its_default() {
        let mut cfg = Config::default();
        cfg.server.hostname = "mail.example.com".into();
        let text = default_file("mail.example.com");
        let parsed = parse(&text, &no_env).unwrap();
        assert_eq!(parsed, cfg);
        let mut in_file = Vec::new();
        keys(&toml::from_str(&text).unwrap(), "", &mut in_file);
        let mut all = Vec::new();
        keys(&Value::try_from(&cfg).unwrap(), "", &mut all);
        in_file.sort();
        all.sort();
        assert_eq!(in_file, all, "every option appears in the written file");
    }

    #[test]
    fn misspelt_variables_are_refused_with_the_section_s_settings() {
        let e = unknown_variables(&["POSTFACH_LISTEN_HTTTP".to_string()]).unwrap_err();
        assert!(
            e.contains("POSTFACH_LISTEN_HTTTP is not a setting")
                && e.contains("POSTFACH_LISTEN_HTTP"),
            "{e}"
        );
        for fine in [
            "POSTFACH_LISTEN_HTTP",
            "POSTFACH_DATA",
            "POSTFACH_TEST_PG",
            "POSTFACH_OFFERS_GOLD_DAILY_SEND_LIMIT",
            "PATH",
        ] {
            assert!(unknown_variables(&[fine.to_string()]).is_ok(), "{fine}");
        }
    }

    #[test]
    fn env_overrides_single_options() {
        let env = |k: &str| match k {
            "POSTFACH_LISTEN_HTTP" => Some("0.0.0.0:8081".to_string()),
            "POSTFACH_OFFERS_STARTER_DAILY_SEND_LIMIT" => Some("250".to_string()),
            "POSTFACH_OFFERS_PRO_CATCHALL" => Some("off".to_string()),
            _ => None,
        };
        let cfg = parse("[server]\nhostname = \"mx.example.org\"\n", &env).unwrap();
        assert_eq!(cfg.listen.http.to_string(), "0.0.0.0:8081");
        assert_eq!(cfg.offers["starter"].daily_send_limit, 250);
        assert!(!cfg.offers["pro"].catchall);
        assert_eq!(cfg.server.hostname, "mx.example.org");
        let bad =
            |k: &str| (k == "POSTFACH_LIMITS_NEW_ADDRESSES_PER_DAY").then(|| "many".to_string());
        let e = parse("", &bad).unwrap_err();
        assert!(
            e.contains("POSTFACH_LIMITS_NEW_ADDRESSES_PER_DAY")
                && e.contains("limits.new_addresses_per_day"),
            "{e}"
        );
    }

    #[test]
    fn errors_name_the_option() {
        for (text, needle) in [
            ("[listen]\nsmtp = \"nonsense\"\n", "listen.smtp"),
            (
                "[listen]\nhttp = \"127.0.0.1:2525\"\n",
                "listen.http: 127.0.0.1:2525 is already used by listen.smtp",
            ),
            ("[listen]\nhttps = \"x\"\n", "listen.https"),
            ("[server]\nhostnam = \"x\"\n", "unknown field `hostnam`"),
            (
                "[limits]\nnew_addresses_per_day = 0\n",
                "limits.new_addresses_per_day",
            ),
            ("[log]\nformat = \"xml\"\n", "log.format"),
            (
                "[offers.gold]\nmin_addresses = 10\nmax_addresses = 5\ndaily_send_limit = 1\ncatchall = true\nstorage_per_address_mib = 1\n",
                "offers.gold.max_addresses",
            ),
            ("[offers.gold]\nmin_addresses = 1\n", "offers.gold"),
            ("[server\n", "line 1"),
        ] {
            let e = parse(text, &no_env).unwrap_err();
            assert!(e.contains(needle), "{text:?}: {e}");
            assert!(!e.contains('\n'), "one line: {e:?}");
        }
        // Replacing [offers] drops the default ones.
        let cfg = parse("[offers.solo]\nmin_addresses = 1\nmax_addresses = 1\ndaily_send_limit = 50\ncatchall = false\nstorage_per_address_mib = 100\n", &no_env).unwrap();
        assert_eq!(cfg.offers.keys().collect::<Vec<_>>(), ["solo"]);
    }
}
