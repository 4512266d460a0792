//! ARC validation conformance (F4, RFC 8617 §5.2): chains sealed with real keys published in a
//! real DNS server (tests/data/spf_suite_dns.py), then broken the ways RFC 8617 names — each
//! must give our `arc=` word (`mailauth::arc_word`: none, pass or fail, the IANA registry's
//! words) that the RFC asks for.

use mail_auth::arc::ArcSealer;
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::generate::DkimKeyPair;
use mail_auth::{AuthenticatedMessage, AuthenticationResults, MessageAuthenticator};
use postfach_core::mail::header_block::HeaderBlock;

use crate::test_dns::ZoneDns;

struct Key {
    private: Vec<u8>,
    /// `p=` of the DNS record (the RSAPublicKey of RFC 8017, which DKIM verifiers also take).
    public_b64: String,
}

fn key() -> Key {
    use base64::Engine;
    let pair = DkimKeyPair::generate_rsa(2048).unwrap();
    Key {
        private: pair.private_key().to_vec(),
        public_b64: base64::engine::general_purpose::STANDARD.encode(pair.public_key()),
    }
}

/// One more ARC set on `message`, by `domain`/`selector`, covering `headers`.
async fn seal(
    auth: &MessageAuthenticator,
    message: &str,
    key: &Key,
    domain: &str,
    selector: &str,
    headers: &[&str],
) -> String {
    let parsed = AuthenticatedMessage::parse(message.as_bytes()).unwrap();
    let arc = auth.verify_arc(&parsed).await;
    let dkim = auth.verify_dkim(&parsed).await;
    let results = AuthenticationResults::new(domain)
        .with_dkim_results(&dkim, "a@one.test")
        .with_arc_result(&arc, "192.0.2.1".parse().unwrap());
    let rsa = crate::outbound::rsa_key(&key.private).unwrap();
    let set = ArcSealer::from_key(rsa)
        .domain(domain)
        .selector(selector)
        .headers(headers.iter().copied())
        .seal(&parsed, &results, &arc)
        .unwrap();
    format!("{}{message}", set.to_header())
}

async fn verdict(auth: &MessageAuthenticator, message: &str) -> &'static str {
    let parsed = AuthenticatedMessage::parse(message.as_bytes()).unwrap();
    crate::mailauth::arc_word(&auth.verify_arc(&parsed).await)
}

/// `message` without the header fields named `name`.
fn without(message: &str, name: &str) -> String {
    let block = HeaderBlock::parse(message.as_bytes()).unwrap();
    String::from_utf8(block.without(|f, _| f.name.eq_ignore_ascii_case(name))).unwrap()
}

/// `message` with the first `from` replaced by `to` (asserting that it was there).
fn edit(message: &str, from: &str, to: &str) -> String {
    assert!(message.contains(from), "{from:?} in {message}");
    message.replacen(from, to, 1)
}

const BASE: &str = "From: a@one.test\r\nTo: b@two.test\r\nSubject: hello\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@one.test>\r\n\r\nHello.\r\n";
const HEADERS: &[&str] = &["From", "To", "Subject", "Date", "Message-ID"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8617_chain_validation() {
    let (k1, k2) = (key(), key());
    let record = |k: &Key| format!("v=DKIM1; k=rsa; p={}", k.public_b64);
    let zone = serde_json::json!({
        "s1._domainkey.one.test": [{"TXT": record(&k1)}],
        "s2._domainkey.two.test": [{"TXT": record(&k2)}],
    });
    let server = ZoneDns::start(&zone);
    let auth = crate::mailauth::authenticator(&server.settings()).unwrap();

    let one = seal(&auth, BASE, &k1, "one.test", "s1", HEADERS).await;
    let two = seal(&auth, &one, &k2, "two.test", "s2", HEADERS).await;
    let seal_line = one.lines().next().unwrap().to_string();
    assert!(seal_line.starts_with("ARC-Seal: i=1;"), "{one}");
    let t_tag = seal_line
        .split(';')
        .map(str::trim)
        .find(|t| t.starts_with("t="))
        .map(|t| format!(" {t};"));

    let mut cases: Vec<(&str, String, &str)> = vec![
        ("§5.2: no ARC header field at all", BASE.to_string(), "none"),
        ("one valid set", one.clone(), "pass"),
        ("two valid sets", two.clone(), "pass"),
        (
            "§5.2 step 6: body changed after sealing",
            edit(&one, "Hello.", "Hello!"),
            "fail",
        ),
        (
            "§5.2 step 5: a signed header changed",
            edit(&two, "Subject: hello", "Subject: HELLO"),
            "fail",
        ),
        (
            "§5.2 step 2: AAR missing",
            without(&one, "ARC-Authentication-Results"),
            "fail",
        ),
        (
            "§5.2 step 2: AMS missing",
            without(&one, "ARC-Message-Signature"),
            "fail",
        ),
        (
            "§5.2 step 2: only an ARC-Seal",
            without(
                &without(&one, "ARC-Message-Signature"),
                "ARC-Authentication-Results",
            ),
            "fail",
        ),
        (
            "§5.2 step 2: only an AAR",
            without(&without(&one, "ARC-Message-Signature"), "ARC-Seal"),
            "fail",
        ),
        (
            "§4.2.1: set 1 missing under set 2",
            {
                let block = HeaderBlock::parse(two.as_bytes()).unwrap();
                // The newest set comes first; drop the fields of instance 1.
                String::from_utf8(block.without(|f, v| {
                    f.name.to_ascii_lowercase().starts_with("arc-")
                        && String::from_utf8_lossy(v).trim_start().starts_with("i=1;")
                }))
                .unwrap()
            },
            "fail",
        ),
        (
            "§4.2.1: instance 1 twice",
            format!("{}{}", &one[..one.find("From: ").unwrap()], one),
            "fail",
        ),
        (
            "§4.1.3: rsa-sha1 seal",
            edit(
                &one,
                "ARC-Seal: i=1; a=rsa-sha256;",
                "ARC-Seal: i=1; a=rsa-sha1;",
            ),
            "fail",
        ),
        (
            "§4.1.3: h= in the ARC-Seal",
            edit(&one, "cv=none;", "cv=none; h=From;"),
            "fail",
        ),
        (
            "§4.1.3: cv=pass on instance 1",
            edit(&one, "cv=none;", "cv=pass;"),
            "fail",
        ),
        (
            "§4.1.3: cv=fail",
            edit(&two, "cv=pass;", "cv=fail;"),
            "fail",
        ),
        ("§4.1.3: cv missing", edit(&one, " cv=none;", ""), "fail"),
        (
            "RFC 6376 §3.2: a tag twice",
            edit(&one, "cv=none;", "cv=none; cv=none;"),
            "fail",
        ),
        (
            "RFC 6376 §3.2: not a tag-list",
            edit(&one, "cv=none;", "cv=none; garbage;"),
            "fail",
        ),
        (
            "RFC 6376 §3.2: empty tag-spec",
            edit(&one, "cv=none;", "cv=none;;"),
            "fail",
        ),
        (
            "§4.1.2: AMS without bh=",
            {
                let i = one.find("bh=").unwrap();
                let end = i + one[i..].find(';').unwrap() + 1;
                format!("{}{}", &one[..i], &one[end..])
            },
            "fail",
        ),
        (
            "§4.1.2: AMS h= covering ARC-Seal",
            seal(
                &auth,
                BASE,
                &k1,
                "one.test",
                "s1",
                &["From", "Subject", "ARC-Seal"],
            )
            .await,
            "fail",
        ),
        (
            "§5.2: the sealer's key is not published",
            seal(&auth, BASE, &k1, "one.test", "nokey", HEADERS).await,
            "fail",
        ),
        (
            "§5.2: the seal signed by another key",
            seal(&auth, BASE, &k2, "one.test", "s1", HEADERS).await,
            "fail",
        ),
    ];
    if let Some(t) = t_tag {
        cases.push((
            "§4.1.3: t missing from the ARC-Seal",
            edit(&one, &t, ""),
            "fail",
        ));
    }
    let mut failures = Vec::new();
    for (what, message, expected) in &cases {
        let got = verdict(&auth, message).await;
        if got != *expected {
            failures.push(format!("{what}: expected arc={expected}, got arc={got}"));
        }
    }
    assert!(cases.len() >= 20);
    assert!(
        failures.is_empty(),
        "{}\n\nthe valid chain:\n{two}",
        failures.join("\n")
    );
}
