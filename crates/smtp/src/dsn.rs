//! Delivery status notifications (RFC 3464, RFC 3461): when a recipient fails for good or the
//! message expires, the sender gets a `multipart/report` bounce with a human explanation, the
//! machine-readable `message/delivery-status`, and the original headers (or the whole message
//! with `RET=FULL`). Bounces have the null sender, so they never bounce themselves.

use mail_builder::MessageBuilder;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::{BodyPart, MimePart};
use postfach_core::mail::{Rcpt, SpoolRequest};
use postfach_store::{NewQueueEntry, NewQueueRcpt, QueueEntry, QueueRcpt};

use crate::Smtp;

/// One recipient that failed for good.
pub(crate) struct Failure {
    pub rcpt: QueueRcpt,
    /// The reply or reason (`550 5.1.1 User unknown`).
    pub reply: String,
    pub remote: Option<String>,
}

/// The enhanced status code (RFC 3463) of a reply, or a generic permanent one.
fn status_of(reply: &str) -> String {
    reply
        .split_whitespace()
        .nth(1)
        .filter(|s| {
            let p: Vec<&str> = s.split('.').collect();
            p.len() == 3
                && p.iter()
                    .all(|x| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(|s| s.to_string())
        .filter(|s| s.starts_with('5') || s.starts_with('4'))
        .map(|s| match s.strip_prefix('4') {
            Some(rest) => format!("5{rest}"),
            None => s,
        })
        .unwrap_or_else(|| "5.0.0".into())
}

/// Whether RFC 3461 NOTIFY asks for a failure report (bits: 1 success, 2 failure, 4 delay,
/// 8 never; none set = the default, failures only).
fn wants_failure(notify: i64) -> bool {
    notify == 0 || (notify & 2 != 0 && notify & 8 == 0)
}

fn headers_of(message: &[u8]) -> &[u8] {
    match message.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(end) => &message[..end + 2],
        None => message,
    }
}

/// Builds and spools the bounce for `failures` of `entry` (unless the sender is null, the
/// entry is itself a bounce, or NOTIFY declined it).
pub(crate) async fn bounce(smtp: &Smtp, entry: &QueueEntry, original: &[u8], failures: &[Failure]) {
    if entry.mail_from.is_empty() || entry.source == "dsn" {
        return;
    }
    let failures: Vec<&Failure> = failures
        .iter()
        .filter(|f| wants_failure(f.rcpt.notify))
        .collect();
    if failures.is_empty() {
        return;
    }
    let host = &smtp.cfg.hostname;
    let now = smtp.dir.now();
    let mut human = format!(
        "This is the mail system at host {host}.\r\n\r\n\
         Your message could not be delivered to one or more recipients.\r\n\
         It is attached below.\r\n\r\n"
    );
    let mut status = format!(
        "Reporting-MTA: dns; {host}\r\nX-Postfach-Queue-ID: {}\r\nArrival-Date: {}\r\n",
        entry.id,
        crate::rfc5322(entry.received_at)
    );
    if let Some(envid) = &entry.env_id {
        status.push_str(&format!("Original-Envelope-Id: {envid}\r\n"));
    }
    for f in &failures {
        human.push_str(&format!("<{}>: {}\r\n", f.rcpt.rcpt, f.reply));
        status.push_str("\r\n");
        if let Some(orcpt) = &f.rcpt.orcpt {
            status.push_str(&format!("Original-Recipient: {orcpt}\r\n"));
        }
        status.push_str(&format!(
            "Final-Recipient: rfc822; {}\r\nAction: failed\r\nStatus: {}\r\n",
            f.rcpt.rcpt,
            status_of(&f.reply)
        ));
        if let Some(remote) = &f.remote {
            let host = remote.split_whitespace().next().unwrap_or(remote);
            status.push_str(&format!(
                "Remote-MTA: dns; {host}\r\nDiagnostic-Code: smtp; {}\r\n",
                f.reply
            ));
        } else {
            status.push_str(&format!("Diagnostic-Code: X-Postfach; {}\r\n", f.reply));
        }
        status.push_str(&format!("Last-Attempt-Date: {}\r\n", crate::rfc5322(now)));
    }
    let original = crate::outbound_strip(original);
    let returned = if entry.ret_full {
        MimePart::new("message/rfc822", BodyPart::Binary(original.clone().into()))
            .transfer_encoding("8bit")
    } else {
        MimePart::new(
            "text/rfc822-headers",
            BodyPart::Binary(headers_of(&original).to_vec().into()),
        )
        .transfer_encoding("8bit")
    };
    let report = MimePart::new(
        ContentType::new("multipart/report").attribute("report-type", "delivery-status"),
        BodyPart::Multipart(vec![
            MimePart::new("text/plain", BodyPart::Text(human.into())),
            MimePart::new("message/delivery-status", BodyPart::Text(status.into()))
                .transfer_encoding("7bit"),
            returned,
        ]),
    );
    let built = MessageBuilder::new()
        .from((
            "Mail Delivery System".to_string(),
            format!("MAILER-DAEMON@{host}"),
        ))
        .to(entry.mail_from.as_str())
        .subject("Undelivered Mail Returned to Sender")
        .header("Auto-Submitted", Raw::new("auto-replied"))
        .message_id(format!("{}@{host}", crate::random_id()))
        .body(report)
        .write_to_vec();
    let Ok(body) = built else {
        tracing::error!(queue_id = entry.id, "could not build a bounce");
        return;
    };
    let message = [
        b"Return-Path: <>\r\n".as_slice(),
        format!(
            "Received: by {host} (Postfach) id {};\r\n\t{}\r\n",
            crate::random_id(),
            crate::rfc5322(now)
        )
        .as_bytes(),
        &body,
    ]
    .concat();
    let target = match smtp.dir.resolve_rcpt(&entry.mail_from).await {
        Ok(Rcpt::Local(l)) => NewQueueRcpt {
            rcpt: entry.mail_from.clone(),
            address_id: Some(l.address_id),
            via: l.via.as_str().into(),
            domain: l.domain,
            is_local: true,
            ..Default::default()
        },
        Ok(Rcpt::Reverse { original, domain }) => NewQueueRcpt {
            rcpt: original,
            domain,
            is_local: false,
            ..Default::default()
        },
        Ok(Rcpt::Remote { domain }) => NewQueueRcpt {
            rcpt: entry.mail_from.clone(),
            domain,
            is_local: false,
            ..Default::default()
        },
        Ok(Rcpt::NoSuchUser) | Err(_) => {
            tracing::info!(to = %entry.mail_from, "bounce recipient does not exist; bounce dropped");
            return;
        }
    };
    let blob = match smtp.dir.blobs().put(&message).await {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "storing a bounce failed");
            return;
        }
    };
    let request = SpoolRequest {
        entry: NewQueueEntry {
            blob_id: blob.to_string(),
            size: message.len() as i64,
            mail_from: String::new(),
            source: "dsn".into(),
            sender_address_id: None,
            env_id: None,
            ret_full: false,
            expires_at: 0,
        },
        rcpts: vec![target],
        count_for: None,
        lifetime: smtp.cfg.queue.lifetime_hours * 3600,
        inline_body: None,
    };
    match smtp.dir.spool(&request).await {
        Ok(id) => {
            tracing::info!(queue_id = id, to = %entry.mail_from, failed = failures.len(), "bounce queued");
            smtp.queue_wake.notify_one();
        }
        Err(e) => tracing::error!(error = %e, "spooling a bounce failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(status_of("550 5.1.1 User unknown"), "5.1.1");
        assert_eq!(status_of("554 Go away"), "5.0.0");
        assert_eq!(
            status_of("451 4.4.1 No answer"),
            "5.4.1",
            "a final failure is permanent"
        );
        assert!(wants_failure(0) && wants_failure(2) && !wants_failure(1) && !wants_failure(8));
    }
}
