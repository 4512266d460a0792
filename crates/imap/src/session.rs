//! One IMAP connection (RFC 9051 / RFC 3501): framing with imap-codec (literals with
//! continuation requests, LITERAL+, AUTHENTICATE, IDLE), the session states, and every
//! command.
//!
//! Framing: the buffer is offered to the decoder; `Incomplete` reads more, `LiteralFound`
//! (the buffer ends right at a literal) answers `+` for a synchronising literal and reads the
//! literal, `Failed` answers BAD for that line and drops it. After STARTTLS nothing of the
//! buffer survives (CVE-2011-0411 class).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroU64};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use imap_codec::ResponseCodec;
use imap_codec::encode::Encoder;
use imap_codec::imap_types::IntoStatic;
use imap_codec::imap_types::auth::AuthMechanism;
use imap_codec::imap_types::command::{
    Command, CommandBody, FetchModifier, SelectParameter, StoreModifier,
};
use imap_codec::imap_types::core::{Atom, LiteralMode, QuotedChar, Tag, Vec1};
use imap_codec::imap_types::datetime::DateTime;
use imap_codec::imap_types::extensions::binary::LiteralOrLiteral8;
use imap_codec::imap_types::extensions::enable::CapabilityEnable;
use imap_codec::imap_types::fetch::{
    Macro, MacroOrMessageDataItemNames, MessageDataItem, MessageDataItemName,
};
use imap_codec::imap_types::flag::{Flag, FlagFetch, FlagNameAttribute, StoreResponse, StoreType};
use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox};
use imap_codec::imap_types::response::{Code, CodeOther, Data, Response, Status};
use imap_codec::imap_types::search::SearchKey;
use imap_codec::imap_types::sequence::SequenceSet;
use imap_codec::imap_types::status::{StatusDataItem, StatusDataItemName};
use postfach_core::Error as CoreError;
use postfach_core::mail::{
    AppendRequest, FlagChange, FlagOp, MailboxLogin, MessageFlags, StoreOutcome,
};
use postfach_core::net::Stream;
use postfach_core::sessions::SessionWatch;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::broadcast;

use crate::framing::{Framed, Framer, SearchReturn};
use crate::selected::{ANSWERED, DELETED, DRAFT, FLAGGED, Meta, SEEN, Selected, Update};
use crate::shim::{ListExt, Shimmed};
use crate::{Imap, fetch, mutf7, search, wire};

const SEPARATOR: char = '/';

/// How long a selected mailbox's view is trusted without asking the store, for changes that
/// do not reach this process's change feed (`Session::sync_if_changed`).
const FOLDER_RECHECK: Duration = Duration::from_secs(1);

pub(crate) struct Session {
    /// This connection's place in the per-IP count; first, so that it is released before the
    /// connection closes (fields drop in order).
    _slot: postfach_core::limits::ConnectionGuard,
    imap: Arc<Imap>,
    peer: SocketAddr,
    stream: Stream,
    tls: bool,
    /// Credentials may be sent: TLS is on, or the operator allows plain text on loopback.
    private: bool,
    framer: Framer,
    out: Vec<u8>,
    login: Option<MailboxLogin>,
    /// M9: ends the session when its mail service goes into maintenance.
    watch: Option<SessionWatch>,
    selected: Option<Selected>,
    /// IMAP4rev2 enabled (RFC 9051): no \Recent, UTF-8 names, ESEARCH.
    rev2: bool,
    /// UTF8=ACCEPT (RFC 6855) or IMAP4rev2: mailbox names in UTF-8.
    utf8: bool,
    condstore: bool,
    qresync: bool,
    errors: usize,
    quit: bool,
    feed: broadcast::Receiver<postfach_core::mail::MailboxChange>,
}

/// `private`: credentials may be sent (TLS, or plain text on loopback when the operator allows it).
fn capabilities(tls: bool, private: bool, authenticated: bool) -> String {
    let mut caps = vec![
        "IMAP4rev1",
        "IMAP4rev2",
        "LITERAL+",
        "SASL-IR",
        "ENABLE",
        "ID",
    ];
    if !authenticated {
        if !tls {
            caps.push("STARTTLS");
        }
        if private {
            caps.push("AUTH=PLAIN");
        } else {
            caps.push("LOGINDISABLED");
        }
        return caps.join(" ");
    }
    caps.extend([
        "IDLE",
        "NAMESPACE",
        "UIDPLUS",
        "MOVE",
        "UNSELECT",
        "CHILDREN",
        "SPECIAL-USE",
        "CREATE-SPECIAL-USE",
        "LIST-EXTENDED",
        "LIST-STATUS",
        "CONDSTORE",
        "QRESYNC",
        "QUOTA",
        "QUOTA=RES-STORAGE",
        "BINARY",
        "ESEARCH",
        "STATUS=SIZE",
        "UTF8=ACCEPT",
    ]);
    caps.join(" ")
}

/// A response code imap-types has no variant for (RFC 5530 and friends).
fn code(name: &'static str) -> Code<'static> {
    Code::Other(CodeOther::unvalidated(name.as_bytes()))
}

pub(crate) fn flags_of(meta: &Meta, recent: bool) -> Vec<FlagFetch<'static>> {
    let mut out = Vec::new();
    for (bit, flag) in [
        (SEEN, Flag::Seen),
        (ANSWERED, Flag::Answered),
        (FLAGGED, Flag::Flagged),
        (DELETED, Flag::Deleted),
        (DRAFT, Flag::Draft),
    ] {
        if meta.flags & bit != 0 {
            out.push(FlagFetch::Flag(flag));
        }
    }
    for k in meta.keywords.split_whitespace() {
        if let Ok(atom) = Atom::try_from(k.to_string()) {
            out.push(FlagFetch::Flag(Flag::Keyword(atom)));
        }
    }
    if recent {
        out.push(FlagFetch::Recent);
    }
    out
}

/// (bits, keywords) of a flag list; `\Recent` and extension flags cannot be set.
fn bits_of(flags: &[Flag<'_>]) -> (i64, Vec<String>) {
    let mut bits = 0;
    let mut keywords = Vec::new();
    for f in flags {
        match f {
            Flag::Seen => bits |= SEEN,
            Flag::Answered => bits |= ANSWERED,
            Flag::Flagged => bits |= FLAGGED,
            Flag::Deleted => bits |= DELETED,
            Flag::Draft => bits |= DRAFT,
            Flag::Keyword(k) => keywords.push(k.as_ref().to_string()),
            Flag::Extension(_) => {}
        }
    }
    (bits, keywords)
}

fn imap_date(t: i64) -> Option<DateTime> {
    let dt = chrono::DateTime::<chrono::Utc>::from_timestamp(t, 0)?.fixed_offset();
    DateTime::try_from(dt).ok()
}

/// A MODSEQ for the wire (RFC 7162: at least 1).
fn modseq(m: i64) -> NonZeroU64 {
    NonZeroU64::new(u64::try_from(m).unwrap_or(1).max(1)).expect("at least 1")
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n.max(1)).expect("at least 1")
}

/// An IMAP sequence set written out (`1:3,7`), for responses imap-types lacks.
fn compress(mut v: Vec<u32>) -> String {
    v.sort_unstable();
    v.dedup();
    let mut out = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let start = v[i];
        let mut end = start;
        while i + 1 < v.len() && v[i + 1] == end + 1 {
            i += 1;
            end = v[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}:{end}")
        });
        i += 1;
    }
    out.join(",")
}

/// `*` and `%` matching of LIST (RFC 9051 §6.3.9): `*` matches anything, `%` anything but the
/// hierarchy separator. INBOX matches case-insensitively.
fn wildcard(pattern: &str, name: &str) -> bool {
    let norm = |s: &str| -> Vec<char> {
        let mut parts: Vec<String> = s.split(SEPARATOR).map(String::from).collect();
        if parts
            .first()
            .is_some_and(|p| p.eq_ignore_ascii_case("INBOX"))
        {
            parts[0] = "INBOX".into();
        }
        parts.join("/").chars().collect()
    };
    let (p, n) = (norm(pattern), norm(name));
    // Dynamic programming over (pattern, name) prefixes: linear in each, whatever the client
    // sends (a backtracking matcher is exponential in the number of wildcards).
    // row[j]: pattern[..i] matches name[..j].
    let mut row = vec![false; n.len() + 1];
    row[0] = true;
    for pc in &p {
        let mut next = vec![false; n.len() + 1];
        match pc {
            '*' => {
                let mut any = false;
                for j in 0..=n.len() {
                    any |= row[j];
                    next[j] = any;
                }
            }
            '%' => {
                let mut any = false;
                for j in 0..=n.len() {
                    if j > 0 && n[j - 1] == SEPARATOR {
                        any = false;
                    }
                    any |= row[j];
                    next[j] = any;
                }
            }
            c => {
                for j in 1..=n.len() {
                    next[j] = row[j - 1] && n[j - 1] == *c;
                }
            }
        }
        row = next;
    }
    row[n.len()]
}

impl Session {
    pub(crate) async fn run(imap: Arc<Imap>, tcp: TcpStream, peer: SocketAddr, implicit_tls: bool) {
        let _ = tcp.set_nodelay(true);
        let slot = match imap.limiter.connect(peer.ip()) {
            Ok(slot) => slot,
            Err(why) => {
                // On the TLS port the connection just closes: no handshake is spent on a
                // client that is turned away.
                if !implicit_tls {
                    let mut tcp = tcp;
                    let _ = tcp.write_all(format!("* BYE {why}\r\n").as_bytes()).await;
                }
                return;
            }
        };
        let tls = implicit_tls;
        let Some(stream) = Stream::accept(tcp, &imap.tls, tls).await else {
            return;
        };
        let feed = imap.dir.mailbox_changes();
        let framer = Framer::new(
            imap.settings.max_literal_size,
            imap.settings.max_line_length,
        );
        let private = tls || (imap.settings.plaintext_auth_on_loopback && peer.ip().is_loopback());
        let session = Session {
            _slot: slot,
            imap,
            peer,
            stream,
            tls,
            private,
            framer,
            out: Vec::new(),
            login: None,
            watch: None,
            selected: None,
            rev2: false,
            utf8: false,
            condstore: false,
            qresync: false,
            errors: 0,
            quit: false,
            feed,
        };
        session.serve().await;
    }

    // ------------------------------------------------------------------ output

    fn raw(&mut self, line: impl AsRef<str>) {
        self.out.extend_from_slice(line.as_ref().as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    fn response(&mut self, r: Response<'_>) {
        let bytes = ResponseCodec::default().encode(&r).dump();
        self.out.extend_from_slice(&bytes);
    }

    fn data(&mut self, d: Data<'_>) {
        self.response(Response::Data(d));
    }

    fn tagged(&mut self, kind: &str, tag: &Tag<'_>, code: Option<Code<'_>>, text: &str) {
        let plain_tag = tag.as_ref().to_string();
        let tag = Some(tag.clone());
        let status = match kind {
            "OK" => Status::ok(tag, code, text.to_string()),
            "NO" => Status::no(tag, code, text.to_string()),
            _ => Status::bad(tag, code, text.to_string()),
        };
        match status {
            Ok(s) => self.response(Response::Status(s)),
            Err(_) => self.raw(format!("{plain_tag} {kind} error")),
        }
    }

    fn ok(&mut self, tag: &Tag<'_>, text: &str) {
        self.tagged("OK", tag, None, text);
    }

    fn no(&mut self, tag: &Tag<'_>, code: Option<Code<'_>>, text: &str) {
        self.tagged("NO", tag, code, text);
    }

    fn bad(&mut self, tag: &Tag<'_>, text: &str) {
        self.tagged("BAD", tag, None, text);
        self.count_error();
    }

    fn count_error(&mut self) {
        self.errors += 1;
        if self.errors >= self.imap.settings.max_errors {
            self.raw("* BYE Too many errors, closing connection");
            self.quit = true;
        }
    }

    /// A service-layer error as an IMAP NO with the fitting response code (RFC 5530).
    fn no_for(&mut self, tag: &Tag<'_>, e: &CoreError) {
        let code = match e {
            CoreError::OverQuota(_) => Some(Code::OverQuota),
            CoreError::NotFound { .. } => Some(code("NONEXISTENT")),
            CoreError::Duplicate { .. } => Some(code("ALREADYEXISTS")),
            CoreError::Unavailable(_) => Some(code("UNAVAILABLE")),
            CoreError::Internal(_) => Some(code("SERVERBUG")),
            CoreError::Forbidden(_) => Some(code("NOPERM")),
            _ => Some(code("CANNOT")),
        };
        let text = match e {
            CoreError::Internal(_) => "Internal error; try again later".to_string(),
            other => other.to_string(),
        };
        self.no(tag, code, &text);
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            let out = std::mem::take(&mut self.out);
            self.stream.write_all(&out).await?;
            // A large response's room is not kept by a connection that may now wait for
            // hours (performance: memory per idle connection).
            if out.capacity() <= 64 * 1024 {
                self.out = out;
                self.out.clear();
            }
        }
        Ok(())
    }

    /// Reads more input; false when the connection is over (closed, error or timeout).
    async fn read(&mut self) -> bool {
        let settings = &self.imap.settings;
        let timeout = if self.login.is_some() {
            Duration::from_secs(settings.autologout_minutes * 60)
        } else {
            Duration::from_secs(settings.login_timeout_seconds)
        };
        // Straight into the framer's buffer: a read buffer in this future's state would be
        // part of every connection's task, also while it waits (performance: it was 16 KiB of
        // the 18 KiB of each connection's task).
        let buf = &mut self.framer.buf;
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(8 * 1024);
        }
        let read = tokio::select! {
            r = tokio::time::timeout(timeout, self.stream.read_buf(buf)) => r,
            e = postfach_core::sessions::ended(&mut self.watch) => {
                self.bye_for(&e).await;
                return false;
            }
        };
        match read {
            Ok(Ok(0)) | Ok(Err(_)) => false,
            Ok(Ok(_)) => true,
            Err(_) => {
                self.raw("* BYE Autologout; idle for too long");
                let _ = self.flush().await;
                false
            }
        }
    }

    /// Ends the session for a reason from outside it (M9): `* BYE` with the reason.
    async fn bye_for(&mut self, e: &CoreError) {
        self.raw(format!("* BYE [UNAVAILABLE] {}", e.sentence()));
        let _ = self.flush().await;
        self.quit = true;
    }

    // ------------------------------------------------------------------ framing

    /// The next command, after answering what framing found on the way.
    fn frame(&mut self) -> Option<Framed> {
        match self.framer.next_frame() {
            Framed::NeedMore { continuation } => {
                if continuation {
                    self.raw("+ Ready for literal data");
                }
                None
            }
            Framed::LiteralTooBig { tag, close } => {
                self.no(&tag, Some(Code::TooBig), "Literal too big");
                if close {
                    // The data is on its way and we will not read it (RFC 7888 §4).
                    self.raw("* BYE Literal too big");
                    self.quit = true;
                }
                Some(Framed::NeedMore {
                    continuation: false,
                })
            }
            Framed::TooLong => {
                self.raw("* BAD Command line too long");
                self.raw("* BYE Closing connection");
                self.quit = true;
                Some(Framed::NeedMore {
                    continuation: false,
                })
            }
            Framed::Syntax { tag } => {
                match tag {
                    Some(tag) => self.bad(&tag, "Syntax error or unknown command"),
                    None => {
                        self.raw("* BAD Syntax error");
                        self.count_error();
                    }
                }
                Some(Framed::NeedMore {
                    continuation: false,
                })
            }
            other => Some(other),
        }
    }

    async fn serve(mut self) {
        let greeting = format!(
            "* OK [CAPABILITY {}] {} Postfach IMAP ready",
            capabilities(self.tls, self.private, false),
            self.imap.hostname
        );
        self.raw(greeting);
        loop {
            if self.flush().await.is_err() || self.quit {
                return;
            }
            self.framer.release_spare();
            // Commands already read (pipelined) do not outlive the session's end either.
            if let Some(Err(e)) = self.watch.as_ref().map(|w| w.check()) {
                return self.bye_for(&e).await;
            }
            // A task is as large as its largest state, and the command handlers' states are
            // tens of KiB together: they live on the heap only while a command runs, so that
            // a connection that waits (most of them, often for hours in IDLE) stays small
            // (performance: memory per idle connection). IDLE itself is kept small and runs here.
            match self.frame() {
                Some(Framed::Command(cmd, _))
                    if matches!(cmd.body, CommandBody::Idle) && self.login.is_some() =>
                {
                    self.idle(&cmd.tag).await
                }
                Some(Framed::Command(cmd, ret)) => Box::pin(self.dispatch(*cmd, ret)).await,
                Some(Framed::Shim(s)) => Box::pin(self.shimmed(s)).await,
                // Answered already; on to the next.
                Some(_) => {}
                None => {
                    if self.flush().await.is_err() || !self.read().await {
                        return;
                    }
                }
            }
        }
    }

    /// Reads one line (for SASL and IDLE), None when the connection ends.
    async fn read_line(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(line) = self.framer.take_line() {
                return Some(line);
            }
            if self.framer.buf.len() > self.imap.settings.max_line_length {
                return None;
            }
            if self.flush().await.is_err() || !self.read().await {
                return None;
            }
        }
    }

    // ------------------------------------------------------------------ names

    /// A wire mailbox name as stored (UTF-8): modified UTF-7 unless UTF-8 is on.
    fn name_in(&self, m: &Mailbox<'_>) -> Option<String> {
        match m {
            Mailbox::Inbox => Some("INBOX".into()),
            Mailbox::Other(o) => {
                let s = std::str::from_utf8(o.as_ref()).ok()?;
                if self.utf8 {
                    Some(s.to_string())
                } else {
                    mutf7::decode(s)
                }
            }
        }
    }

    /// A name that is a well-formed atom or string but not valid modified UTF-7 (RFC 3501
    /// §5.1.3): no such mailbox can exist, so the command fails (NO), as Dovecot answers; it
    /// is not a syntax error (BAD).
    fn bad_name(&mut self, tag: &Tag<'_>) {
        self.no(
            tag,
            Some(code("CANNOT")),
            "Invalid mailbox name: not valid modified UTF-7 (RFC 3501 section 5.1.3)",
        )
    }

    fn name_str_in(&self, s: &str) -> Option<String> {
        if self.utf8 {
            Some(s.to_string())
        } else {
            mutf7::decode(s)
        }
    }

    fn name_out(&self, name: &str) -> Mailbox<'static> {
        let wire = if self.utf8 {
            name.to_string()
        } else {
            mutf7::encode(name)
        };
        Mailbox::try_from(wire).unwrap_or(Mailbox::Inbox)
    }

    // ------------------------------------------------------------------ dispatch

    async fn dispatch(&mut self, cmd: Command<'static>, search_return: Option<SearchReturn>) {
        let tag = cmd.tag;
        let authenticated = self.login.is_some();
        match cmd.body {
            CommandBody::Capability => {
                let caps = capabilities(self.tls, self.private, authenticated);
                self.raw(format!("* CAPABILITY {caps}"));
                self.ok(&tag, "CAPABILITY completed");
            }
            CommandBody::Noop | CommandBody::Check => {
                self.sync_selected(true).await;
                self.ok(&tag, "Done");
            }
            CommandBody::Logout => {
                self.raw("* BYE Logging out");
                self.ok(&tag, "LOGOUT completed");
                self.quit = true;
            }
            CommandBody::StartTLS => self.starttls(&tag).await,
            CommandBody::Id { .. } => {
                self.raw(format!(
                    "* ID (\"name\" \"Postfach\" \"version\" \"{}\")",
                    env!("CARGO_PKG_VERSION")
                ));
                self.ok(&tag, "ID completed");
            }
            CommandBody::Login { username, password } if !authenticated => {
                if !self.private {
                    self.no(
                        &tag,
                        Some(code("PRIVACYREQUIRED")),
                        "LOGIN is not allowed before STARTTLS",
                    );
                    return;
                }
                let user = String::from_utf8_lossy(username.as_ref()).into_owned();
                let pass = String::from_utf8_lossy(password.declassify().as_ref()).into_owned();
                self.authenticate(&tag, &user, &pass).await;
            }
            CommandBody::Authenticate {
                mechanism,
                initial_response,
            } if !authenticated => {
                self.sasl(
                    &tag,
                    mechanism,
                    initial_response.map(|r| r.declassify().to_vec()),
                )
                .await;
            }
            CommandBody::Login { .. } | CommandBody::Authenticate { .. } => {
                self.bad(&tag, "Already authenticated");
            }
            _ if !authenticated => self.bad(&tag, "Log in first"),
            CommandBody::Enable { capabilities } => self.enable(&tag, capabilities).await,
            CommandBody::Namespace => {
                self.raw("* NAMESPACE ((\"\" \"/\")) NIL NIL");
                self.ok(&tag, "NAMESPACE completed");
            }
            CommandBody::Select {
                mailbox,
                parameters,
            } => self.select(&tag, &mailbox, false, parameters).await,
            CommandBody::Examine {
                mailbox,
                parameters,
            } => self.select(&tag, &mailbox, true, parameters).await,
            CommandBody::Create { mailbox } => {
                let Some(name) = self.name_in(&mailbox) else {
                    return self.bad_name(&tag);
                };
                self.create(&tag, &name, "").await
            }
            CommandBody::Delete { mailbox } => self.delete(&tag, &mailbox).await,
            CommandBody::Rename { from, to } => self.rename(&tag, &from, &to).await,
            CommandBody::Subscribe { mailbox } => self.subscribe(&tag, &mailbox, true).await,
            CommandBody::Unsubscribe { mailbox } => self.subscribe(&tag, &mailbox, false).await,
            CommandBody::List {
                reference,
                mailbox_wildcard,
            } => {
                let Some(reference) = self.name_in(&reference) else {
                    return self.bad(&tag, "Bad reference");
                };
                let pattern = list_mailbox(&mailbox_wildcard);
                let ext = ListExt {
                    tag: tag.as_ref().to_string(),
                    reference,
                    patterns: vec![pattern],
                    ..Default::default()
                };
                self.list(&tag, ext, false).await
            }
            CommandBody::Lsub {
                reference,
                mailbox_wildcard,
            } => {
                let Some(reference) = self.name_in(&reference) else {
                    return self.bad(&tag, "Bad reference");
                };
                let pattern = list_mailbox(&mailbox_wildcard);
                let ext = ListExt {
                    tag: tag.as_ref().to_string(),
                    reference,
                    patterns: vec![pattern],
                    ..Default::default()
                };
                self.list(&tag, ext, true).await
            }
            CommandBody::Status {
                mailbox,
                item_names,
            } => {
                let Some(name) = self.name_in(&mailbox) else {
                    return self.bad_name(&tag);
                };
                match self.status_items(&name, &item_names).await {
                    Ok(items) => {
                        self.data(Data::Status {
                            mailbox: self.name_out(&name),
                            items: items.into(),
                        });
                        self.ok(&tag, "STATUS completed");
                    }
                    Err(e) => self.no_for(&tag, &e),
                }
            }
            CommandBody::Append {
                mailbox,
                flags,
                date,
                message,
            } => self.append(&tag, &mailbox, flags, date, message).await,
            CommandBody::GetQuotaRoot { mailbox } => {
                let name = self.name_in(&mailbox).unwrap_or_default();
                let wire = if self.utf8 {
                    name.clone()
                } else {
                    mutf7::encode(&name)
                };
                self.raw(format!("* QUOTAROOT {} \"\"", quote(&wire)));
                self.quota_line().await;
                self.ok(&tag, "GETQUOTAROOT completed");
            }
            CommandBody::GetQuota { root } => {
                if !root.as_ref().is_empty() {
                    return self.no(&tag, None, "No such quota root");
                }
                self.quota_line().await;
                self.ok(&tag, "GETQUOTA completed");
            }
            CommandBody::SetQuota { .. } => {
                self.no(&tag, None, "Quotas are set by the administrator")
            }
            CommandBody::Idle => self.idle(&tag).await,
            _ if self.selected.is_none() => self.bad(&tag, "No mailbox selected"),
            CommandBody::Close => {
                // RFC 9051 §6.4.2: CLOSE removes \Deleted messages silently.
                if let Some(sel) = &self.selected
                    && !sel.read_only
                {
                    let (address_id, mailbox_id) = (self.address_id(), sel.mailbox_id);
                    let done = self.imap.dir.expunge_deleted(address_id, mailbox_id, None);
                    if let Err(e) = done.await {
                        return self.no_for(&tag, &e);
                    }
                }
                self.selected = None;
                self.ok(&tag, "CLOSE completed");
            }
            CommandBody::Unselect => {
                self.selected = None;
                self.ok(&tag, "UNSELECT completed");
            }
            CommandBody::Expunge => self.expunge(&tag, None).await,
            CommandBody::ExpungeUid { sequence_set } => {
                self.expunge(&tag, Some(sequence_set)).await
            }
            CommandBody::Search {
                charset,
                criteria,
                uid,
            } => {
                if let Some(cs) = charset {
                    let cs = cs.as_ref().to_ascii_uppercase();
                    if cs != "UTF-8" && cs != "US-ASCII" {
                        self.raw("* OK Supported charsets: UTF-8 US-ASCII");
                        return self.no(
                            &tag,
                            Some(Code::badcharset(vec![])),
                            "Charset not supported; use UTF-8",
                        );
                    }
                }
                self.search(&tag, criteria.into_inner(), uid, search_return)
                    .await
            }
            CommandBody::Fetch {
                sequence_set,
                macro_or_item_names,
                uid,
                modifiers,
            } => {
                self.fetch(&tag, &sequence_set, macro_or_item_names, uid, modifiers)
                    .await
            }
            CommandBody::Store {
                sequence_set,
                kind,
                response,
                flags,
                uid,
                modifiers,
            } => {
                self.store(&tag, &sequence_set, kind, response, &flags, uid, modifiers)
                    .await
            }
            CommandBody::Copy {
                sequence_set,
                mailbox,
                uid,
            } => self.copy(&tag, &sequence_set, &mailbox, uid, false).await,
            CommandBody::Move {
                sequence_set,
                mailbox,
                uid,
            } => self.copy(&tag, &sequence_set, &mailbox, uid, true).await,
            _ => self.bad(&tag, "Command not supported"),
        }
    }

    fn address_id(&self) -> i64 {
        self.login.as_ref().map_or(0, |l| l.address_id)
    }

    // ------------------------------------------------------------------ TLS and login

    async fn starttls(&mut self, tag: &Tag<'_>) {
        if self.tls {
            return self.bad(tag, "TLS is already active");
        }
        self.ok(tag, "Begin TLS negotiation now");
        if self.flush().await.is_err() {
            self.quit = true;
            return;
        }
        // RFC 3207-style: whatever was pipelined before the handshake is discarded.
        self.framer.clear();
        if self.stream.start_tls(&self.imap.tls).await {
            self.tls = true;
            self.private = true;
        } else {
            self.quit = true;
        }
    }

    async fn authenticate(&mut self, tag: &Tag<'_>, user: &str, pass: &str) {
        match self
            .imap
            .dir
            .mailbox_login(user, pass, Some(self.peer.ip()))
            .await
        {
            Ok(login) => {
                tracing::info!(peer = %self.peer, login = %login.address, "IMAP login");
                self.watch = Some(self.imap.dir.session_watch(login.service_id, &login.domain));
                self.login = Some(login);
                self.framer.authenticated = true;
                let caps = capabilities(self.tls, self.private, true);
                let code = Code::Other(CodeOther::unvalidated(
                    format!("CAPABILITY {caps}").into_bytes(),
                ));
                self.tagged("OK", tag, Some(code), "Logged in");
            }
            Err(CoreError::Throttled { retry_after }) => {
                let text = format!("Too many failed logins; try again in {retry_after} seconds");
                self.no(tag, Some(code("UNAVAILABLE")), &text);
            }
            Err(e @ CoreError::Unavailable(_)) => self.no_for(tag, &e),
            Err(CoreError::Unauthenticated(_)) => {
                self.no(
                    tag,
                    Some(code("AUTHENTICATIONFAILED")),
                    "Authentication failed",
                );
                self.count_error();
            }
            Err(e) => self.no_for(tag, &e),
        }
    }

    async fn sasl(
        &mut self,
        tag: &Tag<'_>,
        mechanism: AuthMechanism<'_>,
        initial: Option<Vec<u8>>,
    ) {
        if !matches!(mechanism, AuthMechanism::Plain) {
            return self.no(tag, None, "Unsupported mechanism; use PLAIN");
        }
        if !self.private {
            return self.no(
                tag,
                Some(code("PRIVACYREQUIRED")),
                "AUTHENTICATE is not allowed before STARTTLS",
            );
        }
        let data = match initial {
            Some(d) => d,
            None => {
                self.raw("+ ");
                let Some(line) = self.read_line().await else {
                    self.quit = true;
                    return;
                };
                if line == b"*" {
                    return self.bad(tag, "Authentication cancelled");
                }
                match base64::engine::general_purpose::STANDARD.decode(&line) {
                    Ok(d) => d,
                    Err(_) => return self.bad(tag, "Invalid base64"),
                }
            }
        };
        let (user, pass) = match postfach_core::secret::sasl_plain(&data) {
            Ok(up) => up,
            Err(postfach_core::secret::PlainError::Malformed) => {
                return self.bad(tag, "Malformed PLAIN response");
            }
            Err(postfach_core::secret::PlainError::AuthzMismatch) => {
                return self.no(
                    tag,
                    Some(code("AUTHORIZATIONFAILED")),
                    "Authorization identity must match",
                );
            }
        };
        self.authenticate(tag, &user, &pass).await;
    }

    async fn enable(&mut self, tag: &Tag<'_>, caps: Vec1<CapabilityEnable<'_>>) {
        let mut enabled = Vec::new();
        for c in caps.as_ref() {
            match c {
                CapabilityEnable::CondStore => {
                    self.condstore = true;
                    enabled.push("CONDSTORE");
                }
                CapabilityEnable::Utf8(_) => {
                    self.utf8 = true;
                    enabled.push("UTF8=ACCEPT");
                }
                other @ CapabilityEnable::Other(_) => {
                    let name = other.to_string().to_ascii_uppercase();
                    if name == "QRESYNC" {
                        self.qresync = true;
                        self.condstore = true;
                        enabled.push("QRESYNC");
                    } else if name == "IMAP4REV2" {
                        self.rev2 = true;
                        self.utf8 = true;
                        enabled.push("IMAP4rev2");
                    }
                }
                #[allow(unreachable_patterns)]
                _ => {}
            }
        }
        self.raw(format!("* ENABLED {}", enabled.join(" ")).trim_end());
        self.ok(tag, "ENABLE completed");
    }

    // ------------------------------------------------------------------ selected state

    /// [`Self::sync_selected`] for FETCH, STORE, SEARCH and COPY, which clients send many of
    /// in a row: the store is asked only when this process's change feed named the selected
    /// mailbox, when expunges wait to be reported, or when the last look is older than
    /// [`FOLDER_RECHECK`] (changes made by another process, the CLI or another node, are not
    /// on the feed). Otherwise the view is current: every change in this process is on the
    /// feed before the command that made it completes. NOOP, CHECK, IDLE and SELECT always
    /// ask (RFC 9051 §6.1.2: NOOP is the client's poll for updates). Performance: this spares
    /// FETCH FLAGS a store round trip per command.
    async fn sync_if_changed(&mut self, allow_expunge: bool) {
        let Some(sel) = self.selected.as_ref() else {
            return;
        };
        let mut signalled = false;
        loop {
            match self.feed.try_recv() {
                // Not this session's own STORE, whose result it applied already.
                Ok(c) => {
                    signalled |= c.mailbox_id == sel.mailbox_id
                        && (c.modseq == 0 || c.modseq > sel.highestmodseq)
                }
                Err(broadcast::error::TryRecvError::Lagged(_)) => signalled = true,
                Err(_) => break,
            }
        }
        if signalled
            || (allow_expunge && !sel.pending_expunge.is_empty())
            || sel.checked_at.elapsed() >= FOLDER_RECHECK
        {
            self.sync_selected(allow_expunge).await;
        }
    }

    /// Tells the client what changed in the selected mailbox. `allow_expunge`: whether
    /// sequence numbers may shift now.
    async fn sync_selected(&mut self, allow_expunge: bool) {
        let (qresync, rev1, condstore) = (self.qresync, !self.rev2, self.condstore);
        let Some(sel) = self.selected.as_mut() else {
            return;
        };
        // Boxed: IDLE waits with this in its state (see `serve`).
        let synced = Box::pin(sel.sync(&self.imap.dir, allow_expunge, qresync, rev1)).await;
        let Some(updates) = synced else {
            // Deleted (or deleted and created anew) by another session: nothing this session
            // knows about it is valid any more.
            self.selected = None;
            self.raw("* BYE The selected mailbox was deleted");
            self.quit = true;
            return;
        };
        for u in updates {
            match u {
                Update::Expunge(seq) => self.data(Data::Expunge(nz(seq))),
                Update::Vanished(uids) => self.raw(format!("* VANISHED {}", compress(uids))),
                Update::Exists(n) => self.data(Data::Exists(n)),
                Update::Recent(n) => self.data(Data::Recent(n)),
                Update::Flags(seq, meta) => {
                    self.announce_keywords(&meta);
                    let recent = self
                        .selected
                        .as_ref()
                        .is_some_and(|s| s.recent.contains(&meta.uid));
                    let mut items = vec![MessageDataItem::Flags(flags_of(&meta, recent && rev1))];
                    if condstore || qresync {
                        items.push(MessageDataItem::Uid(nz(meta.uid)));
                        if let Some(m) = NonZeroU64::new(meta.modseq as u64) {
                            items.push(MessageDataItem::ModSeq(m));
                        }
                    }
                    if let Ok(items) = Vec1::try_from(items) {
                        self.data(Data::Fetch {
                            seq: nz(seq),
                            items,
                        });
                    }
                }
            }
        }
    }

    async fn select(
        &mut self,
        tag: &Tag<'_>,
        mailbox: &Mailbox<'_>,
        read_only: bool,
        params: Vec<SelectParameter>,
    ) {
        // RFC 9051 §6.3.2: leaving the previous mailbox is announced (rev1 clients ignore
        // the unknown code).
        // The previous view lives until the new one is made: a SELECT of the same state of
        // the same mailbox shares it (`SharedViews`).
        let _previous = self.selected.take();
        if _previous.is_some() {
            self.raw("* OK [CLOSED] Previous mailbox closed");
        }
        let Some(name) = self.name_in(mailbox) else {
            return self.bad_name(tag);
        };
        let folder = match self.imap.dir.folder(self.address_id(), &name).await {
            Ok(Some(f)) => f,
            Ok(None) => return self.no(tag, Some(code("NONEXISTENT")), "No such mailbox"),
            Err(e) => return self.no_for(tag, &e),
        };
        let snapshot = match self.imap.dir.folder_snapshot(folder.id).await {
            Ok(s) => s,
            Err(e) => return self.no_for(tag, &e),
        };
        let messages = self.imap.views.view_of(&snapshot);
        let mut sel = Selected::new(&snapshot, messages, read_only);
        let mut qresync_args = None;
        for p in params {
            match p {
                SelectParameter::CondStore => self.condstore = true,
                SelectParameter::QResync {
                    uid_validity,
                    mod_sequence_value,
                    known_uids,
                    ..
                } => {
                    if !self.qresync {
                        return self.bad(tag, "QRESYNC must be enabled first");
                    }
                    qresync_args = Some((
                        uid_validity.get(),
                        mod_sequence_value.get() as i64,
                        known_uids,
                    ));
                }
            }
        }
        if !self.rev2 {
            // SELECT claims the messages no session has seen yet; EXAMINE only counts them
            // (RFC 3501 §6.3.2: the \Recent flag is not changed), as STATUS does.
            let first = if read_only {
                Ok(snapshot.mailbox.recent_uid)
            } else {
                self.imap
                    .dir
                    .folder_claim_recent(&snapshot.mailbox, snapshot.mailbox.uidnext)
                    .await
            };
            if let Ok(first) = first {
                for m in sel.messages.iter() {
                    if i64::from(m.uid) >= first {
                        sel.recent.insert(m.uid);
                    }
                }
            }
        }
        let messages = sel.messages.clone();
        for m in messages.iter() {
            sel.new_keywords(&m.keywords);
        }
        let keywords: Vec<String> = sel.keywords.iter().cloned().collect();
        self.flags_lines(&keywords, read_only);
        self.data(Data::Exists(sel.exists()));
        if !self.rev2 {
            self.data(Data::Recent(sel.recent.len() as u32));
            if let Some(first_unseen) = sel.messages.iter().position(|m| m.flags & SEEN == 0) {
                self.raw(format!("* OK [UNSEEN {}] First unseen", first_unseen + 1));
            }
        }
        self.raw(format!("* OK [UIDVALIDITY {}] UIDs valid", sel.uidvalidity));
        self.raw(format!("* OK [UIDNEXT {}] Predicted next UID", sel.uidnext));
        if self.condstore || self.qresync {
            self.raw(format!(
                "* OK [HIGHESTMODSEQ {}] Highest",
                sel.highestmodseq.max(1)
            ));
        }
        if self.rev2 {
            let wire = self.name_out(&name);
            self.data(Data::List {
                items: vec![],
                delimiter: QuotedChar::try_from('/').ok(),
                mailbox: wire,
            });
        }
        // RFC 7162 §3.2.5: what changed since the client's MODSEQ, when its UIDVALIDITY is right.
        if let Some((uidvalidity, modseq, known)) = qresync_args
            && uidvalidity == sel.uidvalidity
            && let Ok(Some(changes)) = self.imap.dir.folder_changes(folder.id, modseq).await
        {
            {
                // Only UIDs really gone from the view just sent (the expunged table can hold
                // a UID that came back in no form, but never count one twice).
                let mut vanished: Vec<u32> = changes
                    .expunged
                    .iter()
                    .map(|u| *u as u32)
                    .filter(|u| sel.seq_of(*u).is_none())
                    .collect();
                if let Some(known) = &known {
                    let largest = sel.uidnext.saturating_sub(1);
                    vanished.retain(|u| search::in_set(known, *u, largest));
                }
                if !vanished.is_empty() {
                    self.raw(format!("* VANISHED (EARLIER) {}", compress(vanished)));
                }
                for m in changes.changed {
                    if let Some(seq) = sel.seq_of(m.uid as u32) {
                        let meta = Meta::from(&m);
                        let recent = sel.recent.contains(&meta.uid);
                        let items = vec![
                            MessageDataItem::Uid(nz(meta.uid)),
                            MessageDataItem::Flags(flags_of(&meta, recent && !self.rev2)),
                            MessageDataItem::ModSeq(
                                NonZeroU64::new(meta.modseq.max(1) as u64).expect("non-zero"),
                            ),
                        ];
                        self.data(Data::Fetch {
                            seq: nz(seq),
                            items: Vec1::try_from(items).expect("non-empty"),
                        });
                    }
                }
            }
        }
        self.selected = Some(sel);
        let code = if read_only {
            Code::ReadOnly
        } else {
            Code::ReadWrite
        };
        self.tagged(
            "OK",
            tag,
            Some(code),
            if read_only {
                "EXAMINE completed"
            } else {
                "SELECT completed"
            },
        );
    }

    // ------------------------------------------------------------------ mailboxes

    async fn create(&mut self, tag: &Tag<'_>, name: &str, role: &str) {
        let name = name.trim_end_matches(SEPARATOR);
        match self
            .imap
            .dir
            .folder_create(self.address_id(), name, role)
            .await
        {
            Ok(_) => self.ok(tag, "CREATE completed"),
            Err(e) => self.no_for(tag, &e),
        }
    }

    async fn delete(&mut self, tag: &Tag<'_>, mailbox: &Mailbox<'_>) {
        let Some(name) = self.name_in(mailbox) else {
            return self.bad_name(tag);
        };
        match self.imap.dir.folder_delete(self.address_id(), &name).await {
            Ok(()) => {
                if self.selected.as_ref().is_some_and(|s| s.name == name) {
                    self.selected = None;
                    self.raw("* OK [CLOSED] The selected mailbox was deleted");
                }
                self.ok(tag, "DELETE completed")
            }
            // RFC 5530: a \Noselect name with inferiors.
            Err(CoreError::Conflict(msg)) if name != "INBOX" => {
                self.no(tag, Some(code("HASCHILDREN")), &msg)
            }
            Err(e) => self.no_for(tag, &e),
        }
    }

    async fn rename(&mut self, tag: &Tag<'_>, from: &Mailbox<'_>, to: &Mailbox<'_>) {
        let (Some(from), Some(to)) = (self.name_in(from), self.name_in(to)) else {
            return self.bad_name(tag);
        };
        match self
            .imap
            .dir
            .folder_rename(self.address_id(), &from, &to)
            .await
        {
            Ok(()) => self.ok(tag, "RENAME completed"),
            Err(e) => self.no_for(tag, &e),
        }
    }

    async fn subscribe(&mut self, tag: &Tag<'_>, mailbox: &Mailbox<'_>, on: bool) {
        let Some(name) = self.name_in(mailbox) else {
            return self.bad_name(tag);
        };
        match self
            .imap
            .dir
            .folder_subscribe(self.address_id(), &name, on)
            .await
        {
            Ok(()) => self.ok(
                tag,
                if on {
                    "SUBSCRIBE completed"
                } else {
                    "UNSUBSCRIBE completed"
                },
            ),
            Err(e) => self.no_for(tag, &e),
        }
    }

    async fn shimmed(&mut self, s: Shimmed) {
        match s {
            Shimmed::Create { tag, mailbox, uses } => {
                let Ok(tag) = Tag::try_from(tag) else {
                    self.raw("* BAD Invalid tag");
                    return self.count_error();
                };
                if self.login.is_none() {
                    return self.bad(&tag, "Log in first");
                }
                let Some(name) = self.name_str_in(&mailbox) else {
                    return self.bad_name(&tag);
                };
                let role = match uses.as_slice() {
                    [] => String::new(),
                    [one] => match postfach_core::mail::special_use(one) {
                        Ok(r) => r,
                        Err(_) => {
                            return self.no(
                                &tag,
                                Some(code("USEATTR")),
                                "Unsupported special-use attribute",
                            );
                        }
                    },
                    _ => {
                        return self.no(
                            &tag,
                            Some(code("USEATTR")),
                            "One special-use attribute per folder",
                        );
                    }
                };
                // M11 is decided by the create itself (NO [NOPERM] when refused).
                self.create(&tag, &name, &role).await
            }
            Shimmed::List(ext) => {
                let Ok(tag) = Tag::try_from(ext.tag.clone()) else {
                    self.raw("* BAD Invalid tag");
                    self.count_error();
                    return;
                };
                if self.login.is_none() {
                    return self.bad(&tag, "Log in first");
                }
                self.list(&tag, ext, false).await
            }
        }
    }

    /// LIST, LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819) and LSUB.
    async fn list(&mut self, tag: &Tag<'_>, ext: ListExt, lsub: bool) {
        // Folder names are short; a long pattern only costs matching time.
        const MAX_PATTERN: usize = 1024;
        if ext.reference.len() > MAX_PATTERN
            || ext.patterns.len() > 64
            || ext.patterns.iter().any(|p| p.len() > MAX_PATTERN)
        {
            return self.bad(tag, "Pattern too long");
        }
        // RFC 5258 §3: an unknown selection option, or RECURSIVEMATCH without another
        // selection option (REMOTE aside) to recurse with, is a BAD command; so is an unknown
        // return option.
        const SELECTION: [&str; 4] = ["SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"];
        const RETURNS: [&str; 4] = ["SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "STATUS"];
        if let Some(o) = ext.select.iter().find(|o| !SELECTION.contains(&o.as_str())) {
            return self.bad(tag, &format!("Unknown LIST selection option {o}"));
        }
        if let Some(o) = ext.returns.iter().find(|o| !RETURNS.contains(&o.as_str())) {
            return self.bad(tag, &format!("Unknown LIST return option {o}"));
        }
        if ext.select.iter().any(|o| o == "RECURSIVEMATCH")
            && !ext
                .select
                .iter()
                .any(|o| o == "SUBSCRIBED" || o == "SPECIAL-USE")
        {
            return self.bad(
                tag,
                "RECURSIVEMATCH needs another selection option (RFC 5258 section 3)",
            );
        }
        let folders = match self.imap.dir.folders(self.address_id()).await {
            Ok(f) => f,
            Err(e) => return self.no_for(tag, &e),
        };
        let Some(reference) = self.name_str_in(&ext.reference) else {
            return self.bad(tag, "Bad reference");
        };
        // An empty pattern asks for the hierarchy separator (RFC 9051 §6.3.9).
        if ext.patterns.len() == 1 && ext.patterns[0].is_empty() && !lsub {
            self.raw("* LIST (\\Noselect) \"/\" \"\"");
            return self.ok(tag, "LIST completed");
        }
        let select_subscribed = lsub || ext.select.iter().any(|o| o == "SUBSCRIBED");
        let select_special = ext.select.iter().any(|o| o == "SPECIAL-USE");
        let return_subscribed =
            lsub || select_subscribed || ext.returns.iter().any(|o| o == "SUBSCRIBED");
        let names: Vec<&str> = folders.iter().map(|f| f.name.as_str()).collect();
        // Ghost parents: superiors of existing folders that do not exist themselves.
        let mut ghosts: Vec<String> = Vec::new();
        for n in &names {
            let parts: Vec<&str> = n.split(SEPARATOR).collect();
            for i in 1..parts.len() {
                let p = parts[..i].join("/");
                if !names.contains(&p.as_str()) && !ghosts.contains(&p) {
                    ghosts.push(p);
                }
            }
        }
        let mut entries: Vec<(String, Option<&postfach_store::Mailbox>)> =
            folders.iter().map(|f| (f.name.clone(), Some(f))).collect();
        entries.extend(ghosts.into_iter().map(|g| (g, None)));
        // RFC 9051 §6.3.9, RFC 5258 §3.1: subscriptions are names of their own; with the
        // SUBSCRIBED selection (and LSUB) a subscribed name whose mailbox is gone is listed
        // too, as \NonExistent.
        let subscriptions: HashSet<String> = if return_subscribed {
            match self.imap.dir.subscribed_names(self.address_id()).await {
                Ok(s) => s.into_iter().collect(),
                Err(e) => return self.no_for(tag, &e),
            }
        } else {
            HashSet::new()
        };
        if select_subscribed {
            for name in &subscriptions {
                if !entries.iter().any(|(n, _)| n == name) {
                    entries.push((name.clone(), None));
                }
            }
        }
        entries.sort_by(|a, b| (a.0 != "INBOX", &a.0).cmp(&(b.0 != "INBOX", &b.0)));
        let mut patterns = Vec::new();
        for p in &ext.patterns {
            let Some(p) = self.name_str_in(p) else {
                return self.bad(tag, "Bad pattern");
            };
            // The pattern is appended to the reference as written (RFC 3501 §6.3.8, RFC 9051
            // §6.3.9): `LIST "foo" "*"` is `foo*`, which names foo itself too, as Dovecot and
            // clients read it. A pattern that starts at the root stands alone.
            let full = if reference.is_empty()
                || p.starts_with(SEPARATOR)
                || p.eq_ignore_ascii_case("INBOX")
            {
                p
            } else {
                format!("{reference}{p}")
            };
            patterns.push(full);
        }
        let mut status_for = Vec::new();
        for (name, folder) in &entries {
            if !patterns.iter().any(|p| wildcard(p, name)) {
                continue;
            }
            let prefix = format!("{name}{SEPARATOR}");
            let has_children = entries.iter().any(|(n, _)| n.starts_with(&prefix));
            let subscribed = subscriptions.contains(name);
            let special = folder.map(|f| f.special_use.clone()).unwrap_or_default();
            if select_subscribed && !subscribed {
                continue;
            }
            if select_special && special.is_empty() {
                continue;
            }
            let mut attrs: Vec<String> = Vec::new();
            match folder {
                // A superior nobody created (e.g. left by a RENAME from elsewhere).
                None => {
                    attrs.push("\\NonExistent".into());
                    attrs.push("\\Noselect".into());
                }
                Some(f) if f.noselect => attrs.push("\\Noselect".into()),
                Some(_) => {}
            }
            attrs.push(if has_children {
                "\\HasChildren".into()
            } else {
                "\\HasNoChildren".into()
            });
            if return_subscribed && subscribed {
                attrs.push("\\Subscribed".into());
            }
            if !special.is_empty() {
                attrs.push(special);
            }
            let items: Vec<FlagNameAttribute<'static>> = attrs
                .iter()
                .filter_map(|a| Atom::try_from(a.trim_start_matches('\\').to_string()).ok())
                .map(FlagNameAttribute::from)
                .collect();
            let mailbox = self.name_out(name);
            let delimiter = QuotedChar::try_from('/').ok();
            if lsub {
                self.data(Data::Lsub {
                    items,
                    delimiter,
                    mailbox,
                });
            } else {
                self.data(Data::List {
                    items,
                    delimiter,
                    mailbox,
                });
            }
            if folder.is_some_and(|f| !f.noselect) && !ext.status.is_empty() {
                status_for.push(name.clone());
            }
            // RFC 5819: the STATUS follows its LIST line.
            if let Some(last) = status_for.last().cloned()
                && &last == name
            {
                let names: Vec<StatusDataItemName> =
                    ext.status.iter().filter_map(|s| status_name(s)).collect();
                if let Ok(items) = self.status_items(name, &names).await {
                    self.data(Data::Status {
                        mailbox: self.name_out(name),
                        items: items.into(),
                    });
                }
            }
        }
        self.ok(
            tag,
            if lsub {
                "LSUB completed"
            } else {
                "LIST completed"
            },
        );
    }

    async fn status_items(
        &self,
        name: &str,
        names: &[StatusDataItemName],
    ) -> Result<Vec<StatusDataItem>, CoreError> {
        let folder = self
            .imap
            .dir
            .folder(self.address_id(), name)
            .await?
            .ok_or_else(|| CoreError::NotFound {
                kind: "folder",
                name: name.to_string(),
            })?;
        let stats = self.imap.dir.folder_stats(folder.id).await?;
        let deleted = if names
            .iter()
            .any(|n| matches!(n, StatusDataItemName::Deleted))
        {
            let snap = self.imap.dir.folder_snapshot(folder.id).await?;
            snap.messages
                .iter()
                .filter(|m| m.flags & DELETED != 0)
                .count() as u32
        } else {
            0
        };
        Ok(names
            .iter()
            .filter_map(|n| match n {
                StatusDataItemName::Messages => {
                    Some(StatusDataItem::Messages(stats.messages as u32))
                }
                StatusDataItemName::Recent => Some(StatusDataItem::Recent(
                    (folder.uidnext - folder.recent_uid).clamp(0, stats.messages) as u32,
                )),
                StatusDataItemName::UidNext => {
                    Some(StatusDataItem::UidNext(nz(folder.uidnext as u32)))
                }
                StatusDataItemName::UidValidity => {
                    Some(StatusDataItem::UidValidity(nz(folder.uidvalidity as u32)))
                }
                StatusDataItemName::Unseen => Some(StatusDataItem::Unseen(stats.unseen as u32)),
                StatusDataItemName::Deleted => Some(StatusDataItem::Deleted(deleted)),
                StatusDataItemName::Size => Some(StatusDataItem::Size(stats.size as u64)),
                StatusDataItemName::HighestModSeq => {
                    Some(StatusDataItem::HighestModSeq(folder.highestmodseq as u64))
                }
                _ => None,
            })
            .collect())
    }

    async fn quota_line(&mut self) {
        if let Ok((used, limit)) = self.imap.dir.storage(self.address_id()).await {
            // RFC 9208: STORAGE in units of 1024 octets.
            self.raw(format!(
                "* QUOTA \"\" (STORAGE {} {})",
                (used + 1023) / 1024,
                limit / 1024
            ));
        }
    }

    async fn append(
        &mut self,
        tag: &Tag<'_>,
        mailbox: &Mailbox<'_>,
        flags: Vec<Flag<'_>>,
        date: Option<DateTime>,
        message: LiteralOrLiteral8<'_>,
    ) {
        let Some(name) = self.name_in(mailbox) else {
            return self.bad_name(tag);
        };
        let raw = match message {
            LiteralOrLiteral8::Literal(l) => l.data().to_vec(),
            LiteralOrLiteral8::Literal8(l) => l.data.to_vec(),
        };
        let (bits, keywords) = bits_of(&flags);
        let req = AppendRequest {
            raw,
            flags: bits,
            keywords: keywords.join(" "),
            date: date.map(|d| d.as_ref().timestamp()),
        };
        // Into the selected folder, an IMAP4rev1 session read-write claims the message as
        // \Recent in the append's own transaction (RFC 3501 §2.3.2: it is the first session
        // to be told of it).
        let into_selected = self.selected.as_ref().is_some_and(|sel| {
            postfach_core::mail::folder_name(&name).is_ok_and(|canonical| canonical == sel.name)
        });
        let rev1 = !self.rev2;
        let claim = into_selected && rev1 && self.selected.as_ref().is_some_and(|s| !s.read_only);
        match self
            .imap
            .dir
            .append_claiming(self.address_id(), &name, req, claim)
            .await
        {
            Ok(appended) => {
                // RFC 9051 §6.3.12: a session with the folder selected hears of the new
                // message at once (EXISTS); from its own view when nothing else changed.
                let own = self
                    .selected
                    .as_mut()
                    .and_then(|sel| sel.own_append(&appended.message, appended.recent_from, rev1));
                match own {
                    Some(updates) => {
                        for u in updates {
                            match u {
                                Update::Exists(n) => self.data(Data::Exists(n)),
                                Update::Recent(n) => self.data(Data::Recent(n)),
                                _ => {}
                            }
                        }
                    }
                    None => self.sync_selected(true).await,
                }
                let code = Code::AppendUid {
                    uid_validity: nz(appended.uidvalidity as u32),
                    uid: nz(appended.message.uid as u32),
                };
                self.tagged("OK", tag, Some(code), "APPEND completed");
            }
            Err(CoreError::NotFound { .. }) => {
                self.no(tag, Some(Code::TryCreate), "No such mailbox")
            }
            Err(e) => self.no_for(tag, &e),
        }
    }

    /// Sequence numbers (or UIDs) of the view that a set designates.
    fn resolve(&self, set: &SequenceSet, uid: bool) -> Vec<(u32, Meta)> {
        let Some(sel) = &self.selected else {
            return Vec::new();
        };
        if sel.messages.is_empty() {
            return Vec::new();
        }
        let largest = if uid { sel.max_uid() } else { sel.exists() };
        // The view is in UID order (sequence numbers rise with UIDs, RFC 9051 §2.3.1.2), so
        // each range of the set is found by binary search instead of testing every message
        // of the folder against the whole set (performance: a 100-message UID FETCH in a
        // 10,000-message folder spent most of its time in that scan).
        let mut at: Vec<usize> = Vec::new();
        for (lo, hi) in search::set_ranges(set, largest) {
            let (start, end) = if uid {
                (
                    sel.messages.partition_point(|m| m.uid < lo),
                    sel.messages.partition_point(|m| m.uid <= hi),
                )
            } else {
                (lo as usize - 1, (hi as usize).min(sel.messages.len()))
            };
            at.extend(start..end.max(start));
        }
        at.sort_unstable();
        at.dedup();
        at.into_iter()
            .map(|i| (i as u32 + 1, sel.messages[i].clone()))
            .collect()
    }

    async fn expunge(&mut self, tag: &Tag<'_>, uids: Option<SequenceSet>) {
        let Some(sel) = &self.selected else { return };
        if sel.read_only {
            return self.no(tag, None, "Mailbox is read-only");
        }
        // What has \Deleted in the store counts, not what this session last saw (another
        // session may have set or cleared it since). UID EXPUNGE narrows it to a UID set.
        let within: Option<Vec<i64>> = uids.as_ref().map(|set| {
            self.resolve(set, true)
                .into_iter()
                .map(|(_, m)| i64::from(m.uid))
                .collect()
        });
        let mailbox_id = sel.mailbox_id;
        let done = self
            .imap
            .dir
            .expunge_deleted(self.address_id(), mailbox_id, within.as_deref());
        if let Err(e) = done.await {
            return self.no_for(tag, &e);
        }
        self.sync_selected(true).await;
        self.ok(tag, "EXPUNGE completed");
    }

    async fn search(
        &mut self,
        tag: &Tag<'_>,
        criteria: Vec<SearchKey<'_>>,
        uid: bool,
        search_return: Option<SearchReturn>,
    ) {
        // RFC 4731: MIN, MAX, ALL, COUNT; an empty list means ALL. SAVE (RFC 5182) needs `$`
        // in sequence sets, which the command parser does not know yet.
        if let Some(options) = &search_return
            && let Some(bad) = options
                .iter()
                .find(|o| !["MIN", "MAX", "ALL", "COUNT"].contains(&o.as_str()))
        {
            return self.no(
                tag,
                Some(code("CANNOT")),
                &format!("RETURN {bad} is not supported"),
            );
        }
        self.sync_if_changed(uid).await;
        let Some(sel) = &self.selected else { return };
        let needs = search::needs(&criteria);
        // The stored rows (through the folder index cache: no body read) answer SUBJECT and
        // SENT*; a subject cut at the summary's length limit is matched on the message.
        let index = if needs.summary && !needs.content {
            self.imap.dir.folder_snapshot(sel.mailbox_id).await.ok()
        } else {
            None
        };
        let (max_seq, max_uid) = (sel.exists(), sel.max_uid());
        let mut hits = Vec::new();
        // The MODSEQ of each hit, in the same order.
        let mut modseqs = Vec::new();
        let mut highest_modseq = 0i64;
        for (i, meta) in sel.messages.iter().enumerate() {
            let summary = index.as_ref().and_then(|s| {
                let at = s
                    .messages
                    .binary_search_by_key(&i64::from(meta.uid), |m| m.uid)
                    .ok()?;
                Some(&s.messages[at])
                    .filter(|m| m.subject.len() < postfach_core::mail::SUMMARY_SUBJECT_CHARS)
            });
            let body = if needs.content || (needs.summary && summary.is_none()) {
                self.imap.dir.message_body(&meta.blob_id).await.ok()
            } else {
                None
            };
            let parsed = body.as_deref().and_then(fetch::parse);
            let c = search::Candidate {
                seq: i as u32 + 1,
                meta,
                recent: sel.recent.contains(&meta.uid),
                max_seq,
                max_uid,
                message: parsed.as_ref(),
                summary,
            };
            if criteria.iter().all(|k| search::matches(k, &c)) {
                hits.push(if uid { meta.uid } else { i as u32 + 1 });
                modseqs.push(meta.modseq);
                highest_modseq = highest_modseq.max(meta.modseq);
            }
        }
        let with_modseq = criteria
            .iter()
            .any(|k| matches!(k, SearchKey::ModSequence { .. }));
        if with_modseq {
            // RFC 7162 §3.1: a MODSEQ search key enables CONDSTORE.
            self.enable_condstore();
        }
        if self.rev2 || search_return.is_some() {
            // RFC 4731 / RFC 9051 §7.3.4: ESEARCH, with what RETURN asked for.
            let options = match search_return {
                Some(o) if !o.is_empty() => o,
                _ => vec!["ALL".to_string()],
            };
            let mut line = format!("* ESEARCH (TAG {})", quote(tag.as_ref()));
            if uid {
                line.push_str(" UID");
            }
            let want = |o: &str| options.iter().any(|x| x == o);
            if let (true, Some(min)) = (want("MIN"), hits.iter().min()) {
                line.push_str(&format!(" MIN {min}"));
            }
            if let (true, Some(max)) = (want("MAX"), hits.iter().max()) {
                line.push_str(&format!(" MAX {max}"));
            }
            if want("COUNT") {
                line.push_str(&format!(" COUNT {}", hits.len()));
            }
            if want("ALL") && !hits.is_empty() {
                line.push_str(&format!(" ALL {}", compress(hits.clone())));
            }
            // RFC 7162 §3.1.5: with only MIN and/or MAX asked for, the MODSEQ is the highest
            // of the messages returned, not of every match.
            let returned = if options.iter().all(|o| o == "MIN" || o == "MAX") {
                let pick = |h: Option<(usize, &u32)>, wanted: bool| {
                    h.filter(|_| wanted).map(|(i, _)| modseqs[i])
                };
                let at_min = hits.iter().enumerate().min_by_key(|(_, h)| **h);
                let at_max = hits.iter().enumerate().max_by_key(|(_, h)| **h);
                pick(at_min, want("MIN"))
                    .into_iter()
                    .chain(pick(at_max, want("MAX")))
                    .max()
                    .unwrap_or(0)
            } else {
                highest_modseq
            };
            if with_modseq && returned > 0 {
                line.push_str(&format!(" MODSEQ {returned}"));
            }
            self.raw(line);
        } else {
            let mut line = String::from("* SEARCH");
            for h in &hits {
                line.push_str(&format!(" {h}"));
            }
            if with_modseq && !hits.is_empty() {
                line.push_str(&format!(" (MODSEQ {highest_modseq})"));
            }
            self.raw(line);
        }
        self.ok(tag, "SEARCH completed");
    }

    async fn fetch(
        &mut self,
        tag: &Tag<'_>,
        set: &SequenceSet,
        names: MacroOrMessageDataItemNames<'_>,
        uid: bool,
        modifiers: Vec<FetchModifier>,
    ) {
        self.sync_if_changed(uid).await;
        let mut names: Vec<MessageDataItemName<'_>> = match names {
            MacroOrMessageDataItemNames::Macro(m) => match m {
                Macro::Fast => vec![
                    MessageDataItemName::Flags,
                    MessageDataItemName::InternalDate,
                    MessageDataItemName::Rfc822Size,
                ],
                Macro::All => vec![
                    MessageDataItemName::Flags,
                    MessageDataItemName::InternalDate,
                    MessageDataItemName::Rfc822Size,
                    MessageDataItemName::Envelope,
                ],
                _ => vec![
                    MessageDataItemName::Flags,
                    MessageDataItemName::InternalDate,
                    MessageDataItemName::Rfc822Size,
                    MessageDataItemName::Envelope,
                    MessageDataItemName::Body,
                ],
            },
            MacroOrMessageDataItemNames::MessageDataItemNames(n) => n,
        };
        let mut changed_since = None;
        let mut vanished = false;
        for m in &modifiers {
            match m {
                FetchModifier::ChangedSince(v) => {
                    changed_since = Some(v.get() as i64);
                    self.enable_condstore();
                }
                FetchModifier::Vanished => vanished = true,
            }
        }
        if vanished && !(uid && self.qresync && changed_since.is_some()) {
            return self.bad(
                tag,
                "VANISHED needs UID FETCH with CHANGEDSINCE and QRESYNC enabled",
            );
        }
        if uid && !names.iter().any(|n| matches!(n, MessageDataItemName::Uid)) {
            names.insert(0, MessageDataItemName::Uid);
        }
        if (changed_since.is_some() || self.condstore)
            && !names
                .iter()
                .any(|n| matches!(n, MessageDataItemName::ModSeq))
            && changed_since.is_some()
        {
            names.push(MessageDataItemName::ModSeq);
        }
        if names
            .iter()
            .any(|n| matches!(n, MessageDataItemName::ModSeq))
        {
            self.enable_condstore();
        }
        if vanished && let Some(since) = changed_since {
            let sel = self.selected.as_ref().expect("selected");
            if let Ok(Some(changes)) = self.imap.dir.folder_changes(sel.mailbox_id, since).await {
                let largest = sel.uidnext.saturating_sub(1);
                let gone: Vec<u32> = changes
                    .expunged
                    .iter()
                    .map(|u| *u as u32)
                    .filter(|u| search::in_set(set, *u, largest))
                    .collect();
                if !gone.is_empty() {
                    self.raw(format!("* VANISHED (EARLIER) {}", compress(gone)));
                }
            }
        }
        let targets = self.resolve(set, uid);
        // Items that need the whole message; ENVELOPE alone needs its header fields only.
        let needs_whole = names.iter().any(|n| {
            matches!(
                n,
                MessageDataItemName::Body
                    | MessageDataItemName::BodyExt { .. }
                    | MessageDataItemName::BodyStructure
                    | MessageDataItemName::Rfc822
                    | MessageDataItemName::Rfc822Header
                    | MessageDataItemName::Rfc822Text
                    | MessageDataItemName::Binary { .. }
                    | MessageDataItemName::BinarySize { .. }
            )
        });
        let wants_envelope = names
            .iter()
            .any(|n| matches!(n, MessageDataItemName::Envelope));
        // Items that need the message's structure, not only its bytes.
        let needs_parse = names.iter().any(|n| match n {
            MessageDataItemName::BodyExt { section, .. } => section.is_some(),
            MessageDataItemName::Binary { section, .. }
            | MessageDataItemName::BinarySize { section } => !section.is_empty(),
            MessageDataItemName::Uid
            | MessageDataItemName::Flags
            | MessageDataItemName::InternalDate
            | MessageDataItemName::Rfc822Size
            | MessageDataItemName::ModSeq
            | MessageDataItemName::Rfc822 => false,
            _ => true,
        });
        let headers_only = !needs_whole;
        let parse: fn(&[u8]) -> Option<mail_parser::Message<'_>> = if headers_only {
            fetch::parse_headers
        } else {
            fetch::parse
        };
        let (read_only, mailbox_id) = {
            let sel = self.selected.as_ref().expect("selected");
            (sel.read_only, sel.mailbox_id)
        };
        let sets_seen = !read_only
            && names.iter().any(|n| {
                matches!(
                    n,
                    MessageDataItemName::BodyExt { peek: false, .. }
                        | MessageDataItemName::Binary { peek: false, .. }
                        | MessageDataItemName::Rfc822
                        | MessageDataItemName::Rfc822Text
                )
            });
        let targets: Vec<(u32, Meta)> = targets
            .into_iter()
            .filter(|(_, m)| changed_since.is_none_or(|since| m.modseq > since))
            .collect();
        // \Seen first (RFC 9051 §6.4.5), so that the responses carry the new flags and MODSEQ.
        let mut seen_now = HashSet::new();
        if sets_seen {
            let unseen: Vec<&Meta> = targets
                .iter()
                .filter(|(_, m)| m.flags & SEEN == 0)
                .map(|(_, m)| m)
                .collect();
            if !unseen.is_empty() {
                let change = FlagChange {
                    op: FlagOp::Add,
                    bits: SEEN,
                    keywords: Vec::new(),
                };
                match self.change_flags(mailbox_id, &unseen, &change, None).await {
                    Ok(outcome) => {
                        self.own_change(&outcome);
                        seen_now = outcome.changed.iter().map(|u| *u as u32).collect();
                    }
                    Err(e) => tracing::warn!(error = %e, "setting \\Seen failed"),
                }
            }
        }
        let modseq_named = names
            .iter()
            .any(|n| matches!(n, MessageDataItemName::ModSeq));
        // A message list's items (no body, no \Seen to set) are written straight out
        // (`wire`), the ENVELOPE in its encoded form from the cache.
        let simple = !needs_whole && !sets_seen && names.iter().all(wire::is_simple);
        // An ENVELOPE the cache has needs no reading of its message; decided once, so that
        // the read-ahead below stays in step.
        let cached_envelopes = if wants_envelope && simple {
            self.imap
                .envelopes
                .get_many(targets.iter().map(|(_, m)| &*m.blob_id), self.utf8)
        } else {
            vec![None; targets.len()]
        };
        let reads: Vec<bool> = cached_envelopes
            .iter()
            .map(|c| needs_whole || (wants_envelope && c.is_none()))
            .collect();
        let mut built_envelopes = Vec::new();
        // Bodies are read ahead in batches (≤ 64 messages, ≤ 4 MiB): one hand-off to the
        // blocking pool per batch instead of one per message.
        let mut ahead: std::collections::VecDeque<postfach_core::Result<Vec<u8>>> =
            Default::default();
        for (i, (seq, meta)) in targets.iter().cloned().enumerate() {
            if reads[i] && ahead.is_empty() {
                let mut bytes = 0i64;
                let mut batch_bytes = 0i64;
                let batch: Vec<&str> = targets[i..]
                    .iter()
                    .zip(&reads[i..])
                    .filter(|(_, read)| **read)
                    .take_while(|((_, m), _)| {
                        bytes += m.size;
                        bytes <= 4 << 20
                    })
                    .take(64)
                    .map(|((_, m), _)| {
                        batch_bytes += m.size;
                        &*m.blob_id
                    })
                    .collect();
                let batch = if batch.is_empty() {
                    batch_bytes = meta.size;
                    vec![&*meta.blob_id]
                } else {
                    batch
                };
                let expected = u64::try_from(batch_bytes).unwrap_or(0);
                ahead.extend(self.imap.dir.message_bodies(&batch, expected).await);
            }
            let body = if reads[i] { ahead.pop_front() } else { None };
            // The view as it is now (our own \Seen included).
            let meta = self
                .selected
                .as_ref()
                .and_then(|s| s.messages.get(seq as usize - 1))
                .filter(|m| m.uid == meta.uid)
                .cloned()
                .unwrap_or(meta);
            let expunged_elsewhere = self
                .selected
                .as_ref()
                .is_some_and(|s| s.is_expunged(meta.uid));
            let raw = match body {
                Some(body) => match body {
                    Ok(b) => Some(b),
                    // RFC 2180 §4.1.2 / RFC 5530: the client may not have heard of it yet.
                    Err(_) if expunged_elsewhere => {
                        return self.no(
                            tag,
                            Some(code("EXPUNGEISSUED")),
                            "Some messages were expunged by another session",
                        );
                    }
                    Err(e) => {
                        // The view may predate an expunge made by another process
                        // (`sync_if_changed`): ask the store before calling it a fault.
                        self.sync_selected(false).await;
                        if self.quit {
                            return;
                        }
                        if self
                            .selected
                            .as_ref()
                            .is_some_and(|s| s.is_expunged(meta.uid))
                        {
                            return self.no(
                                tag,
                                Some(code("EXPUNGEISSUED")),
                                "Some messages were expunged by another session",
                            );
                        }
                        tracing::error!(error = %e, uid = meta.uid, "message body unreadable");
                        return self.no(
                            tag,
                            Some(code("SERVERBUG")),
                            "A message could not be read",
                        );
                    }
                },
                None => None,
            };
            // A message mail-parser cannot read (empty, no header) is served as a body
            // without header fields, so that every item still gets an answer.
            let headless;
            let (part_raw, parsed) = match raw.as_deref() {
                // BODY[], RFC822 and BINARY[] are the message as stored: nothing to parse.
                Some(r) if !needs_parse => (Some(r), None),
                Some(r) => match parse(r) {
                    Some(m) => (Some(r), Some(m)),
                    None => {
                        headless = [b"\r\n".as_slice(), r].concat();
                        (Some(headless.as_slice()), parse(&headless))
                    }
                },
                None => (None, None),
            };
            if names
                .iter()
                .any(|n| matches!(n, MessageDataItemName::Flags))
                || sets_seen
            {
                self.announce_keywords(&meta);
            }
            let recent = !self.rev2
                && self
                    .selected
                    .as_ref()
                    .is_some_and(|s| s.recent.contains(&meta.uid));
            if simple {
                let envelope = match (&cached_envelopes[i], &parsed) {
                    (Some(e), _) => Some(e.clone()),
                    (None, Some(m)) if wants_envelope => {
                        let e: Arc<[u8]> =
                            wire::envelope_wire(&fetch::envelope(m, self.utf8)).into();
                        built_envelopes.push((meta.blob_id.clone(), e.clone()));
                        Some(e)
                    }
                    _ => None,
                };
                wire::write_fetch(
                    &mut self.out,
                    seq,
                    &names,
                    &meta,
                    recent,
                    envelope.as_deref(),
                );
                if self.out.len() > 1024 * 1024 && self.flush().await.is_err() {
                    self.quit = true;
                    return;
                }
                continue;
            }
            let mut items: Vec<MessageDataItem<'static>> = Vec::new();
            let mut binary_origins: Vec<(String, u32)> = Vec::new();
            let mut flags_sent = false;
            for n in &names {
                let item = match n {
                    MessageDataItemName::Uid => MessageDataItem::Uid(nz(meta.uid)),
                    MessageDataItemName::Flags => {
                        flags_sent = true;
                        MessageDataItem::Flags(flags_of(&meta, recent))
                    }
                    MessageDataItemName::InternalDate => match imap_date(meta.internal_date) {
                        Some(d) => MessageDataItem::InternalDate(d),
                        None => continue,
                    },
                    MessageDataItemName::Rfc822Size => {
                        MessageDataItem::Rfc822Size(meta.size as u32)
                    }
                    MessageDataItemName::ModSeq => MessageDataItem::ModSeq(modseq(meta.modseq)),
                    MessageDataItemName::Envelope => match &parsed {
                        Some(m) => MessageDataItem::Envelope(fetch::envelope(m, self.utf8)),
                        None => continue,
                    },
                    MessageDataItemName::Body => match &parsed {
                        Some(m) => MessageDataItem::Body(fetch::structure(m, 0, false, self.utf8)),
                        None => continue,
                    },
                    MessageDataItemName::BodyStructure => match &parsed {
                        Some(m) => {
                            MessageDataItem::BodyStructure(fetch::structure(m, 0, true, self.utf8))
                        }
                        None => continue,
                    },
                    MessageDataItemName::BodyExt {
                        section, partial, ..
                    } => {
                        let data = match (section, &raw, part_raw, &parsed) {
                            // BODY[] is the message as stored, parsed or not.
                            (None, Some(raw), _, _) => raw.clone(),
                            (Some(section), _, Some(part_raw), Some(m)) => {
                                fetch::section(part_raw, m, Some(section))
                            }
                            _ => continue,
                        };
                        MessageDataItem::BodyExt {
                            section: section.clone().map(|s| s.into_static()),
                            origin: partial.map(|p| p.0),
                            data: fetch::literal(fetch::partial(data, *partial)),
                        }
                    }
                    MessageDataItemName::Rfc822 => {
                        MessageDataItem::Rfc822(fetch::literal(raw.clone().unwrap_or_default()))
                    }
                    MessageDataItemName::Rfc822Header => {
                        let (Some(part_raw), Some(m)) = (part_raw, &parsed) else {
                            continue;
                        };
                        MessageDataItem::Rfc822Header(fetch::literal(fetch::section(
                            part_raw,
                            m,
                            Some(&imap_codec::imap_types::fetch::Section::Header(None)),
                        )))
                    }
                    MessageDataItemName::Rfc822Text => {
                        let (Some(part_raw), Some(m)) = (part_raw, &parsed) else {
                            continue;
                        };
                        MessageDataItem::Rfc822Text(fetch::literal(fetch::section(
                            part_raw,
                            m,
                            Some(&imap_codec::imap_types::fetch::Section::Text(None)),
                        )))
                    }
                    MessageDataItemName::Binary {
                        section, partial, ..
                    } => {
                        if let Some((origin, _)) = partial {
                            binary_origins.push((binary_label(section), *origin));
                        }
                        let data = match (&raw, part_raw, &parsed) {
                            (Some(raw), _, _) if section.is_empty() => Some(raw.clone()),
                            (_, Some(part_raw), Some(m)) => fetch::binary(part_raw, m, section),
                            _ => continue,
                        };
                        let Some(data) = data else {
                            return self.no(
                                tag,
                                Some(Code::UnknownCte),
                                "Unknown content transfer encoding",
                            );
                        };
                        let data = fetch::partial(data, *partial);
                        MessageDataItem::Binary {
                            section: section.clone(),
                            value: imap_codec::imap_types::core::NString8::Literal8(
                                imap_codec::imap_types::extensions::binary::Literal8 {
                                    data: data.into(),
                                    mode: LiteralMode::Sync,
                                },
                            ),
                        }
                    }
                    MessageDataItemName::BinarySize { section } => {
                        let data = match (&raw, part_raw, &parsed) {
                            (Some(raw), _, _) if section.is_empty() => Some(raw.clone()),
                            (_, Some(part_raw), Some(m)) => fetch::binary(part_raw, m, section),
                            _ => continue,
                        };
                        let Some(data) = data else {
                            return self.no(
                                tag,
                                Some(Code::UnknownCte),
                                "Unknown content transfer encoding",
                            );
                        };
                        MessageDataItem::BinarySize {
                            section: section.clone(),
                            size: data.len() as u32,
                        }
                    }
                };
                items.push(item);
            }
            // A fetch that set \Seen reports the new flags (RFC 9051 §6.4.5), with the MODSEQ
            // for CONDSTORE clients and the UID for QRESYNC clients (RFC 7162 §3.1).
            if seen_now.contains(&meta.uid) {
                if !flags_sent {
                    items.push(MessageDataItem::Flags(flags_of(&meta, recent)));
                }
                if self.condstore && !modseq_named {
                    items.push(MessageDataItem::ModSeq(modseq(meta.modseq)));
                }
                if self.qresync && !uid {
                    items.push(MessageDataItem::Uid(nz(meta.uid)));
                }
            }
            if let Ok(items) = Vec1::try_from(items) {
                self.fetch_data(seq, items, &binary_origins);
            }
            // Large fetches: send as we go.
            if self.out.len() > 1024 * 1024 && self.flush().await.is_err() {
                self.quit = true;
                return;
            }
        }
        self.imap.envelopes.put_many(built_envelopes, self.utf8);
        self.ok(tag, "FETCH completed");
    }

    /// A CONDSTORE-enabling command (RFC 7162 §3.1): from now on every FETCH carries MODSEQ,
    /// and a mailbox selected before it learns its HIGHESTMODSEQ at once (RFC 7162 §3.1.1:
    /// "the server MUST send ... HIGHESTMODSEQ"), as a SELECT after it would have said.
    fn enable_condstore(&mut self) {
        if self.condstore {
            return;
        }
        self.condstore = true;
        if let Some(sel) = &self.selected {
            let highest = sel.highestmodseq.max(1);
            self.raw(format!("* OK [HIGHESTMODSEQ {highest}] Highest"));
        }
    }

    /// One message's FETCH response. A partial BINARY answers with its origin,
    /// `BINARY[1]<0>` (RFC 3516 §4.3, as BODY[]<0> does, RFC 9051 §7.5.2), which imap-types
    /// cannot express: the label is completed in the encoded line right before its literal
    /// (a literal's own bytes are never touched).
    fn fetch_data(
        &mut self,
        seq: u32,
        items: Vec1<MessageDataItem<'static>>,
        binary_origins: &[(String, u32)],
    ) {
        let data = Data::Fetch {
            seq: nz(seq),
            items,
        };
        if binary_origins.is_empty() {
            return self.data(data);
        }
        let mut origins = binary_origins.iter().peekable();
        for fragment in ResponseCodec::default().encode(&Response::Data(data)) {
            match fragment {
                imap_codec::encode::Fragment::Line { mut data } => {
                    if let Some((label, origin)) = origins.peek()
                        && let Some(at) = literal8_label(&data, label)
                    {
                        data.splice(at..at, format!("<{origin}>").into_bytes());
                        origins.next();
                    }
                    self.out.extend_from_slice(&data);
                }
                imap_codec::encode::Fragment::Literal { data, .. } => {
                    self.out.extend_from_slice(&data)
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn store(
        &mut self,
        tag: &Tag<'_>,
        set: &SequenceSet,
        kind: StoreType,
        response: StoreResponse,
        flags: &[Flag<'_>],
        uid: bool,
        modifiers: Vec<StoreModifier>,
    ) {
        self.sync_if_changed(uid).await;
        if self.selected.as_ref().is_none_or(|s| s.read_only) {
            return self.no(tag, None, "Mailbox is read-only");
        }
        let unchanged_since = modifiers
            .iter()
            .map(|m| match m {
                StoreModifier::UnchangedSince(v) => *v as i64,
            })
            .next();
        if unchanged_since.is_some() {
            self.enable_condstore();
        }
        let Some(sel) = &self.selected else { return };
        let (bits, keywords) = bits_of(flags);
        let change = FlagChange {
            op: match kind {
                StoreType::Add => FlagOp::Add,
                StoreType::Remove => FlagOp::Remove,
                StoreType::Replace => FlagOp::Replace,
            },
            bits,
            keywords,
        };
        let targets = self.resolve(set, uid);
        let targets: Vec<&Meta> = targets.iter().map(|(_, m)| m).collect();
        let mailbox_id = sel.mailbox_id;
        let outcome = match self
            .change_flags(mailbox_id, &targets, &change, unchanged_since)
            .await
        {
            Ok(o) => o,
            Err(e) => return self.no_for(tag, &e),
        };
        self.own_change(&outcome);
        let silent = matches!(response, StoreResponse::Silent);
        for m in &outcome.messages {
            let changed = outcome.changed.contains(&m.uid);
            // .SILENT still reports MODSEQ changes to CONDSTORE clients (RFC 7162 §3.1.3),
            // and a keyword new to the mailbox (FLAGS, RFC 9051 §7.3.5).
            if silent && !(self.condstore && changed) {
                if let Some(meta) = self.view_meta(m.uid) {
                    self.announce_keywords(&meta);
                }
                continue;
            }
            if let Some(meta) = self.view_meta(m.uid) {
                self.flags_response(&meta, !silent, uid);
            }
        }
        if !outcome.modified.is_empty() {
            let modified: Vec<u32> = outcome
                .modified
                .iter()
                .filter_map(|u| {
                    if uid {
                        Some(*u as u32)
                    } else {
                        self.selected.as_ref()?.seq_of(*u as u32)
                    }
                })
                .collect();
            let code = Code::Other(CodeOther::unvalidated(
                format!("MODIFIED {}", compress(modified)).into_bytes(),
            ));
            return self.tagged(
                "OK",
                tag,
                Some(code),
                "Conditional STORE failed for some messages",
            );
        }
        self.ok(tag, "STORE completed");
    }

    /// Changes flags of messages of the selected folder: from the session's view when every
    /// one is still as the view has it (one round trip inside the shared transaction, issue
    /// 6), else from the stored state ([`Directory::store_flags`]).
    async fn change_flags(
        &self,
        mailbox_id: i64,
        targets: &[&Meta],
        change: &FlagChange,
        unchanged_since: Option<i64>,
    ) -> Result<StoreOutcome, CoreError> {
        let seen: Vec<MessageFlags> = targets
            .iter()
            .map(|m| MessageFlags {
                uid: i64::from(m.uid),
                flags: m.flags,
                keywords: m.keywords.clone(),
                modseq: m.modseq,
            })
            .collect();
        let dir = &self.imap.dir;
        if let Some(done) = dir
            .store_flags_as_seen(mailbox_id, &seen, change, unchanged_since)
            .await?
        {
            return Ok(done);
        }
        let uids: Vec<i64> = seen.iter().map(|m| m.uid).collect();
        dir.store_flags(mailbox_id, &uids, change, unchanged_since)
            .await
    }

    /// Takes this session's own flag change into its view, so that it is not reported back
    /// as someone else's (when no other change came in between).
    fn own_change(&mut self, outcome: &StoreOutcome) {
        let Some(sel) = self.selected.as_mut() else {
            return;
        };
        for m in &outcome.messages {
            if let Some(seq) = sel.seq_of(m.uid as u32) {
                let known = &sel.messages[seq as usize - 1];
                if known.flags != m.flags
                    || known.keywords != m.keywords
                    || known.modseq != m.modseq
                {
                    let meta = &mut Arc::make_mut(&mut sel.messages)[seq as usize - 1];
                    meta.flags = m.flags;
                    meta.keywords.clone_from(&m.keywords);
                    meta.modseq = m.modseq;
                }
            }
        }
        if outcome.modseq > 0 && sel.highestmodseq == outcome.modseq - 1 {
            sel.highestmodseq = outcome.modseq;
        }
    }

    /// A message of the view as it is now (after [`Session::own_change`]).
    fn view_meta(&self, uid: i64) -> Option<Meta> {
        let sel = self.selected.as_ref()?;
        let seq = sel.seq_of(uid as u32)?;
        Some(sel.messages[seq as usize - 1].clone())
    }

    /// `FLAGS` and `PERMANENTFLAGS` (RFC 9051 §7.3.5, §7.1): the system flags and the
    /// mailbox's keywords; `\*`: the client may make new keywords.
    fn flags_lines(&mut self, keywords: &[String], read_only: bool) {
        let mut all = String::from("\\Answered \\Flagged \\Deleted \\Seen \\Draft");
        for k in keywords {
            all.push(' ');
            all.push_str(k);
        }
        self.raw(format!("* FLAGS ({all})"));
        if read_only {
            self.raw("* OK [PERMANENTFLAGS ()] No permanent flags in a read-only mailbox");
        } else {
            self.raw(format!("* OK [PERMANENTFLAGS ({all} \\*)] Flags permitted"));
        }
    }

    /// Before a FETCH shows a keyword the client was not told of: `FLAGS` again (RFC 9051
    /// §7.3.5: the client records the mailbox's flags from it).
    fn announce_keywords(&mut self, meta: &Meta) {
        let Some(sel) = self.selected.as_mut() else {
            return;
        };
        if meta.keywords.is_empty() || !sel.new_keywords(&meta.keywords) {
            return;
        }
        let keywords: Vec<String> = sel.keywords.iter().cloned().collect();
        let read_only = sel.read_only;
        self.flags_lines(&keywords, read_only);
    }

    /// An untagged FETCH about a message's flags: FLAGS (unless `flags` is false, for
    /// .SILENT), UID for UID commands and QRESYNC clients, MODSEQ for CONDSTORE clients
    /// (RFC 7162 §3.1: once enabled, every such FETCH carries it).
    fn flags_response(&mut self, meta: &Meta, flags: bool, uid: bool) {
        self.announce_keywords(meta);
        let Some(sel) = self.selected.as_ref() else {
            return;
        };
        let Some(seq) = sel.seq_of(meta.uid) else {
            return;
        };
        let recent = !self.rev2 && sel.recent.contains(&meta.uid);
        let mut items = Vec::new();
        if flags {
            items.push(MessageDataItem::Flags(flags_of(meta, recent)));
        }
        if uid || self.qresync {
            items.push(MessageDataItem::Uid(nz(meta.uid)));
        }
        if self.condstore {
            items.push(MessageDataItem::ModSeq(modseq(meta.modseq)));
        }
        if let Ok(items) = Vec1::try_from(items) {
            self.data(Data::Fetch {
                seq: nz(seq),
                items,
            });
        }
    }

    async fn copy(
        &mut self,
        tag: &Tag<'_>,
        set: &SequenceSet,
        mailbox: &Mailbox<'_>,
        uid: bool,
        remove: bool,
    ) {
        self.sync_if_changed(uid).await;
        let Some(name) = self.name_in(mailbox) else {
            return self.bad_name(tag);
        };
        let Some(sel) = &self.selected else { return };
        if remove && sel.read_only {
            return self.no(tag, None, "Mailbox is read-only");
        }
        let uids: Vec<i64> = self
            .resolve(set, uid)
            .into_iter()
            .map(|(_, m)| m.uid as i64)
            .collect();
        let mailbox_id = sel.mailbox_id;
        if uids.is_empty() {
            return self.ok(
                tag,
                if remove {
                    "MOVE completed"
                } else {
                    "COPY completed"
                },
            );
        }
        match self
            .imap
            .dir
            .copy_messages(self.address_id(), mailbox_id, &uids, &name, remove)
            .await
        {
            Ok((uidvalidity, pairs)) => {
                let src: Vec<u32> = pairs.iter().map(|p| p.0 as u32).collect();
                let dst: Vec<u32> = pairs.iter().map(|p| p.1 as u32).collect();
                let copyuid = format!("COPYUID {uidvalidity} {} {}", compress(src), compress(dst));
                if remove {
                    // RFC 6851: COPYUID in an untagged OK before the expunges.
                    self.raw(format!("* OK [{copyuid}] Moved"));
                    self.sync_selected(true).await;
                    self.ok(tag, "MOVE completed");
                } else {
                    let code = Code::Other(CodeOther::unvalidated(copyuid.into_bytes()));
                    self.tagged("OK", tag, Some(code), "COPY completed");
                }
            }
            Err(CoreError::NotFound { .. }) => {
                self.no(tag, Some(Code::TryCreate), "No such mailbox")
            }
            Err(e) => self.no_for(tag, &e),
        }
    }

    // ------------------------------------------------------------------ IDLE

    /// RFC 2177: reports changes of the selected mailbox as they happen (the change feed wakes
    /// us within moments of a delivery; a periodic look catches changes made by other
    /// processes) until the client sends DONE.
    async fn idle(&mut self, tag: &Tag<'_>) {
        self.raw("+ idling");
        // Old news on the change feed is covered by this sync.
        while self.feed.try_recv().is_ok() {}
        self.sync_selected(true).await;
        if self.flush().await.is_err() {
            self.quit = true;
            return;
        }
        let deadline = tokio::time::Instant::now()
            + Duration::from_secs(self.imap.settings.autologout_minutes * 60);
        loop {
            if let Some(line) = self.framer.take_line() {
                let line = String::from_utf8_lossy(&line).trim().to_ascii_uppercase();
                if line == "DONE" {
                    return self.ok(tag, "IDLE terminated");
                }
                return self.bad(tag, "Expected DONE");
            }
            let selected = self.selected.as_ref().map(|s| s.mailbox_id);
            // Into the framer's buffer, as `read` does: nothing of the kind in this state.
            let buf = &mut self.framer.buf;
            if buf.capacity() - buf.len() < 64 {
                buf.reserve(1024);
            }
            tokio::select! {
                r = self.stream.read_buf(buf) => match r {
                    Ok(0) | Err(_) => { self.quit = true; return; }
                    Ok(_) => {
                        // Only "DONE" is expected here.
                        if self.framer.buf.len() > self.imap.settings.max_line_length {
                            self.raw("* BYE Line too long");
                            self.quit = true;
                            let _ = self.flush().await;
                            return;
                        }
                    }
                },
                changed = self.feed.recv() => {
                    let relevant = match changed {
                        Ok(c) => Some(c.mailbox_id) == selected,
                        Err(broadcast::error::RecvError::Lagged(_)) => true,
                        Err(broadcast::error::RecvError::Closed) => false,
                    };
                    if relevant {
                        self.sync_selected(true).await;
                    }
                }
                // Changes made by another process (the CLI, another node) are not on this
                // process's feed: look now and then.
                _ = tokio::time::sleep(Duration::from_secs(10)) => {
                    self.sync_selected(true).await;
                }
                e = postfach_core::sessions::ended(&mut self.watch) => {
                    return self.bye_for(&e).await;
                }
                _ = tokio::time::sleep_until(deadline) => {
                    self.raw("* BYE Autologout; idle for too long");
                    self.quit = true;
                    let _ = self.flush().await;
                    return;
                }
            }
            if self.flush().await.is_err() {
                self.quit = true;
                return;
            }
        }
    }
}

fn list_mailbox(m: &ListMailbox<'_>) -> String {
    match m {
        ListMailbox::Token(t) => String::from_utf8_lossy(t.as_ref()).into_owned(),
        ListMailbox::String(s) => String::from_utf8_lossy(s.as_ref()).into_owned(),
    }
}

fn status_name(s: &str) -> Option<StatusDataItemName> {
    Some(match s {
        "MESSAGES" => StatusDataItemName::Messages,
        "RECENT" => StatusDataItemName::Recent,
        "UIDNEXT" => StatusDataItemName::UidNext,
        "UIDVALIDITY" => StatusDataItemName::UidValidity,
        "UNSEEN" => StatusDataItemName::Unseen,
        "DELETED" => StatusDataItemName::Deleted,
        "SIZE" => StatusDataItemName::Size,
        "HIGHESTMODSEQ" => StatusDataItemName::HighestModSeq,
        _ => return None,
    })
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// `BINARY[1.2]` for section [1, 2].
fn binary_label(section: &[NonZeroU32]) -> String {
    let parts: Vec<String> = section.iter().map(|n| n.to_string()).collect();
    format!("BINARY[{}]", parts.join("."))
}

/// Where the origin goes in an encoded line that ends with `LABEL ~{n}\r\n` (the literal8
/// that follows is the item's data): right after `LABEL`.
fn literal8_label(line: &[u8], label: &str) -> Option<usize> {
    let end = line.strip_suffix(b"\r\n")?;
    let open = end.iter().rposition(|&b| b == b'~')?;
    let count = end.get(open + 1..)?;
    if !(count.starts_with(b"{") && count.ends_with(b"}")) {
        return None;
    }
    let before = end[..open].strip_suffix(b" ")?;
    before.ends_with(label.as_bytes()).then_some(before.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard("*", "Archive/2026"));
        assert!(wildcard("%", "Archive"));
        assert!(!wildcard("%", "Archive/2026"));
        assert!(wildcard("Archive/%", "Archive/2026"));
        assert!(wildcard("inbox", "INBOX"));
        assert!(wildcard("INBOX*", "INBOX/sub"));
        assert!(!wildcard("Arch", "Archive"));
        assert!(wildcard("A%e", "Archive"));
        assert!(!wildcard("A%6", "Archive/2026"));
        // Many wildcards against a long name: must answer at once, not backtrack.
        let pattern = "*a".repeat(200) + "b";
        assert!(!wildcard(&pattern, &"a".repeat(2000)));
        assert_eq!(compress(vec![5, 1, 2, 3, 9, 10]), "1:3,5,9:10");
    }
}
