//! O2: whose DKIM key may sign an outgoing message. A signature says "this domain vouches for
//! this message"; the platform holds the keys of every tenant, so it must only ever sign for
//! the domain of the principal that produced the message — never for whatever domain the
//! message's From field names (a Sieve script, a vacation `:from` or a forwarded message can
//! name any domain, including another tenant's).

use crate::mail::header_block::Author;

/// Who produced an outgoing message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Producer<'a> {
    /// Mail of others that we relay: signed by nobody here.
    Relay,
    /// A mailbox: submitted by its login, or generated on its behalf (autoresponder, Sieve
    /// vacation, a rejection notice). `own` are the addresses it owns: its address and its
    /// aliases (the P1 sender rule's list).
    Mailbox { own: &'a [String] },
    /// A forward or a Sieve redirect (unchanged) by the mailbox of `mailbox_domain`: it keeps
    /// the original From (RFC 7489 §7.2 and RFC 8617: the forwarder vouches with an ARC seal,
    /// not with the author's domain) and carries a signature of the forwarding mailbox's own
    /// domain only where that signature cannot pass DMARC for the author — never when the
    /// author's domain may align with the mailbox's, even when the From names the mailbox
    /// itself: forwarded mail came from outside, and a forged "ceo@our-domain" (or the
    /// mailbox's own address) must not leave aligned.
    Forward { mailbox_domain: &'a str },
    /// A delivery status notification of the platform itself (`MAILER-DAEMON@hostname`).
    Platform { hostname: &'a str },
}

/// The domain whose key signs the message, if any. `author` is the message's one From
/// address (`HeaderBlock::author`); a message without exactly one is signed only when it is
/// a forward (with the forwarder's domain).
pub fn signing_domain(producer: Producer<'_>, author: Option<&Author>) -> Option<String> {
    match producer {
        Producer::Relay => None,
        Producer::Mailbox { own } => {
            // P1's own addresses and their sub-addresses (always of the mailbox's domains).
            let a = author?;
            crate::rules::p1_sender_ownership::may_send_as(own, &a.address, false)
                .then(|| a.domain.clone())
        }
        Producer::Forward { mailbox_domain } => {
            let aligned = author.is_none_or(|a| may_align(&a.domain, mailbox_domain));
            (!aligned).then(|| mailbox_domain.to_ascii_lowercase())
        }
        Producer::Platform { hostname } => {
            let a = author?;
            a.domain
                .eq_ignore_ascii_case(hostname.trim_end_matches('.'))
                .then(|| a.domain.clone())
        }
    }
}

/// Whether a signature of `signer` could be aligned with an author of `author` under DMARC's
/// relaxed alignment (RFC 7489 §3.1.1: same organizational domain). Without the public suffix
/// list this errs on the side of "may": one is the other or a subdomain of it, or both end in
/// the same two labels.
fn may_align(author: &str, signer: &str) -> bool {
    let (a, s) = (
        author.trim_end_matches('.').to_ascii_lowercase(),
        signer.trim_end_matches('.').to_ascii_lowercase(),
    );
    let last_two = |d: &str| {
        let labels: Vec<&str> = d.rsplitn(3, '.').collect();
        labels
            .iter()
            .take(2)
            .rev()
            .copied()
            .collect::<Vec<_>>()
            .join(".")
    };
    a == s
        || a.ends_with(&format!(".{s}"))
        || s.ends_with(&format!(".{a}"))
        || last_two(&a) == last_two(&s)
}

/// F11: the domain of a forward's rewritten envelope sender (SRS). The forwarding mailbox's
/// own domain, unless the message's author could align with it (or no author is known): then
/// the platform's host name, so that SPF of the forward can never lend the author a DMARC pass.
pub fn forward_envelope_domain<'a>(
    author_domain: Option<&str>,
    mailbox_domain: &'a str,
    platform_host: &'a str,
) -> &'a str {
    match author_domain {
        Some(a) if !may_align(a, mailbox_domain) => mailbox_domain,
        _ => platform_host.trim_end_matches('.'),
    }
}

/// Whether a message generated for a mailbox (an autoresponse, a Sieve vacation reply) names
/// one of the mailbox's own addresses as its author.
pub fn owns_author(own: &[String], author: Option<&Author>) -> bool {
    author.is_some_and(|a| own.iter().any(|o| o.eq_ignore_ascii_case(&a.address)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_never_take_an_envelope_that_aligns_with_the_author() {
        let f = forward_envelope_domain;
        assert_eq!(
            f(Some("gmail.com"), "acme.test", "mx.host.test"),
            "acme.test"
        );
        assert_eq!(
            f(Some("acme.test"), "acme.test", "mx.host.test"),
            "mx.host.test"
        );
        assert_eq!(
            f(Some("news.acme.test"), "acme.test", "mx.host.test"),
            "mx.host.test"
        );
        assert_eq!(f(None, "acme.test", "mx.host.test."), "mx.host.test");
    }

    fn author(address: &str) -> Author {
        Author {
            address: address.into(),
            domain: address.rsplit_once('@').unwrap().1.to_ascii_lowercase(),
        }
    }

    #[test]
    fn only_the_producers_own_domain_is_signed() {
        let own = vec!["anna@a.example".to_string(), "sales@a.example".to_string()];
        let mailbox = Producer::Mailbox { own: &own };
        assert_eq!(
            signing_domain(mailbox, Some(&author("Sales@A.example"))).as_deref(),
            Some("a.example")
        );
        // Another tenant's address as From: no signature of that tenant's domain.
        assert_eq!(
            signing_domain(mailbox, Some(&author("ceo@b.example"))),
            None
        );
        assert_eq!(signing_domain(mailbox, None), None);
        // A forward keeps the author's From but is signed (if at all) by the forwarder...
        let fwd = Producer::Forward {
            mailbox_domain: "A.example",
        };
        assert_eq!(
            signing_domain(fwd, Some(&author("ceo@b.example"))).as_deref(),
            Some("a.example")
        );
        // ...and never where its signature would pass DMARC for the author: a forged
        // "ceo@a.example" from outside, the mailbox's own address (forwarded mail is never the
        // mailbox's own), or one of a parent or sibling domain.
        for forged in [
            "ceo@a.example",
            "anna@a.example",
            "ceo@mail.a.example",
            "x@example",
        ] {
            assert_eq!(signing_domain(fwd, Some(&author(forged))), None, "{forged}");
        }
        let sub = Producer::Forward {
            mailbox_domain: "mail.b.example",
        };
        for forged in ["ceo@b.example", "ceo@other.b.example"] {
            assert_eq!(signing_domain(sub, Some(&author(forged))), None, "{forged}");
        }
        assert_eq!(
            signing_domain(Producer::Relay, Some(&author("anna@a.example"))),
            None
        );
        let platform = Producer::Platform {
            hostname: "mail.host.example",
        };
        assert_eq!(
            signing_domain(platform, Some(&author("MAILER-DAEMON@mail.host.example"))).as_deref(),
            Some("mail.host.example")
        );
        assert_eq!(signing_domain(platform, Some(&author("x@b.example"))), None);
        assert!(owns_author(&own, Some(&author("ANNA@a.example"))));
        assert!(!owns_author(&own, Some(&author("ceo@b.example"))));
        assert!(!owns_author(&own, None));
    }
}
