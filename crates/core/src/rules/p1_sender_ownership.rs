//! P1: a login sends only as itself. The envelope sender (`MAIL FROM`) and the author that
//! mail readers show (the one `From` mailbox) must be one of the addresses the login owns —
//! its address and its aliases (`submit::own_addresses`) — or a sub-address of one of them
//! (`info+news@…` of `info@…`, RFC 5233), as mail to such an address reaches it; unless the
//! sub-address is itself another mailbox's address or alias.

/// Whether a login owning `own` (lower or mixed case, each `local@domain`) may use
/// `address` as sender. `taken` says whether `address` itself is an address or alias here:
/// then only its owner may use it.
pub fn may_send_as(own: &[String], address: &str, taken: bool) -> bool {
    if own.iter().any(|o| o.eq_ignore_ascii_case(address)) {
        return true;
    }
    if taken {
        return false;
    }
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    let Some((base, tag)) = local.split_once('+') else {
        return false;
    };
    if base.is_empty() || tag.is_empty() {
        return false;
    }
    let plain = format!("{base}@{domain}");
    own.iter().any(|o| o.eq_ignore_ascii_case(&plain))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_addresses_and_their_sub_addresses() {
        let own = ["info@acme.test".to_string(), "hello@acme.test".to_string()];
        assert!(may_send_as(&own, "Info@ACME.test", false));
        assert!(may_send_as(&own, "hello@acme.test", false));
        assert!(may_send_as(&own, "info+news@acme.test", false));
        // Another mailbox's own address, even if it looks like a sub-address.
        assert!(!may_send_as(&own, "info+news@acme.test", true));
        assert!(!may_send_as(&own, "ceo@acme.test", false));
        assert!(!may_send_as(&own, "info+news@other.test", false));
        assert!(!may_send_as(&own, "+news@acme.test", false));
        assert!(!may_send_as(&own, "info+@acme.test", false));
        assert!(!may_send_as(&own, "info", false));
    }
}
