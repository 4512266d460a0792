//! One POP3 connection: the AUTHORIZATION, TRANSACTION and UPDATE states of RFC 1939 §3.
//!
//! Input is read into a buffer and handled line by line, so pipelined commands (RFC 2449
//! PIPELINING) are answered in order and flushed together. After STLS nothing of the buffer
//! survives (the CVE-2011-0411 class of plaintext injection).

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine;
use postfach_core::Error as CoreError;
use postfach_core::mail::flag::SEEN;
use postfach_core::mail::{FlagChange, FlagOp, MailboxLogin};
use postfach_core::net::Stream;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::Pop3;

/// RFC 2449 §4 allows 255 octets per command; AUTH responses may be longer (RFC 5034 §4).
const MAX_LINE: usize = 8 * 1024;
/// Unknown or malformed commands tolerated before the connection is closed.
const MAX_ERRORS: usize = 20;

/// One message of the maildrop as listed at login.
struct Entry {
    uid: i64,
    size: i64,
    blob_id: String,
    flags: i64,
    deleted: bool,
}

struct Maildrop {
    login: MailboxLogin,
    mailbox_id: i64,
    uidvalidity: i64,
    messages: Vec<Entry>,
    /// UIDs retrieved in this session whose `\Seen` is still to be stored: written in one
    /// transaction when the session ends (a write per RETR made RETR of 1,000 messages take
    /// seconds: bench/RESULTS.md).
    seen: Vec<i64>,
}

enum State {
    Authorization { user: Option<String> },
    Transaction(Box<Maildrop>),
}

pub(crate) struct Session {
    /// This connection's place in the per-IP count; first, so that it is released before the
    /// connection closes (fields drop in order).
    _slot: postfach_core::limits::ConnectionGuard,
    pop3: Arc<Pop3>,
    peer: SocketAddr,
    stream: Stream,
    tls: bool,
    /// Credentials may be sent: TLS is on, or the operator allows plain text on loopback.
    private: bool,
    buf: Vec<u8>,
    out: Vec<u8>,
    state: State,
    errors: usize,
    quit: bool,
    /// M9: ends the session when its mail service goes into maintenance.
    watch: Option<postfach_core::sessions::SessionWatch>,
}

/// Releases the maildrop lock however the session ends.
struct LockGuard {
    pop3: Arc<Pop3>,
    address_id: Option<i64>,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(id) = self.address_id.take()
            && let Ok(mut locked) = self.pop3.locked.lock()
        {
            locked.remove(&id);
        }
    }
}

/// The message as sent by RETR/TOP (RFC 1939 §3): CRLF line ends, lines starting with "."
/// byte-stuffed, then the terminating ".". With `top`, only the header and that many body
/// lines.
fn multiline(raw: &[u8], top: Option<usize>) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 50 + 8);
    let mut in_body = false;
    let mut body_lines = 0usize;
    let mut lines = raw.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        // The text after a final line end is empty: not a line.
        if lines.peek().is_none() && line.is_empty() {
            break;
        }
        if in_body && let Some(limit) = top {
            if body_lines >= limit {
                break;
            }
            body_lines += 1;
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
        if line.is_empty() {
            in_body = true;
        }
    }
    out.extend_from_slice(b".\r\n");
    out
}

fn parse_number(arg: Option<&str>) -> Option<usize> {
    let n: usize = arg?.parse().ok()?;
    (n >= 1).then_some(n)
}

impl Session {
    pub(crate) async fn run(pop3: Arc<Pop3>, tcp: TcpStream, peer: SocketAddr, implicit_tls: bool) {
        let _ = tcp.set_nodelay(true);
        let slot = match pop3.limiter.connect(peer.ip()) {
            Ok(slot) => slot,
            Err(why) => {
                // On the TLS port the connection just closes: no handshake for a refused client.
                if !implicit_tls {
                    let mut tcp = tcp;
                    let _ = tcp
                        .write_all(format!("-ERR [SYS/TEMP] {why}\r\n").as_bytes())
                        .await;
                }
                return;
            }
        };
        let tls = implicit_tls;
        let Some(stream) = Stream::accept(tcp, &pop3.tls, tls).await else {
            return;
        };
        let mut guard = LockGuard {
            pop3: pop3.clone(),
            address_id: None,
        };
        let plaintext_ok = pop3.plaintext_auth_on_loopback;
        let mut session = Session {
            _slot: slot,
            pop3,
            peer,
            stream,
            tls,
            private: tls || (plaintext_ok && peer.ip().is_loopback()),
            buf: Vec::with_capacity(1024),
            out: Vec::with_capacity(4096),
            state: State::Authorization { user: None },
            errors: 0,
            quit: false,
            watch: None,
        };
        session.serve(&mut guard).await;
        session.store_seen().await;
    }

    fn line(&mut self, s: impl AsRef<str>) {
        self.out.extend_from_slice(s.as_ref().as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    fn err(&mut self, s: impl AsRef<str>) {
        self.line(format!("-ERR {}", s.as_ref()));
    }

    /// A command the client should not have sent: answered, counted, and too many close.
    fn error(&mut self, s: impl AsRef<str>) {
        self.err(s);
        self.errors += 1;
        if self.errors >= MAX_ERRORS {
            self.err("Too many errors, closing connection");
            self.quit = true;
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            let out = std::mem::take(&mut self.out);
            self.stream.write_all(&out).await?;
            self.out = out;
            self.out.clear();
        }
        Ok(())
    }

    /// The next line without its line end; None when the connection is over.
    async fn next_line(&mut self) -> Option<String> {
        loop {
            // Commands already read (pipelined) do not outlive the session's end either.
            if let Some(Err(e)) = self.watch.as_ref().map(|w| w.check()) {
                self.err(format!("[SYS/TEMP] {}", e.sentence()));
                let _ = self.flush().await;
                return None;
            }
            let end = self.buf.iter().position(|&b| b == b'\n');
            if end.unwrap_or(self.buf.len()) > MAX_LINE {
                self.err("Line too long, closing connection");
                let _ = self.flush().await;
                return None;
            }
            if let Some(end) = end {
                let raw: Vec<u8> = self.buf.drain(..=end).collect();
                let raw = raw.strip_suffix(b"\n").unwrap_or(&raw);
                let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
                return Some(String::from_utf8_lossy(raw).into_owned());
            }
            // Everything answered so far goes out before we wait for more.
            if self.flush().await.is_err() {
                return None;
            }
            let mut chunk = [0u8; 4096];
            let timeout = match self.state {
                State::Transaction(_) => self.pop3.autologout,
                State::Authorization { .. } => self.pop3.login_timeout,
            };
            let read = tokio::select! {
                r = tokio::time::timeout(timeout, self.stream.read(&mut chunk)) => r,
                // Closed without UPDATE: nothing marked deleted is removed (RFC 1939 §6).
                e = postfach_core::sessions::ended(&mut self.watch) => {
                    self.err(format!("[SYS/TEMP] {}", e.sentence()));
                    let _ = self.flush().await;
                    return None;
                }
            };
            match read {
                Ok(Ok(0)) | Ok(Err(_)) => return None,
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => {
                    self.err("Autologout; idle for too long");
                    let _ = self.flush().await;
                    return None;
                }
            }
        }
    }

    async fn serve(&mut self, guard: &mut LockGuard) {
        let greeting = format!("+OK {} Postfach POP3 ready", self.pop3.hostname);
        self.line(greeting);
        while !self.quit {
            let Some(line) = self.next_line().await else {
                return;
            };
            let mut words = line.splitn(2, ' ');
            let verb = words.next().unwrap_or_default().to_ascii_uppercase();
            let rest = words.next().unwrap_or_default().to_string();
            let args: Vec<&str> = rest.split_whitespace().collect();
            match (&self.state, verb.as_str()) {
                (_, "CAPA") => self.capa(),
                (State::Authorization { .. }, "QUIT") => {
                    self.line("+OK Bye");
                    self.quit = true;
                }
                (State::Transaction(_), "QUIT") => {
                    self.update().await;
                    self.quit = true;
                }
                (State::Authorization { .. }, "STLS") => self.stls().await,
                (State::Authorization { .. }, "USER") => {
                    if !self.private {
                        self.error("[AUTH] Plaintext login is not allowed; use STLS first");
                    } else if rest.trim().is_empty() {
                        self.error("USER needs a mailbox name");
                    } else {
                        self.state = State::Authorization {
                            user: Some(rest.trim().to_string()),
                        };
                        self.line("+OK Send your password");
                    }
                }
                (State::Authorization { user }, "PASS") => match user.clone() {
                    // RFC 1939 §7: the password is the rest of the line, spaces and all.
                    Some(user) => {
                        self.state = State::Authorization { user: None };
                        self.login(&user, &rest, guard).await;
                    }
                    None => self.error("USER first"),
                },
                (State::Authorization { .. }, "AUTH") => self.auth(&args, guard).await,
                (State::Transaction(_), verb) => self.transaction(verb, &args).await,
                (
                    State::Authorization { .. },
                    "STAT" | "LIST" | "UIDL" | "RETR" | "TOP" | "DELE" | "RSET" | "NOOP",
                ) => self.error("Log in first"),
                _ => self.error("Unknown command"),
            }
            if self.quit {
                let _ = self.flush().await;
            }
        }
    }

    fn capa(&mut self) {
        self.line("+OK Capability list follows");
        let mut caps = vec![
            "TOP",
            "UIDL",
            "RESP-CODES",
            "AUTH-RESP-CODE",
            "PIPELINING",
            "EXPIRE NEVER",
        ];
        if matches!(self.state, State::Authorization { .. }) {
            if self.private {
                caps.extend(["USER", "SASL PLAIN"]);
            }
            if !self.tls {
                caps.push("STLS");
            }
        }
        caps.push("IMPLEMENTATION Postfach");
        for c in caps {
            self.line(c);
        }
        self.line(".");
    }

    async fn stls(&mut self) {
        if self.tls {
            return self.error("TLS is already active");
        }
        self.line("+OK Begin TLS negotiation");
        if self.flush().await.is_err() {
            self.quit = true;
            return;
        }
        // RFC 2595 §4: the client must not have sent anything more; whatever it did is dropped.
        self.buf.clear();
        if self.stream.start_tls(&self.pop3.tls).await {
            self.tls = true;
            self.private = true;
            // RFC 2595 §4: forget what was learned before TLS.
            self.state = State::Authorization { user: None };
        } else {
            self.quit = true;
        }
    }

    /// RFC 5034 AUTH: PLAIN only, with or without the initial response.
    async fn auth(&mut self, args: &[&str], guard: &mut LockGuard) {
        let Some(mechanism) = args.first() else {
            // The pre-RFC 5034 way of asking for the mechanisms.
            self.line("+OK Mechanisms follow");
            if self.private {
                self.line("PLAIN");
            }
            self.line(".");
            return;
        };
        if !mechanism.eq_ignore_ascii_case("PLAIN") {
            return self.error("Unsupported mechanism; use PLAIN");
        }
        if !self.private {
            return self.error("[AUTH] Authentication is not allowed before STLS");
        }
        let encoded = match args.get(1) {
            // RFC 5034 §4: "=" is an empty initial response.
            Some(&"=") => String::new(),
            Some(r) => r.to_string(),
            None => {
                self.line("+ ");
                let Some(line) = self.next_line().await else {
                    self.quit = true;
                    return;
                };
                if line.trim() == "*" {
                    return self.err("Authentication cancelled");
                }
                line.trim().to_string()
            }
        };
        let Ok(data) = base64::engine::general_purpose::STANDARD.decode(encoded.as_bytes()) else {
            return self.error("Invalid base64");
        };
        let (user, pass) = match postfach_core::secret::sasl_plain(&data) {
            Ok(up) => up,
            Err(postfach_core::secret::PlainError::Malformed) => {
                return self.error("Malformed PLAIN response");
            }
            Err(postfach_core::secret::PlainError::AuthzMismatch) => {
                return self.error("[AUTH] Authorization identity must match");
            }
        };
        self.login(&user, &pass, guard).await;
    }

    async fn login(&mut self, user: &str, pass: &str, guard: &mut LockGuard) {
        let login = match self
            .pop3
            .dir
            .mailbox_login(user.trim(), pass, Some(self.peer.ip()))
            .await
        {
            Ok(l) => l,
            Err(CoreError::Throttled { retry_after }) => {
                return self.err(format!(
                    "[LOGIN-DELAY] Too many failed logins; try again in {retry_after} seconds"
                ));
            }
            // M9: maintenance ends; RFC 3206 §4 calls that SYS/TEMP (the client retries).
            Err(CoreError::Unavailable(msg)) => return self.err(format!("[SYS/TEMP] {msg}")),
            Err(CoreError::Unauthenticated(_)) => {
                return self.error("[AUTH] Authentication failed");
            }
            Err(e) => {
                tracing::warn!(error = %e, "POP3 login failed");
                return self.err("[SYS/TEMP] Login is not possible right now; try again later");
            }
        };
        let acquired = self
            .pop3
            .locked
            .lock()
            .is_ok_and(|mut l| l.insert(login.address_id));
        if !acquired {
            return self.err("[IN-USE] The mailbox is in use by another POP3 session");
        }
        guard.address_id = Some(login.address_id);
        let snapshot = match self.pop3.dir.folder(login.address_id, "INBOX").await {
            Ok(Some(inbox)) => self.pop3.dir.folder_snapshot(inbox.id).await,
            Ok(None) => Err(CoreError::Internal("the address has no INBOX".into())),
            Err(e) => Err(e),
        };
        let snapshot = match snapshot {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, login = %login.address, "POP3 maildrop unreadable");
                if let Some(id) = guard.address_id.take()
                    && let Ok(mut locked) = self.pop3.locked.lock()
                {
                    locked.remove(&id);
                }
                return self.err("[SYS/TEMP] The mailbox cannot be opened right now");
            }
        };
        tracing::info!(peer = %self.peer, login = %login.address, "POP3 login");
        self.watch = Some(self.pop3.dir.session_watch(login.service_id, &login.domain));
        let messages: Vec<Entry> = snapshot
            .messages
            .iter()
            .map(|m| Entry {
                uid: m.uid,
                size: m.size,
                blob_id: m.blob_id.clone(),
                flags: m.flags,
                deleted: false,
            })
            .collect();
        let (count, size) = (messages.len(), messages.iter().map(|m| m.size).sum::<i64>());
        self.state = State::Transaction(Box::new(Maildrop {
            login,
            mailbox_id: snapshot.mailbox.id,
            uidvalidity: snapshot.mailbox.uidvalidity,
            messages,
            seen: Vec::new(),
        }));
        self.line(format!("+OK Logged in; {count} messages ({size} octets)"));
    }

    fn maildrop(&mut self) -> &mut Maildrop {
        match &mut self.state {
            State::Transaction(m) => m,
            State::Authorization { .. } => unreachable!("only called in the TRANSACTION state"),
        }
    }

    /// The message `arg` names, if it exists and is not marked deleted.
    fn message(&mut self, arg: Option<&str>) -> Option<usize> {
        let n = parse_number(arg);
        let drop = self.maildrop();
        match n {
            Some(n) if n <= drop.messages.len() && !drop.messages[n - 1].deleted => Some(n - 1),
            _ => {
                self.error("No such message");
                None
            }
        }
    }

    async fn transaction(&mut self, verb: &str, args: &[&str]) {
        match verb {
            "STAT" => {
                let drop = self.maildrop();
                let live = drop.messages.iter().filter(|m| !m.deleted);
                let (count, size) = live.fold((0, 0), |(c, s), m| (c + 1, s + m.size));
                self.line(format!("+OK {count} {size}"));
            }
            "LIST" | "UIDL" => {
                let uidl = verb == "UIDL";
                let uidvalidity = self.maildrop().uidvalidity;
                let describe = |i: usize, m: &Entry| {
                    if uidl {
                        format!("{} {uidvalidity}.{}", i + 1, m.uid)
                    } else {
                        format!("{} {}", i + 1, m.size)
                    }
                };
                if let Some(arg) = args.first() {
                    if let Some(i) = self.message(Some(arg)) {
                        let line = describe(i, &self.maildrop().messages[i]);
                        self.line(format!("+OK {line}"));
                    }
                    return;
                }
                let lines: Vec<String> = self
                    .maildrop()
                    .messages
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| !m.deleted)
                    .map(|(i, m)| describe(i, m))
                    .collect();
                self.line(format!("+OK {} messages", lines.len()));
                for l in lines {
                    self.line(l);
                }
                self.line(".");
            }
            "RETR" => {
                let Some(i) = self.message(args.first().copied()) else {
                    return;
                };
                self.send(i, None).await;
            }
            "TOP" => {
                let Some(i) = self.message(args.first().copied()) else {
                    return;
                };
                let Some(lines) = args.get(1).and_then(|n| n.parse::<usize>().ok()) else {
                    return self.error("TOP needs a message number and a line count");
                };
                self.send(i, Some(lines)).await;
            }
            "DELE" => {
                let Some(i) = self.message(args.first().copied()) else {
                    return;
                };
                self.maildrop().messages[i].deleted = true;
                self.line(format!("+OK Message {} deleted", i + 1));
            }
            "RSET" => {
                let drop = self.maildrop();
                for m in &mut drop.messages {
                    m.deleted = false;
                }
                let (count, size) = (
                    drop.messages.len(),
                    drop.messages.iter().map(|m| m.size).sum::<i64>(),
                );
                self.line(format!("+OK Maildrop has {count} messages ({size} octets)"));
            }
            "NOOP" => self.line("+OK"),
            "USER" | "PASS" | "AUTH" | "STLS" => self.error("Already logged in"),
            _ => self.error("Unknown command"),
        }
    }

    /// RETR (whole message, marks it `\Seen` for IMAP clients of the same mailbox) and TOP.
    async fn send(&mut self, i: usize, top: Option<usize>) {
        let blob_id = self.maildrop().messages[i].blob_id.clone();
        let raw = match self.pop3.dir.message_body(&blob_id).await {
            Ok(raw) => raw,
            Err(e) => {
                tracing::warn!(error = %e, "POP3 message body unreadable");
                return self.err("[SYS/TEMP] The message cannot be read right now");
            }
        };
        // The octets of the message with CRLF line ends, before byte-stuffing (RFC 1939 §5).
        let octets = raw.len()
            + raw
                .iter()
                .enumerate()
                .filter(|&(i, &b)| b == b'\n' && (i == 0 || raw[i - 1] != b'\r'))
                .count();
        self.line(match top {
            None => format!("+OK {octets} octets"),
            Some(_) => "+OK Top of message follows".to_string(),
        });
        let body = multiline(&raw, top);
        self.out.extend_from_slice(&body);
        if top.is_none() {
            let drop = self.maildrop();
            let m = &mut drop.messages[i];
            if m.flags & SEEN == 0 {
                m.flags |= SEEN;
                let uid = m.uid;
                drop.seen.push(uid);
            }
        }
        if self.out.len() > 256 * 1024 && self.flush().await.is_err() {
            self.quit = true;
        }
    }

    /// Stores `\Seen` for what this session retrieved, added to whatever the flags are now
    /// (IMAP clients may have changed others). Runs at QUIT and when the connection ends.
    async fn store_seen(&mut self) {
        let State::Transaction(drop) = &mut self.state else {
            return;
        };
        let uids = std::mem::take(&mut drop.seen);
        if uids.is_empty() {
            return;
        }
        let change = FlagChange {
            op: FlagOp::Add,
            bits: SEEN,
            keywords: Vec::new(),
        };
        let done = self
            .pop3
            .dir
            .store_flags(drop.mailbox_id, &uids, &change, None);
        if let Err(e) = done.await {
            tracing::warn!(error = %e, "POP3 could not set \\Seen");
        }
    }

    /// The UPDATE state (RFC 1939 §6): expunge what was marked, then sign off.
    async fn update(&mut self) {
        self.store_seen().await;
        let drop = self.maildrop();
        let uids: Vec<i64> = drop
            .messages
            .iter()
            .filter(|m| m.deleted)
            .map(|m| m.uid)
            .collect();
        let left = drop.messages.len() - uids.len();
        let (address_id, mailbox_id) = (drop.login.address_id, drop.mailbox_id);
        match self.pop3.dir.expunge(address_id, mailbox_id, &uids).await {
            Ok(()) => self.line(format!("+OK Bye; {left} messages left")),
            Err(e) => {
                tracing::error!(error = %e, "POP3 expunge failed");
                self.err("[SYS/TEMP] Some deleted messages could not be removed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiline_stuffs_dots_and_normalises_line_ends() {
        let raw = b"Subject: x\r\n\r\n.leading dot\nbare lf\r\n..two\r\n";
        assert_eq!(
            multiline(raw, None),
            b"Subject: x\r\n\r\n..leading dot\r\nbare lf\r\n...two\r\n.\r\n".to_vec()
        );
        assert_eq!(
            multiline(raw, Some(1)),
            b"Subject: x\r\n\r\n..leading dot\r\n.\r\n".to_vec()
        );
        assert_eq!(multiline(raw, Some(0)), b"Subject: x\r\n\r\n.\r\n".to_vec());
        // No final line end: the last line still ends in CRLF before the terminator.
        assert_eq!(
            multiline(b"A: b\r\n\r\nend", None),
            b"A: b\r\n\r\nend\r\n.\r\n".to_vec()
        );
    }
}
