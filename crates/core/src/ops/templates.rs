//! Templates of a mail service (M8): delivery defaults — spam filter, promotions sorting,
//! signature, an autoresponder — that a hosting customer sets once and applies to new
//! addresses (the service's default template, inside the transaction that creates the
//! address, so an address never exists without them) or to existing ones in bulk.
//!
//! Who may: managers of the mail service (Need::Manage) for everything here.

use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use postfach_store::{Address, MailService, Tx};

use crate::access::Need;
use crate::error::{Error, Result};
use crate::mail::settings::{
    self, AddressFilters, Autoreplies, MAX_SIGNATURE, MAX_TEMPLATES, Scope, Signature, Template,
    Templates,
};
use crate::ops::filters::{checked_autoreply, upsert_autoreply};
use crate::{Actor, Directory, validate};

/// What applying a template did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TemplateApplied {
    pub template: String,
    /// The addresses it was applied to.
    pub applied: Vec<String>,
}

/// A template's fields checked and normalised.
fn checked_template(t: &Template) -> Result<Template> {
    let mut t = t.clone();
    t.name = t.name.trim().to_string();
    if t.name.is_empty() || t.name.chars().count() > 100 || t.name.chars().any(char::is_control) {
        return Err(Error::invalid("name", "use 1 to 100 characters"));
    }
    if let Some(sig) = &t.signature {
        if sig.len() > MAX_SIGNATURE {
            return Err(Error::invalid(
                "signature",
                format!("at most {MAX_SIGNATURE} bytes"),
            ));
        }
        t.signature = Some(sig.replace("\r\n", "\n"));
    }
    if let Some(a) = &t.autoreply {
        if a.from.as_deref().is_some_and(|f| !f.trim().is_empty()) {
            return Err(Error::invalid(
                "autoreply.from",
                "a template cannot name an alternate sender: each address has its own aliases",
            ));
        }
        t.autoreply = Some(checked_autoreply(a)?);
    }
    if t.spam.is_none() && t.promotions.is_none() && t.signature.is_none() && t.autoreply.is_none()
    {
        return Err(Error::invalid(
            "template",
            "set at least one of spam, promotions, signature or autoreply",
        ));
    }
    Ok(t)
}

impl Directory {
    async fn template_service(
        &self,
        tx: &mut dyn Tx,
        actor: &Actor,
        domain: &str,
        write: bool,
    ) -> Result<MailService> {
        let svc = self.load_service(tx, domain).await?;
        let need = if write { Need::Manage } else { Need::Use };
        self.require_service(tx, actor, &svc, need, "manage its templates")
            .await?;
        Ok(svc)
    }

    pub async fn template_list(&self, actor: &Actor, domain: &str) -> Result<Vec<Template>> {
        let mut tx = self.store.begin().await?;
        let svc = self
            .template_service(&mut *tx, actor, domain, false)
            .await?;
        let doc: Templates = settings::load(&mut *tx, Scope::Service(svc.id)).await?;
        Ok(doc.list)
    }

    /// Saves a template (same name: replaced). A default template makes any other
    /// non-default: one applies to new addresses.
    pub async fn template_put(
        &self,
        actor: &Actor,
        domain: &str,
        template: &Template,
    ) -> Result<Template> {
        let t = checked_template(template)?;
        let mut tx = self.store.begin_write().await?;
        let svc = self.template_service(&mut *tx, actor, domain, true).await?;
        let mut doc: Templates = settings::load(&mut *tx, Scope::Service(svc.id)).await?;
        match doc.list.iter().position(|x| x.name == t.name) {
            Some(i) => doc.list[i] = t.clone(),
            None if doc.list.len() >= MAX_TEMPLATES => {
                return Err(Error::Conflict(format!(
                    "{} already has {MAX_TEMPLATES} templates; delete one first",
                    svc.domain
                )));
            }
            None => doc.list.push(t.clone()),
        }
        if t.default {
            for x in &mut doc.list {
                x.default = x.name == t.name;
            }
        }
        settings::save(&mut *tx, Scope::Service(svc.id), &doc, self.now()).await?;
        self.audit(
            &mut *tx,
            actor,
            Some(svc.org_id),
            "template.put",
            &svc.domain,
            json!({"name": t.name, "default": t.default}),
        )
        .await?;
        tx.commit().await?;
        Ok(t)
    }

    pub async fn template_delete(&self, actor: &Actor, domain: &str, name: &str) -> Result<()> {
        let mut tx = self.store.begin_write().await?;
        let svc = self.template_service(&mut *tx, actor, domain, true).await?;
        let mut doc: Templates = settings::load(&mut *tx, Scope::Service(svc.id)).await?;
        let before = doc.list.len();
        doc.list.retain(|t| t.name != name);
        if doc.list.len() == before {
            return Err(Error::not_found(
                "template",
                format!("{name} of {}", svc.domain),
            ));
        }
        settings::save(&mut *tx, Scope::Service(svc.id), &doc, self.now()).await?;
        self.audit(
            &mut *tx,
            actor,
            Some(svc.org_id),
            "template.delete",
            &svc.domain,
            json!({"name": name}),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Applies template `name` to `addresses` of the service, or to all of its addresses.
    /// All named addresses are checked before any is changed.
    pub async fn template_apply(
        &self,
        actor: &Actor,
        domain: &str,
        name: &str,
        addresses: Option<&[String]>,
    ) -> Result<TemplateApplied> {
        let (svc, template, targets) = {
            let mut tx = self.store.begin().await?;
            let svc = self.template_service(&mut *tx, actor, domain, true).await?;
            let doc: Templates = settings::load(&mut *tx, Scope::Service(svc.id)).await?;
            let template = doc
                .get(name)
                .cloned()
                .ok_or_else(|| Error::not_found("template", format!("{name} of {}", svc.domain)))?;
            let all = tx.address_list(svc.id).await?;
            let targets: Vec<Address> = match addresses {
                None => all,
                Some(list) => {
                    let mut out = Vec::new();
                    for a in list {
                        let (local, d) = validate::address(a)?;
                        if d != svc.domain {
                            return Err(Error::invalid(
                                "address",
                                format!("{a} is not an address of {}", svc.domain),
                            ));
                        }
                        let found = all
                            .iter()
                            .find(|x| x.local_part == local)
                            .ok_or_else(|| Error::not_found("address", a.clone()))?;
                        out.push(found.clone());
                    }
                    out
                }
            };
            (svc, template, targets)
        };
        let mut applied = Vec::new();
        for a in &targets {
            let mut tx = self.store.begin_write().await?;
            self.apply_template(&mut *tx, a, &template).await?;
            tx.commit().await?;
            applied.push(format!("{}@{}", a.local_part, a.domain));
        }
        let mut tx = self.store.begin_write().await?;
        self.audit(
            &mut *tx,
            actor,
            Some(svc.org_id),
            "template.apply",
            &svc.domain,
            json!({"name": template.name, "addresses": applied.len()}),
        )
        .await?;
        tx.commit().await?;
        Ok(TemplateApplied {
            template: template.name,
            applied,
        })
    }

    /// Writes a template's settings into one address's documents (inside the caller's
    /// transaction).
    pub(crate) async fn apply_template(
        &self,
        tx: &mut dyn Tx,
        a: &Address,
        t: &Template,
    ) -> Result<()> {
        let scope = Scope::Address(a.id);
        let now = self.now();
        if t.spam.is_some() || t.promotions.is_some() {
            let mut f: AddressFilters = settings::load(tx, scope).await?;
            if let Some(s) = t.spam {
                f.spam = s;
            }
            if let Some(p) = t.promotions {
                f.promotions = p;
            }
            settings::save(tx, scope, &f, now).await?;
        }
        if let Some(text) = &t.signature {
            settings::save(tx, scope, &Signature { text: text.clone() }, now).await?;
        }
        if let Some(reply) = &t.autoreply {
            let mut doc: Autoreplies = settings::load(tx, scope).await?;
            upsert_autoreply(&mut doc, reply, &format!("{}@{}", a.local_part, a.domain))?;
            settings::save(tx, scope, &doc, now).await?;
        }
        Ok(())
    }

    /// The service's default template, applied to an address being created.
    pub(crate) async fn apply_default_template(
        &self,
        tx: &mut dyn Tx,
        svc: &MailService,
        a: &Address,
    ) -> Result<Option<String>> {
        let doc: Templates = settings::load(tx, Scope::Service(svc.id)).await?;
        match doc.default_template() {
            Some(t) => {
                self.apply_template(tx, a, t).await?;
                Ok(Some(t.name.clone()))
            }
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::settings::Autoreply;

    #[test]
    fn templates_are_checked() {
        let empty = Template {
            name: "x".into(),
            ..Default::default()
        };
        assert!(checked_template(&empty).is_err());
        let t = Template {
            name: " staff ".into(),
            spam: Some(true),
            signature: Some("Regards\r\nAcme".into()),
            ..Default::default()
        };
        let t = checked_template(&t).unwrap();
        assert_eq!(t.name, "staff");
        assert_eq!(t.signature.as_deref(), Some("Regards\nAcme"));
        let with_from = Template {
            name: "away".into(),
            autoreply: Some(Autoreply {
                name: "away".into(),
                message: "Away.".into(),
                from: Some("x@y.org".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(checked_template(&with_from).is_err());
    }
}
