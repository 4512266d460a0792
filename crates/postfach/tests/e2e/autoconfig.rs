//! Client auto-configuration (P6) over real HTTP, each document parsed by an
//! independent parser: Python's ElementTree for Thunderbird's and Outlook's XML, plistlib for
//! Apple's configuration profile.

use serde_json::{Value, json};

use crate::api::Client;
use crate::support::{Data, PW, Server, python};

/// Advertised ports as a real deployment has them (the listeners are on ephemeral ports).
const PORTS: [(&str, &str); 4] = [
    ("POSTFACH_CLIENTS_IMAPS_PORT", "993"),
    ("POSTFACH_CLIENTS_POP3S_PORT", "995"),
    ("POSTFACH_CLIENTS_SUBMISSION_PORT", "587"),
    ("POSTFACH_CLIENTS_SUBMISSIONS_PORT", "465"),
];

fn setup() -> (Data, Server) {
    let d = Data::sqlite();
    d.service("acme.example", "standard", Some(10));
    d.ok(&["address", "add", "ann@acme.example", "--password", PW]);
    d.ok(&["service", "set", "acme.example", "--name", "Acme Mail"]);
    let s = Server::start_opts(&d, &json!({}), &PORTS);
    (d, s)
}

/// Parses `doc` with a Python script that prints JSON.
fn parse(script: &str, doc: &str) -> Value {
    let r = python(script, &[doc]);
    assert!(r.ok, "the document does not parse: {}\n{doc}", r.stderr);
    serde_json::from_str(&r.stdout).unwrap()
}

const THUNDERBIRD: &str = "import sys, json, xml.etree.ElementTree as ET\n\
root = ET.fromstring(sys.argv[1])\n\
assert root.tag == 'clientConfig' and root.get('version') == '1.1'\n\
p = root.find('emailProvider')\n\
servers = [dict(kind=s.tag, type=s.get('type'), host=s.findtext('hostname'), port=int(s.findtext('port')),\n\
  socket=s.findtext('socketType'), auth=s.findtext('authentication'), user=s.findtext('username'))\n\
  for s in list(p) if s.tag in ('incomingServer', 'outgoingServer')]\n\
print(json.dumps(dict(domain=p.findtext('domain'), name=p.findtext('displayName'), servers=servers)))\n";

#[test]
fn thunderbird_autoconfig_for_hosted_domains_only() {
    let (_d, s) = setup();
    let c = Client::new(&s);
    for path in [
        "/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=ann%40acme.example",
        "/mail/config-v1.1.xml?emailaddress=Someone%40ACME.example",
    ] {
        let (status, ct, body) = c.get_text(path);
        assert_eq!(status, 200, "{path}: {body}");
        assert!(ct.starts_with("application/xml"), "{ct}");
        let doc = parse(THUNDERBIRD, &body);
        assert_eq!(doc["domain"], "acme.example");
        // The provider is named as the mail service is (M2: its display name).
        assert_eq!(doc["name"], "Acme Mail");
        let servers: Vec<(String, String, u64, String)> = doc["servers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                assert_eq!(s["host"], "mail.e2e.test");
                assert_eq!(s["user"], "%EMAILADDRESS%");
                assert_eq!(s["auth"], "password-cleartext");
                (
                    s["kind"].as_str().unwrap().into(),
                    s["type"].as_str().unwrap().into(),
                    s["port"].as_u64().unwrap(),
                    s["socket"].as_str().unwrap().into(),
                )
            })
            .collect();
        let expected = [
            ("incomingServer", "imap", 993, "SSL"),
            ("incomingServer", "pop3", 995, "SSL"),
            ("outgoingServer", "smtp", 587, "STARTTLS"),
            ("outgoingServer", "smtp", 465, "SSL"),
        ];
        let expected: Vec<(String, String, u64, String)> = expected
            .iter()
            .map(|(a, b, p, c)| (a.to_string(), b.to_string(), *p, c.to_string()))
            .collect();
        assert_eq!(
            servers, expected,
            "IMAP first; SMTP with STARTTLS before implicit TLS"
        );
    }
    // The autoconfig.DOMAIN host form, without an address.
    let r = python(
        "import sys, urllib.request\n\
         req = urllib.request.Request(sys.argv[1], headers={'Host': 'autoconfig.acme.example'})\n\
         print(urllib.request.urlopen(req).read().decode())\n",
        &[&format!("{}/mail/config-v1.1.xml", s.http)],
    );
    assert!(
        r.ok && r.stdout.contains("<domain>acme.example</domain>"),
        "{}",
        r.stderr
    );
    let (status, _, _) = c.get_text(
        "/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=x%40elsewhere.example",
    );
    assert_eq!(status, 404, "domains not hosted here get nothing");
}

const OUTLOOK: &str = "import sys, json, xml.etree.ElementTree as ET\n\
ns = {'a': 'http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006',\n\
      'o': 'http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a'}\n\
root = ET.fromstring(sys.argv[1])\n\
acct = root.find('o:Response/o:Account', ns)\n\
protocols = [{c.tag.split('}')[1]: c.text for c in p} for p in acct.findall('o:Protocol', ns)]\n\
out = dict(type=acct.findtext('o:AccountType', namespaces=ns), action=acct.findtext('o:Action', namespaces=ns), protocols=protocols)\n\
print(json.dumps(out))\n";

#[test]
fn outlook_autodiscover_answers_the_pox_request() {
    let (_d, s) = setup();
    let c = Client::new(&s);
    let request = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\
        <Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006\">\
        <Request><EMailAddress>ann@acme.example</EMailAddress>\
        <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>\
        </Request></Autodiscover>";
    let (status, body) = c.post_raw("/autodiscover/autodiscover.xml", "text/xml", request);
    assert_eq!(status, 200, "{body}");
    let doc = parse(OUTLOOK, body.as_str().unwrap());
    assert_eq!(doc["type"], "email");
    assert_eq!(doc["action"], "settings");
    let protocols = doc["protocols"].as_array().unwrap();
    let summary: Vec<(String, String, String, String)> = protocols
        .iter()
        .map(|p| {
            assert_eq!(p["Server"], "mail.e2e.test");
            assert_eq!(p["LoginName"], "ann@acme.example");
            let tls = p["SSL"]
                .as_str()
                .map(|v| format!("SSL={v}"))
                .or_else(|| p["Encryption"].as_str().map(|v| format!("Encryption={v}")))
                .unwrap();
            (
                p["Type"].as_str().unwrap().into(),
                p["Port"].as_str().unwrap().into(),
                tls,
                p["AuthRequired"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expected: Vec<(String, String, String, String)> = [
        ("IMAP", "993", "SSL=on"),
        ("SMTP", "587", "Encryption=TLS"),
        ("SMTP", "465", "Encryption=SSL"),
        ("POP3", "995", "SSL=on"),
    ]
    .iter()
    .map(|(t, p, e)| {
        (
            t.to_string(),
            p.to_string(),
            e.to_string(),
            "on".to_string(),
        )
    })
    .collect();
    assert_eq!(summary, expected);

    let (status, body) = c.post_raw(
        "/Autodiscover/Autodiscover.xml",
        "text/xml",
        "<not-autodiscover/>",
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body.as_str()
            .unwrap()
            .contains("<ErrorCode>600</ErrorCode>"),
        "{body}"
    );
    let other = request.replace("ann@acme.example", "ann@elsewhere.example");
    // A GET (a browser, a probe) gets Outlook's own error document, not an API error.
    for path in [
        "/autodiscover/autodiscover.xml",
        "/Autodiscover/Autodiscover.xml",
    ] {
        let (status, ct, body) = c.get_text(path);
        assert_eq!(status, 200, "{body}");
        assert!(ct.starts_with("application/xml"), "{ct}");
        assert!(body.contains("<ErrorCode>600</ErrorCode>"), "{body}");
    }
    let (status, _) = c.post_raw("/autodiscover/autodiscover.xml", "text/xml", &other);
    assert_eq!(status, 404);
}

const PLIST: &str = "import sys, json, plistlib\n\
p = plistlib.loads(sys.argv[1].encode())\n\
print(json.dumps(p, default=str))\n";

#[test]
fn apple_mobileconfig_is_a_valid_profile_per_address() {
    let (_d, s) = setup();
    let c = Client::new(&s);
    let (status, ct, body) = c.get_text("/apple/ann@acme.example.mobileconfig");
    assert_eq!(status, 200, "{body}");
    assert!(ct.starts_with("application/x-apple-aspen-config"), "{ct}");
    let profile = parse(PLIST, &body);
    assert_eq!(profile["PayloadType"], "Configuration");
    assert_eq!(profile["PayloadVersion"], 1);
    let mail = &profile["PayloadContent"][0];
    assert_eq!(mail["PayloadType"], "com.apple.mail.managed");
    assert_eq!(mail["EmailAddress"], "ann@acme.example");
    assert_eq!(mail["EmailAccountType"], "EmailTypeIMAP");
    assert_eq!(mail["IncomingMailServerHostName"], "mail.e2e.test");
    assert_eq!(mail["IncomingMailServerPortNumber"], 993);
    assert_eq!(mail["IncomingMailServerUseSSL"], true);
    assert_eq!(mail["IncomingMailServerUsername"], "ann@acme.example");
    assert_eq!(mail["OutgoingMailServerHostName"], "mail.e2e.test");
    assert_eq!(mail["OutgoingMailServerPortNumber"], 587);
    assert_eq!(mail["OutgoingMailServerUseSSL"], true);
    assert!(
        mail.get("IncomingPassword").is_none(),
        "no password in the profile"
    );
    assert_ne!(mail["PayloadUUID"], profile["PayloadUUID"]);
    // The same address gets the same identifiers (installing again replaces the profile).
    let (_, _, again) = c.get_text("/apple/ann@acme.example.mobileconfig");
    assert_eq!(parse(PLIST, &again)["PayloadUUID"], profile["PayloadUUID"]);
    let (status, _, _) = c.get_text("/apple/ann@elsewhere.example.mobileconfig");
    assert_eq!(status, 404);
}
