//! Mail services (M2, M9): a product of an organization bound to one domain, with a display
//! name, tags, an offer and an address quota. Changing the offer changes quota and limits.

use postfach_store::{MailService, NewService, Tx};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use crate::access::Need;
use crate::error::{Error, Result};
use crate::model::{ServiceView, rfc3339};
use crate::policy::Offer;
use crate::rules::m2_domain_ownership as m2;
use crate::validate::CATCHALL;
use crate::{Actor, Directory, validate};

#[derive(Debug, Clone)]
pub struct NewServiceRequest {
    pub org: String,
    pub domain: String,
    pub offer: String,
    /// Address quota; default: the offer's minimum.
    pub quota: Option<i64>,
    /// Display name; default: the domain.
    pub name: Option<String>,
    pub tags: Vec<String>,
}

/// Changes to a mail service; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceChanges {
    /// New display name (any member with `manage`).
    pub name: Option<String>,
    /// Replaces the tags (any member with `manage`).
    pub tags: Option<Vec<String>>,
    /// New offer (administrators); the quota follows it unless `quota` is given.
    pub offer: Option<String>,
    /// New address quota (administrators), within the offer's range.
    pub quota: Option<i64>,
    /// M9 maintenance mode (administrators and legal representatives only).
    pub maintenance: Option<bool>,
    /// Operator only: new addresses allowed per 24 h for this service; 0 restores the
    /// platform default (the seed: "contact support to lift this restriction").
    pub new_address_limit: Option<i64>,
}

fn check_quota(offer_name: &str, offer: &Offer, quota: i64) -> Result<()> {
    let ok = quota >= offer.min_addresses && offer.max_addresses.is_none_or(|max| quota <= max);
    if ok {
        return Ok(());
    }
    let range = match offer.max_addresses {
        Some(max) if max == offer.min_addresses => format!("exactly {max}"),
        Some(max) => format!("{} to {max}", offer.min_addresses),
        None => format!("{} or more", offer.min_addresses),
    };
    Err(Error::invalid(
        "quota",
        format!("the {offer_name} offer allows {range} addresses, not {quota}"),
    ))
}

impl Directory {
    pub(crate) async fn service_view(
        &self,
        tx: &mut dyn Tx,
        s: &MailService,
    ) -> Result<ServiceView> {
        let offer = self.policy.offers.get(&s.offer);
        Ok(ServiceView {
            domain: s.domain.clone(),
            name: s.name.clone(),
            org: s.org_name.clone(),
            tags: split_tags(&s.tags),
            offer: s.offer.clone(),
            address_quota: s.address_quota,
            addresses_used: tx.address_count(s.id).await?,
            daily_send_limit: offer.map_or(0, |o| o.daily_send_limit),
            catchall_allowed: offer.is_some_and(|o| o.catchall),
            new_address_limit: self.new_address_limit(s),
            maintenance: s.maintenance,
            created_at: rfc3339(s.created_at),
        })
    }

    /// Creates a mail service for a domain of the organization (administrators).
    pub async fn create_service(
        &self,
        actor: &Actor,
        req: &NewServiceRequest,
    ) -> Result<ServiceView> {
        let domain = validate::domain(&req.domain)?;
        let offer = self.offer(&req.offer)?;
        let quota = req.quota.unwrap_or(offer.min_addresses);
        check_quota(&req.offer, offer, quota)?;
        let name = match &req.name {
            Some(n) => validate::label(n)?,
            None => domain.clone(),
        };
        let tags = validate::tags(&req.tags)?.join(",");
        // O2: the domain's DKIM keys come with its mail service (slow: before the transaction).
        let dkim = self.new_dkim_keys().await?;

        let mut tx = self.store.begin_write().await?;
        let o = self.load_org(&mut *tx, &req.org).await?;
        self.require_org_admin(&mut *tx, actor, &o, "create mail services")
            .await?;
        let d = match tx.domain_by_name(&domain).await? {
            Some(d) if d.org_id == o.id => d,
            _ => {
                return Err(Error::NotFound {
                    kind: "domain",
                    name: format!(
                        "{domain} in organization {} (add it with `domain add`)",
                        o.name
                    ),
                });
            }
        };
        // M2: a pending domain serves no mail.
        m2::may_serve_mail(&d.name, d.verified_at.is_some())?;
        if tx.service_by_domain(&domain).await?.is_some() {
            return Err(Error::duplicate("mail service", domain));
        }
        let s = tx
            .service_insert(
                &NewService {
                    org_id: o.id,
                    domain_id: d.id,
                    name,
                    tags,
                    offer: req.offer.clone(),
                    address_quota: quota,
                },
                self.now(),
            )
            .await?;
        if tx.dkim_keys(d.id).await?.is_empty() {
            self.store_dkim_keys(&mut *tx, d.id, &dkim).await?;
        }
        self.audit(
            &mut *tx,
            actor,
            Some(o.id),
            "service.create",
            &domain,
            json!({"offer": s.offer, "quota": quota, "name": s.name}),
        )
        .await?;
        let view = self.service_view(&mut *tx, &s).await?;
        tx.commit().await?;
        Ok(view)
    }

    pub async fn update_service(
        &self,
        actor: &Actor,
        domain: &str,
        ch: &ServiceChanges,
    ) -> Result<ServiceView> {
        let mut tx = self.store.begin_write().await?;
        let mut s = self.load_service(&mut *tx, domain).await?;
        let need = if ch.offer.is_some() || ch.quota.is_some() || ch.maintenance.is_some() {
            Need::Admin
        } else {
            Need::Manage
        };
        let what = if ch.maintenance.is_some() {
            "switch maintenance mode"
        } else if need == Need::Admin {
            "change the offer or quota"
        } else {
            "rename or tag the mail service"
        };
        self.require_service(&mut *tx, actor, &s, need, what)
            .await?;
        if ch.new_address_limit.is_some() && !actor.is_operator() {
            return Err(Error::Forbidden(
                "only platform operators may change the new-address limit".into(),
            ));
        }
        tx.lock_service(s.id).await?;
        let before = s.clone();
        let mut changed = Map::new();

        if let Some(n) = &ch.name {
            s.name = validate::label(n)?;
            changed.insert("name".into(), json!(s.name));
        }
        if let Some(t) = &ch.tags {
            s.tags = validate::tags(t)?.join(",");
            changed.insert("tags".into(), json!(split_tags(&s.tags)));
        }
        if ch.offer.is_some() || ch.quota.is_some() {
            let offer_name = ch.offer.clone().unwrap_or_else(|| s.offer.clone());
            let offer = self.offer(&offer_name)?;
            let quota = ch.quota.unwrap_or_else(|| {
                let q = s.address_quota.max(offer.min_addresses);
                offer.max_addresses.map_or(q, |max| q.min(max))
            });
            check_quota(&offer_name, offer, quota)?;
            let used = tx.address_count(s.id).await?;
            if used > quota {
                return Err(Error::Conflict(format!(
                    "mail service {} has {used} addresses, more than the new quota of {quota}; delete addresses first",
                    s.domain
                )));
            }
            if !offer.catchall && tx.address_get(s.id, CATCHALL).await?.is_some() {
                return Err(Error::Conflict(format!(
                    "mail service {} has a catchall address, which the {offer_name} offer does not allow; delete it first",
                    s.domain
                )));
            }
            s.offer = offer_name;
            s.address_quota = quota;
            changed.insert("offer".into(), json!(s.offer));
            changed.insert("quota".into(), json!(quota));
        }
        if let Some(m) = ch.maintenance {
            s.maintenance = m;
            changed.insert("maintenance".into(), json!(m));
        }
        if let Some(limit) = ch.new_address_limit {
            if limit < 0 {
                return Err(Error::invalid("new address limit", "must not be negative"));
            }
            s.new_address_limit = (limit > 0).then_some(limit);
            changed.insert("new_address_limit".into(), json!(s.new_address_limit));
        }
        if s != before {
            tx.service_update(&s).await?;
            self.audit(
                &mut *tx,
                actor,
                Some(s.org_id),
                "service.update",
                &s.domain,
                Value::Object(changed),
            )
            .await?;
        }
        let view = self.service_view(&mut *tx, &s).await?;
        tx.commit().await?;
        if s.maintenance != before.maintenance {
            self.maintenance_changed();
        }
        Ok(view)
    }

    pub async fn get_service(&self, actor: &Actor, domain: &str) -> Result<ServiceView> {
        let mut tx = self.store.begin().await?;
        let s = self.load_service(&mut *tx, domain).await?;
        self.require_service(&mut *tx, actor, &s, Need::Use, "see it")
            .await?;
        self.service_view(&mut *tx, &s).await
    }

    /// The mail services the actor can see, optionally of one organization.
    pub async fn list_services(
        &self,
        actor: &Actor,
        org: Option<&str>,
    ) -> Result<Vec<ServiceView>> {
        let mut tx = self.store.begin().await?;
        let org_id = match org {
            Some(name) => {
                let o = self.load_org(&mut *tx, name).await?;
                self.require_org_member(&mut *tx, actor, &o).await?;
                Some(o.id)
            }
            None => None,
        };
        let services = self.visible_services(&mut *tx, actor, org_id).await?;
        let mut out = Vec::with_capacity(services.len());
        for s in &services {
            out.push(self.service_view(&mut *tx, s).await?);
        }
        Ok(out)
    }
}

fn split_tags(tags: &str) -> Vec<String> {
    tags.split(',')
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect()
}
