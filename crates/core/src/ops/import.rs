//! M6 bulk creation from CSV and M7 export.
//!
//! Each row is created in its own transaction, with the same rules as a single creation
//! (strength, catchall, duplicates, quota, the rolling 24 h limit): a refused row leaves
//! nothing behind, and the report says for every row what happened and why.

use serde_json::json;

use crate::access::Need;
use crate::csvio::{self, ImportLine};
use crate::error::{Error, Result};
use crate::model::{ImportReport, ImportRow};
use crate::ops::addresses::{AddressSpec, check_forwards};
use crate::{Actor, Directory, secret, validate};

/// Row checks that need no store: the columns themselves.
struct ValidRow {
    local: String,
    password: String,
    forward_to: Vec<String>,
    keep_copy: bool,
}

impl Directory {
    fn validate_row(&self, row: &ImportLine, domain: &str) -> Result<ValidRow> {
        if row.unbalanced_quote {
            return Err(Error::invalid(
                "row",
                "a quote (\") opens a field that is not closed on this line; nothing of the row is shown, as it may hold passwords",
            ));
        }
        if row.extra_cells > 0 {
            return Err(Error::invalid(
                "row",
                "more than four columns (local part, password, forwarding address, 0/1)",
            ));
        }
        let local = validate::local_part(&row.local_part)?;
        if row.password.is_empty() {
            return Err(Error::WeakPassword("column B (password) is empty".into()));
        }
        crate::rules::s1_passwords::strong_enough(
            &row.password,
            &self.policy.passwords,
            Some(&local),
        )?;
        // Several forwarding addresses (as the export writes them) are separated by spaces,
        // commas or semicolons.
        let targets: Vec<String> = row
            .forward_to
            .split([' ', ',', ';'])
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect();
        let forward_to = if targets.is_empty() {
            Vec::new()
        } else {
            check_forwards(&targets, &format!("{local}@{domain}"))?
        };
        let keep_copy = match row.delete_after_forward.as_str() {
            "" | "0" => true,
            "1" if forward_to.is_empty() => {
                return Err(Error::invalid(
                    "column D",
                    "1 (delete after forwarding) needs a forwarding address in column C",
                ));
            }
            "1" => false,
            other => {
                return Err(Error::invalid(
                    "column D",
                    format!("{other:?}: write 0 to keep forwarded mail, 1 to delete it"),
                ));
            }
        };
        Ok(ValidRow {
            local,
            password: row.password.clone(),
            forward_to,
            keep_copy,
        })
    }

    /// Imports addresses from a CSV file into the mail service of `domain`. `progress` is
    /// called after each row with (rows done, rows total).
    pub async fn import_csv(
        &self,
        actor: &Actor,
        domain: &str,
        data: &[u8],
        progress: &mut (dyn FnMut(usize, usize) + Send),
    ) -> Result<ImportReport> {
        let svc = {
            let mut tx = self.store.begin().await?;
            let svc = self.load_service(&mut *tx, domain).await?;
            self.require_service(&mut *tx, actor, &svc, Need::Manage, "import addresses")
                .await?;
            svc
        };
        let lines = csvio::parse_import(data, self.policy.limits.csv_max_rows)?;
        let total = lines.len();
        let mut rows = Vec::with_capacity(total);
        let mut seen: Vec<(String, usize)> = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            let outcome = self.import_row(actor, &svc, line, &mut seen).await;
            rows.push(match outcome {
                Ok(local) => ImportRow {
                    line: line.line,
                    local_part: local,
                    status: "created".into(),
                    code: None,
                    message: None,
                },
                Err(e) => ImportRow {
                    line: line.line,
                    local_part: line.local_part.clone(),
                    status: "refused".into(),
                    code: Some(e.code().into()),
                    message: Some(e.to_string()),
                },
            });
            progress(i + 1, total);
        }
        let created = rows.iter().filter(|r| r.status == "created").count();
        let report = ImportReport {
            service: svc.domain.clone(),
            created,
            refused: total - created,
            rows,
        };
        let mut tx = self.store.begin_write().await?;
        self.audit(
            &mut *tx,
            actor,
            Some(svc.org_id),
            "address.import",
            &svc.domain,
            json!({"rows": total, "created": report.created, "refused": report.refused}),
        )
        .await?;
        tx.commit().await?;
        Ok(report)
    }

    async fn import_row(
        &self,
        actor: &Actor,
        svc: &postfach_store::MailService,
        line: &ImportLine,
        seen: &mut Vec<(String, usize)>,
    ) -> Result<String> {
        let row = self.validate_row(line, &svc.domain)?;
        if let Some((_, first)) = seen.iter().find(|(l, _)| *l == row.local) {
            return Err(Error::Conflict(format!(
                "{}@{} is already on line {first} of this file",
                row.local, svc.domain
            )));
        }
        seen.push((row.local.clone(), line.line));
        {
            // Fail fast on quota/limit/duplicates before spending time on the hash.
            let mut tx = self.store.begin().await?;
            self.check_new_address(&mut *tx, svc, &row.local).await?;
        }
        let hash = secret::hash_password(&row.password).await?;
        let mut tx = self.store.begin_write().await?;
        let spec = AddressSpec {
            local: &row.local,
            password_hash: hash,
            storage_quota_bytes: None,
            forward_to: row.forward_to,
            forward_keep_copy: row.keep_copy,
        };
        self.insert_address(&mut *tx, actor, svc, spec, "csv")
            .await?;
        tx.commit().await?;
        Ok(row.local)
    }

    /// M7: the addresses of a mail service as CSV.
    pub async fn export_csv(&self, actor: &Actor, domain: &str) -> Result<String> {
        let addresses = self.list_addresses(actor, domain, None).await?;
        Ok(csvio::export(&addresses))
    }
}
