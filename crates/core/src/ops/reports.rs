//! "Report as spam / phishing / not spam" (F5): what a webmail's buttons do. Reporting trains
//! the Bayesian classifier, moves the message (into Spam, or out of it back to INBOX), and —
//! for spam and phishing — records it for the operator (`postfach reports list`), who may
//! want to act on a phishing wave against their customers.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use postfach_store::Report;

use crate::error::{Error, Result};
use crate::mail::Class;
use crate::model::rfc3339;
use crate::ops::filters::{Target, What};
use crate::{Actor, Directory};

/// The bytes of a reported message's header block kept for the operator.
const MAX_REPORT_HEADERS: usize = 16 * 1024;
/// Reports listed at most.
pub const MAX_REPORTS_LISTED: i64 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReportKind {
    Spam,
    Phishing,
    /// "Not spam": trains ham and moves the message back to INBOX.
    Ham,
}

impl ReportKind {
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "spam" => Ok(ReportKind::Spam),
            "phishing" => Ok(ReportKind::Phishing),
            "ham" | "not-spam" => Ok(ReportKind::Ham),
            _ => Err(Error::invalid(
                "kind",
                format!("{s:?}: use spam, phishing or ham"),
            )),
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            ReportKind::Spam => "spam",
            ReportKind::Phishing => "phishing",
            ReportKind::Ham => "ham",
        }
    }
}

/// What a report did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReportOutcome {
    /// Whether the classifier learned something new (false if it had been trained so).
    pub trained: bool,
    /// The folder the message is in now, if it was moved.
    pub moved_to: Option<String>,
    /// Its UID there.
    pub uid: Option<i64>,
    /// The operator's record (spam and phishing).
    pub report: Option<ReportView>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReportView {
    pub id: i64,
    pub address: String,
    pub kind: String,
    pub from: String,
    pub subject: String,
    pub message_id: String,
    pub reported_by: String,
    pub reported_at: String,
    /// The message's header block (at most 16 KiB).
    pub headers: String,
}

impl From<Report> for ReportView {
    fn from(r: Report) -> Self {
        ReportView {
            id: r.id,
            address: r.address,
            kind: r.kind,
            from: r.mail_from,
            subject: r.subject,
            message_id: r.message_id,
            reported_by: r.reported_by,
            reported_at: rfc3339(r.at),
            headers: r.headers,
        }
    }
}

/// The header block of a message (up to the blank line), bounded.
fn header_block(raw: &[u8]) -> String {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 2)
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|p| p + 1))
        .unwrap_or(raw.len())
        .min(MAX_REPORT_HEADERS);
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

impl Directory {
    /// Reports the message `uid` in `folder` of `address` (its own user, or a manager of the
    /// mail service).
    pub async fn report_message(
        &self,
        actor: &Actor,
        address: &str,
        folder: &str,
        uid: i64,
        kind: ReportKind,
    ) -> Result<ReportOutcome> {
        if !address.contains('@') {
            return Err(Error::invalid("address", "reports are about one address"));
        }
        let (svc, a, mailbox, message, junk) = {
            let mut tx = self.store.begin().await?;
            let Target::Address(svc, a) = self
                .settings_target(&mut *tx, actor, address, true, What::Filters)
                .await?
            else {
                return Err(Error::invalid("address", "reports are about one address"));
            };
            let name = crate::mail::folder_name(folder)?;
            let mailbox = tx
                .mailbox_get(a.id, &name)
                .await?
                .ok_or_else(|| Error::not_found("folder", format!("{name} of {address}")))?;
            let message = tx.message_get(mailbox.id, uid).await?.ok_or_else(|| {
                Error::not_found("message", format!("UID {uid} in {name} of {address}"))
            })?;
            let junk = tx
                .mailbox_list(a.id)
                .await?
                .into_iter()
                .find(|m| m.special_use.eq_ignore_ascii_case("\\Junk"));
            (svc, a, mailbox, message, junk)
        };
        let class = match kind {
            ReportKind::Ham => Class::Ham,
            ReportKind::Spam | ReportKind::Phishing => Class::Spam,
        };
        let raw = self.message_body(&message.blob_id).await?;
        let trained = self.train_raw(a.id, raw.clone(), class).await?;
        let in_junk = mailbox.special_use.eq_ignore_ascii_case("\\Junk");
        let target = match (class, in_junk) {
            (Class::Spam, false) => junk.map(|j| j.name),
            (Class::Ham, true) => Some("INBOX".to_string()),
            _ => None,
        };
        let mut moved = None;
        if let Some(to) = target {
            let (_, pairs) = self
                .copy_messages(a.id, mailbox.id, &[uid], &to, true)
                .await?;
            moved = pairs.first().map(|(_, new)| (to, *new));
        }
        let mut report = None;
        if kind != ReportKind::Ham {
            let summary = crate::mail::summarize(&raw);
            let mut tx = self.store.begin_write().await?;
            let r = tx
                .report_insert(&Report {
                    id: 0,
                    org_id: svc.org_id,
                    address: format!("{}@{}", a.local_part, a.domain),
                    kind: kind.as_str().into(),
                    mail_from: summary.from,
                    subject: summary.subject,
                    message_id: summary.message_id,
                    headers: header_block(&raw),
                    reported_by: actor.audit_name(),
                    at: self.now(),
                })
                .await?;
            self.audit(
                &mut *tx,
                actor,
                Some(svc.org_id),
                "message.report",
                &r.address,
                serde_json::json!({ "kind": r.kind, "report": r.id, "message_id": r.message_id }),
            )
            .await?;
            tx.commit().await?;
            report = Some(r.into());
        }
        Ok(ReportOutcome {
            trained,
            moved_to: moved.as_ref().map(|m| m.0.clone()),
            uid: moved.map(|m| m.1),
            report,
        })
    }

    /// The reports users made, newest first (operators only).
    pub async fn reports_list(
        &self,
        actor: &Actor,
        kind: Option<ReportKind>,
        limit: i64,
    ) -> Result<Vec<ReportView>> {
        actor.require_operator("read users' reports")?;
        if kind == Some(ReportKind::Ham) {
            return Err(Error::invalid(
                "kind",
                "\"not spam\" is not recorded; list spam or phishing",
            ));
        }
        let mut tx = self.store.begin().await?;
        Ok(tx
            .report_list(
                None,
                kind.map(|k| k.as_str()),
                limit.clamp(1, MAX_REPORTS_LISTED),
            )
            .await?
            .into_iter()
            .map(ReportView::from)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_block_stops_at_the_blank_line() {
        assert_eq!(
            header_block(b"A: 1\r\nB: 2\r\n\r\nbody"),
            "A: 1\r\nB: 2\r\n"
        );
        assert_eq!(header_block(b"A: 1\n\nbody"), "A: 1\n");
        assert_eq!(header_block(&vec![b'x'; 20_000]).len(), MAX_REPORT_HEADERS);
    }

    #[test]
    fn kinds_parse() {
        assert_eq!(ReportKind::parse("Phishing").unwrap(), ReportKind::Phishing);
        assert_eq!(ReportKind::parse("not-spam").unwrap(), ReportKind::Ham);
        assert!(ReportKind::parse("eggs").is_err());
    }
}
