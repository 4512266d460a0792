//! Authorization (M1, M9): who may do what to an organization or a mail service.
//!
//! - Operators (and the local CLI) may do everything.
//! - Legal representatives and administrators of an organization manage all its products.
//! - Collaborators and externals reach only the mail services granted to them: `use` to see,
//!   `manage` to change addresses and aliases. Offer, quota and maintenance mode stay with
//!   administrators and legal representatives (seed: "Administrator oder gesetzlicher Vertreter").
//! - Anything of another organization is reported as not found, so that a user cannot even
//!   learn which domains another tenant hosts.

use postfach_store::{MailService, Org, Tx};

use crate::error::{Error, Result};
use crate::model::{GrantLevel, Role};
use crate::rules::m1_grants_and_roles::ApiKey;
use crate::{Actor, Directory};

/// What an operation needs on a mail service, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Need {
    Use,
    Manage,
    Admin,
}

/// An actor's standing in an organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Standing {
    Operator,
    Member(Role),
    Outsider,
}

impl Directory {
    pub(crate) async fn standing(
        &self,
        tx: &mut dyn Tx,
        actor: &Actor,
        org_id: i64,
    ) -> Result<Standing> {
        // M1: an API key's scope narrows its account's standing (before anything else: a
        // scoped key of an operator is bound by it too).
        if let Actor::User { key: Some(k), .. } = actor
            && !k.reaches_org(org_id)
        {
            return Ok(Standing::Outsider);
        }
        if actor.is_operator() {
            return Ok(Standing::Operator);
        }
        let Actor::User { id, .. } = actor else {
            return Ok(Standing::Outsider);
        };
        Ok(match tx.membership_get(org_id, *id).await? {
            Some(m) => Standing::Member(Role::parse(&m.role)?),
            None => Standing::Outsider,
        })
    }

    /// Requires administrator or legal representative rights in `org` (or operator).
    pub(crate) async fn require_org_admin(
        &self,
        tx: &mut dyn Tx,
        actor: &Actor,
        org: &Org,
        what: &str,
    ) -> Result<Standing> {
        match self.standing(tx, actor, org.id).await? {
            Standing::Outsider => Err(self.deny(
                actor,
                org.id,
                &org.name,
                Error::not_found("organization", &org.name),
            )),
            Standing::Member(role) if !role.manages_everything() => Err(self.deny(
                actor,
                org.id,
                &org.name,
                Error::Forbidden(format!(
                    "only administrators and legal representatives of {} may {what}",
                    org.name
                )),
            )),
            standing => match key_of(actor).map(|k| k.may_act_on_orgs()) {
                Some(Err(e)) => Err(self.deny(actor, org.id, &org.name, e)),
                _ => Ok(standing),
            },
        }
    }

    /// Requires membership of `org` (any role) or operator.
    pub(crate) async fn require_org_member(
        &self,
        tx: &mut dyn Tx,
        actor: &Actor,
        org: &Org,
    ) -> Result<Standing> {
        match self.standing(tx, actor, org.id).await? {
            Standing::Outsider => Err(self.deny(
                actor,
                org.id,
                &org.name,
                Error::not_found("organization", &org.name),
            )),
            // A key limited to mail services does not read the organization (its domains,
            // its people).
            standing => match key_of(actor).map(|k| k.may_act_on_orgs()) {
                Some(Err(e)) => Err(self.deny(actor, org.id, &org.name, e)),
                _ => Ok(standing),
            },
        }
    }

    /// Requires `need` on the mail service; `what` completes "… may not {what}" messages.
    pub(crate) async fn require_service(
        &self,
        tx: &mut dyn Tx,
        actor: &Actor,
        svc: &MailService,
        need: Need,
        what: &str,
    ) -> Result<()> {
        let who = actor.login().unwrap_or("this account").to_string();
        if key_of(actor).is_some_and(|k| !k.reaches_service(&svc.domain)) {
            return Err(self.deny(
                actor,
                svc.org_id,
                &svc.domain,
                Error::not_found("mail service", &svc.domain),
            ));
        }
        let has = match self.standing(tx, actor, svc.org_id).await? {
            Standing::Operator => Need::Admin,
            Standing::Member(role) if role.manages_everything() => Need::Admin,
            Standing::Outsider => {
                return Err(self.deny(
                    actor,
                    svc.org_id,
                    &svc.domain,
                    Error::not_found("mail service", &svc.domain),
                ));
            }
            Standing::Member(_) => {
                let Actor::User { id, .. } = actor else {
                    unreachable!("members are users")
                };
                match tx.grant_get(*id, svc.id).await? {
                    None => {
                        return Err(self.deny(
                            actor,
                            svc.org_id,
                            &svc.domain,
                            Error::Forbidden(format!(
                                "{who} has no access to mail service {}: an administrator of {} must grant it first",
                                svc.domain, svc.org_name
                            )),
                        ));
                    }
                    Some(level) => match GrantLevel::parse(&level)? {
                        GrantLevel::Use => Need::Use,
                        GrantLevel::Manage => Need::Manage,
                    },
                }
            }
        };
        if has >= need {
            return Ok(());
        }
        let e = Error::Forbidden(match has {
            Need::Use => format!(
                "{who} may use mail service {} but not manage it (needed to {what})",
                svc.domain
            ),
            _ => format!(
                "only administrators and legal representatives of {} may {what}",
                svc.org_name
            ),
        });
        Err(self.deny(actor, svc.org_id, &svc.domain, e))
    }

    /// A refusal of `actor` on something of organization `org_id`: logged for both (M12),
    /// then returned.
    fn deny(&self, actor: &Actor, org_id: i64, target: &str, e: Error) -> Error {
        self.refused_later(actor, Some(org_id), "permission", target, &e);
        e
    }

    /// The mail services an actor can see: all for operators, all of the organizations they
    /// administer, and those granted to them elsewhere.
    pub(crate) async fn visible_services(
        &self,
        tx: &mut dyn Tx,
        actor: &Actor,
        org_id: Option<i64>,
    ) -> Result<Vec<MailService>> {
        let mut all = tx.service_list(org_id).await?;
        if let Some(k) = key_of(actor) {
            all.retain(|s| k.reaches_org(s.org_id) && k.reaches_service(&s.domain));
        }
        if actor.is_operator() {
            return Ok(all);
        }
        let Actor::User { id, .. } = actor else {
            return Ok(Vec::new());
        };
        let memberships = tx.memberships_of_user(*id).await?;
        let grants = tx.grants_of_user(*id).await?;
        Ok(all
            .into_iter()
            .filter(|s| {
                memberships.iter().any(|m| {
                    m.org_id == s.org_id
                        && (Role::parse(&m.role).is_ok_and(Role::manages_everything)
                            || grants.iter().any(|g| g.service_id == s.id))
                })
            })
            .collect())
    }
}

/// The API key an actor authenticated with.
pub(crate) fn key_of(actor: &Actor) -> Option<&ApiKey> {
    match actor {
        Actor::User { key: Some(k), .. } => Some(k),
        _ => None,
    }
}

impl Directory {
    /// M1: whether `actor` may make a change at all (a read-only API key may not). Front ends
    /// ask before anything that changes (the API: every method but GET and HEAD).
    pub fn may_change(&self, actor: &Actor) -> Result<()> {
        match key_of(actor) {
            Some(k) => k.may_change(),
            None => Ok(()),
        }
    }
}
