//! The delivery pipeline end to end: mail goes in over SMTP (Python `smtplib`),
//! comes out in the store (CLI) and over IMAP (`imaplib`), and what the pipeline sends —
//! autoresponses, forwards, bounces — arrives at an SMTP sink (aiosmtpd) standing in for
//! remote.example. Time is moved with the instance's test clock, never slept.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Data, PW, Peer, Server, deliver, python, scripted, wait_until};

const DAY: i64 = 86_400;

/// acme.example (info, jean, alias hello → info) and catch.example (with catchall); mail for
/// remote.example goes to a sink. Returns (data, server, sink, sink dir).
pub(crate) fn setup(d: Data) -> (Data, Server, Peer, PathBuf) {
    d.service("acme.example", "standard", None);
    d.service("catch.example", "standard", None);
    for a in [
        "info@acme.example",
        "jean@acme.example",
        "catchall@catch.example",
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
    let dir = d.path().join("sink");
    let sink = Peer::sink(&dir, "accept", None);
    d.config_line(
        "routes",
        &format!("\"remote.example\" = \"127.0.0.1:{}\"", sink.port),
    );
    let s = Server::start(&d);
    (d, s, sink, dir)
}

pub(crate) fn msg(from: &str, to: &str, subject: &str, extra: &str, body: &str) -> String {
    let id = postfach_store::testing::TempDir::new("mid");
    let mid = id.path().file_name().unwrap().to_string_lossy().to_string();
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{mid}@sender.example>\r\n{extra}\r\n{body}\r\n"
    )
}

/// What the sink received: (envelope, message) in arrival order.
fn sunk(dir: &Path) -> Vec<(Value, String)> {
    let mut out = Vec::new();
    for n in 1.. {
        let eml = dir.join(format!("{n}.eml"));
        if !eml.exists() {
            break;
        }
        let env: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{n}.json"))).unwrap())
                .unwrap();
        out.push((env, std::fs::read_to_string(eml).unwrap()));
    }
    out
}

/// Sink messages whose envelope goes to `rcpt`.
fn sunk_to(dir: &Path, rcpt: &str) -> Vec<(Value, String)> {
    sunk(dir)
        .into_iter()
        .filter(|(e, _)| e["rcpt_tos"].as_array().unwrap().iter().any(|r| r == rcpt))
        .collect()
}

/// Delivers and waits until the pipeline has run for it and whatever it queued has left.
fn deliver_settled(d: &Data, s: &Server, from: &str, to: &str, m: &str, mailbox: (&str, &str)) {
    let before = d.messages(mailbox.0, mailbox.1).len();
    deliver(s, from, to, m);
    d.wait_messages(mailbox.0, mailbox.1, before + 1);
    d.wait_queue_empty();
}

#[test]
fn sieve_files_by_subaddress_and_a_broken_script_never_loses_mail() {
    let (d, s, _sink, _dir) = setup(Data::sqlite());
    let script = d.write(
        "shop.sieve",
        "require [\"fileinto\", \"envelope\", \"subaddress\", \"imap4flags\"];\n\
         if envelope :detail \"to\" \"shop\" {\n  fileinto :flags \"\\\\Flagged\" \"Shop\";\n  stop;\n}\n",
    );
    d.ok(&[
        "sieve",
        "put",
        "info@acme.example",
        "shop",
        script.to_str().unwrap(),
        "--activate",
    ]);
    let listed = d.json(&["sieve", "list", "info@acme.example"]);
    assert_eq!(listed[0]["name"], "shop");
    assert_eq!(listed[0]["active"], true);

    deliver(
        &s,
        "anna@remote.example",
        "info+shop@acme.example",
        &msg(
            "anna@remote.example",
            "info+shop@acme.example",
            "Order 42",
            "",
            "Shipped.",
        ),
    );
    let shop = d.wait_messages("info@acme.example", "Shop", 1);
    assert_eq!(shop[0]["subject"], "Order 42");
    deliver(
        &s,
        "anna@remote.example",
        "info@acme.example",
        &msg(
            "anna@remote.example",
            "info@acme.example",
            "Hello",
            "",
            "Hi.",
        ),
    );
    d.wait_messages("info@acme.example", "INBOX", 1);

    // The folder and its flag as an IMAP client sees them.
    let r = scripted(
        "imap_client.py",
        &[&s.port("imaps").to_string(), "tls"],
        &json!([
            ["login", "info@acme.example", PW],
            ["select", "Shop"],
            [
                "call",
                "fetch",
                "1",
                "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])"
            ],
            ["logout"]
        ]),
    );
    let text = r.to_string();
    assert!(
        text.contains("\\\\Flagged") && text.contains("Order 42"),
        "{text}"
    );

    // A syntax error is refused with its line; nothing is stored.
    let bad = d.write(
        "bad.sieve",
        "require \"fileinto\";\n\nfileinto \"x\"\nkeep;\n",
    );
    let err = d.fails(&[
        "sieve",
        "put",
        "info@acme.example",
        "bad",
        bad.to_str().unwrap(),
    ]);
    assert!(err.contains("line 4"), "{err}");
    assert_eq!(
        d.json(&["sieve", "list", "info@acme.example"])
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // A script that fails while running keeps the mail in INBOX and says why.
    let broken = d.write(
        "broken.sieve",
        "require \"include\";\ninclude :personal \"missing\";\ndiscard;\n",
    );
    d.ok(&[
        "sieve",
        "put",
        "info@acme.example",
        "broken",
        broken.to_str().unwrap(),
        "--activate",
    ]);
    deliver(
        &s,
        "anna@remote.example",
        "info@acme.example",
        &msg(
            "anna@remote.example",
            "info@acme.example",
            "Still here",
            "",
            "x",
        ),
    );
    let inbox = d.wait_messages("info@acme.example", "INBOX", 2);
    assert!(inbox.iter().any(|m| m["subject"] == "Still here"));
    let log = d.ok(&["delivery-log", "info@acme.example"]);
    assert!(
        log.contains("sieve-error") && log.contains("missing"),
        "{log}"
    );

    // The active script cannot be deleted; another can.
    let err = d.fails(&["sieve", "del", "info@acme.example", "broken"]);
    assert!(err.contains("active"), "{err}");
    d.ok(&["sieve", "del", "info@acme.example", "shop"]);
}

#[test]
fn autoresponder_once_per_sender_per_week_with_reset_exclusions_and_schedule() {
    let (d, s, _sink, dir) = setup(Data::sqlite());
    d.ok(&[
        "autoreply",
        "add",
        "info@acme.example",
        "--name",
        "away",
        "--message",
        "I am away until Monday.",
        "--subject",
        "Out of office",
        "--from",
        "hello@acme.example",
        "--exclude",
        "@blocked.example,boss@remote.example",
        "--activate",
    ]);
    // The alternate sender must be one of the address's own.
    let err = d.fails(&[
        "autoreply",
        "add",
        "info@acme.example",
        "--name",
        "x",
        "--message",
        "m",
        "--from",
        "jean@acme.example",
    ]);
    assert!(err.contains("own addresses"), "{err}");

    let inbox = ("info@acme.example", "INBOX");
    let anna = |subject: &str| {
        msg(
            "anna@remote.example",
            "info@acme.example",
            subject,
            "",
            "Question?",
        )
    };
    deliver_settled(
        &d,
        &s,
        "anna@remote.example",
        "info@acme.example",
        &anna("first"),
        inbox,
    );
    let replies = sunk_to(&dir, "anna@remote.example");
    assert_eq!(replies.len(), 1, "one reply");
    let (env, reply) = &replies[0];
    assert_eq!(env["mail_from"], "<>", "RFC 3834: the null sender");
    assert!(reply.contains("Auto-Submitted: auto-replied"), "{reply}");
    assert!(reply.contains("Subject: Out of office"), "{reply}");
    assert!(
        reply.contains("From: <hello@acme.example>") || reply.contains("From: hello@acme.example"),
        "{reply}"
    );
    assert!(reply.contains("I am away until Monday."), "{reply}");

    // Within 7 days: nothing more to anna.
    deliver_settled(
        &d,
        &s,
        "anna@remote.example",
        "info@acme.example",
        &anna("second"),
        inbox,
    );
    d.advance_clock(6 * DAY);
    deliver_settled(
        &d,
        &s,
        "anna@remote.example",
        "info@acme.example",
        &anna("third"),
        inbox,
    );
    assert_eq!(sunk_to(&dir, "anna@remote.example").len(), 1);
    // After 7 days: again.
    d.advance_clock(DAY + 60);
    deliver_settled(
        &d,
        &s,
        "anna@remote.example",
        "info@acme.example",
        &anna("fourth"),
        inbox,
    );
    assert_eq!(sunk_to(&dir, "anna@remote.example").len(), 2);
    // After a reset: again at once.
    let out = d.ok(&["autoreply", "reset", "info@acme.example"]);
    assert!(out.contains("Forgot 1"), "{out}");
    deliver_settled(
        &d,
        &s,
        "anna@remote.example",
        "info@acme.example",
        &anna("fifth"),
        inbox,
    );
    assert_eq!(sunk_to(&dir, "anna@remote.example").len(), 3);

    // Excluded senders, list mail, bulk, auto-replies and bounces get nothing.
    for (from, extra) in [
        ("boss@remote.example", ""),
        ("x@blocked.example", ""),
        ("list@remote.example", "List-Id: <dev.remote.example>\r\n"),
        ("news@remote.example", "Precedence: bulk\r\n"),
        ("bot@remote.example", "Auto-Submitted: auto-generated\r\n"),
        ("MAILER-DAEMON@remote.example", ""),
    ] {
        deliver_settled(
            &d,
            &s,
            from,
            "info@acme.example",
            &msg(from, "info@acme.example", "x", extra, "x"),
            inbox,
        );
        assert!(
            sunk_to(&dir, &from.to_lowercase()).is_empty(),
            "{from} must get no reply"
        );
    }

    // Mail that reached an address only as catchall gets no reply; to the address itself it does.
    d.ok(&[
        "autoreply",
        "add",
        "catchall@catch.example",
        "--name",
        "c",
        "--message",
        "catchall away",
        "--activate",
    ]);
    let catch = ("catchall@catch.example", "INBOX");
    deliver_settled(
        &d,
        &s,
        "carl@remote.example",
        "nobody@catch.example",
        &msg("carl@remote.example", "nobody@catch.example", "x", "", "x"),
        catch,
    );
    assert!(
        sunk_to(&dir, "carl@remote.example").is_empty(),
        "catchall-only mail got a reply"
    );
    deliver_settled(
        &d,
        &s,
        "carl@remote.example",
        "catchall@catch.example",
        &msg(
            "carl@remote.example",
            "catchall@catch.example",
            "x",
            "",
            "x",
        ),
        catch,
    );
    assert_eq!(sunk_to(&dir, "carl@remote.example").len(), 1);

    // The schedule: one starting in two days replies only from then on.
    let start = time::OffsetDateTime::now_utc() + time::Duration::days(7 + 2);
    let start = start
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    d.ok(&[
        "autoreply",
        "add",
        "info@acme.example",
        "--name",
        "later",
        "--message",
        "later",
        "--start",
        &start,
        "--activate",
    ]);
    let list = d.json(&["autoreply", "list", "info@acme.example"]);
    let active: Vec<&Value> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["active"] == true)
        .collect();
    assert_eq!(
        active.len(),
        1,
        "activating one deactivates the other: {list}"
    );
    assert_eq!(active[0]["name"], "later");
    deliver_settled(
        &d,
        &s,
        "dora@remote.example",
        "info@acme.example",
        &msg("dora@remote.example", "info@acme.example", "x", "", "x"),
        inbox,
    );
    assert!(
        sunk_to(&dir, "dora@remote.example").is_empty(),
        "before the start"
    );
    d.advance_clock(3 * DAY);
    deliver_settled(
        &d,
        &s,
        "dora@remote.example",
        "info@acme.example",
        &msg("dora@remote.example", "info@acme.example", "x", "", "x"),
        inbox,
    );
    assert_eq!(
        sunk_to(&dir, "dora@remote.example").len(),
        1,
        "after the start"
    );

    // Weekdays: only on a day that is not today (by the instance's clock).
    let offset: i64 = std::fs::read_to_string(d.path().join("clock-offset"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let today = (time::OffsetDateTime::now_utc() + time::Duration::seconds(offset)).weekday();
    let names = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let tomorrow = names[(today.number_days_from_monday() as usize + 1) % 7];
    d.ok(&[
        "autoreply",
        "add",
        "info@acme.example",
        "--name",
        "weekly",
        "--message",
        "weekly",
        "--weekdays",
        tomorrow,
        "--activate",
    ]);
    deliver_settled(
        &d,
        &s,
        "emil@remote.example",
        "info@acme.example",
        &msg("emil@remote.example", "info@acme.example", "x", "", "x"),
        inbox,
    );
    assert!(sunk_to(&dir, "emil@remote.example").is_empty(), "not today");
    d.advance_clock(DAY);
    deliver_settled(
        &d,
        &s,
        "emil@remote.example",
        "info@acme.example",
        &msg("emil@remote.example", "info@acme.example", "x", "", "x"),
        inbox,
    );
    assert_eq!(
        sunk_to(&dir, "emil@remote.example").len(),
        1,
        "tomorrow it answers"
    );
}

#[test]
fn forwarding_rewrites_the_sender_with_srs_and_bounces_come_back() {
    let (d, s, _sink, dir) = setup(Data::sqlite());
    d.ok(&[
        "forward",
        "set",
        "info@acme.example",
        "--to",
        "fwd@remote.example",
        "--keep",
    ]);
    d.ok(&[
        "forward",
        "set",
        "jean@acme.example",
        "--to",
        "fwd2@remote.example,fwd3@remote.example",
        "--delete",
    ]);

    deliver(
        &s,
        "anna@remote.example",
        "info@acme.example",
        &msg(
            "anna@remote.example",
            "info@acme.example",
            "Forward me",
            "",
            "x",
        ),
    );
    d.wait_messages("info@acme.example", "INBOX", 1);
    d.wait_queue_empty();
    let fwd = sunk_to(&dir, "fwd@remote.example");
    assert_eq!(fwd.len(), 1);
    let srs = fwd[0].0["mail_from"].as_str().unwrap().to_string();
    assert!(
        srs.starts_with("SRS0=") && srs.ends_with("=remote.example=anna@acme.example"),
        "{srs}"
    );
    assert!(
        fwd[0].1.contains("Delivered-To: info@acme.example"),
        "{}",
        fwd[0].1
    );
    assert!(fwd[0].1.contains("Subject: Forward me"));

    // "Delete the copy": jean's mailbox stays empty; both targets get it in one envelope.
    deliver(
        &s,
        "anna@remote.example",
        "jean@acme.example",
        &msg(
            "anna@remote.example",
            "jean@acme.example",
            "For jean",
            "",
            "x",
        ),
    );
    assert!(wait_until(Duration::from_secs(20), || !sunk_to(
        &dir,
        "fwd2@remote.example"
    )
    .is_empty()));
    assert_eq!(sunk_to(&dir, "fwd3@remote.example").len(), 1);
    d.wait_queue_empty();
    assert!(d.messages("jean@acme.example", "INBOX").is_empty());

    // The final destination bounces to the SRS address: it reaches anna, the original sender.
    let bounce = msg(
        "MAILER-DAEMON@remote.example",
        &srs,
        "Undelivered Mail Returned to Sender",
        "Auto-Submitted: auto-replied\r\n",
        "fwd@remote.example: mailbox full",
    );
    deliver(&s, "", &srs, &bounce);
    assert!(
        wait_until(Duration::from_secs(20), || !sunk_to(
            &dir,
            "anna@remote.example"
        )
        .is_empty()),
        "the bounce reached the original sender"
    );
    let (env, text) = &sunk_to(&dir, "anna@remote.example")[0];
    assert_eq!(env["mail_from"], "<>");
    assert!(text.contains("Undelivered Mail Returned"));

    // A forged or unknown SRS address does not exist.
    let forged = srs.replacen("=remote.example=anna", "=remote.example=mallory", 1);
    let r = python(
        "import smtplib,sys\nc = smtplib.SMTP('127.0.0.1', int(sys.argv[1]), local_hostname='mx.sender.example')\nc.ehlo()\nc.mail('')\nprint(c.rcpt(sys.argv[2])[0])\n",
        &[&s.port("smtp").to_string(), &forged],
    );
    assert_eq!(r.stdout.trim(), "550", "{}", r.stderr);

    // A message that already passed info@ (a loop through the remote side) is kept, not sent again.
    let before = sunk_to(&dir, "fwd@remote.example").len();
    deliver(
        &s,
        "anna@remote.example",
        "info@acme.example",
        &msg(
            "anna@remote.example",
            "info@acme.example",
            "Looping",
            "Delivered-To: info@acme.example\r\n",
            "x",
        ),
    );
    d.wait_messages("info@acme.example", "INBOX", 2);
    d.wait_queue_empty();
    assert_eq!(
        sunk_to(&dir, "fwd@remote.example").len(),
        before,
        "the loop was stopped"
    );
    let log = d.ok(&["delivery-log", "info@acme.example"]);
    assert!(log.contains("loop"), "{log}");

    d.ok(&["forward", "clear", "info@acme.example"]);
    deliver(
        &s,
        "anna@remote.example",
        "info@acme.example",
        &msg(
            "anna@remote.example",
            "info@acme.example",
            "Not forwarded",
            "",
            "x",
        ),
    );
    d.wait_messages("info@acme.example", "INBOX", 3);
    d.wait_queue_empty();
    assert_eq!(sunk_to(&dir, "fwd@remote.example").len(), before);
}

#[test]
fn lists_spam_promotions_and_external_marking() {
    let (d, s, _sink, _dir) = setup(Data::sqlite());
    let info = "info@acme.example";
    // Block list: into Spam, marked why.
    d.ok(&["list", "block", "add", info, "@pest.example"]);
    deliver(
        &s,
        "x@pest.example",
        info,
        &msg("x@pest.example", info, "Blocked one", "", "hello"),
    );
    let spam = d.wait_messages(info, "Spam", 1);
    let raw = d.ok(&[
        "mailbox",
        "show",
        info,
        &spam[0]["uid"].to_string(),
        "--folder",
        "Spam",
    ]);
    assert!(
        raw.contains("X-Spam-Status: Yes") && raw.contains("BLOCK_LIST"),
        "{raw}"
    );

    // Own address on the allow list: allowed, with a warning.
    let out = d.ok(&["list", "allow", "add", info, info]);
    assert!(out.contains("warning:") && out.contains("forges"), "{out}");
    let shown = d.json(&["list", "allow", "show", info]);
    assert_eq!(shown["allow"], json!([info]));
    assert_eq!(shown["warnings"].as_array().unwrap().len(), 1);
    d.ok(&["list", "allow", "del", info, info]);

    // Service-wide block with "refuse": the sender hears 550 at RCPT.
    d.ok(&["list", "block", "add", "acme.example", "@refused.example"]);
    d.ok(&[
        "spam",
        "service",
        "acme.example",
        "--block-action",
        "refuse",
    ]);
    let r = python(
        "import smtplib,sys\nc = smtplib.SMTP('127.0.0.1', int(sys.argv[1]), local_hostname='mx.sender.example')\nc.ehlo()\nc.mail('y@refused.example')\ncode, text = c.rcpt('jean@acme.example')\nprint(code, text.decode())\n",
        &[&s.port("smtp").to_string()],
    );
    assert!(
        r.stdout.starts_with("550 5.7.1"),
        "{}{}",
        r.stdout,
        r.stderr
    );

    // Spam: obvious spam goes to Spam with its score; with the filter off, to INBOX.
    let junk = "From: \"support@bank.example\" <x@evil.example>\r\nTo: info@acme.example\r\nSubject: YOU HAVE WON THE LOTTERY!!!\r\n\r\nDear friend, you have won a million dollars. Click here: http://192.0.2.1/claim\r\n";
    deliver(&s, "x@evil.example", info, junk);
    let spam = d.wait_messages(info, "Spam", 2);
    let uid = spam
        .iter()
        .find(|m| m["subject"].as_str().unwrap().contains("LOTTERY"))
        .unwrap()["uid"]
        .to_string();
    let raw = d.ok(&["mailbox", "show", info, &uid, "--folder", "Spam"]);
    assert!(
        raw.contains("X-Spam-Status: Yes, score=") && raw.contains("LOTTERY"),
        "{raw}"
    );
    d.ok(&["spam", "set", info, "off"]);
    deliver(&s, "x@evil.example", info, junk);
    d.wait_messages(info, "INBOX", 1);
    d.ok(&["spam", "set", info, "on", "--promotions", "on"]);

    // Promotions and social networks (opt-in).
    deliver(
        &s,
        "news@shop.example",
        info,
        &msg(
            "Shop <news@shop.example>",
            info,
            "Sale",
            "List-Unsubscribe: <https://shop.example/u>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
            "50% off",
        ),
    );
    assert_eq!(d.wait_messages(info, "Promotions", 1)[0]["subject"], "Sale");
    deliver(
        &s,
        "messages-noreply@linkedin.com",
        info,
        &msg(
            "LinkedIn <messages-noreply@linkedin.com>",
            info,
            "You appeared in 5 searches",
            "",
            "x",
        ),
    );
    assert_eq!(
        d.wait_messages(info, "SocialNetworks", 1)[0]["subject"],
        "You appeared in 5 searches"
    );
    // Jean did not opt in: the newsletter stays in INBOX.
    deliver(
        &s,
        "news@shop.example",
        "jean@acme.example",
        &msg(
            "Shop <news@shop.example>",
            "jean@acme.example",
            "Sale",
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\nList-Unsubscribe: <https://shop.example/u>\r\n",
            "50% off",
        ),
    );
    d.wait_messages("jean@acme.example", "INBOX", 1);

    // External marking: a header and a banner on mail from outside, nothing on internal mail.
    d.ok(&[
        "spam",
        "service",
        "acme.example",
        "--external-marking",
        "on",
    ]);
    deliver(
        &s,
        "anna@remote.example",
        "jean@acme.example",
        &msg(
            "anna@remote.example",
            "jean@acme.example",
            "From outside",
            "",
            "Hello Jean",
        ),
    );
    deliver(
        &s,
        "info@acme.example",
        "jean@acme.example",
        &msg(
            "info@acme.example",
            "jean@acme.example",
            "From inside",
            "",
            "Hello Jean",
        ),
    );
    let inbox = d.wait_messages("jean@acme.example", "INBOX", 3);
    let uid_of =
        |subject: &str| inbox.iter().find(|m| m["subject"] == subject).unwrap()["uid"].to_string();
    let outside = d.message("jean@acme.example", uid_of("From outside").parse().unwrap());
    assert!(outside.contains("X-Postfach-External: yes"), "{outside}");
    assert!(
        outside.contains("[EXTERNAL] This message comes from outside your organization."),
        "{outside}"
    );
    let inside = d.message("jean@acme.example", uid_of("From inside").parse().unwrap());
    assert!(
        !inside.contains("X-Postfach-External") && !inside.contains("[EXTERNAL]"),
        "{inside}"
    );
}

#[test]
fn sieve_and_autoresponder_on_postgresql() {
    let (d, s, _sink, dir) = setup(Data::postgres());
    let script = d.write("tag.sieve", "require [\"fileinto\", \"envelope\", \"subaddress\"];\nif envelope :detail \"to\" \"news\" { fileinto \"News\"; }\n");
    d.ok(&[
        "sieve",
        "put",
        "info@acme.example",
        "tag",
        script.to_str().unwrap(),
        "--activate",
    ]);
    d.ok(&[
        "autoreply",
        "add",
        "info@acme.example",
        "--name",
        "away",
        "--message",
        "Away.",
        "--activate",
    ]);
    deliver(
        &s,
        "anna@remote.example",
        "info+news@acme.example",
        &msg("anna@remote.example", "info@acme.example", "n1", "", "x"),
    );
    d.wait_messages("info@acme.example", "News", 1);
    d.wait_queue_empty();
    deliver(
        &s,
        "anna@remote.example",
        "info+news@acme.example",
        &msg("anna@remote.example", "info@acme.example", "n2", "", "x"),
    );
    d.wait_messages("info@acme.example", "News", 2);
    d.wait_queue_empty();
    assert_eq!(
        sunk_to(&dir, "anna@remote.example").len(),
        1,
        "one reply per week"
    );
}

#[test]
fn the_api_offers_the_same_settings_with_clear_errors() {
    let (d, s, _sink, _dir) = setup(Data::sqlite());
    let api = crate::api::Client::login(&s, &d.admin_login, &d.admin_password);
    let info = "info@acme.example";

    // Sieve: a syntax error is a 400 naming the line; a good script is stored and activated.
    let (st, body) = api.put(
        &format!("/api/v1/sieve/{info}/bad"),
        json!({"source": "require \"fileinto\";\nfileinto \"x\"\nkeep;\n"}),
    );
    assert_eq!(st, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 3"),
        "{body}"
    );
    let (st, body) = api.put(
        &format!("/api/v1/sieve/{info}/main"),
        json!({"source": "require \"fileinto\";\nif header :contains \"subject\" \"api\" { fileinto \"Api\"; }\n", "activate": true}),
    );
    assert_eq!((st, &body["active"]), (200, &json!(true)), "{body}");
    let (st, body) = api.get(&format!("/api/v1/sieve/{info}"));
    assert_eq!((st, body[0]["name"].as_str()), (200, Some("main")));
    deliver(
        &s,
        "anna@remote.example",
        info,
        &msg("anna@remote.example", info, "via api", "", "x"),
    );
    d.wait_messages(info, "Api", 1);
    let (st, _) = api.delete(&format!("/api/v1/sieve/{info}/main"));
    assert_eq!(st, 409, "the active script cannot be deleted");

    // Autoresponder: validation errors, then one saved and active.
    let (st, body) = api.post(
        &format!("/api/v1/addresses/{info}/autoreplies"),
        json!({"name": "away", "message": "Away.", "weekdays": ["funday"]}),
    );
    assert_eq!(st, 400, "{body}");
    let (st, body) = api.post(
        &format!("/api/v1/addresses/{info}/autoreplies"),
        json!({"name": "away", "message": "Away.", "active": true, "exclude": ["@x.example"]}),
    );
    assert_eq!((st, &body["active"]), (200, &json!(true)), "{body}");
    let (st, body) = api.post(
        &format!("/api/v1/addresses/{info}/autoreplies/reset"),
        json!({}),
    );
    assert_eq!((st, &body["forgotten"]), (200, &json!(0)), "{body}");

    // Lists and filters.
    let (st, body) = api.post(
        &format!("/api/v1/lists/{info}/allow"),
        json!({"entry": info}),
    );
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["warnings"].as_array().unwrap().len(), 1, "{body}");
    let (st, body) = api.post(
        &format!("/api/v1/lists/{info}/maybe"),
        json!({"entry": "@x.example"}),
    );
    assert_eq!(st, 400, "{body}");
    let (st, body) = api.patch(
        &format!("/api/v1/addresses/{info}/filters"),
        json!({"promotions": true}),
    );
    assert_eq!(
        (st, &body["spam"], &body["promotions"]),
        (200, &json!(true), &json!(true)),
        "{body}"
    );
    let (st, body) = api.patch(
        "/api/v1/services/acme.example/filters",
        json!({"spam_threshold": 0}),
    );
    assert_eq!(st, 400, "{body}");
    let (st, body) = api.patch(
        "/api/v1/services/acme.example/filters",
        json!({"block_action": "refuse", "external_marking": true}),
    );
    assert_eq!(
        (st, &body["block_action"], &body["external_marking"]),
        (200, &json!("refuse"), &json!(true)),
        "{body}"
    );
    // Without credentials: 401.
    let (st, _) = crate::api::Client::new(&s).get(&format!("/api/v1/sieve/{info}"));
    assert_eq!(st, 401);
}

/// The named leaf parts of a stored message as Python's `email` package reads them:
/// [[filename, content], …].
fn py_attachments(raw: &str) -> Value {
    let r = python(
        "import email, email.policy, json, sys\n\
         m = email.message_from_string(sys.argv[1], policy=email.policy.default)\n\
         print(json.dumps([[p.get_filename(), p.get_payload(decode=True).decode('latin-1')] for p in m.walk() if not p.is_multipart() and p.get_filename()]))\n",
        &[raw],
    );
    assert!(r.ok, "{}", r.stderr);
    serde_json::from_str(&r.stdout).unwrap()
}

#[test]
fn winmail_dat_is_unpacked_into_ordinary_attachments() {
    let (d, s, _sink, _dir) = setup(Data::sqlite());
    let info = "info@acme.example";
    // An Outlook-style message; the tool checks its winmail.dat with Debian's `tnef` first.
    let outlook = |subject: &str| {
        let out = crate::support::run_tool(
            "tnef_mail.py",
            &[
                "boss@corp.example",
                info,
                subject,
                "report.txt=Quarterly figures",
                "notes.txt=See page 2",
            ],
        );
        String::from_utf8(out).unwrap()
    };
    deliver(&s, "boss@corp.example", info, &outlook("Report"));
    let inbox = d.wait_messages(info, "INBOX", 1);
    let raw = d.message(info, inbox[0]["uid"].as_i64().unwrap());
    assert!(raw.contains("X-Postfach-TNEF: unpacked 2 file(s)"), "{raw}");
    let att = py_attachments(&raw);
    assert_eq!(
        att,
        json!([
            ["winmail.dat", att[0][1]],
            ["report.txt", "Quarterly figures"],
            ["notes.txt", "See page 2"]
        ]),
        "{raw}"
    );

    // The mail service may drop the original.
    d.ok(&[
        "spam",
        "service",
        "acme.example",
        "--tnef-keep-original",
        "off",
    ]);
    deliver(&s, "boss@corp.example", info, &outlook("Report 2"));
    let inbox = d.wait_messages(info, "INBOX", 2);
    let uid = inbox.iter().find(|m| m["subject"] == "Report 2").unwrap()["uid"]
        .as_i64()
        .unwrap();
    let raw = d.message(info, uid);
    let att = py_attachments(&raw);
    assert_eq!(
        att,
        json!([
            ["report.txt", "Quarterly figures"],
            ["notes.txt", "See page 2"]
        ]),
        "{raw}"
    );
    assert!(raw.contains("See attached."), "{raw}");
}

#[test]
fn templates_give_new_addresses_their_defaults_and_apply_in_bulk() {
    let (d, s, _sink, _dir) = setup(Data::sqlite());
    let err = d.fails(&["template", "put", "acme.example", "empty"]);
    assert!(err.contains("at least one"), "{err}");
    d.ok(&[
        "template",
        "put",
        "acme.example",
        "staff",
        "--spam",
        "off",
        "--signature",
        "Acme GmbH, Berlin",
        "--autoreply-message",
        "I am away until Monday.",
        "--default",
    ]);
    let list = d.json(&["template", "list", "acme.example"]);
    assert_eq!(
        (&list[0]["name"], &list[0]["default"]),
        (&json!("staff"), &json!(true))
    );

    // A new address starts with the default template's settings …
    d.ok(&["address", "add", "new@acme.example", "--password", PW]);
    assert_eq!(d.json(&["spam", "show", "new@acme.example"])["spam"], false);
    assert_eq!(
        d.json(&["signature", "show", "new@acme.example"])["text"],
        "Acme GmbH, Berlin"
    );
    let replies = d.json(&["autoreply", "list", "new@acme.example"]);
    assert_eq!(
        (&replies[0]["name"], &replies[0]["active"]),
        (&json!("staff"), &json!(false)),
        "{replies}"
    );
    // … and so does one from a CSV import; existing ones are untouched until applied.
    let csv = d.write(
        "import.csv",
        &format!("local_part,password,forward_to,delete_after_forward\ncsv,{PW},,\n"),
    );
    d.ok(&["address", "import", "acme.example", csv.to_str().unwrap()]);
    assert_eq!(d.json(&["spam", "show", "csv@acme.example"])["spam"], false);
    assert_eq!(d.json(&["spam", "show", "info@acme.example"])["spam"], true);

    let err = d.fails(&["template", "apply", "acme.example", "staff"]);
    assert!(err.contains("--all"), "{err}");
    let err = d.fails(&[
        "template",
        "apply",
        "acme.example",
        "staff",
        "info@catch.example",
    ]);
    assert!(err.contains("not an address of acme.example"), "{err}");
    d.ok(&[
        "template",
        "apply",
        "acme.example",
        "staff",
        "info@acme.example",
    ]);
    assert_eq!(
        d.json(&["spam", "show", "info@acme.example"])["spam"],
        false
    );

    // The API offers the same; applying to all reaches every address of the service.
    let api = crate::api::Client::login(&s, &d.admin_login, &d.admin_password);
    let (st, body) = api.post(
        "/api/v1/services/acme.example/templates",
        json!({"name": "strict", "spam": true, "promotions": true}),
    );
    assert_eq!(st, 200, "{body}");
    let (st, body) = api.post(
        "/api/v1/services/acme.example/templates/strict/apply",
        json!({}),
    );
    assert_eq!(st, 200, "{body}");
    // info, jean, new and csv
    assert_eq!(body["applied"].as_array().unwrap().len(), 4, "{body}");
    assert_eq!(
        d.json(&["spam", "show", "jean@acme.example"])["promotions"],
        true
    );
    let (st, _) = api.post(
        "/api/v1/services/acme.example/templates/nope/apply",
        json!({}),
    );
    assert_eq!(st, 404);
    let (st, body) = api.post(
        "/api/v1/services/acme.example/templates",
        json!({"name": "x", "colour": "red"}),
    );
    assert_eq!(st, 400, "{body}");
    let (st, _) = api.delete("/api/v1/services/acme.example/templates/strict");
    assert_eq!(st, 204);
    assert_eq!(
        d.json(&["template", "list", "acme.example"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
