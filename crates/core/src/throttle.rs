//! The counting behind S4 (`rules::s4_login_throttle` decides): failure times per key in a
//! sliding window, the (login, client) pairs that succeeded, and a gate per client that
//! keeps the password checks of one client to a few at a time.
//!
//! Every surface goes through [`LoginThrottle::begin`] before it checks a password. The
//! attempt is counted as a failure *then* (a reservation) and uncounted only by
//! [`Attempt::succeeded`]: concurrent attempts see each other, an attempt whose check
//! errors or is abandoned still counts. The gate makes the hashing queue fair: the checks of
//! one client go one at a time (a login known from there — it succeeded from that client
//! before — has a gate of its own, so an office behind one NAT does not queue behind an
//! attacker there), so a burst occupies one place in the hashing threads' queue per client,
//! and other users' logins wait for a few checks, not for the burst.
//!
//! The state is in memory, per node: a restart forgets it, and several nodes each apply the
//! limit (shared counters belong in the store once there are nodes).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::Error;
use crate::rules::s4_login_throttle::{self as s4, Decision, Facts, ThrottleLimits};

/// Password checks behind one gate that may wait for or run on the hashing threads at once.
pub const CHECKS_PER_GATE: usize = 1;

#[derive(Default)]
struct State {
    /// Failure (and reservation) times by key, oldest first.
    failures: HashMap<String, VecDeque<i64>>,
    /// Last success by pair key.
    known: HashMap<String, i64>,
    gates: HashMap<String, Arc<Semaphore>>,
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

/// An attempt let through: its reservation counts as a failure until it [`succeeded`].
///
/// [`succeeded`]: Attempt::succeeded
pub struct Attempt<'a> {
    throttle: &'a LoginThrottle,
    keys: [String; 3],
    at: i64,
    _gate: OwnedSemaphorePermit,
}

impl Attempt<'_> {
    /// The password was right: the reservation goes, the pair's failures are forgotten and
    /// the pair is known from now on.
    pub fn succeeded(self) {
        let mut state = self.throttle.lock();
        let [pair, client, account] = &self.keys;
        state.failures.remove(pair);
        for key in [client, account] {
            if let Some(times) = state.failures.get_mut(key)
                && let Some(i) = times.iter().rposition(|&t| t == self.at)
            {
                times.remove(i);
            }
        }
        state.known.insert(pair.clone(), self.at);
    }
}

impl LoginThrottle {
    pub fn new(limits: ThrottleLimits) -> Self {
        LoginThrottle {
            limits,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Decides on an attempt of `login` from `ip` and, when it may go on, reserves its place
    /// among the failures, waits out the account's slow-down and the client's gate.
    pub async fn begin(&self, login: &str, ip: IpAddr, now: i64) -> Result<Attempt<'_>, Error> {
        let login = s4::normalise_login(login);
        let client = ip_key(ip);
        let keys = [
            format!("p:{login}|{client}"),
            format!("c:{client}"),
            format!("a:{login}"),
        ];
        let (decision, gate) = {
            let mut state = self.lock();
            let since = now - self.limits.window;
            for key in &keys {
                if let Some(times) = state.failures.get_mut(key) {
                    while times.front().is_some_and(|&t| t <= since) {
                        times.pop_front();
                    }
                }
            }
            let empty = VecDeque::new();
            let times = |k: &str| state.failures.get(k).unwrap_or(&empty).iter().copied();
            let (pair, client_times, account): (Vec<i64>, Vec<i64>, Vec<i64>) = (
                times(&keys[0]).collect(),
                times(&keys[1]).collect(),
                times(&keys[2]).collect(),
            );
            let known_pair = state
                .known
                .get(&keys[0])
                .is_some_and(|&t| t > now - self.limits.known_for);
            let decision = s4::decide(
                &self.limits,
                Facts {
                    pair: &pair,
                    client: &client_times,
                    account: &account,
                    known_pair,
                    now,
                },
            );
            if let Decision::Check { .. } = decision {
                for key in &keys {
                    state
                        .failures
                        .entry(key.clone())
                        .or_default()
                        .push_back(now);
                }
            }
            let gate_key = if known_pair { &keys[0] } else { &client };
            let gate = state
                .gates
                .entry(gate_key.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(CHECKS_PER_GATE)))
                .clone();
            self.sweep(&mut state, now);
            (decision, gate)
        };
        match decision {
            Decision::Refuse { retry_after } => Err(Error::Throttled {
                retry_after: retry_after.max(1),
            }),
            Decision::Check { delay_ms } => {
                if delay_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                }
                let gate = gate
                    .acquire_owned()
                    .await
                    .map_err(|_| Error::Internal("login gate closed".into()))?;
                Ok(Attempt {
                    throttle: self,
                    keys,
                    at: now,
                    _gate: gate,
                })
            }
        }
    }

    /// Bounds memory: every 1024 calls, forgets keys whose failures all left the window,
    /// known pairs past `known_for` and gates nobody holds.
    fn sweep(&self, state: &mut State, now: i64) {
        state.since_sweep += 1;
        if state.since_sweep < 1024 {
            return;
        }
        state.since_sweep = 0;
        let since = now - self.limits.window;
        state
            .failures
            .retain(|_, times| times.back().is_some_and(|&t| t > since));
        let known_since = now - self.limits.known_for;
        state.known.retain(|_, &mut t| t > known_since);
        state
            .gates
            .retain(|_, g| Arc::strong_count(g) > 1 || g.available_permits() < CHECKS_PER_GATE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 7));

    fn refused(r: Result<Attempt<'_>, Error>) -> bool {
        matches!(r, Err(Error::Throttled { .. }))
    }

    #[tokio::test]
    async fn attempts_count_before_their_outcome() {
        let t = LoginThrottle::new(ThrottleLimits::default());
        // A check in flight (the client's gate is taken) and four more waiting behind it:
        // each was counted when it was let through, so the sixth is refused before any
        // outcome — under any spelling of the login. (A waiting attempt that gives up
        // still counts.)
        let second = t.begin(" Anna@X.example.", A, 1000).await.unwrap();
        let waiting = tokio::time::timeout(
            Duration::from_millis(50),
            t.begin("anna@x.example", A, 1000),
        )
        .await;
        assert!(waiting.is_err(), "one check per client at a time");
        for _ in 0..3 {
            let waiting = tokio::time::timeout(
                Duration::from_millis(10),
                t.begin("ANNA@x.example", A, 1000),
            )
            .await;
            assert!(waiting.is_err());
        }
        assert!(refused(t.begin("anna@x.example\t", A, 1001).await));
        // The real user, elsewhere, is not locked out.
        t.begin("anna@x.example", B, 1001)
            .await
            .unwrap()
            .succeeded();
        // A right password of an attempt let through clears its pair.
        second.succeeded();
        assert!(t.begin("anna@x.example", A, 1002).await.is_ok());
        // The window moves on.
        assert!(t.begin("anna@x.example", A, 1000 + 901).await.is_ok());
    }

    #[tokio::test]
    async fn one_client_trying_many_logins_does_not_lock_out_known_ones() {
        let t = LoginThrottle::new(ThrottleLimits::default());
        t.begin("bob@x.example", A, 900).await.unwrap().succeeded();
        for i in 0..20 {
            drop(
                t.begin(&format!("user{i}@x.example"), A, 1000)
                    .await
                    .unwrap(),
            );
        }
        assert!(refused(t.begin("someone@x.example", A, 1001).await));
        t.begin("bob@x.example", A, 1001).await.unwrap().succeeded();
        let v6a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8:1:2::ffff".parse().unwrap();
        assert_eq!(ip_key(v6a), ip_key(v6b), "one /64 is one client");
    }
}
