//! M12: the activity log. Operators see everything; administrators and legal representatives
//! see their organization's; every account sees its own actions (logins included).

use std::collections::HashMap;

use postfach_store::AuditFilter;

use crate::error::{Error, Result};
use crate::model::{AuditView, rfc3339};
use crate::{Actor, Directory};

impl Directory {
    /// Newest first; `before` pages backwards (an entry id from the previous page).
    pub async fn list_audit(
        &self,
        actor: &Actor,
        org: Option<&str>,
        limit: i64,
        before: Option<i64>,
    ) -> Result<Vec<AuditView>> {
        if !(1..=1000).contains(&limit) {
            return Err(Error::invalid("limit", "between 1 and 1000"));
        }
        let mut tx = self.store.begin().await?;
        let mut filter = AuditFilter {
            limit,
            before_id: before,
            ..Default::default()
        };
        match org {
            Some(name) => {
                let o = self.load_org(&mut *tx, name).await?;
                self.require_org_admin(&mut *tx, actor, &o, "read its activity log")
                    .await?;
                filter.org_id = Some(o.id);
            }
            None if actor.is_operator() => {}
            // Everyone else: their own activity.
            None => filter.actor = Some(actor.audit_name()),
        }
        let mut entries = tx.audit_list(&filter).await?;
        // An account's own view leaves out its refused attempts on organizations it is not a
        // member of: whether such an entry exists (the object existed) and which organization
        // it names would answer what the refusal did not (M1). That organization's
        // administrators see the attempt in its log.
        if filter.actor.is_some() {
            let mine: Vec<i64> = match actor {
                Actor::User { id, .. } => tx
                    .memberships_of_user(*id)
                    .await?
                    .iter()
                    .map(|m| m.org_id)
                    .collect(),
                _ => Vec::new(),
            };
            entries.retain(|e| {
                !(e.action.ends_with(".refused") && e.org_id.is_some_and(|o| !mine.contains(&o)))
            });
        }
        let mut names: HashMap<i64, String> = HashMap::new();
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let org = match e.org_id {
                Some(id) => {
                    if let std::collections::hash_map::Entry::Vacant(slot) = names.entry(id) {
                        slot.insert(tx.org_by_id(id).await?.map(|o| o.name).unwrap_or_default());
                    }
                    names.get(&id).cloned()
                }
                None => None,
            };
            out.push(AuditView {
                id: e.id,
                at: rfc3339(e.at),
                actor: e.actor,
                org,
                action: e.action,
                target: e.target,
                detail: serde_json::from_str(&e.detail).unwrap_or(serde_json::Value::Null),
            });
        }
        Ok(out)
    }
}
