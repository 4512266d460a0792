//! The spam filter's learning side and its Rspamd backend end to end (F5): mail in
//! over SMTP (`smtplib`), users training by moving mail with `imaplib` (UID MOVE, Thunderbird's
//! `$NotJunk`), reports through the API and the CLI, and a real `rspamd` (Debian's package)
//! started here on loopback ports.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::delivery::{msg, setup};
use crate::support::{Data, PW, Server, deliver, scripted, wait_until};

const INFO: &str = "info@acme.example";

fn pharmacy(i: usize) -> String {
    msg(
        "offers@pharma-deals.example",
        INFO,
        &format!("Discount pharmacy offer {i}"),
        "",
        &format!(
            "Order generic pills online from our pharmacy. Lowest prices, discreet shipping, \
             no prescription needed. Reference {i}."
        ),
    )
}

fn meeting(i: usize) -> String {
    msg(
        "jean@partner.example",
        INFO,
        &format!("Project meeting notes {i}"),
        "",
        &format!(
            "Hi team, here are the minutes from today's project meeting. Next steps: review \
             the budget draft and schedule the design workshop. Item {i}."
        ),
    )
}

fn uids(step: &Value) -> String {
    // imaplib: ["OK", ["1 2 3"], {...}]
    step[1][0]
        .as_str()
        .unwrap_or("")
        .split(' ')
        .collect::<Vec<_>>()
        .join(",")
}

/// Every command of an imap_client.py run succeeded (besides the greeting and the BYE).
fn all_ok(r: &Value) -> bool {
    r.as_array()
        .unwrap()
        .iter()
        .all(|s| ["OK", "GREETING", "BYE"].contains(&s[0].as_str().unwrap_or("")))
}

fn bayes(d: &Data) -> Value {
    d.json(&["spam", "show", INFO])["bayes"].clone()
}

fn header_of(d: &Data, folder: &str, subject: &str, name: &str) -> String {
    let m = d.messages(INFO, folder);
    let uid = m
        .iter()
        .find(|m| m["subject"] == subject)
        .unwrap_or_else(|| panic!("{subject} in {folder}: {m:?}"))["uid"]
        .as_i64()
        .unwrap();
    let raw = d.ok(&[
        "mailbox",
        "show",
        INFO,
        &uid.to_string(),
        "--folder",
        folder,
    ]);
    raw.lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with(&format!("{}:", name.to_ascii_lowercase()))
        })
        .unwrap_or_else(|| panic!("no {name} in {raw}"))
        .to_string()
}

fn training(d: Data) {
    let (d, s, _sink, _dir) = setup(d);
    for i in 0..12 {
        deliver(&s, "offers@pharma-deals.example", INFO, &pharmacy(i));
        deliver(&s, "jean@partner.example", INFO, &meeting(i));
    }
    d.wait_messages(INFO, "INBOX", 24);
    // Untrained, the rules alone let both kinds through.
    assert_eq!(bayes(&d)["spam_learned"], 0);

    // The user moves the pharmacy mail into Spam and marks the meetings "not junk"; then
    // changes their mind about one spam (out of Spam: un-learned as spam, learned as ham) and
    // back again (learned as spam once more, not twice).
    let imaps = s.port("imaps").to_string();
    let r = scripted(
        "imap_client.py",
        &[&imaps, "tls"],
        &json!([
            ["login", INFO, PW],
            ["select", "INBOX"],
            ["uid", "SEARCH", "SUBJECT", "\"pharmacy\""],
            ["uid", "SEARCH", "SUBJECT", "\"meeting\""],
            ["logout"]
        ]),
    );
    // r[0] is the greeting, r[1] the login, r[2] the SELECT.
    let (spam_uids, ham_uids) = (uids(&r[3]), uids(&r[4]));
    assert_eq!(spam_uids.split(',').count(), 12, "{r}");
    let r = scripted(
        "imap_client.py",
        &[&imaps, "tls"],
        &json!([
            ["login", INFO, PW],
            ["select", "INBOX"],
            ["uid", "MOVE", spam_uids, "Spam"],
            ["uid", "STORE", ham_uids, "+FLAGS", "($NotJunk)"],
            ["select", "Spam"],
            ["uid", "MOVE", "1", "INBOX"],
            ["logout"]
        ]),
    );
    assert!(all_ok(&r), "{r}");
    let b = bayes(&d);
    assert_eq!(
        (&b["spam_learned"], &b["ham_learned"]),
        (&json!(11), &json!(13)),
        "{b}"
    );
    let r = scripted(
        "imap_client.py",
        &[&imaps, "tls"],
        &json!([
            ["login", INFO, PW],
            ["select", "INBOX"],
            ["uid", "SEARCH", "SUBJECT", "\"pharmacy\""],
            ["logout"]
        ]),
    );
    let back = uids(&r[3]);
    let r = scripted(
        "imap_client.py",
        &[&imaps, "tls"],
        &json!([
            ["login", INFO, PW],
            ["select", "INBOX"],
            ["uid", "MOVE", back, "Spam"],
            ["logout"]
        ]),
    );
    assert!(all_ok(&r), "{r}");
    let b = bayes(&d);
    assert_eq!(
        (&b["spam_learned"], &b["ham_learned"]),
        (&json!(12), &json!(12)),
        "{b}"
    );
    assert_eq!(
        b["global_spam_learned"], 12,
        "every training counts platform-wide too"
    );

    // The next verdicts follow the training.
    deliver(&s, "offers@pharma-deals.example", INFO, &pharmacy(100));
    deliver(&s, "jean@partner.example", INFO, &meeting(100));
    d.wait_messages(INFO, "Spam", 13);
    let status = header_of(&d, "Spam", "Discount pharmacy offer 100", "X-Spam-Status");
    assert!(
        status.contains("Yes,") && status.contains("BAYES_99"),
        "{status}"
    );
    d.wait_messages(INFO, "INBOX", 13);
    let status = header_of(&d, "INBOX", "Project meeting notes 100", "X-Spam-Status");
    assert!(
        status.contains("No,") && status.contains("BAYES_00"),
        "{status}"
    );

    // A classifier trained by info@ helps jean@ of the same platform (the global store).
    let jean = "jean@acme.example";
    let m = pharmacy(101).replace(INFO, jean);
    deliver(&s, "offers@pharma-deals.example", jean, &m);
    d.wait_messages(jean, "Spam", 1);

    // Report as phishing (CLI) and as not spam (API): moved, trained, recorded for the operator.
    let inbox = d.messages(INFO, "INBOX");
    let uid = inbox
        .iter()
        .find(|m| m["subject"] == "Project meeting notes 100")
        .unwrap()["uid"]
        .as_i64()
        .unwrap();
    let out = d.json(&[
        "spam",
        "report",
        INFO,
        "INBOX",
        &uid.to_string(),
        "--kind",
        "phishing",
    ]);
    assert_eq!(
        (&out["trained"], &out["moved_to"]),
        (&json!(true), &json!("Spam")),
        "{out}"
    );
    let reports = d.json(&["reports", "list"]);
    assert_eq!(reports[0]["kind"], "phishing", "{reports}");
    assert_eq!(reports[0]["subject"], "Project meeting notes 100");
    assert_eq!(reports[0]["address"], INFO);
    assert!(
        reports[0]["headers"]
            .as_str()
            .unwrap()
            .contains("Message-ID:")
    );
    let moved = out["uid"].as_i64().unwrap();

    let api = crate::api::Client::login(&s, &d.admin_login, &d.admin_password);
    let (st, body) = api.post(
        &format!("/api/v1/addresses/{INFO}/reports"),
        json!({"folder": "Spam", "uid": moved, "kind": "ham"}),
    );
    assert_eq!(st, 200, "{body}");
    assert_eq!(
        (&body["moved_to"], &body["report"]),
        (&json!("INBOX"), &Value::Null),
        "{body}"
    );
    let (st, body) = api.post(
        &format!("/api/v1/addresses/{INFO}/reports"),
        json!({"folder": "INBOX", "uid": 999_999, "kind": "spam"}),
    );
    assert_eq!(st, 404, "{body}");
    let (st, body) = api.post(
        &format!("/api/v1/addresses/{INFO}/reports"),
        json!({"folder": "INBOX", "uid": 1, "kind": "eggs"}),
    );
    assert_eq!(st, 400, "{body}");
    let (st, body) = api.get("/api/v1/reports?kind=phishing");
    assert_eq!(
        (st, body.as_array().map(|a| a.len())),
        (200, Some(1)),
        "{body}"
    );

    // "Not spam" is not recorded; an organization's administrator may report mail of their
    // services but not read the platform's list (other organizations' mail).
    let (st, _) = api.get("/api/v1/reports?kind=ham");
    assert_eq!(st, 400);
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
    let err = d.fails(&["--as", "carla@acme.example", "reports", "list"]);
    assert!(err.contains("only platform operators"), "{err}");
    let inbox = d.messages(INFO, "INBOX");
    let uid = inbox[0]["uid"].as_i64().unwrap().to_string();
    let out = d.json(&[
        "--as",
        "carla@acme.example",
        "spam",
        "report",
        INFO,
        "INBOX",
        &uid,
        "--kind",
        "spam",
    ]);
    assert_eq!(out["moved_to"], "Spam", "{out}");
    drop(s);
}

#[test]
fn moving_mail_into_and_out_of_spam_trains_the_next_verdict() {
    training(Data::sqlite());
}

#[test]
fn training_and_reports_on_postgresql() {
    training(Data::postgres());
}

/// A private rspamd on free loopback ports, configured from a temp directory (DNS pointed at
/// a closed port so that network rules give up quickly on this offline machine).
struct Rspamd {
    child: Child,
    port: u16,
}

impl Rspamd {
    fn start(dir: &Path) -> Rspamd {
        let bin = Path::new("/usr/bin/rspamd");
        assert!(
            bin.exists(),
            "rspamd is not installed (scripts/test installs Debian's package)"
        );
        let free = || {
            TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let (port, controller) = (free(), free());
        let local = dir.join("rspamd");
        for sub in ["local.d", "db", "run"] {
            std::fs::create_dir_all(local.join(sub)).unwrap();
        }
        let files = [
            (
                "worker-normal.inc",
                format!("bind_socket = \"127.0.0.1:{port}\";\ncount = 1;\n"),
            ),
            (
                "worker-controller.inc",
                format!("bind_socket = \"127.0.0.1:{controller}\";\ncount = 1;\n"),
            ),
            ("worker-proxy.inc", "enabled = false;\n".into()),
            ("worker-fuzzy.inc", "enabled = false;\n".into()),
            (
                "logging.inc",
                "type = \"console\";\nlevel = \"error\";\n".into(),
            ),
            (
                "options.inc",
                "dns { nameserver = [\"127.0.0.1:1\"]; timeout = 0.2s; retransmits = 1; }\n".into(),
            ),
        ];
        for (name, text) in files {
            std::fs::write(local.join("local.d").join(name), text).unwrap();
        }
        // rspamd drops privileges to its own user when started as root: let it write here.
        let _ = Command::new("chmod")
            .args(["-R", "a+rwX"])
            .arg(&local)
            .status();
        use std::os::unix::process::CommandExt;
        let child = Command::new(bin)
            // A process group of its own: its workers are stopped with it (see Drop).
            .process_group(0)
            .args(["-f", "-i"])
            .arg(format!("--var=LOCAL_CONFDIR={}", local.display()))
            .arg(format!("--var=DBDIR={}", local.join("db").display()))
            .arg(format!("--var=RUNDIR={}", local.join("run").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start rspamd");
        let r = Rspamd { child, port };
        let url = format!("http://127.0.0.1:{port}/ping");
        assert!(
            wait_until(Duration::from_secs(60), || ureq::get(&url)
                .call()
                .is_ok_and(|r| r.status() == 200)),
            "rspamd did not come up on port {port}"
        );
        r
    }
}

impl Drop for Rspamd {
    /// Stops rspamd and its workers (its whole process group), also when the test failed:
    /// killing the main process alone left the workers running, orphaned.
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let stopped = wait_until(Duration::from_secs(5), || {
            self.child.try_wait().is_ok_and(|s| s.is_some())
        });
        if !stopped {
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        }
        let _ = self.child.wait();
        // Workers that outlived the main process still belong to the group.
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
    }
}

#[test]
fn the_rspamd_backend_scores_with_a_real_rspamd_and_falls_back_when_it_is_gone() {
    let d = Data::sqlite();
    let mut rspamd = Some(Rspamd::start(d.path()));
    let port = rspamd.as_ref().unwrap().port.to_string();
    d.service("acme.example", "standard", None);
    d.ok(&["address", "add", INFO, "--password", PW]);
    // Rspamd's scores for mail from this offline loopback machine vary with its DNS rules;
    // a high service threshold leaves the decision to its own "reject" (GTUBE) here.
    d.ok(&["spam", "service", "acme.example", "--threshold", "12"]);
    let url = format!("http://127.0.0.1:{port}");
    let s = Server::start_opts(
        &d,
        &json!({}),
        &[
            ("POSTFACH_SPAM_BACKEND", "rspamd"),
            ("POSTFACH_SPAM_RSPAMD_URL", &url),
            ("POSTFACH_SPAM_RSPAMD_TIMEOUT_SECONDS", "20"),
        ],
    );
    deliver(&s, "anna@remote.example", INFO, &meeting(1));
    let gtube = msg(
        "anna@remote.example",
        INFO,
        "test",
        "",
        "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X",
    );
    deliver(&s, "anna@remote.example", INFO, &gtube);
    d.wait_messages(INFO, "INBOX", 1);
    d.wait_messages(INFO, "Spam", 1);
    let status = header_of(&d, "Spam", "test", "X-Spam-Status");
    assert!(
        // GTUBE is a pre-result of Rspamd: action "reject", the symbol itself scores 0.
        status.contains("Yes,") && status.contains("RSPAMD_ACTION_reject"),
        "{status}"
    );
    let status = header_of(&d, "INBOX", "Project meeting notes 1", "X-Spam-Status");
    assert!(
        status.contains("No,") && status.contains("RSPAMD_ACTION_"),
        "{status}"
    );

    // Rspamd gone: mail still arrives, scored by the built-in filter.
    drop(rspamd.take());
    deliver(&s, "anna@remote.example", INFO, &meeting(2));
    d.wait_messages(INFO, "INBOX", 2);
    let m = d.messages(INFO, "INBOX");
    assert!(
        m.iter().any(|m| m["subject"] == "Project meeting notes 2"),
        "{m:?}"
    );
    drop(s);
}
