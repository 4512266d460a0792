//! One SMTP session (RFC 5321) on the MX port or a submission port, with the extensions of
//! RFC 2920 (PIPELINING), 1870 (SIZE), 6152 (8BITMIME), 6531 (SMTPUTF8), 2034 (ENHANCED-
//! STATUSCODES), 3207 (STARTTLS), 3030 (CHUNKING), 3461 (DSN) and 4954 (AUTH PLAIN/LOGIN).
//!
//! Commands are parsed by `smtp-proto`; message data by our own scanner (`data.rs`), which
//! ends a message only at `<CRLF>.<CRLF>` (the SMTP smuggling class, CVE-2023-51764), and a
//! message with a bare CR or LF or a NUL is refused at its end. After STARTTLS, whatever the
//! client pipelined in clear text is thrown away (CVE-2011-0411).
//!
//! Every refusal is answered here, in the session, with its enhanced status code — nothing is
//! accepted that would have to be bounced later.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use postfach_core::Error as CoreError;
use postfach_core::mail::header_block::{self, HeaderBlock, Malformed};
use postfach_core::mail::{MailboxLogin, Rcpt, SendCount, SpoolRequest};
use postfach_core::net::Stream;
use postfach_core::rules::m9_maintenance as m9;
use postfach_core::rules::o3_daily_sending as o3;
use postfach_core::rules::o3_recipients_per_message as o3_recipients;
use postfach_core::secret;
use postfach_store::{NewQueueEntry, NewQueueRcpt, QueueEntry, QueueRcpt};
use smtp_proto::request::receiver::{BdatReceiver, LineReceiver, RequestReceiver};
use smtp_proto::{
    AUTH_LOGIN, AUTH_PLAIN, MAIL_RET_FULL, RCPT_NOTIFY_DELAY, RCPT_NOTIFY_FAILURE,
    RCPT_NOTIFY_NEVER, RCPT_NOTIFY_SUCCESS, Request,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::Smtp;
use crate::data::DataScanner;
use crate::verdict;

/// Which port the client connected to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// MX (25): mail for hosted domains from anyone; no AUTH, no relaying.
    Inbound,
    /// Submission with STARTTLS (587): AUTH required, only after TLS.
    Submission,
    /// Submission with implicit TLS (465, RFC 8314).
    Submissions,
}

/// An accepted recipient of the current transaction.
struct Recipient {
    rcpt: String,
    target: Rcpt,
    notify: i64,
    orcpt: Option<String>,
}

/// The mail transaction between MAIL FROM and the end of data.
struct Txn {
    mail_from: String,
    ret_full: bool,
    env_id: Option<String>,
    declared_size: usize,
    rcpts: Vec<Recipient>,
    /// A BDAT chunk was taken: DATA may not follow in this transaction (RFC 3030 §2).
    bdat: bool,
}

/// What the client's next bytes are.
enum Input {
    Command(RequestReceiver),
    Data(DataScanner),
    /// A BDAT chunk; `refusal` is set when the chunk is read only to be discarded.
    Bdat {
        rx: BdatReceiver,
        refusal: Option<String>,
    },
    /// A SASL response line.
    Auth(Sasl, LineReceiver<()>),
}

/// Where an AUTH exchange stands (RFC 4954 §4).
enum Sasl {
    Plain,
    LoginUser,
    LoginPassword(String),
}

/// What a handled command asks of the reading loop.
enum Next {
    Commands,
    Data,
    Bdat {
        size: usize,
        last: bool,
        refusal: Option<String>,
    },
    Auth(Sasl),
    StartTls,
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

pub(crate) struct Session {
    /// This connection's place in the per-IP count. Declared first so that it is released
    /// before the connection closes (fields drop in order): a client that sees the close can
    /// connect again at once.
    _slot: postfach_core::limits::ConnectionGuard,
    smtp: Arc<Smtp>,
    kind: Kind,
    peer: SocketAddr,
    stream: Stream,
    tls: bool,
    out: Vec<u8>,
    helo: Option<String>,
    login: Option<MailboxLogin>,
    /// M9: ends a submission session when its mail service goes into maintenance.
    watch: Option<postfach_core::sessions::SessionWatch>,
    txn: Option<Txn>,
    data: Vec<u8>,
    data_too_big: bool,
    /// `data`'s part of the process's message memory (`Smtp::message_memory`).
    held: postfach_core::limits::Held,
    /// The message did not fit into the message memory: refused with 452 at its end.
    data_no_memory: bool,
    errors: usize,
    auth_failures: u32,
    /// After a line that was too long: drop input up to the end of that line.
    skip_line: bool,
    /// Bytes of the command line received so far (without its end).
    partial_line: usize,
    /// The raw bytes of the command being read (at most a line): smtp-proto reads both
    /// `RCPT TO:<>` and `RCPT TO:<Postmaster>` as an empty address, the line tells them apart.
    command_line: Vec<u8>,
    quit: bool,
}

impl Session {
    pub(crate) async fn run(smtp: Arc<Smtp>, kind: Kind, tcp: TcpStream, peer: SocketAddr) {
        let slot = match smtp.limiter.connect(peer.ip()) {
            Ok(g) => g,
            Err(why) => {
                let mut tcp = tcp;
                let _ = tcp
                    .write_all(format!("421 4.7.0 {} {why}\r\n", smtp.cfg.hostname).as_bytes())
                    .await;
                return;
            }
        };
        let _ = tcp.set_nodelay(true);
        let tls = kind == Kind::Submissions;
        let Some(stream) = Stream::accept(tcp, &smtp.tls, tls).await else {
            return;
        };
        let held = smtp.message_memory.hold();
        let session = Session {
            _slot: slot,
            smtp,
            kind,
            peer,
            stream,
            tls,
            out: Vec::with_capacity(1024),
            helo: None,
            login: None,
            watch: None,
            txn: None,
            data: Vec::new(),
            data_too_big: false,
            held,
            data_no_memory: false,
            errors: 0,
            auth_failures: 0,
            skip_line: false,
            partial_line: 0,
            command_line: Vec::new(),
            quit: false,
        };
        session.serve().await;
    }

    fn reply(&mut self, line: impl AsRef<str>) {
        self.out.extend_from_slice(line.as_ref().as_bytes());
        self.out.extend_from_slice(b"\r\n");
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

    fn host(&self) -> &str {
        &self.smtp.cfg.hostname
    }

    /// Counts a protocol error; past the limit the session ends (a client that only sends
    /// garbage gets no more of our time).
    fn error(&mut self, line: impl AsRef<str>) {
        self.reply(line);
        self.errors += 1;
        if self.errors >= self.smtp.cfg.smtp.max_errors {
            let bye = format!(
                "421 4.7.0 {} Too many errors, closing connection",
                self.host()
            );
            self.reply(bye);
            self.quit = true;
        }
    }

    async fn serve(mut self) {
        let greeting = format!("220 {} ESMTP Postfach", self.host());
        self.reply(greeting);
        let timeout = Duration::from_secs(self.smtp.cfg.smtp.command_timeout_seconds);
        let mut input = Input::Command(RequestReceiver::default());
        let mut buf = vec![0u8; 32 * 1024];
        'read: loop {
            if self.flush().await.is_err() || self.quit {
                return;
            }
            let read = tokio::select! {
                r = tokio::time::timeout(timeout, self.stream.read(&mut buf)) => r,
                e = postfach_core::sessions::ended(&mut self.watch) => {
                    self.end_for(&e);
                    let _ = self.flush().await;
                    return;
                }
            };
            let n = match read {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(n)) => n,
                Err(_) => {
                    let line = format!(
                        "421 4.4.2 {} Timeout exceeded, closing connection",
                        self.host()
                    );
                    self.reply(line);
                    let _ = self.flush().await;
                    return;
                }
            };
            let mut bytes = buf[..n].iter();
            while !self.quit {
                if self.skip_line {
                    let rest = bytes.as_slice();
                    match rest.iter().position(|&b| b == b'\n') {
                        Some(end) => {
                            bytes = rest[end + 1..].iter();
                            self.skip_line = false;
                        }
                        None => break,
                    }
                }
                let next = match &mut input {
                    Input::Command(rx) => {
                        let rest = bytes.as_slice();
                        let newline = rest.iter().position(|&b| b == b'\n');
                        let line = self.partial_line + newline.map_or(rest.len(), |p| p + 1);
                        if line > self.smtp.cfg.smtp.max_line_length {
                            bytes = match newline {
                                Some(p) => rest[p + 1..].iter(),
                                None => {
                                    self.skip_line = true;
                                    [].iter()
                                }
                            };
                            self.partial_line = 0;
                            self.command_line.clear();
                            *rx = RequestReceiver::default();
                            self.error("500 5.5.2 Line too long");
                            continue;
                        }
                        self.partial_line = if newline.is_some() { 0 } else { line };
                        let ingested = rx.ingest(&mut bytes);
                        let consumed = rest.len() - bytes.as_slice().len();
                        self.command_line.extend_from_slice(&rest[..consumed]);
                        let request = match ingested {
                            Ok(r) => r.into_owned(),
                            Err(smtp_proto::Error::NeedsMoreData { .. }) => break,
                            Err(e) => {
                                self.command_line.clear();
                                // The rest of an overlong line is not a new command.
                                if matches!(e, smtp_proto::Error::ResponseTooLong) {
                                    self.skip_line = true;
                                    *rx = RequestReceiver::default();
                                }
                                self.syntax_error(e);
                                continue;
                            }
                        };
                        if !self.smtp.limiter.command(self.peer.ip()) {
                            let line =
                                format!("421 4.7.0 {} Too many commands, slow down", self.host());
                            self.reply(line);
                            self.quit = true;
                            break;
                        }
                        let next = self.command(request).await;
                        self.command_line.clear();
                        next
                    }
                    Input::Data(rx) => {
                        let rest = bytes.as_slice();
                        let end = rx.ingest(rest, &mut self.data);
                        bytes = rest[end.unwrap_or(rest.len())..].iter();
                        self.check_data_size();
                        if end.is_none() {
                            break;
                        }
                        self.end_of_message().await;
                        Next::Commands
                    }
                    Input::Bdat { rx, refusal } => {
                        let done = rx.ingest(&mut bytes, &mut self.data);
                        if refusal.is_some() {
                            self.drop_data();
                        } else {
                            self.check_data_size();
                        }
                        if !done {
                            break;
                        }
                        match refusal.take() {
                            Some(line) => self.error(line),
                            None if rx.is_last => self.end_of_message().await,
                            None => {
                                let line = format!("250 2.0.0 {} octets received", self.data.len());
                                self.reply(line);
                            }
                        }
                        Next::Commands
                    }
                    Input::Auth(_, rx) => {
                        if !rx.ingest(&mut bytes) {
                            if rx.buf.len() >= 4096 {
                                self.error("500 5.5.6 Authentication exchange line is too long");
                                input = Input::Command(RequestReceiver::default());
                            }
                            break;
                        }
                        let line = std::mem::take(&mut rx.buf);
                        let Input::Auth(state, _) = std::mem::replace(
                            &mut input,
                            Input::Command(RequestReceiver::default()),
                        ) else {
                            unreachable!()
                        };
                        self.auth_step(state, &line).await
                    }
                };
                input = match next {
                    Next::Commands => match input {
                        Input::Command(rx) => Input::Command(rx),
                        _ => Input::Command(RequestReceiver::default()),
                    },
                    Next::Data => {
                        self.drop_data();
                        self.data_too_big = false;
                        self.data_no_memory = false;
                        Input::Data(DataScanner::default())
                    }
                    Next::Bdat {
                        size,
                        last,
                        refusal,
                    } => Input::Bdat {
                        rx: BdatReceiver::new(size, last),
                        refusal,
                    },
                    Next::Auth(state) => Input::Auth(state, LineReceiver::new(())),
                    Next::StartTls => {
                        // RFC 3207 §4.2: forget everything from before, including anything
                        // the client sent after STARTTLS in clear text (CVE-2011-0411).
                        if self.flush().await.is_err() || !self.upgrade().await {
                            return;
                        }
                        input = Input::Command(RequestReceiver::default());
                        continue 'read;
                    }
                };
            }
        }
    }

    fn syntax_error(&mut self, e: smtp_proto::Error) {
        use smtp_proto::Error as E;
        let line = match e {
            E::UnknownCommand => "500 5.5.1 Command unrecognized".to_string(),
            E::ResponseTooLong => "500 5.5.2 Line too long".to_string(),
            E::InvalidSenderAddress => "501 5.1.7 Invalid sender address".to_string(),
            E::InvalidRecipientAddress => "501 5.1.3 Invalid recipient address".to_string(),
            E::SyntaxError { syntax } => format!("501 5.5.4 Syntax: {syntax}"),
            E::InvalidParameter { param } => format!("501 5.5.4 Invalid parameter {param:?}"),
            E::UnsupportedParameter { param } => {
                format!("504 5.5.4 Unsupported parameter {param:?}")
            }
            other => format!("500 5.5.2 {other}"),
        };
        self.error(line);
    }

    async fn upgrade(&mut self) -> bool {
        if !self.stream.start_tls(&self.smtp.tls).await {
            return false;
        }
        self.tls = true;
        self.helo = None;
        self.login = None;
        self.reset_transaction();
        true
    }

    /// Forgets the mail transaction and any message data received for it (RFC 5321 §4.1.4;
    /// after STARTTLS, RFC 3207 §4.2: nothing received in clear text may end up in a message).
    fn reset_transaction(&mut self) {
        self.txn = None;
        self.drop_data();
        self.data_too_big = false;
        self.data_no_memory = false;
    }

    fn is_submission(&self) -> bool {
        self.kind != Kind::Inbound
    }

    fn ehlo_lines(&self) -> Vec<String> {
        let mut caps = vec![
            format!("{} Hello {}", self.host(), self.peer.ip()),
            "PIPELINING".to_string(),
            format!("SIZE {}", self.smtp.cfg.smtp.max_message_size),
            "8BITMIME".to_string(),
            "SMTPUTF8".to_string(),
            "ENHANCEDSTATUSCODES".to_string(),
            "CHUNKING".to_string(),
            "DSN".to_string(),
        ];
        if !self.tls {
            caps.push("STARTTLS".to_string());
        }
        // RFC 4954 §4 and P1: no AUTH over plain text, and none on the MX port.
        if self.is_submission() && self.tls && self.login.is_none() {
            caps.push("AUTH PLAIN LOGIN".to_string());
        }
        caps
    }

    /// Ends the session for a reason from outside it (M9): `421`, RFC 5321 §3.8.
    fn end_for(&mut self, e: &CoreError) {
        let line = format!("421 4.3.2 {} {}", self.host(), e.sentence());
        self.reply(line);
        self.quit = true;
    }

    /// Whether the session may go on; when not, the `421` is on its way.
    fn may_go_on(&mut self) -> bool {
        match self.watch.as_ref().map(|w| w.check()) {
            Some(Err(e)) => {
                self.end_for(&e);
                false
            }
            _ => true,
        }
    }

    async fn command(&mut self, req: Request<String>) -> Next {
        if !self.may_go_on() {
            return Next::Commands;
        }
        match req {
            Request::Ehlo { host } => {
                self.helo = Some(host);
                self.reset_transaction();
                let caps = self.ehlo_lines();
                let last = caps.len() - 1;
                for (i, c) in caps.into_iter().enumerate() {
                    let sep = if i == last { ' ' } else { '-' };
                    self.reply(format!("250{sep}{c}"));
                }
            }
            Request::Helo { host } => {
                self.helo = Some(host);
                self.reset_transaction();
                let line = format!("250 {}", self.host());
                self.reply(line);
            }
            Request::Lhlo { .. } => self.error("500 5.5.1 This is SMTP, not LMTP"),
            Request::StartTls => {
                if self.tls {
                    self.error("503 5.5.1 TLS is already active");
                } else {
                    self.reply("220 2.0.0 Ready to start TLS");
                    return Next::StartTls;
                }
            }
            Request::Auth {
                mechanism,
                initial_response,
            } => return self.auth_start(mechanism, initial_response).await,
            Request::Mail { from } => self.mail_from(from).await,
            Request::Rcpt { to } => self.rcpt_to(to).await,
            Request::Data => {
                if let Some(refusal) = self.data_refusal() {
                    self.error(refusal);
                } else if self.txn.as_ref().is_some_and(|t| t.bdat) {
                    // RFC 3030 §2: "If a DATA statement is issued after a BDAT for the current
                    // transaction, a 503 'Bad sequence of commands' MUST be issued."
                    self.error("503 5.5.1 DATA after BDAT in one transaction; send BDAT LAST");
                } else {
                    self.reply("354 Start mail input; end with <CRLF>.<CRLF>");
                    return Next::Data;
                }
            }
            Request::Bdat {
                chunk_size,
                is_last,
            } => {
                // RFC 3030 §2: the chunk follows the command whatever the answer; read it.
                let mut refusal = self.data_refusal();
                if refusal.is_none()
                    && (self.data.len() as u64).saturating_add(chunk_size as u64)
                        > self.smtp.cfg.smtp.max_message_size
                {
                    refusal = Some("552 5.3.4 Message too big for system".into());
                    self.txn = None;
                    self.drop_data();
                }
                if refusal.is_none()
                    && let Some(t) = self.txn.as_mut()
                {
                    t.bdat = true;
                }
                return Next::Bdat {
                    size: chunk_size,
                    last: is_last,
                    refusal,
                };
            }
            Request::Rset => {
                self.reset_transaction();
                self.reply("250 2.0.0 Reset state");
            }
            Request::Noop { .. } => self.reply("250 2.0.0 OK"),
            // RFC 5321 §3.5.3: never confirm which addresses exist.
            Request::Vrfy { .. } => {
                self.reply("252 2.5.2 Cannot VRFY user, but will accept message")
            }
            Request::Expn { .. } => self.error("502 5.5.1 EXPN not available"),
            Request::Help { .. } => self.reply("214 2.0.0 See RFC 5321"),
            Request::Quit => {
                let line = format!(
                    "221 2.0.0 {} Service closing transmission channel",
                    self.host()
                );
                self.reply(line);
                self.quit = true;
            }
            Request::Etrn { .. } | Request::Atrn { .. } | Request::Burl { .. } => {
                self.error("502 5.5.1 Command not implemented")
            }
        }
        Next::Commands
    }

    /// Why DATA/BDAT cannot start now, if it cannot.
    fn data_refusal(&self) -> Option<String> {
        match &self.txn {
            None => Some("503 5.5.1 Need MAIL command first".into()),
            Some(t) if t.rcpts.is_empty() => Some("554 5.5.1 No valid recipients".into()),
            _ => None,
        }
    }

    async fn auth_start(&mut self, mechanism: u64, initial: String) -> Next {
        if !self.is_submission() {
            self.error("503 5.5.1 AUTH is not available on this port; use submission (port 587)");
        } else if !self.tls {
            self.error("538 5.7.11 Encryption required for requested authentication mechanism");
        } else if self.login.is_some() {
            self.error("503 5.5.1 Already authenticated");
        } else if self.txn.is_some() {
            self.error("503 5.5.1 AUTH not allowed during a mail transaction");
        } else if mechanism == AUTH_PLAIN {
            if initial.is_empty() {
                self.reply("334 ");
                return Next::Auth(Sasl::Plain);
            }
            return self.auth_step(Sasl::Plain, initial.as_bytes()).await;
        } else if mechanism == AUTH_LOGIN {
            if initial.is_empty() {
                self.reply("334 VXNlcm5hbWU6");
                return Next::Auth(Sasl::LoginUser);
            }
            return self.auth_step(Sasl::LoginUser, initial.as_bytes()).await;
        } else {
            self.error("504 5.5.4 Unrecognized authentication type (use PLAIN or LOGIN)");
        }
        Next::Commands
    }

    async fn auth_step(&mut self, state: Sasl, line: &[u8]) -> Next {
        let line = String::from_utf8_lossy(line).trim().to_string();
        if line == "*" {
            self.error("501 5.0.0 Authentication cancelled");
            return Next::Commands;
        }
        let decoded = if line == "=" {
            Ok(Vec::new())
        } else {
            B64.decode(line.as_bytes())
        };
        let Ok(decoded) = decoded else {
            self.error("501 5.5.2 Cannot decode the response (base64 expected)");
            return Next::Commands;
        };
        match state {
            Sasl::Plain => {
                // RFC 4616: [authzid] NUL authcid NUL passwd
                let (user, pass) = match secret::sasl_plain(&decoded) {
                    Ok(up) => up,
                    Err(secret::PlainError::Malformed) => {
                        self.error("501 5.5.2 Malformed PLAIN response");
                        return Next::Commands;
                    }
                    Err(secret::PlainError::AuthzMismatch) => {
                        self.error("535 5.7.8 Authorization identity must match the login");
                        return Next::Commands;
                    }
                };
                self.authenticate(&user, &pass).await;
            }
            Sasl::LoginUser => {
                self.reply("334 UGFzc3dvcmQ6");
                return Next::Auth(Sasl::LoginPassword(
                    String::from_utf8_lossy(&decoded).into_owned(),
                ));
            }
            Sasl::LoginPassword(user) => {
                let pass = String::from_utf8_lossy(&decoded).into_owned();
                self.authenticate(&user, &pass).await;
            }
        }
        Next::Commands
    }

    async fn authenticate(&mut self, user: &str, pass: &str) {
        let dir = &self.smtp.dir;
        match dir
            .authenticate_mailbox(user, pass, Some(self.peer.ip()))
            .await
        {
            Ok(login) => {
                // M9: a service in maintenance takes no submissions.
                if let Err(e) = m9::allows(m9::Access::Mailbox, login.maintenance, &login.domain) {
                    return self.reply(format!("454 4.7.0 {}", e.sentence()));
                }
                tracing::info!(peer = %self.peer, login = %login.address, "SMTP AUTH");
                self.watch = Some(self.smtp.dir.session_watch(login.service_id, &login.domain));
                self.login = Some(login);
                self.reply("235 2.7.0 Authentication successful");
            }
            Err(CoreError::Throttled { retry_after }) => {
                self.error(format!(
                    "454 4.7.0 Too many failed logins; try again in {retry_after} seconds"
                ));
            }
            Err(CoreError::Unauthenticated(_)) => {
                // S4: each failure in a session makes the next answer slower.
                self.auth_failures += 1;
                let base = self.smtp.auth_failure_delay.as_millis() as u64;
                let delay = postfach_core::rules::s4_login_throttle::session_delay_ms(
                    base,
                    self.auth_failures,
                );
                tokio::time::sleep(Duration::from_millis(delay)).await;
                self.error("535 5.7.8 Authentication credentials invalid");
            }
            Err(e) => {
                tracing::error!(error = %e, "SMTP AUTH failed internally");
                self.reply("454 4.7.0 Temporary authentication failure");
            }
        }
    }

    async fn mail_from(&mut self, from: smtp_proto::MailFrom<String>) {
        if self.helo.is_none() {
            return self.error("503 5.5.1 Send HELO/EHLO first");
        }
        if self.txn.is_some() {
            return self.error("503 5.5.1 Nested MAIL command");
        }
        let address = from.address.trim().to_string();
        if unsafe_path(&address) {
            return self.error(
                "553 5.1.7 Sender address refused: no spaces, angle brackets or control characters",
            );
        }
        if self.is_submission() {
            let Some(login) = &self.login else {
                return self.error(if self.tls {
                    "530 5.7.0 Authentication required"
                } else {
                    "530 5.7.0 Must issue a STARTTLS command first"
                });
            };
            // P1: the envelope sender must be one of the login's own addresses.
            match self.smtp.dir.may_send_as(login, &address).await {
                Ok(true) => {}
                Ok(false) => {
                    let who = login.address.clone();
                    tracing::info!(
                        target: "postfach::auth",
                        peer = %self.peer.ip(), login = %who, mail_from = %address,
                        verdict = "refused: envelope sender not owned", "submission verdict"
                    );
                    return self.error(format!(
                        "553 5.7.1 <{address}>... Sender address rejected: not owned by user {who}"
                    ));
                }
                Err(_) => return self.reply("451 4.3.0 Temporary failure, try again later"),
            }
        }
        if !address.is_empty() && !address.contains('@') {
            return self.error(format!("501 5.1.7 <{address}>... Invalid sender address"));
        }
        if from.size as u64 > self.smtp.cfg.smtp.max_message_size {
            return self.error("552 5.3.4 Message size exceeds fixed maximum message size");
        }
        // BDAT chunks of an earlier transaction never become part of this one.
        self.drop_data();
        self.data_too_big = false;
        self.data_no_memory = false;
        self.txn = Some(Txn {
            mail_from: address.clone(),
            ret_full: from.flags & MAIL_RET_FULL != 0,
            env_id: from.env_id,
            declared_size: from.size,
            rcpts: Vec::new(),
            bdat: false,
        });
        let shown = if address.is_empty() {
            "<>".to_string()
        } else {
            address
        };
        self.reply(format!("250 2.1.0 {shown}... Sender ok"));
    }

    /// Whether the command line's path is the bare `<Postmaster>` (any case, RFC 5321
    /// §4.5.1).
    fn names_postmaster(&self) -> bool {
        let line = String::from_utf8_lossy(&self.command_line);
        line.split_once('<')
            .and_then(|(_, rest)| rest.split_once('>'))
            .is_some_and(|(path, _)| path.trim().eq_ignore_ascii_case("postmaster"))
    }

    async fn rcpt_to(&mut self, to: smtp_proto::RcptTo<String>) {
        let Some(txn) = &self.txn else {
            return self.error("503 5.5.1 Need MAIL command first");
        };
        let rcpt = match to.address.trim() {
            // smtp-proto reads the bare `<Postmaster>` (RFC 5321 §4.5.1) as an empty address,
            // as it reads `<>`, which is no recipient at all (RFC 5321 §4.1.2 Forward-path).
            "" if self.names_postmaster() => "postmaster".to_string(),
            "" => return self.error("501 5.1.3 Bad recipient address syntax: <> is no recipient"),
            a if unsafe_path(a) => {
                return self.error(
                    "553 5.1.3 Recipient address refused: no spaces, angle brackets or control characters",
                );
            }
            a => a.to_string(),
        };
        if !o3_recipients::allows_another(txn.rcpts.len(), self.smtp.cfg.smtp.max_recipients) {
            // O3 / RFC 5321 §4.5.3.1.10: past the limit, a temporary refusal.
            return self.reply("452 4.5.3 Too many recipients");
        }
        // F2: unauthenticated clients must introduce themselves properly.
        if self.login.is_none() {
            let helo = self.helo.as_deref().unwrap_or_default();
            if verdict::bogus_helo(helo, &self.smtp.cfg.smtp.banned_helo) {
                return self.error(format!("550 5.7.1 {rcpt}... Access denied - bogus HELO"));
            }
        }
        // O3: every recipient counts against the sender's daily limit.
        if let Some(login) = &self.login {
            let sent = match self.smtp.dir.sent_last_24h(login.address_id).await {
                Ok(n) => n,
                Err(_) => return self.reply("451 4.3.0 Temporary failure, try again later"),
            };
            if !o3::allows(sent, txn.rcpts.len() as i64 + 1, login.daily_limit) {
                let e = CoreError::SendingLimit {
                    limit: login.daily_limit,
                };
                return self.error(format!("550 5.7.1 {e}"));
            }
        }
        let target = match self.smtp.dir.resolve_rcpt(&rcpt).await {
            Ok(t) => t,
            Err(CoreError::Invalid { .. }) => {
                return self.error(format!("501 5.1.3 <{rcpt}>... Invalid recipient address"));
            }
            Err(e) => {
                tracing::error!(error = %e, "recipient lookup failed");
                return self.reply("451 4.3.0 Temporary failure, try again later");
            }
        };
        match &target {
            Rcpt::NoSuchUser => {
                return self.error(format!("550 5.1.1 {rcpt}... User unknown"));
            }
            Rcpt::Remote { .. } if self.login.is_none() => {
                return self.error(format!("554 5.7.1 {rcpt}... Relay access denied"));
            }
            Rcpt::Local(local) => {
                // F7 with the block action "refuse": the sender hears it now (no backscatter).
                if self.login.is_none() {
                    match self.smtp.dir.sender_refused(local, &txn.mail_from).await {
                        Ok(false) => {}
                        Ok(true) => {
                            return self.error(format!(
                                "550 5.7.1 {rcpt}... The recipient does not accept mail from this sender"
                            ));
                        }
                        Err(_) => {
                            return self.reply("451 4.3.0 Temporary failure, try again later");
                        }
                    }
                }
                if !local.has_room(i64::try_from(txn.declared_size).unwrap_or(i64::MAX)) {
                    return self.reply(format!("452 4.2.2 {rcpt}... Mailbox full"));
                }
            }
            Rcpt::Remote { .. } | Rcpt::Reverse { .. } => {}
        }
        let mut notify = 0;
        for (bit, value) in [
            (RCPT_NOTIFY_SUCCESS, 1),
            (RCPT_NOTIFY_FAILURE, 2),
            (RCPT_NOTIFY_DELAY, 4),
            (RCPT_NOTIFY_NEVER, 8),
        ] {
            if to.flags & bit != 0 {
                notify |= value;
            }
        }
        // Every distinct envelope recipient counts (O3) and is kept; recipients that reach
        // the same mailbox (aliases, catchall) are delivered to once, when spooling.
        let txn = self.txn.as_mut().expect("checked above");
        if !txn.rcpts.iter().any(|r| r.rcpt.eq_ignore_ascii_case(&rcpt)) {
            txn.rcpts.push(Recipient {
                rcpt: rcpt.clone(),
                target,
                notify,
                orcpt: to.orcpt,
            });
        }
        self.reply(format!("250 2.1.5 {rcpt}... Recipient ok"));
    }

    fn check_data_size(&mut self) {
        if self.data.len() as u64 > self.smtp.cfg.smtp.max_message_size {
            // Keep reading to the end of data, but keep nothing.
            self.data_too_big = true;
            self.drop_data();
        } else if !self.held.set(self.data.capacity()) {
            // The process's message memory is full: read on, keep nothing, refuse at the end.
            self.data_no_memory = true;
            self.drop_data();
        }
    }

    /// Lets go of the message data (and its memory) of the current transaction.
    fn drop_data(&mut self) {
        self.data = Vec::new();
        self.held.set(0);
    }

    async fn end_of_message(&mut self) {
        // Data that arrived after the session had to end is not accepted.
        if !self.may_go_on() {
            self.txn = None;
            self.drop_data();
            return;
        }
        let Some(txn) = self.txn.take() else {
            return self.error("503 5.5.1 Need MAIL command first");
        };
        let raw = std::mem::take(&mut self.data);
        let no_memory = std::mem::take(&mut self.data_no_memory);
        if std::mem::take(&mut self.data_too_big) {
            self.held.set(0);
            return self.reply("552 5.3.4 Message too big for system");
        }
        // The verdict copies the message (parsing, headers added): room for three copies.
        if no_memory || !self.held.set(raw.len().saturating_mul(3)) {
            drop(raw);
            self.held.set(0);
            return self.reply("452 4.3.1 Insufficient system storage; try again later");
        }
        let reply = match self.accept(txn, raw).await {
            Ok(line) | Err(line) => line,
        };
        self.held.set(0);
        self.reply(reply)
    }

    /// The verdict on a complete message, then the spool. `Ok` and `Err` both carry the reply.
    async fn accept(&mut self, txn: Txn, raw: Vec<u8>) -> Result<String, String> {
        let helo = self.helo.clone().unwrap_or_default();
        // F4, P1: one strict reading of the message, shared by every decision below and by
        // everything after us (header_block.rs says what is refused and why).
        // mail-auth's reading (DKIM, ARC, DMARC) is made once and must agree with ours.
        let parsed = mail_auth::AuthenticatedMessage::parse(&raw);
        let checked = header_block::content_fault(&raw)
            .map_or_else(|| HeaderBlock::parse(&raw), Err)
            .and_then(|block| {
                if !block.agrees_with(parsed.as_ref()) {
                    return Err(Malformed::Ambiguous);
                }
                let author = block.author()?;
                Ok((author, header_block::strip_our_results(&block, self.host())))
            });
        let (author, stripped) = match checked {
            Ok(c) => c,
            Err(why) => {
                self.log_verdict(&txn, &helo, "-", "-", &format!("refused: {why}"));
                return Err(format!("550 5.6.0 Message refused: {why}"));
            }
        };
        // P1: what the recipients see as sender must be the login's too.
        if let Some(login) = &self.login {
            match self.smtp.dir.may_send_as(login, &author.address).await {
                Ok(true) => {}
                Ok(false) => {
                    self.log_verdict(
                        &txn,
                        &helo,
                        &author.domain,
                        "-",
                        &format!(
                            "refused: From {} is not owned by {}",
                            author.address, login.address
                        ),
                    );
                    return Err(format!(
                        "553 5.7.1 <{}>... Sender address rejected: not owned by user {}",
                        author.address, login.address
                    ));
                }
                Err(_) => return Err("451 4.3.0 Temporary failure, try again later".into()),
            }
        }
        // F3: forbidden attachments, also inside archives.
        if let Some(name) = verdict::forbidden_attachment(&raw) {
            tracing::info!(peer = %self.peer, attachment = %name, "refused forbidden attachment");
            return Err("554 5.7.0 AV: Message is rejected by headers rule filter".into());
        }
        let mut prefix = String::new();
        // F4: authenticate inbound mail (on the message as it came: a stripped field may be
        // covered by a DKIM signature).
        if self.login.is_none() {
            // A dead resolver must not hold the session: the checks are bounded, and past the
            // bound the sender is asked to try again (451 below). Temporary DNS errors within
            // the bound are recorded and do not refuse (RFC 7489 §6.6.3).
            let bound = Duration::from_secs(self.smtp.cfg.dns.timeout_seconds.max(1) * 4);
            let auth = tokio::time::timeout(
                bound,
                crate::mailauth::authenticate(
                    &self.smtp.auth,
                    self.host(),
                    parsed.as_ref(),
                    self.peer.ip(),
                    &helo,
                    &txn.mail_from,
                    &self.smtp.cfg.auth.trusted_arc_sealers,
                ),
            )
            .await;
            // Past the bound the sender gets a temporary refusal, not our acceptance: DNS that
            // never answers (the sender's own, for its DKIM keys) must not buy a message the
            // checks could not clear. A real sender retries.
            let Ok(auth) = auth else {
                self.log_verdict(
                    &txn,
                    &helo,
                    &author.domain,
                    "timeout",
                    "deferred: checks timed out",
                );
                return Err(
                    "451 4.7.0 Sender authentication could not be completed in time; try again later"
                        .into(),
                );
            };
            if let Some(domain) = auth.dmarc_reject
                && self.smtp.cfg.smtp.dmarc_reject
            {
                self.log_verdict(
                    &txn,
                    &helo,
                    &author.domain,
                    &auth.summary,
                    &format!("refused: fails DMARC and {domain} publishes p=reject"),
                );
                return Err(format!(
                    "550 5.7.1 Message rejected: it fails DMARC authentication and {domain} publishes a reject policy"
                ));
            }
            self.log_verdict(&txn, &helo, &author.domain, &auth.summary, "accepted");
            prefix.push_str(&auth.header);
        }
        let raw = stripped.unwrap_or(raw);
        let queue_ref = crate::random_id();
        let received = self.received_header(&txn, &queue_ref, &helo);
        // Return-Path (RFC 5321 §4.4) is for final delivery; relaying strips it again.
        let message = [
            format!("Return-Path: <{}>\r\n", txn.mail_from).as_bytes(),
            received.as_bytes(),
            prefix.as_bytes(),
            &raw,
        ]
        .concat();
        self.spool(txn, message, queue_ref).await
    }

    /// One line per inbound verdict (F4), so that an operator can answer "why was this
    /// refused" with grep: client, HELO, envelope, the From domain, the results, the reason.
    fn log_verdict(&self, txn: &Txn, helo: &str, from_domain: &str, results: &str, verdict: &str) {
        if let Some(login) = &self.login {
            // Submission: its refusals are explained too (one line to grep, as inbound).
            if verdict.starts_with("refused") {
                tracing::info!(
                    target: "postfach::auth",
                    peer = %self.peer.ip(), login = %login.address, mail_from = %txn.mail_from,
                    from_domain = %from_domain, verdict, "submission verdict"
                );
            }
            return;
        }
        let rcpts: Vec<&str> = txn.rcpts.iter().map(|r| r.rcpt.as_str()).collect();
        tracing::info!(
            target: "postfach::auth",
            peer = %self.peer.ip(), helo = %helo, mail_from = %txn.mail_from,
            rcpts = %rcpts.join(","), from_domain = %from_domain, results, verdict,
            "inbound verdict"
        );
    }

    /// Inbound mail for exactly one local recipient is delivered during the transaction, like
    /// an LMTP delivery: the recipient's pipeline runs now and its copies are committed before
    /// `250` (durable, as the spool would be). This saves the queue entry, its recipient row,
    /// the spooled body and their removal — about half the writes of an accepted message
    ///. `None` when the message is not such mail or the delivery failed (nothing
    /// of it was committed): the caller spools it, and the queue retries as usual. A
    /// mailbox the message does not fit into (M3) is the sender's answer: `452 4.2.2`.
    async fn deliver_now(
        &self,
        txn: &Txn,
        message: &[u8],
        queue_ref: &str,
    ) -> Option<Result<String, String>> {
        if self.login.is_some() || message.len() > postfach_core::mail::INLINE_BODY_MAX {
            return None;
        }
        let [r] = txn.rcpts.as_slice() else {
            return None;
        };
        let Rcpt::Local(l) = &r.target else {
            return None;
        };
        // A success notice (RFC 3461 NOTIFY=SUCCESS) is the queue's business.
        if r.notify & 1 != 0 {
            return None;
        }
        let now = self.smtp.dir.now();
        let entry = QueueEntry {
            id: 0,
            blob_id: postfach_store::inline_id(message),
            size: message.len() as i64,
            mail_from: txn.mail_from.clone(),
            source: "inbound".into(),
            sender_address_id: None,
            env_id: txn.env_id.clone(),
            ret_full: txn.ret_full,
            received_at: now,
            expires_at: now,
            next_attempt_at: now,
            attempts: 0,
        };
        let rcpt = QueueRcpt {
            id: 0,
            queue_id: 0,
            rcpt: r.rcpt.clone(),
            address_id: Some(l.address_id),
            via: l.via.as_str().into(),
            domain: l.domain.clone(),
            is_local: true,
            status: "pending".into(),
            notify: r.notify,
            orcpt: r.orcpt.clone(),
            last_error: String::new(),
            updated_at: now,
        };
        let raw = Arc::new(message.to_vec());
        match self.smtp.pipeline.deliver_direct(&entry, &rcpt, raw).await {
            Ok(done) if done.delivered => {
                tracing::info!(
                    peer = %self.peer, id = %queue_ref, from = %txn.mail_from, rcpt = %r.rcpt,
                    size = message.len(), stored = ?done.stored, queued = ?done.queued,
                    "message accepted and delivered"
                );
                if !done.queued.is_empty() {
                    self.smtp.queue_wake.notify_one();
                }
                Some(Ok(format!(
                    "250 2.0.0 Message accepted and delivered (id {queue_ref})"
                )))
            }
            Ok(_) => None,
            // M3, decided by the delivery on the usage it wrote (nothing of it was kept).
            Err(CoreError::OverQuota(why)) => {
                tracing::info!(id = %queue_ref, rcpt = %r.rcpt, "{why}");
                Some(Err(format!("452 4.2.2 <{}>... Mailbox full", r.rcpt)))
            }
            Err(e) => {
                tracing::info!(id = %queue_ref, rcpt = %r.rcpt, error = %e, "delivery during the transaction failed; spooling the message");
                None
            }
        }
    }

    fn received_header(&self, txn: &Txn, id: &str, helo: &str) -> String {
        let with = match (self.tls, self.login.is_some()) {
            (false, false) => "ESMTP",
            (true, false) => "ESMTPS",
            (false, true) => "ESMTPA",
            (true, true) => "ESMTPSA",
        };
        let helo: String = helo
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(255)
            .collect();
        // "for" only with a single recipient: it would disclose Bcc recipients otherwise.
        let for_clause = match txn.rcpts.as_slice() {
            [one] => format!("\r\n\tfor <{}>", one.rcpt),
            _ => String::new(),
        };
        format!(
            "Received: from {helo} ({})\r\n\tby {} (Postfach) with {with} id {id}{for_clause};\r\n\t{}\r\n",
            self.peer.ip(),
            self.host(),
            crate::rfc5322_now()
        )
    }

    async fn spool(
        &mut self,
        txn: Txn,
        message: Vec<u8>,
        queue_ref: String,
    ) -> Result<String, String> {
        let temp =
            || "451 4.3.0 Temporary failure storing the message; try again later".to_string();
        let size = message.len();
        // M3 with the real size: when no recipient has room, the sender hears it now; when
        // some have, the others get a bounce from the delivery (which decides again).
        if !txn.rcpts.is_empty()
            && txn.rcpts.iter().all(|r| match &r.target {
                Rcpt::Local(l) => !l.has_room(size as i64),
                _ => false,
            })
        {
            return Err("452 4.2.2 Mailbox full; the message was not accepted".into());
        }
        if let Some(reply) = self.deliver_now(&txn, &message, &queue_ref).await {
            return reply;
        }
        // Small bodies go into the store with the queue entry (one fsync per group commit),
        // larger ones into the blob store first.
        let (blob, inline_body) = if size <= postfach_core::mail::INLINE_BODY_MAX {
            (postfach_store::inline_id(&message), Some(message))
        } else {
            match self.smtp.dir.blobs().put(&message).await {
                Ok(id) => (id.to_string(), None),
                Err(e) => {
                    tracing::error!(error = %e, "storing a message failed");
                    return Err(temp());
                }
            }
        };
        let counted = txn.rcpts.len() as i64;
        let mut seen_local = Vec::new();
        let rcpts: Vec<NewQueueRcpt> = txn
            .rcpts
            .iter()
            .filter(|r| match &r.target {
                Rcpt::Local(l) if seen_local.contains(&l.address_id) => false,
                Rcpt::Local(l) => {
                    seen_local.push(l.address_id);
                    true
                }
                _ => true,
            })
            .map(|r| match &r.target {
                Rcpt::Local(l) => NewQueueRcpt {
                    rcpt: r.rcpt.clone(),
                    address_id: Some(l.address_id),
                    via: l.via.as_str().into(),
                    domain: l.domain.clone(),
                    is_local: true,
                    notify: r.notify,
                    orcpt: r.orcpt.clone(),
                },
                Rcpt::Remote { domain } => NewQueueRcpt {
                    rcpt: r.rcpt.clone(),
                    domain: domain.clone(),
                    is_local: false,
                    notify: r.notify,
                    orcpt: r.orcpt.clone(),
                    ..Default::default()
                },
                // F11: a bounce to one of our SRS addresses goes back to the original sender.
                Rcpt::Reverse { original, domain } => NewQueueRcpt {
                    rcpt: original.clone(),
                    domain: domain.clone(),
                    is_local: false,
                    notify: r.notify,
                    orcpt: r.orcpt.clone(),
                    ..Default::default()
                },
                Rcpt::NoSuchUser => unreachable!("refused at RCPT"),
            })
            .collect();
        let request = SpoolRequest {
            entry: NewQueueEntry {
                blob_id: blob,
                size: size as i64,
                mail_from: txn.mail_from.clone(),
                source: if self.login.is_some() {
                    "submission"
                } else {
                    "inbound"
                }
                .into(),
                sender_address_id: self.login.as_ref().map(|l| l.address_id),
                env_id: txn.env_id.clone(),
                ret_full: txn.ret_full,
                // Set by the spool from `lifetime`.
                expires_at: 0,
            },
            lifetime: self.smtp.cfg.queue.lifetime_hours * 3600,
            count_for: self.login.as_ref().map(|l| SendCount {
                address_id: l.address_id,
                recipients: counted,
                daily_limit: l.daily_limit,
            }),
            rcpts,
            inline_body,
        };
        match crate::runner::spool(&self.smtp, &request).await {
            Ok(id) => {
                tracing::info!(
                    peer = %self.peer, queue_id = id, id = %queue_ref, from = %txn.mail_from,
                    recipients = txn.rcpts.len(), size, "message accepted"
                );
                Ok(format!(
                    "250 2.0.0 Message accepted for delivery (queued as {queue_ref})"
                ))
            }
            // O3, decided on the count as written (another session of this address got
            // there first); nothing was queued.
            Err(e @ CoreError::SendingLimit { .. }) => Err(format!("550 5.7.1 {e}")),
            Err(e) => {
                // The blob stays behind unreferenced (no message points at it) until the
                // store check collects it; nothing half-written is visible.
                tracing::error!(error = %e, "spooling a message failed");
                Err(temp())
            }
        }
    }
}

/// A path that, once smtp-proto has taken a quoted local part out of its quotes, could not be
/// written into a `MAIL FROM:<…>` again as the same address: spaces would become ESMTP
/// parameters at the next hop, `>` would end the path, a NUL or a line end could split it.
/// Such addresses are refused; real mail systems do not use them.
fn unsafe_path(address: &str) -> bool {
    address
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '<' || c == '>')
}
