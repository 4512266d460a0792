//! Client auto-configuration (P6): what a mail client needs to set up an address of a hosted
//! domain without the user typing server names.
//!
//! - Thunderbird autoconfig (`/.well-known/autoconfig/mail/config-v1.1.xml` and, for the
//!   `autoconfig.DOMAIN` host, `/mail/config-v1.1.xml`; the "clientConfig v1.1" format).
//! - Outlook autodiscover: `POST /autodiscover/autodiscover.xml` with the "outlook"
//!   request/response schema of 2006.
//! - Apple configuration profile (`.mobileconfig`, a property list with a
//!   `com.apple.mail.managed` payload) per address, for iOS and macOS Mail.
//!
//! All advertise the configured host name and client ports: IMAP with implicit TLS, SMTP
//! submission with STARTTLS first and implicit TLS as the fallback, POP3 with implicit TLS.
//! The login is always the full address. Only domains with a mail service here are answered;
//! whether an address exists is not revealed (the same document for every address of a
//! hosted domain).

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use postfach_core::policy::Platform;
use quick_xml::XmlVersion;
use quick_xml::escape::escape;
use quick_xml::events::Event;
use quick_xml::reader::Reader;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::AppState;

#[derive(Debug, Deserialize)]
pub struct AutoconfigQuery {
    /// Thunderbird sends the address the user typed.
    emailaddress: Option<String>,
}

fn xml_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
        body,
    )
        .into_response()
}

fn not_hosted() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "No mail service for this domain here.\n",
    )
        .into_response()
}

/// `local@domain` split, with the domain lower-cased; None for anything else.
fn split_address(address: &str) -> Option<(String, String)> {
    let (local, domain) = address.trim().rsplit_once('@')?;
    // No white space and no control characters: they are never part of an address, and the
    // Apple profile puts the address into a Content-Disposition header, where a control
    // character is invalid (found by the autoconfig_query fuzz target: a 500).
    let bad = |c: char| c.is_whitespace() || c.is_control();
    if local.is_empty() || domain.is_empty() || local.contains(bad) || domain.contains(bad) {
        return None;
    }
    Some((local.to_string(), domain.to_ascii_lowercase()))
}

/// The domain asked about: from the address, else from an `autoconfig.DOMAIN` Host header.
fn requested_domain(query: &AutoconfigQuery, headers: &HeaderMap) -> Option<String> {
    if let Some(address) = &query.emailaddress {
        return split_address(address).map(|(_, d)| d);
    }
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    host.to_ascii_lowercase()
        .strip_prefix("autoconfig.")
        .map(String::from)
}

/// Thunderbird's clientConfig v1.1; `name` is the mail service's display name (what the
/// client shows for the provider).
pub fn thunderbird(domain: &str, name: &str, p: &Platform) -> String {
    let (d, h, n) = (escape(domain), escape(&p.hostname), escape(name));
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1">
  <emailProvider id="{d}">
    <domain>{d}</domain>
    <displayName>{n}</displayName>
    <displayShortName>{d}</displayShortName>
    <incomingServer type="imap">
      <hostname>{h}</hostname>
      <port>{imaps}</port>
      <socketType>SSL</socketType>
      <authentication>password-cleartext</authentication>
      <username>%EMAILADDRESS%</username>
    </incomingServer>
    <incomingServer type="pop3">
      <hostname>{h}</hostname>
      <port>{pop3s}</port>
      <socketType>SSL</socketType>
      <authentication>password-cleartext</authentication>
      <username>%EMAILADDRESS%</username>
    </incomingServer>
    <outgoingServer type="smtp">
      <hostname>{h}</hostname>
      <port>{submission}</port>
      <socketType>STARTTLS</socketType>
      <authentication>password-cleartext</authentication>
      <username>%EMAILADDRESS%</username>
    </outgoingServer>
    <outgoingServer type="smtp">
      <hostname>{h}</hostname>
      <port>{submissions}</port>
      <socketType>SSL</socketType>
      <authentication>password-cleartext</authentication>
      <username>%EMAILADDRESS%</username>
    </outgoingServer>
  </emailProvider>
</clientConfig>
"#,
        imaps = p.imaps_port,
        pop3s = p.pop3s_port,
        submission = p.submission_port,
        submissions = p.submissions_port,
    )
}

pub async fn thunderbird_config(
    State(state): State<AppState>,
    Query(query): Query<AutoconfigQuery>,
    headers: HeaderMap,
) -> Response {
    let Some(domain) = requested_domain(&query, &headers) else {
        return not_hosted();
    };
    match state.dir.hosted_service(&domain).await {
        Ok(Some((domain, name))) => xml_response(
            StatusCode::OK,
            thunderbird(&domain, &name, &state.dir.policy().platform),
        ),
        Ok(None) => not_hosted(),
        Err(e) => crate::error::ApiError::from(e).into_response(),
    }
}

const AUTODISCOVER_RESPONSE_NS: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006";
const OUTLOOK_RESPONSE_NS: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a";

/// The `EMailAddress` of an autodiscover request; None if the body is not one.
fn autodiscover_address(body: &str) -> Option<String> {
    let mut reader = Reader::from_str(body);
    reader.config_mut().trim_text(true);
    let mut in_address = false;
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) => in_address = e.local_name().as_ref() == "EMailAddress",
            Event::Text(t) if in_address => {
                return Some(t.xml_content(XmlVersion::Implicit1_0).trim().to_string());
            }
            Event::End(_) => in_address = false,
            Event::Eof => return None,
            _ => {}
        }
    }
}

/// A GET of the autodiscover document (a browser, a probe): Outlook's own error answer, as
/// an Exchange server gives it (600, invalid request), not an API error.
pub async fn autodiscover_get() -> Response {
    xml_response(StatusCode::OK, autodiscover_error(600, "Invalid Request"))
}

fn autodiscover_error(code: u32, message: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="{AUTODISCOVER_RESPONSE_NS}">
  <Response>
    <Error Id="0">
      <ErrorCode>{code}</ErrorCode>
      <Message>{}</Message>
      <DebugData />
    </Error>
  </Response>
</Autodiscover>
"#,
        escape(message)
    )
}

/// Outlook's POX autodiscover answer: IMAP, SMTP (STARTTLS on the submission port first,
/// then implicit TLS) and POP3.
pub fn outlook(address: &str, p: &Platform) -> String {
    let (a, h) = (escape(address), escape(&p.hostname));
    let protocol = |kind: &str, port: u16, tls: &str| {
        format!(
            r#"      <Protocol>
        <Type>{kind}</Type>
        <Server>{h}</Server>
        <Port>{port}</Port>
        <DomainRequired>off</DomainRequired>
        <LoginName>{a}</LoginName>
        <SPA>off</SPA>
        {tls}
        <AuthRequired>on</AuthRequired>
      </Protocol>
"#
        )
    };
    let mut protocols = String::new();
    protocols.push_str(&protocol("IMAP", p.imaps_port, "<SSL>on</SSL>"));
    // <Encryption>TLS</Encryption> is STARTTLS, SSL is implicit TLS.
    protocols.push_str(&protocol(
        "SMTP",
        p.submission_port,
        "<Encryption>TLS</Encryption>",
    ));
    protocols.push_str(&protocol(
        "SMTP",
        p.submissions_port,
        "<Encryption>SSL</Encryption>",
    ));
    protocols.push_str(&protocol("POP3", p.pop3s_port, "<SSL>on</SSL>"));
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="{AUTODISCOVER_RESPONSE_NS}">
  <Response xmlns="{OUTLOOK_RESPONSE_NS}">
    <User>
      <DisplayName>{a}</DisplayName>
    </User>
    <Account>
      <AccountType>email</AccountType>
      <Action>settings</Action>
{protocols}    </Account>
  </Response>
</Autodiscover>
"#
    )
}

pub async fn outlook_autodiscover(State(state): State<AppState>, body: String) -> Response {
    let Some((local, domain)) = autodiscover_address(&body)
        .as_deref()
        .and_then(split_address)
    else {
        return xml_response(
            StatusCode::BAD_REQUEST,
            autodiscover_error(600, "Invalid request: no EMailAddress"),
        );
    };
    match state.dir.hosted_domain(&domain).await {
        Ok(Some(domain)) => xml_response(
            StatusCode::OK,
            outlook(&format!("{local}@{domain}"), &state.dir.policy().platform),
        ),
        Ok(None) => xml_response(
            StatusCode::NOT_FOUND,
            autodiscover_error(500, "No mail service for this domain here"),
        ),
        Err(e) => crate::error::ApiError::from(e).into_response(),
    }
}

/// A stable UUID (formatted like RFC 9562's) from a name: the same address always gets the
/// same profile identifiers, so installing a profile again replaces the old one.
fn stable_uuid(name: &str) -> String {
    let h = Sha256::digest(name.as_bytes());
    let hex: String = h[..16].iter().map(|b| format!("{b:02X}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The Apple configuration profile for one address. The password is not in it: the device
/// asks for it when the profile is installed.
pub fn mobileconfig(address: &str, domain: &str, p: &Platform) -> String {
    let (a, d, h) = (escape(address), escape(domain), escape(&p.hostname));
    // Reverse-DNS identifiers under the server's name.
    let reversed: Vec<&str> = p.hostname.split('.').rev().collect();
    let base = escape(reversed.join(".")).into_owned();
    let account_uuid = stable_uuid(&format!("account:{address}"));
    let profile_uuid = stable_uuid(&format!("profile:{address}"));
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>PayloadContent</key>
  <array>
    <dict>
      <key>EmailAccountDescription</key>
      <string>{a}</string>
      <key>EmailAccountName</key>
      <string>{a}</string>
      <key>EmailAccountType</key>
      <string>EmailTypeIMAP</string>
      <key>EmailAddress</key>
      <string>{a}</string>
      <key>IncomingMailServerAuthentication</key>
      <string>EmailAuthPassword</string>
      <key>IncomingMailServerHostName</key>
      <string>{h}</string>
      <key>IncomingMailServerPortNumber</key>
      <integer>{imaps}</integer>
      <key>IncomingMailServerUseSSL</key>
      <true/>
      <key>IncomingMailServerUsername</key>
      <string>{a}</string>
      <key>OutgoingMailServerAuthentication</key>
      <string>EmailAuthPassword</string>
      <key>OutgoingMailServerHostName</key>
      <string>{h}</string>
      <key>OutgoingMailServerPortNumber</key>
      <integer>{submission}</integer>
      <key>OutgoingMailServerUseSSL</key>
      <true/>
      <key>OutgoingMailServerUsername</key>
      <string>{a}</string>
      <key>OutgoingPasswordSameAsIncomingPassword</key>
      <true/>
      <key>PayloadDescription</key>
      <string>Mail account {a}</string>
      <key>PayloadDisplayName</key>
      <string>{a}</string>
      <key>PayloadIdentifier</key>
      <string>{base}.mail.{account_uuid}</string>
      <key>PayloadType</key>
      <string>com.apple.mail.managed</string>
      <key>PayloadUUID</key>
      <string>{account_uuid}</string>
      <key>PayloadVersion</key>
      <integer>1</integer>
      <key>PreventAppSheet</key>
      <false/>
      <key>PreventMove</key>
      <false/>
      <key>SMIMEEnabled</key>
      <false/>
    </dict>
  </array>
  <key>PayloadDescription</key>
  <string>Sets up the mail account {a} on {h}.</string>
  <key>PayloadDisplayName</key>
  <string>Mail: {a}</string>
  <key>PayloadIdentifier</key>
  <string>{base}.profile.{profile_uuid}</string>
  <key>PayloadOrganization</key>
  <string>{d}</string>
  <key>PayloadRemovalDisallowed</key>
  <false/>
  <key>PayloadType</key>
  <string>Configuration</string>
  <key>PayloadUUID</key>
  <string>{profile_uuid}</string>
  <key>PayloadVersion</key>
  <integer>1</integer>
</dict>
</plist>
"#,
        imaps = p.imaps_port,
        submission = p.submission_port,
    )
}

pub async fn apple_profile(State(state): State<AppState>, Path(file): Path<String>) -> Response {
    let address = file.strip_suffix(".mobileconfig").unwrap_or(&file);
    let Some((local, domain)) = split_address(address) else {
        return not_hosted();
    };
    match state.dir.hosted_domain(&domain).await {
        Ok(Some(domain)) => {
            let address = format!("{}@{domain}", local.to_lowercase());
            let body = mobileconfig(&address, &domain, &state.dir.policy().platform);
            let disposition = format!(
                "attachment; filename=\"{}.mobileconfig\"",
                address.replace(['"', '\\'], "")
            );
            (
                StatusCode::OK,
                [
                    (
                        header::CONTENT_TYPE,
                        "application/x-apple-aspen-config; charset=utf-8".to_string(),
                    ),
                    (header::CONTENT_DISPOSITION, disposition),
                ],
                body,
            )
                .into_response()
        }
        Ok(None) => not_hosted(),
        Err(e) => crate::error::ApiError::from(e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (fuzz target autoconfig_query): `GET /apple/%1E…@domain.mobileconfig` gave a
    /// 500 because the control character reached the Content-Disposition header.
    #[test]
    fn addresses_with_control_characters_are_not_addresses() {
        assert_eq!(split_address("\u{1e}\u{1e}fuzz@fuzz.example"), None);
        assert_eq!(split_address("fuzz@fuzz\u{7}.example"), None);
        assert_eq!(split_address("ann b@x.example"), None);
        assert_eq!(
            split_address("Ann@Example.ORG"),
            Some(("Ann".to_string(), "example.org".to_string()))
        );
    }

    #[test]
    fn autodiscover_requests_are_read_with_their_namespace() {
        let body = r#"<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>Ann@Example.ORG</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>"#;
        assert_eq!(
            autodiscover_address(body).as_deref(),
            Some("Ann@Example.ORG")
        );
        assert_eq!(
            split_address("Ann@Example.ORG"),
            Some(("Ann".into(), "example.org".into()))
        );
        assert_eq!(autodiscover_address("<a><b>x</b></a>"), None);
        assert_eq!(autodiscover_address("not xml <"), None);
        assert_eq!(split_address("no-at-sign"), None);
    }

    #[test]
    fn uuids_are_stable_and_well_formed() {
        let u = stable_uuid("x");
        assert_eq!(u, stable_uuid("x"));
        assert_ne!(u, stable_uuid("y"));
        assert_eq!(u.len(), 36);
        assert_eq!(u.matches('-').count(), 4);
    }
}
