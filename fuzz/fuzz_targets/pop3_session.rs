//! The POP3 session: arbitrary client input on a real connection to the real server
//! (`common/server.rs`). With the first byte odd the input follows a valid USER/PASS login, so
//! the TRANSACTION state (STAT, LIST, UIDL, RETR, TOP, DELE, RSET, QUIT) is reached too. Every
//! reply must be `+OK`, `-ERR`, a multi-line body ended by ".", or a SASL `+ ` continuation;
//! no panic, and the session ends when the client closes.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../common/server.rs"]
mod server;

fuzz_target!(|data: &[u8]| {
    let s = server::get();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut input = Vec::with_capacity(rest.len() + 64);
    if mode & 1 == 1 {
        input.extend_from_slice(
            format!("USER {}\r\nPASS {}\r\n", server::ADDRESS, server::PASSWORD).as_bytes(),
        );
    }
    input.extend_from_slice(rest);
    let reply = server::converse(s.pop3, &input);
    assert!(
        reply.starts_with(b"+OK "),
        "no greeting: {:?}",
        String::from_utf8_lossy(&reply)
    );
    // After "+OK Begin TLS negotiation" the server speaks TLS (an alert, for garbage input):
    // only the plain-text part is POP3 lines.
    let tls_at = reply
        .windows(27)
        .position(|w| w == b"+OK Begin TLS negotiation\r\n")
        .map(|p| p + 27);
    let plain = &reply[..tls_at.unwrap_or(reply.len())];
    assert!(
        plain.ends_with(b"\r\n"),
        "reply not ended by CRLF: {:?}",
        String::from_utf8_lossy(&reply)
    );
});
