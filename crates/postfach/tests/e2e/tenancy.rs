//! Tenancy (M1, M2, M12): what one organization can claim and see of the platform, tried
//! from the outside as a second tenant would, on SQLite and PostgreSQL.

use serde_json::json;

use crate::support::{Data, PW, Peer};

/// A second organization, Bee, administered by bob@bee.test (an account of its own).
fn second_tenant(d: &Data) {
    d.service("acme.example", "standard", Some(10));
    d.ok(&["org", "add", "Bee"]);
    d.ok(&[
        "user",
        "add",
        "bob@bee.test",
        "--org",
        "Bee",
        "--role",
        "admin",
        "--password",
        PW,
    ]);
}

fn as_bob<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["--as", "bob@bee.test"];
    all.extend_from_slice(args);
    all
}

/// Runs `postfach` with the domain check asking `dns` (a test DNS server).
fn with_dns(d: &Data, dns: &Peer, args: &[&str]) -> (bool, String, String) {
    let out = d
        .command(args)
        .env(
            "POSTFACH_DNS_NAMESERVERS",
            format!("127.0.0.1:{}", dns.port),
        )
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// M2: a domain an organization's administrator adds is pending until its TXT record proves
/// control; a pending domain gets no mail service; a name below another organization's domain
/// is refused; the operator is trusted. Refusals are in the activity log (M12).
fn domain_ownership(d: Data) {
    second_tenant(&d);
    // Pending, with the record to publish.
    let bee = d.json(&as_bob(&["domain", "add", "bee.test", "--org", "Bee"]));
    assert_eq!(bee["status"], "pending", "{bee}");
    let record = bee["verification"]["value"].as_str().unwrap().to_string();
    assert!(record.starts_with("postfach-verify="), "{record}");
    assert_eq!(bee["verification"]["name"], "bee.test");
    let text = d.ok(&as_bob(&["domain", "list", "--org", "Bee"]));
    assert!(
        text.contains("STATUS") && text.contains("pending") && text.contains(&record),
        "{text}"
    );
    // A pending domain serves no mail: no mail service on it.
    let e = d.fails(&as_bob(&[
        "service", "add", "bee.test", "--org", "Bee", "--offer", "standard",
    ]));
    assert!(e.contains("not verified yet"), "{e}");
    // Another organization's domain, and names below it, are not Bee's to claim; the answer
    // for a held name does not say who holds it.
    let e = d.fails(&as_bob(&[
        "domain",
        "add",
        "mail.acme.example",
        "--org",
        "Bee",
    ]));
    assert!(e.contains("another organization"), "{e}");
    assert!(!e.contains("Acme"), "{e}");
    let e = d.fails(&as_bob(&["domain", "add", "acme.example", "--org", "Bee"]));
    assert!(e.contains("already exists") && !e.contains("Acme"), "{e}");
    // A DNS that does not have the record: still pending, and the reason says what is missing.
    let empty = Peer::dns(d.path(), &json!({"bee.test.": [["TXT", "v=spf1 -all"]]}));
    let (ok, _, err) = with_dns(&d, &empty, &as_bob(&["domain", "verify", "bee.test"]));
    assert!(!ok && err.contains(&record), "{err}");
    drop(empty);
    // Only the operator verifies without proof.
    let e = d.fails(&as_bob(&["domain", "verify", "bee.test", "--force"]));
    assert!(e.contains("only platform operators"), "{e}");
    // The record published: verified.
    let zone = json!({"bee.test.": [["TXT", "v=spf1 -all"], ["TXT", record]]});
    let dns = Peer::dns(d.path(), &zone);
    let (ok, out, err) = with_dns(&d, &dns, &as_bob(&["domain", "verify", "bee.test"]));
    assert!(ok, "{out}{err}");
    assert!(out.contains("bee.test is verified"), "{out}");
    // Now the mail service, and sub-domains of Bee's own verified domain need no proof.
    d.ok(&as_bob(&[
        "service", "add", "bee.test", "--org", "Bee", "--offer", "standard",
    ]));
    let lists = d.json(&as_bob(&[
        "domain",
        "add",
        "lists.bee.test",
        "--org",
        "Bee",
    ]));
    assert_eq!(lists["status"], "verified", "{lists}");
    // ... while Acme cannot take a name below bee.test.
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
    let e = d.fails(&[
        "--as",
        "carla@acme.example",
        "domain",
        "add",
        "x.bee.test",
        "--org",
        "Acme",
    ]);
    assert!(e.contains("another organization"), "{e}");
    // The operator's domains are verified at once; the operator may verify without proof.
    let op = d.json(&["domain", "add", "ops.example", "--org", "Bee"]);
    assert_eq!(op["status"], "verified", "{op}");
    d.ok(&as_bob(&["domain", "add", "later.test", "--org", "Bee"]));
    assert!(
        d.ok(&["domain", "verify", "later.test", "--force"])
            .contains("later.test is verified")
    );
    // M12: the refusals are in Bee's activity log, naming who tried what.
    let audit = d.ok(&["audit", "--org", "Bee", "--limit", "200"]);
    assert!(
        audit.contains("domain.create.refused") && audit.contains("mail.acme.example"),
        "{audit}"
    );
    assert!(audit.contains("domain.verify.refused"), "{audit}");
    assert!(
        audit.contains("domain.verify") && audit.contains("txt"),
        "{audit}"
    );
}

#[test]
fn domain_ownership_on_sqlite() {
    domain_ownership(Data::sqlite());
}

#[test]
fn domain_ownership_on_postgresql() {
    domain_ownership(Data::postgres());
}
