//! SPF conformance (F4, RFC 7208): every scenario of the openspf.org RFC 7208 test suite
//! (tests/data/rfc7208-tests.json, converted from pyspf 2.0.14's rfc7208-tests.yml; licence
//! beside it), evaluated by our SPF check (`mailauth::spf`) against the scenario's zone served
//! by a real DNS server (tests/data/spf_suite_dns.py, dnslib). A case passes when our result
//! is one the suite accepts.

use std::path::PathBuf;

use mail_auth::SpfResult;
use serde::Deserialize;

use crate::test_dns::ZoneDns;

#[derive(Deserialize)]
struct Scenario {
    description: String,
    zonedata: serde_json::Value,
    tests: std::collections::BTreeMap<String, Case>,
}

#[derive(Deserialize)]
struct Case {
    helo: String,
    host: String,
    mailfrom: String,
    result: Expected,
    /// The text of `exp=` (RFC 7208 §6.2) a "fail" must carry; "DEFAULT" when none.
    explanation: Option<String>,
    #[serde(default)]
    spec: serde_json::Value,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Expected {
    One(String),
    Any(Vec<String>),
}

impl Expected {
    fn accepts(&self, got: &str) -> bool {
        match self {
            Expected::One(r) => r == got,
            Expected::Any(rs) => rs.iter().any(|r| r == got),
        }
    }
}

fn word(r: SpfResult) -> &'static str {
    match r {
        SpfResult::Pass => "pass",
        SpfResult::Fail => "fail",
        SpfResult::SoftFail => "softfail",
        SpfResult::Neutral => "neutral",
        SpfResult::TempError => "temperror",
        SpfResult::PermError => "permerror",
        SpfResult::None => "none",
    }
}

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc7208_test_suite() {
    let text = std::fs::read_to_string(data_dir().join("rfc7208-tests.json")).unwrap();
    let scenarios: Vec<Scenario> = serde_json::from_str(&text).unwrap();
    let mut failures = Vec::new();
    let mut total = 0;
    for scenario in &scenarios {
        let dns = ZoneDns::start(&scenario.zonedata);
        let settings = dns.settings();
        for (name, case) in &scenario.tests {
            total += 1;
            // A fresh resolver per case: its cache must not carry one case's answers (or
            // timeouts) into the next.
            let auth = crate::mailauth::authenticator(&settings).unwrap();
            let ip: std::net::IpAddr = case.host.parse().unwrap();
            let out =
                crate::mailauth::spf(&auth, ip, &case.helo, "mx.receiver.test", &case.mailfrom)
                    .await;
            let got = word(out.result());
            if let Some(want) = &case.explanation {
                let exp = out.explanation().unwrap_or("DEFAULT");
                if got == "fail" && exp != want {
                    failures.push(format!(
                        "{} / {name} (RFC 7208 §6.2): explanation {want:?}, got {exp:?}",
                        scenario.description
                    ));
                }
            }
            if !case.result.accepts(got) {
                failures.push(format!(
                    "{} / {name} (RFC 7208 §{}): expected {:?}, got {got}",
                    scenario.description,
                    case.spec
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| case.spec.to_string()),
                    match &case.result {
                        Expected::One(r) => vec![r.clone()],
                        Expected::Any(rs) => rs.clone(),
                    }
                ));
            }
        }
    }
    assert!(total > 200, "the whole suite ran ({total} cases)");
    assert!(
        failures.is_empty(),
        "{} of {total} RFC 7208 cases fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
