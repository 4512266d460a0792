//! S4: brute-force protection on every authentication surface (SMTP AUTH, IMAP, POP3,
//! ManageSieve, the Manager's login), "without letting an attacker lock a user out forever".
//! The counting lives in `crate::throttle` (a sliding window per key); this file decides.
//!
//! Failures are counted under three keys:
//! - the **pair** (login, client): a few mistakes are allowed, then that client may not try
//!   that login until the window moves on;
//! - the **client** (an IPv4 address, an IPv6 /64): many logins tried from one place are
//!   refused — except logins that succeeded from there before, so that one attacker behind
//!   a NAT does not lock the office out;
//! - the **account** (any client): an account under a distributed attack is slowed down
//!   (each attempt from a client it was not used from before waits before its password is
//!   checked), never locked; its known devices are not slowed down.
//!
//! An attempt counts as a failure from the moment it is let through (a reservation), and
//! stops counting only when its password was right: attempts made at once are counted like
//! attempts made one after the other.

/// Limits of the throttle. The defaults let a person mistype a password a few times.
#[derive(Debug, Clone, Copy)]
pub struct ThrottleLimits {
    /// Failures allowed per (login, client) within `window`.
    pub per_login: usize,
    /// Failures allowed per client (any login it has not logged in with before).
    pub per_ip: usize,
    /// Failures per account (any client) past which every attempt is slowed down.
    pub account_slowdown_after: usize,
    /// Seconds over which failures are counted.
    pub window: i64,
    /// Seconds a successful (login, client) pair is remembered as known.
    pub known_for: i64,
}

impl Default for ThrottleLimits {
    fn default() -> Self {
        ThrottleLimits {
            per_login: 5,
            per_ip: 20,
            account_slowdown_after: 10,
            window: 15 * 60,
            known_for: 30 * 86_400,
        }
    }
}

/// The longest an attempt on an account under attack waits, in milliseconds.
pub const MAX_SLOWDOWN_MS: u64 = 4_000;

/// What the throttle knows about an attempt: for each key, the times of the failures in the
/// window, oldest first.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub pair: &'a [i64],
    pub client: &'a [i64],
    pub account: &'a [i64],
    /// The login succeeded from this client within `known_for`.
    pub known_pair: bool,
    pub now: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Refused without looking at the password; the client may try again in this many
    /// seconds.
    Refuse { retry_after: i64 },
    /// The password may be checked, after waiting this many milliseconds.
    Check { delay_ms: u64 },
}

pub fn decide(limits: &ThrottleLimits, f: Facts<'_>) -> Decision {
    // Free again when the oldest failure that keeps a key at its limit leaves the window.
    let wait = |times: &[i64], limit: usize| -> i64 {
        if limit == 0 || times.len() < limit {
            return 0;
        }
        times[times.len() - limit] + limits.window - f.now
    };
    let mut retry_after = wait(f.pair, limits.per_login);
    if !f.known_pair {
        retry_after = retry_after.max(wait(f.client, limits.per_ip));
    }
    if retry_after > 0 {
        return Decision::Refuse { retry_after };
    }
    let over = if f.known_pair {
        0
    } else {
        f.account
            .len()
            .saturating_sub(limits.account_slowdown_after)
    };
    let delay_ms = if over == 0 {
        0
    } else {
        (250u64 << over.min(8)).min(MAX_SLOWDOWN_MS)
    };
    Decision::Check { delay_ms }
}

/// The wait before a session answers its `failures`-th wrong password (a tarpit inside one
/// connection, on top of the throttle across connections): `base_ms`, doubling with each
/// failure up to 16 times `base_ms`.
pub fn session_delay_ms(base_ms: u64, failures: u32) -> u64 {
    if failures == 0 {
        return 0;
    }
    base_ms.saturating_mul(1 << (failures.min(5) - 1))
}

/// The one spelling of a login that every key uses: `Anna@Acme.test.`, ` anna@acme.test`
/// and `anna@acme.test\t` are one login (each spelling must not get counters of its own).
///
/// A login that reads as an address is keyed by its canonical form, as authentication reads
/// it (white space around the `@`, IDNA mappings of the domain); anything else by a short
/// digest of its trimmed, lower-cased text, so that keys stay small whatever is sent.
pub fn normalise_login(login: &str) -> String {
    let trimmed = login
        .trim_matches(|c: char| c.is_whitespace() || c.is_control())
        .trim_end_matches('.');
    if let Ok((local, domain)) = crate::validate::address(trimmed) {
        return format!("{local}@{domain}");
    }
    if let Ok(login) = crate::validate::login(trimmed) {
        return login;
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(trimmed.to_lowercase().as_bytes());
    format!("?{}", hex::encode(&digest[..12]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(pair: &'a [i64], client: &'a [i64], account: &'a [i64]) -> Facts<'a> {
        Facts {
            pair,
            client,
            account,
            known_pair: false,
            now: 1100,
        }
    }

    #[test]
    fn the_pair_limit_refuses_until_the_window_moves_on() {
        let l = ThrottleLimits::default();
        let four = [1000, 1001, 1002, 1003];
        assert_eq!(
            decide(&l, facts(&four, &four, &four)),
            Decision::Check { delay_ms: 0 }
        );
        let five = [1000, 1001, 1002, 1003, 1004];
        assert_eq!(
            decide(&l, facts(&five, &five, &five)),
            Decision::Refuse {
                retry_after: 1000 + 900 - 1100
            }
        );
    }

    #[test]
    fn a_known_login_is_not_locked_out_by_others_at_its_address() {
        let l = ThrottleLimits::default();
        let busy: Vec<i64> = (0..20).map(|i| 1000 + i).collect();
        assert!(matches!(
            decide(&l, facts(&[], &busy, &[])),
            Decision::Refuse { .. }
        ));
        let known = Facts {
            known_pair: true,
            ..facts(&[], &busy, &[])
        };
        assert_eq!(decide(&l, known), Decision::Check { delay_ms: 0 });
    }

    #[test]
    fn an_account_under_distributed_attack_slows_down_without_locking() {
        let l = ThrottleLimits::default();
        let many: Vec<i64> = (0..11).map(|i| 1000 + i).collect();
        assert_eq!(
            decide(&l, facts(&[], &[], &many)),
            Decision::Check { delay_ms: 500 }
        );
        let more: Vec<i64> = (0..400).map(|i| 1000 + i / 4).collect();
        assert_eq!(
            decide(&l, facts(&[], &[], &more)),
            Decision::Check {
                delay_ms: MAX_SLOWDOWN_MS
            }
        );
        // The devices it was used from before are not slowed down.
        let known = Facts {
            known_pair: true,
            ..facts(&[], &[], &more)
        };
        assert_eq!(decide(&l, known), Decision::Check { delay_ms: 0 });
    }

    #[test]
    fn a_session_answers_each_failure_more_slowly() {
        assert_eq!(session_delay_ms(1000, 0), 0);
        assert_eq!(session_delay_ms(1000, 1), 1000);
        assert_eq!(session_delay_ms(1000, 3), 4000);
        assert_eq!(session_delay_ms(1000, 9), 16000);
    }

    #[test]
    fn spellings_of_one_login_are_one() {
        for s in [
            "Anna@Acme.test.",
            " anna@acme.test",
            "anna@acme.test\t",
            "ANNA@ACME.TEST",
            "anna @acme.test",
            "anna@ acme.test",
        ] {
            assert_eq!(normalise_login(s), "anna@acme.test", "{s:?}");
        }
        // Garbage stays small and distinct.
        let long = "x".repeat(5000);
        assert!(normalise_login(&long).len() < 32);
        assert_ne!(normalise_login(&long), normalise_login("y"));
    }
}
