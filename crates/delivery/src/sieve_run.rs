//! Running Sieve scripts (F9, RFC 5228) with `sieve-rs`: the service's script (M8) first, then
//! the user's active one. The interpreter is an event loop; this module answers its questions
//! (does a mailbox exist, was this vacation/duplicate id seen, include that script) and
//! collects its actions. Limits: an instruction budget per script, at most a few redirects and
//! generated messages; a script that fails or runs out of budget falls back to keeping the
//! message, and the error is recorded — a user's script never loses mail.

use std::collections::HashMap;
use std::sync::Arc;

use mail_parser::MessageParser;
use postfach_core::mail::flag;
use postfach_core::mail::settings::SieveScripts;
use sieve::{Compiler, Envelope, Event, Input, Recipient, Runtime, Script, Sieve};

/// Instructions one script may run (sieve-rs counts every instruction; regular expressions
/// are bounded by its own size limits).
const CPU_LIMIT: usize = 20_000;
const MAX_REDIRECTS: usize = 3;
const MAX_OUT_MESSAGES: usize = 3;
/// Default `vacation :days` (F10's rule: once per sender per 7 days).
const VACATION_DAYS: u64 = 7;

/// One copy to file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SieveFile {
    /// None: the default place (implicit or explicit `keep`).
    pub folder: Option<String>,
    pub special_use: Option<String>,
    pub flags: i64,
    pub keywords: Vec<String>,
    /// The message as edited by the script (editheader), if it was.
    pub raw: Option<Vec<u8>>,
}

impl SieveFile {
    /// A copy in the default place, as it came.
    fn keep() -> Self {
        SieveFile {
            folder: None,
            special_use: None,
            flags: 0,
            keywords: Vec::new(),
            raw: None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SieveOutcome {
    pub files: Vec<SieveFile>,
    /// `redirect`: (address, edited message if any).
    pub redirects: Vec<(String, Option<Vec<u8>>)>,
    /// Generated messages (vacation): (recipient, message).
    pub replies: Vec<(String, Vec<u8>)>,
    pub reject: Option<String>,
    /// Duplicate/vacation ids to remember (keys for the store).
    pub remember: Vec<String>,
    /// The first error, if a script failed (the caller keeps the message).
    pub error: Option<String>,
    /// Whether any script ran.
    pub ran: bool,
}

/// What the interpreter asks that needs the store.
pub trait Memory {
    /// When `key` was last remembered for this address.
    fn seen_at(&self, key: &str) -> Option<i64>;
    /// The Bayesian classifier's evidence for these tokens (F5); None = no classifier.
    fn bayes(&self, _tokens: &[i64]) -> Option<postfach_core::mail::bayes::Evidence> {
        None
    }
}

pub struct SieveEnv<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub user: &'a str,
    pub hostname: &'a str,
    pub now: i64,
    pub folders: &'a [String],
}

fn compile(source: &str) -> Result<Arc<Sieve>, String> {
    Compiler::new()
        .compile(source.as_bytes())
        .map(Arc::new)
        .map_err(|e| format!("line {}, column {}: {e}", e.line_num(), e.line_pos()))
}

fn parse_flags(list: &[String]) -> (i64, Vec<String>) {
    let mut bits = 0;
    let mut kw = Vec::new();
    for f in list {
        match f.to_ascii_lowercase().as_str() {
            "\\seen" => bits |= flag::SEEN,
            "\\answered" => bits |= flag::ANSWERED,
            "\\flagged" => bits |= flag::FLAGGED,
            "\\deleted" => bits |= flag::DELETED,
            "\\draft" => bits |= flag::DRAFT,
            s if !s.starts_with('\\')
                && !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_graphic() && !b"(){%*\"\\]".contains(&b))
                && !kw.iter().any(|k: &String| k.eq_ignore_ascii_case(f)) =>
            {
                kw.push(f.clone())
            }
            _ => {}
        }
    }
    (bits, kw)
}

/// Runs the service's active script, then the user's. If the service script discards or
/// rejects, the user's does not run.
pub fn run(
    raw: &[u8],
    service: &SieveScripts,
    personal: &SieveScripts,
    env: &SieveEnv<'_>,
    memory: &dyn Memory,
) -> SieveOutcome {
    let mut out = SieveOutcome::default();
    let runtime = Runtime::new()
        .with_cpu_limit(CPU_LIMIT)
        .with_max_redirects(MAX_REDIRECTS)
        .with_max_out_messages(MAX_OUT_MESSAGES)
        .with_default_vacation_expiry(VACATION_DAYS * 86_400)
        .with_local_hostname(env.hostname.to_string())
        .with_vacation_default_subject("Automated reply")
        .with_vacation_subject_prefix("Auto: ");
    let mut user_keeps = true;
    if let Some(s) = service.active() {
        out.ran = true;
        let one = run_one(&runtime, raw, &s.source, service, true, env, memory);
        let stop = one.reject.is_some() || (one.files.is_empty() && one.error.is_none());
        // The service script's plain keep leaves the decision to the user's script.
        let explicit: Vec<SieveFile> = one
            .files
            .iter()
            .filter(|f| f.folder.is_some())
            .cloned()
            .collect();
        out.files.extend(explicit);
        out.redirects.extend(one.redirects);
        out.replies.extend(one.replies);
        out.remember.extend(one.remember);
        out.reject = one.reject;
        out.error = one
            .error
            .map(|e| format!("service script {:?}: {e}", s.name));
        if stop {
            return out;
        }
        user_keeps = one.files.iter().any(|f| f.folder.is_none());
    }
    if let Some(s) = personal.active() {
        out.ran = true;
        let one = run_one(&runtime, raw, &s.source, personal, false, env, memory);
        out.files.extend(one.files);
        out.redirects.extend(one.redirects);
        out.replies.extend(one.replies);
        out.remember.extend(one.remember);
        if out.reject.is_none() {
            out.reject = one.reject;
        }
        if let Some(e) = one.error {
            out.error.get_or_insert(format!("script {:?}: {e}", s.name));
        }
    } else if user_keeps && service.active().is_some() {
        out.files.push(SieveFile::keep());
    }
    out
}

fn run_one(
    runtime: &Runtime,
    raw: &[u8],
    source: &str,
    scripts: &SieveScripts,
    global: bool,
    env: &SieveEnv<'_>,
    memory: &dyn Memory,
) -> SieveOutcome {
    // A script that fails keeps the message (and says why).
    let failed = |error: String| SieveOutcome {
        ran: true,
        error: Some(error),
        files: vec![SieveFile::keep()],
        ..Default::default()
    };
    let script = match compile(source) {
        Ok(s) => s,
        Err(e) => return failed(e),
    };
    let Some(parsed) = MessageParser::default().parse(raw) else {
        return failed("the message cannot be parsed".into());
    };
    let mut instance = runtime
        .filter_parsed(parsed)
        .with_user_address(env.user.to_string());
    instance.set_envelope(Envelope::From, env.from.to_string());
    instance.set_envelope(Envelope::To, env.to.to_string());
    let mut created: HashMap<usize, Vec<u8>> = HashMap::new();
    let mut input = Input::script(if global { "service" } else { "personal" }, script);
    let mut actions = SieveOutcome::default();
    while let Some(result) = instance.run(input) {
        input = Input::True;
        match result {
            Err(e) => return failed(format!("{e:?}")),
            Ok(event) => match event {
                Event::IncludeScript { name, optional } => {
                    // `:personal` names the user's scripts, `:global` the service's.
                    let (doc, n) = match &name {
                        Script::Personal(n) => (if global { None } else { Some(scripts) }, n),
                        Script::Global(n) => (if global { Some(scripts) } else { None }, n),
                    };
                    match doc.and_then(|d| d.get(n)).map(|s| compile(&s.source)) {
                        Some(Ok(s)) => input = Input::Script { name, script: s },
                        Some(Err(e)) => return failed(format!("included script {n:?}: {e}")),
                        None if optional => input = Input::False,
                        None => return failed(format!("included script {n:?} does not exist")),
                    }
                }
                Event::MailboxExists { mailboxes, .. } => {
                    let all = mailboxes.iter().all(|m| {
                        let name = match m {
                            sieve::Mailbox::Name(n) => n.as_str(),
                            sieve::Mailbox::Id(n) => n.as_str(),
                        };
                        name.eq_ignore_ascii_case("INBOX") || env.folders.iter().any(|f| f == name)
                    });
                    input = all.into();
                }
                Event::DuplicateId { id, expiry, .. } => {
                    let key = format!("sieve:{id}");
                    let seen = memory
                        .seen_at(&key)
                        .is_some_and(|at| env.now - at < expiry as i64);
                    if !seen {
                        actions.remember.push(key);
                    }
                    input = seen.into();
                }
                Event::ListContains { .. } | Event::Function { .. } => input = Input::False,
                Event::SetEnvelope { .. } => {}
                Event::Keep { flags, message_id } => {
                    let (bits, kw) = parse_flags(&flags);
                    actions.files.push(SieveFile {
                        folder: None,
                        special_use: None,
                        flags: bits,
                        keywords: kw,
                        raw: created.get(&message_id).cloned(),
                    });
                }
                Event::FileInto {
                    folder,
                    flags,
                    special_use,
                    message_id,
                    ..
                } => {
                    let (bits, kw) = parse_flags(&flags);
                    actions.files.push(SieveFile {
                        folder: Some(folder),
                        special_use,
                        flags: bits,
                        keywords: kw,
                        raw: created.get(&message_id).cloned(),
                    });
                }
                Event::Discard => {}
                Event::Reject { reason, .. } => actions.reject = Some(reason),
                Event::CreatedMessage {
                    message_id,
                    message,
                } => {
                    created.insert(message_id, message);
                }
                Event::SendMessage {
                    recipient,
                    message_id,
                    ..
                } => {
                    let to = match recipient {
                        Recipient::Address(a) => vec![a],
                        Recipient::Group(g) => g,
                        Recipient::List(_) => Vec::new(),
                    };
                    match created.get(&message_id) {
                        // Generated messages (vacation) are automatic replies.
                        // A copy of the incoming message (editheader, then redirect) is
                        // no reply, whatever Auto-Submitted it carries: the sender wrote
                        // its body, and it must not leave as this mailbox's own mail (O2).
                        Some(m) if is_auto_reply(m) && !same_body(m, raw) => {
                            for t in to {
                                actions.replies.push((t, m.clone()));
                            }
                        }
                        edited => {
                            for t in to {
                                actions.redirects.push((t, edited.cloned()));
                            }
                        }
                    }
                }
                Event::Notify { method, .. } => {
                    tracing::info!(%method, "Sieve notify is not supported; ignored");
                }
            },
        }
    }
    actions.ran = true;
    actions
}

/// Whether two messages carry the same body (the bytes after the header section).
fn same_body(a: &[u8], b: &[u8]) -> bool {
    use postfach_core::mail::header_block::HeaderBlock;
    let body = |m: &[u8]| {
        HeaderBlock::parse(m)
            .map(|h| m[h.body_offset..].to_vec())
            .unwrap_or_else(|_| m.to_vec())
    };
    body(a) == body(b)
}

fn is_auto_reply(m: &[u8]) -> bool {
    MessageParser::default()
        .parse_headers(m)
        .and_then(|p| {
            p.header_raw("Auto-Submitted")
                .map(|v| v.trim().to_ascii_lowercase())
        })
        .is_some_and(|v| v != "no")
}

#[cfg(test)]
mod tests {
    use super::*;
    use postfach_core::mail::settings::SieveScript;

    struct NoMemory;
    impl Memory for NoMemory {
        fn seen_at(&self, _: &str) -> Option<i64> {
            None
        }
    }
    struct Seen;
    impl Memory for Seen {
        fn seen_at(&self, _: &str) -> Option<i64> {
            Some(1_795_000_000 - 86_400)
        }
    }

    fn scripts(src: &str) -> SieveScripts {
        SieveScripts {
            scripts: vec![SieveScript {
                name: "main".into(),
                source: src.into(),
                active: true,
            }],
        }
    }

    const MSG: &[u8] = b"From: Anna <anna@x.org>\r\nTo: bob@h.example\r\nSubject: Order 42\r\nMessage-ID: <m1@x.org>\r\n\r\nYour order shipped.\r\n";

    fn env<'a>(to: &'a str, folders: &'a [String]) -> SieveEnv<'a> {
        SieveEnv {
            from: "anna@x.org",
            to,
            user: "bob@h.example",
            hostname: "mx.h.example",
            now: 1_795_000_000,
            folders,
        }
    }

    #[test]
    fn an_edited_copy_marked_auto_submitted_is_a_redirect_not_a_reply() {
        // O2: the sender wrote this body; marking the copy "auto-replied" must not make it
        // leave as the mailbox's own reply (signed, null sender).
        let s = scripts(
            "require [\"editheader\"];\naddheader \"X-Edited\" \"yes\";\nredirect \"out@r.example\";\n",
        );
        let msg = b"From: Anna <anna@x.org>\r\nTo: bob@h.example\r\nAuto-Submitted: auto-replied\r\nSubject: pay now\r\nReply-To: pay@attack.test\r\n\r\nPay here.\r\n";
        let out = run(
            msg,
            &SieveScripts::default(),
            &s,
            &env("bob@h.example", &[]),
            &NoMemory,
        );
        assert_eq!(out.error, None, "{out:?}");
        assert!(out.replies.is_empty(), "{out:?}");
        assert_eq!(out.redirects.len(), 1, "{out:?}");
        // A real vacation reply is still a reply.
        let v = scripts("require \"vacation\";\nvacation :days 1 \"Away.\";\n");
        let out = run(
            MSG,
            &SieveScripts::default(),
            &v,
            &env("bob@h.example", &[]),
            &NoMemory,
        );
        assert_eq!(out.replies.len(), 1, "{out:?}");
    }

    #[test]
    fn subaddress_fileinto_with_flags() {
        let s = scripts(
            "require [\"fileinto\", \"subaddress\", \"envelope\", \"variables\", \"imap4flags\"];\n\
             if envelope :detail :matches \"to\" \"*\" { if string :is \"${1}\" \"\" { keep; stop; }\n\
             fileinto :flags [\"\\\\Seen\", \"shop\"] \"Tags/${1}\"; }\n",
        );
        let out = run(
            MSG,
            &SieveScripts::default(),
            &s,
            &env("bob+orders@h.example", &[]),
            &NoMemory,
        );
        assert_eq!(out.error, None);
        assert_eq!(out.files.len(), 1, "{out:?}");
        assert_eq!(out.files[0].folder.as_deref(), Some("Tags/orders"));
        assert_eq!(out.files[0].flags, flag::SEEN);
        assert_eq!(out.files[0].keywords, vec!["shop".to_string()]);
        // Without a detail: keep.
        let out = run(
            MSG,
            &SieveScripts::default(),
            &s,
            &env("bob@h.example", &[]),
            &NoMemory,
        );
        assert_eq!(out.files.len(), 1);
        assert_eq!(out.files[0].folder, None);
    }

    #[test]
    fn errors_and_endless_loops_keep_the_message() {
        // A runtime failure: an include of a script that does not exist.
        let s = scripts("require \"include\";\ninclude :personal \"nope\";\ndiscard;\n");
        let out = run(
            MSG,
            &SieveScripts::default(),
            &s,
            &env("bob@h.example", &[]),
            &NoMemory,
        );
        assert!(out.error.as_deref().unwrap().contains("nope"), "{out:?}");
        assert_eq!(out.files.len(), 1);
        // A script that would run forever hits the instruction budget.
        let s = scripts(
            "require [\"variables\", \"foreverypart\"];\nset \"i\" \"0\";\nforeverypart { foreverypart { foreverypart { foreverypart { set \"i\" \"${i}1\"; } } } }\n",
        );
        let out = run(
            MSG,
            &SieveScripts::default(),
            &s,
            &env("bob@h.example", &[]),
            &NoMemory,
        );
        assert!(!out.files.is_empty(), "{out:?}");
    }

    #[test]
    fn vacation_replies_once_per_period() {
        let s = scripts(
            "require \"vacation\";\nvacation :days 7 :subject \"Away\" \"I am away until Monday.\";\n",
        );
        let out = run(
            MSG,
            &SieveScripts::default(),
            &s,
            &env("bob@h.example", &[]),
            &NoMemory,
        );
        assert_eq!(out.replies.len(), 1, "{out:?}");
        assert_eq!(out.replies[0].0, "anna@x.org");
        assert_eq!(out.remember.len(), 1);
        assert_eq!(out.files.len(), 1, "vacation keeps the message");
        let out = run(
            MSG,
            &SieveScripts::default(),
            &s,
            &env("bob@h.example", &[]),
            &Seen,
        );
        assert!(out.replies.is_empty(), "{out:?}");
    }

    #[test]
    fn reject_redirect_and_service_scripts() {
        let s = scripts("require \"reject\";\nreject \"No orders here\";\n");
        let out = run(
            MSG,
            &SieveScripts::default(),
            &s,
            &env("bob@h.example", &[]),
            &NoMemory,
        );
        assert_eq!(out.reject.as_deref(), Some("No orders here"));
        assert!(out.files.is_empty());
        let s = scripts("redirect :copy \"carol@y.org\";\n");
        let s2 = scripts("require \"copy\";\nredirect :copy \"carol@y.org\";\n");
        assert!(
            run(
                MSG,
                &SieveScripts::default(),
                &s,
                &env("bob@h.example", &[]),
                &NoMemory
            )
            .error
            .is_some()
        );
        let out = run(
            MSG,
            &SieveScripts::default(),
            &s2,
            &env("bob@h.example", &[]),
            &NoMemory,
        );
        assert_eq!(out.redirects.len(), 1);
        assert_eq!(out.files.len(), 1);
        // The service script files first; the user's keep then adds its copy.
        let svc = scripts(
            "require \"fileinto\";\nif header :contains \"subject\" \"Order\" { fileinto \"Orders\"; }\n",
        );
        let out = run(
            MSG,
            &svc,
            &scripts("keep;\n"),
            &env("bob@h.example", &[]),
            &NoMemory,
        );
        let folders: Vec<_> = out.files.iter().map(|f| f.folder.clone()).collect();
        assert_eq!(folders, vec![Some("Orders".to_string()), None]);
        // A service script that discards stops there.
        let out = run(
            MSG,
            &scripts("discard;\n"),
            &scripts("keep;\n"),
            &env("bob@h.example", &[]),
            &NoMemory,
        );
        assert!(out.files.is_empty(), "{out:?}");
    }
}
