//! The queue runner: claims due spool entries and delivers them — local recipients into their
//! INBOX, remote ones through `outbound` — then finishes the entry, reschedules it with
//! exponential back-off, or, past its lifetime, bounces what is left (O1).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use postfach_core::mail::SpoolRequest;
use postfach_store::{BlobId, QueueEntry, QueueRcpt};
use tokio::sync::{Semaphore, mpsc, watch};

use crate::Smtp;
use crate::dsn::{Failure, bounce};
use crate::outbound::{Outcome, deliver, prepare};

/// How long a worker owns an entry; if it dies, another one takes over after this.
/// M3: how long the queue keeps trying a full mailbox before it bounces.
const OVER_QUOTA_RETRY_SECONDS: i64 = 24 * 3600;
const LEASE_SECONDS: i64 = 30 * 60;

/// Due entries read from the queue at a time.
const DUE_BATCH: i64 = 64;
/// Entries waiting in the hand-off at most; when it is full, sessions spool unclaimed and
/// the runner finds the entries in the queue (back-pressure, nothing lost).
const HANDOFF_DEPTH: usize = 256;
/// The claim of a handed-over entry: short, so that on a cluster a node that stops with
/// entries in its hand-off does not hold them long (its own restart frees them at once).
const HANDOFF_LEASE_SECONDS: i64 = 10 * 60;
/// A handed-over entry is delivered only while at least this much of its claim is left;
/// one that waited longer (every worker busy with slow remote hosts) is left to the runner,
/// which claims it again once the claim has run out: never two workers on one entry.
const HANDOFF_LEASE_MARGIN: i64 = 5 * 60;

/// The short way from a session to the workers: the session spools its message
/// already claimed for this node and hands the entry over in memory, so that the runner does
/// not find it by a queue query and claim it in a write transaction of its own. Open only once
/// the runner has released the claims of an earlier run of this node (`queue_release_node`),
/// which would otherwise free a handed-over entry for a second worker.
pub(crate) struct Handoff {
    open: AtomicBool,
    tx: mpsc::Sender<Claimed>,
    rx: Mutex<Option<mpsc::Receiver<Claimed>>>,
}

/// A queue entry claimed for this node, with its recipients.
type Claimed = (QueueEntry, Vec<QueueRcpt>);

impl Handoff {
    pub(crate) fn new() -> Self {
        let (tx, rx) = mpsc::channel(HANDOFF_DEPTH);
        Handoff {
            open: AtomicBool::new(false),
            tx,
            rx: Mutex::new(Some(rx)),
        }
    }
}

/// Spools a message for `smtp`'s workers: claimed and handed over when the hand-off has room,
/// else into the queue for the runner to find. Returns the queue id.
pub(crate) async fn spool(smtp: &Smtp, request: &SpoolRequest) -> postfach_core::Result<i64> {
    if smtp.handoff.open.load(Ordering::Acquire)
        && let Ok(slot) = smtp.handoff.tx.try_reserve()
    {
        let (entry, rcpts) = smtp
            .dir
            .spool_claimed(request, &smtp.cfg.node_id, HANDOFF_LEASE_SECONDS)
            .await?;
        let id = entry.id;
        slot.send((entry, rcpts));
        return Ok(id);
    }
    let id = smtp.dir.spool(request).await?;
    smtp.queue_wake.notify_one();
    Ok(id)
}

pub(crate) async fn run(smtp: Arc<Smtp>, mut stop: watch::Receiver<bool>) {
    // Claims from before a crash or restart of this node would otherwise hold their entries
    // until the lease runs out.
    match smtp.dir.queue_release_node(&smtp.cfg.node_id).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            entries = n,
            "resuming queue entries interrupted by the last stop"
        ),
        Err(e) => tracing::error!(error = %e, "releasing old queue claims failed"),
    }
    let workers = Arc::new(Semaphore::new(smtp.cfg.queue.workers));
    let handed = smtp.handoff.rx.lock().ok().and_then(|mut r| r.take());
    if let Some(mut handed) = handed {
        let (smtp, workers, mut stop) = (smtp.clone(), workers.clone(), stop.clone());
        smtp.handoff.open.store(true, Ordering::Release);
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    next = handed.recv() => next,
                    _ = stop.changed() => None,
                };
                let Some((entry, rcpts)) = next else { return };
                let Ok(permit) = workers.clone().acquire_owned().await else {
                    return;
                };
                // The claim was taken when the entry was spooled (`received_at`).
                if smtp.dir.now() > entry.received_at + HANDOFF_LEASE_SECONDS - HANDOFF_LEASE_MARGIN
                {
                    tracing::warn!(
                        queue_id = entry.id,
                        "a handed-over entry waited too long; left to the queue runner"
                    );
                    continue;
                }
                let smtp = smtp.clone();
                tokio::spawn(async move {
                    process(&smtp, entry, rcpts).await;
                    drop(permit);
                });
            }
        });
    }
    loop {
        if *stop.borrow() {
            return;
        }
        let mut full_batch = false;
        match smtp.dir.queue_due(DUE_BATCH).await {
            Ok(due) => {
                // A full batch means more may be due: look again at once instead of waiting
                // for a wake-up (a backlog drained at one batch per second before).
                full_batch = due.len() as i64 == DUE_BATCH;
                for entry in due {
                    let Ok(permit) = workers.clone().acquire_owned().await else {
                        return;
                    };
                    match smtp
                        .dir
                        .queue_claim(entry.id, LEASE_SECONDS, &smtp.cfg.node_id)
                        .await
                    {
                        Ok(Some((entry, rcpts))) => {
                            let smtp = smtp.clone();
                            tokio::spawn(async move {
                                process(&smtp, entry, rcpts).await;
                                drop(permit);
                            });
                        }
                        Ok(None) => {}
                        Err(e) => tracing::warn!(error = %e, "claiming a queue entry failed"),
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading the queue failed"),
        }
        if full_batch {
            continue;
        }
        tokio::select! {
            _ = smtp.queue_wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => {}
        }
    }
}

fn backoff(smtp: &Smtp, attempts: i64) -> i64 {
    let q = &smtp.cfg.queue;
    let factor = 1i64 << attempts.clamp(0, 20);
    q.retry_initial_seconds
        .saturating_mul(factor)
        .min(q.retry_max_seconds)
}

async fn process(smtp: &Smtp, entry: QueueEntry, rcpts: Vec<QueueRcpt>) {
    let dir = &smtp.dir;
    if !postfach_store::is_inline_id(&entry.blob_id) && BlobId::parse(&entry.blob_id).is_none() {
        tracing::error!(queue_id = entry.id, "queue entry with a malformed blob id");
        return;
    }
    let blob = match dir.message_body(&entry.blob_id).await {
        Ok(b) => b,
        Err(e) => {
            // The body is not readable now: keep everything and try again later.
            tracing::error!(queue_id = entry.id, error = %e, "cannot read a queued message");
            let _ = dir
                .queue_after_attempt(
                    entry.id,
                    dir.now() + backoff(smtp, entry.attempts),
                    entry.attempts + 1,
                )
                .await;
            return;
        }
    };
    // The delivery copies the message (the pipeline's changed copies, MIME parsing): it
    // takes its part of the message memory the SMTP sessions share, waiting for room rather
    // than failing (a message larger than the whole budget goes on after a while).
    let mut _held = smtp.message_memory.hold();
    let want = blob.len().saturating_mul(3);
    for _ in 0..600 {
        if _held.set(want) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pending: Vec<&QueueRcpt> = rcpts.iter().filter(|r| r.status == "pending").collect();
    let mut failures: Vec<Failure> = Vec::new();

    // Local recipients: through the delivery pipeline (Sieve, filters, autoresponder,
    // forwarding), each committed exactly once. The commit of the last pending recipient also
    // removes the entry (`Committed::finished`): then only the body is left to tidy.
    let mut finished = false;
    let mut body_settled = false;
    if pending.iter().any(|r| r.is_local) {
        let raw = Arc::new(blob.clone());
        for r in pending.iter().filter(|r| r.is_local) {
            match smtp.pipeline.deliver(&entry, r, raw.clone()).await {
                Ok(done) if done.delivered => {
                    tracing::info!(queue_id = entry.id, rcpt = %r.rcpt, stored = ?done.stored, queued = ?done.queued, "delivered");
                    if !done.queued.is_empty() {
                        smtp.queue_wake.notify_one();
                    }
                    finished |= done.finished;
                    body_settled |= done.spooled_body_settled;
                }
                Ok(_) => {}
                // M3: the mailbox is full. RFC 3463 calls X.2.2 a persistent transient
                // failure: the user may make room, so the queue tries again for a day (the
                // attempts back off as any retry does); then the sender hears it with a
                // bounce, as a remote MX's `552 5.2.2` would make us do. Nothing was kept.
                Err(postfach_core::Error::OverQuota(why))
                    if dir.now() < entry.received_at + OVER_QUOTA_RETRY_SECONDS =>
                {
                    tracing::info!(queue_id = entry.id, rcpt = %r.rcpt, "not delivered yet: {why}; will retry");
                    let reply = format!("452 4.2.2 <{}>... Mailbox full", r.rcpt);
                    let _ = dir.queue_rcpt_result(r.id, "pending", &reply).await;
                }
                Err(postfach_core::Error::OverQuota(why)) => {
                    tracing::info!(queue_id = entry.id, rcpt = %r.rcpt, "not delivered: {why}");
                    let reply = format!("552 5.2.2 <{}>... Mailbox full", r.rcpt);
                    if let Err(e) = dir.queue_rcpt_result(r.id, "failed", &reply).await {
                        tracing::error!(queue_id = entry.id, error = %e, "recording a delivery result failed");
                    }
                    failures.push(Failure {
                        rcpt: (*r).clone(),
                        reply,
                        remote: None,
                    });
                }
                Err(e) => {
                    tracing::warn!(queue_id = entry.id, rcpt = %r.rcpt, error = %e, "local delivery failed; will retry");
                    let _ = dir.queue_rcpt_result(r.id, "pending", &e.to_string()).await;
                }
            }
        }
    }

    if finished {
        // A mailbox holds the spooled body itself, or the delivery removed the small unused
        // one with the entry: nothing to tidy (a read and a commit saved per message).
        if !body_settled {
            drop_blob_unless_used(smtp, &entry.blob_id).await;
        }
        return;
    }

    // Remote recipients, one conversation per domain.
    let mut by_domain: BTreeMap<&str, Vec<&QueueRcpt>> = BTreeMap::new();
    for r in pending.iter().filter(|r| !r.is_local) {
        by_domain.entry(r.domain.as_str()).or_default().push(r);
    }
    if !by_domain.is_empty() {
        let message = prepare(smtp, &entry, &blob).await;
        for (domain, group) in by_domain {
            let outcomes = deliver(smtp, &entry, &message, domain, &group).await;
            for (r, outcome) in group.into_iter().zip(outcomes) {
                let result = match &outcome {
                    Outcome::Delivered => {
                        tracing::info!(queue_id = entry.id, rcpt = %r.rcpt, "relayed");
                        dir.queue_rcpt_result(r.id, "delivered", "").await
                    }
                    Outcome::Temporary(why) => {
                        tracing::info!(queue_id = entry.id, rcpt = %r.rcpt, reason = %why, "deferred");
                        dir.queue_rcpt_result(r.id, "pending", why).await
                    }
                    Outcome::Permanent { reply, remote } => {
                        tracing::info!(queue_id = entry.id, rcpt = %r.rcpt, %reply, "failed");
                        failures.push(Failure {
                            rcpt: (*r).clone(),
                            reply: reply.clone(),
                            remote: remote.clone(),
                        });
                        dir.queue_rcpt_result(r.id, "failed", reply).await
                    }
                };
                if let Err(e) = result {
                    tracing::error!(queue_id = entry.id, error = %e, "recording a delivery result failed");
                }
            }
        }
    }

    // Past its lifetime, whatever is still pending fails (RFC 3463 4.4.7 becomes 5.4.7).
    let now = dir.now();
    if now >= entry.expires_at {
        let fresh = dir.queue_claim_rcpts(entry.id).await.unwrap_or_default();
        for r in fresh.into_iter().filter(|r| r.status == "pending") {
            let reply = format!("5.4.7 Delivery time expired; last error: {}", r.last_error);
            let _ = dir.queue_rcpt_result(r.id, "failed", &reply).await;
            failures.push(Failure {
                rcpt: r,
                reply: format!("554 {reply}"),
                remote: None,
            });
        }
    }
    if !failures.is_empty() {
        bounce(smtp, &entry, &blob, &failures).await;
    }

    let attempts = entry.attempts + 1;
    match dir
        .queue_after_attempt(entry.id, now + backoff(smtp, entry.attempts), attempts)
        .await
    {
        Ok(true) => drop_blob_unless_used(smtp, &entry.blob_id).await,
        Ok(false) => {}
        Err(e) => tracing::error!(queue_id = entry.id, error = %e, "updating a queue entry failed"),
    }
}

/// After an entry is finished: drops its body unless a mailbox (or another entry) still holds
/// it. Each spooled message is unique (it carries its own Received header), so no new message
/// can come to share it meanwhile.
async fn drop_blob_unless_used(smtp: &Smtp, blob_id: &str) {
    if let Err(e) = smtp.dir.drop_body_unless_used(blob_id).await {
        tracing::warn!(blob = blob_id, error = %e, "removing a delivered message's body failed");
    }
}
