//! SMTP end to end: the real server, driven by independent clients — Python's
//! `smtplib` (tools/smtp_client.py), `swaks`, raw sockets for byte-exact protocol abuse — with
//! mailbox contents checked through the CLI. Remote peers are a Python DNS server (dnslib) and
//! an SMTP sink (aiosmtpd); DKIM signatures are checked with dkimpy.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Data, PW, Peer, Server, piped, python, rsa_key, tool, wait_until};

/// Runs a scripted conversation with smtplib; returns (code, text) per step.
pub(crate) fn smtp(port: u16, mode: &str, steps: Value) -> Vec<(u16, String)> {
    let mut child = Command::new("python3")
        .arg(tool("smtp_client.py"))
        .args([&port.to_string(), mode, "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(steps.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "smtp_client.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Vec<(u16, String)> = serde_json::from_slice(&out.stdout).expect("JSON replies");
    v
}

pub(crate) fn message(from: &str, to: &str, subject: &str, body: &str) -> String {
    let id = postfach_store::testing::TempDir::new("mid");
    let mid = id.path().file_name().unwrap().to_string_lossy().to_string();
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{mid}@test.example>\r\n\r\n{body}\r\n"
    )
}

/// Acme's domains: acme.example (standard, 10 addresses: info, jean, alias hello → info),
/// catch.example (standard, with catchall), starter.example (starter: solo).
fn setup() -> Data {
    setup_on(Data::sqlite())
}

pub(crate) fn setup_on(d: Data) -> Data {
    d.service("acme.example", "standard", Some(10));
    d.service("catch.example", "standard", None);
    d.service("starter.example", "starter", None);
    for a in [
        "info@acme.example",
        "jean@acme.example",
        "catchall@catch.example",
        "solo@starter.example",
    ] {
        d.ok(&["address", "add", a, "--password", PW]);
    }
    d.ok(&[
        "alias",
        "add",
        "hello@acme.example",
        "--to",
        "info@acme.example",
    ]);
    d
}

/// The start of a submission session: EHLO, STARTTLS, EHLO, and AUTH as `user` (if given).
pub(crate) fn submission_prologue(user: Option<&str>) -> Vec<Value> {
    let mut steps = vec![
        json!(["ehlo", "laptop.example"]),
        json!(["starttls"]),
        json!(["ehlo", "laptop.example"]),
    ];
    if let Some(u) = user {
        steps.push(json!(["login", u, PW]));
    }
    steps
}

fn codes(replies: &[(u16, String)]) -> Vec<u16> {
    replies.iter().map(|r| r.0).collect()
}

#[test]
fn delivery_to_address_alias_subaddress_and_catchall_and_refusals() {
    let d = setup();
    let s = Server::start(&d);
    let mx = s.port("smtp");
    let r = smtp(
        mx,
        "plain",
        json!([
            ["ehlo", "mx.sender.example"],
            ["cmd", "MAIL FROM:<alice@sender.example>"],
            ["cmd", "RCPT TO:<info@acme.example>"],
            ["cmd", "RCPT TO:<hello@acme.example>"],
            ["cmd", "RCPT TO:<info+news@acme.example>"],
            ["cmd", "RCPT TO:<nobody@acme.example>"],
            ["cmd", "RCPT TO:<bob@elsewhere.example>"],
            ["cmd", "RCPT TO:<anything@catch.example>"],
            [
                "data",
                message(
                    "Alice <alice@sender.example>",
                    "info@acme.example",
                    "Hello there",
                    "First line\r\n.dot at start"
                )
            ],
            ["quit"]
        ]),
    );
    assert_eq!(
        r[1],
        (250, "2.1.0 alice@sender.example... Sender ok".into())
    );
    assert_eq!(r[2].0, 250);
    assert_eq!(r[3].0, 250, "alias");
    assert_eq!(r[4].0, 250, "sub-address");
    assert_eq!(
        r[5],
        (550, "5.1.1 nobody@acme.example... User unknown".into())
    );
    assert_eq!(
        r[6],
        (
            554,
            "5.7.1 bob@elsewhere.example... Relay access denied".into()
        )
    );
    assert_eq!(r[7].0, 250, "catchall");
    assert_eq!(r[8].0, 250, "{:?}", r[8]);
    assert!(r[8].1.starts_with("2.0.0 Message accepted"), "{:?}", r[8]);

    // Address, alias and sub-address reach one mailbox: one copy — asserted once every
    // recipient of the message was delivered (the catchall's copy is there and nothing waits
    // in the queue), not after a guessed pause.
    let inbox = d.wait_messages("info@acme.example", "INBOX", 1);
    d.wait_messages("catchall@catch.example", "INBOX", 1);
    d.wait_queue_empty();
    assert_eq!(d.messages("info@acme.example", "INBOX").len(), 1);
    assert_eq!(inbox[0]["subject"], "Hello there");
    assert_eq!(inbox[0]["from"], "Alice <alice@sender.example>");
    d.wait_messages("catchall@catch.example", "INBOX", 1);
    let raw = d.message("info@acme.example", 1);
    assert!(raw.starts_with("Return-Path: <alice@sender.example>\r\nReceived: from mx.sender.example (127.0.0.1)\r\n\tby mail.e2e.test (Postfach) with ESMTP id "), "{raw}");
    assert!(
        raw.contains("Authentication-Results: mail.e2e.test;"),
        "{raw}"
    );
    assert!(
        raw.ends_with("First line\r\n.dot at start\r\n"),
        "dot-unstuffed: {raw}"
    );
}

#[test]
fn bogus_helo_is_refused_at_rcpt() {
    let d = setup();
    let s = Server::start_opts(
        &d,
        &json!({}),
        &[("POSTFACH_SMTP_BANNED_HELO", "fakedomain.xyz")],
    );
    for helo in [
        "server",
        "www",
        "127.0.0.1",
        "[127.0.0.1]",
        "localhost",
        "fakedomain.xyz",
    ] {
        let r = smtp(
            s.port("smtp"),
            "plain",
            json!([
                ["ehlo", helo],
                ["cmd", "MAIL FROM:<user123@sender.example>"],
                ["cmd", "RCPT TO:<info@acme.example>"]
            ]),
        );
        assert_eq!(
            r[1],
            (250, "2.1.0 user123@sender.example... Sender ok".into()),
            "{helo}"
        );
        assert_eq!(
            r[2],
            (
                550,
                "5.7.1 info@acme.example... Access denied - bogus HELO".into()
            ),
            "{helo}"
        );
    }
    let ok = smtp(
        s.port("smtp"),
        "plain",
        json!([
            ["ehlo", "mx1.sender.example"],
            ["cmd", "MAIL FROM:<a@sender.example>"],
            ["cmd", "RCPT TO:<info@acme.example>"]
        ]),
    );
    assert_eq!(ok[2].0, 250);
}

#[test]
fn submission_requires_tls_then_auth() {
    let d = setup();
    let s = Server::start(&d);
    let plain_auth = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(format!("\0info@acme.example\0{PW}"))
    };
    let r = smtp(
        s.port("submission"),
        "plain",
        json!([
            ["ehlo", "laptop.example"],
            ["cmd", format!("AUTH PLAIN {plain_auth}")],
            ["cmd", "MAIL FROM:<info@acme.example>"],
            ["starttls"],
            ["ehlo", "laptop.example"],
            ["cmd", "MAIL FROM:<info@acme.example>"],
            ["auth", "PLAIN", "info@acme.example", "wrong-password"],
            ["auth", "LOGIN", "info@acme.example", PW],
            ["cmd", "MAIL FROM:<info@acme.example>"],
        ]),
    );
    assert!(
        !r[0].1.contains("AUTH"),
        "no AUTH offered before TLS: {}",
        r[0].1
    );
    assert!(r[0].1.contains("STARTTLS"));
    assert_eq!(
        r[1],
        (
            538,
            "5.7.11 Encryption required for requested authentication mechanism".into()
        )
    );
    assert_eq!(
        r[2],
        (530, "5.7.0 Must issue a STARTTLS command first".into())
    );
    assert_eq!(r[3].0, 220);
    assert!(r[4].1.contains("AUTH PLAIN LOGIN"), "{}", r[4].1);
    assert_eq!(r[5], (530, "5.7.0 Authentication required".into()));
    assert_eq!(
        r[6],
        (535, "5.7.8 Authentication credentials invalid".into())
    );
    assert_eq!(r[7], (235, "2.7.0 Authentication successful".into()));
    assert_eq!(r[8].0, 250);

    // No AUTH on the MX port at all.
    let mx = smtp(
        s.port("smtp"),
        "plain",
        json!([
            ["ehlo", "mx.sender.example"],
            ["starttls"],
            ["ehlo", "mx.sender.example"],
            ["cmd", format!("AUTH PLAIN {plain_auth}")]
        ]),
    );
    assert!(!mx[2].1.contains("AUTH"));
    assert_eq!(mx[3].0, 503);

    // swaks (an independent client) over implicit TLS on the submissions port.
    let out = Command::new("swaks")
        .args([
            "--server",
            &format!("127.0.0.1:{}", s.port("submissions")),
            "--tlsc",
        ])
        .args([
            "--auth",
            "LOGIN",
            "--auth-user",
            "info@acme.example",
            "--auth-password",
            PW,
        ])
        .args([
            "--from",
            "info@acme.example",
            "--to",
            "jean@acme.example",
            "--h-From",
            "info@acme.example",
        ])
        .args(["--h-Subject", "via swaks", "--body", "sent with swaks"])
        .output()
        .expect("swaks");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let got = d.wait_messages("jean@acme.example", "INBOX", 1);
    assert_eq!(got[0]["subject"], "via swaks");
    let raw = d.message("jean@acme.example", 1);
    assert!(
        raw.contains("with ESMTPSA id"),
        "TLS + AUTH recorded: {raw}"
    );
}

#[test]
fn sender_must_be_one_of_the_logins_addresses() {
    let d = setup();
    let s = Server::start(&d);
    let r = smtp(
        s.port("submission"),
        "plain",
        json!([
            ["ehlo", "laptop.example"],
            ["starttls"],
            ["ehlo", "laptop.example"],
            ["login", "info@acme.example", PW],
            ["cmd", "MAIL FROM:<jean@acme.example>"],
            ["cmd", "MAIL FROM:<hello@acme.example>"],
            ["cmd", "RCPT TO:<jean@acme.example>"],
            [
                "data",
                message(
                    "Jean <jean@acme.example>",
                    "jean@acme.example",
                    "forged",
                    "x"
                )
            ],
            ["cmd", "MAIL FROM:<hello@acme.example>"],
            ["cmd", "RCPT TO:<jean@acme.example>"],
            [
                "data",
                message(
                    "Hello <hello@acme.example>",
                    "jean@acme.example",
                    "from my alias",
                    "x"
                )
            ],
            // A sub-address of the login (RFC 5233) reaches it, so it may send as it too;
            // a sub-address of someone else's address may not.
            ["cmd", "MAIL FROM:<info+news@acme.example>"],
            ["cmd", "RCPT TO:<jean@acme.example>"],
            [
                "data",
                message(
                    "Info News <info+news@acme.example>",
                    "jean@acme.example",
                    "from my sub-address",
                    "x"
                )
            ],
            ["cmd", "MAIL FROM:<jean+x@acme.example>"],
        ]),
    );
    assert_eq!(r[4], (553, "5.7.1 <jean@acme.example>... Sender address rejected: not owned by user info@acme.example".into()));
    assert_eq!(r[5].0, 250, "an alias of the login is fine");
    assert_eq!(r[7], (553, "5.7.1 <jean@acme.example>... Sender address rejected: not owned by user info@acme.example".into()));
    assert_eq!(r[10].0, 250);
    assert_eq!((r[11].0, r[12].0, r[13].0), (250, 250, 250), "{r:?}");
    assert_eq!(r[14].0, 553, "{r:?}");
    let got = d.wait_messages("jean@acme.example", "INBOX", 2);
    let mut subjects: Vec<&str> = got.iter().map(|m| m["subject"].as_str().unwrap()).collect();
    subjects.sort();
    assert_eq!(subjects, ["from my alias", "from my sub-address"]);
}

#[test]
fn at_most_100_recipients_per_message() {
    let d = setup();
    let s = Server::start(&d);
    let mut steps = submission_prologue(Some("info@acme.example"));
    steps.push(json!(["cmd", "MAIL FROM:<info@acme.example>"]));
    for i in 0..101 {
        steps.push(json!(["cmd", format!("RCPT TO:<user{i}@catch.example>")]));
    }
    steps.push(json!([
        "data",
        message(
            "info@acme.example",
            "undisclosed-recipients:;",
            "to many",
            "x"
        )
    ]));
    let r = smtp(s.port("submission"), "plain", Value::Array(steps));
    assert!(
        r[5..105].iter().all(|x| x.0 == 250),
        "the first 100 are accepted"
    );
    assert_eq!(r[105], (452, "4.5.3 Too many recipients".into()));
    assert_eq!(r[106].0, 250, "the message goes to the 100");
    d.wait_messages("catchall@catch.example", "INBOX", 1);
}

#[test]
fn daily_limit_counts_every_recipient_up_to_the_offer() {
    // The starter offer allows 100 recipients per 24 h (seed: Service Mail Starter = 100).
    let d = setup();
    let s = Server::start(&d);
    let send = |n: usize, first: usize| {
        let mut steps = submission_prologue(Some("solo@starter.example"));
        steps.push(json!(["cmd", "MAIL FROM:<solo@starter.example>"]));
        for i in first..first + n {
            steps.push(json!(["cmd", format!("RCPT TO:<r{i}@catch.example>")]));
        }
        steps.push(json!([
            "data",
            message("solo@starter.example", "team@catch.example", "news", "x")
        ]));
        smtp(s.port("submission"), "plain", Value::Array(steps))
    };
    // One message to 42 people in CC/BCC counts 42.
    let r = send(42, 0);
    assert!(r[5..47].iter().all(|x| x.0 == 250));
    assert_eq!(r[47].0, 250);
    let r = send(58, 42);
    assert!(r[5..63].iter().all(|x| x.0 == 250), "exactly 100 in all");
    assert_eq!(r[63].0, 250);
    let r = send(1, 100);
    assert_eq!(
        r[5],
        (
            550,
            "5.7.1 Daily sending limit reached (100 recipients per 24 hours)".into()
        )
    );
    assert_eq!(codes(&r)[6], 554, "DATA without recipients");

    // O3 counts what the address's own rules send too. Past the limit an automatic reply is
    // not sent (the delivery log says so); a forward is the mail itself, so it waits in the
    // queue for room in the window instead of being dropped or sent.
    d.ok(&[
        "autoreply",
        "add",
        "solo@starter.example",
        "--name",
        "away",
        "--message",
        "Away.",
        "--activate",
    ]);
    crate::support::deliver(
        &s,
        "someone@remote.example",
        "solo@starter.example",
        &message(
            "someone@remote.example",
            "solo@starter.example",
            "hello",
            "x",
        ),
    );
    d.wait_messages("solo@starter.example", "INBOX", 1);
    let log = d.ok(&["delivery-log", "solo@starter.example"]);
    assert!(log.contains("daily sending limit reached"), "{log}");
    d.ok(&[
        "forward",
        "set",
        "solo@starter.example",
        "--to",
        "onward@catch.example",
        "--delete",
    ]);
    crate::support::deliver(
        &s,
        "someone@remote.example",
        "solo@starter.example",
        &message(
            "someone@remote.example",
            "solo@starter.example",
            "forward me",
            "x",
        ),
    );
    let waiting = crate::support::wait_until(std::time::Duration::from_secs(10), || {
        d.json(&["queue", "list"])
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.to_string().contains("Daily sending limit"))
    });
    assert!(waiting, "{}", d.ok(&["queue", "list"]));
    assert_eq!(d.messages("solo@starter.example", "INBOX").len(), 1);
    assert!(
        d.messages("catchall@catch.example", "INBOX")
            .iter()
            .all(|m| m["subject"] != "forward me")
    );
}

/// A MIME message with one attachment, built by Python's email library.
fn with_attachment(filename: &str, kind: &str) -> String {
    let script = r#"
import io, sys, zipfile
from email.message import EmailMessage
name, kind = sys.argv[1], sys.argv[2]
def z(entries):
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w") as f:
        for n, data in entries: f.writestr(n, data)
    return b.getvalue()
if kind == "plain": data = b"MZ\x90\x00 pretend program"
elif kind == "zip": data = z([("readme.txt", b"hi"), ("tools/install.js", b"alert(1)")])
elif kind == "nested": data = z([("docs.zip", z([("a.txt", b"a"), ("deeper/run.exe", b"MZ")]))])
else: data = z([("report.pdf", b"%PDF-1.4"), ("notes.txt", b"ok")])
m = EmailMessage()
m["From"] = "alice@sender.example"; m["To"] = "info@acme.example"; m["Subject"] = "attachment " + name
m.set_content("see attachment")
m.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
sys.stdout.write(m.as_string(policy=m.policy.clone(linesep="\r\n")))
"#;
    let r = python(script, &[filename, kind]);
    assert!(r.ok, "{}", r.stderr);
    r.stdout
}

#[test]
fn forbidden_attachments_are_refused_also_inside_zips() {
    let d = setup();
    let s = Server::start(&d);
    let refused = (
        554,
        "5.7.0 AV: Message is rejected by headers rule filter".to_string(),
    );
    for (name, kind, expect_ok) in [
        ("setup.exe", "plain", false),
        ("archive.zip", "zip", false),
        ("outer.zip", "nested", false),
        ("Run.SCR", "plain", false),
        ("harmless.zip", "harmless", true),
    ] {
        let body = with_attachment(name, kind);
        let r = smtp(
            s.port("smtp"),
            "plain",
            json!([
                ["ehlo", "mx.sender.example"],
                ["send", "alice@sender.example", ["info@acme.example"], body]
            ]),
        );
        if expect_ok {
            assert_eq!(r[1].0, 250, "{name}: {:?}", r[1]);
        } else {
            assert_eq!(r[1], refused, "{name}");
        }
    }
    // Submission applies the same rule.
    let body = with_attachment("setup.exe", "plain")
        .replace("From: alice@sender.example", "From: info@acme.example");
    let r = smtp(
        s.port("submission"),
        "plain",
        json!([
            ["ehlo", "laptop.example"],
            ["starttls"],
            ["ehlo", "laptop.example"],
            ["login", "info@acme.example", PW],
            ["send", "info@acme.example", ["jean@acme.example"], body]
        ]),
    );
    assert_eq!(r[4], refused);
    assert_eq!(
        d.wait_messages("info@acme.example", "INBOX", 1).len(),
        1,
        "only the harmless one"
    );
}

#[test]
fn dmarc_reject_refuses_spoofed_mail_and_dkim_signed_mail_passes() {
    let d = setup();
    // A DKIM key for signed.example, made with openssl; public half published in the test DNS.
    let (key, public) = rsa_key(&d, "dkim");
    let records = json!({
        "spoof.example.": [["TXT", "v=spf1 -all"]],
        "_dmarc.spoof.example.": [["TXT", "v=DMARC1; p=reject"]],
        "signed.example.": [["TXT", "v=spf1 -all"]],
        "_dmarc.signed.example.": [["TXT", "v=DMARC1; p=reject"]],
        "sel._domainkey.signed.example.": [["TXT", format!("v=DKIM1; k=rsa; p={public}")]],
        "friendly.example.": [["TXT", "v=spf1 ip4:127.0.0.1 -all"]],
        "_dmarc.friendly.example.": [["TXT", "v=DMARC1; p=reject"]],
    });
    let s = Server::start_opts(&d, &records, &[]);
    let sign = r#"
import sys, dkim
msg = sys.stdin.buffer.read()
key = open(sys.argv[1], "rb").read()
sig = dkim.sign(msg, b"sel", b"signed.example", key, include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
sys.stdout.buffer.write(sig + msg)
"#;
    let plain = message(
        "CEO <ceo@signed.example>",
        "info@acme.example",
        "signed",
        "genuine",
    );
    let mut cmd = Command::new("python3");
    cmd.args(["-c", sign, key.to_str().unwrap()]);
    let signed = String::from_utf8(piped(cmd, plain.as_bytes())).unwrap();
    assert!(signed.starts_with("DKIM-Signature:"), "{signed}");

    let r = smtp(
        s.port("smtp"),
        "plain",
        json!([
            ["ehlo", "mx.sender.example"],
            [
                "send",
                "ceo@spoof.example",
                ["info@acme.example"],
                message(
                    "CEO <ceo@spoof.example>",
                    "info@acme.example",
                    "wire money",
                    "now"
                )
            ],
            [
                "send",
                "bounces@signed.example",
                ["info@acme.example"],
                signed
            ],
            [
                "send",
                "news@friendly.example",
                ["info@acme.example"],
                message(
                    "news@friendly.example",
                    "info@acme.example",
                    "spf aligned",
                    "x"
                )
            ],
        ]),
    );
    assert_eq!(r[1].0, 550, "{:?}", r[1]);
    assert!(
        r[1].1.starts_with("5.7.1 ")
            && r[1].1.contains("DMARC")
            && r[1].1.contains("spoof.example"),
        "{:?}",
        r[1]
    );
    assert_eq!(
        r[2].0, 250,
        "DKIM-aligned mail passes although SPF fails: {:?}",
        r[2]
    );
    assert_eq!(r[3].0, 250, "SPF-aligned mail passes: {:?}", r[3]);
    let inbox = d.wait_messages("info@acme.example", "INBOX", 2);
    // Two queue entries are delivered by concurrent workers: UID order is not send order.
    let mut subjects: Vec<&str> = inbox
        .iter()
        .map(|m| m["subject"].as_str().unwrap())
        .collect();
    subjects.sort();
    assert_eq!(subjects, ["signed", "spf aligned"]);
    let uid_of = |subject: &str| {
        inbox.iter().find(|m| m["subject"] == subject).unwrap()["uid"]
            .as_i64()
            .unwrap()
    };
    let raw = d.message("info@acme.example", uid_of("signed"));
    assert!(
        raw.contains("dkim=pass") && raw.contains("dmarc=pass"),
        "{raw}"
    );
    let raw = d.message("info@acme.example", uid_of("spf aligned"));
    assert!(
        raw.contains("spf=pass") && raw.contains("dmarc=pass"),
        "{raw}"
    );
}

/// Routes remote.example to a sink; returns (data, server, sink, sink dir).
fn with_sink(mode: &str) -> (Data, Server, Peer, std::path::PathBuf) {
    let d = setup();
    let dir = d.path().join("sink");
    // The sink offers STARTTLS with a self-signed certificate (ours will do).
    let sink = Peer::sink(
        &dir,
        mode,
        Some((
            &d.path().join("tls/cert.pem"),
            &d.path().join("tls/key.pem"),
        )),
    );
    d.config_line(
        "routes",
        &format!("\"remote.example\" = \"127.0.0.1:{}\"", sink.port),
    );
    let s = Server::start(&d);
    (d, s, sink, dir)
}

fn submit(s: &Server, from: &str, to: &[&str], subject: &str) -> Vec<(u16, String)> {
    smtp(
        s.port("submission"),
        "plain",
        json!([
            ["ehlo", "laptop.example"],
            ["starttls"],
            ["ehlo", "laptop.example"],
            ["login", from, PW],
            [
                "send",
                from,
                to,
                message(from, &to.join(", "), subject, "Hello from Postfach")
            ]
        ]),
    )
}

#[test]
fn outbound_mail_is_dkim_signed_and_reaches_the_route() {
    let (d, s, _sink, dir) = with_sink("accept");
    let r = submit(
        &s,
        "info@acme.example",
        &["bob@remote.example", "jean@acme.example"],
        "outbound",
    );
    assert_eq!(r[4].0, 250, "{r:?}");
    assert!(
        wait_until(Duration::from_secs(20), || dir.join("1.eml").exists()),
        "the sink got the message"
    );
    let envelope: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("1.json")).unwrap()).unwrap();
    assert_eq!(envelope["mail_from"], "info@acme.example");
    assert_eq!(envelope["rcpt_tos"], json!(["bob@remote.example"]));
    assert_eq!(
        envelope["tls"],
        Value::Bool(true),
        "opportunistic STARTTLS was used"
    );
    let sent = std::fs::read_to_string(dir.join("1.eml")).unwrap();
    assert!(
        !sent.contains("Return-Path:"),
        "Return-Path is for final delivery only"
    );
    assert_eq!(
        sent.matches("DKIM-Signature:").count(),
        2,
        "Ed25519 and RSA signatures: {sent}"
    );
    // Verify with dkimpy against the records `postfach domain dns` says to publish.
    let zone = d.ok(&["domain", "dns", "acme.example"]);
    for line in [
        "acme.example. 3600 IN MX 10 mail.e2e.test.",
        "acme.example. 3600 IN TXT \"v=spf1 mx -all\"",
        "_dmarc.acme.example. 3600 IN TXT \"v=DMARC1; p=quarantine\"",
        "autoconfig.acme.example. 3600 IN CNAME mail.e2e.test.",
    ] {
        assert!(zone.lines().any(|l| l == line), "{line:?} in\n{zone}");
    }
    let rsa = zone.lines().find(|l| l.contains("k=rsa")).unwrap();
    assert_eq!(
        rsa.matches('"').count(),
        4,
        "a 2048-bit key needs two TXT strings: {rsa}"
    );
    let records = d.json(&["domain", "dns", "acme.example"]);
    let txt: serde_json::Map<String, Value> = records
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
        .collect();
    assert_eq!(txt.len(), 2);
    let keys = d.path().join("dkim-keys.json");
    std::fs::write(&keys, Value::Object(txt).to_string()).unwrap();
    let v = Command::new("python3")
        .arg(tool("dkim_verify.py"))
        .arg(dir.join("1.eml"))
        .arg(&keys)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&v.stdout);
    assert!(
        v.status.success(),
        "DKIM verification: {report}{}",
        String::from_utf8_lossy(&v.stderr)
    );
    assert_eq!(
        report.lines().filter(|l| l.starts_with("pass ")).count(),
        2,
        "{report}"
    );
    // The local recipient got it too, and the queue is empty again.
    d.wait_messages("jean@acme.example", "INBOX", 1);
    assert!(wait_until(Duration::from_secs(10), || d
        .json(&["queue", "list"])
        .as_array()
        .unwrap()
        .is_empty()));
}

#[test]
fn temporary_failures_are_retried_until_delivered_through_the_smarthost() {
    let d = setup();
    let dir = d.path().join("sink");
    let sink = Peer::sink(&dir, "tempfail-then-accept:2", None);
    let relay = format!("127.0.0.1:{}", sink.port);
    // No route for far.example: everything remote goes through the smarthost.
    let s = Server::start_opts(
        &d,
        &json!({}),
        &[("POSTFACH_QUEUE_SMARTHOST", relay.as_str())],
    );
    assert_eq!(
        submit(&s, "info@acme.example", &["bob@far.example"], "retried")[4].0,
        250
    );
    assert!(
        wait_until(Duration::from_secs(30), || dir.join("1.eml").exists()),
        "delivered in the end"
    );
    let attempts = std::fs::read_to_string(dir.join("attempts.log")).unwrap();
    assert_eq!(
        attempts.lines().count(),
        3,
        "two refusals, then success: {attempts}"
    );
    assert!(wait_until(Duration::from_secs(10), || d
        .json(&["queue", "list"])
        .as_array()
        .unwrap()
        .is_empty()));
    assert!(
        d.messages("info@acme.example", "INBOX").is_empty(),
        "no bounce for a delivered message"
    );
}

#[test]
fn permanent_failure_bounces_into_the_senders_inbox() {
    let (d, s, _sink, _dir) = with_sink("permfail");
    assert_eq!(
        submit(&s, "info@acme.example", &["ghost@remote.example"], "doomed")[4].0,
        250
    );
    let inbox = d.wait_messages("info@acme.example", "INBOX", 1);
    assert_eq!(inbox[0]["subject"], "Undelivered Mail Returned to Sender");
    assert!(
        inbox[0]["from"]
            .as_str()
            .unwrap()
            .contains("MAILER-DAEMON@mail.e2e.test")
    );
    let dsn = d.message("info@acme.example", 1);
    for needle in [
        "Return-Path: <>",
        "Content-Type: multipart/report",
        "report-type=\"delivery-status\"",
        "Content-Type: message/delivery-status",
        "Reporting-MTA: dns; mail.e2e.test",
        "Final-Recipient: rfc822; ghost@remote.example",
        "Action: failed",
        "Status: 5.1.1",
        "Diagnostic-Code: smtp; 550 5.1.1",
        "Subject: doomed",
    ] {
        assert!(dsn.contains(needle), "DSN contains {needle:?}:\n{dsn}");
    }
    assert!(wait_until(Duration::from_secs(10), || d
        .json(&["queue", "list"])
        .as_array()
        .unwrap()
        .is_empty()));
}

#[test]
fn expired_messages_bounce_with_the_last_error() {
    let d = setup();
    let dir = d.path().join("sink");
    let sink = Peer::sink(&dir, "tempfail", None);
    d.config_line(
        "routes",
        &format!("\"remote.example\" = \"127.0.0.1:{}\"", sink.port),
    );
    // A lifetime of 0 hours: the first failed attempt is the last.
    let s = Server::start_opts(&d, &json!({}), &[("POSTFACH_QUEUE_LIFETIME_HOURS", "0")]);
    assert_eq!(
        submit(
            &s,
            "info@acme.example",
            &["late@remote.example"],
            "too late"
        )[4]
        .0,
        250
    );
    let inbox = d.wait_messages("info@acme.example", "INBOX", 1);
    assert_eq!(inbox[0]["subject"], "Undelivered Mail Returned to Sender");
    let dsn = d.message("info@acme.example", 1);
    assert!(
        dsn.contains("Status: 5.4.7")
            && dsn.contains("Delivery time expired")
            && dsn.contains("451 4.3.0"),
        "{dsn}"
    );
    assert!(wait_until(Duration::from_secs(10), || d
        .json(&["queue", "list"])
        .as_array()
        .unwrap()
        .is_empty()));
}

#[test]
fn remote_delivery_follows_the_mx_records() {
    let d = setup();
    let dir = d.path().join("sink");
    let sink = Peer::sink(&dir, "accept", None);
    // mx-test.example's MX is a host whose address is 127.0.0.1; MX hosts listen on the sink's
    // port here (queue.mx_port). The lower-preference MX does not exist and must not be used.
    let records = json!({
        "mx-test.example.": [["MX", "10 mx1.mx-test.example."], ["MX", "20 nowhere.mx-test.example."]],
        "mx1.mx-test.example.": [["A", "127.0.0.1"]],
    });
    let port = sink.port.to_string();
    let s = Server::start_opts(&d, &records, &[("POSTFACH_QUEUE_MX_PORT", port.as_str())]);
    assert_eq!(
        submit(
            &s,
            "info@acme.example",
            &["carol@mx-test.example"],
            "via MX"
        )[4]
        .0,
        250
    );
    assert!(
        wait_until(Duration::from_secs(20), || dir.join("1.eml").exists()),
        "delivered to the MX host"
    );
    // A domain that does not exist bounces at once.
    assert_eq!(
        submit(
            &s,
            "info@acme.example",
            &["dave@no-such-domain.example"],
            "nowhere"
        )[4]
        .0,
        250
    );
    let inbox = d.wait_messages("info@acme.example", "INBOX", 1);
    assert_eq!(inbox[0]["subject"], "Undelivered Mail Returned to Sender");
    assert!(
        d.message("info@acme.example", 1).contains("5.1.2"),
        "domain not found"
    );
}

#[test]
fn the_smtp_path_works_on_postgresql() {
    let d = setup_on(Data::postgres());
    let s = Server::start(&d);
    let r = smtp(
        s.port("smtp"),
        "plain",
        json!([
            ["ehlo", "mx.sender.example"],
            [
                "send",
                "a@sender.example",
                ["info@acme.example", "x@catch.example"],
                message("a@sender.example", "info@acme.example", "on postgres", "x")
            ]
        ]),
    );
    assert_eq!(r[1].0, 250);
    assert_eq!(
        submit(&s, "jean@acme.example", &["info@acme.example"], "submitted")[4].0,
        250
    );
    let inbox = d.wait_messages("info@acme.example", "INBOX", 2);
    let uids: Vec<i64> = inbox.iter().map(|m| m["uid"].as_i64().unwrap()).collect();
    assert_eq!(uids, [1, 2]);
    d.wait_messages("catchall@catch.example", "INBOX", 1);
}

#[test]
fn operator_queue_commands() {
    let (d, s, _sink, _dir) = with_sink("tempfail");
    assert_eq!(
        submit(&s, "info@acme.example", &["bob@remote.example"], "stuck")[4].0,
        250
    );
    let mut entry = Value::Null;
    assert!(wait_until(Duration::from_secs(20), || {
        let q = d.json(&["queue", "list"]);
        entry = q[0].clone();
        entry["attempts"].as_i64().unwrap_or(0) >= 1
    }));
    let rcpt = &entry["recipients"][0];
    assert_eq!(
        (rcpt["rcpt"].as_str(), rcpt["status"].as_str()),
        (Some("bob@remote.example"), Some("pending"))
    );
    assert!(
        rcpt["last_error"].as_str().unwrap().contains("451 4.3.0"),
        "{rcpt}"
    );
    let id = entry["id"].as_i64().unwrap().to_string();
    assert!(d.ok(&["queue", "list"]).contains("bob@remote.example"));
    assert!(d.ok(&["queue", "retry", &id]).contains("tried again now"));
    d.ok(&[
        "user",
        "add",
        "carla@acme.example",
        "--org",
        "Acme",
        "--role",
        "admin",
        "--password",
        PW,
    ]);
    let e = d.fails(&["--as", "carla@acme.example", "queue", "list"]);
    assert!(e.contains("only platform operators"), "{e}");
    assert!(
        d.ok(&["queue", "remove", &id])
            .contains("Removed queue entry")
    );
    assert!(d.json(&["queue", "list"]).as_array().unwrap().is_empty());
    let e = d.fails(&["queue", "remove", &id]);
    assert!(e.contains("not found"), "{e}");
}

/// Reads one SMTP reply (all its lines) from a raw connection.
fn reply(r: &mut BufReader<TcpStream>) -> String {
    let mut all = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap() == 0 {
            return all;
        }
        all.push_str(&line);
        if line.as_bytes().get(3) != Some(&b'-') {
            return all;
        }
    }
}

fn raw_session(port: u16) -> (TcpStream, BufReader<TcpStream>) {
    let w = TcpStream::connect(("127.0.0.1", port)).unwrap();
    w.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(w.try_clone().unwrap());
    assert!(reply(&mut r).starts_with("220 "));
    (w, r)
}

#[test]
fn commands_pipelined_after_starttls_are_discarded() {
    let d = setup();
    let s = Server::start(&d);
    // CVE-2011-0411 class: RSET sent in the same packet as STARTTLS must never be answered.
    let script = r#"
import socket, ssl, sys
port = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", port), timeout=10)
f = s.makefile("rb")
def reply(f):
    out = b""
    while True:
        line = f.readline()
        out += line
        if len(line) < 4 or line[3:4] != b"-":
            return out.decode()
reply(f)
s.sendall(b"EHLO mx.sender.example\r\n"); reply(f)
s.sendall(b"STARTTLS\r\nRSET\r\nMAIL FROM:<injected@attacker.example>\r\n")
print(reply(f).strip())
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
t = ctx.wrap_socket(s, server_hostname="mail.e2e.test")
g = t.makefile("rb")
t.sendall(b"NOOP\r\n")
print(reply(g).strip())
t.sendall(b"MAIL FROM:<a@sender.example>\r\n")
print(reply(g).strip())
"#;
    let out = python(script, &[&s.port("smtp").to_string()]);
    assert!(out.ok, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "220 2.0.0 Ready to start TLS");
    assert_eq!(
        lines[1], "250 2.0.0 OK",
        "the first answer after TLS is the NOOP's, not RSET's"
    );
    assert_eq!(
        lines[2], "503 5.5.1 Send HELO/EHLO first",
        "the EHLO from before TLS is forgotten too"
    );
}

#[test]
fn chunking_with_bdat() {
    let d = setup();
    let s = Server::start(&d);
    let (mut w, mut r) = raw_session(s.port("smtp"));
    for cmd in [
        "EHLO mx.sender.example",
        "MAIL FROM:<a@sender.example>",
        "RCPT TO:<info@acme.example>",
    ] {
        w.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
        assert!(reply(&mut r).starts_with("250"));
    }
    let part1 = "From: a@sender.example\r\nSubject: chunked\r\n\r\nfirst chunk\r\n";
    let part2 = "second chunk\r\n.not stuffed in BDAT\r\n";
    w.write_all(format!("BDAT {}\r\n{part1}", part1.len()).as_bytes())
        .unwrap();
    assert!(reply(&mut r).starts_with("250 2.0.0"));
    // RFC 3030 §2: no DATA after a BDAT in the same transaction; the chunks so far stay.
    w.write_all(b"DATA\r\n").unwrap();
    let refused = reply(&mut r);
    assert!(refused.starts_with("503"), "{refused}");
    w.write_all(format!("BDAT {} LAST\r\n{part2}", part2.len()).as_bytes())
        .unwrap();
    assert!(reply(&mut r).starts_with("250 2.0.0 Message accepted"));
    d.wait_messages("info@acme.example", "INBOX", 1);
    let stored = d.message("info@acme.example", 1);
    assert!(stored.ends_with(&format!("{part1}{part2}")), "{stored}");
}

#[test]
fn garbage_limits_and_sizes_get_proper_answers() {
    let d = setup();
    let s = Server::start_opts(
        &d,
        &json!({}),
        &[
            ("POSTFACH_SMTP_MAX_MESSAGE_SIZE", "4096"),
            ("POSTFACH_SMTP_MAX_CONNECTIONS_PER_IP", "3"),
            ("POSTFACH_SMTP_MAX_ERRORS", "4"),
        ],
    );
    let (mut w, mut r) = raw_session(s.port("smtp"));
    w.write_all(b"\x00\xff\xfe garbage \x01\r\n").unwrap();
    assert!(reply(&mut r).starts_with("500 5.5.1"));
    w.write_all(&[b'A'; 5000]).unwrap();
    w.write_all(b"\r\n").unwrap();
    assert!(reply(&mut r).starts_with("500 5.5.2 Line too long"));
    w.write_all(b"NOOP\r\n").unwrap();
    assert!(
        reply(&mut r).starts_with("250 2.0.0 OK"),
        "the session goes on"
    );
    w.write_all(b"EHLO mx.sender.example\r\nMAIL FROM:<a@sender.example> SIZE=100000\r\n")
        .unwrap();
    let ehlo = reply(&mut r);
    assert!(ehlo.contains("250-SIZE 4096"), "{ehlo}");
    assert!(reply(&mut r).starts_with("552 5.3.4"));
    w.write_all(b"MAIL FROM:<a@sender.example>\r\nRCPT TO:<info@acme.example>\r\nDATA\r\n")
        .unwrap();
    for _ in 0..3 {
        let _ = reply(&mut r);
    }
    w.write_all(format!("Subject: big\r\n\r\n{}\r\n.\r\n", "x".repeat(8000)).as_bytes())
        .unwrap();
    assert_eq!(reply(&mut r).trim(), "552 5.3.4 Message too big for system");
    w.write_all(b"FOO\r\nBAR\r\n").unwrap();
    let _ = reply(&mut r);
    let last = reply(&mut r);
    assert!(
        last.contains("421 4.7.0 mail.e2e.test Too many errors"),
        "{last}"
    );
    let mut rest = String::new();
    assert_eq!(
        r.read_to_string(&mut rest).unwrap_or(0),
        0,
        "connection closed"
    );

    // Per-IP connection limit.
    let _a = raw_session(s.port("smtp"));
    let _b = raw_session(s.port("smtp"));
    let _c = raw_session(s.port("smtp"));
    let fourth = TcpStream::connect(("127.0.0.1", s.port("smtp"))).unwrap();
    let mut line = String::new();
    BufReader::new(fourth).read_line(&mut line).unwrap();
    assert!(
        line.starts_with("421 4.7.0 mail.e2e.test Too many connections"),
        "{line}"
    );
}

#[test]
fn command_rate_per_client_is_limited() {
    let d = setup();
    let s = Server::start_opts(
        &d,
        &json!({}),
        &[("POSTFACH_SMTP_COMMANDS_PER_MINUTE_PER_IP", "20")],
    );
    let (mut w, mut r) = raw_session(s.port("smtp"));
    for _ in 0..20 {
        w.write_all(b"NOOP\r\n").unwrap();
        assert!(reply(&mut r).starts_with("250"));
    }
    w.write_all(b"NOOP\r\n").unwrap();
    assert_eq!(
        reply(&mut r).trim(),
        "421 4.7.0 mail.e2e.test Too many commands, slow down"
    );
    let mut rest = String::new();
    assert_eq!(
        r.read_to_string(&mut rest).unwrap_or(0),
        0,
        "connection closed"
    );
}

#[test]
fn maintenance_mode_receives_but_refuses_login_and_full_mailboxes_are_refused() {
    let d = setup();
    d.ok(&["service", "set", "acme.example", "--maintenance", "on"]);
    d.ok(&[
        "address",
        "set",
        "jean@acme.example",
        "--storage-quota",
        "1",
    ]);
    let s = Server::start(&d);
    let r = smtp(
        s.port("smtp"),
        "plain",
        json!([
            ["ehlo", "mx.sender.example"],
            [
                "send",
                "a@sender.example",
                ["info@acme.example"],
                message(
                    "a@sender.example",
                    "info@acme.example",
                    "during maintenance",
                    "x"
                )
            ]
        ]),
    );
    assert_eq!(r[1].0, 250, "M9: mail is still received");
    d.wait_messages("info@acme.example", "INBOX", 1);
    let r = smtp(
        s.port("submission"),
        "plain",
        json!([
            ["ehlo", "laptop.example"],
            ["starttls"],
            ["ehlo", "laptop.example"],
            ["login", "info@acme.example", PW]
        ]),
    );
    assert_eq!(
        r[3],
        (
            454,
            "4.7.0 The mail service of acme.example is in maintenance; access is suspended until it ends".into()
        )
    );

    // Storage quota (1 MiB): a 700 KiB message fits once; the next does not (SIZE declared).
    let big = message(
        "a@sender.example",
        "jean@acme.example",
        "big",
        &"y".repeat(700 * 1024),
    );
    let r = smtp(
        s.port("smtp"),
        "plain",
        json!([
            ["ehlo", "mx.sender.example"],
            [
                "send",
                "a@sender.example",
                ["jean@acme.example"],
                big.clone()
            ]
        ]),
    );
    assert_eq!(r[1].0, 250);
    d.wait_messages("jean@acme.example", "INBOX", 1);
    let r = smtp(
        s.port("smtp"),
        "plain",
        json!([
            ["ehlo", "mx.sender.example"],
            ["send", "a@sender.example", ["jean@acme.example"], big]
        ]),
    );
    assert_eq!(
        r[1],
        (452, "4.2.2 jean@acme.example... Mailbox full".into())
    );
}

#[test]
fn repeated_failed_auth_is_throttled() {
    let d = setup();
    let s = Server::start(&d);
    let mut steps = vec![
        json!(["ehlo", "laptop.example"]),
        json!(["starttls"]),
        json!(["ehlo", "laptop.example"]),
    ];
    for _ in 0..3 {
        steps.push(json!(["auth", "PLAIN", "jean@acme.example", "guess"]));
    }
    let r = smtp(s.port("submission"), "plain", Value::Array(steps.clone()));
    assert!(r[3..6].iter().all(|x| x.0 == 535), "{r:?}");
    let r = smtp(
        s.port("submission"),
        "plain",
        Value::Array(steps[..5].to_vec()),
    );
    assert!(r[3..5].iter().all(|x| x.0 == 535));
    // Five failures from this client: even the right password is not checked now.
    let r = smtp(
        s.port("submission"),
        "plain",
        json!([
            ["ehlo", "laptop.example"],
            ["starttls"],
            ["ehlo", "laptop.example"],
            ["auth", "PLAIN", "jean@acme.example", PW]
        ]),
    );
    assert_eq!(r[3].0, 454, "{r:?}");
    assert!(r[3].1.contains("Too many failed logins"), "{r:?}");
}

#[test]
fn killed_server_loses_no_acknowledged_message() {
    let d = setup();
    let s = Server::start(&d);
    let port = s.port("smtp");
    let log = d.path().join("acked.log");
    // A client sending numbered messages; it notes a number only after the 250.
    let client = r#"
import smtplib, sys
port, log = int(sys.argv[1]), sys.argv[2]
f = open(log, "w")
try:
    s = smtplib.SMTP("127.0.0.1", port, local_hostname="mx.sender.example")
    for i in range(100000):
        msg = ("From: a@sender.example\r\nTo: info@acme.example\r\nSubject: crash %d\r\nMessage-ID: <crash-%d@sender.example>\r\n\r\nmessage %d\r\n" % (i, i, i)).encode()
        f.write("try %d\n" % i); f.flush()
        s.sendmail("a@sender.example", ["info@acme.example"], msg)
        f.write("ack %d\n" % i); f.flush()
except Exception as e:
    f.write("stop %s\n" % e); f.flush()
"#;
    let mut child = Command::new("python3")
        .args(["-c", client, &port.to_string(), log.to_str().unwrap()])
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(30), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("ack ")
            .count()
            >= 40
    }));
    s.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    let acked: Vec<u64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("ack ")?.parse().ok())
        .collect();
    let tried: Vec<u64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("try ")?.parse().ok())
        .collect();
    let in_doubt: Vec<u64> = tried
        .iter()
        .copied()
        .filter(|t| !acked.contains(t))
        .collect();
    assert!(in_doubt.len() <= 1);

    // After a restart every acknowledged message is delivered exactly once.
    let _s = Server::start(&d);
    let expected = acked.len();
    let mut subjects = Vec::new();
    assert!(
        wait_until(Duration::from_secs(30), || {
            subjects = d
                .messages("info@acme.example", "INBOX")
                .iter()
                .map(|m| m["subject"].as_str().unwrap().to_string())
                .collect();
            subjects.len() >= expected && d.json(&["queue", "list"]).as_array().unwrap().is_empty()
        }),
        "{} of {expected} delivered",
        subjects.len()
    );
    for n in &acked {
        let s = format!("crash {n}");
        assert_eq!(
            subjects.iter().filter(|x| **x == s).count(),
            1,
            "{s} exactly once"
        );
    }
    // Nothing that was never sent completely shows up; the one in flight may or may not.
    for s in &subjects {
        let n: u64 = s.strip_prefix("crash ").unwrap().parse().unwrap();
        assert!(
            acked.contains(&n) || in_doubt.contains(&n),
            "{s} was never acknowledged"
        );
    }
}

/// Inbound mail for one local recipient is delivered during the SMTP transaction:
/// the `250` says so and the copy is in the mailbox the moment the client reads it, without
/// a queue entry. Mail for several recipients goes through the queue as before, and a
/// delivery that fails during the transaction falls back to the queue: accepted, not lost.
#[test]
fn one_local_recipient_is_delivered_before_250_else_queued() {
    let d = setup();
    let s = Server::start(&d);
    let mx = s.port("smtp");
    let r = smtp(
        mx,
        "plain",
        json!([
            ["ehlo", "mx.sender.example"],
            ["cmd", "MAIL FROM:<alice@sender.example>"],
            ["cmd", "RCPT TO:<info@acme.example>"],
            [
                "data",
                message("alice@sender.example", "info@acme.example", "Direct", "now")
            ],
            ["cmd", "MAIL FROM:<alice@sender.example>"],
            ["cmd", "RCPT TO:<info@acme.example>"],
            ["cmd", "RCPT TO:<jean@acme.example>"],
            [
                "data",
                message("alice@sender.example", "info@acme.example", "Two", "later")
            ],
            ["quit"]
        ]),
    );
    assert_eq!(r[3].0, 250, "{r:?}");
    assert!(
        r[3].1
            .starts_with("2.0.0 Message accepted and delivered (id "),
        "{r:?}"
    );
    assert!(r[7].1.contains("queued as"), "{r:?}");
    // No waiting: the first message was durable in the mailbox before its 250.
    let inbox = d.messages("info@acme.example", "INBOX");
    assert!(inbox.iter().any(|m| m["subject"] == "Direct"), "{inbox:?}");
    let raw = d.message("info@acme.example", inbox[0]["uid"].as_i64().unwrap());
    assert!(
        raw.contains("Authentication-Results: mail.e2e.test;") && raw.contains("\r\n\r\nnow\r\n"),
        "{raw}"
    );
    d.wait_messages("jean@acme.example", "INBOX", 1);
    d.wait_messages("info@acme.example", "INBOX", 2);
    d.wait_queue_empty();

    // The recipient disappears between RCPT and the end of DATA: its delivery fails, and so
    // does the spool it falls back to (the recipient row has nothing to refer to), so the
    // client hears 451 (it will retry and then be told 550) and nothing is stored or queued.
    let (mut w, mut r) = raw_session(mx);
    for cmd in [
        "EHLO mx.sender.example\r\n",
        "MAIL FROM:<alice@sender.example>\r\n",
        "RCPT TO:<jean@acme.example>\r\n",
    ] {
        w.write_all(cmd.as_bytes()).unwrap();
        assert!(reply(&mut r).starts_with("250"));
    }
    d.ok(&["address", "del", "jean@acme.example"]);
    w.write_all(b"DATA\r\n").unwrap();
    assert!(reply(&mut r).starts_with("354"));
    w.write_all(message("alice@sender.example", "jean@acme.example", "Gone", "x").as_bytes())
        .unwrap();
    w.write_all(b".\r\n").unwrap();
    let end = reply(&mut r);
    assert!(end.starts_with("451 4.3.0 "), "{end}");
    w.write_all(b"MAIL FROM:<alice@sender.example>\r\n")
        .unwrap();
    assert!(reply(&mut r).starts_with("250"));
    w.write_all(b"RCPT TO:<jean@acme.example>\r\n").unwrap();
    let again = reply(&mut r);
    assert!(again.starts_with("550 5.1.1"), "{again}");
    assert!(d.json(&["queue", "list"]).as_array().unwrap().is_empty());
    let stats = d.json(&["store", "check"]);
    assert!(stats["problems"].as_array().unwrap().is_empty(), "{stats}");
    // Info's two; Jean's copy went with the address.
    assert_eq!(stats["messages"].as_u64(), Some(2), "{stats}");
}
