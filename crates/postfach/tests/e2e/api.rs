//! The JSON admin API over real HTTP: authentication, one happy path per resource, the error
//! format, tenant isolation, and the OpenAPI document (validated by an independent validator).

use serde_json::{Value, json};
use ureq::Agent;

use crate::support::{Data, PW, Server};

/// A small HTTP client on `ureq` that returns (status, JSON body) for every answer.
pub struct Client {
    agent: Agent,
    base: String,
    token: Option<String>,
}

impl Client {
    pub fn new(server: &Server) -> Self {
        let agent: Agent = Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        Client {
            agent,
            base: server.http.clone(),
            token: None,
        }
    }

    pub fn login(server: &Server, login: &str, password: &str) -> Self {
        let mut c = Self::new(server);
        let (status, body) = c.post(
            "/api/v1/auth/login",
            json!({"login": login, "password": password}),
        );
        assert_eq!(status, 200, "login {login}: {body}");
        c.token = Some(body["token"].as_str().unwrap().to_string());
        c
    }

    pub fn with_token(&self, token: &str) -> Self {
        Client {
            agent: self.agent.clone(),
            base: self.base.clone(),
            token: Some(token.to_string()),
        }
    }

    fn finish(resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, Value) {
        let mut resp = resp.expect("HTTP exchange");
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, body)
    }

    fn auth<B>(&self, req: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(t) => req.header("Authorization", &format!("Bearer {t}")),
            None => req,
        }
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        Self::finish(
            self.auth(self.agent.get(format!("{}{path}", self.base)))
                .call(),
        )
    }

    pub fn get_text(&self, path: &str) -> (u16, String, String) {
        let mut resp = self
            .auth(self.agent.get(format!("{}{path}", self.base)))
            .call()
            .unwrap();
        let ct = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        (
            resp.status().as_u16(),
            ct,
            resp.body_mut().read_to_string().unwrap(),
        )
    }

    pub fn delete(&self, path: &str) -> (u16, Value) {
        Self::finish(
            self.auth(self.agent.delete(format!("{}{path}", self.base)))
                .call(),
        )
    }

    pub fn post(&self, path: &str, body: Value) -> (u16, Value) {
        Self::finish(
            self.auth(self.agent.post(format!("{}{path}", self.base)))
                .send_json(body),
        )
    }

    pub fn post_raw(&self, path: &str, content_type: &str, body: &str) -> (u16, Value) {
        Self::finish(
            self.auth(self.agent.post(format!("{}{path}", self.base)))
                .header("Content-Type", content_type)
                .send(body),
        )
    }

    pub fn put(&self, path: &str, body: Value) -> (u16, Value) {
        Self::finish(
            self.auth(self.agent.put(format!("{}{path}", self.base)))
                .send_json(body),
        )
    }

    pub fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        Self::finish(
            self.auth(self.agent.patch(format!("{}{path}", self.base)))
                .send_json(body),
        )
    }
}

/// Asserts the API's error format and returns the code.
pub(crate) fn error_code(status: u16, body: &Value, expected_status: u16) -> String {
    assert_eq!(status, expected_status, "{body}");
    let msg = body["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("error format: {body}"));
    assert!(!msg.is_empty());
    body["error"]["code"].as_str().unwrap().to_string()
}

#[test]
fn authentication() {
    let d = Data::sqlite();
    let server = Server::start(&d);
    let anon = Client::new(&server);
    let (s, b) = anon.get("/api/v1/orgs");
    assert_eq!(error_code(s, &b, 401), "unauthenticated");
    let (s, b) = anon.post(
        "/api/v1/auth/login",
        json!({"login": d.admin_login, "password": "wrong"}),
    );
    assert_eq!(error_code(s, &b, 401), "unauthenticated");
    let (s, b) = anon.post(
        "/api/v1/auth/login",
        json!({"login": "nobody@x.example", "password": "wrong"}),
    );
    assert_eq!(error_code(s, &b, 401), "unauthenticated");
    let (s, b) = anon.with_token("pfs_forged").get("/api/v1/me");
    assert_eq!(error_code(s, &b, 401), "unauthenticated");

    let admin = Client::login(&server, &d.admin_login, &d.admin_password);
    let (s, me) = admin.get("/api/v1/me");
    assert_eq!(s, 200);
    assert_eq!(
        (me["login"].as_str(), me["is_operator"].as_bool()),
        (Some(d.admin_login.as_str()), Some(true))
    );
    let (s, _) = admin.post("/api/v1/auth/logout", json!({}));
    assert_eq!(s, 204);
    let (s, b) = admin.get("/api/v1/me");
    assert_eq!(error_code(s, &b, 401), "unauthenticated",);

    // API keys made with the CLI work as bearer tokens.
    let out = d.ok(&["apikey", "add", &d.admin_login, "--name", "ci"]);
    let key = out.lines().find(|l| l.starts_with("pfk_")).unwrap();
    let (s, _) = anon.with_token(key).get("/api/v1/orgs");
    assert_eq!(s, 200);
    // Failed and successful logins are in the account's activity log.
    let (_, log) = anon.with_token(key).get("/api/v1/audit?limit=100");
    let actions: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"user.login") && actions.contains(&"user.login_failed"),
        "{actions:?}"
    );
}

#[test]
fn repeated_failed_logins_are_throttled() {
    let d = Data::sqlite();
    let server = Server::start(&d);
    let anon = Client::new(&server);
    for _ in 0..5 {
        let (s, b) = anon.post(
            "/api/v1/auth/login",
            json!({"login": d.admin_login, "password": "guess"}),
        );
        assert_eq!(error_code(s, &b, 401), "unauthenticated");
    }
    // Now even the right password is not checked from this client for a while.
    let mut resp = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent()
        .post(format!("{}/api/v1/auth/login", server.http))
        .send_json(json!({"login": d.admin_login, "password": d.admin_password}))
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    let retry: i64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
    let body: Value = resp.body_mut().read_json().unwrap();
    assert_eq!(body["error"]["code"], "too_many_attempts");
    // Other accounts are not affected by one account's failures below the per-IP limit.
    d.ok(&["org", "add", "Acme"]);
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
    Client::login(&server, "carla@acme.example", PW);
}

#[test]
fn every_resource_over_http() {
    let d = Data::sqlite();
    let server = Server::start(&d);
    let op = Client::login(&server, &d.admin_login, &d.admin_password);

    // Organizations and domains.
    let (s, org) = op.post("/api/v1/orgs", json!({"name": "Acme"}));
    assert_eq!((s, org["name"].as_str()), (201, Some("Acme")));
    let (s, orgs) = op.get("/api/v1/orgs");
    assert_eq!((s, orgs.as_array().unwrap().len()), (200, 1));
    let (s, dom) = op.post("/api/v1/orgs/Acme/domains", json!({"name": "Acme.Example"}));
    assert_eq!((s, dom["name"].as_str()), (201, Some("acme.example")));
    let (s, doms) = op.get("/api/v1/domains?org=Acme");
    assert_eq!((s, doms[0]["name"].as_str()), (200, Some("acme.example")));

    // Services.
    let (s, svc) = op.post(
        "/api/v1/services",
        json!({"org": "Acme", "domain": "acme.example", "offer": "standard", "tags": ["eu"]}),
    );
    assert_eq!(
        (
            s,
            svc["address_quota"].as_i64(),
            svc["daily_send_limit"].as_i64()
        ),
        (201, Some(5), Some(1440))
    );
    let (s, svc) = op.patch(
        "/api/v1/services/acme.example",
        json!({"name": "Sales", "quota": 7}),
    );
    assert_eq!(
        (s, svc["name"].as_str(), svc["address_quota"].as_i64()),
        (200, Some("Sales"), Some(7))
    );
    let (s, list) = op.get("/api/v1/services");
    assert_eq!((s, list.as_array().unwrap().len()), (200, 1));
    let (s, one) = op.get("/api/v1/services/acme.example");
    assert_eq!((s, one["name"].as_str()), (200, Some("Sales")));

    // Addresses.
    let (s, a) = op.post(
        "/api/v1/services/acme.example/addresses",
        json!({"local_part": "info", "password": PW, "storage_quota_mib": 100}),
    );
    assert_eq!(
        (s, a["address"].as_str(), a["storage_quota_bytes"].as_i64()),
        (201, Some("info@acme.example"), Some(100 << 20))
    );
    assert!(a.get("generated_password").is_none(), "{a}");
    // S1: without a password the service layer generates one (as the CLI does), shown once.
    let (s, made) = op.post(
        "/api/v1/services/acme.example/addresses",
        json!({"local_part": "gen"}),
    );
    assert_eq!(
        (s, made["address"].as_str()),
        (201, Some("gen@acme.example")),
        "{made}"
    );
    let generated = made["generated_password"].as_str().unwrap().to_string();
    assert!(generated.len() >= 16, "{generated}");
    let (s, listed) = op.get("/api/v1/services/acme.example/addresses?search=gen");
    assert_eq!(s, 200);
    assert!(
        listed[0].get("generated_password").is_none(),
        "shown once only"
    );
    let (s, _) = op.delete("/api/v1/addresses/gen@acme.example");
    assert_eq!(s, 200);
    let (s, a) = op.patch(
        "/api/v1/addresses/info@acme.example",
        json!({"forward_to": ["boss@elsewhere.example"], "may_change_folders": false}),
    );
    assert_eq!(
        (
            s,
            a["forward_to"][0].as_str(),
            a["may_change_folders"].as_bool()
        ),
        (200, Some("boss@elsewhere.example"), Some(false))
    );
    let (s, _) = op.put(
        "/api/v1/addresses/info@acme.example/password",
        json!({"password": "An0ther!Passw0rd"}),
    );
    assert_eq!(s, 204);
    let (s, got) = op.get("/api/v1/addresses/info@acme.example");
    assert_eq!(
        (s, got["address"].as_str()),
        (200, Some("info@acme.example"))
    );
    let (s, b) = op.post(
        "/api/v1/addresses/info@acme.example/rename",
        json!({"new_local_part": "contact"}),
    );
    assert_eq!(error_code(s, &b, 422), "rename_not_supported");
    assert!(b["error"]["message"].as_str().unwrap().contains("alias"));

    // Import and export.
    let csv =
        format!("local_part,password,forward_to,delete_after_forward\nanna,{PW},,\nbert,weak,,\n");
    let (s, report) = op.post_raw(
        "/api/v1/services/acme.example/addresses/import",
        "text/csv",
        &csv,
    );
    assert_eq!(
        (s, report["created"].as_i64(), report["refused"].as_i64()),
        (200, Some(1), Some(1))
    );
    assert_eq!(report["rows"][1]["code"], "weak_password");
    let (s, ct, text) = op.get_text("/api/v1/services/acme.example/addresses/export");
    assert_eq!(s, 200);
    assert!(ct.starts_with("text/csv"), "{ct}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("anna,") && l.contains(",anna@acme.example,")),
        "{text}"
    );
    let (s, list) = op.get("/api/v1/services/acme.example/addresses?search=ann");
    assert_eq!((s, list.as_array().unwrap().len()), (200, 1));

    // Aliases.
    let (s, al) = op.post(
        "/api/v1/services/acme.example/aliases",
        json!({"alias": "sales", "target": "info"}),
    );
    assert_eq!(
        (s, al["alias"].as_str(), al["target"].as_str()),
        (201, Some("sales@acme.example"), Some("info@acme.example"))
    );
    let (s, als) = op.get("/api/v1/services/acme.example/aliases");
    assert_eq!((s, als.as_array().unwrap().len()), (200, 1));
    let (s, _) = op.delete("/api/v1/aliases/sales@acme.example");
    assert_eq!(s, 200);
    let (s, gone) = op.delete("/api/v1/addresses/anna@acme.example");
    assert_eq!(
        (s, gone["address"].as_str()),
        (200, Some("anna@acme.example"))
    );

    // Users, roles, grants, API keys.
    let (s, u) = op.post(
        "/api/v1/orgs/Acme/users",
        json!({"login": "carla@acme.example", "role": "admin", "password": PW}),
    );
    assert_eq!((s, u["generated_password"].clone()), (201, Value::Null));
    let (s, u) = op.post(
        "/api/v1/orgs/Acme/users",
        json!({"login": "bob@acme.example", "role": "collaborator"}),
    );
    assert_eq!(s, 201);
    let bob_pw = u["generated_password"].as_str().unwrap().to_string();
    let carla = Client::login(&server, "carla@acme.example", PW);
    let (s, _) = carla.put(
        "/api/v1/users/bob@acme.example/grants/acme.example",
        json!({"level": "use"}),
    );
    assert_eq!(s, 200);
    let bob = Client::login(&server, "bob@acme.example", &bob_pw);
    let (s, list) = bob.get("/api/v1/services/acme.example/addresses");
    assert_eq!((s, list.as_array().unwrap().len()), (200, 1), "{list}");
    let (s, b) = bob.post(
        "/api/v1/services/acme.example/addresses",
        json!({"local_part": "x", "password": PW}),
    );
    assert_eq!(error_code(s, &b, 403), "forbidden");
    let (s, _) = carla.delete("/api/v1/users/bob@acme.example/grants/acme.example");
    assert_eq!(s, 200);
    let (s, b) = bob.get("/api/v1/services/acme.example/addresses");
    assert_eq!(error_code(s, &b, 403), "forbidden");
    let (s, u) = carla.put(
        "/api/v1/orgs/Acme/users/bob@acme.example/role",
        json!({"role": "external"}),
    );
    assert_eq!(
        (s, u["memberships"][0]["role"].as_str()),
        (200, Some("external"))
    );
    let (s, users) = carla.get("/api/v1/orgs/Acme/users");
    assert_eq!((s, users.as_array().unwrap().len()), (200, 2));
    let (s, _) = bob.put(
        "/api/v1/users/bob@acme.example/password",
        json!({"password": "B0b's-own-pass"}),
    );
    assert_eq!(s, 204);
    let (s, b) = bob.put(
        "/api/v1/users/carla@acme.example/password",
        json!({"password": "B0b's-own-pass"}),
    );
    assert_eq!(error_code(s, &b, 403), "forbidden");
    let (s, k) = carla.post(
        "/api/v1/users/carla@acme.example/api-keys",
        json!({"name": "script"}),
    );
    assert_eq!(s, 201);
    let (s, keys) = carla.get("/api/v1/users/carla@acme.example/api-keys");
    assert_eq!((s, keys.as_array().unwrap().len()), (200, 1));
    let (s, _) = carla
        .with_token(k["token"].as_str().unwrap())
        .get("/api/v1/me");
    assert_eq!(s, 200);
    let (s, _) = carla.delete(&format!(
        "/api/v1/users/carla@acme.example/api-keys/{}",
        keys[0]["id"]
    ));
    assert_eq!(s, 200);
    let (s, u) = carla.get("/api/v1/users/bob@acme.example");
    assert_eq!((s, u["login"].as_str()), (200, Some("bob@acme.example")));

    // Audit.
    let (s, log) = carla.get("/api/v1/audit?org=Acme&limit=500");
    assert_eq!(s, 200);
    let actions: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in [
        "org.create",
        "service.create",
        "address.create",
        "address.import",
        "alias.delete",
        "user.grant",
        "user.revoke",
    ] {
        assert!(actions.contains(&a), "{a} in {actions:?}");
    }
}

#[test]
fn error_format_and_tenant_isolation() {
    let d = Data::sqlite();
    d.service("acme.example", "starter", None);
    d.ok(&["org", "add", "Rival"]);
    d.ok(&[
        "user",
        "add",
        "eve@rival.example",
        "--org",
        "Rival",
        "--role",
        "admin",
        "--password",
        PW,
    ]);
    let server = Server::start(&d);
    let op = Client::login(&server, &d.admin_login, &d.admin_password);

    // Malformed requests get the JSON error format, not plain text.
    let (s, b) = op.post_raw("/api/v1/orgs", "application/json", "{not json");
    assert_eq!(error_code(s, &b, 400), "invalid_input");
    let (s, b) = op.post("/api/v1/orgs", json!({"nam": "x"}));
    assert_eq!(error_code(s, &b, 400), "invalid_input");
    let (s, b) = op.post(
        "/api/v1/services/acme.example/addresses",
        json!({"local_part": "a", "password": "short"}),
    );
    assert_eq!(error_code(s, &b, 422), "weak_password");
    let (s, b) = op.get("/api/v1/audit?limit=many");
    assert_eq!(error_code(s, &b, 400), "invalid_input");
    let (s, b) = op.delete("/api/v1/orgs");
    assert_eq!(error_code(s, &b, 405), "method_not_allowed");
    let (s, b) = op.get("/api/v1/nothing-here");
    assert_eq!(error_code(s, &b, 404), "not_found");
    let (s, b) = op.post(
        "/api/v1/services/acme.example/addresses",
        json!({"local_part": "catchall", "password": PW}),
    );
    assert_eq!(error_code(s, &b, 409), "catchall_not_available");
    let (s, _) = op.post(
        "/api/v1/services/acme.example/addresses",
        json!({"local_part": "one", "password": PW}),
    );
    assert_eq!(s, 201);
    let (s, b) = op.post(
        "/api/v1/services/acme.example/addresses",
        json!({"local_part": "two", "password": PW}),
    );
    assert_eq!(error_code(s, &b, 409), "quota_exceeded");
    let (s, b) = op.post(
        "/api/v1/services/acme.example/addresses",
        json!({"local_part": "one", "password": PW}),
    );
    assert_eq!(error_code(s, &b, 409), "already_exists");
    let (s, b) = op.get("/api/v1/services/unknown.example");
    assert_eq!(error_code(s, &b, 404), "not_found");

    // Another organization's administrator cannot see or touch Acme's service.
    let eve = Client::login(&server, "eve@rival.example", PW);
    for path in [
        "/api/v1/services/acme.example",
        "/api/v1/services/acme.example/addresses",
        "/api/v1/addresses/one@acme.example",
        "/api/v1/orgs/Acme/users",
    ] {
        let (s, b) = eve.get(path);
        assert_eq!(error_code(s, &b, 404), "not_found", "{path}");
    }
    let (s, b) = eve.delete("/api/v1/addresses/one@acme.example");
    assert_eq!(error_code(s, &b, 404), "not_found");
    let (s, b) = eve.post("/api/v1/orgs", json!({"name": "Evil"}));
    assert_eq!(error_code(s, &b, 403), "forbidden");
    let (_, list) = eve.get("/api/v1/services");
    assert_eq!(list.as_array().unwrap().len(), 0);
    assert!(
        d.ok(&["address", "list", "acme.example"])
            .contains("one@acme.example"),
        "still there"
    );
}

#[test]
fn openapi_document_validates_and_covers_the_routes() {
    let d = Data::sqlite();
    let server = Server::start(&d);
    let (s, doc) = Client::new(&server).get("/api/v1/openapi.json");
    assert_eq!(s, 200);
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/v1/auth/login",
        "/api/v1/orgs",
        "/api/v1/services/{domain}/addresses",
        "/api/v1/services/{domain}/addresses/import",
        "/api/v1/addresses/{address}",
        "/api/v1/audit",
    ] {
        assert!(paths.contains_key(p), "{p} documented");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    let file = d.path().join("openapi.json");
    std::fs::write(&file, doc.to_string()).unwrap();
    // An independent validator (Python openapi-spec-validator, installed by scripts/test).
    let out = std::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "openapi-spec-validator (pip install openapi-spec-validator): {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
