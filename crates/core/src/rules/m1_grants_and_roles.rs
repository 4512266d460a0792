//! M1: roles in an organization and how an account comes to hold one.
//!
//! - Legal representatives and administrators manage everything of the organization;
//!   collaborators and externals reach only the mail services granted to them (`use` to
//!   see, `manage` to change) and see nothing else of the organization — not its other
//!   domains, not its people.
//! - Only a legal representative appoints (or removes) legal representatives.
//! - An account joins an organization only by accepting an invitation: an administrator
//!   cannot put somebody else's account into an organization (and then watch its last
//!   login), and no answer tells the administrator whether the login already had an account.
//!   The platform operator, trusted, adds accounts directly.

use crate::error::Error;
use crate::model::Role;

/// Days an invitation stays valid.
pub const INVITATION_DAYS: i64 = 7;

/// Whether a member with role `appointer` (`None`: the platform operator) may give `role`.
pub fn may_appoint(appointer: Option<Role>, role: Role, org: &str) -> Result<(), Error> {
    match (appointer, role) {
        (Some(r), Role::Legal) if r != Role::Legal => Err(Error::Forbidden(format!(
            "only a legal representative of {org} may appoint or remove legal representatives"
        ))),
        _ => Ok(()),
    }
}

/// Whether a member with `role` sees and manages every product and member of the
/// organization (else only what was granted).
pub fn sees_everything(role: Role) -> bool {
    role.manages_everything()
}

/// Whether an invitation can still be accepted at `now`.
pub fn invitation_open(expires_at: i64, now: i64) -> Result<(), Error> {
    if now < expires_at {
        return Ok(());
    }
    Err(Error::Conflict(
        "the invitation has expired; ask the organization's administrator for a new one".into(),
    ))
}

/// What an API key may reach, on top of its account's rights (which it never exceeds): one
/// organization, some of its mail services, and reading only. A key without a scope acts
/// with all of its account's rights; a session always does.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(deny_unknown_fields)]
pub struct KeyScope {
    /// Only this organization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// Only these mail services (domains); empty: all the account reaches. A key limited to
    /// mail services cannot act on organizations (members, domains, invitations).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
    /// Reading only: no change of any kind.
    #[serde(default)]
    pub read_only: bool,
}

/// The key an actor authenticated with, as the rules and the activity log see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: i64,
    pub name: String,
    pub scope: KeyScope,
    /// The id of `scope.org`, resolved when the key was used (`None`: any organization).
    pub org_id: Option<i64>,
}

impl ApiKey {
    fn limited(&self) -> Error {
        Error::Forbidden(format!(
            "the API key \"{}\" does not reach this (its scope: {})",
            self.name,
            self.scope.describe()
        ))
    }

    /// Whether the key reaches organization `org_id` at all.
    pub fn reaches_org(&self, org_id: i64) -> bool {
        self.org_id.is_none_or(|o| o == org_id)
    }

    /// Whether the key reaches the mail service of `domain`.
    pub fn reaches_service(&self, domain: &str) -> bool {
        self.scope.services.is_empty() || self.scope.services.iter().any(|s| s == domain)
    }

    /// Organization-wide acts (members, domains, invitations) need a key that is not limited
    /// to some mail services.
    pub fn may_act_on_orgs(&self) -> Result<(), Error> {
        if self.scope.services.is_empty() {
            Ok(())
        } else {
            Err(self.limited())
        }
    }

    /// A change needs a key that is not read-only.
    pub fn may_change(&self) -> Result<(), Error> {
        if self.scope.read_only {
            Err(Error::Forbidden(format!(
                "the API key \"{}\" is read-only",
                self.name
            )))
        } else {
            Ok(())
        }
    }

    /// API keys do not make API keys (nor change the account's password): a key that leaked
    /// cannot make itself a wider one.
    pub fn may_manage_credentials(&self) -> Result<(), Error> {
        Err(Error::Forbidden(format!(
            "the API key \"{}\" cannot manage credentials; log in with the account's password",
            self.name
        )))
    }
}

impl KeyScope {
    pub fn is_unlimited(&self) -> bool {
        *self == KeyScope::default()
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(o) = &self.org {
            parts.push(format!("organization {o}"));
        }
        if !self.services.is_empty() {
            parts.push(format!("mail services {}", self.services.join(", ")));
        }
        if self.read_only {
            parts.push("read-only".into());
        }
        if parts.is_empty() {
            "the account's rights".into()
        } else {
            parts.join(", ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_legal_representatives_appoint_legal_representatives() {
        assert!(may_appoint(Some(Role::Admin), Role::Legal, "Acme").is_err());
        assert!(may_appoint(Some(Role::Admin), Role::Collaborator, "Acme").is_ok());
        assert!(may_appoint(Some(Role::Legal), Role::Legal, "Acme").is_ok());
        assert!(may_appoint(None, Role::Legal, "Acme").is_ok());
    }

    #[test]
    fn key_scopes_narrow_and_never_widen() {
        let key = |scope: KeyScope, org_id| ApiKey {
            id: 1,
            name: "ci".into(),
            scope,
            org_id,
        };
        let all = key(KeyScope::default(), None);
        assert!(all.reaches_org(7) && all.reaches_service("a.test"));
        assert!(all.may_act_on_orgs().is_ok() && all.may_change().is_ok());
        assert!(all.may_manage_credentials().is_err());
        let narrow = key(
            KeyScope {
                org: Some("Acme".into()),
                services: vec!["a.test".into()],
                read_only: true,
            },
            Some(7),
        );
        assert!(narrow.reaches_org(7) && !narrow.reaches_org(8));
        assert!(narrow.reaches_service("a.test") && !narrow.reaches_service("b.test"));
        assert!(narrow.may_act_on_orgs().is_err() && narrow.may_change().is_err());
    }

    #[test]
    fn invitations_expire() {
        assert!(invitation_open(100, 99).is_ok());
        assert!(invitation_open(100, 100).is_err());
    }
}
