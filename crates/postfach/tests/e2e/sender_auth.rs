//! Sender authentication from the outside (F4, P1, O2): forged mail through the MX and
//! submission, DATA framing (SMTP smuggling), forged Authentication-Results, and DKIM
//! authority across tenants. The peers are real: a DNS server (dnslib) serving a victim domain
//! that publishes `p=reject` and an attacker domain whose SPF passes, raw sockets for
//! byte-exact messages, an SMTP sink for what leaves, and dkimpy to verify signatures.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Data, PW, Peer, Server, deliver, piped, rsa_key, scripted, tool, wait_until};

/// The zone: bank.test is the victim (no sender of ours may pass its SPF; `p=reject`);
/// attack.test is the attacker's own domain (SPF passes for 127.0.0.1; `p=none`).
fn zone() -> Value {
    json!({
        "bank.test.": [["TXT", "v=spf1 -all"]],
        "_dmarc.bank.test.": [["TXT", "v=DMARC1; p=reject"]],
        "attack.test.": [["TXT", "v=spf1 ip4:127.0.0.1 -all"]],
        "_dmarc.attack.test.": [["TXT", "v=DMARC1; p=none"]],
        "quar.test.": [["TXT", "v=spf1 -all"]],
        "_dmarc.quar.test.": [["TXT", "v=DMARC1; p=quarantine"]],
    })
}

fn setup(d: &Data) {
    d.service("acme.example", "standard", None);
    for a in ["info@acme.example", "jean@acme.example"] {
        d.ok(&["address", "add", a, "--password", PW]);
    }
}

/// Sends one message byte for byte (`body` is the DATA content without the final
/// `.<CRLF>`) on the MX and returns the reply to the end of data.
fn mx_send(port: u16, mail_from: &str, body: &str) -> String {
    let out = scripted(
        "raw_client.py",
        &[&port.to_string(), "plain"],
        &json!([
            ["line"],
            ["send", "EHLO mx.attack.test\r\n"],
            ["until", "250 "],
            ["send", format!("MAIL FROM:<{mail_from}>\r\n")],
            ["line"],
            ["send", "RCPT TO:<info@acme.example>\r\n"],
            ["line"],
            ["send", "DATA\r\n"],
            ["line"],
            ["send", format!("{body}\r\n.\r\n")],
            ["line"],
            ["send", "QUIT\r\n"],
            ["line"],
        ]),
    );
    let steps = out.as_array().unwrap();
    assert!(
        steps[8][0].as_str().unwrap().starts_with("354"),
        "{steps:?}"
    );
    assert!(
        steps[12][0].as_str().unwrap().starts_with("221"),
        "one answer per message, nothing smuggled in between: {steps:?}"
    );
    steps[10][0].as_str().unwrap().to_string()
}

const BODY: &str = "Subject: Your account\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@x.test>\r\n\r\nPlease log in at http://bank.test.attack.test/\r\n";

#[test]
fn forged_senders_are_refused_on_the_mx() {
    let d = Data::sqlite();
    setup(&d);
    let s = Server::start_opts(&d, &zone(), &[]);
    let mx = s.port("smtp");
    // (what is forged, header lines before the common body)
    let refused: &[(&str, &str)] = &[
        // 1. Header lines that are no fields, before or after a valid one.
        (
            "line without colon first",
            "X-Junk\r\nFrom: <admin@bank.test>\r\n",
        ),
        (
            "line without colon between",
            "To: info@acme.example\r\nX-Junk\r\nFrom: <admin@bank.test>\r\n",
        ),
        (
            "line without colon after From",
            "From: <admin@bank.test>\r\nX-Junk\r\n",
        ),
        ("empty field name", ": x\r\nFrom: <admin@bank.test>\r\n"),
        (
            "space in field name",
            "X Junk: x\r\nFrom: <admin@bank.test>\r\n",
        ),
        (
            "blank continuation",
            "To: info@acme.example\r\n \r\nFrom: <admin@bank.test>\r\n",
        ),
        // 2. Several From fields, several authors.
        (
            "two From fields",
            "From: <a@attack.test>\r\nFrom: <admin@bank.test>\r\n",
        ),
        (
            "two From fields, victim first",
            "From: <admin@bank.test>\r\nFrom: <a@attack.test>\r\n",
        ),
        (
            "two From fields, odd casing",
            "FROM: <a@attack.test>\r\nfrom:<admin@bank.test>\r\n",
        ),
        ("two authors", "From: a@attack.test, admin@bank.test\r\n"),
        (
            "two authors, no space",
            "From: a@attack.test,admin@bank.test\r\n",
        ),
        (
            "two authors, odd spacing",
            "From:   a@attack.test ,  ADMIN@BANK.TEST  \r\n",
        ),
        (
            "two authors in a group",
            "From: team: a@attack.test, admin@bank.test;\r\n",
        ),
        (
            "space before colon",
            "From : <admin@bank.test>\r\nFrom: <a@attack.test>\r\n",
        ),
        // 3. A continuation first: it would extend the header we prepend.
        (
            "leading continuation",
            " dkim=pass header.d=bank.test; dmarc=pass\r\nFrom: <admin@bank.test>\r\n",
        ),
        (
            "leading continuation, aligned From",
            "\tdmarc=pass\r\nFrom: <a@attack.test>\r\n",
        ),
        // 4. Author domains DMARC cannot look up as written.
        ("trailing dot", "From: <admin@bank.test.>\r\n"),
        ("empty label", "From: <admin@bank..test>\r\n"),
        ("IP literal", "From: <admin@[127.0.0.1]>\r\n"),
        ("no author", "From: Bank Security\r\n"),
        ("space after the at sign", "From: <admin@ bank.test>\r\n"),
        ("spaces around the at sign", "From: admin @ bank.test\r\n"),
        (
            "no-break space in the domain",
            "From: <admin@\u{a0}bank.test>\r\n",
        ),
        (
            "text after the angle-addr",
            "From: <admin@bank.test>x@attack.test\r\n",
        ),
        ("two at signs", "From: admin@bank.test@attack.test\r\n"),
        (
            "two angle-addrs",
            "From: <admin@bank.test> <a@attack.test>\r\n",
        ),
        ("no From", "Sender: <admin@bank.test>\r\n"),
        // 6. Bare line ends and NUL in the header section.
        (
            "bare LF",
            "From: <a@attack.test>\nFrom: <admin@bank.test>\r\n",
        ),
        (
            "bare CR",
            "From: <a@attack.test>\rFrom: <admin@bank.test>\r\n",
        ),
        ("NUL", "From: <admin@bank.test>\0\r\n"),
        // The plain spoof and its disguises: one author, bank.test, DMARC fails → reject.
        ("plain spoof", "From: <admin@bank.test>\r\n"),
        ("upper case", "From: Bank <ADMIN@BANK.TEST>\r\n"),
        ("no space", "From:<admin@bank.test>\r\n"),
        (
            "attacker as display name",
            "From: \"a@attack.test\" <admin@bank.test>\r\n",
        ),
        (
            "attacker in encoded word",
            "From: =?utf-8?q?a=40attack=2Etest?= <admin@bank.test>\r\n",
        ),
        (
            "attacker in comment",
            "From: admin@bank.test (a@attack.test)\r\n",
        ),
        (
            "attacker as Sender",
            "From: <admin@bank.test>\r\nSender: <a@attack.test>\r\n",
        ),
        ("folded From", "From:\r\n <admin@bank.test>\r\n"),
        (
            "attacker as Resent-From",
            "Resent-From: <a@attack.test>\r\nFrom: <admin@bank.test>\r\n",
        ),
    ];
    assert!(refused.len() >= 30);
    // A subdomain so long that "_dmarc." no longer fits in a DNS name (the lookup would fail
    // and fail open as "temperror").
    let long = format!("From: <admin@{}bank.test>\r\n", "x23456789.".repeat(24));
    let refused: Vec<(&str, &str)> = refused
        .iter()
        .copied()
        .chain([("over-long author domain", long.as_str())])
        .collect();
    for (what, headers) in &refused {
        let reply = mx_send(mx, "bounce@attack.test", &format!("{headers}{BODY}"));
        assert!(reply.starts_with("550 5."), "{what}: {reply}");
        assert!(
            reply.contains("refused") || reply.contains("DMARC"),
            "{what}: a sentence that says why: {reply}"
        );
    }
    // Every verdict left one line an operator can grep (docs/SENDER-AUTHENTICATION.md §5).
    let log = std::fs::read_to_string(d.path().join("server.log")).unwrap();
    let verdicts: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("postfach::auth") && l.contains("inbound verdict"))
        .collect();
    assert_eq!(verdicts.len(), refused.len(), "{log}");
    for line in &verdicts {
        assert!(
            line.contains("refused")
                && line.contains("peer=127.0.0.1")
                && line.contains("helo=mx.attack.test")
                && line.contains("mail_from=bounce@attack.test")
                && line.contains("rcpts=info@acme.example"),
            "{line}"
        );
    }
    assert!(
        verdicts.iter().any(|l| l.contains("from_domain=bank.test")
            && l.contains("dmarc=fail")
            && l.contains("spf=")
            && l.contains("p=reject")),
        "a DMARC refusal names the domain and the results: {verdicts:?}"
    );
    assert!(
        verdicts
            .iter()
            .any(|l| l.contains("more than one From header field")),
        "{verdicts:?}"
    );
    // A genuine message of the attacker's own domain still gets through: the refusals above
    // are about the forgery, not the sender.
    let ok = mx_send(
        mx,
        "bounce@attack.test",
        &format!("From: <a@attack.test>\r\n{BODY}"),
    );
    assert!(ok.starts_with("250 "), "{ok}");
    let inbox = d.wait_messages("info@acme.example", "INBOX", 1);
    std::thread::sleep(Duration::from_millis(500));
    let inbox_now = d.messages("info@acme.example", "INBOX");
    assert_eq!(
        inbox_now.len(),
        1,
        "only the genuine message: {inbox_now:?}"
    );
    let raw = d.message("info@acme.example", inbox[0]["uid"].as_i64().unwrap());
    assert!(raw.contains("dmarc=pass"), "{raw}");
    assert!(raw.contains("header.from=attack.test"), "{raw}");
    assert!(!raw.to_ascii_lowercase().contains("bank.test>"), "{raw}");
}

#[test]
fn forged_authentication_results_are_removed_and_ours_cannot_be_extended() {
    forged_results_on(Data::sqlite());
}

#[test]
fn forged_authentication_results_are_removed_on_postgresql() {
    forged_results_on(Data::postgres());
}

fn forged_results_on(d: Data) {
    setup(&d);
    let s = Server::start_opts(&d, &zone(), &[]);
    let mx = s.port("smtp");
    let headers = "Authentication-Results: mail.e2e.test; dkim=pass header.d=bank.test; dmarc=pass\r\n\
         authentication-results: (forged)\r\n MAIL.E2E.TEST; spf=pass\r\n\
         ARC-Authentication-Results: i=1; mail.e2e.test; arc=pass\r\n\
         ARC-Authentication-Results: mail.e2e.test; i=1; arc=pass\r\n\
         Authentication-Results: \"mail.e2e\\.test\"; dmarc=pass\r\n\
         Authentication-Results: (a\\) mail.e2e.test; dkim=pass\r\n\
         Authentication-Results: other.example; spf=pass smtp.mailfrom=x@other.example\r\n\
         From: <a@attack.test>\r\n";
    let reply = mx_send(mx, "bounce@attack.test", &format!("{headers}{BODY}"));
    assert!(reply.starts_with("250 "), "{reply}");
    let inbox = d.wait_messages("info@acme.example", "INBOX", 1);
    let raw = d.message("info@acme.example", inbox[0]["uid"].as_i64().unwrap());
    let (head, _) = raw.split_once("\r\n\r\n").unwrap();
    let ours: Vec<&str> = head
        .split("\r\n")
        .filter(|l| {
            l.to_ascii_lowercase()
                .starts_with("authentication-results:")
        })
        .collect();
    assert_eq!(
        ours.len(),
        2,
        "ours and the other server's, none forged: {head}"
    );
    assert!(ours[0].contains("mail.e2e.test"), "{head}");
    assert!(ours[1].contains("other.example"), "{head}");
    assert!(!head.contains("header.d=bank.test"), "{head}");
    assert!(!head.contains("(forged)"), "{head}");
    assert!(!head.contains("ARC-Authentication-Results"), "{head}");
    // What IMAP reports as the size is the size of what it serves (RFC 9051 §7.5.2).
    let fetched = crate::imap::imap(
        &s,
        "tls",
        json!([
            ["login", "info@acme.example", PW],
            ["select", "INBOX"],
            ["call", "fetch", "1", "(RFC822.SIZE BODY.PEEK[])"]
        ]),
    );
    let data = &fetched[3][1][0];
    let (prefix, body) = (data[0].as_str().unwrap(), data[1].as_str().unwrap());
    let size: usize = prefix
        .split("RFC822.SIZE ")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{prefix}"));
    assert_eq!(size, body.len(), "{prefix}");
    assert_eq!(body, raw, "IMAP serves the stored message");
    // Our header is followed by a header field, never by a line that continues it.
    let after = head
        .split("\r\n")
        .skip_while(|l| !l.starts_with("Authentication-Results: mail.e2e.test"));
    let next_field = after
        .skip(1)
        .find(|l| !l.starts_with('\t') && !l.starts_with(' '))
        .unwrap();
    assert!(next_field.contains(':'), "{head}");
}

/// Every end-of-data disguise of the SMTP smuggling class, inside one carrier message
/// followed by what would be a second transaction.
const SMUGGLED: &[&str] = &[
    "\n.\n",
    "\r.\r",
    "\r\n.\n",
    "\n.\r\n",
    "\r\n.\r",
    "\r\n.\r\r\n",
    "\r\n.\r\r\r\n",
    "\r\r\n.\r\r\n",
    "\r\n\0.\r\n",
    "\r\n.\0\r\n",
];

fn smuggle_script(end: &str) -> String {
    format!(
        "From: <a@attack.test>\r\nSubject: carrier\r\n\r\nfirst part{end}MAIL FROM:<admin@bank.test>\r\nRCPT TO:<jean@acme.example>\r\nDATA\r\nFrom: <admin@bank.test>\r\nSubject: smuggled\r\n\r\nevil\r\n"
    )
}

/// Submits `data` (without the final `.<CRLF>`) byte for byte as info@acme.example to
/// jean@acme.example over STARTTLS and AUTH PLAIN; returns the replies to the end of data and
/// to the QUIT after it.
fn submit_raw(s: &Server, data: &str) -> (String, String) {
    use base64::Engine;
    let auth =
        base64::engine::general_purpose::STANDARD.encode(format!("\0info@acme.example\0{PW}"));
    let out = scripted(
        "raw_client.py",
        &[&s.port("submission").to_string(), "plain"],
        &json!([
            ["line"],
            ["send", "EHLO laptop.example\r\n"],
            ["until", "250 "],
            ["send", "STARTTLS\r\n"],
            ["line"],
            ["starttls"],
            ["send", "EHLO laptop.example\r\n"],
            ["until", "250 "],
            ["send", format!("AUTH PLAIN {auth}\r\n")],
            ["line"],
            [
                "send",
                "MAIL FROM:<info@acme.example>\r\nRCPT TO:<jean@acme.example>\r\nDATA\r\n"
            ],
            ["line"],
            ["line"],
            ["line"],
            ["send", format!("{data}\r\n.\r\n")],
            ["line"],
            ["send", "QUIT\r\n"],
            ["line"],
        ]),
    );
    let steps = out.as_array().unwrap();
    let line = |n: usize| steps[n][0].as_str().unwrap().to_string();
    assert!(line(9).starts_with("235"), "{steps:?}");
    assert!(line(13).starts_with("354"), "{steps:?}");
    (line(15), line(17))
}

#[test]
fn smtp_smuggling_is_refused_on_the_mx_and_on_submission() {
    smuggling_on(Data::sqlite());
}

#[test]
fn smtp_smuggling_is_refused_on_postgresql() {
    smuggling_on(Data::postgres());
}

fn smuggling_on(d: Data) {
    setup(&d);
    let s = Server::start_opts(&d, &zone(), &[]);
    for end in SMUGGLED {
        let reply = mx_send(s.port("smtp"), "bounce@attack.test", &smuggle_script(end));
        assert!(reply.starts_with("550 5.6.0 "), "{end:?}: {reply}");
    }
    // Submission: the same bytes from an authenticated user.
    for end in SMUGGLED {
        let body = smuggle_script(end).replace("<a@attack.test>", "<info@acme.example>");
        let (end_reply, quit) = submit_raw(&s, &body);
        assert!(end_reply.starts_with("550 5.6.0 "), "{end:?}: {end_reply}");
        assert!(
            quit.starts_with("221"),
            "nothing smuggled in between: {quit}"
        );
    }
    // Nothing of it waits to be relayed.
    assert!(
        d.json(&["queue", "list"]).as_array().unwrap().is_empty(),
        "{}",
        d.ok(&["queue", "list"])
    );
    // A correct end followed by a pipelined second transaction: two messages, each its own.
    let two = scripted(
        "raw_client.py",
        &[&s.port("smtp").to_string(), "plain"],
        &json!([
            ["line"],
            ["send", "EHLO mx.attack.test\r\n"],
            ["until", "250 "],
            [
                "send",
                format!(
                    "MAIL FROM:<bounce@attack.test>\r\nRCPT TO:<info@acme.example>\r\nDATA\r\nFrom: <a@attack.test>\r\nSubject: first\r\n\r\none\r\n.\r\nMAIL FROM:<bounce@attack.test>\r\nRCPT TO:<info@acme.example>\r\nDATA\r\nFrom: <a@attack.test>\r\nSubject: second\r\n\r\ntwo\r\n.\r\nQUIT\r\n"
                )
            ],
            ["line"],
            ["line"],
            ["line"],
            ["line"],
            ["line"],
            ["line"],
            ["line"],
            ["line"],
            ["line"],
        ]),
    );
    let lines: Vec<&str> = two.as_array().unwrap()[4..]
        .iter()
        .map(|l| l[0].as_str().unwrap())
        .collect();
    assert!(
        lines[3].starts_with("250 ") && lines[7].starts_with("250 "),
        "{lines:?}"
    );
    // BDAT (RFC 3030) has no end-of-data sequence, but the same content rules: a chunk with a
    // bare LF or NUL is refused at LAST, and what follows the chunk is a command again.
    for chunk in [
        "From: <a@attack.test>\r\nSubject: bdat\r\n\r\nx\n.\nMAIL FROM:<a@b.test>\r\n",
        "From: <a@attack.test>\r\nSubject: bdat\r\n\r\nx\0\r\n",
    ] {
        let out = scripted(
            "raw_client.py",
            &[&s.port("smtp").to_string(), "plain"],
            &json!([
                ["line"],
                ["send", "EHLO mx.attack.test\r\n"],
                ["until", "250 "],
                [
                    "send",
                    "MAIL FROM:<bounce@attack.test>\r\nRCPT TO:<jean@acme.example>\r\n"
                ],
                ["line"],
                ["line"],
                ["send", format!("BDAT {} LAST\r\n{chunk}", chunk.len())],
                ["line"],
                ["send", "NOOP\r\n"],
                ["line"],
            ]),
        );
        let steps = out.as_array().unwrap();
        let end = steps[7][0].as_str().unwrap();
        assert!(end.starts_with("550 5.6.0 "), "{chunk:?}: {end}");
        assert!(
            steps[9][0].as_str().unwrap().starts_with("250 2.0.0 OK"),
            "{steps:?}"
        );
    }
    // CVE-2011-0411 class with BDAT: a chunk sent in clear text before STARTTLS is not part
    // of the message sent after it.
    let injected = "Reply-To: <evil@attack.test>\r\n";
    let real = "From: <a@attack.test>\r\nSubject: after tls\r\n\r\nreal\r\n";
    let out = scripted(
        "raw_client.py",
        &[&s.port("smtp").to_string(), "plain"],
        &json!([
            ["line"],
            ["send", "EHLO mx.attack.test\r\n"],
            ["until", "250 "],
            [
                "send",
                format!(
                    "MAIL FROM:<bounce@attack.test>\r\nRCPT TO:<info@acme.example>\r\nBDAT {}\r\n{injected}",
                    injected.len()
                )
            ],
            ["line"],
            ["line"],
            ["line"],
            ["send", "STARTTLS\r\n"],
            ["line"],
            ["starttls"],
            ["send", "EHLO mx.attack.test\r\n"],
            ["until", "250 "],
            [
                "send",
                format!(
                    "MAIL FROM:<bounce@attack.test>\r\nRCPT TO:<info@acme.example>\r\nBDAT {} LAST\r\n{real}",
                    real.len()
                )
            ],
            ["line"],
            ["line"],
            ["line"],
        ]),
    );
    let steps = out.as_array().unwrap();
    assert!(
        steps[8][0].as_str().unwrap().starts_with("220"),
        "{steps:?}"
    );
    assert!(
        steps[15][0].as_str().unwrap().starts_with("250 "),
        "{steps:?}"
    );
    let inbox = d.wait_messages("info@acme.example", "INBOX", 3);
    let after_tls = inbox.iter().find(|m| m["subject"] == "after tls").unwrap();
    let stored = d.message("info@acme.example", after_tls["uid"].as_i64().unwrap());
    assert!(!stored.contains("evil@attack.test"), "{stored}");
    let inbox = d.wait_messages("info@acme.example", "INBOX", 3);
    let mut subjects: Vec<&str> = inbox
        .iter()
        .map(|m| m["subject"].as_str().unwrap())
        .collect();
    subjects.sort();
    assert_eq!(subjects, ["after tls", "first", "second"]);
    // Once nothing waits in the queue, whatever was accepted has been delivered.
    d.wait_queue_empty();
    assert!(
        d.messages("jean@acme.example", "INBOX").is_empty(),
        "nothing smuggled was stored"
    );
    assert_eq!(d.messages("info@acme.example", "INBOX").len(), 3);
}

#[test]
fn submission_checks_the_one_author_the_reader_sees() {
    let d = Data::sqlite();
    setup(&d);
    let s = Server::start_opts(&d, &zone(), &[]);
    let cases: &[(&str, &str)] = &[
        (
            "two From fields",
            "From: CEO <eve@other.test>\r\nFrom: info@acme.example\r\n",
        ),
        (
            "two From fields, upper case",
            "FROM: CEO <eve@other.test>\r\nFrom: info@acme.example\r\n",
        ),
        (
            "space before colon",
            "From : CEO <eve@other.test>\r\nFrom: info@acme.example\r\n",
        ),
        (
            "bare LF",
            "From: CEO <eve@other.test>\nFrom: info@acme.example\r\n",
        ),
        ("two authors", "From: info@acme.example, eve@other.test\r\n"),
        ("another author", "From: CEO <eve@other.test>\r\n"),
        ("no author", "Subject: x\r\n"),
    ];
    for (what, headers) in cases {
        let (reply, _) = submit_raw(&s, &format!("{headers}Subject: hi\r\n\r\nbody"));
        assert!(reply.starts_with("55"), "{what}: {reply}");
    }
    // Each refusal is explained in the log, as inbound verdicts are.
    let log = std::fs::read_to_string(d.path().join("server.log")).unwrap();
    let explained = log
        .lines()
        .filter(|l| l.contains("submission verdict") && l.contains("refused"))
        .count();
    assert!(
        explained >= cases.len(),
        "{explained} of {}: {log}",
        cases.len()
    );
    // Once nothing waits in the queue, whatever was accepted has been delivered.
    d.wait_queue_empty();
    assert!(d.messages("jean@acme.example", "INBOX").is_empty());
}

/// The TXT records of `domain`'s DKIM keys, as `postfach domain dns` lists them.
fn dkim_records(d: &Data, domain: &str) -> serde_json::Map<String, Value> {
    d.json(&["domain", "dns", domain])
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["type"] == "TXT" && r["name"].as_str().unwrap().contains("._domainkey."))
        .map(|r| {
            (
                format!("{}.", r["name"].as_str().unwrap()),
                r["value"].clone(),
            )
        })
        .collect()
}

/// dkimpy's verdict per signature: ("pass"|"fail", domain).
fn dkim_verdicts(message: &Path, keys: &Path) -> Vec<(String, String)> {
    let v = std::process::Command::new("python3")
        .arg(tool("dkim_verify.py"))
        .arg(message)
        .arg(keys)
        .output()
        .unwrap();
    String::from_utf8_lossy(&v.stdout)
        .lines()
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w[0].to_string(), w[2].to_ascii_lowercase())
        })
        .collect()
}

#[test]
fn the_platform_signs_only_for_the_domain_of_whoever_produced_the_mail_and_seals_forwards() {
    signing_authority_on(Data::sqlite());
}

#[test]
fn signing_authority_and_arc_seal_on_postgresql() {
    signing_authority_on(Data::postgres());
}

fn signing_authority_on(d: Data) {
    // Organization A (Acme): acme.example. Organization B: b.example, the victim.
    d.service("acme.example", "standard", None);
    d.ok(&["org", "add", "Bee"]);
    d.ok(&["domain", "add", "b.example", "--org", "Bee"]);
    d.ok(&[
        "service",
        "add",
        "b.example",
        "--org",
        "Bee",
        "--offer",
        "standard",
    ]);
    for a in [
        "info@acme.example",
        "jean@acme.example",
        "fwd@acme.example",
        "fwd2@acme.example",
        "ceo@b.example",
    ] {
        d.ok(&["address", "add", a, "--password", PW]);
    }
    let sink_dir = d.path().join("sink");
    let _sink = Peer::sink(&sink_dir, "accept", None);
    d.config_line(
        "routes",
        &format!("\"remote.example\" = \"127.0.0.1:{}\"", _sink.port),
    );
    // Route 1: a vacation reply "from" B's CEO.
    let vacation = d.write(
        "vacation.sieve",
        "require \"vacation\";\nvacation :days 1 :from \"ceo@b.example\" :subject \"Away\" \"I am away.\";\n",
    );
    d.ok(&[
        "sieve",
        "put",
        "info@acme.example",
        "away",
        vacation.to_str().unwrap(),
        "--activate",
    ]);
    // Route 2: a Sieve script that rewrites From to B's CEO and redirects.
    let rewrite = d.write(
        "rewrite.sieve",
        "require [\"editheader\"];\ndeleteheader \"From\";\naddheader \"From\" \"ceo@b.example\";\nredirect \"victim@remote.example\";\n",
    );
    d.ok(&[
        "sieve",
        "put",
        "jean@acme.example",
        "rewrite",
        rewrite.to_str().unwrap(),
        "--activate",
    ]);
    // Route 3: plain forwarding of inbound mail whose From is in B.
    d.ok(&[
        "forward",
        "set",
        "fwd@acme.example",
        "--to",
        "out@remote.example",
        "--keep",
    ]);
    // Route 4: forwarding of an outside forgery of the forwarder's own domain.
    d.ok(&[
        "forward",
        "set",
        "fwd2@acme.example",
        "--to",
        "out2@remote.example",
        "--keep",
    ]);
    let s = Server::start_opts(&d, &zone(), &[]);

    let m = |from: &str, to: &str, subject: &str| {
        format!(
            "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{subject}@remote.example>\r\n\r\nHello\r\n"
        )
    };
    deliver(
        &s,
        "anna@remote.example",
        "info@acme.example",
        &m("anna@remote.example", "info@acme.example", "route1"),
    );
    deliver(
        &s,
        "anna@remote.example",
        "jean@acme.example",
        &m("anna@remote.example", "jean@acme.example", "route2"),
    );
    deliver(
        &s,
        "x@other.example",
        "fwd@acme.example",
        &m("CEO <ceo@b.example>", "fwd@acme.example", "route3"),
    );
    deliver(
        &s,
        "x@other.example",
        "fwd2@acme.example",
        &m("CEO <ceo@acme.example>", "fwd2@acme.example", "route4"),
    );
    // Route 5: a forgery of the forwarding mailbox's own address.
    deliver(
        &s,
        "x@other.example",
        "fwd2@acme.example",
        &m("<fwd2@acme.example>", "fwd2@acme.example", "route5"),
    );
    // Route 6: a forgery of a domain publishing p=quarantine is quarantined (Spam), and Spam
    // is never forwarded: it cannot leave with an SRS envelope of ours that aligns for SPF.
    deliver(
        &s,
        "x@other.example",
        "fwd2@acme.example",
        &m("<admin@quar.test>", "fwd2@acme.example", "route6"),
    );
    let spam = d.wait_messages("fwd2@acme.example", "Spam", 1);
    assert_eq!(spam[0]["subject"], "route6", "{spam:?}");

    let eml = |n: usize| sink_dir.join(format!("{n}.eml"));
    assert!(
        wait_until(Duration::from_secs(30), || eml(5).exists()),
        "five messages left for remote.example"
    );
    let mut keys = dkim_records(&d, "acme.example");
    keys.extend(dkim_records(&d, "b.example"));
    // The platform's ARC key, as `postfach domain dns HOSTNAME` says to publish it.
    let platform = dkim_records(&d, "mail.e2e.test");
    assert_eq!(platform.len(), 1, "{platform:?}");
    keys.extend(platform);
    let keys_file = d.path().join("keys.json");
    std::fs::write(&keys_file, Value::Object(keys).to_string()).unwrap();
    let mut seen = Vec::new();
    d.wait_queue_empty();
    assert!(
        !eml(6).exists(),
        "the quarantined forgery was not forwarded"
    );
    for n in 1..=5 {
        let text = std::fs::read_to_string(eml(n)).unwrap();
        let subject = ["route1", "route2", "route3", "route4", "route5"]
            .into_iter()
            .find(|r| text.contains(r))
            .unwrap_or_else(|| panic!("{text}"));
        seen.push(subject);
        let verdicts = dkim_verdicts(&eml(n), &keys_file);
        assert!(
            verdicts.iter().all(|(_, dom)| dom != "b.example"),
            "{subject}: no signature of B's domain: {verdicts:?}\n{text}"
        );
        match subject {
            // The mailbox's own reply, and a forward whose author acme.example's signature
            // cannot align with: signed by the producer's own domain, and valid.
            "route1" | "route3" => assert!(
                !verdicts.is_empty()
                    && verdicts
                        .iter()
                        .all(|(v, dom)| v == "pass" && dom == "acme.example"),
                "{subject}: signed by the producer's own domain, and valid: {verdicts:?}"
            ),
            // A Sieve-edited redirect (any From the script wrote), and forwards of a forged
            // "ceo@acme.example" or of the mailbox's own address (acme.example's signature would
            // make them pass DMARC): unsigned.
            _ => assert!(
                verdicts.is_empty(),
                "{subject}: no signature: {verdicts:?}\n{text}"
            ),
        }
        let (head, _) = text
            .split_once("\r\n\r\n")
            .or_else(|| text.split_once("\n\n"))
            .unwrap();
        // Forwards (routes 3 to 5) carry a valid ARC set sealed by the platform; the
        // vacation reply is the mailbox's own mail and the edited redirect is not vouched
        // for: they carry none.
        let arc = std::process::Command::new("python3")
            .arg(tool("arc_verify.py"))
            .arg(eml(n))
            .arg(&keys_file)
            .output()
            .unwrap();
        let arc_out = String::from_utf8_lossy(&arc.stdout).to_string();
        if subject == "route1" || subject == "route2" {
            assert!(arc_out.starts_with("none"), "{subject}: {arc_out}");
        } else {
            assert!(
                arc.status.success() && arc_out.lines().nth(1) == Some("mail.e2e.test"),
                "{subject}: ARC chain of the platform passes: {arc_out}{}\n{text}",
                String::from_utf8_lossy(&arc.stderr)
            );
        }
        if subject == "route1" {
            assert!(
                head.contains("From: <info@acme.example>") && !head.contains("ceo@b.example"),
                "the vacation reply is sent as the mailbox, not as B: {head}"
            );
        }
        // A Sieve-edited redirect leaves with the author it arrived with (RFC 5293 §6): the
        // script's "From: ceo@b.example" is gone.
        if subject == "route2" {
            assert!(
                head.contains("From: anna@remote.example") && !head.contains("ceo@b.example"),
                "{head}"
            );
        }
        // F11: a forward's SRS envelope never aligns with its author under DMARC: a forged
        // ceo@acme.example (route 4) or the mailbox's own address (route 5) leaves with an
        // SRS address of the platform's host name, B's CEO (route 3) with acme.example's.
        let envelope: Value = serde_json::from_str(
            &std::fs::read_to_string(sink_dir.join(format!("{n}.json"))).unwrap(),
        )
        .unwrap();
        let mail_from = envelope["mail_from"].as_str().unwrap().to_ascii_lowercase();
        match subject {
            "route3" => assert!(mail_from.ends_with("@acme.example"), "{mail_from}"),
            "route4" | "route5" => assert!(
                mail_from.starts_with("srs0=") && mail_from.ends_with("@mail.e2e.test"),
                "{subject}: {mail_from}"
            ),
            _ => {}
        }
    }
    seen.sort();
    assert_eq!(seen, ["route1", "route2", "route3", "route4", "route5"]);
    // The platform's host name publishes an SPF record for those forwards.
    let platform = d.json(&["domain", "dns", "mail.e2e.test"]);
    assert!(
        platform
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "mail.e2e.test"
                && r["value"].as_str().unwrap().starts_with("v=spf1")),
        "{platform}"
    );
}

/// `message` sealed by `domain` with dkimpy (tools/arc_seal.py).
fn arc_sealed(key: &Path, domain: &str, message: &str) -> String {
    let mut cmd = std::process::Command::new("python3");
    cmd.arg(tool("arc_seal.py")).arg(key).args([domain, "arc"]);
    String::from_utf8(piped(cmd, message.as_bytes())).unwrap()
}

#[test]
fn a_trusted_forwarders_arc_seal_overrides_a_dmarc_reject_and_nothing_else_does() {
    let d = Data::sqlite();
    setup(&d);
    let (trusted_key, trusted_pub) = rsa_key(&d, "trusted");
    let (other_key, other_pub) = rsa_key(&d, "other");
    let mut z = zone();
    let records = z.as_object_mut().unwrap();
    for (name, value) in [
        ("lists.example.", "v=spf1 ip4:127.0.0.1 -all".to_string()),
        (
            "arc._domainkey.lists.example.",
            format!("v=DKIM1; k=rsa; p={trusted_pub}"),
        ),
        (
            "other-list.example.",
            "v=spf1 ip4:127.0.0.1 -all".to_string(),
        ),
        (
            "arc._domainkey.other-list.example.",
            format!("v=DKIM1; k=rsa; p={other_pub}"),
        ),
    ] {
        records.insert(name.into(), json!([["TXT", value]]));
    }
    let s = Server::start_opts(
        &d,
        &z,
        &[("POSTFACH_AUTH_TRUSTED_ARC_SEALERS", "lists.example")],
    );
    // A list post of bank.test: the list verified it (its AAR says dmarc=pass), then changed
    // the subject and sent it from its own envelope: SPF and DKIM no longer align.
    let post = |sealer: &str, dmarc: &str, subject: &str| {
        format!(
            "Authentication-Results: {sealer}; dkim=pass header.d=bank.test; spf=pass smtp.mailfrom=admin@bank.test; dmarc={dmarc} header.from=bank.test\r\nFrom: <admin@bank.test>\r\nTo: list@{sealer}\r\nSubject: [list] {subject}\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{subject}@bank.test>\r\n\r\nMinutes of the meeting.\r\n"
        )
    };
    let trusted = arc_sealed(
        &trusted_key,
        "lists.example",
        &post("lists.example", "pass", "trusted"),
    );
    let unverified = arc_sealed(
        &trusted_key,
        "lists.example",
        &post("lists.example", "fail", "unverified"),
    );
    let untrusted = arc_sealed(
        &other_key,
        "other-list.example",
        &post("other-list.example", "pass", "untrusted"),
    );
    let ok = mx_send(s.port("smtp"), "bounces@lists.example", &trusted);
    assert!(ok.starts_with("250 "), "{ok}");
    let refused = mx_send(s.port("smtp"), "bounces@lists.example", &unverified);
    assert!(
        refused.starts_with("550 5.7.1") && refused.contains("DMARC"),
        "the sealer did not vouch: {refused}"
    );
    let refused = mx_send(s.port("smtp"), "bounces@other-list.example", &untrusted);
    assert!(
        refused.starts_with("550 5.7.1") && refused.contains("DMARC"),
        "not a trusted sealer: {refused}"
    );
    // The same post without any seal is refused as before.
    let bare = mx_send(
        s.port("smtp"),
        "bounces@lists.example",
        &post("lists.example", "pass", "bare"),
    );
    assert!(bare.starts_with("550 5.7.1"), "{bare}");
    let inbox = d.wait_messages("info@acme.example", "INBOX", 1);
    // Once nothing waits in the queue, whatever was accepted has been delivered.
    d.wait_queue_empty();
    assert_eq!(d.messages("info@acme.example", "INBOX").len(), 1);
    let raw = d.message("info@acme.example", inbox[0]["uid"].as_i64().unwrap());
    assert!(
        raw.contains("arc=pass (trusted sealer lists.example)"),
        "{raw}"
    );
    assert!(
        raw.contains("dmarc=fail"),
        "the DMARC result itself is recorded as it is: {raw}"
    );
    assert!(
        raw.contains("ARC_TRUSTED_FORWARD"),
        "the spam filter saw it too: {raw}"
    );
    assert!(!raw.contains("DMARC_FAIL"), "{raw}");
}

#[test]
fn a_sender_whose_dns_never_answers_gets_a_temporary_refusal_not_a_pass() {
    let d = Data::sqlite();
    setup(&d);
    let mut z = zone();
    let records = z.as_object_mut().unwrap();
    records.insert("slow.attack.test.".into(), json!([["TIMEOUT", ""]]));
    for n in 1..=4 {
        records.insert(
            format!("x._domainkey.slow{n}.attack.test."),
            json!([["TIMEOUT", ""]]),
        );
    }
    let s = Server::start_opts(&d, &z, &[("POSTFACH_DNS_TIMEOUT_SECONDS", "1")]);
    // Signatures whose body hash is right, so that their keys are looked up.
    let body = "Hello\r\n";
    let bh = {
        use base64::Engine;
        use sha2::Digest;
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(body.as_bytes()))
    };
    let signatures: String = (1..=4)
        .map(|n| {
            format!(
                "DKIM-Signature: v=1; a=rsa-sha256; c=simple/simple; d=slow{n}.attack.test; s=x; h=from; bh={bh}; b=AAAA\r\n"
            )
        })
        .collect();
    let started = std::time::Instant::now();
    let reply = mx_send(
        s.port("smtp"),
        "bounce@slow.attack.test",
        &format!("{signatures}From: <admin@bank.test>\r\nSubject: slow\r\n\r\n{body}"),
    );
    assert!(reply.starts_with("451 4.7.0 "), "{reply}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "bounded: {:?}",
        started.elapsed()
    );
    // Once nothing waits in the queue, whatever was accepted has been delivered.
    d.wait_queue_empty();
    assert!(d.messages("info@acme.example", "INBOX").is_empty());
}

/// F4/O2 through Sieve and allow lists: a mailbox's script that rewrites From and our
/// Authentication-Results and redirects to another organization's mailbox on this platform
/// delivers the message with the author and verdict it arrived with; and an allow-list entry
/// for a forged author of a `p=quarantine` domain does not lift the quarantine (RFC 7489
/// §6.3: the address is what was forged).
#[test]
fn sieve_cannot_forge_an_author_and_allow_lists_do_not_lift_quarantine() {
    let d = Data::sqlite();
    setup(&d);
    d.ok(&["org", "add", "Bee"]);
    d.ok(&["domain", "add", "b.example", "--org", "Bee"]);
    d.ok(&[
        "service",
        "add",
        "b.example",
        "--org",
        "Bee",
        "--offer",
        "standard",
    ]);
    d.ok(&["address", "add", "ceo@b.example", "--password", PW]);
    let script = d.write(
        "forge.sieve",
        "require [\"editheader\"];\ndeleteheader \"From\";\ndeleteheader \"Authentication-Results\";\n\
         addheader \"Authentication-Results\" \"mail.e2e.test; dkim=pass header.d=b.example; dmarc=pass header.from=b.example\";\n\
         addheader \"From\" \"CEO <ceo@b.example>\";\nredirect \"ceo@b.example\";\n",
    );
    d.ok(&[
        "sieve",
        "put",
        "jean@acme.example",
        "forge",
        script.to_str().unwrap(),
        "--activate",
    ]);
    d.ok(&[
        "list",
        "allow",
        "add",
        "info@acme.example",
        "admin@quar.test",
    ]);
    let s = Server::start_opts(&d, &zone(), &[]);
    deliver(
        &s,
        "anna@attack.test",
        "jean@acme.example",
        "From: anna@attack.test\r\nTo: jean@acme.example\r\nSubject: redirected\r\n\r\nHello\r\n",
    );
    let got = d.wait_messages("ceo@b.example", "INBOX", 1);
    let raw = d.message("ceo@b.example", got[0]["uid"].as_i64().unwrap());
    let head = raw.split("\r\n\r\n").next().unwrap();
    assert!(
        head.contains("From: anna@attack.test") && !head.contains("CEO <ceo@b.example>"),
        "{head}"
    );
    assert!(!head.contains("dmarc=pass header.from=b.example"), "{head}");
    assert_ne!(got[0]["from"], "CEO <ceo@b.example>");
    // The allow list names the forged address: quarantine wins.
    let r = mx_send(
        s.port("smtp"),
        "bounce@attack.test",
        "From: Bank <admin@quar.test>\r\nTo: info@acme.example\r\nSubject: allowed forgery\r\n\r\nPay now\r\n",
    );
    assert!(r.starts_with("250"), "{r}");
    let spam = d.wait_messages("info@acme.example", "Spam", 1);
    assert_eq!(spam[0]["subject"], "allowed forgery");
    let log = d.ok(&["delivery-log", "info@acme.example"]);
    assert!(log.contains("quarantine"), "{log}");
}

/// An envelope path that could not be written again as the same address (a quoted local part
/// holding spaces that would become ESMTP parameters at the next hop, `>`, a NUL) is refused
/// at MAIL and RCPT, never stored in Return-Path or relayed.
#[test]
fn envelope_paths_that_would_change_on_the_way_out_are_refused() {
    let d = Data::sqlite();
    setup(&d);
    let s = Server::start_opts(&d, &zone(), &[]);
    for path in [
        "\"x> AUTH=<ceo@b.example> RET=FULL\"@attack.test",
        "\"a\u{0}b\"@attack.test",
        "\"a\tb\"@attack.test",
    ] {
        let out = scripted(
            "raw_client.py",
            &[&s.port("smtp").to_string(), "plain"],
            &json!([
                ["line"],
                ["send", "EHLO mx.attack.test\r\n"],
                ["until", "250 "],
                ["send", format!("MAIL FROM:<{path}>\r\n")],
                ["line"],
                ["send", "MAIL FROM:<ok@attack.test>\r\n"],
                ["line"],
                ["send", format!("RCPT TO:<{path}>\r\n")],
                ["line"],
                ["send", "QUIT\r\n"],
                ["line"],
            ]),
        );
        let steps = out.as_array().unwrap();
        let reply = |i: usize| steps[i][0].as_str().unwrap().to_string();
        assert!(reply(4).starts_with('5'), "MAIL {path:?}: {steps:?}");
        assert!(reply(6).starts_with("250"), "{steps:?}");
        assert!(reply(8).starts_with('5'), "RCPT {path:?}: {steps:?}");
    }
    // A local part that looks like results does not put them into the verdict log line.
    let reply = mx_send(
        s.port("smtp"),
        "\"x;dmarc=pass;spf=pass\"@attack.test",
        &format!("From: <admin@bank.test>\r\n{BODY}"),
    );
    assert!(reply.starts_with("550 5.7.1"), "{reply}");
    let log = std::fs::read_to_string(d.path().join("server.log")).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("inbound verdict") && l.contains("bank.test"))
        .unwrap_or_else(|| panic!("{log}"));
    let results = line
        .split("results=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert_eq!(results, "spf=pass dkim=none dmarc=fail arc=none", "{line}");
}
