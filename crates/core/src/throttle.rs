//! S4 brute-force protection, shared by every authentication surface (admin API login now;
//! SMTP AUTH, IMAP and POP3 logins as they arrive).
//!
//! Failures are counted per client IP and per (login, IP) pair in a sliding window. Past the
//! limit, attempts from that source are refused *without checking the password* until the
//! window has moved on. Counting per (login, IP) rather than per login alone means an attacker
//! cannot lock the real user out: their own address is throttled, the user's is not. A success
//! clears the pair's count.
//!
//! The state is in memory, per node: a restart forgets it, and several nodes each apply the
//! limit (a cluster-wide counter belongs in the store once there are nodes).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// Limits of the throttle. The defaults let a person mistype a password a few times.
#[derive(Debug, Clone, Copy)]
pub struct ThrottleLimits {
    /// Failures allowed per (login, IP) within `window`.
    pub per_login: usize,
    /// Failures allowed per IP (any login) within `window`.
    pub per_ip: usize,
    /// Seconds over which failures are counted.
    pub window: i64,
}

impl Default for ThrottleLimits {
    fn default() -> Self {
        ThrottleLimits {
            per_login: 5,
            per_ip: 20,
            window: 15 * 60,
        }
    }
}

#[derive(Default)]
struct State {
    /// Failure times by key, oldest first.
    failures: HashMap<String, Vec<i64>>,
    /// Calls since the last sweep of stale keys.
    since_sweep: usize,
}

pub struct LoginThrottle {
    limits: ThrottleLimits,
    state: Mutex<State>,
}

fn ip_key(ip: IpAddr) -> String {
    // An IPv6 client usually owns a whole /64: count the prefix, not the address.
    match ip {
        IpAddr::V4(v4) => format!("ip:{v4}"),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("ip:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

fn pair_key(login: &str, ip: IpAddr) -> String {
    format!("{}|{}", login.to_lowercase(), ip_key(ip))
}

impl LoginThrottle {
    pub fn new(limits: ThrottleLimits) -> Self {
        LoginThrottle {
            limits,
            state: Mutex::new(State::default()),
        }
    }

    fn recent(state: &mut State, key: &str, since: i64) -> usize {
        match state.failures.get_mut(key) {
            Some(times) => {
                times.retain(|&t| t > since);
                times.len()
            }
            None => 0,
        }
    }

    /// `Err(seconds)` — how long until the next attempt may be checked — when this source is
    /// over its limit; `Ok(())` when the password may be checked.
    pub fn check(&self, login: &str, ip: IpAddr, now: i64) -> Result<(), i64> {
        let since = now - self.limits.window;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut wait = 0;
        for (key, limit) in [
            (pair_key(login, ip), self.limits.per_login),
            (ip_key(ip), self.limits.per_ip),
        ] {
            if Self::recent(&mut state, &key, since) >= limit {
                // Free again when the oldest failure that keeps it over the limit expires.
                let times = &state.failures[&key];
                let oldest_blocking = times[times.len() - limit];
                wait = wait.max(oldest_blocking + self.limits.window - now);
            }
        }
        if wait > 0 { Err(wait.max(1)) } else { Ok(()) }
    }

    pub fn failed(&self, login: &str, ip: IpAddr, now: i64) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        for key in [pair_key(login, ip), ip_key(ip)] {
            state.failures.entry(key).or_default().push(now);
        }
        state.since_sweep += 1;
        if state.since_sweep >= 1024 {
            // Bound memory: forget keys whose failures have all expired.
            let since = now - self.limits.window;
            state
                .failures
                .retain(|_, times| times.last().is_some_and(|&t| t > since));
            state.since_sweep = 0;
        }
    }

    pub fn succeeded(&self, login: &str, ip: IpAddr) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.failures.remove(&pair_key(login, ip));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 7));

    #[test]
    fn throttles_the_attacker_not_the_user() {
        let t = LoginThrottle::new(ThrottleLimits::default());
        for i in 0..5 {
            assert!(t.check("anna@x.example", A, 1000 + i).is_ok());
            t.failed("anna@x.example", A, 1000 + i);
        }
        let wait = t.check("Anna@x.example", A, 1010).unwrap_err();
        assert_eq!(wait, 1000 + 900 - 1010);
        // The real user, elsewhere, is not locked out.
        assert!(t.check("anna@x.example", B, 1010).is_ok());
        // The window moves on.
        assert!(t.check("anna@x.example", A, 1000 + 901).is_ok());
    }

    #[test]
    fn limits_one_ip_across_logins_and_success_clears_the_pair() {
        let t = LoginThrottle::new(ThrottleLimits::default());
        for i in 0..20 {
            t.failed(&format!("user{i}@x.example"), A, 1000);
        }
        assert!(
            t.check("someone@x.example", A, 1001).is_err(),
            "per-IP limit"
        );
        t.failed("bob@x.example", B, 1000);
        t.succeeded("bob@x.example", B);
        assert!(t.check("bob@x.example", B, 1001).is_ok());
        let v6a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8:1:2::ffff".parse().unwrap();
        assert_eq!(ip_key(v6a), ip_key(v6b), "one /64 is one client");
    }
}
