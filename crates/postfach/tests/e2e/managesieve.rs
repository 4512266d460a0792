//! ManageSieve end to end (P7, RFC 5804) with an independent client: `sieve-connect` (the
//! Debian package, Perl) uploads, activates, lists, downloads and deletes scripts; a raw
//! socket checks what a client sees before TLS. The uploaded script then filters real mail.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{Data, PW, Server, deliver};

/// Runs sieve-connect as info@acme.example with `args`; returns (success, stdout+stderr).
fn sieve_connect(s: &Server, args: &[&str]) -> (bool, String) {
    let mut child = Command::new("sieve-connect")
        .args([
            "--server",
            "127.0.0.1",
            "--port",
            &s.port("managesieve").to_string(),
        ])
        .args([
            "--user",
            "info@acme.example",
            "--passwordfd",
            "0",
            "--notlsverify",
        ])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sieve-connect (Debian package sieve-connect)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PW}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn sieve_connect_uploads_activates_lists_and_errors_name_the_line() {
    let d = Data::sqlite();
    d.service("acme.example", "standard", None);
    d.ok(&["address", "add", "info@acme.example", "--password", PW]);
    let s = Server::start(&d);

    // Before TLS: no SASL mechanism, STARTTLS offered, AUTHENTICATE refused.
    let mut raw = TcpStream::connect(("127.0.0.1", s.port("managesieve"))).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    raw.write_all(b"AUTHENTICATE \"PLAIN\" \"AGluZm9AYWNtZS5leGFtcGxlAHg=\"\r\nLOGOUT\r\n")
        .unwrap();
    let mut seen = String::new();
    raw.read_to_string(&mut seen).unwrap();
    assert!(
        seen.contains("\"SASL\" \"\"") && seen.contains("\"STARTTLS\""),
        "{seen}"
    );
    assert!(seen.contains("NO (ENCRYPT-NEEDED)"), "{seen}");

    let good = d.write("shop.sieve", "require [\"fileinto\", \"envelope\", \"subaddress\"];\nif envelope :detail \"to\" \"shop\" { fileinto \"Shop\"; }\n");
    let (ok, out) = sieve_connect(
        &s,
        &[
            "--upload",
            "--localsieve",
            good.to_str().unwrap(),
            "--remotesieve",
            "shop",
        ],
    );
    assert!(ok, "{out}");
    let (ok, out) = sieve_connect(&s, &["--activate", "--remotesieve", "shop"]);
    assert!(ok, "{out}");
    let (ok, out) = sieve_connect(&s, &["--list"]);
    assert!(ok && out.contains("\"shop\" ACTIVE"), "{out}");
    // What the client uploaded is what the CLI sees, and it is the active script.
    let listed = d.json(&["sieve", "list", "info@acme.example"]);
    assert_eq!(listed[0]["name"], "shop");
    assert_eq!(listed[0]["active"], true);

    // A syntax error comes back with its line.
    let bad = d.write(
        "bad.sieve",
        "require \"fileinto\";\n\nfileinto \"x\"\nkeep;\n",
    );
    let (ok, out) = sieve_connect(
        &s,
        &[
            "--upload",
            "--localsieve",
            bad.to_str().unwrap(),
            "--remotesieve",
            "bad",
        ],
    );
    assert!(!ok && out.contains("line 4"), "{out}");
    let (ok, out) = sieve_connect(
        &s,
        &["--checkscript", "--localsieve", bad.to_str().unwrap()],
    );
    assert!(!ok && out.contains("line 4"), "{out}");

    // Download gives back the same bytes.
    let back = d.path().join("back.sieve");
    let (ok, out) = sieve_connect(
        &s,
        &[
            "--download",
            "--remotesieve",
            "shop",
            "--localsieve",
            back.to_str().unwrap(),
        ],
    );
    assert!(ok, "{out}");
    assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&good).unwrap());

    // The uploaded script filters mail.
    deliver(
        &s,
        "anna@remote.example",
        "info+shop@acme.example",
        "From: anna@remote.example\r\nTo: info+shop@acme.example\r\nSubject: Order\r\n\r\nx\r\n",
    );
    d.wait_messages("info@acme.example", "Shop", 1);

    // The active script cannot be deleted; after deactivating it can.
    let (ok, out) = sieve_connect(&s, &["--delete", "--remotesieve", "shop"]);
    assert!(!ok && out.to_lowercase().contains("active"), "{out}");
    let (ok, out) = sieve_connect(&s, &["--deactivate"]);
    assert!(ok, "{out}");
    let (ok, out) = sieve_connect(&s, &["--delete", "--remotesieve", "shop"]);
    assert!(ok, "{out}");
    assert!(
        d.json(&["sieve", "list", "info@acme.example"])
            .as_array()
            .unwrap()
            .is_empty()
    );

    // A wrong password is refused.
    let mut child = Command::new("sieve-connect")
        .args([
            "--server",
            "127.0.0.1",
            "--port",
            &s.port("managesieve").to_string(),
        ])
        .args([
            "--user",
            "info@acme.example",
            "--passwordfd",
            "0",
            "--notlsverify",
            "--list",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"wrong-password\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
}

/// M11 through Sieve: a script is another way to change what the administrator's rights
/// cover. With the autoresponder right revoked, a `vacation` script (however its name is
/// spelled) is refused, and an uploaded one cannot be activated; with the special-folders
/// right revoked, `fileinto :specialuse … :create` is refused. Plain filing stays allowed.
#[test]
fn revoked_rights_hold_for_sieve_scripts() {
    let d = Data::sqlite();
    d.service("acme.example", "standard", None);
    d.ok(&["address", "add", "info@acme.example", "--password", PW]);
    let s = Server::start(&d);
    let upload = |name: &str, text: &str| {
        let file = d.write(&format!("{name}.sieve"), text);
        sieve_connect(
            &s,
            &[
                "--upload",
                "--localsieve",
                file.to_str().unwrap(),
                "--remotesieve",
                name,
            ],
        )
    };
    let vacation = "require \"vac\\ation\";\nvacation :days 1 \"I am away.\";\n";
    let special = "require [\"fileinto\", \"special-use\", \"mailbox\"];\nfileinto :specialuse \"\\\\Junk\" :create \"Rubbish\";\n";
    // Allowed while the rights are there; stored, not active.
    let (ok, out) = upload("away", vacation);
    assert!(ok, "{out}");
    d.ok(&[
        "address",
        "set",
        "info@acme.example",
        "--allow-autoresponder-change",
        "off",
        "--allow-folder-change",
        "off",
    ]);
    let (ok, out) = upload("away2", vacation);
    assert!(!ok && out.contains("autoresponder"), "{out}");
    let (ok, out) = sieve_connect(&s, &["--activate", "--remotesieve", "away"]);
    assert!(!ok && out.contains("autoresponder"), "{out}");
    let (ok, out) = upload("junk", special);
    assert!(!ok && out.contains("special folders"), "{out}");
    let (ok, out) = upload(
        "plain",
        "require [\"fileinto\", \"mailbox\"];\nfileinto :create \"Archive/2026\";\n",
    );
    assert!(ok, "{out}");
    let (ok, out) = sieve_connect(&s, &["--activate", "--remotesieve", "plain"]);
    assert!(ok, "{out}");
    // ... but not a script that includes the stored vacation script (RFC 6609).
    let (ok, out) = upload(
        "outer",
        "require \"include\";\ninclude :personal \"away\";\n",
    );
    assert!(ok, "{out}");
    let (ok, out) = sieve_connect(&s, &["--activate", "--remotesieve", "outer"]);
    assert!(!ok && out.contains("autoresponder"), "{out}");
    // The administrator is not bound by the user's rights.
    d.ok(&["sieve", "activate", "info@acme.example", "away"]);
}
