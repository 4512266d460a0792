//! Sender Rewriting Scheme for forwarded mail (F11). A forwarded message leaves with an
//! envelope sender in one of our domains, so SPF at the final destination checks us, not the
//! original sender; a bounce to that address is recognised and routed back to the original.
//!
//! The format is the one of the SRS paper (Shevek, 2004) used by Postfix's postsrsd and by
//! most forwarders, so that other forwarders' SRS1 handling works with ours:
//!
//! - `SRS0=HHHH=TT=orig-domain=orig-local@our-domain` — HHHH a keyed hash (HMAC-SHA256,
//!   base32, first 4 characters), TT the day number modulo 1024 in base32;
//! - `SRS1=HHHH=first-forwarder==HHHH=TT=orig-domain=orig-local@our-domain` — forwarding a
//!   message whose sender is already someone else's SRS0 address keeps that address and only
//!   prepends a hash of ours.
//!
//! Reverse addresses are valid for 21 days (the longest a bounce can reasonably take).

use ring::hmac;

const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
/// How long a rewritten sender accepts bounces, in days.
pub const MAX_AGE_DAYS: i64 = 21;
const HASH_LEN: usize = 4;

/// The rewriting key (the platform's SRS secret) and the clock.
pub struct Srs {
    key: hmac::Key,
}

fn b32(mut v: u64, n: usize) -> String {
    let mut out = vec![0u8; n];
    for c in out.iter_mut().rev() {
        *c = B32[(v & 31) as usize];
        v >>= 5;
    }
    String::from_utf8(out).expect("ascii")
}

fn day_stamp(now: i64) -> String {
    b32((now.div_euclid(86_400) & 1023) as u64, 2)
}

fn stamp_age(stamp: &str, now: i64) -> Option<i64> {
    let mut v = 0i64;
    for c in stamp.bytes() {
        let i = B32.iter().position(|b| *b == c.to_ascii_uppercase())? as i64;
        v = v * 32 + i;
    }
    let today = now.div_euclid(86_400) & 1023;
    Some((today - v).rem_euclid(1024))
}

impl Srs {
    pub fn new(secret: &[u8]) -> Self {
        Srs {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// Hash over the parts, case-insensitive (domains and SRS parts may change case on the way
    /// back).
    fn hash(&self, parts: &[&str]) -> String {
        let mut ctx = hmac::Context::with_key(&self.key);
        for p in parts {
            ctx.update(p.to_ascii_lowercase().as_bytes());
            ctx.update(b"\0");
        }
        let tag = ctx.sign();
        let v = u64::from_be_bytes(tag.as_ref()[..8].try_into().expect("8 bytes"));
        b32(v >> (64 - 5 * HASH_LEN as u32), HASH_LEN)
    }

    /// Rewrites `sender` (`local@domain`) for a message forwarded by `our_domain`. The null
    /// sender stays null (bounces are never forwarded back).
    pub fn forward(&self, sender: &str, our_domain: &str, now: i64) -> String {
        let Some((local, domain)) = sender.rsplit_once('@') else {
            return sender.to_string();
        };
        if domain.eq_ignore_ascii_case(our_domain) {
            return sender.to_string();
        }
        let lower = local.to_ascii_lowercase();
        if lower.starts_with("srs0=") || lower.starts_with("srs0+") || lower.starts_with("srs0-") {
            // Someone else's SRS0: becomes SRS1, pointing at that forwarder.
            let rest = &local[5..];
            let h = self.hash(&[domain, rest]);
            return format!("SRS1={h}={domain}=={rest}@{our_domain}");
        }
        if lower.starts_with("srs1=") {
            // Already SRS1: keep the first forwarder and its opaque part; re-sign.
            let rest = &local[5..];
            if let Some((_, tail)) = rest.split_once('=')
                && let Some((first, opaque)) = tail.split_once("==")
            {
                let h = self.hash(&[first, opaque]);
                return format!("SRS1={h}={first}=={opaque}@{our_domain}");
            }
        }
        let tt = day_stamp(now);
        let h = self.hash(&[&tt, domain, local]);
        format!("SRS0={h}={tt}={domain}={local}@{our_domain}")
    }

    /// Where a bounce to `local_part` (of one of our domains) goes: the original sender for a
    /// valid SRS0 address, the first forwarder's SRS0 address for SRS1. `None` if it is not an
    /// SRS address, the hash does not match, or it is too old.
    pub fn reverse(&self, local_part: &str, now: i64) -> Option<String> {
        let lower = local_part.to_ascii_lowercase();
        if lower.starts_with("srs0=") {
            let mut it = local_part[5..].splitn(4, '=');
            let (h, tt, domain, local) = (it.next()?, it.next()?, it.next()?, it.next()?);
            if local.is_empty() || domain.is_empty() || tt.len() != 2 {
                return None;
            }
            if !h.eq_ignore_ascii_case(&self.hash(&[tt, domain, local])) {
                return None;
            }
            if stamp_age(tt, now)? > MAX_AGE_DAYS {
                return None;
            }
            return Some(format!("{local}@{domain}"));
        }
        if lower.starts_with("srs1=") {
            let rest = &local_part[5..];
            let (h, tail) = rest.split_once('=')?;
            let (first, opaque) = tail.split_once("==")?;
            if first.is_empty() || opaque.is_empty() {
                return None;
            }
            if !h.eq_ignore_ascii_case(&self.hash(&[first, opaque])) {
                return None;
            }
            return Some(format!("SRS0={opaque}@{first}"));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_000_000;

    #[test]
    fn srs0_round_trip() {
        let s = Srs::new(b"secret");
        let fwd = s.forward("alice@sender.example", "hosted.example", NOW);
        assert!(fwd.starts_with("SRS0="), "{fwd}");
        assert!(
            fwd.ends_with("=sender.example=alice@hosted.example"),
            "{fwd}"
        );
        let local = fwd.rsplit_once('@').unwrap().0;
        assert_eq!(
            s.reverse(local, NOW + 86_400).as_deref(),
            Some("alice@sender.example")
        );
        // Case changes on the way back do not matter.
        assert_eq!(
            s.reverse(&local.to_lowercase(), NOW).as_deref(),
            Some("alice@sender.example")
        );
        // Too old, forged, or another key: refused.
        assert_eq!(s.reverse(local, NOW + 22 * 86_400), None);
        let forged = local.replace("=alice", "=mallory");
        assert_eq!(s.reverse(&forged, NOW), None);
        assert_eq!(Srs::new(b"other").reverse(local, NOW), None);
        assert_eq!(s.reverse("alice", NOW), None);
        assert_eq!(s.reverse("SRS0=x", NOW), None);
    }

    #[test]
    fn srs1_points_at_the_first_forwarder() {
        let theirs = Srs::new(b"theirs");
        let ours = Srs::new(b"ours");
        let first = theirs.forward("bob@origin.example", "fwd1.example", NOW);
        let second = ours.forward(&first, "hosted.example", NOW);
        assert!(second.starts_with("SRS1="), "{second}");
        let back = ours
            .reverse(second.rsplit_once('@').unwrap().0, NOW)
            .unwrap();
        assert_eq!(back, first);
        // Forwarding our own SRS1 again keeps the first forwarder.
        let third = ours.forward(&second, "hosted.example", NOW);
        assert!(third.contains("=fwd1.example=="), "{third}");
        // The null sender and our own senders are not rewritten.
        assert_eq!(ours.forward("", "hosted.example", NOW), "");
        assert_eq!(
            ours.forward("me@hosted.example", "hosted.example", NOW),
            "me@hosted.example"
        );
    }
}
