//! The optional Rspamd backend (F5): instead of the built-in scorer, each message is sent to
//! an operator's Rspamd over its HTTP protocol (`POST /checkv2`, the message as the body,
//! envelope facts as request headers; <https://rspamd.com/doc/developers/protocol.html>).
//! Rspamd's score is compared with the mail service's threshold, so per-service thresholds
//! (M8) keep working; its symbols become the `tests=` of `X-Spam-Status`.
//!
//! Rspamd unreachable or answering nonsense never loses or delays mail beyond the timeout:
//! the built-in scorer decides instead and the failure is logged.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::spam::SpamVerdict;

/// `[spam]` in postfach.toml.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpamSettings {
    /// `builtin` (rules + Bayes) or `rspamd`.
    pub backend: SpamBackend,
    /// Rspamd's normal worker, e.g. `http://127.0.0.1:11333`.
    pub rspamd_url: String,
    /// Rspamd's `password` (sent as the `Password` header), if its worker wants one.
    pub rspamd_password: String,
    pub rspamd_timeout_seconds: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpamBackend {
    Builtin,
    Rspamd,
}

impl Default for SpamSettings {
    fn default() -> Self {
        SpamSettings {
            backend: SpamBackend::Builtin,
            rspamd_url: "http://127.0.0.1:11333".into(),
            rspamd_password: String::new(),
            rspamd_timeout_seconds: 15,
        }
    }
}

impl SpamSettings {
    pub fn validate(&self) -> Result<(), String> {
        if self.backend == SpamBackend::Rspamd {
            let rest = self
                .rspamd_url
                .strip_prefix("http://")
                .or_else(|| self.rspamd_url.strip_prefix("https://"));
            if rest.is_none_or(|r| r.is_empty()) {
                return Err(format!(
                    "spam.rspamd_url: {:?} is not an http:// or https:// URL",
                    self.rspamd_url
                ));
            }
        }
        if !(1..=300).contains(&self.rspamd_timeout_seconds) {
            return Err("spam.rspamd_timeout_seconds must be between 1 and 300".into());
        }
        Ok(())
    }
}

/// The envelope of one delivery, as Rspamd's request headers.
pub struct Envelope<'a> {
    pub mail_from: &'a str,
    pub rcpt: &'a str,
    pub queue_id: i64,
    /// The SMTP client's address and HELO name, from our own Received field.
    pub ip: Option<String>,
    pub helo: Option<String>,
    /// Authenticated submitter, if any.
    pub user: Option<&'a str>,
}

#[derive(Debug, Deserialize)]
struct CheckV2 {
    score: f64,
    action: String,
    #[serde(default)]
    symbols: HashMap<String, Symbol>,
}

#[derive(Debug, Deserialize)]
struct Symbol {
    #[serde(default)]
    score: f64,
}

pub struct Rspamd {
    agent: ureq::Agent,
    url: String,
    password: String,
}

impl Rspamd {
    pub fn new(s: &SpamSettings) -> Self {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(s.rspamd_timeout_seconds)))
            .http_status_as_error(false)
            .build();
        Rspamd {
            agent: ureq::Agent::new_with_config(config),
            url: format!("{}/checkv2", s.rspamd_url.trim_end_matches('/')),
            password: s.rspamd_password.clone(),
        }
    }

    /// Asks Rspamd (blocking: call it from the blocking pool). `required` is the mail
    /// service's threshold.
    pub fn check(
        &self,
        raw: &[u8],
        env: &Envelope<'_>,
        required: f64,
    ) -> Result<SpamVerdict, String> {
        let mut req = self
            .agent
            .post(&self.url)
            .header("From", env.mail_from)
            .header("Rcpt", env.rcpt)
            .header("Deliver-To", env.rcpt)
            .header("Queue-Id", env.queue_id.to_string());
        if let Some(ip) = &env.ip {
            req = req.header("IP", ip);
        }
        if let Some(helo) = &env.helo {
            req = req.header("Helo", helo);
        }
        if let Some(user) = env.user {
            req = req.header("User", user);
        }
        if !self.password.is_empty() {
            req = req.header("Password", &self.password);
        }
        let mut resp = req.send(raw).map_err(|e| format!("rspamd: {e}"))?;
        if resp.status() != 200 {
            return Err(format!("rspamd answered HTTP {}", resp.status()));
        }
        let r: CheckV2 = resp
            .body_mut()
            .read_json()
            .map_err(|e| format!("rspamd: unreadable answer: {e}"))?;
        Ok(verdict(r, required))
    }
}

fn verdict(r: CheckV2, required: f64) -> SpamVerdict {
    // The symbols that moved the score, strongest first (the zero-scored ones are noise in a
    // header).
    let mut tests: Vec<(String, f64)> = r
        .symbols
        .into_iter()
        .filter(|(_, s)| s.score != 0.0)
        .map(|(n, s)| (n, s.score))
        .collect();
    tests.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()).then(a.0.cmp(&b.0)));
    tests.push((format!("RSPAMD_ACTION_{}", r.action.replace(' ', "_")), 0.0));
    let mut score = (r.score * 10.0).round() / 10.0 + 0.0;
    // Rspamd's own verdict to reject means spam whatever our threshold says.
    if r.action == "reject" && score < required {
        score = required;
    }
    SpamVerdict {
        score,
        required,
        tests,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkv2_answer_becomes_a_verdict() {
        let r: CheckV2 = serde_json::from_str(
            r#"{"is_skipped":false,"score":6.3,"required_score":15.0,"action":"add header",
               "symbols":{"RDNS_NONE":{"name":"RDNS_NONE","score":1.0},
                          "MIME_GOOD":{"name":"MIME_GOOD","score":-0.1},
                          "ARC_NA":{"name":"ARC_NA","score":0.0},
                          "HFILTER_HOSTNAME_UNKNOWN":{"score":2.5}}}"#,
        )
        .unwrap();
        let v = verdict(r, 5.0);
        assert!(v.is_spam());
        assert_eq!(
            v.status(),
            "Yes, score=6.3 required=5.0 tests=HFILTER_HOSTNAME_UNKNOWN,RDNS_NONE,MIME_GOOD,RSPAMD_ACTION_add_header"
        );
    }

    #[test]
    fn settings_are_checked() {
        let mut s = SpamSettings::default();
        assert!(s.validate().is_ok());
        s.backend = SpamBackend::Rspamd;
        s.rspamd_url = "localhost:11333".into();
        assert!(s.validate().unwrap_err().contains("spam.rspamd_url"));
    }
}
