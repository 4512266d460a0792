//! `postfach serve` as a newcomer meets it: first run, restart, HTTPS, and changes made with
//! the CLI reaching the running server.

use std::process::Command;

use serde_json::{Value, json};

use crate::api::Client;
use crate::support::{Data, PW, Server};

#[test]
fn first_run_sets_everything_up_and_prints_the_admin_password_once() {
    let d = Data::uninitialised();
    let server = Server::start(&d);
    let printed = server.stdout.join("\n");
    let password = server
        .stdout
        .iter()
        .find_map(|l| {
            l.trim()
                .strip_prefix("password:")
                .map(|p| p.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no admin password printed: {printed}"));
    assert!(
        printed.contains("login:    admin@mail.e2e.test"),
        "{printed}"
    );

    // What the first run created.
    let cfg = std::fs::read_to_string(d.path().join("postfach.toml")).unwrap();
    for section in [
        "[server]",
        "[listen]",
        "[tls]",
        "[store]",
        "[log]",
        "[limits]",
        "[passwords]",
        "[api]",
        "[offers.starter]",
    ] {
        assert!(cfg.contains(section), "config lists {section}");
    }
    assert!(
        cfg.contains("smtp = \"127.0.0.1:2525\"") && cfg.contains("http = \"127.0.0.1:8080\""),
        "{cfg}"
    );
    assert!(
        cfg.lines()
            .filter(|l| l.trim_start().starts_with('#'))
            .count()
            > 10,
        "the file is commented"
    );
    assert!(d.path().join("postfach.sqlite3").exists());
    let cert = std::fs::read_to_string(d.path().join("tls/cert.pem")).unwrap();
    assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(d.path().join("tls/cert.pem"))
        .output()
        .expect("openssl");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("DNS:mail.e2e.test"),
        "certificate for the hostname"
    );

    // The printed password logs in.
    let c = Client::new(&server);
    let (status, body) = c.post(
        "/api/v1/auth/login",
        json!({"login": "admin@mail.e2e.test", "password": password}),
    );
    assert_eq!(status, 200, "{body}");
    assert!(server.stop(), "SIGTERM ends the server cleanly");

    // Later starts reuse everything and print no password.
    let server = Server::start(&d);
    assert!(
        !server.stdout.join("\n").contains("password"),
        "{:?}",
        server.stdout
    );
    let c = Client::new(&server);
    let (status, _) = c.post(
        "/api/v1/auth/login",
        json!({"login": "admin@mail.e2e.test", "password": password}),
    );
    assert_eq!(status, 200);
}

#[test]
fn cli_changes_reach_the_running_server_without_restart() {
    let d = Data::sqlite();
    let server = Server::start(&d);
    let c = Client::login(&server, &d.admin_login, &d.admin_password);
    d.service("live.example", "standard", None);
    d.ok(&["address", "add", "first@live.example", "--password", PW]);
    let (status, list) = c.get("/api/v1/services/live.example/addresses");
    assert_eq!(status, 200, "{list}");
    assert_eq!(list[0]["address"], "first@live.example");
    d.ok(&["service", "set", "live.example", "--maintenance", "on"]);
    let (_, svc) = c.get("/api/v1/services/live.example");
    assert_eq!(svc["maintenance"], Value::Bool(true));
    // And the other way round.
    let (status, _) = c.post(
        "/api/v1/services/live.example/addresses",
        json!({"local_part": "second", "password": PW}),
    );
    assert_eq!(status, 201);
    assert!(
        d.ok(&["address", "list", "live.example"])
            .contains("second@live.example")
    );
}

#[test]
fn https_listener_serves_the_api_with_the_generated_certificate() {
    let d = Data::sqlite();
    let server = Server::start_opts(
        &d,
        &serde_json::json!({}),
        &[("POSTFACH_LISTEN_HTTPS", "127.0.0.1:0")],
    );
    let https = server.listeners["https"].to_string();
    let out = Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(d.path().join("tls/cert.pem"))
        .args([
            "--resolve",
            &format!(
                "mail.e2e.test:{}:127.0.0.1",
                https.rsplit(':').next().unwrap()
            ),
        ])
        .arg(format!(
            "https://mail.e2e.test:{}/healthz",
            https.rsplit(':').next().unwrap()
        ))
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        r#"{"status":"ok"}"#
    );
    // The certificate is named after the host, as a mail client shows it when asking to
    // trust it.
    let subject = Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-in"])
        .arg(d.path().join("tls/cert.pem"))
        .output()
        .expect("openssl");
    let subject = String::from_utf8_lossy(&subject.stdout);
    assert!(subject.contains("CN = mail.e2e.test"), "{subject}");
    // Each listener is announced once (stdout), not again in the log.
    let log = std::fs::read_to_string(d.path().join("server.log")).unwrap_or_default();
    assert!(!log.contains("listening"), "{log}");
}
