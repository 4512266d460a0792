//! The per-recipient delivery pipeline (DESIGN.md). After the spool commit, for
//! each local recipient: parse once, then allow/block lists (F7), the spam filter (F5),
//! promotions and social networks (F6), external-mail marking (F8), the service's and the
//! user's Sieve scripts (F9, M8), the autoresponder (F10) and forwarding with SRS (F11).
//!
//! [`plan`] decides (a pure function of the message and the recipient's
//! [`DeliveryContext`]); [`Pipeline::deliver`] reads the context and commits the plan in one
//! transaction through `postfach_core` (`Directory::commit_delivery`), so that a crash
//! anywhere leaves the recipient pending and the whole pipeline runs again — no mail lost,
//! no reply or forward sent twice.

pub mod classify;
pub mod message;
pub mod reply;
pub mod rspamd;
pub mod sieve_run;
pub mod spam;
pub mod tnef;

use std::sync::Arc;

use mail_parser::MessageParser;
use postfach_core::mail::header_block::{HeaderBlock, keep_identity};
use postfach_core::mail::settings::{self, AUTOREPLY_INTERVAL};
use postfach_core::mail::srs::Srs;
use postfach_core::mail::{
    Committed, DeliveryContext, DeliveryPlan, FileAction, Outgoing, autoreply_key, summarize,
};
use postfach_core::rules::o2_dkim_authority;
use postfach_core::{Directory, Result};
use postfach_store::{QueueEntry, QueueRcpt};

use crate::message::{header_from, insert_banner, prepend_headers};
use crate::sieve_run::{Memory, SieveEnv};

/// The banner of F8.
pub const EXTERNAL_BANNER: &str = "[EXTERNAL] This message comes from outside your organization. Be careful with links and attachments.";
/// A message that passed through more hops than this is looping (RFC 5321 §6.3 suggests
/// rejecting at 100 Received fields; forwarding chains get a tighter bound).
const MAX_HOPS: usize = 50;

/// Facts about this delivery that do not come from the recipient's settings.
pub struct Facts<'a> {
    /// Envelope sender (`""` for bounces).
    pub sender: &'a str,
    /// Envelope recipient as given (with a `+detail`, for Sieve `subaddress`).
    pub rcpt: &'a str,
    /// `address`, `alias` or `catchall` (F10: no autoresponse for catchall-only mail).
    pub via: &'a str,
    /// Our host name (Message-IDs, the authserv-id of our Authentication-Results).
    pub hostname: &'a str,
    pub now: i64,
    /// The external scorer's verdict (Rspamd), when one is configured and answered.
    pub external_spam: Option<spam::SpamVerdict>,
}

/// Decides what happens to one recipient's copy.
pub fn plan(
    raw: &[u8],
    ctx: &DeliveryContext,
    facts: &Facts<'_>,
    srs: &Srs,
    memory: &dyn Memory,
) -> DeliveryPlan {
    let mut plan = DeliveryPlan::default();
    let Some(msg) = MessageParser::default().parse(raw) else {
        // Not even headers: store it as it came (never lose mail).
        plan.files.push(FileAction {
            folder: "INBOX".into(),
            role: None,
            flags: 0,
            keywords: Vec::new(),
            raw: None,
        });
        plan.log.push((
            "unparsed".into(),
            "the message could not be parsed; filed into INBOX".into(),
        ));
        return plan;
    };
    let sender = facts.sender.to_lowercase();
    let from = header_from(&msg);
    let matches = |list: &[String]| {
        settings::list_matches(list, &sender)
            || (!from.is_empty() && settings::list_matches(list, &from))
    };

    // Loops: our own Delivered-To on the message means it came back to us (F11).
    let delivered_to_us = msg
        .header_values("Delivered-To")
        .filter_map(|v| v.as_text())
        .any(|v| ctx.own.iter().any(|o| v.trim().eq_ignore_ascii_case(o)));
    let hops = msg.header_values("Received").count();
    let looped = delivered_to_us || hops > MAX_HOPS;

    // F7, then F5/F6.
    let allowed = matches(&ctx.filters.allow) || matches(&ctx.service.allow);
    let blocked = !allowed && (matches(&ctx.filters.block) || matches(&ctx.service.block));
    let required = ctx.service.spam_threshold;
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut default: (String, Option<String>) = ("INBOX".into(), None);
    let mut spam = false;
    if blocked {
        spam = true;
        headers.push((
            "X-Spam-Status".into(),
            format!("Yes, score=100.0 required={required:.1} tests=BLOCK_LIST"),
        ));
        default = ("Spam".into(), Some("\\Junk".into()));
        plan.log.push((
            "blocked".into(),
            format!("sender {sender} / {from} is on a block list; filed into Spam"),
        ));
    } else if spam::dmarc_quarantine(&msg, facts.hostname) {
        // RFC 7489 §6.3: the author's domain asked for failing mail to be quarantined. Our
        // MX's verdict decides, whatever an allow list, the spam setting or the spam backend
        // would say: a list entry names an address, and the address is what was forged.
        // Spam is never forwarded (F11), so the forgery cannot leave aligned by SRS either.
        spam = true;
        headers.push((
            "X-Spam-Status".into(),
            format!("Yes, score=100.0 required={required:.1} tests=DMARC_POLICY_QUARANTINE"),
        ));
        default = ("Spam".into(), Some("\\Junk".into()));
        plan.log.push((
            "dmarc-quarantine".into(),
            format!("{from} fails DMARC and its domain asks for quarantine; filed into Spam"),
        ));
    } else if allowed {
        headers.push((
            "X-Spam-Status".into(),
            format!("No, score=0.0 required={required:.1} tests=ALLOW_LIST"),
        ));
    } else if ctx.filters.spam {
        let v = match &facts.external_spam {
            Some(v) => v.clone(),
            None => {
                let tokens = postfach_core::mail::bayes::tokens(&msg);
                let p = memory
                    .bayes(&tokens)
                    .and_then(|e| e.spam_probability(&tokens));
                spam::score(&msg, required, facts.hostname, p)
            }
        };
        // Clean mail keeps the spooled copy untouched (one blob shared by all recipients).
        if !v.tests.is_empty() {
            headers.push(("X-Spam-Status".into(), v.status()));
            headers.push(("X-Spam-Score".into(), format!("{:.1}", v.score)));
        }
        if v.is_spam() {
            spam = true;
            default = ("Spam".into(), Some("\\Junk".into()));
        }
    }
    if !spam
        && ctx.filters.promotions
        && let Some(c) = classify::classify(&msg)
    {
        default = (c.folder().into(), None);
    }

    // F8: mail from outside the organization's domains.
    let mut body: Option<Vec<u8>> = None;
    let author = if from.is_empty() {
        sender.clone()
    } else {
        from.clone()
    };
    let author_domain = author.rsplit_once('@').map(|x| x.1).unwrap_or("");
    if ctx.service.external_marking
        && !ctx
            .org_domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(author_domain))
    {
        headers.push(("X-Postfach-External".into(), "yes".into()));
        body = insert_banner(raw, &msg, EXTERNAL_BANNER);
    }
    let mut local_raw: Option<Vec<u8>> = if headers.is_empty() && body.is_none() {
        None
    } else {
        Some(prepend_headers(body.as_deref().unwrap_or(raw), &headers))
    };
    // F12: winmail.dat unpacked into ordinary attachments (of the stored copy only).
    if tnef::has_tnef(&msg) {
        let unpacked = {
            let base = local_raw.as_deref().unwrap_or(raw);
            let reparsed = local_raw
                .as_ref()
                .and_then(|l| MessageParser::default().parse(l.as_slice()));
            tnef::unpack(
                base,
                reparsed.as_ref().unwrap_or(&msg),
                ctx.service.tnef_keep_original,
            )
        };
        match unpacked {
            Some(u) => {
                local_raw = Some(u);
                plan.log.push((
                    "tnef".into(),
                    "winmail.dat unpacked into ordinary attachments".into(),
                ));
            }
            None => plan.log.push((
                "tnef".into(),
                "a winmail.dat part held no files that could be unpacked; kept as it is".into(),
            )),
        }
    }
    let filed_raw = local_raw.as_deref().unwrap_or(raw);

    // F9: Sieve (not for blocked mail: it is discarded into Spam as it is).
    // (copy, filed on purpose by a Sieve `fileinto`)
    let mut files: Vec<(FileAction, bool)> = Vec::new();
    let mut redirects: Vec<(String, Option<Vec<u8>>)> = Vec::new();
    let default_file = |flags: i64, keywords: Vec<String>, edited: Option<Vec<u8>>| FileAction {
        folder: default.0.clone(),
        role: default.1.clone(),
        flags,
        keywords,
        raw: edited.or_else(|| local_raw.clone()),
    };
    if !blocked && (ctx.scripts.active().is_some() || ctx.service_scripts.active().is_some()) {
        let env = SieveEnv {
            from: &sender,
            to: facts.rcpt,
            user: &ctx.address,
            hostname: facts.hostname,
            now: facts.now,
            folders: &ctx.folders,
        };
        let out = sieve_run::run(filed_raw, &ctx.service_scripts, &ctx.scripts, &env, memory);
        for f in out.files {
            match f.folder {
                None => files.push((default_file(f.flags, f.keywords, f.raw), false)),
                Some(folder) => files.push((
                    FileAction {
                        folder,
                        role: f.special_use,
                        flags: f.flags,
                        keywords: f.keywords,
                        raw: f.raw.or_else(|| local_raw.clone()),
                    },
                    true,
                )),
            }
        }
        if let Some(e) = &out.error {
            plan.log
                .push(("sieve-error".into(), format!("{e}; the message was kept")));
            if files.is_empty() {
                files.push((default_file(0, Vec::new(), None), false));
            }
        }
        if let Some(reason) = out.reject {
            plan.log.push((
                "sieve-reject".into(),
                format!("rejected mail from {sender}: {reason}"),
            ));
            if !sender.is_empty() && reply::may_answer(&sender, &msg) {
                plan.outgoing.push(Outgoing {
                    mail_from: String::new(),
                    to: vec![sender.clone()],
                    raw: reply::rejection(
                        &ctx.address,
                        &sender,
                        &reason,
                        &msg,
                        facts.hostname,
                        facts.now,
                    ),
                    kind: "reject",
                });
            }
        }
        redirects = out.redirects;
        if facts.via != "catchall" {
            for (to, m) in out.replies {
                let Some(raw) = own_author(m, &ctx.own, &ctx.address, &mut plan.log) else {
                    continue;
                };
                plan.outgoing.push(Outgoing {
                    mail_from: String::new(),
                    to: vec![to],
                    raw,
                    kind: "autoreply",
                });
            }
        }
        plan.remember.extend(out.remember);
    } else {
        files.push((default_file(0, Vec::new(), None), false));
    }

    // F10: the autoresponder.
    if let Some(a) = &ctx.autoreply
        && !spam
        && facts.via != "catchall"
        && a.in_schedule(facts.now)
        && reply::may_answer(&sender, &msg)
        && !a.excludes(&sender)
        && !(from.is_empty() || a.excludes(&from))
        && ctx
            .autoreply_last
            .is_none_or(|t| facts.now - t >= AUTOREPLY_INTERVAL)
    {
        let reply_from = a.from.clone().unwrap_or_else(|| ctx.address.clone());
        let raw = reply::autoresponse(
            &reply_from,
            &sender,
            &a.subject,
            &a.message,
            &msg,
            facts.hostname,
            facts.now,
        );
        if let Some(raw) = own_author(raw, &ctx.own, &ctx.address, &mut plan.log) {
            plan.outgoing.push(Outgoing {
                mail_from: String::new(),
                to: vec![sender.clone()],
                raw,
                kind: "autoreply",
            });
        }
        plan.remember.push(autoreply_key(&sender));
    }

    // F11: forwarding (and Sieve redirects), envelope sender rewritten with SRS.
    let mut forward_to: Vec<(String, Option<Vec<u8>>)> = Vec::new();
    if !spam {
        forward_to.extend(ctx.forward_to.iter().map(|t| (t.clone(), None)));
    }
    forward_to.extend(redirects);
    if !forward_to.is_empty() {
        if looped {
            plan.log.push((
                "loop".into(),
                format!(
                    "forwarding loop stopped (the message had already passed {}); kept here",
                    ctx.address
                ),
            ));
            if files.is_empty() {
                files.push((default_file(0, Vec::new(), None), false));
            }
        } else {
            // F11/O2: the rewritten envelope sender must not align with the author under
            // DMARC (RFC 7489 §3.1.2): SPF of our forward would pass for it at the next hop
            // and turn a forged or edited author of the mailbox's own domain into a DMARC
            // pass. Such forwards take the platform's host name instead.
            let author = HeaderBlock::parse(raw)
                .ok()
                .and_then(|b| b.author().ok())
                .map(|a| a.domain);
            let envelope_domain = o2_dkim_authority::forward_envelope_domain(
                author.as_deref(),
                &ctx.domain,
                facts.hostname,
            );
            let mail_from = srs.forward(&sender, envelope_domain, facts.now);
            let mut plain: Vec<String> = Vec::new();
            for (to, edited) in forward_to {
                if ctx.own.iter().any(|o| o.eq_ignore_ascii_case(&to)) {
                    continue;
                }
                match edited {
                    None => {
                        if !plain.iter().any(|p| p.eq_ignore_ascii_case(&to)) {
                            plain.push(to)
                        }
                    }
                    // O2: a message a Sieve script edited (editheader) is neither DKIM-signed
                    // nor ARC-sealed by us, and leaves with the author, sender, verdict and
                    // signatures it arrived with (`keep_identity`): a script cannot make us
                    // deliver or relay mail claiming another author.
                    Some(m) => {
                        let m = keep_identity(raw, &m).unwrap_or_else(|| raw.to_vec());
                        plan.outgoing.push(Outgoing {
                            mail_from: mail_from.clone(),
                            to: vec![to],
                            raw: prepend_headers(
                                &m,
                                &[("Delivered-To".into(), ctx.address.clone())],
                            ),
                            kind: "forward-edited",
                        })
                    }
                }
            }
            if !plain.is_empty() {
                plan.outgoing.push(Outgoing {
                    mail_from,
                    to: plain,
                    raw: prepend_headers(raw, &[("Delivered-To".into(), ctx.address.clone())]),
                    kind: "forward",
                });
            }
            // "Delete the local copy" drops the default copy; what a Sieve script filed on
            // purpose stays.
            if !ctx.forward_keep_copy && !ctx.forward_to.is_empty() {
                files.retain(|(_, explicit)| *explicit);
            }
        }
    } else if spam && !ctx.forward_to.is_empty() {
        plan.log.push((
            "spam-not-forwarded".into(),
            "spam is kept in Spam, not forwarded".into(),
        ));
    }
    plan.files = files.into_iter().map(|(f, _)| f).collect();
    plan
}

/// O2: an automatic reply of a mailbox (its autoresponder, a Sieve vacation) names one of the
/// mailbox's own addresses as author. Any other From (a vacation `:from` naming another
/// tenant's address, RFC 5230 §4.4 lets the implementation refuse it; an alias deleted since
/// the autoresponder was saved) is replaced by the mailbox's address, so the platform never
/// sends — nor signs — mail as someone the mailbox is not. `None`: the reply is unreadable and
/// dropped.
fn own_author(
    raw: Vec<u8>,
    own: &[String],
    address: &str,
    log: &mut Vec<(String, String)>,
) -> Option<Vec<u8>> {
    use postfach_core::mail::header_block::HeaderBlock;
    use postfach_core::rules::o2_dkim_authority::owns_author;
    let block = HeaderBlock::parse(&raw).ok()?;
    let author = block.author().ok();
    if owns_author(own, author.as_ref()) {
        return Some(raw);
    }
    log.push((
        "autoreply-from".into(),
        format!(
            "an automatic reply named {} as sender, which is not one of this mailbox's addresses; sent as {address}",
            author.map_or_else(|| "no single address".to_string(), |a| a.address)
        ),
    ));
    let mut fixed = format!("From: <{address}>\r\n").into_bytes();
    fixed.extend(block.without(|f, _| f.name.eq_ignore_ascii_case("From")));
    Some(fixed)
}

/// Runs the pipeline for one recipient and commits the result.
#[derive(Clone)]
pub struct Pipeline {
    dir: Directory,
    hostname: Arc<str>,
    rspamd: Option<Arc<rspamd::Rspamd>>,
}

struct StoreMemory {
    dir: Directory,
    address_id: i64,
    handle: tokio::runtime::Handle,
}

impl Memory for StoreMemory {
    fn seen_at(&self, key: &str) -> Option<i64> {
        self.handle
            .block_on(self.dir.delivery_memory(self.address_id, key))
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "reading the Sieve duplicate memory failed");
                None
            })
    }

    fn bayes(&self, tokens: &[i64]) -> Option<postfach_core::mail::bayes::Evidence> {
        self.handle
            .block_on(self.dir.bayes_evidence(self.address_id, tokens))
            .map_err(|e| tracing::warn!(error = %e, "reading the Bayes token store failed"))
            .ok()
    }
}

impl Pipeline {
    pub fn new(dir: Directory, hostname: &str, spam: &rspamd::SpamSettings) -> Self {
        Pipeline {
            dir,
            hostname: hostname.into(),
            rspamd: (spam.backend == rspamd::SpamBackend::Rspamd)
                .then(|| Arc::new(rspamd::Rspamd::new(spam))),
        }
    }

    /// Delivers a spooled message to one local recipient. `Ok(None)`-like outcomes (already
    /// delivered by an earlier attempt) come back as `Committed { delivered: false, .. }`.
    pub async fn deliver(
        &self,
        entry: &QueueEntry,
        rcpt: &QueueRcpt,
        raw: Arc<Vec<u8>>,
    ) -> Result<Committed> {
        self.run(entry, rcpt, raw, false).await
    }

    /// Delivers a message that was never spooled, during the SMTP transaction (the caller
    /// answers `250` only after this returned `Ok`, i.e. once the copies are durable).
    /// `entry` and `rcpt` describe the message but are not in the queue; `entry.blob_id` is
    /// the message's inline id (see [`postfach_core::Directory::commit_delivery`]).
    pub async fn deliver_direct(
        &self,
        entry: &QueueEntry,
        rcpt: &QueueRcpt,
        raw: Arc<Vec<u8>>,
    ) -> Result<Committed> {
        self.run(entry, rcpt, raw, true).await
    }

    async fn run(
        &self,
        entry: &QueueEntry,
        rcpt: &QueueRcpt,
        raw: Arc<Vec<u8>>,
        direct: bool,
    ) -> Result<Committed> {
        let address_id = rcpt.address_id.ok_or_else(|| {
            postfach_core::Error::Conflict(format!("recipient {} has no local address", rcpt.rcpt))
        })?;
        let ctx = self
            .dir
            .delivery_context(address_id, &entry.mail_from)
            .await?;
        let srs = self.dir.srs().await?;
        let now = self.dir.now();
        let dir = self.dir.clone();
        let hostname = self.hostname.clone();
        let (sender, rcpt_addr, via) =
            (entry.mail_from.clone(), rcpt.rcpt.clone(), rcpt.via.clone());
        let handle = tokio::runtime::Handle::current();
        let rspamd = self.rspamd.clone().filter(|_| ctx.filters.spam);
        let (queue_id, submitter) = (
            entry.id,
            // Only a login's own submission is "authenticated user" mail for Rspamd; the
            // producer of a forward or an autoresponse is recorded for O2, not as a login.
            (entry.source == "submission").then(|| entry.mail_from.clone()),
        );
        // Sieve and the scorer are CPU work (regular expressions, MIME) and Rspamd a blocking
        // HTTP call: off the async threads.
        let message = raw.clone();
        let (plan, original) = tokio::task::spawn_blocking(move || {
            let memory = StoreMemory {
                dir,
                address_id,
                handle,
            };
            let external_spam = rspamd.and_then(|r| {
                let (ip, helo) = client_of(&raw);
                let env = rspamd::Envelope {
                    mail_from: &sender,
                    rcpt: &rcpt_addr,
                    queue_id,
                    ip,
                    helo,
                    user: submitter.as_deref(),
                };
                r.check(&raw, &env, ctx.service.spam_threshold)
                    .map_err(|e| {
                        tracing::warn!(queue_id, error = %e, "Rspamd failed; the built-in scorer decides")
                    })
                    .ok()
            });
            let facts = Facts {
                sender: &sender,
                rcpt: &rcpt_addr,
                via: &via,
                hostname: &hostname,
                now,
                external_spam,
            };
            (plan(&raw, &ctx, &facts, &srs, &memory), summarize(&raw))
        })
        .await
        .map_err(|e| postfach_core::Error::Internal(format!("delivery pipeline failed: {e}")))?;
        for (kind, detail) in &plan.log {
            tracing::info!(queue_id = entry.id, rcpt = %rcpt.rcpt, kind = %kind, "{detail}");
        }
        self.dir
            .commit_delivery(
                entry,
                rcpt,
                &plan,
                &original,
                direct.then_some(message.as_slice()),
            )
            .await
    }
}

/// Runs the message-level steps of the pipeline that read untrusted bytes — MIME parsing,
/// the spam rules and Bayes tokens, the external banner, winmail.dat unpacking and the
/// Received parser — on arbitrary input (the `delivery_message` fuzz target).
pub fn exercise(raw: &[u8]) {
    let Some(msg) = MessageParser::default().parse(raw) else {
        return;
    };
    let _ = postfach_core::mail::bayes::tokens(&msg);
    let _ = spam::score(&msg, 5.0, "fuzz.invalid", Some(0.5));
    let _ = classify::classify(&msg);
    let _ = insert_banner(raw, &msg, EXTERNAL_BANNER);
    let _ = client_of(raw);
    if tnef::has_tnef(&msg) {
        for keep in [true, false] {
            if let Some(out) = tnef::unpack(raw, &msg, keep) {
                // What we store must parse again.
                assert!(MessageParser::default().parse(&out).is_some());
            }
        }
    }
    let _ = reply::may_answer("a@b.example", &msg);
}

/// The SMTP client's address and HELO name from our own (topmost) Received field.
fn client_of(raw: &[u8]) -> (Option<String>, Option<String>) {
    let Some(msg) = MessageParser::default().parse_headers(raw) else {
        return (None, None);
    };
    let Some(r) = msg.received() else {
        return (None, None);
    };
    let host = |h: &mail_parser::Host<'_>| match h {
        mail_parser::Host::Name(n) => n.to_string(),
        mail_parser::Host::IpAddr(ip) => ip.to_string(),
    };
    (
        r.from_ip().map(|ip| ip.to_string()),
        r.helo().or(r.from.as_ref()).map(host),
    )
}
