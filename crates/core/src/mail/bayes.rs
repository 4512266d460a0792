//! The Bayesian part of the spam filter (F5): a token classifier in the style of Gary
//! Robinson's "A statistical approach to the spam problem" (2003) as SpamBayes implements it —
//! per-token probabilities smoothed towards 0.5 for rare tokens, combined with Fisher's
//! chi-square method, so that a message with strong evidence both ways scores "unsure" (0.5)
//! instead of flipping.
//!
//! Two stores feed it: the address's own (trained when its user moves mail into or out of
//! Spam) and the platform-wide one (every training counts there too). The address's own
//! counts are added on top of the platform's, so a user's opinion weighs double for them.
//!
//! Only a fixed set of headers is read: never `Received` (relays and collectors), never our
//! own `X-Spam-*`/`Authentication-Results` (the classifier must not learn its own verdicts).

use std::collections::{BTreeSet, HashMap};

use mail_parser::{Message, MessageParser, MimeHeaders};

/// The platform-wide store's scope id (address ids start at 1).
pub const GLOBAL: i64 = 0;
/// Trained messages of each class a store needs before its verdicts count: with fewer, a
/// handful of messages would decide every word's weight.
pub const MIN_LEARNS: i64 = 10;
/// Tokens per message at most (the rest of a huge message adds nothing but cost).
const MAX_TOKENS: usize = 3000;
/// SpamBayes' defaults: how strongly an unknown token is pulled towards `UNKNOWN_PROB`.
const UNKNOWN_STRENGTH: f64 = 0.45;
const UNKNOWN_PROB: f64 = 0.5;
/// Tokens closer than this to 0.5 say nothing and are ignored.
const MIN_DISTANCE: f64 = 0.1;
/// The most extreme tokens used per message.
const MAX_DISCRIMINATORS: usize = 150;

/// Counts of one token: (spam messages, ham messages) that contained it.
pub type Counts = (i64, i64);

/// A 64-bit FNV-1a hash: stable across versions and platforms (the store keeps it).
fn hash(s: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h as i64
}

fn words<'a>(text: &'a str, prefix: &'a str) -> impl Iterator<Item = String> + 'a {
    text.split(|c: char| c.is_whitespace())
        .filter_map(move |w| {
            let w = w.trim_matches(|c: char| !c.is_alphanumeric() && !"$€%!".contains(c));
            let n = w.chars().count();
            if n < 3 {
                None
            } else if n > 20 {
                // Long words (hashes, encoded junk) count by their shape only.
                Some(format!(
                    "{prefix}skip:{}{}",
                    w.chars().next().unwrap_or('?'),
                    n / 10 * 10
                ))
            } else {
                Some(format!("{prefix}{}", w.to_lowercase()))
            }
        })
}

fn domain_of(addr: &str) -> &str {
    addr.rsplit_once('@').map(|x| x.1).unwrap_or("")
}

/// The tokens of a message, as strings (for tests and explanations).
pub fn token_strings(msg: &Message<'_>) -> BTreeSet<String> {
    let mut t = BTreeSet::new();
    if let Some(s) = msg.subject() {
        t.extend(words(s, "subject:"));
    }
    if let Some(a) = msg.from().and_then(|a| a.first()) {
        if let Some(addr) = a.address() {
            let addr = addr.to_lowercase();
            t.insert(format!("from-domain:{}", domain_of(&addr)));
            t.insert(format!("from:{addr}"));
        }
        match a.name() {
            Some(n) => t.extend(words(n, "from-name:")),
            None => {
                t.insert("from-name:none".into());
            }
        }
    }
    if let Some(rt) = msg
        .reply_to()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
    {
        t.insert(format!("reply-to-domain:{}", domain_of(&rt.to_lowercase())));
    }
    if let Some(mid) = msg.message_id() {
        t.insert(format!(
            "message-id-domain:{}",
            domain_of(&mid.to_lowercase())
        ));
    } else {
        t.insert("message-id:none".into());
    }
    for name in ["X-Mailer", "User-Agent"] {
        if let Some(v) = msg.header(name).and_then(|v| v.as_text()) {
            t.extend(words(v, "mailer:"));
        }
    }
    for (i, part) in msg.parts.iter().enumerate() {
        if let Some(ct) = part.content_type() {
            t.insert(format!(
                "content-type:{}/{}",
                ct.ctype().to_lowercase(),
                ct.subtype().unwrap_or("").to_lowercase()
            ));
            if let Some(cs) = ct.attribute("charset") {
                t.insert(format!("charset:{}", cs.to_lowercase()));
            }
        }
        if let Some(name) = part.attachment_name()
            && let Some((_, ext)) = name.rsplit_once('.')
        {
            t.insert(format!("attachment:{}", ext.to_lowercase()));
        }
        if let Some(enc) = part.content_transfer_encoding() {
            t.insert(format!("encoding:{}", enc.to_lowercase()));
        }
        if i > 50 {
            break;
        }
    }
    let mut body = String::new();
    for i in 0..msg.text_body_count().max(1) {
        if let Some(text) = msg.body_text(i) {
            body.push_str(&text);
            body.push('\n');
        }
        if body.len() > 200_000 {
            break;
        }
    }
    if msg.html_body_count() > 0 && msg.text_body.iter().eq(msg.html_body.iter()) {
        t.insert("html-only".into());
    }
    for w in body.split_whitespace() {
        if let Some(rest) = w
            .strip_prefix("http://")
            .or_else(|| w.strip_prefix("https://"))
        {
            let host = rest
                .split(['/', ':', '?', '"', '\'', '>', ')'])
                .next()
                .unwrap_or("")
                .to_lowercase();
            // Every suffix of the host name: `a.b.example.com` → `example.com`, `b.example.com`…
            let labels: Vec<&str> = host.split('.').filter(|l| !l.is_empty()).collect();
            for k in 2..=labels.len().min(4) {
                t.insert(format!("url:{}", labels[labels.len() - k..].join(".")));
            }
        }
        if t.len() >= MAX_TOKENS {
            break;
        }
    }
    for w in words(&body, "") {
        if t.len() >= MAX_TOKENS {
            break;
        }
        t.insert(w);
    }
    t
}

/// The hashed tokens of a message, sorted and unique.
pub fn tokens(msg: &Message<'_>) -> Vec<i64> {
    let mut v: Vec<i64> = token_strings(msg).iter().map(|s| hash(s)).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// What the classifier knows for one message: the combined counts of its tokens and the
/// combined totals.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evidence {
    pub counts: HashMap<i64, Counts>,
    /// (spam, ham) messages trained.
    pub totals: Counts,
}

impl Evidence {
    /// Adds one store's counts (the platform's, then the address's).
    pub fn add(&mut self, counts: impl IntoIterator<Item = (i64, Counts)>, totals: Counts) {
        for (t, (s, h)) in counts {
            let e = self.counts.entry(t).or_insert((0, 0));
            e.0 += s;
            e.1 += h;
        }
        self.totals.0 += totals.0;
        self.totals.1 += totals.1;
    }

    /// Whether enough has been trained for a verdict.
    pub fn ready(&self) -> bool {
        self.totals.0 >= MIN_LEARNS && self.totals.1 >= MIN_LEARNS
    }

    /// The probability (0..=1) that the message with `tokens` is spam, or None before
    /// [`Self::ready`].
    pub fn spam_probability(&self, tokens: &[i64]) -> Option<f64> {
        if !self.ready() {
            return None;
        }
        let (ns, nh) = (self.totals.0 as f64, self.totals.1 as f64);
        let mut probs: Vec<f64> = tokens
            .iter()
            .filter_map(|t| {
                let &(s, h) = self.counts.get(t)?;
                let (s, h) = (s.max(0) as f64, h.max(0) as f64);
                if s + h == 0.0 {
                    return None;
                }
                // Robinson's f(w): the ratio of the token's frequency in spam to its
                // frequency in both, pulled towards 0.5 while it has been seen rarely.
                let (sr, hr) = (s / ns, h / nh);
                let p = sr / (sr + hr);
                let n = s + h;
                let f = (UNKNOWN_STRENGTH * UNKNOWN_PROB + n * p) / (UNKNOWN_STRENGTH + n);
                ((f - 0.5).abs() >= MIN_DISTANCE).then_some(f)
            })
            .collect();
        if probs.is_empty() {
            return Some(0.5);
        }
        probs.sort_by(|a, b| (b - 0.5).abs().total_cmp(&(a - 0.5).abs()));
        probs.truncate(MAX_DISCRIMINATORS);
        // Fisher: how unlikely the spam-ness (and the ham-ness) of these tokens is if they
        // were random; S and H each in 0..1, combined to (S - H + 1) / 2.
        let n = probs.len();
        let clamp = |x: f64| x.clamp(1e-200, 1.0);
        let h_sum: f64 = probs.iter().map(|f| clamp(*f).ln()).sum();
        let s_sum: f64 = probs.iter().map(|f| clamp(1.0 - f).ln()).sum();
        let h = 1.0 - chi2q(-2.0 * h_sum, 2 * n);
        let s = 1.0 - chi2q(-2.0 * s_sum, 2 * n);
        Some(((s - h + 1.0) / 2.0).clamp(0.0, 1.0))
    }
}

/// The probability that a chi-square variable with `v` (even) degrees of freedom exceeds `x2`.
fn chi2q(x2: f64, v: usize) -> f64 {
    let m = x2 / 2.0;
    let mut term = (-m).exp();
    let mut sum = term;
    for i in 1..v / 2 {
        term *= m / i as f64;
        sum += term;
    }
    sum.min(1.0)
}

/// The spam-score rule for a probability: (name, points), SpamAssassin's BAYES_* bands.
/// The strongest band alone reaches the default threshold of 5: a message that looks like
/// what the user trained as spam is spam, whatever the rules say.
pub fn rule(p: f64) -> Option<(&'static str, f64)> {
    Some(match p {
        p if p >= 0.999 => ("BAYES_999", 5.0),
        p if p >= 0.99 => ("BAYES_99", 4.0),
        p if p >= 0.95 => ("BAYES_95", 3.0),
        p if p >= 0.80 => ("BAYES_80", 2.0),
        p if p >= 0.60 => ("BAYES_60", 1.0),
        p if p > 0.40 => return None,
        p if p > 0.20 => ("BAYES_40", -0.5),
        p if p > 0.05 => ("BAYES_20", -1.0),
        p if p > 0.01 => ("BAYES_05", -2.0),
        _ => ("BAYES_00", -3.0),
    })
}

/// What training needs of a raw message, from one parse: the key that makes training
/// idempotent per message (its Message-ID, or for a message without one, a hash of its
/// tokens) and its tokens.
pub fn learnable(raw: &[u8]) -> (String, Vec<i64>) {
    let Some(msg) = MessageParser::default().parse(raw) else {
        return (
            format!("raw:{:x}", hash(&String::from_utf8_lossy(raw))),
            Vec::new(),
        );
    };
    let t = tokens(&msg);
    let key = match msg.message_id() {
        Some(id) => format!("mid:{id}"),
        None => {
            let joined: String = t.iter().map(|x| format!("{x:x}")).collect();
            format!("tokens:{:x}", hash(&joined))
        }
    };
    (key, t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Vec<i64> {
        learnable(raw.as_bytes()).1
    }

    fn msg(subject: &str, body: &str) -> String {
        format!(
            "From: someone@example.org\r\nSubject: {subject}\r\nMessage-ID: <{subject}@x>\r\n\r\n{body}\r\n"
        )
    }

    #[test]
    fn tokens_cover_subject_body_urls_and_skip_received_and_our_verdicts() {
        let raw = "Received: from collector.example by mx\r\nX-Spam-Status: Yes, score=9\r\nFrom: \"Cheap Pills\" <sales@pharma.example>\r\nSubject: Great offer\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nBuy now at https://shop.pharma.example/x today\r\n";
        let m = MessageParser::default().parse(raw.as_bytes()).unwrap();
        let t = token_strings(&m);
        for want in [
            "subject:great",
            "subject:offer",
            "from-domain:pharma.example",
            "from-name:cheap",
            "url:pharma.example",
            "url:shop.pharma.example",
            "buy",
            "today",
            "charset:utf-8",
        ] {
            assert!(t.contains(want), "{want} missing from {t:?}");
        }
        assert!(!t.iter().any(|x| x.contains("collector")), "{t:?}");
        assert!(!t.iter().any(|x| x.contains("score")), "{t:?}");
    }

    #[test]
    fn untrained_says_nothing_trained_separates() {
        let spam: Vec<Vec<i64>> = (0..12)
            .map(|i| {
                parse(&msg(
                    &format!("cheap pills {i}"),
                    "buy cheap pills online pharmacy discount viagra now",
                ))
            })
            .collect();
        let ham: Vec<Vec<i64>> = (0..12)
            .map(|i| {
                parse(&msg(
                    &format!("meeting notes {i}"),
                    "the project meeting agenda for tomorrow, minutes attached",
                ))
            })
            .collect();
        let mut e = Evidence::default();
        assert_eq!(e.spam_probability(&spam[0]), None);
        let mut counts: HashMap<i64, Counts> = HashMap::new();
        for t in spam.iter().flatten() {
            counts.entry(*t).or_default().0 += 1;
        }
        for t in ham.iter().flatten() {
            counts.entry(*t).or_default().1 += 1;
        }
        e.add(counts, (12, 12));
        let new_spam = parse(&msg("discount pharmacy", "cheap viagra pills, buy online"));
        let new_ham = parse(&msg("agenda", "minutes of the project meeting tomorrow"));
        let ps = e.spam_probability(&new_spam).unwrap();
        let ph = e.spam_probability(&new_ham).unwrap();
        assert!(ps > 0.99, "{ps}");
        assert!(ph < 0.01, "{ph}");
        assert_eq!(rule(ps).unwrap().0, "BAYES_999");
        assert_eq!(rule(ph).unwrap().0, "BAYES_00");
        assert_eq!(rule(0.5), None);
        // Unknown words only: unsure.
        let other = parse(&msg("zebra", "giraffe elephant"));
        assert_eq!(e.spam_probability(&other), Some(0.5));
    }

    #[test]
    fn message_key_prefers_message_id() {
        let message_key = |raw: &[u8]| learnable(raw).0;
        assert_eq!(message_key(msg("a", "b").as_bytes()), "mid:a@x");
        let no_id = b"Subject: x\r\n\r\nhello world\r\n";
        assert!(message_key(no_id).starts_with("tokens:"));
        assert_eq!(message_key(no_id), message_key(no_id));
    }

    #[test]
    fn the_hash_is_stable() {
        // The store keeps these numbers: changing the hash would silently forget training.
        assert_eq!(hash(""), 0xcbf2_9ce4_8422_2325_u64 as i64);
        assert_eq!(hash("a"), 0xaf63_dc4c_8601_ec8c_u64 as i64);
    }
}
