//! The built-in spam scorer (F5): explainable header, content and authentication rules, each
//! worth some points; a message at or above the mail service's threshold is spam. The
//! verdict goes into an `X-Spam-Status` header in SpamAssassin's format, which mail clients
//! and users already know (`Yes, score=7.3 required=5.0 tests=SPF_FAIL,…`).

use mail_parser::Message;

use crate::message::{header_from, header_text};

#[derive(Debug, Clone, PartialEq)]
pub struct SpamVerdict {
    pub score: f64,
    pub required: f64,
    /// (rule, points), in the order they fired.
    pub tests: Vec<(String, f64)>,
}

impl SpamVerdict {
    pub fn is_spam(&self) -> bool {
        self.score >= self.required
    }

    /// `X-Spam-Status` value.
    pub fn status(&self) -> String {
        let tests: Vec<&str> = self.tests.iter().map(|(t, _)| t.as_str()).collect();
        format!(
            "{}, score={:.1} required={:.1} tests={}",
            if self.is_spam() { "Yes" } else { "No" },
            self.score,
            self.required,
            if tests.is_empty() {
                "none".to_string()
            } else {
                tests.join(",")
            }
        )
    }
}

/// Phrases typical of unsolicited bulk mail, matched case-insensitively in subject and text.
const PHRASES: &[(&str, &str, f64)] = &[
    ("viagra", "DRUGS", 2.5),
    ("cialis", "DRUGS", 2.5),
    ("lottery", "LOTTERY", 2.0),
    ("you have won", "LOTTERY", 2.0),
    ("winner", "LOTTERY", 1.0),
    ("million dollars", "MONEY_OFFER", 2.0),
    ("wire transfer", "MONEY_OFFER", 1.0),
    ("beneficiary", "MONEY_OFFER", 1.0),
    ("100% free", "FREE_OFFER", 1.5),
    ("risk free", "FREE_OFFER", 1.0),
    ("act now", "URGENCY", 1.0),
    ("limited time", "URGENCY", 0.7),
    ("click here", "CLICK_HERE", 0.7),
    ("unsubscribe", "UNSUB_LINK", 0.2),
    ("casino", "GAMBLING", 1.5),
    ("verify your account", "PHISH_VERIFY", 2.0),
    ("your account has been suspended", "PHISH_VERIFY", 2.0),
    ("bitcoin", "CRYPTO", 0.8),
    ("cheap", "CHEAP", 0.5),
    ("weight loss", "HEALTH", 1.5),
    ("dear friend", "DEAR_FRIEND", 1.2),
];

/// Scores a message. `required` is the mail service's threshold; `bayes` the Bayesian
/// classifier's spam probability, when it has been trained enough.
pub fn score(
    msg: &Message<'_>,
    required: f64,
    our_authserv: &str,
    bayes: Option<f64>,
) -> SpamVerdict {
    let mut tests: Vec<(String, f64)> = Vec::new();
    let mut add = |t: &str, p: f64| {
        if !tests.iter().any(|(x, _)| x == t) {
            tests.push((t.to_string(), p));
        }
    };

    // Authentication results of our own MX (F4); upstream ones could be forged.
    if let Some(v) = our_results(msg, our_authserv) {
        // A forward through a trusted ARC sealer ([auth] trusted_arc_sealers, recorded by our
        // MX as "arc=pass (trusted sealer …)") broke SPF and DMARC on its hop; the sealer
        // vouches for what it received (RFC 8617 §7.2).
        let trusted_forward = v.contains("\tarc=pass (trusted sealer ");
        if trusted_forward {
            add("ARC_TRUSTED_FORWARD", 0.0);
        } else {
            if v.contains("spf=fail") {
                add("SPF_FAIL", 3.5);
            } else if v.contains("spf=softfail") {
                add("SPF_SOFTFAIL", 1.0);
            }
            if v.contains("dmarc=fail") {
                add("DMARC_FAIL", 3.0);
                // RFC 7489 §6.3: the author's domain asks for failing mail to be treated as
                // suspicious ("quarantine", or "reject" where the MX was told not to
                // refuse): it goes to Spam, which is never forwarded (F11), so a forged
                // author of a forwarding mailbox's own domain cannot leave aligned by SRS.
                if v.contains("policy.dmarc=quarantine") || v.contains("policy.dmarc=reject") {
                    add("DMARC_POLICY_QUARANTINE", 100.0);
                }
            }
        }
        if v.contains("dkim=fail") {
            add("DKIM_INVALID", 1.5);
        }
    }

    // Headers every real mail program writes.
    if msg.date().is_none() {
        add("MISSING_DATE", 1.0);
    }
    if msg.message_id().is_none() {
        add("MISSING_MID", 1.0);
    }
    let from = header_from(msg);
    if from.is_empty() {
        add("MISSING_FROM", 2.0);
    }
    if msg.subject().is_none_or(|s| s.trim().is_empty()) {
        add("MISSING_SUBJECT", 0.5);
    }
    if let Some(name) = msg
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.name())
        .map(|n| n.to_lowercase())
        && let Some(addr_in_name) = name.split_whitespace().find(|w| w.contains('@'))
    {
        let addr_in_name = addr_in_name.trim_matches(|c: char| "<>\"'()".contains(c));
        if !from.is_empty() && addr_in_name != from {
            add("FROM_NAME_SPOOF", 2.0);
        }
    }
    if let (Some(rt), false) = (
        msg.reply_to()
            .and_then(|a| a.first())
            .and_then(|a| a.address()),
        from.is_empty(),
    ) {
        let rt_domain = rt.rsplit_once('@').map(|x| x.1.to_lowercase());
        let from_domain = from.rsplit_once('@').map(|x| x.1.to_string());
        if rt_domain.is_some() && rt_domain != from_domain {
            add("REPLYTO_OTHER_DOMAIN", 0.8);
        }
    }

    // Subject.
    let subject = msg.subject().unwrap_or_default();
    let letters: Vec<char> = subject.chars().filter(|c| c.is_alphabetic()).collect();
    if letters.len() >= 10 && letters.iter().all(|c| c.is_uppercase()) {
        add("SUBJ_ALL_CAPS", 1.5);
    }
    if subject.matches('!').count() >= 3 {
        add("SUBJ_EXCLAIM", 1.0);
    }
    if subject.contains('$') || subject.contains('€') {
        add("SUBJ_MONEY", 0.7);
    }

    // Content.
    let text = msg
        .body_text(0)
        .map(|t| t.to_lowercase())
        .unwrap_or_default();
    let html = msg.body_html(0).map(|h| h.to_lowercase());
    let has_plain = msg.text_body.iter().any(|i| {
        msg.part(*i)
            .is_some_and(|p| matches!(p.body, mail_parser::PartType::Text(_)))
    });
    if html.is_some() && !has_plain {
        add("HTML_ONLY", 0.7);
    }
    let haystack = format!("{} {}", subject.to_lowercase(), text);
    for (phrase, rule, points) in PHRASES {
        if haystack.contains(phrase) {
            add(rule, *points);
        }
    }
    let links = haystack.matches("http://").count() + haystack.matches("https://").count();
    if links >= 10 {
        add("MANY_LINKS", 1.0);
    }
    if haystack.contains("http://") && haystack.matches(char::is_numeric).count() > 0 {
        for w in haystack.split_whitespace() {
            if let Some(host) = w
                .strip_prefix("http://")
                .or_else(|| w.strip_prefix("https://"))
            {
                let host = host.split(['/', ':', '?']).next().unwrap_or("");
                if host.split('.').count() == 4 && host.split('.').all(|p| p.parse::<u8>().is_ok())
                {
                    add("URL_NUMERIC_IP", 1.5);
                    break;
                }
            }
        }
    }
    if let Some(p) = header_text(msg, "X-Priority")
        && p.starts_with('1')
    {
        add("PRIORITY_HIGH", 0.5);
    }

    if let Some((rule, points)) = bayes.and_then(postfach_core::mail::bayes::rule) {
        add(rule, points);
    }

    let score = tests.iter().map(|(_, p)| p).sum::<f64>();
    SpamVerdict {
        // `+ 0.0` turns the -0.0 of an empty sum into 0.0 for display.
        score: (score * 10.0).round() / 10.0 + 0.0,
        required,
        tests,
    }
}

/// The value of the first `Authentication-Results` field our own MX wrote (lower case): the
/// one verdict on the message that a sender cannot have forged (ours are removed from what
/// arrives, RFC 8601 §5).
pub(crate) fn our_results(msg: &Message<'_>, our_authserv: &str) -> Option<String> {
    let ours = our_authserv.to_ascii_lowercase();
    msg.headers()
        .iter()
        .filter(|h| {
            h.name
                .as_str()
                .eq_ignore_ascii_case("Authentication-Results")
        })
        .map(|h| {
            let raw = msg
                .raw_message()
                .get(h.offset_start as usize..h.offset_end as usize)
                .unwrap_or_default();
            String::from_utf8_lossy(raw).to_ascii_lowercase()
        })
        .find(|v| v.trim_start().starts_with(&ours))
}

/// RFC 7489 §6.3: our MX found that the author's domain asks for failing mail to be treated
/// as suspicious ("quarantine", or "reject" where the MX was told not to refuse), and no
/// trusted ARC sealer vouched for it.
pub(crate) fn dmarc_quarantine(msg: &Message<'_>, our_authserv: &str) -> bool {
    our_results(msg, our_authserv).is_some_and(|v| {
        !v.contains("\tarc=pass (trusted sealer ")
            && v.contains("dmarc=fail")
            && (v.contains("policy.dmarc=quarantine") || v.contains("policy.dmarc=reject"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    #[test]
    fn a_clean_message_scores_low_and_obvious_spam_high() {
        let ham = b"From: Anna <anna@example.org>\r\nTo: bob@example.com\r\nSubject: Lunch tomorrow?\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@example.org>\r\n\r\nShall we meet at noon?\r\n";
        let v = score(
            &MessageParser::default().parse(ham).unwrap(),
            5.0,
            "mx.test",
            None,
        );
        assert!(!v.is_spam(), "{}", v.status());
        assert_eq!(v.status(), "No, score=0.0 required=5.0 tests=none");

        let spam = b"Authentication-Results: mx.test;\r\n\tspf=fail smtp.mailfrom=x@bank.example\r\nFrom: \"support@bank.example\" <x@evil.example>\r\nSubject: YOU HAVE WON THE LOTTERY!!!\r\n\r\nDear friend, you have won a million dollars. Click here: http://192.0.2.1/claim\r\n";
        let v = score(
            &MessageParser::default().parse(spam).unwrap(),
            5.0,
            "mx.test",
            None,
        );
        assert!(v.is_spam(), "{}", v.status());
        assert!(v.status().starts_with("Yes, score="));
        for t in [
            "SPF_FAIL",
            "FROM_NAME_SPOOF",
            "SUBJ_ALL_CAPS",
            "LOTTERY",
            "URL_NUMERIC_IP",
            "MISSING_DATE",
        ] {
            assert!(v.tests.iter().any(|(x, _)| x == t), "{t} in {}", v.status());
        }
    }

    #[test]
    fn a_trusted_arc_forward_is_not_punished_for_broken_spf_and_dmarc() {
        let head = "From: a@x.org\r\nSubject: hi\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@x>\r\n\r\nhi\r\n";
        let results = |arc: &str| {
            format!(
                "Authentication-Results: mx.test;\r\n\tspf=fail smtp.mailfrom=l@lists.example;\r\n\tdmarc=fail header.from=x.org;\r\n\t{arc} smtp.remote-ip=192.0.2.1\r\n{head}"
            )
        };
        let tests = |m: &str| {
            score(
                &MessageParser::default().parse(m.as_bytes()).unwrap(),
                5.0,
                "mx.test",
                None,
            )
            .tests
            .into_iter()
            .map(|(t, _)| t)
            .collect::<Vec<_>>()
        };
        let trusted = tests(&results("arc=pass (trusted sealer lists.example)"));
        assert!(
            trusted.contains(&"ARC_TRUSTED_FORWARD".to_string()),
            "{trusted:?}"
        );
        assert!(
            !trusted.iter().any(|t| t == "SPF_FAIL" || t == "DMARC_FAIL"),
            "{trusted:?}"
        );
        // An untrusted chain, even a passing one, changes nothing.
        let untrusted = tests(&results("arc=pass"));
        assert!(
            untrusted.contains(&"SPF_FAIL".to_string())
                && untrusted.contains(&"DMARC_FAIL".to_string())
        );
    }

    #[test]
    fn foreign_authentication_results_are_ignored() {
        let m = b"Authentication-Results: other.example; spf=fail\r\nFrom: a@x.org\r\nSubject: hi\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@x>\r\n\r\nhi\r\n";
        let v = score(
            &MessageParser::default().parse(m).unwrap(),
            5.0,
            "mx.test",
            None,
        );
        assert!(v.tests.is_empty(), "{}", v.status());
    }
}
