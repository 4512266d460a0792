//! Domains of an organization. A mail service is bound to one of them (M2); whether the
//! organization may have a domain, and when it is verified, is decided in
//! `rules::m2_domain_ownership`.

use std::sync::Arc;

use postfach_store::{Domain, Tx};
use serde_json::json;

use crate::access::Standing;
use crate::error::{Error, Result};
use crate::mail::DnsRecord;
use crate::model::{DomainStatus, DomainView, rfc3339};
use crate::rules::m2_domain_ownership::{self as m2, Claim, Held};
use crate::{Actor, Directory, secret, validate};

/// What the domain check (M2) asks DNS. The binary gives the service layer one that uses the
/// configured resolvers; without one, only the operator can verify a domain.
#[async_trait::async_trait]
pub trait DomainDns: Send + Sync {
    /// The TXT records of `name`, each one's strings joined; empty when there are none.
    async fn txt(&self, name: &str) -> std::result::Result<Vec<String>, String>;
}

/// The names `name` lies below: `b.c.test` and `c.test` for `a.b.c.test` (a top-level name
/// is nobody's domain).
fn parents(name: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = name;
    while let Some((_, parent)) = rest.split_once('.') {
        if !parent.contains('.') {
            break;
        }
        out.push(parent);
        rest = parent;
    }
    out
}

/// The domains, of any organization, that `name` lies below.
async fn held_above(tx: &mut dyn Tx, name: &str) -> Result<Vec<Domain>> {
    let mut above = Vec::new();
    for parent in parents(name) {
        if let Some(d) = tx.domain_by_name(parent).await? {
            above.push(d);
        }
    }
    Ok(above)
}

fn held(d: &Domain) -> Held<'_> {
    Held {
        name: &d.name,
        org_id: d.org_id,
        verified: d.verified_at.is_some(),
        created_at: d.created_at,
    }
}

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
            status: if d.verified_at.is_some() {
                DomainStatus::Verified
            } else {
                DomainStatus::Pending
            },
            verified_at: d.verified_at.map(rfc3339),
            verification: d.verified_at.is_none().then(|| DnsRecord {
                name: d.name.clone(),
                rtype: "TXT".into(),
                value: m2::txt_record(&d.verify_token),
                purpose: format!(
                    "M2: proves that the organization controls the domain; then run \
                     `postfach domain verify {}`",
                    d.name
                ),
            }),
        })
    }

    /// Adds a domain to an organization (administrators and legal representatives): verified
    /// at once when the platform operator adds it, else pending until proved (M2).
    pub async fn add_domain(&self, actor: &Actor, org: &str, domain: &str) -> Result<DomainView> {
        let name = validate::domain(domain)?;
        let mut tx = self.store.begin_write().await?;
        let o = self.load_org(&mut *tx, org).await?;
        self.require_org_admin(&mut *tx, actor, &o, "add domains")
            .await?;
        if !actor.is_operator()
            && let Err(e) = m2::reserved_for_platform(&name, &self.policy.platform.hostname)
        {
            drop(tx);
            self.refused(actor, Some(o.id), "domain.create", &name, &e)
                .await;
            return Err(e);
        }
        let existing = tx.domain_by_name(&name).await?;
        let above = held_above(&mut *tx, &name).await?;
        let now = self.now();
        let held_above: Vec<Held<'_>> = above.iter().map(held).collect();
        let claim = m2::claim(
            &name,
            o.id,
            actor.is_operator(),
            existing.as_ref().map(|d| (d.id, held(d))),
            &held_above,
            now,
        );
        let claim = match claim {
            Ok(c) => c,
            Err(e) => {
                drop(tx);
                self.refused(actor, Some(o.id), "domain.create", &name, &e)
                    .await;
                return Err(e);
            }
        };
        let verified = match claim {
            Claim::Verified => true,
            Claim::Pending => false,
            Claim::ReplacesLapsed { id, verified } => {
                tx.domain_delete(id).await?;
                verified
            }
        };
        let token = secret::random_hex(16);
        let d = tx
            .domain_insert(o.id, &name, now, verified.then_some(now), &token)
            .await?;
        self.audit(
            &mut *tx,
            actor,
            Some(o.id),
            "domain.create",
            &name,
            json!({"org": o.name, "verified": verified}),
        )
        .await?;
        let view = self.domain_view(&mut *tx, &d).await?;
        tx.commit().await?;
        Ok(view)
    }

    /// Checks a pending domain again (M2): its TXT record `postfach-verify=<token>` verifies it
    /// (the parent rule is asked again as the domains are now). `force`: the operator's word.
    pub async fn verify_domain(
        &self,
        actor: &Actor,
        domain: &str,
        force: bool,
    ) -> Result<DomainView> {
        let name = validate::domain(domain)?;
        let d = {
            let mut tx = self.store.begin().await?;
            let d = tx
                .domain_by_name(&name)
                .await?
                .ok_or_else(|| Error::not_found("domain", &name))?;
            let o = tx
                .org_by_id(d.org_id)
                .await?
                .ok_or_else(|| Error::not_found("domain", &name))?;
            self.require_org_admin(&mut *tx, actor, &o, "verify domains")
                .await?;
            if force {
                actor.require_operator("verify a domain without proof")?;
            }
            if d.verified_at.is_some() {
                return self.domain_view(&mut *tx, &d).await;
            }
            d
        };
        let proof = if force {
            "operator"
        } else {
            let dns = self.domain_dns.as_ref().ok_or_else(|| {
                Error::Unavailable("no resolver is configured to check domains".into())
            })?;
            let txt = dns.txt(&name).await;
            let found = m2::proof(&d.verify_token, txt.as_deref().unwrap_or_default());
            match found {
                Some(p) => p.as_str(),
                None => {
                    let mut why = format!(
                        "{name} is not verified: no TXT record \"{}\" was found at {name}",
                        m2::txt_record(&d.verify_token),
                    );
                    if let Err(e) = &txt {
                        why.push_str(&format!(" (DNS: {e}; try again later)"));
                    }
                    let e = Error::Conflict(why);
                    self.refused(actor, Some(d.org_id), "domain.verify", &name, &e)
                        .await;
                    return Err(e);
                }
            }
        };
        let mut tx = self.store.begin_write().await?;
        // As it is now: verified meanwhile, or replaced by another organization's claim.
        let d = match tx.domain_by_name(&name).await? {
            Some(now_d) if now_d.id == d.id => now_d,
            _ => return Err(Error::not_found("domain", &name)),
        };
        // The parent rule again, as the domains are now: a name below a domain another
        // organization verified meanwhile is theirs, whatever this claim's TXT record says.
        let above = held_above(&mut *tx, &name).await?;
        if let Some(other) = above
            .iter()
            .find(|p| p.org_id != d.org_id && p.verified_at.is_some())
            && !actor.is_operator()
        {
            let e = Error::Forbidden(format!(
                "{name} lies within {}, which another organization holds",
                other.name
            ));
            drop(tx);
            self.refused(actor, Some(d.org_id), "domain.verify", &name, &e)
                .await;
            return Err(e);
        }
        if d.verified_at.is_none() {
            tx.domain_set_verified(d.id, self.now()).await?;
            self.audit(
                &mut *tx,
                actor,
                Some(d.org_id),
                "domain.verify",
                &name,
                json!({"proof": proof}),
            )
            .await?;
        }
        let d = tx
            .domain_by_name(&name)
            .await?
            .ok_or_else(|| Error::not_found("domain", &name))?;
        let view = self.domain_view(&mut *tx, &d).await?;
        tx.commit().await?;
        Ok(view)
    }

    /// Gives the service layer its resolver for the domain check (M2).
    pub fn with_domain_dns(mut self, dns: Arc<dyn DomainDns>) -> Self {
        self.domain_dns = Some(dns);
        self
    }

    /// Domains of one organization, or of every organization the actor belongs to.
    pub async fn list_domains(&self, actor: &Actor, org: Option<&str>) -> Result<Vec<DomainView>> {
        let mut tx = self.store.begin().await?;
        let orgs = match org {
            Some(name) => {
                let o = self.load_org(&mut *tx, name).await?;
                self.require_org_member(&mut *tx, actor, &o).await?;
                vec![o.id]
            }
            None if actor.is_operator() => {
                let all = tx.domain_list(None).await?;
                return self.domain_views(&mut *tx, &all).await;
            }
            None => {
                let Actor::User { id, .. } = actor else {
                    return Ok(Vec::new());
                };
                let mine = tx.memberships_of_user(*id).await?;
                mine.iter().map(|m| m.org_id).collect()
            }
        };
        let mut domains = Vec::new();
        for org_id in orgs {
            let all = tx.domain_list(Some(org_id)).await?;
            match self.standing(&mut *tx, actor, org_id).await? {
                Standing::Operator => domains.extend(all),
                Standing::Member(role) if role.manages_everything() => domains.extend(all),
                // M1: collaborators and externals see the domains of the mail services
                // granted to them, not every domain of the organization.
                _ => {
                    let granted: Vec<String> = self
                        .visible_services(&mut *tx, actor, Some(org_id))
                        .await?
                        .into_iter()
                        .map(|s| s.domain)
                        .collect();
                    domains.extend(all.into_iter().filter(|d| granted.contains(&d.name)));
                }
            }
        }
        domains.sort_by(|a, b| a.name.cmp(&b.name));
        self.domain_views(&mut *tx, &domains).await
    }

    async fn domain_views(&self, tx: &mut dyn Tx, domains: &[Domain]) -> Result<Vec<DomainView>> {
        let mut out = Vec::new();
        for d in domains {
            out.push(self.domain_view(&mut *tx, d).await?);
        }
        Ok(out)
    }
}
