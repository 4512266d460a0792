//! Normalisation and validation of names that users type: domains, local parts, addresses,
//! organization names, tags, passwords. Every function returns the canonical form or an
//! [`Error::Invalid`]/[`Error::WeakPassword`] whose message says what to fix.

use crate::error::{Error, Result};

/// The generic address that receives mail for unknown local parts (M5, seed: must be named
/// exactly `catchall`).
pub const CATCHALL: &str = "catchall";

/// Canonical (ASCII, lower-case, IDNA/UTS-46 processed) form of a mail domain.
/// RFC 5321 §4.1.2 / RFC 1035 §2.3.1: letters, digits and hyphens; labels ≤ 63 octets;
/// the whole name ≤ 253 octets; at least two labels; a top-level label that is not numeric
/// (so an IPv4 literal is never mistaken for a domain).
pub fn domain(input: &str) -> Result<String> {
    let raw = input.trim().trim_end_matches('.');
    let field = "domain";
    if raw.is_empty() {
        return Err(Error::invalid(field, "empty domain name"));
    }
    if raw.starts_with('[') || raw.parse::<std::net::IpAddr>().is_ok() {
        return Err(Error::invalid(
            field,
            format!("{raw:?} is an IP address, not a domain name"),
        ));
    }
    let ascii = idna::domain_to_ascii_strict(raw)
        .map_err(|_| Error::invalid(field, format!("{raw:?} is not a valid domain name")))?;
    if ascii.len() > 253 {
        return Err(Error::invalid(field, "longer than 253 characters"));
    }
    let labels: Vec<&str> = ascii.split('.').collect();
    if labels.len() < 2 {
        return Err(Error::invalid(
            field,
            format!("{raw:?} needs at least two labels, like example.com"),
        ));
    }
    for label in &labels {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            return Err(Error::invalid(
                field,
                format!("{raw:?} is not a valid domain name (label {label:?})"),
            ));
        }
    }
    if labels
        .last()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(Error::invalid(
            field,
            format!("{raw:?} has a numeric top-level label"),
        ));
    }
    Ok(ascii)
}

/// Canonical (lower-case) local part of a hosted address: RFC 5322 §3.2.3 dot-atom, at most 64
/// octets (RFC 5321 §4.5.3.1.1). `+` is refused because it separates the sub-address
/// (`user+tag@…` is delivered to `user`, RFC 5233), so no address may contain it.
pub fn local_part(input: &str) -> Result<String> {
    let field = "local part";
    let lp = input.trim().to_ascii_lowercase();
    if lp.is_empty() {
        return Err(Error::invalid(field, "empty local part"));
    }
    if lp.len() > 64 {
        return Err(Error::invalid(
            field,
            format!("{lp:?} is longer than 64 characters"),
        ));
    }
    if lp.starts_with('.') || lp.ends_with('.') || lp.contains("..") {
        return Err(Error::invalid(
            field,
            format!("{lp:?}: dots may not start, end or repeat"),
        ));
    }
    if let Some(bad) = lp
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || "!#$%&'*/=?^_`{|}~-.".contains(c)))
    {
        let why = if bad == '+' {
            " ('+' is reserved for sub-addresses like name+tag@domain)".to_string()
        } else {
            String::new()
        };
        return Err(Error::invalid(
            field,
            format!("{lp:?} contains the character {bad:?}{why}"),
        ));
    }
    Ok(lp)
}

/// A hosted address `local@domain`, both parts canonical.
pub fn address(input: &str) -> Result<(String, String)> {
    let input = input.trim();
    let (l, d) = input.rsplit_once('@').ok_or_else(|| {
        Error::invalid(
            "address",
            format!("{input:?} is not an address like name@example.com"),
        )
    })?;
    Ok((local_part(l)?, domain(d)?))
}

/// An external address (forwarding target, user login): a plausible `local@domain` with a
/// valid domain; the local part is kept as given (it is the remote system's business) but must
/// be printable ASCII without spaces, quotes or angle brackets.
pub fn external_address(input: &str, field: &'static str) -> Result<String> {
    let input = input.trim();
    let bad = || {
        Error::invalid(
            field,
            format!("{input:?} is not an address like name@example.com"),
        )
    };
    let (l, d) = input.rsplit_once('@').ok_or_else(bad)?;
    if l.is_empty()
        || l.len() > 64
        || !l
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"\"<>()[]\\,;:@".contains(&b))
    {
        return Err(bad());
    }
    Ok(format!("{l}@{}", domain(d).map_err(|_| bad())?))
}

/// Manager login: an e-mail address, canonical in lower case. The platform's own first
/// account may sit on a single-label host (`admin@localhost`), so the domain is checked
/// leniently here.
pub fn login(input: &str) -> Result<String> {
    let input = input.trim().to_lowercase();
    let bad = || Error::invalid("login", format!("{input:?} is not an e-mail address"));
    let (l, d) = input.rsplit_once('@').ok_or_else(bad)?;
    let host_ok = !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|lab| {
            !lab.is_empty() && lab.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if l.is_empty()
        || l.len() > 64
        || !l.bytes().all(|b| b.is_ascii_graphic() && b != b'@')
        || !host_ok
    {
        return Err(bad());
    }
    Ok(input)
}

/// Organization name: 1–100 printable characters, trimmed.
pub fn org_name(input: &str) -> Result<String> {
    let name = input.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(Error::invalid(
            "organization name",
            "use 1 to 100 printable characters",
        ));
    }
    Ok(name.to_string())
}

/// Display name of a mail service (M2: renamable; the domain stays).
pub fn label(input: &str) -> Result<String> {
    let name = input.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(Error::invalid("name", "use 1 to 100 printable characters"));
    }
    Ok(name.to_string())
}

/// Tags: lower-cased, de-duplicated, sorted; each 1–32 of letters, digits, `-`, `_`, `.`.
pub fn tags<S: AsRef<str>>(input: &[S]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for t in input {
        let t = t.as_ref().trim().to_lowercase();
        if t.is_empty() {
            continue;
        }
        if t.chars().count() > 32 || !t.chars().all(|c| c.is_alphanumeric() || "-_.".contains(c)) {
            return Err(Error::invalid(
                "tag",
                format!("{t:?}: use up to 32 letters, digits, '-', '_' or '.'"),
            ));
        }
        if !out.contains(&t) {
            out.push(t);
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_normalised() {
        assert_eq!(domain(" Example.COM. ").unwrap(), "example.com");
        assert_eq!(domain("bücher.example").unwrap(), "xn--bcher-kva.example");
        assert_eq!(
            domain("xn--bcher-kva.example").unwrap(),
            "xn--bcher-kva.example"
        );
        for bad in [
            "",
            "localhost",
            "192.168.1.1",
            "[10.0.0.1]",
            "a..b",
            "-a.com",
            "a-.com",
            "a_b.com",
            "exa mple.com",
            "1.2.3.4",
            "foo.123",
        ] {
            assert!(domain(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(domain(&format!("{}.com", "a".repeat(64))).is_err());
    }

    #[test]
    fn local_parts() {
        assert_eq!(local_part("Jean.Dupont").unwrap(), "jean.dupont");
        assert_eq!(local_part("o'brien").unwrap(), "o'brien");
        for bad in [
            "",
            ".a",
            "a.",
            "a..b",
            "a b",
            "a+b",
            "a@b",
            "ü",
            &"x".repeat(65),
        ] {
            assert!(local_part(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(
            local_part("a+b")
                .unwrap_err()
                .to_string()
                .contains("sub-address"),
            "explains why + is refused"
        );
    }

    #[test]
    fn addresses() {
        assert_eq!(
            address("Info@Bücher.Example").unwrap(),
            ("info".into(), "xn--bcher-kva.example".into())
        );
        assert!(address("no-at-sign").is_err());
        assert_eq!(
            external_address("Ext.User@Gmail.com", "forward").unwrap(),
            "Ext.User@gmail.com"
        );
        assert!(external_address("a b@x.com", "forward").is_err());
        assert!(external_address("a@localhost", "forward").is_err());
        assert_eq!(login("Admin@LocalHost").unwrap(), "admin@localhost");
        assert!(login("admin").is_err());
    }

    #[test]
    fn tags_are_normalised() {
        assert_eq!(tags(&["EU", " sales", "eu", ""]).unwrap(), ["eu", "sales"]);
        assert!(tags(&["no spaces"]).is_err());
    }
}
