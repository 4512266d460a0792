//! Client auto-configuration: Thunderbird's `config-v1.1.xml?emailaddress=…` (query
//! and Host header), Outlook's Autodiscover POST (an XML body) and Apple's profile path, sent
//! as HTTP requests to the real server (`common/server.rs`). Unparseable requests must be
//! refused with a 4xx, never a 5xx, and the server must not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../common/server.rs"]
mod server;

/// Percent-encodes the bytes that cannot stand in a request target, so that inputs reach the
/// query parser instead of being refused by the HTTP framing.
fn target_safe(bytes: &[u8]) -> String {
    let mut s = String::new();
    for &b in bytes {
        if b.is_ascii_graphic() && b != b'#' && b != b'%' {
            s.push(b as char);
        } else if b == b'%' {
            s.push('%');
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

fn header_safe(bytes: &[u8]) -> String {
    bytes
        .iter()
        .filter(|b| b.is_ascii_graphic())
        .map(|&b| b as char)
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let s = server::get();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    // Input: [mode] host \n payload
    let (host, payload) = match rest.iter().position(|&b| b == b'\n') {
        Some(p) => (header_safe(&rest[..p]), &rest[p + 1..]),
        None => ("mail.fuzz.example".to_string(), rest),
    };
    let host = if host.is_empty() {
        "x".to_string()
    } else {
        host
    };
    let request = match mode % 4 {
        0 => format!(
            "GET /mail/config-v1.1.xml?{} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n",
            target_safe(payload)
        )
        .into_bytes(),
        1 => format!(
            "GET /.well-known/autoconfig/mail/config-v1.1.xml?{} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n",
            target_safe(payload)
        )
        .into_bytes(),
        2 => {
            let mut r = format!(
                "POST /autodiscover/autodiscover.xml HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                payload.len()
            )
            .into_bytes();
            r.extend_from_slice(payload);
            r
        }
        _ => format!(
            "GET /apple/{} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n",
            target_safe(payload).replace('?', "%3F")
        )
        .into_bytes(),
    };
    let reply = server::exchange(s.http, &request, false);
    let head = String::from_utf8_lossy(&reply[..reply.len().min(64)]).into_owned();
    let status: u16 = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status line: {head:?}"));
    assert!(
        status < 500,
        "server error {status} for {:?}",
        String::from_utf8_lossy(&request)
    );
});
