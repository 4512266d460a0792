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
    fn invitations_expire() {
        assert!(invitation_open(100, 99).is_ok());
        assert!(invitation_open(100, 100).is_err());
    }
}
