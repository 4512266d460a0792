//! Crash safety: the server is SIGKILLed at random moments while a client submits
//! mail over SMTP (Python `smtplib`) and another APPENDs and reads over IMAPS (`imaplib`),
//! then started again, many times. Afterwards every message that got its 250 or its APPEND
//! OK is in the mailbox exactly once, every visible message is complete (nothing half-written), a UID once seen by a reader
//! still names the same message (UIDs never reused after a crash), and `postfach store check`
//! finds the store consistent.
//!
//! `POSTFACH_CRASH_KILLS` sets the number of kills (default 20; `bench/` runs can ask for
//! 100+); the random seed is printed so that a failing run can be repeated with
//! `POSTFACH_CRASH_SEED`.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::support::{Data, PW, Server, run_tool, tool};

const RCPT: &str = "info@acme.example";

fn client(args: &[&str]) -> Child {
    Command::new("python3")
        .arg(tool("crash_client.py"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3")
}

/// Waits for a load client that exits once the server is gone.
fn finish(mut c: Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(_)) = c.try_wait() {
            return;
        }
        if Instant::now() > deadline {
            let _ = c.kill();
            panic!("the {what} client did not notice the server was gone");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

fn crash_run(d: Data, kills: usize) {
    d.service("acme.example", "standard", None);
    d.ok(&["address", "add", RCPT, "--password", PW]);
    let seed: u64 = std::env::var("POSTFACH_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
                .into()
        });
    eprintln!("crash test: {kills} kills, POSTFACH_CRASH_SEED={seed}");
    let mut rng = seed;
    let mut next = move || {
        // xorshift64*: small, seedable, good enough for choosing moments.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let dir = d.path().join("crash");
    std::fs::create_dir_all(&dir).unwrap();
    let (attempted, acked, seen) = (dir.join("attempted"), dir.join("acked"), dir.join("seen"));
    for round in 0..kills {
        let s = Server::start(&d);
        let smtp = client(&[
            "smtp",
            &s.port("smtp").to_string(),
            RCPT,
            &format!("r{round}"),
            attempted.to_str().unwrap(),
            acked.to_str().unwrap(),
        ]);
        let imap = client(&[
            "imap",
            &s.port("imaps").to_string(),
            RCPT,
            PW,
            seen.to_str().unwrap(),
            &format!("a{round}"),
            attempted.to_str().unwrap(),
            acked.to_str().unwrap(),
        ]);
        std::thread::sleep(Duration::from_millis(150 + next() % 1200));
        s.kill();
        finish(smtp, "SMTP");
        finish(imap, "IMAP");
    }

    // Offline first: the store as the last crash left it.
    let check = d.json(&["store", "check"]);
    assert!(check["problems"].as_array().unwrap().is_empty(), "{check}");

    let s = Server::start(&d);
    d.wait_queue_empty();
    let out = run_tool(
        "crash_client.py",
        &["verify", &s.port("imaps").to_string(), RCPT, PW],
    );
    let inbox: Vec<Value> = serde_json::from_slice(&out).unwrap();
    drop(s);

    let acked: Vec<String> = lines(&acked);
    let attempted: BTreeSet<String> = lines(&attempted).into_iter().collect();
    assert!(
        acked.len() >= kills,
        "the load should get mail through in most rounds: {} acknowledged",
        acked.len()
    );
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_uid: BTreeMap<i64, String> = BTreeMap::new();
    for m in &inbox {
        let (uid, subject, intact) = (m[0].as_i64().unwrap(), m[1].as_str().unwrap(), &m[2]);
        assert_eq!(
            intact,
            &Value::Bool(true),
            "message {subject} (UID {uid}) is damaged"
        );
        assert!(attempted.contains(subject), "{subject} was never sent");
        *count.entry(subject.to_string()).or_default() += 1;
        by_uid.insert(uid, subject.to_string());
    }
    for id in &acked {
        assert_eq!(
            count.get(id).copied().unwrap_or(0),
            1,
            "{id} got 250 and must be in the mailbox exactly once"
        );
    }
    for (id, n) in &count {
        assert_eq!(*n, 1, "{id} is in the mailbox {n} times");
    }
    for line in lines(&seen) {
        let (uid, subject) = line.split_once(' ').unwrap();
        let uid: i64 = uid.parse().unwrap();
        assert_eq!(
            by_uid.get(&uid).map(String::as_str),
            Some(subject),
            "UID {uid} was {subject} for a reader before a crash"
        );
    }
    let check = d.json(&["store", "check"]);
    assert!(check["problems"].as_array().unwrap().is_empty(), "{check}");
    assert_eq!(check["messages"].as_u64().unwrap() as usize, inbox.len());
    eprintln!(
        "crash test: {} acknowledged, {} stored, {} reads",
        acked.len(),
        inbox.len(),
        lines(&seen).len()
    );
}

fn kills() -> usize {
    std::env::var("POSTFACH_CRASH_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20)
}

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_mail() {
    crash_run(Data::sqlite(), kills());
}

#[test]
fn sigkill_at_random_moments_on_postgresql() {
    crash_run(Data::postgres(), kills().div_ceil(2));
}

#[test]
fn store_check_names_a_damaged_body() {
    // Clean mail (no spam rule adds a header), so each mailbox copy is the spooled body.
    const HEADERS: &str = "From: anna@remote.example\r\nTo: someone@acme.example\r\n\
                           Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n";
    let d = Data::sqlite();
    d.service("acme.example", "standard", None);
    d.ok(&["address", "add", RCPT, "--password", PW]);
    let s = Server::start(&d);
    // A small body is kept in the metadata store (inline_blobs), a large one in a file
    //: the check reads and verifies both kinds.
    crate::support::deliver(
        &s,
        "anna@remote.example",
        RCPT,
        &format!(
            "{HEADERS}Subject: keep me\r\nMessage-ID: <small@remote.example>\r\n\r\nintact\r\n"
        ),
    );
    let big = format!(
        "{HEADERS}Subject: big\r\nMessage-ID: <big@remote.example>\r\n\r\n{}",
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n".repeat(1500)
    );
    crate::support::deliver(&s, "anna@remote.example", RCPT, &big);
    d.wait_messages(RCPT, "INBOX", 2);
    d.wait_queue_empty();
    drop(s);
    let ok = d.ok(&["store", "check"]);
    assert!(ok.contains("The store is consistent."), "{ok}");

    // Flip a byte of each body (the blob id is the SHA-256 of what it should hold): the
    // file on disk, and the row in the SQLite file.
    let files = d.blob_files();
    assert_eq!(
        files.len(),
        1,
        "the large body is a file under blobs/: {files:?}"
    );
    for f in &files {
        let mut bytes = std::fs::read(f).unwrap();
        let last = bytes.len() - 3;
        bytes[last] ^= 0x20;
        std::fs::write(f, bytes).unwrap();
    }
    let damaged = crate::support::python(
        "import sqlite3,sys\n\
         db = sqlite3.connect(sys.argv[1])\n\
         rows = db.execute('SELECT id, data FROM inline_blobs').fetchall()\n\
         for id, data in rows:\n\
         \x20   b = bytearray(data); b[-3] ^= 0x20\n\
         \x20   db.execute('UPDATE inline_blobs SET data = ? WHERE id = ?', (bytes(b), id))\n\
         db.commit()\n\
         print(len(rows))\n",
        &[d.path().join("postfach.sqlite3").to_str().unwrap()],
    );
    assert!(damaged.ok, "{}", damaged.stderr);
    assert_eq!(damaged.stdout.trim(), "1", "the small body is kept inline");
    let r = d.run(&["store", "check"]);
    assert!(!r.ok, "a damaged store must fail the check");
    assert!(
        r.stdout.contains("INBOX: UID 1") && r.stdout.contains("INBOX: UID 2"),
        "{}",
        r.stdout
    );
    assert_eq!(r.stdout.matches("corrupt").count(), 2, "{}", r.stdout);
}
