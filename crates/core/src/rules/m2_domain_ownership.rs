//! M2: a domain belongs to the organization that proved control of it. A mail service is
//! bound to a verified domain only, so a pending domain neither receives nor sends mail: the
//! platform never serves a name for an organization that merely typed it in.
//!
//! - The platform operator is trusted: a domain the operator adds is verified at once.
//! - An organization's administrator adds a domain *pending*, with a token; it is verified
//!   by a TXT record `postfach-verify=<token>` at the domain, found through the configured
//!   resolvers (or by the operator's word). An MX pointing at the platform proves nothing
//!   (it is the same for every tenant). The platform's own names are the operator's.
//! - A sub-domain of a domain the same organization verified is verified with it (control of
//!   the parent is control of its names).
//! - A sub-domain of a domain another organization holds is refused: a name below someone
//!   else's domain is theirs (it would align with their DMARC policy and could be signed for).
//! - A name another organization holds is refused like any existing name, whoever holds it;
//!   only a claim that stayed pending for [`PENDING_CLAIM_SECS`] lapses, so that nobody can
//!   keep a domain from its owner by adding it first.

use crate::error::Error;

/// The prefix of the TXT record that proves control of a domain.
pub const TXT_PREFIX: &str = "postfach-verify=";

/// How long a pending claim keeps a name from other organizations.
pub const PENDING_CLAIM_SECS: i64 = 3 * 86_400;

/// A domain as the rule sees it.
#[derive(Debug, Clone, Copy)]
pub struct Held<'a> {
    pub name: &'a str,
    pub org_id: i64,
    pub verified: bool,
    pub created_at: i64,
}

/// What adding a domain comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Added, verified at once.
    Verified,
    /// Added, pending until proved.
    Pending,
    /// Added after the lapsed pending claim of another organization (its id) is removed.
    ReplacesLapsed { id: i64, verified: bool },
}

/// Whether `name` is `parent` or a name below it.
fn within(name: &str, parent: &str) -> bool {
    name == parent
        || name
            .strip_suffix(parent)
            .is_some_and(|rest| rest.ends_with('.'))
}

/// Decides on adding `name` to organization `org_id`. `existing` is the domain of that very
/// name, if any; `held` every domain that `name` lies below (its parents), in any
/// organization; `by_operator` whether the platform operator adds it.
pub fn claim(
    name: &str,
    org_id: i64,
    by_operator: bool,
    existing: Option<(i64, Held<'_>)>,
    held: &[Held<'_>],
    now: i64,
) -> Result<Claim, Error> {
    let parents: Vec<&Held<'_>> = held
        .iter()
        .filter(|h| h.name != name && within(name, h.name))
        .collect();
    if !by_operator && let Some(other) = parents.iter().find(|h| h.org_id != org_id && h.verified) {
        // Which organization holds it is not said.
        return Err(Error::Forbidden(format!(
            "{name} lies within {}, which another organization holds",
            other.name
        )));
    }
    let verified = by_operator || parents.iter().any(|h| h.org_id == org_id && h.verified);
    match existing {
        None => Ok(if verified {
            Claim::Verified
        } else {
            Claim::Pending
        }),
        Some((id, d))
            if d.org_id != org_id && !d.verified && d.created_at + PENDING_CLAIM_SECS <= now =>
        {
            Ok(Claim::ReplacesLapsed { id, verified })
        }
        // The same answer whoever holds it.
        Some(_) => Err(Error::duplicate("domain", name)),
    }
}

/// The TXT record that proves control of a domain.
pub fn txt_record(token: &str) -> String {
    format!("{TXT_PREFIX}{token}")
}

/// How control was proved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    Txt,
}

impl Proof {
    pub fn as_str(self) -> &'static str {
        match self {
            Proof::Txt => "txt",
        }
    }
}

/// Whether what DNS answered proves control: one of the domain's TXT records is exactly
/// `postfach-verify=<token>`. An MX pointing at the platform is not proof: it is the same for
/// every tenant, so it shows that the domain wants this platform, not which organization
/// (another tenant could claim a domain whose owner just pointed its MX here).
pub fn proof(token: &str, txt: &[String]) -> Option<Proof> {
    let wanted = txt_record(token);
    if !token.is_empty() && txt.iter().any(|t| t.trim() == wanted) {
        return Some(Proof::Txt);
    }
    None
}

/// Names no organization may claim: the platform's own host name, the names above it (its
/// registered domain) and below it. The operator adds such domains if they are to be served.
pub fn reserved_for_platform(name: &str, platform_host: &str) -> Result<(), Error> {
    let host = platform_host.trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() || host == "localhost" {
        return Ok(());
    }
    // The host's registered domain, as DMARC's relaxed alignment errs without a public
    // suffix list (the last two labels): mail.example.net reserves example.net and its names.
    let labels: Vec<&str> = host.rsplitn(3, '.').collect();
    let registered = labels
        .iter()
        .take(2)
        .rev()
        .copied()
        .collect::<Vec<_>>()
        .join(".");
    if within(name, &host) || within(&host, name) || within(name, &registered) {
        return Err(Error::Forbidden(format!(
            "{name} belongs to the platform ({host}); only the platform operator adds it"
        )));
    }
    Ok(())
}

/// Whether a mail service may be bound to the domain (a pending one serves no mail).
pub fn may_serve_mail(name: &str, verified: bool) -> Result<(), Error> {
    if verified {
        return Ok(());
    }
    Err(Error::Conflict(format!(
        "{name} is not verified yet: publish its TXT record (see `domain list`) and run \
         `postfach domain verify {name}`"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(name: &str, org_id: i64, verified: bool) -> Held<'_> {
        Held {
            name,
            org_id,
            verified,
            created_at: 1000,
        }
    }

    #[test]
    fn the_operator_is_trusted_and_others_must_prove() {
        assert_eq!(
            claim("a.test", 1, true, None, &[], 1000).ok(),
            Some(Claim::Verified)
        );
        assert_eq!(
            claim("a.test", 1, false, None, &[], 1000).ok(),
            Some(Claim::Pending)
        );
    }

    #[test]
    fn sub_domains_follow_their_parent() {
        let held = [h("acme.test", 1, true)];
        assert_eq!(
            claim("mail.acme.test", 1, false, None, &held, 1000).ok(),
            Some(Claim::Verified)
        );
        assert!(matches!(
            claim("mail.acme.test", 2, false, None, &held, 1000),
            Err(Error::Forbidden(_))
        ));
        // A pending parent of another organization keeps nobody out and proves nothing.
        let pending = [h("acme.test", 1, false)];
        assert_eq!(
            claim("mail.acme.test", 2, false, None, &pending, 1000).ok(),
            Some(Claim::Pending)
        );
        assert_eq!(
            claim("mail.acme.test", 1, false, None, &pending, 1000).ok(),
            Some(Claim::Pending)
        );
        // "notacme.test" does not lie within "acme.test".
        assert!(!within("notacme.test", "acme.test"));
        assert!(within("x.acme.test", "acme.test"));
    }

    #[test]
    fn a_held_name_is_refused_alike_until_a_pending_claim_lapses() {
        let mine = (7, h("a.test", 1, true));
        let theirs = (7, h("a.test", 2, true));
        let e1 = claim("a.test", 1, false, Some(mine), &[], 1000).unwrap_err();
        let e2 = claim("a.test", 1, false, Some(theirs), &[], 1000).unwrap_err();
        assert_eq!(e1.to_string(), e2.to_string());
        let squatted = (7, h("a.test", 2, false));
        assert!(claim("a.test", 1, false, Some(squatted), &[], 1000 + 3600).is_err());
        assert_eq!(
            claim(
                "a.test",
                1,
                false,
                Some(squatted),
                &[],
                1000 + PENDING_CLAIM_SECS
            )
            .ok(),
            Some(Claim::ReplacesLapsed {
                id: 7,
                verified: false
            })
        );
    }

    #[test]
    fn proof_is_the_token() {
        let txt = vec![
            "v=spf1 -all".to_string(),
            "postfach-verify=abc123".to_string(),
        ];
        assert_eq!(proof("abc123", &txt), Some(Proof::Txt));
        assert_eq!(proof("abc12", &txt), None);
        assert_eq!(proof("", &txt), None);
    }

    #[test]
    fn the_platform_s_names_are_the_operator_s() {
        let host = "mail.example.net";
        for taken in [
            "mail.example.net",
            "example.net",
            "mx.example.net",
            "a.mail.example.net",
        ] {
            assert!(reserved_for_platform(taken, host).is_err(), "{taken}");
        }
        assert!(reserved_for_platform("example.org", host).is_ok());
        assert!(reserved_for_platform("notexample.net", host).is_ok());
        assert!(reserved_for_platform("anything.test", "localhost").is_ok());
    }
}
