//! M6 (with M2's address quota and M5's catchall): whether a new address may be created in a
//! mail service. Asked once before a password is hashed (to fail fast) and again under the
//! service's lock in the transaction that inserts, where the answer counts.

use crate::error::Error;
use crate::validate::CATCHALL;

/// What is known about the service when an address `local`@`domain` is to be created.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub local: &'a str,
    pub domain: &'a str,
    pub offer: &'a str,
    /// M5: the offer includes a catchall address.
    pub catchall_allowed: bool,
    pub address_exists: bool,
    pub alias_exists: bool,
    /// Addresses the service holds, and how many it may hold (M2).
    pub addresses: i64,
    pub address_quota: i64,
    /// Addresses created in the last 24 hours, and the limit (M6: 50 by default).
    pub created_last_24h: i64,
    pub creation_limit: i64,
}

/// The rules in the order a user wants to hear them: the name (catchall on the offer, taken
/// by an address or alias), then the service's quota, then the 24-hour creation limit.
pub fn may_create(f: &Facts<'_>) -> Result<(), Error> {
    let email = format!("{}@{}", f.local, f.domain);
    if f.local == CATCHALL && !f.catchall_allowed {
        return Err(Error::CatchallNotAvailable {
            domain: f.domain.to_string(),
            offer: f.offer.to_string(),
        });
    }
    if f.address_exists {
        return Err(Error::duplicate("address", email));
    }
    if f.alias_exists {
        return Err(Error::Duplicate {
            kind: "alias",
            name: format!("{email} (an alias of that name exists)"),
        });
    }
    if f.addresses >= f.address_quota {
        return Err(Error::QuotaExceeded {
            domain: f.domain.to_string(),
            quota: f.address_quota,
        });
    }
    if f.created_last_24h >= f.creation_limit {
        return Err(Error::CreationLimit {
            domain: f.domain.to_string(),
            limit: f.creation_limit,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts<'static> {
        Facts {
            local: "info",
            domain: "acme.test",
            offer: "starter",
            catchall_allowed: false,
            address_exists: false,
            alias_exists: false,
            addresses: 0,
            address_quota: 1,
            created_last_24h: 49,
            creation_limit: 50,
        }
    }

    #[test]
    fn each_rule_in_turn() {
        assert!(may_create(&facts()).is_ok());
        let code = |f: Facts<'_>| may_create(&f).unwrap_err().code();
        assert_eq!(
            code(Facts {
                local: CATCHALL,
                ..facts()
            }),
            "catchall_not_available"
        );
        assert_eq!(
            code(Facts {
                alias_exists: true,
                ..facts()
            }),
            "already_exists"
        );
        assert_eq!(
            code(Facts {
                addresses: 1,
                ..facts()
            }),
            "quota_exceeded"
        );
        assert_eq!(
            code(Facts {
                created_last_24h: 50,
                ..facts()
            }),
            "creation_limit"
        );
    }
}
