//! The SMTP session: whatever a client sends — commands, pipelined
//! transactions, DATA and BDAT bodies, AUTH exchanges, overlong lines — on a real connection
//! to the real server (`common/server.rs`), on the MX port or (first byte odd) the submission
//! port. The server must answer every line with a well-formed reply, never panic, and end the
//! session when the client closes.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../common/server.rs"]
mod server;

fuzz_target!(|data: &[u8]| {
    let s = server::get();
    let Some((&port, input)) = data.split_first() else {
        return;
    };
    let addr = if port & 1 == 1 { s.submission } else { s.smtp };
    let reply = server::converse(addr, input);
    let text = String::from_utf8(reply).expect("SMTP replies are UTF-8");
    assert!(text.starts_with("220 "), "no greeting: {text:?}");
    for line in text.split_terminator("\r\n") {
        // RFC 5321 §4.2: every reply line is a three-digit code, then SP or "-".
        let b = line.as_bytes();
        assert!(
            b.len() >= 4 && b[..3].iter().all(u8::is_ascii_digit) && (b[3] == b' ' || b[3] == b'-'),
            "malformed reply line {line:?} in {text:?}"
        );
    }
});
