//! The operations of the service layer, one file per resource. Each public method takes the
//! acting [`crate::Actor`], validates input, checks authorization, applies the rule and writes
//! the audit entry, all inside one store transaction.

pub mod addresses;
pub mod audit;
pub mod domains;
pub mod filters;
pub mod import;
pub mod invitations;
pub mod orgs;
pub mod reports;
pub mod services;
pub mod templates;
pub mod tokens;
pub mod users;

use postfach_store::{Address, MailService, Org, Tx};

use crate::error::{Error, Result};
use crate::policy::Offer;
use crate::{Directory, validate};

impl Directory {
    pub(crate) async fn load_org(&self, tx: &mut dyn Tx, name: &str) -> Result<Org> {
        let name = validate::org_name(name)?;
        tx.org_by_name(&name)
            .await?
            .ok_or_else(|| Error::not_found("organization", name))
    }

    /// The mail service of `domain` (any spelling: IDNA and case are normalised).
    pub(crate) async fn load_service(&self, tx: &mut dyn Tx, domain: &str) -> Result<MailService> {
        let domain = validate::domain(domain)?;
        tx.service_by_domain(&domain)
            .await?
            .ok_or_else(|| Error::not_found("mail service", domain))
    }

    /// The service and address of `local@domain`.
    pub(crate) async fn load_address(
        &self,
        tx: &mut dyn Tx,
        address: &str,
    ) -> Result<(MailService, Address)> {
        let (local, domain) = validate::address(address)?;
        let svc = self.load_service(tx, &domain).await?;
        let a = tx
            .address_get(svc.id, &local)
            .await?
            .ok_or_else(|| Error::not_found("address", format!("{local}@{domain}")))?;
        Ok((svc, a))
    }

    pub(crate) fn offer(&self, name: &str) -> Result<&Offer> {
        self.policy.offers.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.policy.offers.keys().map(String::as_str).collect();
            Error::invalid(
                "offer",
                format!(
                    "{name:?} is not an offer of this platform (offers: {})",
                    known.join(", ")
                ),
            )
        })
    }

    /// M6: new addresses allowed per rolling 24 h for this service.
    pub(crate) fn new_address_limit(&self, svc: &MailService) -> i64 {
        svc.new_address_limit
            .unwrap_or(self.policy.limits.new_addresses_per_day)
    }
}
