//! Organizations (M1). Only operators create them: an organization is a customer of the
//! hosting platform.

use serde_json::json;

use crate::error::{Error, Result};
use crate::model::{OrgView, rfc3339};
use crate::{Actor, Directory, validate};

pub(crate) fn org_view(o: &postfach_store::Org) -> OrgView {
    OrgView {
        name: o.name.clone(),
        created_at: rfc3339(o.created_at),
    }
}

impl Directory {
    pub async fn create_org(&self, actor: &Actor, name: &str) -> Result<OrgView> {
        let name = validate::org_name(name)?;
        if !actor.is_operator() {
            return Err(Error::Forbidden(
                "only platform operators may create organizations".into(),
            ));
        }
        let mut tx = self.store.begin_write().await?;
        if tx.org_by_name(&name).await?.is_some() {
            return Err(Error::duplicate("organization", name));
        }
        let org = tx.org_insert(&name, self.now()).await?;
        self.audit(
            &mut *tx,
            actor,
            Some(org.id),
            "org.create",
            &name,
            json!({}),
        )
        .await?;
        tx.commit().await?;
        Ok(org_view(&org))
    }

    /// The organizations the actor belongs to (all of them for operators).
    pub async fn list_orgs(&self, actor: &Actor) -> Result<Vec<OrgView>> {
        let mut tx = self.store.begin().await?;
        let orgs = tx.org_list().await?;
        let visible = match actor {
            a if a.is_operator() => orgs,
            Actor::User { id, .. } => {
                let mine = tx.memberships_of_user(*id).await?;
                orgs.into_iter()
                    .filter(|o| mine.iter().any(|m| m.org_id == o.id))
                    .collect()
            }
            _ => Vec::new(),
        };
        // M1: a key of one organization lists that one.
        let key = crate::access::key_of(actor);
        Ok(visible
            .iter()
            .filter(|o| key.is_none_or(|k| k.reaches_org(o.id)))
            .map(org_view)
            .collect())
    }
}
