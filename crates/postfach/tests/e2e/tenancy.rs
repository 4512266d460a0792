//! Tenancy (M1, M2, M12): what one organization can claim and see of the platform, tried
//! from the outside as a second tenant would, on SQLite and PostgreSQL.

use serde_json::{Value, json};

use crate::api::{Client, error_code};
use crate::support::{Data, PW, Peer, Server};

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
    // The platform's own names (its host name mail.e2e.test, the domain above it and names
    // below it) are the operator's.
    for name in ["mail.e2e.test", "e2e.test", "mx.e2e.test"] {
        let e = d.fails(&as_bob(&["domain", "add", name, "--org", "Bee"]));
        assert!(e.contains("belongs to the platform"), "{name}: {e}");
    }
    // A name below another organization's domain that was verified after it was claimed is
    // still not verified by its TXT record: the parent rule is asked again.
    d.ok(&as_bob(&["domain", "add", "parent.test", "--org", "Bee"]));
    let sub = d.json(&[
        "--as",
        "carla@acme.example",
        "domain",
        "add",
        "x.parent.test",
        "--org",
        "Acme",
    ]);
    assert_eq!(sub["status"], "pending", "{sub}");
    let parent_txt = d
        .json(&as_bob(&["domain", "list", "--org", "Bee"]))
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "parent.test")
        .unwrap()["verification"]["value"]
        .as_str()
        .unwrap()
        .to_string();
    let zone = json!({
        "parent.test.": [["TXT", parent_txt]],
        "x.parent.test.": [["TXT", sub["verification"]["value"].as_str().unwrap()]],
    });
    let dns2 = Peer::dns(d.path(), &zone);
    let (ok, out, err) = with_dns(&d, &dns2, &as_bob(&["domain", "verify", "parent.test"]));
    assert!(ok, "{out}{err}");
    let (ok, _, err) = with_dns(
        &d,
        &dns2,
        &[
            "--as",
            "carla@acme.example",
            "domain",
            "verify",
            "x.parent.test",
        ],
    );
    assert!(!ok && err.contains("another organization"), "{err}");
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

/// The login of `body`'s sentences replaced, to compare two answers for different logins.
fn without(body: &serde_json::Value, login: &str) -> String {
    body.to_string().replace(login, "LOGIN")
}

/// M1 over the API: administrators invite instead of adding accounts, and no answer tells
/// them whether a login has an account elsewhere; the invitee accepts (logged in, or with
/// the mailed token when the account is new); collaborators and externals see only what
/// they were granted; refused attempts are in the organization's activity log (M12).
fn invitations_and_visibility(d: Data) {
    d.service("acme.example", "standard", Some(10));
    d.ok(&["address", "add", "newbie@acme.example", "--password", PW]);
    d.ok(&["org", "add", "Bee"]);
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
    let s = Server::start(&d);
    let carla = Client::login(&s, "carla@acme.example", PW);
    let (bob_login, ghost) = ("bob@bee.test", "ghost@nowhere.test");

    // Adding an account directly is the operator's; the refusal is the same for any login.
    let (s1, b1) = carla.post(
        "/api/v1/orgs/Acme/users",
        json!({"login": bob_login, "role": "external"}),
    );
    let (s2, b2) = carla.post(
        "/api/v1/orgs/Acme/users",
        json!({"login": ghost, "role": "external"}),
    );
    assert_eq!(error_code(s1, &b1, 403), "forbidden");
    assert_eq!((s1, without(&b1, bob_login)), (s2, without(&b2, ghost)));
    // Looking accounts up, or granting them, answers alike for an account of another
    // organization and for no account at all.
    for (method, path) in [
        ("get", "/api/v1/users/{}"),
        ("put", "/api/v1/users/{}/grants/acme.example"),
        ("put", "/api/v1/orgs/Acme/users/{}/role"),
    ] {
        let call = |login: &str| {
            let path = path.replace("{}", login);
            match method {
                "get" => carla.get(&path),
                _ if path.ends_with("/role") => carla.put(&path, json!({"role": "admin"})),
                _ => carla.put(&path, json!({"level": "use"})),
            }
        };
        let ((s1, b1), (s2, b2)) = (call(bob_login), call(ghost));
        assert_eq!(s1, 404, "{path}: {b1}");
        assert_eq!(
            (s1, without(&b1, bob_login)),
            (s2, without(&b2, ghost)),
            "{path}"
        );
    }
    // Invitations: the same answer for an existing account and for a new login.
    let (s1, existing) = carla.post(
        "/api/v1/orgs/Acme/invitations",
        json!({"login": bob_login, "role": "external"}),
    );
    let (s2, new) = carla.post(
        "/api/v1/orgs/Acme/invitations",
        json!({"login": "newbie@acme.example", "role": "external"}),
    );
    assert_eq!((s1, s2), (201, 201), "{existing} {new}");
    let shape = |v: &serde_json::Value| {
        let mut v = v.clone();
        for k in ["login", "created_at", "expires_at"] {
            v[k] = json!(null);
        }
        v
    };
    assert_eq!(shape(&existing), shape(&new));
    let (_, pending) = carla.get("/api/v1/orgs/Acme/invitations");
    assert_eq!(pending.as_array().unwrap().len(), 2, "{pending}");
    // Still not a member: nothing of bob is visible to Acme.
    let (st, b) = carla.get("/api/v1/users/bob@bee.test");
    assert_eq!(error_code(st, &b, 404), "not_found");

    // Bob accepts, logged in; nobody else can accept for him.
    let bob = Client::login(&s, bob_login, PW);
    let (_, mine) = bob.get("/api/v1/me/invitations");
    assert_eq!(mine[0]["org"], "Acme", "{mine}");
    let (st, b) = carla.post("/api/v1/me/invitations/Acme/accept", json!({}));
    assert_eq!(error_code(st, &b, 404), "not_found");
    let (st, joined) = bob.post("/api/v1/me/invitations/Acme/accept", json!({}));
    assert_eq!(st, 200, "{joined}");
    assert!(
        joined["memberships"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["org"] == "Acme" && m["role"] == "external"),
        "{joined}"
    );

    // The new login gets the invitation by mail, and its token sets the password.
    let mail = d.wait_messages("newbie@acme.example", "INBOX", 1);
    let uid = mail[0]["uid"].as_i64().unwrap();
    let raw = d.message("newbie@acme.example", uid);
    assert!(raw.contains("Auto-Submitted: auto-generated"), "{raw}");
    let at = raw.find("pfi_").expect("the token is in the mail");
    let token: String = raw[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let anon = Client::new(&s);
    let (st, b) = anon.post(
        "/api/v1/invitations/activate",
        json!({"token": token, "password": "password"}),
    );
    assert_eq!(error_code(st, &b, 422), "weak_password");
    let (st, b) = anon.post(
        "/api/v1/invitations/activate",
        json!({"token": format!("{token}x"), "password": PW}),
    );
    assert_eq!(error_code(st, &b, 401), "unauthenticated");
    let (st, u) = anon.post(
        "/api/v1/invitations/activate",
        json!({"token": token, "password": PW}),
    );
    assert_eq!(st, 200, "{u}");
    Client::login(&s, "newbie@acme.example", PW);
    let (st, b) = anon.post(
        "/api/v1/invitations/activate",
        json!({"token": token, "password": PW}),
    );
    assert_eq!(
        error_code(st, &b, 401),
        "unauthenticated",
        "a token works once"
    );

    // An external sees itself and the granted services' domains, nothing else.
    let (_, domains) = bob.get("/api/v1/domains?org=Acme");
    assert_eq!(domains, json!([]));
    let (_, users) = bob.get("/api/v1/orgs/Acme/users");
    let logins: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["login"].as_str().unwrap())
        .collect();
    assert_eq!(logins, [bob_login]);
    let (st, _) = carla.put(
        "/api/v1/users/bob@bee.test/grants/acme.example",
        json!({"level": "use"}),
    );
    assert_eq!(st, 200);
    let (_, domains) = bob.get("/api/v1/domains?org=Acme");
    assert_eq!(domains[0]["name"], "acme.example", "{domains}");
    // Refused attempts are logged for the organization, naming who tried.
    let (st, b) = bob.patch(
        "/api/v1/services/acme.example",
        json!({"maintenance": true}),
    );
    assert_eq!(error_code(st, &b, 403), "forbidden");
    let refused = crate::support::wait_until(std::time::Duration::from_secs(5), || {
        let (_, log) = carla.get("/api/v1/audit?org=Acme&limit=200");
        log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "permission.refused" && e["actor"] == "user:bob@bee.test")
    });
    assert!(refused, "the refusal is in Acme's activity log");
}

#[test]
fn invitations_and_visibility_on_sqlite() {
    invitations_and_visibility(Data::sqlite());
}

#[test]
fn invitations_and_visibility_on_postgresql() {
    invitations_and_visibility(Data::postgres());
}

/// M1/M12: API keys can be narrowed to an organization, to mail services, and to reading;
/// the narrowing holds on every route, a key cannot make or widen keys, and the activity log
/// names the key that made a change.
fn scoped_api_keys(d: Data) {
    d.service("acme.example", "standard", Some(10));
    d.service("catch.example", "standard", Some(10));
    d.ok(&["org", "add", "Bee"]);
    d.ok(&["domain", "add", "bee.test", "--org", "Bee"]);
    d.ok(&[
        "service", "add", "bee.test", "--org", "Bee", "--offer", "standard",
    ]);
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
    d.ok(&[
        "user",
        "add",
        "carla@acme.example",
        "--org",
        "Bee",
        "--role",
        "admin",
    ]);
    let s = Server::start(&d);
    let carla = Client::login(&s, "carla@acme.example", PW);
    let key = |body: serde_json::Value| {
        let (st, k) = carla.post("/api/v1/users/carla@acme.example/api-keys", body);
        assert_eq!(st, 201, "{k}");
        carla.with_token(k["token"].as_str().unwrap())
    };
    // A key of one organization.
    let acme = key(json!({"name": "acme-only", "scope": {"org": "Acme"}}));
    let (_, services) = acme.get("/api/v1/services");
    let mut names: Vec<&str> = services
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["domain"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["acme.example", "catch.example"]);
    for path in [
        "/api/v1/services/bee.test",
        "/api/v1/services/bee.test/addresses",
    ] {
        let (st, b) = acme.get(path);
        assert_eq!(error_code(st, &b, 404), "not_found", "{path}");
    }
    let (st, b) = acme.post("/api/v1/orgs/Bee/domains", json!({"name": "new.bee.test"}));
    assert_eq!(error_code(st, &b, 404), "not_found");
    let (st, b) = acme.post(
        "/api/v1/services/acme.example/addresses",
        json!({"local_part": "made-by-key", "password": PW}),
    );
    assert_eq!(st, 201, "{b}");
    // ... and it cannot make itself a wider key, nor change the password.
    let (st, b) = acme.post(
        "/api/v1/users/carla@acme.example/api-keys",
        json!({"name": "wider"}),
    );
    assert_eq!(error_code(st, &b, 403), "forbidden");
    let (st, b) = acme.put(
        "/api/v1/users/carla@acme.example/password",
        json!({"password": "An0ther-Passw0rd!"}),
    );
    assert_eq!(error_code(st, &b, 403), "forbidden");
    // A read-only key of one mail service.
    let shop =
        key(json!({"name": "reader", "scope": {"services": ["acme.example"], "read_only": true}}));
    let (st, list) = shop.get("/api/v1/services/acme.example/addresses");
    assert_eq!(st, 200, "{list}");
    let (st, b) = shop.get("/api/v1/services/catch.example/addresses");
    assert_eq!(error_code(st, &b, 404), "not_found");
    let (st, b) = shop.post(
        "/api/v1/services/acme.example/addresses",
        json!({"local_part": "nope", "password": PW}),
    );
    assert_eq!(error_code(st, &b, 403), "forbidden");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("read-only"),
        "{b}"
    );
    let (st, b) = shop.get("/api/v1/orgs/Acme/invitations");
    assert_eq!(
        error_code(st, &b, 403),
        "forbidden",
        "organization-wide acts"
    );
    // ... nor reads the organization's people and domains.
    for path in ["/api/v1/orgs/Acme/users", "/api/v1/domains?org=Acme"] {
        let (st, b) = shop.get(path);
        assert_eq!(error_code(st, &b, 403), "forbidden", "{path}");
    }
    // A key of one organization lists that one, though its account is in two.
    let (_, orgs) = acme.get("/api/v1/orgs");
    let names: Vec<&str> = orgs
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Acme"], "{orgs}");
    // An outsider's probe: refused as not found, in Acme's log, not in the prober's own view
    // (whether an entry exists would tell that acme.example exists, and whose it is).
    d.ok(&[
        "user",
        "add",
        "eve@bee.test",
        "--org",
        "Bee",
        "--role",
        "admin",
        "--password",
        PW,
    ]);
    let eve = Client::login(&s, "eve@bee.test", PW);
    let (st, b) = eve.get("/api/v1/services/acme.example");
    assert_eq!(error_code(st, &b, 404), "not_found");
    let seen = crate::support::wait_until(std::time::Duration::from_secs(5), || {
        let (_, log) = carla.get("/api/v1/audit?org=Acme&limit=200");
        log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "permission.refused" && e["actor"] == "user:eve@bee.test")
    });
    assert!(seen, "Acme sees the attempt");
    // A probing script cannot fill Acme's log: at most 30 refusals per actor and minute are
    // written (two minutes at most in this loop).
    for _ in 0..100 {
        let (st, _) = eve.get("/api/v1/services/acme.example");
        assert_eq!(st, 404);
    }
    std::thread::sleep(std::time::Duration::from_secs(1));
    let (_, log) = carla.get("/api/v1/audit?org=Acme&limit=1000");
    let logged = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "permission.refused" && e["actor"] == "user:eve@bee.test")
        .count();
    assert!((30..=60).contains(&logged), "{logged} refusals logged");
    let (_, own) = eve.get("/api/v1/audit");
    assert!(
        !own.to_string().contains("acme.example") && !own.to_string().contains("Acme"),
        "{own}"
    );
    // A scope naming what the account does not reach is refused when the key is made.
    let (st, b) = carla.post(
        "/api/v1/users/carla@acme.example/api-keys",
        json!({"name": "x", "scope": {"org": "Acme", "services": ["bee.test"]}}),
    );
    assert_eq!(error_code(st, &b, 400), "invalid_input");
    assert!(b.to_string().contains("not a mail service of Acme"), "{b}");
    let (_, keys) = carla.get("/api/v1/users/carla@acme.example/api-keys");
    assert_eq!(keys[1]["scope"]["read_only"], true, "{keys}");
    // M12: the activity log names the key.
    let (_, log) = carla.get("/api/v1/audit?org=Acme&limit=200");
    let made = log
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "address.create" && e["target"] == "made-by-key@acme.example")
        .unwrap_or_else(|| panic!("{log}"));
    assert_eq!(made["detail"]["api_key"]["name"], "acme-only", "{made}");
}

#[test]
fn scoped_api_keys_on_sqlite() {
    scoped_api_keys(Data::sqlite());
}

#[test]
fn scoped_api_keys_on_postgresql() {
    scoped_api_keys(Data::postgres());
}

/// The tenant-isolation matrix (M1): every operation of the OpenAPI document × every actor
/// (legal representative, administrator, external member without grants, an administrator's
/// API key scoped to its organization, the other organization's administrator) × the
/// objects of both organizations (tools/tenant_matrix.py). Fails on any breach (a success on
/// the other organization's objects, a list naming them, an ungranted external reaching its
/// own organization's mail service) and on any refusal of a manager in its own organization.
fn tenant_matrix(d: Data) {
    let orgs = [("A", "Acme", "acme.example"), ("B", "Bee", "bee.test")];
    d.service("acme.example", "standard", Some(20));
    d.ok(&["org", "add", "Bee"]);
    d.ok(&["domain", "add", "bee.test", "--org", "Bee"]);
    d.ok(&[
        "service", "add", "bee.test", "--org", "Bee", "--offer", "standard", "--quota", "20",
    ]);
    let script = d.write("keep.sieve", "require \"fileinto\";\nkeep;\n");
    let mut objects = serde_json::Map::new();
    let mut actors = serde_json::Map::new();
    for (key, org, dom) in orgs {
        let info = format!("info@{dom}");
        d.ok(&["address", "add", &info, "--password", PW]);
        d.ok(&["alias", "add", &format!("sales@{dom}"), "--to", &info]);
        d.ok(&["sieve", "put", &info, "keep", script.to_str().unwrap()]);
        d.ok(&[
            "autoreply",
            "add",
            &info,
            "--name",
            "away",
            "--message",
            "Away.",
        ]);
        d.ok(&["template", "put", dom, "staff", "--spam", "off"]);
        for role in ["legal", "admin", "external"] {
            let login = format!("{role}@{dom}");
            d.ok(&[
                "user",
                "add",
                &login,
                "--org",
                org,
                "--role",
                role,
                "--password",
                PW,
            ]);
        }
        let ext = format!("external@{dom}");
        let key_id = d.json(&["apikey", "list", &ext]);
        let key_id = match key_id.as_array().and_then(|a| a.first()) {
            Some(k) => k["id"].as_i64().unwrap(),
            None => {
                d.ok(&["apikey", "add", &ext, "--name", "own"]);
                d.json(&["apikey", "list", &ext])[0]["id"].as_i64().unwrap()
            }
        };
        objects.insert(
            key.into(),
            json!({
                "org": org, "domain": dom, "address": info, "alias": format!("sales@{dom}"),
                "member": ext, "key_id": key_id, "script": "keep", "autoreply": "away",
                "template": "staff",
            }),
        );
    }
    let s = Server::start(&d);
    let token = |login: &str| {
        let (st, t) = Client::new(&s).post(
            "/api/v1/auth/login",
            json!({"login": login, "password": PW}),
        );
        assert_eq!(st, 200, "{t}");
        t["token"].as_str().unwrap().to_string()
    };
    for (name, login, home, kind) in [
        ("a_legal", "legal@acme.example", "A", "manager"),
        ("a_admin", "admin@acme.example", "A", "manager"),
        ("a_external", "external@acme.example", "A", "external"),
        ("b_admin", "admin@bee.test", "B", "manager"),
    ] {
        actors.insert(
            name.into(),
            json!({"token": token(login), "home": home, "kind": kind, "login": login}),
        );
    }
    let admin = Client::login(&s, "admin@acme.example", PW);
    let (_, k) = admin.post(
        "/api/v1/users/admin@acme.example/api-keys",
        json!({"name": "acme-key", "scope": {"org": "Acme"}}),
    );
    actors.insert(
        "a_admin_key".into(),
        json!({"token": k["token"], "home": "A", "kind": "manager",
               "login": "admin@acme.example"}),
    );
    let setup = d.write(
        "matrix.json",
        &json!({"actors": actors, "objects": objects}).to_string(),
    );
    let out = crate::support::run_tool("tenant_matrix.py", &[&s.http, setup.to_str().unwrap()]);
    let report: serde_json::Value = serde_json::from_slice(&out).expect("JSON report");
    assert!(
        report["calls"].as_i64().unwrap() > 300,
        "the matrix ran: {report}"
    );
    assert_eq!(report["breaches"], json!([]), "{report}");
    assert_eq!(report["in_tenant_refusals"], json!([]), "{report}");
}

#[test]
fn tenant_matrix_on_sqlite() {
    tenant_matrix(Data::sqlite());
}

#[test]
fn tenant_matrix_on_postgresql() {
    tenant_matrix(Data::postgres());
}

/// The mail protocols stay within their tenant too: an address of Acme logged in over IMAP
/// reaches no folder of Bee's address by any spelling (another user's path, a shared or
/// other-users namespace), cannot append into it, and lists only its own folders; its
/// submission cannot name Bee's address as envelope sender or author (P1); and Bee's mailbox
/// is as it was.
fn protocol_routes(d: Data) {
    d.service("acme.example", "standard", Some(10));
    d.ok(&["org", "add", "Bee"]);
    d.ok(&["domain", "add", "bee.test", "--org", "Bee"]);
    d.ok(&[
        "service", "add", "bee.test", "--org", "Bee", "--offer", "standard",
    ]);
    d.ok(&["address", "add", "info@acme.example", "--password", PW]);
    let bee_pw = "Bee-0wn-Passw0rd!";
    d.ok(&["address", "add", "info@bee.test", "--password", bee_pw]);
    let s = Server::start(&d);
    crate::support::deliver(
        &s,
        "someone@remote.example",
        "info@bee.test",
        &crate::smtp::message(
            "someone@remote.example",
            "info@bee.test",
            "for bee",
            "Private.",
        ),
    );
    d.wait_messages("info@bee.test", "INBOX", 1);
    let mut steps = vec![json!(["login", "info@acme.example", PW])];
    let foreign = [
        "info@bee.test",
        "info@bee.test/INBOX",
        "../info@bee.test/INBOX",
        "Other Users/info@bee.test/INBOX",
        "#shared/INBOX",
        "~info@bee.test/INBOX",
    ];
    for name in foreign {
        steps.push(json!(["select", format!("\"{name}\"")]));
    }
    steps.push(json!([
        "call",
        "status",
        "\"info@bee.test/INBOX\"",
        "(MESSAGES)"
    ]));
    steps.push(json!([
        "append",
        "\"info@bee.test/INBOX\"",
        "",
        null,
        "From: x@acme.example\r\nSubject: planted\r\n\r\nx\r\n"
    ]));
    steps.push(json!(["call", "list", "\"\"", "\"*\""]));
    steps.push(json!(["logout"]));
    let count = steps.len();
    let out = crate::imap::imap(&s, "tls", Value::Array(steps));
    // The tool reports the greeting first, then one entry per step.
    let at = out.len() - count;
    assert_eq!(out[at][0], "OK", "login: {:?}", out[at]);
    for (i, name) in foreign.iter().enumerate() {
        let got = &out[at + 1 + i];
        assert_ne!(got[0], "OK", "SELECT {name}: {got:?}");
    }
    let n = foreign.len();
    assert_ne!(out[at + 1 + n][0], "OK", "STATUS: {:?}", out[at + 1 + n]);
    assert_ne!(out[at + 2 + n][0], "OK", "APPEND: {:?}", out[at + 2 + n]);
    let listed = out[at + 3 + n][1].to_string();
    assert!(
        !listed.contains("bee"),
        "LIST names only own folders: {listed}"
    );
    // Bee's password is not Acme's: no login as Bee with it.
    let out = crate::imap::imap(
        &s,
        "tls",
        json!([["login", "info@bee.test", PW], ["logout"]]),
    );
    assert_ne!(out[out.len() - 2][0], "OK", "{out:?}");
    // Submission: neither the envelope nor the author may be Bee's (P1).
    let r = crate::smtp::smtp(
        s.port("submission"),
        "plain",
        json!([
            ["ehlo", "client.acme.example"],
            ["starttls"],
            ["ehlo", "client.acme.example"],
            ["login", "info@acme.example", PW],
            ["cmd", "MAIL FROM:<info@bee.test>"],
            ["cmd", "RSET"],
            ["cmd", "MAIL FROM:<info@acme.example>"],
            ["cmd", "RCPT TO:<someone@remote.example>"],
            [
                "data",
                "From: info@bee.test\r\nTo: someone@remote.example\r\nSubject: x\r\n\r\nx\r\n"
            ],
            ["quit"]
        ]),
    );
    assert_eq!(r[4].0, 553, "{r:?}");
    assert_eq!(r[8].0, 553, "{r:?}");
    // Bee's mailbox is untouched.
    let bee = d.messages("info@bee.test", "INBOX");
    assert_eq!(bee.len(), 1, "{bee:?}");
    assert_eq!(bee[0]["subject"], "for bee");
}

#[test]
fn protocol_routes_on_sqlite() {
    protocol_routes(Data::sqlite());
}

#[test]
fn protocol_routes_on_postgresql() {
    protocol_routes(Data::postgres());
}
