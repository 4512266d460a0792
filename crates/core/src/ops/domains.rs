//! Domains of an organization. A mail service is bound to one of them (M2).

use postfach_store::{Domain, Tx};
use serde_json::json;

use crate::error::{Error, Result};
use crate::model::{DomainView, rfc3339};
use crate::{Actor, Directory, validate};

impl Directory {
    async fn domain_view(&self, tx: &mut dyn Tx, d: &Domain) -> Result<DomainView> {
        let org = tx
            .org_by_id(d.org_id)
            .await?
            .map(|o| o.name)
            .unwrap_or_default();
        let mail_service = tx.service_by_domain(&d.name).await?.map(|s| s.domain);
        Ok(DomainView {
            name: d.name.clone(),
            unicode: idna::domain_to_unicode(&d.name).0,
            org,
            mail_service,
            created_at: rfc3339(d.created_at),
        })
    }

    /// Adds a domain to an organization (administrators and legal representatives).
    pub async fn add_domain(&self, actor: &Actor, org: &str, domain: &str) -> Result<DomainView> {
        let name = validate::domain(domain)?;
        let mut tx = self.store.begin_write().await?;
        let o = self.load_org(&mut *tx, org).await?;
        self.require_org_admin(&mut *tx, actor, &o, "add domains")
            .await?;
        if let Some(existing) = tx.domain_by_name(&name).await? {
            // Do not reveal which organization holds it.
            let _ = existing;
            return Err(Error::duplicate("domain", name));
        }
        let d = tx.domain_insert(o.id, &name, self.now()).await?;
        self.audit(
            &mut *tx,
            actor,
            Some(o.id),
            "domain.create",
            &name,
            json!({"org": o.name}),
        )
        .await?;
        let view = self.domain_view(&mut *tx, &d).await?;
        tx.commit().await?;
        Ok(view)
    }

    /// Domains of one organization, or of every organization the actor belongs to.
    pub async fn list_domains(&self, actor: &Actor, org: Option<&str>) -> Result<Vec<DomainView>> {
        let mut tx = self.store.begin().await?;
        let domains = match org {
            Some(name) => {
                let o = self.load_org(&mut *tx, name).await?;
                self.require_org_member(&mut *tx, actor, &o).await?;
                tx.domain_list(Some(o.id)).await?
            }
            None if actor.is_operator() => tx.domain_list(None).await?,
            None => {
                let Actor::User { id, .. } = actor else {
                    return Ok(Vec::new());
                };
                let mine = tx.memberships_of_user(*id).await?;
                let mut all = Vec::new();
                for m in mine {
                    all.extend(tx.domain_list(Some(m.org_id)).await?);
                }
                all.sort_by(|a, b| a.name.cmp(&b.name));
                all
            }
        };
        let mut out = Vec::new();
        for d in &domains {
            out.push(self.domain_view(&mut *tx, d).await?);
        }
        Ok(out)
    }
}
