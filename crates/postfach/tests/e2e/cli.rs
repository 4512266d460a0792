//! The admin CLI as an operator types it (issue: "CLI end-to-end tests cover every command,
//! including refusals").

use std::io::Write;
use std::process::Stdio;

use crate::support::{Data, PW};

#[test]
fn help_is_useful() {
    let d = Data::uninitialised();
    let top = d.ok(&["--help"]);
    for cmd in [
        "serve", "init", "org", "user", "domain", "service", "address", "alias", "apikey", "audit",
    ] {
        assert!(top.contains(cmd), "--help lists {cmd}: {top}");
    }
    for group in [
        vec!["org"],
        vec!["user"],
        vec!["domain"],
        vec!["service"],
        vec!["address"],
        vec!["alias"],
        vec!["apikey"],
    ] {
        let mut args = group.clone();
        args.push("--help");
        let text = d.ok(&args);
        assert!(text.contains("Commands:"), "{group:?}: {text}");
    }
    let add = d.ok(&["address", "import", "--help"]);
    assert!(
        add.contains("header row") && add.contains("forwarding address"),
        "{add}"
    );
    let svc = d.ok(&["service", "add", "--help"]);
    assert!(svc.contains("--offer") && svc.contains("--quota"), "{svc}");
}

#[test]
fn commands_need_an_initialised_data_directory() {
    let d = Data::uninitialised();
    let e = d.fails(&["org", "list"]);
    assert!(
        e.contains("no configuration") && e.contains("postfach init"),
        "{e}"
    );
}

fn full_flow(d: &Data) {
    // Organizations, domains, services.
    assert!(
        d.ok(&["org", "add", "Acme"])
            .contains("Created organization Acme")
    );
    d.ok(&["org", "add", "Rival"]);
    assert!(d.ok(&["org", "list"]).contains("Rival"));
    assert!(
        d.ok(&["domain", "add", "ACME.example", "--org", "Acme"])
            .contains("acme.example")
    );
    d.ok(&["domain", "add", "bücher.example", "--org", "Acme"]);
    let domains = d.ok(&["domain", "list", "--org", "Acme"]);
    assert!(
        domains.contains("xn--bcher-kva.example (bücher.example)"),
        "{domains}"
    );
    let s = d.json(&[
        "service",
        "add",
        "acme.example",
        "--org",
        "Acme",
        "--offer",
        "standard",
        "--name",
        "Sales",
        "--tag",
        "EU",
    ]);
    assert_eq!(
        (
            s["address_quota"].as_i64(),
            s["name"].as_str(),
            s["tags"][0].as_str()
        ),
        (Some(5), Some("Sales"), Some("eu"))
    );
    let shown = d.ok(&["service", "show", "acme.example"]);
    assert!(
        shown.contains("1440 per address per 24 h") && shown.contains("0 of 5"),
        "{shown}"
    );
    let set = d.ok(&[
        "service",
        "set",
        "acme.example",
        "--quota",
        "8",
        "--maintenance",
        "on",
        "--name",
        "Sales EU",
    ]);
    assert!(set.contains("0 of 8"), "{set}");
    assert!(
        set.lines()
            .any(|l| l.starts_with("maintenance:") && l.ends_with(" on")),
        "{set}"
    );
    let s = d.json(&["service", "show", "acme.example"]);
    assert_eq!(
        (
            s["maintenance"].as_bool(),
            s["address_quota"].as_i64(),
            s["name"].as_str()
        ),
        (Some(true), Some(8), Some("Sales EU"))
    );
    d.ok(&["service", "set", "acme.example", "--maintenance", "off"]);
    assert!(d.ok(&["service", "list"]).contains("acme.example"));

    // Addresses.
    let created = d.ok(&[
        "address",
        "add",
        "Jean.Dupont@acme.example",
        "--password",
        PW,
    ]);
    assert!(
        created.contains("Created jean.dupont@acme.example"),
        "{created}"
    );
    let generated = d.json(&["address", "add", "info@acme.example"]);
    let info_pw = generated["generated_password"]
        .as_str()
        .expect("generated password")
        .to_string();
    assert!(info_pw.len() >= 16);
    d.ok(&[
        "address",
        "add",
        "catchall@acme.example",
        "--password",
        PW,
        "--storage-quota",
        "2048",
    ]);
    let list = d.ok(&["address", "list", "acme.example"]);
    assert!(
        list.contains("jean.dupont@acme.example") && list.contains("catchall@acme.example"),
        "{list}"
    );
    let listed = d.json(&["address", "list", "acme.example"]);
    assert_eq!(listed.as_array().unwrap().len(), 3);
    let found = d.json(&["address", "list", "acme.example", "--search", "dupont"]);
    assert_eq!(found.as_array().unwrap().len(), 1);
    let c = d.json(&["address", "show", "catchall@acme.example"]);
    assert_eq!(
        (
            c["is_catchall"].as_bool(),
            c["storage_quota_bytes"].as_i64()
        ),
        (Some(true), Some(2048 << 20))
    );
    assert!(
        d.ok(&[
            "address",
            "passwd",
            "jean.dupont@acme.example",
            "--password",
            "N3w!Passw0rd-z"
        ])
        .contains("changed")
    );
    let set = d.json(&[
        "address",
        "set",
        "info@acme.example",
        "--forward-to",
        "boss@elsewhere.example",
        "--keep-copy",
        "off",
        "--allow-password-change",
        "off",
    ]);
    assert_eq!(
        set["forward_to"][0].as_str(),
        Some("boss@elsewhere.example")
    );
    assert_eq!(
        (
            set["forward_keep_copy"].as_bool(),
            set["may_change_password"].as_bool()
        ),
        (Some(false), Some(false))
    );
    let unset = d.json(&["address", "set", "info@acme.example", "--no-forward"]);
    assert_eq!(unset["forward_to"].as_array().unwrap().len(), 0);

    // Aliases.
    assert!(
        d.ok(&[
            "alias",
            "add",
            "jd@acme.example",
            "--to",
            "jean.dupont@acme.example"
        ])
        .contains("jd@acme.example")
    );
    assert!(
        d.ok(&["alias", "list", "acme.example"])
            .contains("jd@acme.example")
    );
    assert!(
        d.ok(&["alias", "del", "jd@acme.example"])
            .contains("Deleted alias")
    );
    d.ok(&[
        "alias",
        "add",
        "sales@acme.example",
        "--to",
        "info@acme.example",
    ]);

    // Export, delete.
    let out = d.path().join("export.csv");
    d.ok(&[
        "address",
        "export",
        "acme.example",
        "-o",
        out.to_str().unwrap(),
    ]);
    let csv = std::fs::read_to_string(&out).unwrap();
    assert!(
        csv.starts_with("local_part,password,forward_to,delete_after_forward,address,aliases"),
        "{csv}"
    );
    assert!(
        csv.lines().any(
            |l| l.starts_with("info,,") && l.contains(",info@acme.example,sales@acme.example,")
        ),
        "{csv}"
    );
    assert_eq!(
        d.ok(&["address", "export", "acme.example"]),
        csv,
        "stdout and file agree"
    );
    let del = d.ok(&["address", "del", "info@acme.example"]);
    assert!(
        del.contains("Deleted info@acme.example") && del.contains("sales@acme.example"),
        "{del}"
    );

    // Users, roles, grants, API keys.
    let u = d.json(&[
        "user",
        "add",
        "bob@acme.example",
        "--org",
        "Acme",
        "--role",
        "collaborator",
    ]);
    assert!(u["generated_password"].as_str().is_some());
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
    assert!(
        d.ok(&["user", "list", "--org", "Acme"])
            .contains("carla@acme.example")
    );
    assert!(
        d.ok(&[
            "user",
            "grant",
            "bob@acme.example",
            "--service",
            "acme.example",
            "--level",
            "use"
        ])
        .contains("may now use")
    );
    let shown = d.ok(&["user", "show", "bob@acme.example"]);
    assert!(
        shown.contains("Acme (collaborator)") && shown.contains("acme.example (use)"),
        "{shown}"
    );
    d.ok(&[
        "user",
        "revoke",
        "bob@acme.example",
        "--service",
        "acme.example",
    ]);
    assert!(
        d.ok(&[
            "user",
            "role",
            "bob@acme.example",
            "--org",
            "Acme",
            "--role",
            "external"
        ])
        .contains("external")
    );
    d.ok(&[
        "user",
        "passwd",
        "bob@acme.example",
        "--password",
        "B0b's-new-pass",
    ]);
    let key = d.ok(&["apikey", "add", "carla@acme.example", "--name", "deploy"]);
    assert!(key.lines().any(|l| l.starts_with("pfk_")), "{key}");
    let keys = d.json(&["apikey", "list", "carla@acme.example"]);
    let id = keys[0]["id"].as_i64().unwrap().to_string();
    assert!(
        d.ok(&["apikey", "revoke", "carla@acme.example", &id])
            .contains("Revoked")
    );

    // Acting as a user: rights are the user's.
    let as_admin = d.ok(&[
        "--as",
        "carla@acme.example",
        "address",
        "add",
        "team@acme.example",
        "--password",
        PW,
    ]);
    assert!(as_admin.contains("Created team@acme.example"));
    // The activity log names who did what.
    let audit = d.ok(&["audit", "--org", "Acme", "--limit", "200"]);
    assert!(
        audit.contains("user:carla@acme.example") && audit.contains("address.create"),
        "{audit}"
    );
    assert!(
        audit.contains("cli:tester") && audit.contains("service.update"),
        "{audit}"
    );
    let mine = d.json(&["--as", "carla@acme.example", "audit"]);
    assert!(
        mine.as_array()
            .unwrap()
            .iter()
            .all(|e| e["actor"] == "user:carla@acme.example")
    );
}

#[test]
fn every_command_sqlite() {
    full_flow(&Data::sqlite());
}

#[test]
fn every_command_postgres() {
    full_flow(&Data::postgres());
}

#[test]
fn refusals_are_one_clear_line() {
    let d = Data::sqlite();
    d.service("acme.example", "standard", None);
    d.service("starter.example", "starter", None);
    d.ok(&["address", "add", "info@acme.example", "--password", PW]);

    let e = d.fails(&["address", "add", "info@acme.example", "--password", PW]);
    assert!(e.contains("info@acme.example already exists"), "{e}");
    let e = d.fails(&[
        "address",
        "add",
        "new@acme.example",
        "--password",
        "password1",
    ]);
    assert!(e.contains("password too weak"), "{e}");
    let e = d.fails(&[
        "address",
        "add",
        "catchall@starter.example",
        "--password",
        PW,
    ]);
    assert!(e.contains("catchall") && e.contains("starter offer"), "{e}");
    let e = d.fails(&["address", "add", "x@unknown.example", "--password", PW]);
    assert!(e.contains("mail service unknown.example not found"), "{e}");
    let e = d.fails(&["address", "add", "bad name@acme.example", "--password", PW]);
    assert!(e.contains("invalid local part"), "{e}");
    let e = d.fails(&["address", "rename", "info@acme.example", "contact"]);
    assert!(
        e.contains("cannot be renamed")
            && e.contains("alias add contact@acme.example --to info@acme.example"),
        "{e}"
    );
    let e = d.fails(&["domain", "add", "not_a domain", "--org", "Acme"]);
    assert!(e.contains("invalid domain"), "{e}");
    let e = d.fails(&[
        "service",
        "add",
        "acme.example",
        "--org",
        "Acme",
        "--offer",
        "standard",
    ]);
    assert!(e.contains("already exists"), "{e}");
    let e = d.fails(&["service", "set", "starter.example", "--quota", "3"]);
    assert!(e.contains("starter offer allows exactly 1"), "{e}");
    let e = d.fails(&["org", "add", "Acme"]);
    assert!(e.contains("already exists"), "{e}");

    // Quota exceeded: starter holds one address.
    d.ok(&["address", "add", "one@starter.example", "--password", PW]);
    let e = d.fails(&["address", "add", "two@starter.example", "--password", PW]);
    assert!(
        e.contains("address quota of mail service starter.example reached (1 of 1"),
        "{e}"
    );

    // A collaborator without a grant.
    d.ok(&[
        "user",
        "add",
        "bob@acme.example",
        "--org",
        "Acme",
        "--role",
        "collaborator",
        "--password",
        PW,
    ]);
    let e = d.fails(&[
        "--as",
        "bob@acme.example",
        "address",
        "add",
        "x@acme.example",
        "--password",
        PW,
    ]);
    assert!(e.contains("no access to mail service acme.example"), "{e}");
    let e = d.fails(&[
        "--as",
        "bob@acme.example",
        "address",
        "list",
        "acme.example",
    ]);
    assert!(e.contains("no access"), "{e}");
    // With "use", still no changes; maintenance needs an administrator even with "manage".
    d.ok(&[
        "user",
        "grant",
        "bob@acme.example",
        "--service",
        "acme.example",
        "--level",
        "manage",
    ]);
    d.ok(&[
        "--as",
        "bob@acme.example",
        "address",
        "add",
        "x@acme.example",
        "--password",
        PW,
    ]);
    let e = d.fails(&[
        "--as",
        "bob@acme.example",
        "service",
        "set",
        "acme.example",
        "--maintenance",
        "on",
    ]);
    assert!(
        e.contains("only administrators and legal representatives of Acme"),
        "{e}"
    );

    // Machine-readable errors with --json.
    let r = d.run(&[
        "--json",
        "address",
        "add",
        "info@acme.example",
        "--password",
        PW,
    ]);
    assert!(!r.ok);
    let v: serde_json::Value = serde_json::from_str(r.stderr.trim()).unwrap();
    assert_eq!(v["error"]["code"], "already_exists");

    // Usage errors come from the argument parser, with exit status 2.
    let out = d
        .command(&[
            "user",
            "add",
            "z@acme.example",
            "--org",
            "Acme",
            "--role",
            "boss",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("possible values"));

    // Nothing of the refusals was written.
    let all = d.json(&["address", "list", "acme.example"]);
    let names: Vec<_> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["address"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["info@acme.example", "x@acme.example"]);
}

#[test]
fn fifty_first_address_within_24h_is_refused() {
    let d = Data::sqlite();
    d.service("big.example", "pro", Some(100));
    let mut csv = String::from("local_part,password,forward_to,delete_after_forward\n");
    for i in 0..50 {
        csv.push_str(&format!("user{i:02},{PW},,\n"));
    }
    let file = d.write("fifty.csv", &csv);
    let report = d.json(&["address", "import", "big.example", file.to_str().unwrap()]);
    assert_eq!(
        (report["created"].as_i64(), report["refused"].as_i64()),
        (Some(50), Some(0))
    );
    let e = d.fails(&["address", "add", "user50@big.example", "--password", PW]);
    assert!(
        e.contains("limit of 50 new addresses per 24 hours reached for mail service big.example"),
        "{e}"
    );
    // Deleting one does not help: creations are counted, not addresses.
    d.ok(&["address", "del", "user00@big.example"]);
    d.fails(&["address", "add", "user50@big.example", "--password", PW]);
    // The operator lifts the limit for this service.
    d.ok(&[
        "service",
        "set",
        "big.example",
        "--new-address-limit",
        "100",
    ]);
    d.ok(&["address", "add", "user50@big.example", "--password", PW]);
}

#[test]
fn csv_import_reports_every_row_and_creates_nothing_half() {
    let d = Data::sqlite();
    d.service("acme.example", "standard", Some(10));
    let file = d.write(
        "import.csv",
        &format!(
            "\u{feff}Adresse;Passwort;Weiterleitung;Löschen\r\n\
             anna;{PW};;\r\n\
             bert;short;;\r\n\
             \"cé\";{PW};;\r\n\
             dora;{PW};not-an-address;0\r\n\
             emil;{PW};emil@elsewhere.example;2\r\n\
             fritz;{PW};fritz@elsewhere.example;1\r\n\
             anna;{PW};;\r\n\
             gina;{PW};;;extra\r\n"
        ),
    );
    let r = d.run(&["address", "import", "acme.example", file.to_str().unwrap()]);
    assert!(!r.ok, "refused rows make the command fail");
    assert_eq!(
        r.stderr.trim(),
        "error: 6 of 8 rows refused (see the report)"
    );
    let report = r.stdout;
    for (line, needle) in [
        ("2 ", "created"),
        ("3 ", "password too weak"),
        ("4 ", "invalid local part"),
        ("5 ", "invalid forwarding address"),
        ("6 ", "column D"),
        ("7 ", "created"),
        ("8 ", "anna@acme.example is already on line 2 of this file"),
        ("9 ", "more than four columns"),
    ] {
        let row = report
            .lines()
            .find(|l| l.starts_with(line))
            .unwrap_or_else(|| panic!("no row {line}: {report}"));
        assert!(row.contains(needle), "row {line}: {row}");
    }
    assert!(report.contains("2 created, 6 refused"), "{report}");
    let all = d.json(&["address", "list", "acme.example"]);
    let names: Vec<_> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["local_part"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["anna", "fritz"]);
    let fritz = d.json(&["address", "show", "fritz@acme.example"]);
    assert_eq!(
        (
            fritz["forward_to"][0].as_str(),
            fritz["forward_keep_copy"].as_bool()
        ),
        (Some("fritz@elsewhere.example"), Some(false))
    );

    let no_header = d.write("noheader.csv", &format!("anna2,{PW}\n"));
    let e = d.fails(&[
        "address",
        "import",
        "acme.example",
        no_header.to_str().unwrap(),
    ]);
    assert!(e.contains("must be the header row"), "{e}");
    let e = d.fails(&["address", "import", "acme.example", "/nonexistent.csv"]);
    assert!(e.contains("cannot read /nonexistent.csv"), "{e}");
}

#[test]
fn password_can_come_from_stdin() {
    let d = Data::sqlite();
    d.service("acme.example", "standard", None);
    let mut child = d
        .command(&["address", "add", "in@acme.example", "--password", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PW}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("Generated"),
        "the given password is used"
    );
}

/// Issue: "two CLI processes adding addresses to the same service at once never exceed the quota".
fn concurrent_processes(d: &Data) {
    d.service("race.example", "standard", None); // quota 5
    // Two imports of 5 different rows each, at the same time.
    let mk = |prefix: &str| {
        let rows: String = (0..5).map(|i| format!("{prefix}{i},{PW},,\n")).collect();
        d.write(
            &format!("{prefix}.csv"),
            &format!("local_part,password\n{rows}"),
        )
    };
    let (a, b) = (mk("a"), mk("b"));
    let children: Vec<_> = [a, b]
        .iter()
        .map(|f| {
            d.command(&[
                "--json",
                "address",
                "import",
                "race.example",
                f.to_str().unwrap(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let mut created = 0;
    for c in children {
        let out = c.wait_with_output().unwrap();
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
        created += report["created"].as_i64().unwrap();
        for row in report["rows"].as_array().unwrap() {
            assert!(
                row["status"] == "created" || row["code"] == "quota_exceeded",
                "{row}"
            );
        }
    }
    assert_eq!(created, 5);
    assert_eq!(
        d.json(&["service", "show", "race.example"])["addresses_used"].as_i64(),
        Some(5)
    );

    // And eight single `address add` processes racing for three free slots.
    d.ok(&["service", "set", "race.example", "--quota", "8"]);
    let children: Vec<_> = (0..8)
        .map(|i| {
            d.command(&[
                "address",
                "add",
                &format!("c{i}@race.example"),
                "--password",
                PW,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let mut ok = 0;
    for c in children {
        let out = c.wait_with_output().unwrap();
        if out.status.success() {
            ok += 1;
        } else {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("address quota"), "{err}");
        }
    }
    assert_eq!(ok, 3);
    assert_eq!(
        d.json(&["service", "show", "race.example"])["addresses_used"].as_i64(),
        Some(8)
    );
}

#[test]
fn concurrent_processes_sqlite() {
    concurrent_processes(&Data::sqlite());
}

#[test]
fn concurrent_processes_postgres() {
    concurrent_processes(&Data::postgres());
}

#[test]
fn bad_configuration_is_one_line_naming_the_option() {
    let d = Data::sqlite();
    let cfg = d.path().join("postfach.toml");
    let original = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        original.replace("smtp = \"127.0.0.1:2525\"", "smtp = \"not an address\""),
    )
    .unwrap();
    // The file's own value is checked even when the environment sets it for this test run…
    let r = d
        .command(&["org", "list"])
        .env_remove("POSTFACH_LISTEN_SMTP")
        .output()
        .unwrap();
    assert!(!r.status.success());
    let e = String::from_utf8_lossy(&r.stderr).trim().to_string();
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.contains("listen.smtp"), "{e}");
    std::fs::write(&cfg, &original).unwrap();
    // … and environment overrides are checked too.
    let r = d
        .command(&["serve"])
        .env("POSTFACH_LISTEN_HTTP", "nowhere")
        .output()
        .unwrap();
    assert!(!r.status.success());
    let e = String::from_utf8_lossy(&r.stderr);
    assert!(
        e.trim().lines().count() == 1 && e.contains("listen.http"),
        "{e}"
    );
    let r = d
        .command(&["org", "list"])
        .env("POSTFACH_LIMITS_NEW_ADDRESSES_PER_DAY", "lots")
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&r.stderr);
    assert!(
        !r.status.success() && e.contains("POSTFACH_LIMITS_NEW_ADDRESSES_PER_DAY"),
        "{e}"
    );
    std::fs::write(&cfg, format!("{original}\n[typo]\nx = 1\n")).unwrap();
    let e = d.fails(&["org", "list"]);
    assert!(e.contains("unknown field `typo`"), "{e}");
}

/// The README's administering examples run as written (a newcomer types them in order): each
/// `postfach …` line of the block succeeds against a fresh installation, with the file it
/// imports, the password it reads from standard input, and a message in the mailbox it shows.
#[test]
fn the_readme_administering_examples_run_as_written() {
    let readme = include_str!("../../../../README.md");
    let from = readme
        .find("## Administering")
        .expect("an Administering section");
    let block = &readme[from..];
    let start = block.find("```sh\n").expect("a shell block") + "```sh\n".len();
    let block = &block[start..start + block[start..].find("```").unwrap()];
    let d = Data::sqlite();
    let s = crate::support::Server::start(&d);
    std::fs::write(
        d.path().join("addresses.csv"),
        format!("local_part,password,forward_to,delete_after_forward\nsales,{PW},,\n"),
    )
    .unwrap();
    let mut ran = 0;
    for line in block.lines() {
        let line = line.split("  #").next().unwrap().trim();
        let Some(command) = line.strip_prefix("postfach ") else {
            continue;
        };
        if command.starts_with("mailbox show") {
            crate::support::deliver(
                &s,
                "someone@remote.example",
                "info@acme.example",
                "From: someone@remote.example\r\nSubject: hi\r\n\r\nhello\r\n",
            );
            d.wait_messages("info@acme.example", "INBOX", 1);
        }
        let (command, into) = match command.split_once(" > ") {
            Some((c, file)) => (c, Some(file.trim())),
            None => (command, None),
        };
        // Words, with "double quoted" ones kept whole.
        let mut args: Vec<String> = Vec::new();
        for (i, part) in command.split('"').enumerate() {
            if i % 2 == 1 {
                args.push(part.to_string());
            } else {
                args.extend(part.split_whitespace().map(str::to_string));
            }
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut c = d.command(&args);
        c.current_dir(d.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            let _ = stdin.write_all(format!("{PW}\n").as_bytes());
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "`postfach {command}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if let Some(file) = into {
            std::fs::write(d.path().join(file), &out.stdout).unwrap();
        }
        ran += 1;
    }
    assert!(ran >= 20, "the block has the examples: {ran}");
}

/// M6/M7: `address import --template` prints a file the import takes, and an export is in
/// the import's format (its password column empty): filled in, it imports into another
/// mail service.
#[test]
fn the_import_template_and_an_export_import_again() {
    let d = Data::sqlite();
    d.service("acme.example", "standard", Some(10));
    d.service("copy.example", "standard", Some(10));
    let template = d.ok(&["address", "import", "--template"]);
    let file = d.write("template.csv", &template);
    let report = d.json(&["address", "import", "acme.example", file.to_str().unwrap()]);
    assert_eq!(report["created"], 2, "{report}");
    let export = d.ok(&["address", "export", "acme.example"]);
    let filled: String = export
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                format!("{l}\n")
            } else {
                let (local, rest) = l.split_once(',').unwrap();
                format!("{local},{PW}{}\n", &rest[rest.find(',').unwrap()..])
            }
        })
        .collect();
    let file = d.write("export.csv", &filled);
    let report = d.json(&["address", "import", "copy.example", file.to_str().unwrap()]);
    assert_eq!(
        (report["created"].as_i64(), report["refused"].as_i64()),
        (Some(2), Some(0)),
        "{report}"
    );
    let copy = d.ok(&["address", "list", "copy.example"]);
    assert!(copy.contains("sales@copy.example"), "{copy}");
    assert!(
        !d.run(&["address", "import", "acme.example"]).ok,
        "FILE is needed"
    );
}
