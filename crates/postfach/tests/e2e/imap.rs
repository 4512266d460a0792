//! IMAP end to end (P3–P5, M9, M11): the real server and independent clients —
//! Python's `imaplib` (tools/imap_client.py), `mbsync` (isync), `curl`, and raw sockets for
//! protocol abuse. Mail arrives over SMTP; results are cross-checked through the CLI.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::support::{Data, PW, Server, deliver, python, scripted};

const ANN: &str = "ann@acme.example";

/// Acme with the mail service acme.example and the address ann@.
fn setup() -> Data {
    let d = Data::sqlite();
    setup_on(&d);
    d
}

fn setup_on(d: &Data) {
    d.service("acme.example", "standard", Some(10));
    d.ok(&["address", "add", ANN, "--password", PW]);
}

/// Runs an imaplib script on the implicit-TLS port (`tls`) or the STARTTLS port (`plain`).
pub fn imap(s: &Server, mode: &str, steps: Value) -> Vec<Value> {
    let port = if mode == "tls" {
        s.port("imaps")
    } else {
        s.port("imap")
    };
    scripted("imap_client.py", &[&port.to_string(), mode], &steps)
        .as_array()
        .unwrap()
        .clone()
}

/// The steps to log in as `user` over implicit TLS.
fn login(user: &str) -> Value {
    json!(["login", user, PW])
}

fn status(step: &Value) -> &str {
    step[0].as_str().unwrap()
}

/// Everything a step got (data and untagged responses) as IMAP text, one piece per line, for
/// `contains` checks.
fn all_text(step: &Value) -> String {
    fn walk(v: &Value, out: &mut String) {
        match v {
            Value::String(s) => {
                out.push_str(s);
                out.push('\n');
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            Value::Object(o) => o.iter().for_each(|(k, x)| {
                out.push_str(k);
                out.push('\n');
                walk(x, out)
            }),
            other => {
                out.push_str(&other.to_string());
                out.push('\n');
            }
        }
    }
    let mut out = String::new();
    walk(step, &mut out);
    out
}

fn untagged<'a>(step: &'a Value, name: &str) -> Vec<&'a str> {
    step[2][name]
        .as_array()
        .map(|v| v.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn message(subject: &str, body: &str) -> String {
    format!(
        "From: Carol <carol@sender.example>\r\nTo: {ANN}\r\nSubject: {subject}\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{}@sender.example>\r\n\r\n{body}\r\n",
        subject.replace(' ', ".")
    )
}

const MULTIPART: &str = "From: Dora <dora@sender.example>\r\nTo: ann@acme.example\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=\r\nDate: Tue, 24 Nov 2026 09:00:00 +0100\r\nMessage-ID: <multi@sender.example>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nViele Gr=C3=BC=C3=9Fe\r\n--b1\r\nContent-Type: application/pdf; name=\"plan.pdf\"\r\nContent-Disposition: attachment; filename=\"plan.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b1--\r\n";

#[test]
fn imaplib_rev1_session_select_fetch_search_store_copy_move_expunge_idle() {
    let d = setup();
    let s = Server::start(&d);
    deliver(
        &s,
        "carol@sender.example",
        ANN,
        &message("apples and pears", "kiwi fruit"),
    );
    deliver(&s, "dora@sender.example", ANN, MULTIPART);
    let big = format!("{}banana\r\n", "filler line of text\r\n".repeat(1000));
    deliver(&s, "carol@sender.example", ANN, &message("big one", &big));
    d.wait_messages(ANN, "INBOX", 3);

    let r = imap(
        &s,
        "plain",
        json!([
            ["login", ANN, PW],
            ["starttls"],
            ["capability"],
            login(ANN),
            ["select", "INBOX"],
            ["uid", "SEARCH", "ALL"],
            ["uid", "SEARCH", "SUBJECT", "apples"],
            ["uid", "SEARCH", "BODY", "kiwi"],
            ["uid", "SEARCH", "TEXT", "banana"],
            ["uid", "SEARCH", "FROM", "dora"],
            [
                "uid",
                "SEARCH",
                "HEADER",
                "Message-ID",
                "<multi@sender.example>"
            ],
            ["uid", "SEARCH", "LARGER", "10000"],
            [
                "uid", "SEARCH", "OR", "SUBJECT", "apples", "SUBJECT", "big", "NOT", "BODY", "kiwi"
            ],
            ["literal", "Grüße"],
            ["uid", "SEARCH", "CHARSET", "UTF-8", "SUBJECT"],
            ["uid", "SEARCH", "CHARSET", "KOI8-R", "ALL"],
            ["uid", "SEARCH", "SENTON", "24-Nov-2026"],
            ["uid", "SEARCH", "SENTBEFORE", "24-Nov-2026"],
            [
                "uid",
                "SEARCH",
                "SENTSINCE",
                "24-Nov-2026",
                "SUBJECT",
                "\"aus k\""
            ],
            [
                "uid",
                "FETCH",
                "2",
                "(UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE BODYSTRUCTURE)"
            ],
            [
                "uid",
                "FETCH",
                "2",
                "(BODY.PEEK[1] BODY.PEEK[1.MIME] BODY.PEEK[2] BINARY.PEEK[1])"
            ],
            [
                "uid",
                "FETCH",
                "2",
                "(BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)] BODY.PEEK[]<0.20>)"
            ],
            ["uid", "FETCH", "1:*", "(FLAGS)"],
            ["uid", "FETCH", "1", "(BODY[TEXT])"],
            ["uid", "SEARCH", "UNSEEN"],
            ["uid", "STORE", "1", "+FLAGS", "(\\Flagged $Important)"],
            ["uid", "STORE", "1", "-FLAGS.SILENT", "($Important)"],
            ["uid", "SEARCH", "FLAGGED"],
            ["uid", "COPY", "1", "Archive"],
            ["uid", "MOVE", "3", "Trash"],
            ["uid", "STORE", "1", "+FLAGS", "(\\Deleted)"],
            ["call", "expunge"],
            ["call", "status", "Archive", "(MESSAGES UIDNEXT UNSEEN)"],
            [
                "append",
                "Drafts",
                "(\\Draft)",
                1795000000,
                "Subject: draft\r\n\r\nnot yet\r\n"
            ],
            ["examine", "Drafts"],
            ["call", "fetch", "1", "(FLAGS INTERNALDATE)"],
            ["select", "INBOX"],
            [
                "idle_until",
                s.port("smtp"),
                "eve@sender.example",
                ANN,
                message("while idle", "ping"),
                10
            ],
            ["call", "fetch", "1:*", "(UID FLAGS)"],
            ["logout"]
        ]),
    );
    let step = |i: usize| &r[i + 1];
    // Greeting: no login before TLS (LOGINDISABLED), STARTTLS offered.
    let greeting = all_text(&r[0]);
    assert!(
        greeting.contains("STARTTLS") && greeting.contains("LOGINDISABLED"),
        "{greeting}"
    );
    assert_eq!(status(step(0)), "ERROR");
    assert!(
        all_text(step(0)).contains("not allowed before STARTTLS"),
        "{}",
        step(0)
    );
    assert_eq!(status(step(1)), "OK");
    let caps = all_text(step(2));
    assert!(
        caps.contains("AUTH=PLAIN") && !caps.contains("LOGINDISABLED"),
        "{caps}"
    );
    assert_eq!(status(step(3)), "OK", "{}", step(3));
    // SELECT: counts, \Recent for the first session (rev1), UIDVALIDITY, UIDNEXT.
    let select = step(4);
    assert_eq!(select[1], json!(["3"]));
    assert_eq!(untagged(select, "RECENT"), ["3"]);
    assert!(!untagged(select, "UIDVALIDITY").is_empty());
    assert_eq!(untagged(select, "UIDNEXT"), ["4"]);
    // SEARCH with the RFC criteria.
    let hits = |i: usize| step(i)[1][0].as_str().unwrap().to_string();
    assert_eq!(hits(5), "1 2 3");
    assert_eq!(hits(6), "1");
    assert_eq!(hits(7), "1");
    assert_eq!(hits(8), "3");
    assert_eq!(hits(9), "2");
    assert_eq!(hits(10), "2");
    assert_eq!(hits(11), "3");
    assert_eq!(hits(12), "3", "(apples OR big) AND NOT kiwi");
    assert_eq!(hits(14), "2", "UTF-8 search in an encoded subject");
    // SENT*: the day of the Date: field (RFC 9051 §6.4.4), from the stored summary.
    assert_eq!(hits(16), "2");
    assert_eq!(hits(17), "1 3");
    assert_eq!(hits(18), "2", "SUBJECT matches the decoded subject");
    assert_eq!(status(step(15)), "NO");
    assert!(all_text(step(15)).contains("BADCHARSET"), "{}", step(15));
    // FETCH: envelope, structure, sections, binary, partial.
    let meta = all_text(step(19));
    assert!(
        meta.contains("\"Dora\" NIL \"dora\" \"sender.example\""),
        "{meta}"
    );
    assert!(
        meta.contains("=?utf-8?q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?="),
        "{meta}"
    );
    assert!(
        meta.contains(
            "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"QUOTED-PRINTABLE\" 21 1 "
        ),
        "{meta}"
    );
    assert!(
        meta.contains("APPLICATION") && meta.contains("PDF") && meta.contains("MIXED"),
        "{meta}"
    );
    let sections = all_text(step(20));
    assert!(sections.contains("Viele Gr=C3=BC=C3=9Fe"), "{sections}");
    assert!(
        sections.contains("Content-Transfer-Encoding: quoted-printable"),
        "{sections}"
    );
    assert!(sections.contains("JVBERi0xLjQK"), "{sections}");
    assert!(
        sections.contains("Viele Grüße"),
        "BINARY undoes the encoding: {sections}"
    );
    let headers = all_text(step(21));
    assert!(headers.contains("Subject: =?utf-8?q?Gr"), "{headers}");
    assert!(headers.contains("From: Dora"), "{headers}");
    assert!(headers.contains("BODY[]<0> {20}"), "{headers}");
    assert!(
        !all_text(step(22)).contains("\\Seen"),
        "PEEK leaves \\Seen alone: {}",
        step(22)
    );
    assert!(
        all_text(step(23)).contains("\\Seen"),
        "BODY[TEXT] sets \\Seen: {}",
        step(23)
    );
    assert_eq!(hits(24), "2 3");
    // STORE answers with the new flags; .SILENT does not.
    let stored = all_text(step(25));
    assert!(
        stored.contains("\\Flagged") && stored.contains("$Important"),
        "{stored}"
    );
    assert_eq!(step(26)[1], json!([null]), "{}", step(26));
    assert_eq!(hits(27), "1");
    // COPY and MOVE with UIDPLUS; EXPUNGE.
    assert!(all_text(step(28)).contains("COPYUID"), "{}", step(28));
    let moved = step(29);
    assert!(all_text(moved).contains("COPYUID"), "{moved}");
    assert_eq!(untagged(moved, "EXPUNGE"), ["3"]);
    assert_eq!(
        step(31)[1],
        json!(["1"]),
        "EXPUNGE of sequence number 1: {}",
        step(31)
    );
    assert!(all_text(step(32)).contains("MESSAGES 1"), "{}", step(32));
    // APPEND with flags and date.
    assert!(all_text(step(33)).contains("APPENDUID"), "{}", step(33));
    let draft = all_text(step(35));
    assert!(draft.contains("\\Draft"), "{draft}");
    assert!(
        draft.contains("INTERNALDATE \"18-Nov-2026 11:06:40 +0000\""),
        "{draft}"
    );
    // IDLE hears of new mail within a second of its delivery.
    let idle = step(37);
    assert_eq!(status(idle), "OK", "{idle}");
    let elapsed = idle[1][0].as_f64().unwrap();
    assert!(elapsed < 1.0, "EXISTS came {elapsed:.2}s after delivery");
    let after = all_text(step(38));
    assert!(
        after.contains("UID 2 ") && after.contains("UID 4 "),
        "{after}"
    );
    assert!(all_text(step(39)).contains("BYE"));

    // The CLI sees the same mailbox.
    let count = |folder: &str| d.messages(ANN, folder).len();
    assert_eq!(
        [
            count("INBOX"),
            count("Archive"),
            count("Trash"),
            count("Drafts")
        ],
        [2, 1, 1, 1]
    );
}

#[test]
fn two_sessions_and_smtp_delivery_at_once_end_with_the_same_view() {
    concurrency(setup());
}

#[test]
fn two_sessions_and_smtp_delivery_at_once_on_postgresql() {
    let d = Data::postgres();
    setup_on(&d);
    concurrency(d);
}

fn concurrency(d: Data) {
    let s = Server::start(&d);
    for i in 0..5 {
        deliver(
            &s,
            "carol@sender.example",
            ANN,
            &message(&format!("seed {i}"), "x"),
        );
    }
    d.wait_messages(ANN, "INBOX", 5);
    let out = crate::support::scripted(
        "imap_two.py",
        &[
            &s.port("imaps").to_string(),
            &s.port("smtp").to_string(),
            ANN,
            PW,
        ],
        &json!(null),
    );
    // Each session hears of the other's changes at the next command.
    let answered = out["answered"].to_string();
    assert!(answered.contains("\\\\Answered"), "{answered}");
    assert_eq!(out["expunge"], json!(["1"]));
    assert_eq!(
        out["undeleted_survives"],
        json!(true),
        "EXPUNGE goes by the stored \\Deleted, not a stale view"
    );
    for key in ["stale_store", "stale_store_stored"] {
        let flags = out[key].to_string();
        assert!(
            flags.contains("\\\\Flagged") && flags.contains("$Work"),
            "{key}: one session's flag lost to another's STORE from a stale view: {flags}"
        );
    }
    let bye = out["deleted_selected"].as_str().unwrap();
    assert!(bye.contains("selected mailbox was deleted"), "{bye}");
    // Both end with the same view, numbered consistently, and so does the store.
    let (a, b) = (&out["views"]["a"], &out["views"]["b"]);
    assert_eq!(a, b, "the two sessions disagree");
    let view = a.as_array().unwrap();
    for (i, m) in view.iter().enumerate() {
        assert_eq!(
            m[0].as_u64().unwrap(),
            i as u64 + 1,
            "sequence numbers: {view:?}"
        );
    }
    let uids: Vec<u64> = view.iter().map(|m| m[1].as_u64().unwrap()).collect();
    assert!(
        uids.windows(2).all(|w| w[0] < w[1]),
        "UIDs ascend: {uids:?}"
    );
    assert_eq!(out["exists"]["a"], json!(view.len()));
    assert_eq!(out["exists"]["b"], json!(view.len()));
    let stored: Vec<Value> = d
        .messages(ANN, "INBOX")
        .iter()
        .map(|m| {
            let mut flags: Vec<String> = m["flags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap().to_string())
                .collect();
            flags.sort();
            json!([m["uid"], flags])
        })
        .collect();
    let seen: Vec<Value> = view.iter().map(|m| json!([m[1], m[2]])).collect();
    // The three messages of the APPEND part came after the views were taken.
    let stored = &stored[..stored.len() - 3];
    assert_eq!(seen, stored, "the sessions' view is what is stored");
    // All 25 deliveries got their own UID, and the three appends theirs; none was reused.
    let folders = d.json(&["mailbox", "folders", ANN]);
    let inbox = folders
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "INBOX")
        .unwrap();
    assert_eq!(inbox["uidnext"], json!(29), "{inbox}");
    // APPEND into the selected folder (the server takes it into the appending session's view
    // without asking the store): EXISTS at once, \Recent for the appender only; after
    // another session's append, both new messages are reported, only its own as \Recent.
    let ap = &out["append"];
    let n = ap["before"].as_u64().unwrap();
    assert_eq!(ap["exists"], json!([(n + 1).to_string()]), "{ap}");
    assert_eq!(ap["recent"], json!(["1"]), "{ap}");
    let has_recent = |v: &Value| v.as_str().unwrap().contains("\\Recent");
    assert!(has_recent(&ap["own_flags"]), "{ap}");
    assert_eq!(ap["other_exists"], json!([(n + 1).to_string()]), "{ap}");
    assert!(!has_recent(&ap["other_flags"]), "{ap}");
    let after = &ap["after_other"];
    assert_eq!(after["exists"], json!([(n + 3).to_string()]), "{ap}");
    assert_eq!(after["recent"], json!(["2"]), "{ap}");
    assert!(has_recent(&after["own_flags"]), "{ap}");
    assert!(!has_recent(&after["theirs_flags"]), "{ap}");
}

/// Message files of a maildir tree (relative path → content), without mbsync's state files.
fn maildir_files(root: &Path) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if ["cur", "new"]
                .iter()
                .any(|s| p.parent().unwrap().ends_with(s))
            {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    out
}

fn mbsync(rc: &Path) -> String {
    let out = Command::new("mbsync")
        .arg("-c")
        .arg(rc)
        .arg("-a")
        .output()
        .expect("mbsync (Debian package isync)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "mbsync failed: {text}");
    text
}

/// One folder's messages as (UID, flags).
type FolderState = Vec<(i64, Vec<String>)>;

/// The server side of a mailbox: folder → [(uid, flags)].
fn server_state(d: &Data) -> Vec<(String, FolderState)> {
    let folders = d.json(&["mailbox", "folders", ANN]);
    folders
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let name = f["name"].as_str().unwrap().to_string();
            let messages = d
                .messages(ANN, &name)
                .iter()
                .map(|m| {
                    let flags = m["flags"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_str().unwrap().to_string())
                        .collect();
                    (m["uid"].as_i64().unwrap(), flags)
                })
                .collect();
            (name, messages)
        })
        .collect()
}

#[test]
fn mbsync_syncs_both_ways_twice_without_duplicates_and_then_changes_nothing() {
    let d = setup();
    let s = Server::start(&d);
    deliver(&s, "carol@sender.example", ANN, &message("first", "one"));
    deliver(&s, "carol@sender.example", ANN, &message("second", "two"));
    d.wait_messages(ANN, "INBOX", 2);

    let local = d.path().join("maildir");
    std::fs::create_dir_all(&local).unwrap();
    let rc = d.write(
        "mbsyncrc",
        &format!(
            "IMAPAccount ann\nHost 127.0.0.1\nPort {port}\nUser {ANN}\nPass {PW}\nSSLType IMAPS\n\
             CertificateFile {cert}\nAuthMechs PLAIN\n\n\
             IMAPStore remote\nAccount ann\n\n\
             MaildirStore local\nPath {local}/\nInbox {local}/INBOX\nSubFolders Verbatim\n\n\
             Channel ann\nFar :remote:\nNear :local:\nPatterns *\nCreate Both\nExpunge Both\n\
             SyncState *\n",
            port = s.port("imaps"),
            cert = d.path().join("tls/cert.pem").display(),
            local = local.display(),
        ),
    );

    // First run: the server's folders and messages come down.
    mbsync(&rc);
    let files = maildir_files(&local);
    let inbox: Vec<&String> = files.keys().filter(|k| k.starts_with("INBOX/")).collect();
    assert_eq!(inbox.len(), 2, "{files:?}");
    for folder in ["Archive", "Drafts", "Sent", "Spam", "Trash"] {
        assert!(
            local.join(folder).join("cur").is_dir(),
            "{folder} created locally"
        );
    }

    // Changes on both sides: locally a new message, a \Seen flag and a new folder; on the
    // server a new delivery.
    std::fs::write(
        local.join("INBOX/new/1795000000.local1.laptop"),
        "From: ann@acme.example\r\nSubject: written offline\r\nMessage-ID: <offline@laptop>\r\n\r\nhi\r\n",
    )
    .unwrap();
    let first = local.join(inbox[0]);
    let seen_name = format!(
        "{}S",
        first
            .file_name()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches('S')
    );
    std::fs::rename(&first, local.join("INBOX/cur").join(seen_name)).unwrap();
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(local.join("Projekte").join(sub)).unwrap();
    }
    std::fs::write(
        local.join("Projekte/cur/1795000001.local2.laptop:2,F"),
        "Subject: plan\r\nMessage-ID: <plan@laptop>\r\n\r\nthe plan\r\n",
    )
    .unwrap();
    deliver(&s, "carol@sender.example", ANN, &message("third", "three"));
    d.wait_messages(ANN, "INBOX", 3);

    // Second run: both directions.
    mbsync(&rc);
    let state = server_state(&d);
    let folder = |name: &str| {
        state
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, m)| m.clone())
    };
    let inbox = folder("INBOX").unwrap();
    assert_eq!(
        inbox.len(),
        4,
        "2 + 1 delivered + 1 written offline: {inbox:?}"
    );
    assert_eq!(
        inbox
            .iter()
            .filter(|(_, f)| f.contains(&"\\Seen".to_string()))
            .count(),
        1,
        "the flag set offline reached the server: {inbox:?}"
    );
    let projekte = folder("Projekte").expect("the local folder was created on the server");
    assert_eq!(projekte.len(), 1);
    assert!(projekte[0].1.contains(&"\\Flagged".to_string()));
    let files = maildir_files(&local);
    let mut ids: Vec<&str> = files
        .values()
        .filter_map(|m| m.lines().find(|l| l.starts_with("Message-ID:")))
        .collect();
    let total = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), total, "no duplicates locally: {files:?}");
    assert_eq!(files.keys().filter(|k| k.starts_with("INBOX/")).count(), 4);

    // Third run: nothing left to do, on either side.
    mbsync(&rc);
    assert_eq!(maildir_files(&local), files, "the local side changed");
    assert_eq!(server_state(&d), state, "the server side changed");
}

/// curl with the mailbox password; returns (success, stdout).
fn curl(url: &str, extra: &[&str]) -> (bool, String) {
    let out = Command::new("curl")
        .args(["-s", "-k", "--max-time", "20", "-u"])
        .arg(format!("{ANN}:{PW}"))
        .args(extra)
        .arg(url)
        .output()
        .expect("curl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn curl_fetches_over_imap_and_pop3() {
    let d = setup();
    let s = Server::start(&d);
    deliver(
        &s,
        "carol@sender.example",
        ANN,
        &message("for curl", "fetched by curl"),
    );
    d.wait_messages(ANN, "INBOX", 1);
    let imaps = s.port("imaps");
    let (ok, list) = curl(&format!("imaps://127.0.0.1:{imaps}/"), &[]);
    assert!(
        ok && list.contains("\\Sent") && list.contains("INBOX"),
        "{list}"
    );
    let (ok, search) = curl(
        &format!("imaps://127.0.0.1:{imaps}/INBOX"),
        &["-X", "UID SEARCH SUBJECT curl"],
    );
    assert!(ok && search.contains("SEARCH 1"), "{search}");
    let (ok, body) = curl(&format!("imaps://127.0.0.1:{imaps}/INBOX;UID=1"), &[]);
    assert!(
        ok && body.contains("Subject: for curl") && body.contains("fetched by curl"),
        "{body}"
    );
    // STARTTLS on the plain port, required by the client.
    let (ok, body) = curl(
        &format!(
            "imap://127.0.0.1:{}/INBOX;UID=1;SECTION=TEXT",
            s.port("imap")
        ),
        &["--ssl-reqd"],
    );
    assert!(ok && body.trim() == "fetched by curl", "{body:?}");
    // Without TLS, curl's LOGIN is refused (LOGINDISABLED).
    let (ok, _) = curl(
        &format!("imap://127.0.0.1:{}/INBOX;UID=1", s.port("imap")),
        &[],
    );
    assert!(!ok, "plaintext login must fail");

    let pop3s = s.port("pop3s");
    let (ok, list) = curl(&format!("pop3s://127.0.0.1:{pop3s}/"), &[]);
    assert!(ok && list.trim().starts_with("1 "), "{list}");
    let (ok, body) = curl(
        &format!("pop3://127.0.0.1:{}/1", s.port("pop3")),
        &["--ssl-reqd"],
    );
    assert!(ok && body.contains("fetched by curl"), "{body}");
    assert_eq!(
        d.messages(ANN, "INBOX").len(),
        1,
        "curl's RETR deletes nothing"
    );
}

/// A raw conversation (tools/raw_client.py): the lines read per step.
pub fn raw(port: u16, mode: &str, steps: Value) -> Vec<Vec<String>> {
    serde_json::from_value(scripted(
        "raw_client.py",
        &[&port.to_string(), mode],
        &steps,
    ))
    .unwrap()
}

#[test]
fn protocol_abuse_gets_bad_no_or_bye_and_others_are_still_served() {
    let d = setup();
    let s = Server::start_opts(
        &d,
        &json!({}),
        &[
            ("POSTFACH_IMAP_MAX_LITERAL_SIZE", "2048"),
            ("POSTFACH_IMAP_MAX_LINE_LENGTH", "1024"),
            ("POSTFACH_IMAP_MAX_ERRORS", "4"),
        ],
    );
    deliver(&s, "carol@sender.example", ANN, &message("keep me", "x"));
    d.wait_messages(ANN, "INBOX", 1);
    let (imap, imaps) = (s.port("imap"), s.port("imaps"));
    let login = format!("l LOGIN {ANN} \"{PW}\"\r\n");

    // Someone sits in the middle of a literal that never completes, the whole time.
    let mut stuck = KillOnDrop(
        Command::new("python3")
            .arg(crate::support::tool("raw_client.py"))
            .args([&imaps.to_string(), "tls"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    stuck
        .0
        .stdin
        .take()
        .unwrap()
        .write_all(
            json!([
                ["line"],
                ["send", login],
                ["until", "l "],
                ["send", "a APPEND INBOX {1000}\r\n"],
                ["line"],
                ["send", "only a little"],
                ["sleep", 8]
            ])
            .to_string()
            .as_bytes(),
        )
        .unwrap();

    // Before login: malformed, unknown and out-of-state commands.
    let r = raw(
        imap,
        "plain",
        json!([
            ["line"],
            ["send", "a1 SELECT INBOX\r\n"],
            ["line"],
            ["send", "a2 FROBNICATE\r\n"],
            ["line"],
            ["send", "(((\r\n"],
            ["line"],
            ["send", login.clone()],
            ["line"],
        ]),
    );
    assert!(r[0][0].starts_with("* OK"), "{r:?}");
    assert!(r[2][0].starts_with("a1 BAD"), "{r:?}");
    assert!(r[4][0].starts_with("a2 BAD"), "{r:?}");
    assert!(r[6][0].starts_with("* BAD"), "{r:?}");
    assert!(r[8][0].starts_with("l NO [PRIVACYREQUIRED]"), "{r:?}");

    // Too many errors end the session.
    let r = raw(
        imap,
        "plain",
        json!([["line"], ["repeat", "x BOGUS\r\n", 6], ["eof"]]),
    );
    let last = &r[2];
    assert_eq!(last.last().unwrap(), "EOF");
    assert!(
        last.iter().any(|l| l.starts_with("* BYE Too many errors")),
        "{last:?}"
    );

    // Literals past the limit: a synchronising one is refused and the session goes on; a
    // non-synchronising one (its data already on the way) ends the session.
    let r = raw(
        imaps,
        "tls",
        json!([
            ["line"],
            ["send", login.clone()],
            ["until", "l "],
            ["send", "t1 APPEND INBOX {5000}\r\n"],
            ["line"],
            ["send", "t2 NOOP\r\n"],
            ["until", "t2 "],
            ["send", "t3 APPEND INBOX {5000+}\r\n"],
            ["eof"],
        ]),
    );
    assert!(r[2].last().unwrap().starts_with("l OK"), "{r:?}");
    assert!(r[4][0].starts_with("t1 NO [TOOBIG]"), "{r:?}");
    assert!(r[6].last().unwrap().starts_with("t2 OK"), "{r:?}");
    assert!(r[8][0].starts_with("t3 NO [TOOBIG]"), "{r:?}");
    assert!(r[8].iter().any(|l| l.starts_with("* BYE")), "{r:?}");
    assert_eq!(r[8].last().unwrap(), "EOF");

    // A line past the limit: BAD, BYE, closed.
    let r = raw(
        imap,
        "plain",
        json!([
            ["line"],
            ["send", format!("a LOGIN {}", "x".repeat(3000))],
            ["eof"]
        ]),
    );
    assert!(r[2][0].starts_with("* BAD Command line too long"), "{r:?}");
    assert_eq!(r[2].last().unwrap(), "EOF");

    // A LITERAL+ message sent in one piece with its announcement: its long line is message
    // data, not a command line.
    let body = format!("Subject: long line\r\n\r\n{}\r\n", "z".repeat(1500));
    let r = raw(
        imaps,
        "tls",
        json!([
            ["line"],
            ["send", login.clone()],
            ["until", "l "],
            [
                "send",
                format!("p APPEND INBOX {{{}+}}\r\n{body}\r\n", body.len())
            ],
            ["until", "p "],
        ]),
    );
    assert!(r[4].last().unwrap().starts_with("p OK [APPENDUID"), "{r:?}");

    // A literal within the limit is fine, and the one stuck client hurt nobody.
    let r = raw(
        imaps,
        "tls",
        json!([
            ["line"],
            ["send", login],
            ["until", "l "],
            ["send", "a APPEND INBOX {22}\r\n"],
            ["line"],
            ["send", "Subject: fits\r\n\r\nyes\r\n\r\n"],
            ["until", "a "],
            ["send", "b LOGOUT\r\n"],
            ["eof"],
        ]),
    );
    assert!(r[4][0].starts_with("+ "), "{r:?}");
    assert!(r[6].last().unwrap().starts_with("a OK [APPENDUID"), "{r:?}");
    assert!(r[8].iter().any(|l| l.starts_with("b OK")), "{r:?}");
    let subjects: Vec<String> = d
        .messages(ANN, "INBOX")
        .iter()
        .map(|m| m["subject"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        subjects,
        ["keep me", "long line", "fits"],
        "nothing half-written is visible"
    );
    drop(stuck);
}

/// A helper process that is killed however the test ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// LIST lines of a step as (attributes, name).
fn listed(step: &Value) -> Vec<(String, String)> {
    step[1]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .map(|l| {
            let (attrs, rest) = l.split_once(") ").unwrap();
            let name = rest.split_once(' ').unwrap().1.trim_matches('"');
            (attrs.trim_start_matches('(').to_string(), name.to_string())
        })
        .collect()
}

fn role_of(list: &[(String, String)], role: &str) -> Vec<String> {
    list.iter()
        .filter(|(a, _)| a.split_whitespace().any(|x| x == role))
        .map(|(_, n)| n.clone())
        .collect()
}

#[test]
fn special_folders_roles_and_noselect_names() {
    let d = setup();
    let s = Server::start(&d);
    let r = imap(
        &s,
        "tls",
        json!([
            login(ANN),
            ["call", "list"],
            ["cmd", "LIST", "(SPECIAL-USE)", "\"\"", "*"],
            ["cmd", "CREATE", "Belege", "(USE (\\Archive))"],
            ["call", "list"],
            ["call", "create", "a/b/c"],
            ["call", "delete", "a/b"],
            ["call", "list", "\"\"", "a*"],
            ["call", "delete", "a/b"],
            ["call", "select", "a/b"],
            ["call", "delete", "a/b/c"],
            ["call", "list", "\"\"", "a*"],
            ["call", "delete", "a/b"],
            ["call", "list", "\"\"", "a*"],
            ["call", "rename", "Belege", "\"Belege 2026\""],
            ["call", "unsubscribe", "Spam"],
            ["call", "lsub"],
            ["logout"]
        ]),
    );
    // P5: every address starts with its special folders, flagged with SPECIAL-USE.
    let list = listed(&r[2]);
    let names: Vec<&str> = list.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(
        names,
        ["INBOX", "Archive", "Drafts", "Sent", "Spam", "Trash"]
    );
    for (role, folder) in [
        ("\\Archive", "Archive"),
        ("\\Drafts", "Drafts"),
        ("\\Sent", "Sent"),
        ("\\Junk", "Spam"),
        ("\\Trash", "Trash"),
    ] {
        assert_eq!(role_of(&list, role), [folder]);
    }
    assert_eq!(
        untagged(&r[3], "LIST").len(),
        5,
        "only special folders: {}",
        r[3]
    );
    // CREATE-SPECIAL-USE moves the role.
    assert_eq!(status(&r[4]), "OK", "{}", r[4]);
    assert_eq!(role_of(&listed(&r[5]), "\\Archive"), ["Belege"]);
    // RFC 9051 §6.3.4: a/b with an inferior becomes \Noselect, stays after the inferior
    // goes, and can be deleted then.
    assert_eq!(status(&r[7]), "OK");
    let ab = listed(&r[8]);
    assert!(
        ab.iter()
            .any(|(a, n)| n == "a/b" && a.contains("\\Noselect")),
        "{ab:?}"
    );
    assert_eq!(status(&r[9]), "NO", "not while a/b/c exists: {}", r[9]);
    assert!(all_text(&r[9]).contains("HASCHILDREN"), "{}", r[9]);
    assert_eq!(
        status(&r[10]),
        "NO",
        "a \\Noselect name cannot be selected: {}",
        r[10]
    );
    let ab = listed(&r[12]);
    assert!(
        ab.iter()
            .any(|(a, n)| n == "a/b" && a.contains("\\Noselect")),
        "{ab:?}"
    );
    assert_eq!(status(&r[13]), "OK", "{}", r[13]);
    let ab = listed(&r[14]);
    assert!(!ab.iter().any(|(_, n)| n == "a/b"), "{ab:?}");
    assert_eq!(status(&r[15]), "OK", "{}", r[15]);
    let lsub = listed(&r[17]);
    assert!(!lsub.iter().any(|(_, n)| n == "Spam"), "{lsub:?}");
    // CREATE does not subscribe (RFC 9051 §6.3.9): the renamed Belege was never subscribed.
    assert!(!lsub.iter().any(|(_, n)| n == "Belege 2026"), "{lsub:?}");
    assert!(lsub.iter().any(|(_, n)| n == "INBOX"), "{lsub:?}");

    // The operator (CLI) and a manager (API) can move roles too.
    let out = d.ok(&["mailbox", "role", ANN, "Archive", "archive"]);
    assert!(
        out.contains("Archive") && out.contains("\\Archive"),
        "{out}"
    );
    let api = crate::api::Client::login(&s, &d.admin_login, &d.admin_password);
    let (status_code, body) = api.put(
        &format!("/api/v1/addresses/{ANN}/folders/role"),
        json!({"folder": "Belege 2026", "role": "sent"}),
    );
    assert_eq!(status_code, 200, "{body}");
    let (_, roles) = api.get(&format!("/api/v1/addresses/{ANN}/folders"));
    let sent: Vec<&Value> = roles
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["role"] == "\\Sent")
        .map(|f| &f["folder"])
        .collect();
    assert_eq!(sent, [&json!("Belege 2026")]);
    let (code, body) = api.put(
        &format!("/api/v1/addresses/{ANN}/folders/role"),
        json!({"folder": "Nowhere", "role": "sent"}),
    );
    assert_eq!(code, 404, "{body}");
    let e = d.fails(&["mailbox", "role", ANN, "Archive", "inbox"]);
    assert!(e.contains("role"), "{e}");

    // M11: with folder changes forbidden, the user cannot move roles over IMAP.
    d.ok(&["address", "set", ANN, "--allow-folder-change", "off"]);
    let r = imap(
        &s,
        "tls",
        json!([
            login(ANN),
            ["cmd", "CREATE", "Mine", "(USE (\\Drafts))"],
            ["call", "list"],
            // Deleting a special folder would take its role away: refused as well.
            ["cmd", "DELETE", "Drafts"],
            // A folder without a role is the user's own business.
            ["cmd", "CREATE", "Plain"],
            ["cmd", "DELETE", "Plain"],
            ["call", "list"]
        ]),
    );
    assert_eq!(status(&r[2]), "NO");
    assert!(all_text(&r[2]).contains("NOPERM"), "{}", r[2]);
    assert!(
        all_text(&r[2]).contains("does not allow changing the special folders"),
        "{}",
        r[2]
    );
    assert_eq!(role_of(&listed(&r[3]), "\\Drafts"), ["Drafts"]);
    assert_eq!(status(&r[4]), "NO");
    assert!(all_text(&r[4]).contains("NOPERM"), "{}", r[4]);
    assert_eq!((status(&r[5]), status(&r[6])), ("OK", "OK"));
    assert_eq!(role_of(&listed(&r[7]), "\\Drafts"), ["Drafts"]);
}

#[test]
fn maintenance_quota_and_throttling_of_mailbox_logins() {
    let d = setup();
    d.ok(&[
        "address",
        "add",
        "tiny@acme.example",
        "--password",
        PW,
        "--storage-quota",
        "1",
    ]);
    let s = Server::start(&d);

    // M9: in maintenance, IMAP and POP3 logins are refused with a clear message, while
    // mail is still received.
    d.ok(&["service", "set", "acme.example", "--maintenance", "on"]);
    deliver(
        &s,
        "carol@sender.example",
        ANN,
        &message("during maintenance", "x"),
    );
    d.wait_messages(ANN, "INBOX", 1);
    let r = imap(&s, "tls", json!([login(ANN)]));
    assert_eq!(status(&r[1]), "ERROR");
    let text = all_text(&r[1]);
    assert!(
        text.contains("UNAVAILABLE") && text.contains("maintenance"),
        "{text}"
    );
    let p = raw(
        s.port("pop3s"),
        "tls",
        json!([
            ["line"],
            ["send", format!("USER {ANN}\r\nPASS {PW}\r\n")],
            ["line"],
            ["line"]
        ]),
    );
    assert!(
        p[3][0].starts_with("-ERR") && p[3][0].contains("maintenance"),
        "{p:?}"
    );
    d.ok(&["service", "set", "acme.example", "--maintenance", "off"]);
    let r = imap(&s, "tls", json!([login(ANN)]));
    assert_eq!(status(&r[1]), "OK", "{}", r[1]);

    // QUOTA reports the storage; APPEND and COPY past it are refused with [OVERQUOTA].
    let big = format!("Subject: big\r\n\r\n{}\r\n", "y".repeat(600 * 1024));
    let r = imap(
        &s,
        "tls",
        json!([
            ["login", "tiny@acme.example", PW],
            ["call", "getquotaroot", "INBOX"],
            ["append", "INBOX", "", null, big],
            ["call", "getquotaroot", "INBOX"],
            ["append", "INBOX", "", null, big],
            ["select", "INBOX"],
            ["uid", "COPY", "1", "Archive"],
            ["uid", "MOVE", "1", "Archive"],
        ]),
    );
    assert!(all_text(&r[2]).contains("(STORAGE 0 1024)"), "{}", r[2]);
    assert_eq!(status(&r[3]), "OK", "{}", r[3]);
    assert!(all_text(&r[4]).contains("(STORAGE 601 1024)"), "{}", r[4]);
    assert_eq!(status(&r[5]), "NO");
    assert!(all_text(&r[5]).contains("OVERQUOTA"), "{}", r[5]);
    assert_eq!(status(&r[7]), "NO");
    assert!(all_text(&r[7]).contains("OVERQUOTA"), "{}", r[7]);
    assert_eq!(status(&r[8]), "OK", "moving takes no more room: {}", r[8]);

    // S4: repeated failures are throttled, even when the right password comes next.
    let mut steps: Vec<Value> = (0..5)
        .map(|_| json!(["login", ANN, "wrong-password"]))
        .collect();
    steps.push(login(ANN));
    let r = imap(&s, "tls", json!(steps));
    for step in &r[1..6] {
        assert!(all_text(step).contains("AUTHENTICATIONFAILED"), "{step}");
    }
    let last = all_text(&r[6]);
    assert!(last.contains("Too many failed logins"), "{last}");
}

#[test]
fn extensions_condstore_qresync_rev2_and_international_names() {
    let d = setup();
    let s = Server::start(&d);
    for i in 0..3 {
        deliver(
            &s,
            "carol@sender.example",
            ANN,
            &message(&format!("ext {i}"), "x"),
        );
    }
    d.wait_messages(ANN, "INBOX", 3);
    let r = imap(
        &s,
        "tls",
        json!([
            ["authenticate_plain", ANN, PW],
            ["cmd", "ID", "(\"name\" \"imaplib\")"],
            ["cmd", "NAMESPACE"],
            ["cmd", "CREATE", "Entw&APw-rfe"],
            ["cmd", "SELECT", "INBOX", "(CONDSTORE)"],
            ["uid", "FETCH", "1:*", "(FLAGS)", "(CHANGEDSINCE 1)"],
            ["uid", "STORE", "1", "+FLAGS", "(\\Seen)"],
            [
                "uid",
                "STORE",
                "1:2",
                "(UNCHANGEDSINCE 1)",
                "+FLAGS",
                "(\\Flagged)"
            ],
            [
                "cmd",
                "LIST",
                "\"\"",
                "%",
                "RETURN",
                "(STATUS (MESSAGES UNSEEN HIGHESTMODSEQ SIZE))"
            ],
            ["uid", "STORE", "3", "+FLAGS", "(\\Deleted)"],
            ["cmd", "UNSELECT"],
            ["cmd", "EXPUNGE"],
            ["select", "INBOX"],
            ["call", "expunge"],
            ["logout"]
        ]),
    );
    assert_eq!(status(&r[1]), "OK", "AUTHENTICATE PLAIN: {}", r[1]);
    assert!(all_text(&r[2]).contains("Postfach"), "{}", r[2]);
    assert!(
        all_text(&r[3]).contains("((\"\" \"/\")) NIL NIL"),
        "{}",
        r[3]
    );
    assert_eq!(status(&r[4]), "OK", "modified UTF-7 name: {}", r[4]);
    let select = all_text(&r[5]);
    assert!(select.contains("HIGHESTMODSEQ"), "{select}");
    let changed = all_text(&r[6]);
    assert!(changed.contains("MODSEQ ("), "{changed}");
    assert!(
        all_text(&r[7]).contains("MODSEQ"),
        "CONDSTORE STORE reports MODSEQ: {}",
        r[7]
    );
    // Every message changed after MODSEQ 1 (delivery gave each its own): none is stored.
    assert_eq!(untagged(&r[8], "MODIFIED"), ["1:2"], "{}", r[8]);
    let status_lines = all_text(&r[9]);
    assert!(
        status_lines.contains("INBOX (MESSAGES 3 UNSEEN 2 HIGHESTMODSEQ"),
        "{status_lines}"
    );
    assert!(status_lines.contains("SIZE "), "{status_lines}");
    assert_eq!(status(&r[11]), "OK", "UNSELECT: {}", r[11]);
    assert_eq!(
        status(&r[12]),
        "ERROR",
        "EXPUNGE needs a selected mailbox: {}",
        r[12]
    );
    let uidvalidity = untagged(&r[13], "UIDVALIDITY")[0].to_string();

    // A client that knows MODSEQ 1 of this UIDVALIDITY comes back with QRESYNC.
    let r = imap(
        &s,
        "tls",
        json!([
            login(ANN),
            ["cmd", "ENABLE", "QRESYNC", "IMAP4rev2"],
            [
                "cmd",
                "SELECT",
                "INBOX",
                format!("(QRESYNC ({uidvalidity} 1))")
            ],
            ["cmd", "SEARCH", "ALL"],
            ["call", "list"],
            [
                "uid",
                "FETCH",
                "1:*",
                "(FLAGS)",
                "(CHANGEDSINCE 1 VANISHED)"
            ],
            ["uid", "SEARCH", "RETURN", "(MIN MAX COUNT)", "ALL"],
            ["cmd", "SEARCH", "RETURN", "(SAVE)", "ALL"],
            ["append", "Drafts", "", null, "no header, no blank line"],
            ["examine", "Drafts"],
            [
                "call",
                "fetch",
                "1",
                "(ENVELOPE BODYSTRUCTURE BODY[] BODY[TEXT])"
            ],
            ["logout"]
        ]),
    );
    assert_eq!(
        untagged(&r[2], "ENABLED"),
        ["QRESYNC IMAP4rev2"],
        "{}",
        r[2]
    );
    let select = all_text(&r[3]);
    assert!(
        select.contains("VANISHED\n(EARLIER) 3"),
        "QRESYNC reports the expunge: {select}"
    );
    assert!(
        !select.contains("RECENT"),
        "no \\Recent in IMAP4rev2: {select}"
    );
    let esearch = all_text(&r[4]);
    assert!(
        esearch.contains("ALL 1:2"),
        "IMAP4rev2 answers SEARCH with ESEARCH: {esearch}"
    );
    let names = all_text(&r[5]);
    // In UTF-8 (imap-codec sends non-ASCII names as literals), no longer modified UTF-7.
    assert!(
        names.contains("Entwürfe") && !names.contains("&APw-"),
        "{names}"
    );
    let vanished = all_text(&r[6]);
    assert!(vanished.contains("(EARLIER) 3"), "{vanished}");
    let esearch = all_text(&r[7]);
    assert!(
        esearch.contains("UID MIN 1 MAX 2 COUNT 2"),
        "RFC 4731 RETURN: {esearch}"
    );
    assert_eq!(status(&r[8]), "NO", "SAVE is refused clearly: {}", r[8]);
    assert_eq!(status(&r[9]), "OK", "{}", r[9]);
    assert!(
        all_text(&r[10]).contains("[CLOSED]"),
        "RFC 9051 §6.3.2: {}",
        r[10]
    );
    // A message without any header still answers every item.
    let odd = all_text(&r[11]);
    for item in ["ENVELOPE (", "BODYSTRUCTURE (", "BODY[] {", "BODY[TEXT] {"] {
        assert!(odd.contains(item), "{item} missing: {odd}");
    }
    assert!(odd.contains("no header, no blank line"), "{odd}");
}

/// The first line the server sends on a fresh plain connection.
fn first_line(port: u16) -> (std::net::TcpStream, String) {
    use std::io::BufRead;
    let c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(c.try_clone().unwrap())
        .read_line(&mut line)
        .unwrap();
    (c, line)
}

#[test]
fn connections_per_ip_are_limited_for_imap_and_pop3() {
    let d = setup();
    let s = Server::start_opts(
        &d,
        &json!({}),
        &[
            ("POSTFACH_IMAP_MAX_CONNECTIONS_PER_IP", "2"),
            ("POSTFACH_POP3_MAX_CONNECTIONS_PER_IP", "1"),
        ],
    );
    let (imap, pop3) = (s.port("imap"), s.port("pop3"));
    let (a, line) = first_line(imap);
    assert!(line.starts_with("* OK"), "{line}");
    let (_b, line) = first_line(imap);
    assert!(line.starts_with("* OK"), "{line}");
    let (_, line) = first_line(imap);
    assert!(line.starts_with("* BYE Too many connections"), "{line}");
    drop(a);
    let ok = crate::support::wait_until(std::time::Duration::from_secs(5), || {
        first_line(imap).1.starts_with("* OK")
    });
    assert!(ok, "a closed connection frees its slot");

    let (_p, line) = first_line(pop3);
    assert!(line.starts_with("+OK"), "{line}");
    let (_, line) = first_line(pop3);
    assert!(
        line.starts_with("-ERR [SYS/TEMP] Too many connections"),
        "{line}"
    );
}

#[test]
fn idle_connections_that_never_log_in_are_closed() {
    let d = setup();
    let s = Server::start_opts(
        &d,
        &json!({}),
        &[
            ("POSTFACH_IMAP_LOGIN_TIMEOUT_SECONDS", "1"),
            ("POSTFACH_POP3_LOGIN_TIMEOUT_SECONDS", "1"),
        ],
    );
    let started = std::time::Instant::now();
    let r = raw(s.port("imap"), "plain", json!([["line"], ["eof"]]));
    assert!(r[1][0].starts_with("* BYE Autologout"), "{r:?}");
    assert_eq!(r[1].last().unwrap(), "EOF");
    let r = raw(s.port("pop3"), "plain", json!([["line"], ["eof"]]));
    assert!(r[1][0].starts_with("-ERR Autologout"), "{r:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(8));
    // A client that logs in gets the full autologout time.
    let r = imap(
        &s,
        "tls",
        json!([login(ANN), ["sleep", 1.5], ["cmd", "NOOP"]]),
    );
    assert_eq!(status(&r[3]), "OK", "{}", r[3]);
}

#[test]
fn uidvalidity_is_stable_and_uids_are_not_reused_across_restarts() {
    let d = setup();
    let s = Server::start(&d);
    deliver(&s, "carol@sender.example", ANN, &message("one", "x"));
    deliver(&s, "carol@sender.example", ANN, &message("two", "x"));
    d.wait_messages(ANN, "INBOX", 2);
    let r = imap(
        &s,
        "tls",
        json!([
            login(ANN),
            ["call", "status", "INBOX", "(UIDVALIDITY UIDNEXT)"],
            ["select", "INBOX"],
            ["uid", "STORE", "2", "+FLAGS", "(\\Deleted)"],
            ["call", "expunge"],
        ]),
    );
    let before = all_text(&r[2]);
    assert!(before.contains("UIDNEXT 3"), "{before}");
    assert!(s.stop(), "clean stop");

    let s = Server::start(&d);
    deliver(&s, "carol@sender.example", ANN, &message("three", "x"));
    d.wait_messages(ANN, "INBOX", 2);
    let r = imap(
        &s,
        "tls",
        json!([
            login(ANN),
            ["call", "status", "INBOX", "(UIDVALIDITY UIDNEXT)"],
            ["select", "INBOX"],
            ["uid", "SEARCH", "ALL"]
        ]),
    );
    let after = all_text(&r[2]);
    let uidvalidity = |t: &str| {
        t.split("UIDVALIDITY ")
            .nth(1)
            .and_then(|x| x.split([' ', ')']).next())
            .unwrap()
            .to_string()
    };
    assert_eq!(uidvalidity(&after), uidvalidity(&before));
    assert!(after.contains("UIDNEXT 4"), "{after}");
    assert_eq!(
        r[4][1],
        json!(["1 3"]),
        "UID 2 is gone for good; the new message got 3"
    );
}

/// `plaintext_auth_on_loopback` (off by default, see the test above for the refusal): a
/// webmail or proxy on the same host — or bench/run — may log in without TLS over loopback.
#[test]
fn plaintext_login_over_loopback_when_the_operator_allows_it() {
    let d = setup();
    let s = Server::start_opts(
        &d,
        &json!({}),
        &[
            ("POSTFACH_IMAP_PLAINTEXT_AUTH_ON_LOOPBACK", "true"),
            ("POSTFACH_POP3_PLAINTEXT_AUTH_ON_LOOPBACK", "true"),
        ],
    );
    deliver(
        &s,
        "carol@sender.example",
        ANN,
        &message("plain", "fetched without TLS"),
    );
    d.wait_messages(ANN, "INBOX", 1);
    let (ok, body) = curl(
        &format!("imap://127.0.0.1:{}/INBOX;UID=1", s.port("imap")),
        &[],
    );
    assert!(ok && body.contains("fetched without TLS"), "{body}");
    let (ok, body) = curl(&format!("pop3://127.0.0.1:{}/1", s.port("pop3")), &[]);
    assert!(ok && body.contains("fetched without TLS"), "{body}");
    // The greeting still offers STARTTLS next to AUTH=PLAIN.
    let r = python(
        "import imaplib,sys; c=imaplib.IMAP4('127.0.0.1', int(sys.argv[1])); print(' '.join(c.capabilities))",
        &[&s.port("imap").to_string()],
    );
    assert!(
        r.stdout.contains("STARTTLS") && r.stdout.contains("AUTH=PLAIN"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("LOGINDISABLED"), "{}", r.stdout);
}

/// ENVELOPEs come from a cache shared by all sessions after the first FETCH: the
/// answer is the same as when built from the message, and a session that enabled
/// UTF8=ACCEPT (RFC 6855: display names in UTF-8) does not hand its rendering to one that
/// did not (encoded words, RFC 2047).
#[test]
fn cached_envelopes_answer_the_same_and_keep_utf8_apart() {
    let d = setup();
    let s = Server::start(&d);
    deliver(
        &s,
        "j@sender.example",
        ANN,
        "From: =?utf-8?q?J=C3=BCrgen?= <j@sender.example>\r\nTo: ann@acme.example\r\nSubject: Umlaut\r\nMessage-ID: <u@sender.example>\r\n\r\nx\r\n",
    );
    deliver(&s, "carol@sender.example", ANN, &message("plain one", "y"));
    d.wait_messages(ANN, "INBOX", 2);
    let utf8 = imap(
        &s,
        "tls",
        json!([
            login(ANN),
            ["cmd", "ENABLE", "UTF8=ACCEPT"],
            ["select", "INBOX"],
            ["uid", "FETCH", "1:*", "(ENVELOPE)"],
            ["logout"]
        ]),
    );
    let utf8_env = all_text(&utf8[4]);
    assert!(utf8_env.contains("Jürgen"), "{utf8_env}");
    let plain = imap(
        &s,
        "tls",
        json!([
            login(ANN),
            ["select", "INBOX"],
            ["uid", "FETCH", "1:*", "(ENVELOPE)"],
            ["uid", "FETCH", "1:*", "(ENVELOPE)"],
            [
                "uid",
                "FETCH",
                "2,1",
                "(FLAGS ENVELOPE RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT)])"
            ],
            ["logout"]
        ]),
    );
    let (first, again, mixed) = (
        all_text(&plain[3]),
        all_text(&plain[4]),
        all_text(&plain[5]),
    );
    assert!(
        !first.contains("Jürgen") && first.contains("=?utf-8?") && first.contains("\"Umlaut\""),
        "{first}"
    );
    assert!(
        first.contains("\"plain one\"") && first.contains("<plain.one@sender.example>"),
        "{first}"
    );
    assert_eq!(first, again, "the cached envelopes are the built ones");
    assert!(
        mixed.contains("\"Umlaut\"") && mixed.contains("Subject: plain one"),
        "{mixed}"
    );
}

/// Performance: a small APPENDed message is kept in the store with its row (`inline_blobs`,
/// written in the shared transaction), a large one as a file; both read back byte for byte
/// over IMAP and through the CLI, both count against the quota, and the store check passes.
#[test]
fn appended_small_message_is_kept_inline_large_one_as_file() {
    let d = setup();
    let s = Server::start(&d);
    let small = "Subject: small\r\nMessage-ID: <small@acme.example>\r\n\r\nshort body\r\n";
    let large = format!(
        "Subject: large\r\nMessage-ID: <large@acme.example>\r\n\r\n{}",
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n".repeat(1100)
    );
    assert!(large.len() > 64 * 1024);
    let r = imap(
        &s,
        "tls",
        json!([
            login(ANN),
            ["append", "INBOX", "(\\Flagged)", null, small],
            ["append", "INBOX", "", null, large],
            ["call", "getquotaroot", "INBOX"],
            ["select", "INBOX"],
            ["uid", "FETCH", "1", "(FLAGS RFC822.SIZE BODY.PEEK[])"],
            ["uid", "FETCH", "2", "(RFC822.SIZE BODY.PEEK[])"],
            ["logout"]
        ]),
    );
    for step in &r[2..4] {
        assert!(all_text(step).contains("APPENDUID"), "{step}");
    }
    let kib = (small.len() + large.len()).div_ceil(1024);
    assert!(
        all_text(&r[4]).contains(&format!("(STORAGE {kib} ")),
        "{}",
        r[4]
    );
    let (first, second) = (all_text(&r[6]), all_text(&r[7]));
    assert!(
        first.contains(small) && first.contains("\\Flagged"),
        "{first}"
    );
    assert!(
        first.contains(&format!("RFC822.SIZE {}", small.len())),
        "{first}"
    );
    assert!(
        second.contains(&large),
        "the large message reads back whole"
    );
    assert!(
        second.contains(&format!("RFC822.SIZE {}", large.len())),
        "{second}"
    );
    assert!(d.message(ANN, 1).contains("short body"));
    drop(s);
    assert_eq!(d.blob_files().len(), 1, "only the large body is a file");
    let inline = python(
        "import sqlite3,sys\n\
         db = sqlite3.connect(sys.argv[1])\n\
         print(db.execute('SELECT count(*) FROM inline_blobs').fetchone()[0])\n",
        &[d.path().join("postfach.sqlite3").to_str().unwrap()],
    );
    assert_eq!(inline.stdout.trim(), "1", "the small body is kept inline");
    let check = d.ok(&["store", "check"]);
    assert!(check.contains("The store is consistent."), "{check}");
}

/// RFC 9051 §7.3.5 / RFC 3501 §7.2.6: FLAGS (and PERMANENTFLAGS) list the mailbox's keywords
/// at SELECT, and a keyword new to the mailbox is announced by an untagged FLAGS before the
/// FETCH that shows it — also when STORE was .SILENT. RFC 3501 §6.3.2: EXAMINE reports the
/// \Recent messages as STATUS counts them, without taking the flag away.
#[test]
fn keywords_are_announced_and_examine_counts_recent() {
    let d = Data::sqlite();
    setup_on(&d);
    let s = Server::start(&d);
    for subject in ["one", "two"] {
        deliver(&s, "x@remote.example", ANN, &message(subject, "body"));
    }
    d.wait_messages(ANN, "INBOX", 2);
    let r = imap(
        &s,
        "tls",
        json!([
            login(ANN),
            ["call", "status", "INBOX", "(RECENT)"],
            ["examine", "INBOX"],
            ["call", "status", "INBOX", "(RECENT)"],
            ["select", "INBOX"],
            ["call", "store", "1", "+FLAGS", "($Work)"],
            ["call", "store", "2", "+FLAGS.SILENT", "(Project-X)"],
            ["call", "store", "2", "+FLAGS", "($Work)"],
            ["logout"]
        ]),
    );
    let step = |i: usize| &r[i + 1];
    assert!(all_text(step(1)).contains("RECENT 2"), "{}", step(1));
    assert_eq!(untagged(step(2), "RECENT"), ["2"], "{}", step(2));
    assert!(
        all_text(step(3)).contains("RECENT 2"),
        "EXAMINE claims nothing: {}",
        step(3)
    );
    assert_eq!(untagged(step(4), "RECENT"), ["2"]);
    let flags = |i: usize| untagged(step(i), "FLAGS").join(" ");
    assert!(
        flags(5).contains("$Work"),
        "announced before the FETCH: {}",
        step(5)
    );
    assert!(
        untagged(step(5), "PERMANENTFLAGS")
            .join(" ")
            .contains("$Work"),
        "{}",
        step(5)
    );
    assert!(
        flags(6).contains("Project-X"),
        "also after .SILENT: {}",
        step(6)
    );
    assert!(
        flags(7).is_empty(),
        "a known keyword is not announced again: {}",
        step(7)
    );
    // The next SELECT lists the mailbox's keywords.
    let r = imap(
        &s,
        "tls",
        json!([login(ANN), ["select", "INBOX"], ["logout"]]),
    );
    let at_select = untagged(&r[2], "FLAGS").join(" ");
    assert!(
        at_select.contains("$Work") && at_select.contains("Project-X"),
        "{at_select}"
    );
}

/// RFC 9051 §6.4.4: SENTON/SENTBEFORE/SENTSINCE compare the date of the Date: field as
/// written, disregarding its time and zone (`00:30 +0200` on the 25th is the 25th, though it
/// is the 24th in UTC), from the stored summary and from the parsed message alike; HEADER
/// looks at every field of that name, not only the last.
#[test]
fn search_sent_dates_as_written_and_every_header_field() {
    let d = Data::sqlite();
    setup_on(&d);
    let s = Server::start(&d);
    let msg = "From: a@remote.example\r\nTo: ann@acme.example\r\nSubject: dated\r\n\
               Date: Sun, 25 Mar 2007 00:30:00 +0200\r\nX-Extra: hello there\r\n\
               X-Extra: second\r\n\r\nbody text\r\n";
    let r = imap(
        &s,
        "tls",
        json!([
            login(ANN),
            ["append", "INBOX", "", null, msg],
            ["select", "INBOX"],
            ["call", "search", null, "SENTON", "25-Mar-2007"],
            ["call", "search", null, "SENTON", "24-Mar-2007"],
            [
                "call",
                "search",
                null,
                "SENTON",
                "25-Mar-2007",
                "BODY",
                "body"
            ],
            ["call", "search", null, "SENTBEFORE", "25-Mar-2007"],
            ["call", "search", null, "SENTSINCE", "25-Mar-2007"],
            ["call", "search", null, "HEADER", "X-Extra", "hello"],
            ["call", "search", null, "HEADER", "X-Extra", "second"],
            ["call", "search", null, "HEADER", "x-extra", "nowhere"],
            ["logout"]
        ]),
    );
    let hits = |i: usize| r[i + 1][1][0].as_str().unwrap_or("").to_string();
    assert_eq!(hits(3), "1", "{}", r[4]);
    assert_eq!(hits(4), "", "{}", r[5]);
    assert_eq!(hits(5), "1", "parsed path: {}", r[6]);
    assert_eq!(hits(6), "");
    assert_eq!(hits(7), "1");
    assert_eq!(hits(8), "1", "the first X-Extra field: {}", r[9]);
    assert_eq!(hits(9), "1");
    assert_eq!(hits(10), "");
}

/// RFC 3516 §4.3 (and RFC 9051 §7.5.2 for BODY): a partial BINARY fetch answers with its
/// origin, `BINARY[1]<0>`, and the bytes asked for.
#[test]
fn partial_binary_fetch_names_its_origin() {
    let d = Data::sqlite();
    setup_on(&d);
    let s = Server::start(&d);
    let msg = "From: a@remote.example\r\nTo: ann@acme.example\r\nSubject: parts\r\n\
               MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
               --b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n\
               SGVsbG8gd29ybGQ=\r\n--b--\r\n";
    let r = imap(
        &s,
        "tls",
        json!([
            login(ANN),
            ["append", "INBOX", "", null, msg],
            ["select", "INBOX"],
            ["call", "fetch", "1", "(BINARY.PEEK[1]<0.5>)"],
            [
                "call",
                "fetch",
                "1",
                "(BINARY.PEEK[1]<6.100> BINARY.PEEK[1])"
            ],
            ["logout"]
        ]),
    );
    let text = all_text(&r[4]);
    assert!(
        text.contains("BINARY[1]<0> ~{5}") && text.contains("Hello"),
        "{text}"
    );
    assert!(!text.contains("Hello "), "five bytes: {text}");
    let text = all_text(&r[5]);
    assert!(
        text.contains("BINARY[1]<6> ~{5}") && text.contains("world"),
        "{text}"
    );
    assert!(
        text.contains("BINARY[1] ~{11}"),
        "a whole part has no origin: {text}"
    );
}

/// RFC 7162 §3.1: a CONDSTORE-enabling FETCH on a mailbox selected without CONDSTORE sends
/// `OK [HIGHESTMODSEQ]` first; §3.1.5: `SEARCH RETURN (MIN) MODSEQ` gives the MODSEQ of the
/// message it returns, not the highest of all matches.
#[test]
fn condstore_enabled_late_and_esearch_min_modseq() {
    let d = Data::sqlite();
    setup_on(&d);
    let s = Server::start(&d);
    for subject in ["one", "two", "three"] {
        deliver(&s, "x@remote.example", ANN, &message(subject, "body"));
    }
    d.wait_messages(ANN, "INBOX", 3);
    let r = imap(
        &s,
        "tls",
        json!([
            login(ANN),
            ["select", "INBOX"],
            ["call", "store", "3", "+FLAGS", "(\\Flagged)"],
            ["call", "fetch", "1:3", "(MODSEQ)"],
            ["call", "search", null, "RETURN", "(MIN)", "MODSEQ", "1"],
            ["call", "search", null, "RETURN", "(MAX)", "MODSEQ", "1"],
            ["logout"]
        ]),
    );
    let fetched = all_text(&r[4]);
    assert!(fetched.contains("HIGHESTMODSEQ"), "{fetched}");
    let modseq_of = |n: usize| -> String {
        let text = fetched.clone();
        let at = text
            .find(&format!("{n} (MODSEQ ("))
            .unwrap_or_else(|| panic!("{text}"));
        text[at..]
            .split("MODSEQ (")
            .nth(1)
            .unwrap()
            .split(')')
            .next()
            .unwrap()
            .to_string()
    };
    let min = all_text(&r[5]);
    assert!(
        min.contains("MIN 1") && min.contains(&format!("MODSEQ {}", modseq_of(1))),
        "{min} / {fetched}"
    );
    let max = all_text(&r[6]);
    assert!(
        max.contains("MAX 3") && max.contains(&format!("MODSEQ {}", modseq_of(3))),
        "{max}"
    );
    assert_ne!(modseq_of(1), modseq_of(3));
}

/// RFC 5258 §3: RECURSIVEMATCH alone and unknown selection or return options are BAD; RFC
/// 3501 §6.3.8: the pattern is appended to the reference, so `LIST "Archive" "*"` names
/// Archive itself and what lies below it; a name that is not modified UTF-7 gets NO.
#[test]
fn list_options_and_references() {
    let d = Data::sqlite();
    setup_on(&d);
    let s = Server::start(&d);
    let r = imap(
        &s,
        "tls",
        json!([
            login(ANN),
            ["call", "create", "Archive"],
            ["call", "create", "Archive/2026"],
            ["call", "create", "Archives"],
            ["cmd", "LIST", "(RECURSIVEMATCH)", "\"\"", "\"*\""],
            ["cmd", "LIST", "(NOSUCHOPTION)", "\"\"", "\"*\""],
            ["cmd", "LIST", "\"\"", "\"*\"", "RETURN", "(NOSUCHRETURN)"],
            [
                "cmd",
                "LIST",
                "(SUBSCRIBED RECURSIVEMATCH)",
                "\"\"",
                "\"*\""
            ],
            ["call", "list", "Archive", "*"],
            ["call", "list", "Archive/", "%"],
            ["select", "a&b"],
            ["logout"]
        ]),
    );
    let step = |i: usize| &r[i + 1];
    for i in 4..=6 {
        assert_eq!(step(i)[0], "ERROR", "{}", step(i));
        assert!(
            all_text(step(i)).contains("BAD") || all_text(step(i)).contains("option"),
            "{}",
            step(i)
        );
    }
    assert_eq!(step(7)[0], "OK", "{}", step(7));
    let names = |i: usize| -> Vec<String> {
        all_text(step(i))
            .lines()
            .filter_map(|l| {
                l.rsplit_once("\"/\" ")
                    .map(|(_, n)| n.trim_matches('"').to_string())
            })
            .collect()
    };
    assert_eq!(
        names(8),
        ["Archive", "Archive/2026", "Archives"],
        "{}",
        step(8)
    );
    assert_eq!(names(9), ["Archive/2026"], "{}", step(9));
    // Not valid modified UTF-7: no such mailbox (NO), not a syntax error (BAD).
    assert_eq!(step(10)[0], "NO", "{}", step(10));
}

/// RFC 9051 §6.3.9 (RFC 3501 §6.3.6): subscriptions are names of their own. CREATE does not
/// subscribe, DELETE does not unsubscribe; a subscribed name whose mailbox is gone is listed
/// `\NonExistent` by LIST (SUBSCRIBED) and stays until UNSUBSCRIBE; RENAME takes the
/// subscription along. The default folders are subscribed from the start.
#[test]
fn subscriptions_are_independent_of_mailboxes() {
    let d = Data::sqlite();
    setup_on(&d);
    let s = Server::start(&d);
    let r = imap(
        &s,
        "tls",
        json!([
            login(ANN),
            ["call", "create", "Projects"],
            ["call", "create", "Old"],
            ["call", "subscribe", "Old"],
            ["call", "create", "Moving"],
            ["call", "subscribe", "Moving"],
            ["call", "rename", "Moving", "Moved"],
            ["call", "delete", "Old"],
            ["cmd", "LIST", "(SUBSCRIBED)", "\"\"", "\"*\""],
            ["call", "lsub", "\"\"", "*"],
            ["call", "unsubscribe", "Old"],
            ["cmd", "LIST", "(SUBSCRIBED)", "\"\"", "\"*\""],
            ["logout"]
        ]),
    );
    let step = |i: usize| &r[i + 1];
    let lines = |i: usize| -> Vec<String> {
        all_text(step(i))
            .lines()
            .filter(|l| l.contains("\"/\""))
            .map(str::to_string)
            .collect()
    };
    let named = |i: usize, n: &str| -> Option<String> {
        lines(i).into_iter().find(|l| {
            l.rsplit_once("\"/\" ")
                .is_some_and(|(_, x)| x.trim_matches('"') == n)
        })
    };
    assert!(
        named(8, "Projects").is_none(),
        "CREATE does not subscribe: {:?}",
        lines(8)
    );
    let old = named(8, "Old").unwrap_or_else(|| panic!("{:?}", lines(8)));
    assert!(old.contains("\\NonExistent"), "{old}");
    assert!(
        named(8, "Moved").is_some() && named(8, "Moving").is_none(),
        "{:?}",
        lines(8)
    );
    for default in ["INBOX", "Sent", "Drafts", "Trash"] {
        assert!(named(8, default).is_some(), "{default}: {:?}", lines(8));
    }
    assert!(named(9, "Old").is_some(), "LSUB too: {:?}", lines(9));
    assert!(named(11, "Old").is_none(), "{:?}", lines(11));
}

/// RFC 9051 §6.4.5: `BODY[2.TEXT]` of an encapsulated message is its whole body as stored;
/// when that body is a multipart, the epilogue after its closing boundary belongs to it.
#[test]
fn encapsulated_text_keeps_its_epilogue() {
    let d = Data::sqlite();
    setup_on(&d);
    let s = Server::start(&d);
    let msg = "From: a@remote.example\r\nTo: ann@acme.example\r\nSubject: outer\r\n\
               MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=outer\r\n\r\n\
               --outer\r\nContent-Type: text/plain\r\n\r\nfirst\r\n\
               --outer\r\nContent-Type: message/rfc822\r\n\r\n\
               From: b@remote.example\r\nSubject: inner\r\nMIME-Version: 1.0\r\n\
               Content-Type: multipart/alternative; boundary=inner\r\n\r\n\
               --inner\r\nContent-Type: text/plain\r\n\r\ninner text\r\n--inner--\r\n\
               EPILOGUE-OF-INNER\r\n\
               --outer--\r\n";
    let r = imap(
        &s,
        "tls",
        json!([
            login(ANN),
            ["append", "INBOX", "", null, msg],
            ["select", "INBOX"],
            ["call", "fetch", "1", "(BODY.PEEK[2.TEXT])"],
            ["logout"]
        ]),
    );
    let text = all_text(&r[4]);
    assert!(
        text.contains("inner text")
            && text.contains("--inner--")
            && text.contains("EPILOGUE-OF-INNER"),
        "{text}"
    );
    assert!(!text.contains("--outer--"), "{text}");
    // A message that is itself message/rfc822 (a forward as attachment, alone).
    let msg = "From: a@remote.example\r\nTo: ann@acme.example\r\nSubject: wrapper\r\n\
               MIME-Version: 1.0\r\nContent-Type: message/rfc822\r\n\r\n\
               From: b@remote.example\r\nSubject: inner\r\nMIME-Version: 1.0\r\n\
               Content-Type: multipart/mixed; boundary=inner\r\n\r\n\
               --inner\r\nContent-Type: text/plain\r\n\r\ninner text\r\n--inner--\r\n\
               EPILOGUE-AT-THE-END\r\n";
    let r = imap(
        &s,
        "tls",
        json!([
            login(ANN),
            ["append", "INBOX", "", null, msg],
            ["select", "INBOX"],
            ["call", "fetch", "2", "(BODY.PEEK[1.TEXT])"],
            ["logout"]
        ]),
    );
    let text = all_text(&r[4]);
    assert!(
        text.contains("--inner--") && text.contains("EPILOGUE-AT-THE-END"),
        "{text}"
    );
}
