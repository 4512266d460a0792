//! One ManageSieve connection (RFC 5804 §2): capabilities, STARTTLS, AUTHENTICATE PLAIN, then
//! the script commands as the mailbox's owner (`Actor::Mailbox`).

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine;
use postfach_core::mail::settings::{self, MAX_SCRIPT_BYTES, MAX_SCRIPTS};
use postfach_core::{Actor, Error as CoreError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::ManageSieve;
use crate::parse::{Arg, Command, Limits, Parsed, parse, quote};

const LIMITS: Limits = Limits {
    line: 8 * 1024,
    literal: MAX_SCRIPT_BYTES,
    args: 4,
};
/// Commands that fail before the connection is closed.
const MAX_ERRORS: usize = 20;
/// The Sieve extensions `sieve-rs` runs for us (advertised in SIEVE, RFC 5804 §1.7).
const EXTENSIONS: &str = "fileinto reject ereject vacation vacation-seconds envelope envelope-dsn subaddress imap4flags body variables date index relational regex copy mailbox mailboxid special-use include duplicate editheader foreverypart mime extracttext enclose replace encoded-character comparator-i;ascii-numeric";

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub(crate) struct Session {
    _slot: postfach_core::limits::ConnectionGuard,
    server: Arc<ManageSieve>,
    peer: SocketAddr,
    stream: Option<Box<dyn Io>>,
    /// Kept until STARTTLS (the TLS acceptor needs the TcpStream itself).
    tcp: Option<TcpStream>,
    tls: bool,
    buf: Vec<u8>,
    out: Vec<u8>,
    /// The authenticated address.
    user: Option<String>,
    errors: usize,
    quit: bool,
    /// M9: ends the session when its mail service goes into maintenance.
    watch: Option<postfach_core::sessions::SessionWatch>,
}

fn code_for(e: &CoreError) -> &'static str {
    match e {
        CoreError::NotFound { .. } => "(NONEXISTENT) ",
        CoreError::Duplicate { .. } => "(ALREADYEXISTS) ",
        CoreError::Conflict(m) if m.contains("active") => "(ACTIVE) ",
        CoreError::Conflict(_) => "(QUOTA/MAXSCRIPTS) ",
        CoreError::Unavailable(_) | CoreError::Internal(_) => "(TRYLATER) ",
        _ => "",
    }
}

impl Session {
    pub(crate) async fn run(server: Arc<ManageSieve>, tcp: TcpStream, peer: SocketAddr) {
        let _ = tcp.set_nodelay(true);
        let slot = match server.limiter.connect(peer.ip()) {
            Ok(s) => s,
            Err(why) => {
                let mut tcp = tcp;
                let _ = tcp.write_all(format!("BYE \"{why}\"\r\n").as_bytes()).await;
                return;
            }
        };
        let mut s = Session {
            _slot: slot,
            server,
            peer,
            stream: None,
            tcp: Some(tcp),
            tls: false,
            buf: Vec::with_capacity(1024),
            out: Vec::with_capacity(1024),
            user: None,
            errors: 0,
            quit: false,
            watch: None,
        };
        s.capabilities();
        s.serve().await;
    }

    fn line(&mut self, s: impl AsRef<str>) {
        self.out.extend_from_slice(s.as_ref().as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    fn ok(&mut self, text: &str) {
        self.line(format!("OK {}", quote(text)));
    }

    fn no(&mut self, code: &str, text: &str) {
        self.line(format!("NO {code}{}", quote(text)));
        self.errors += 1;
        if self.errors >= MAX_ERRORS {
            self.line(format!("BYE {}", quote("Too many errors")));
            self.quit = true;
        }
    }

    fn capabilities(&mut self) {
        self.line("\"IMPLEMENTATION\" \"Postfach\"");
        self.line(format!("\"SIEVE\" \"{EXTENSIONS}\""));
        if self.tls {
            // RFC 5804 §1.7: SASL mechanisms only where they may be used.
            self.line("\"SASL\" \"PLAIN\"");
        } else {
            self.line("\"SASL\" \"\"");
            self.line("\"STARTTLS\"");
        }
        self.line("\"MAXREDIRECTS\" \"3\"");
        if let Some(u) = self.user.clone() {
            self.line(format!("\"OWNER\" {}", quote(&u)));
        }
        self.line("\"VERSION\" \"1.0\"");
        self.ok("Postfach ManageSieve ready");
    }

    async fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        if let Some(s) = self.stream.as_mut() {
            postfach_core::net::write_within(s, data).await?;
            s.flush().await
        } else if let Some(t) = self.tcp.as_mut() {
            postfach_core::net::write_within(t, data).await
        } else {
            Err(std::io::ErrorKind::NotConnected.into())
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let out = std::mem::take(&mut self.out);
        let r = self.write(&out).await;
        self.out = out;
        self.out.clear();
        r
    }

    async fn read_more(&mut self) -> bool {
        if self.flush().await.is_err() {
            return false;
        }
        let timeout = if self.user.is_some() {
            self.server.idle_timeout
        } else {
            self.server.login_timeout
        };
        let mut chunk = [0u8; 8192];
        let (stream, tcp) = (&mut self.stream, &mut self.tcp);
        let read = async {
            if let Some(s) = stream.as_mut() {
                s.read(&mut chunk).await
            } else if let Some(t) = tcp.as_mut() {
                t.read(&mut chunk).await
            } else {
                Ok(0)
            }
        };
        let read = tokio::select! {
            r = tokio::time::timeout(timeout, read) => r,
            e = postfach_core::sessions::ended(&mut self.watch) => {
                self.bye_for(&e).await;
                return false;
            }
        };
        match read {
            Ok(Ok(0)) | Ok(Err(_)) => false,
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(_) => {
                self.line(format!("BYE {}", quote("Idle for too long")));
                let _ = self.flush().await;
                false
            }
        }
    }

    /// The next command, or None when the connection is over.
    async fn next_command(&mut self) -> Option<Command> {
        loop {
            match parse(&self.buf, &LIMITS) {
                Parsed::Command(c, used) => {
                    self.buf.drain(..used);
                    return Some(c);
                }
                Parsed::Bad(why, used) => {
                    self.buf.drain(..used);
                    self.no("", &format!("Syntax error: {why}"));
                    if self.quit {
                        let _ = self.flush().await;
                        return None;
                    }
                }
                Parsed::TooBig(why) => {
                    self.line(format!("BYE {}", quote(&format!("Command refused: {why}"))));
                    let _ = self.flush().await;
                    return None;
                }
                Parsed::Incomplete => {
                    if !self.read_more().await {
                        return None;
                    }
                }
            }
        }
    }

    /// A SASL client response: one string on its own line (RFC 5804 §2.1).
    async fn sasl_response(&mut self) -> Option<Vec<u8>> {
        loop {
            let mut framed = b"R ".to_vec();
            framed.extend_from_slice(&self.buf);
            match parse(&framed, &LIMITS) {
                Parsed::Command(c, used) => {
                    self.buf.drain(..used - 2);
                    return match c.args.as_slice() {
                        [Arg::Str(s)] => Some(s.clone()),
                        _ => Some(b"*".to_vec()),
                    };
                }
                Parsed::Bad(_, used) => {
                    self.buf.drain(..used.saturating_sub(2));
                    return Some(b"*".to_vec());
                }
                Parsed::TooBig(_) => return None,
                Parsed::Incomplete => {
                    if !self.read_more().await {
                        return None;
                    }
                }
            }
        }
    }

    /// Ends the session for a reason from outside it (M9): `BYE (TRYLATER)`, RFC 5804 §1.3.
    async fn bye_for(&mut self, e: &CoreError) {
        self.line(format!("BYE (TRYLATER) {}", quote(&e.sentence())));
        let _ = self.flush().await;
        self.quit = true;
    }

    async fn serve(&mut self) {
        while !self.quit {
            // Commands already read (pipelined) do not outlive the session's end either.
            if let Some(Err(e)) = self.watch.as_ref().map(|w| w.check()) {
                return self.bye_for(&e).await;
            }
            let Some(cmd) = self.next_command().await else {
                return;
            };
            let name = cmd.name.clone();
            match (name.as_str(), self.user.is_some()) {
                ("CAPABILITY", _) => self.capabilities(),
                ("LOGOUT", _) => {
                    self.ok("Bye");
                    self.quit = true;
                }
                ("NOOP", _) => match cmd.args.first().and_then(Arg::text) {
                    Some(tag) => self.line(format!("OK (TAG {}) \"Done\"", quote(&tag))),
                    None => self.ok("Done"),
                },
                ("STARTTLS", false) => self.starttls().await,
                ("AUTHENTICATE", false) => self.authenticate(&cmd).await,
                ("UNAUTHENTICATE", true) => {
                    self.user = None;
                    self.watch = None;
                    self.ok("Logged out");
                }
                ("STARTTLS" | "AUTHENTICATE", true) => self.no("", "Already authenticated"),
                (
                    "PUTSCRIPT" | "CHECKSCRIPT" | "LISTSCRIPTS" | "SETACTIVE" | "GETSCRIPT"
                    | "DELETESCRIPT" | "RENAMESCRIPT" | "HAVESPACE",
                    false,
                ) => self.no("", "Authenticate first"),
                (_, true) => self.script_command(&cmd).await,
                _ => self.no("", &format!("Unknown command {name}")),
            }
        }
        let _ = self.flush().await;
    }

    async fn starttls(&mut self) {
        if self.tls {
            return self.no("", "TLS is already on");
        }
        self.ok("Begin TLS negotiation now");
        if self.flush().await.is_err() {
            self.quit = true;
            return;
        }
        // Anything the client sent after STARTTLS in plaintext is dropped (CVE-2011-0411).
        self.buf.clear();
        let Some(tcp) = self.tcp.take() else {
            self.quit = true;
            return;
        };
        match tokio::time::timeout(
            std::time::Duration::from_secs(30),
            self.server.tls.accept(tcp),
        )
        .await
        {
            Ok(Ok(tls)) => {
                self.stream = Some(Box::new(tls));
                self.tls = true;
                // RFC 5804 §2.2: the capabilities again, now with SASL.
                self.capabilities();
            }
            _ => self.quit = true,
        }
    }

    async fn authenticate(&mut self, cmd: &Command) {
        if !self.tls {
            return self.no(
                "(ENCRYPT-NEEDED) ",
                "Authentication requires TLS; use STARTTLS first",
            );
        }
        let mech = cmd.args.first().and_then(Arg::text).unwrap_or_default();
        if !mech.eq_ignore_ascii_case("PLAIN") {
            return self.no("", "Only the PLAIN mechanism is supported");
        }
        let encoded = match cmd.args.get(1) {
            Some(Arg::Str(s)) => s.clone(),
            Some(Arg::Atom(a)) => a.as_bytes().to_vec(),
            None => {
                self.line("\"\"");
                match self.sasl_response().await {
                    Some(r) => r,
                    None => {
                        self.quit = true;
                        return;
                    }
                }
            }
        };
        if encoded == b"*" {
            return self.no("", "Authentication cancelled");
        }
        let Ok(data) = base64::engine::general_purpose::STANDARD.decode(&encoded) else {
            return self.no("", "Invalid base64");
        };
        let (user, pass) = match postfach_core::secret::sasl_plain(&data) {
            Ok(up) => up,
            Err(postfach_core::secret::PlainError::Malformed) => {
                return self.no("", "Malformed PLAIN response");
            }
            Err(postfach_core::secret::PlainError::AuthzMismatch) => {
                return self.no("", "The authorization identity must be the login");
            }
        };
        match self
            .server
            .dir
            .mailbox_login(user.trim(), &pass, Some(self.peer.ip()))
            .await
        {
            Ok(login) => {
                tracing::info!(peer = %self.peer, login = %login.address, "ManageSieve login");
                self.watch = Some(
                    self.server
                        .dir
                        .session_watch(login.service_id, &login.domain),
                );
                self.user = Some(login.address);
                self.errors = 0;
                self.ok("Logged in");
            }
            Err(CoreError::Throttled { retry_after }) => self.no(
                "(TRYLATER) ",
                &format!("Too many failed logins; try again in {retry_after} seconds"),
            ),
            Err(CoreError::Unavailable(m)) => self.no("(TRYLATER) ", &m),
            Err(CoreError::Unauthenticated(_)) => self.no("", "Authentication failed"),
            Err(e) => {
                tracing::warn!(error = %e, "ManageSieve login failed");
                self.no("(TRYLATER) ", "Login is not possible right now")
            }
        }
    }

    fn arg(cmd: &Command, i: usize) -> Option<String> {
        cmd.args.get(i).and_then(Arg::text)
    }

    async fn script_command(&mut self, cmd: &Command) {
        let user = self.user.clone().expect("authenticated");
        let actor = Actor::Mailbox(user.clone());
        let dir = self.server.dir.clone();
        let name = cmd.name.as_str();
        let result: Result<(), CoreError> = match name {
            "LISTSCRIPTS" => match dir.sieve_list(&actor, &user).await {
                Ok(list) => {
                    for s in list {
                        let active = if s.active { " ACTIVE" } else { "" };
                        self.line(format!("{}{active}", quote(&s.name)));
                    }
                    self.ok("Listed");
                    Ok(())
                }
                Err(e) => Err(e),
            },
            "PUTSCRIPT" => {
                let (Some(n), Some(Arg::Str(src))) = (Self::arg(cmd, 0), cmd.args.get(1)) else {
                    return self.no("", "PUTSCRIPT needs a name and a script");
                };
                let Ok(src) = String::from_utf8(src.clone()) else {
                    return self.no("", "The script is not UTF-8");
                };
                dir.sieve_put(&actor, &user, &n, &src, false)
                    .await
                    .map(|_| self.ok("Stored"))
            }
            "CHECKSCRIPT" => {
                let Some(Arg::Str(src)) = cmd.args.first() else {
                    return self.no("", "CHECKSCRIPT needs a script");
                };
                let src = String::from_utf8_lossy(src);
                settings::check_sieve(&src).map(|_| self.ok("Script is valid"))
            }
            "SETACTIVE" => {
                let Some(n) = Self::arg(cmd, 0) else {
                    return self.no("", "SETACTIVE needs a name");
                };
                let which = (!n.is_empty()).then_some(n.as_str());
                dir.sieve_activate(&actor, &user, which)
                    .await
                    .map(|_| self.ok("Active script set"))
            }
            "GETSCRIPT" => {
                let Some(n) = Self::arg(cmd, 0) else {
                    return self.no("", "GETSCRIPT needs a name");
                };
                match dir.sieve_get(&actor, &user, &n).await {
                    Ok(s) => {
                        self.line(format!("{{{}}}", s.source.len()));
                        self.out.extend_from_slice(s.source.as_bytes());
                        self.line("");
                        self.ok("Done");
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            "DELETESCRIPT" => {
                let Some(n) = Self::arg(cmd, 0) else {
                    return self.no("", "DELETESCRIPT needs a name");
                };
                dir.sieve_delete(&actor, &user, &n)
                    .await
                    .map(|_| self.ok("Deleted"))
            }
            "RENAMESCRIPT" => {
                let (Some(old), Some(new)) = (Self::arg(cmd, 0), Self::arg(cmd, 1)) else {
                    return self.no("", "RENAMESCRIPT needs the old and the new name");
                };
                dir.sieve_rename(&actor, &user, &old, &new)
                    .await
                    .map(|_| self.ok("Renamed"))
            }
            "HAVESPACE" => {
                let (Some(n), Some(size)) = (Self::arg(cmd, 0), Self::arg(cmd, 1)) else {
                    return self.no("", "HAVESPACE needs a name and a size");
                };
                let Ok(size) = size.parse::<usize>() else {
                    return self.no("", "The size must be a number");
                };
                if size > MAX_SCRIPT_BYTES {
                    return self.no(
                        "(QUOTA/MAXSIZE) ",
                        &format!("Scripts may have at most {MAX_SCRIPT_BYTES} bytes"),
                    );
                }
                match dir.sieve_list(&actor, &user).await {
                    Ok(list) if list.len() >= MAX_SCRIPTS && !list.iter().any(|s| s.name == n) => {
                        return self.no(
                            "(QUOTA/MAXSCRIPTS) ",
                            &format!("At most {MAX_SCRIPTS} scripts; delete one first"),
                        );
                    }
                    Ok(_) => {
                        self.ok("Putscript would succeed");
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            other => {
                return self.no("", &format!("Unknown command {other}"));
            }
        };
        if let Err(e) = result {
            let code = code_for(&e);
            self.no(code, &e.to_string());
        }
    }
}
