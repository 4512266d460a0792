//! The counting behind S4 (`rules::s4_login_throttle` decides): failure times per key in a
//! sliding window, the (login, client) pairs that succeeded, and a gate per client that
//! keeps the password checks of one client to a few at a time.
//!
//! Every surface goes through [`LoginThrottle::begin`] before it checks a password. Checks
//! behind one gate run one at a time, and an attempt is counted as a failure when its check
//! starts (a reservation), uncounted only by [`Attempt::succeeded`]: concurrent attempts
//! see each other's outcome, an attempt whose check errors or is abandoned still counts.
//! The gates make the hashing queue fair: the checks of one client go one at a time (a
//! login known from there — it succeeded from that client before — has a gate of its own,
//! so an office behind one NAT does not queue behind an attacker there), and so do the
//! checks of one account from clients it was not used from; a burst occupies one place in
//! the hashing threads' queue per client and account, and other users' logins wait for a
//! few checks, not for the burst.
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
/// Attempts that may wait at one account's gate (clients it was not used from).
pub const ACCOUNT_QUEUE: usize = 16;
/// Keys each map may hold before its oldest entries are forgotten.
const MAX_KEYS: usize = 200_000;

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
    // A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d: each is its own client,
    // not one /64 for the whole IPv4 Internet. An IPv6 client usually owns a whole /64:
    // count the prefix, not the address.
    match ip.to_canonical() {
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
    _gates: Vec<OwnedSemaphorePermit>,
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
        if state.known.len() > MAX_KEYS {
            evict_oldest(&mut state.known, |&t| t);
        }
    }
}

/// The gate of `key`, made on first use.
fn gate_of(state: &mut State, key: &str) -> Arc<Semaphore> {
    state
        .gates
        .entry(key.to_string())
        .or_insert_with(|| Arc::new(Semaphore::new(CHECKS_PER_GATE)))
        .clone()
}

async fn acquire(gate: Arc<Semaphore>) -> Result<OwnedSemaphorePermit, Error> {
    gate.acquire_owned()
        .await
        .map_err(|_| Error::Internal("login gate closed".into()))
}

/// Removes the tenth of `map`'s entries whose time (`at`) is oldest: the maps stay bounded
/// whatever number of logins and addresses a crowd uses (an IPv6 attacker has many /64s).
fn evict_oldest<V>(map: &mut HashMap<String, V>, at: impl Fn(&V) -> i64) {
    let mut times: Vec<i64> = map.values().map(&at).collect();
    let cut = times.len() / 10;
    if cut == 0 {
        return;
    }
    let (_, &mut oldest_kept, _) = times.select_nth_unstable(cut);
    map.retain(|_, v| at(v) >= oldest_kept);
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

    /// Decides on an attempt of `login` from `ip` and, when it may go on, waits for its gates
    /// and the account's slow-down and reserves its place among the failures.
    ///
    /// The decision is made again once the gates are ours, and the reservation taken then:
    /// behind one gate the checks run one after the other, so attempts made at once are
    /// counted exactly as attempts made one after the other — the sixth wrong password
    /// waits for the fifth's outcome and is refused, while ten right ones (a mail client's
    /// parallel connections) all get in.
    ///
    /// Gates: a known pair (the login succeeded from this client before) has a gate of its
    /// own and is never slowed down. Any other attempt passes its client's gate and then
    /// its account's: the attempts on one account from clients it was not used from go one
    /// at a time, each after the account's slow-down, so a distributed attack gets one guess
    /// per slow-down, whatever the number of its addresses. At most [`ACCOUNT_QUEUE`] wait
    /// there; more are refused for a few seconds rather than kept waiting.
    pub async fn begin(&self, login: &str, ip: IpAddr, now: i64) -> Result<Attempt<'_>, Error> {
        let login = s4::normalise_login(login);
        let client = ip_key(ip);
        let keys = [
            format!("p:{login}|{client}"),
            format!("c:{client}"),
            format!("a:{login}"),
        ];
        // Refused at once when already over a limit: a flood does not even queue.
        let (first, known_pair) = {
            let mut state = self.lock();
            let (decision, known_pair) = self.decide(&mut state, &keys, now);
            if let Decision::Refuse { retry_after } = decision {
                return Err(Error::Throttled {
                    retry_after: retry_after.max(1),
                });
            }
            self.sweep(&mut state, now);
            let gate = if known_pair { &keys[0] } else { &client };
            (gate_of(&mut state, gate), known_pair)
        };
        let mut permits = vec![acquire(first).await?];
        if !known_pair {
            let account = {
                let mut state = self.lock();
                let gate = gate_of(&mut state, &keys[2]);
                // The map's handle, the holder's and the waiters'.
                if Arc::strong_count(&gate) > ACCOUNT_QUEUE + 2 {
                    return Err(Error::Throttled {
                        retry_after: (s4::MAX_SLOWDOWN_MS / 1000) as i64 + 1,
                    });
                }
                gate
            };
            permits.push(acquire(account).await?);
        }
        let delay_ms = {
            let mut state = self.lock();
            match self.decide(&mut state, &keys, now).0 {
                Decision::Refuse { retry_after } => {
                    return Err(Error::Throttled {
                        retry_after: retry_after.max(1),
                    });
                }
                Decision::Check { delay_ms } => {
                    for key in &keys {
                        state
                            .failures
                            .entry(key.clone())
                            .or_default()
                            .push_back(now);
                    }
                    if state.failures.len() > MAX_KEYS {
                        self.shrink_failures(&mut state, now);
                    }
                    delay_ms
                }
            }
        };
        if delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        }
        Ok(Attempt {
            throttle: self,
            keys,
            at: now,
            _gates: permits,
        })
    }

    /// The rule on the failures of `keys` in the window; whether the pair is known.
    fn decide(&self, state: &mut State, keys: &[String; 3], now: i64) -> (Decision, bool) {
        let since = now - self.limits.window;
        for key in keys {
            if let Some(times) = state.failures.get_mut(key) {
                while times.front().is_some_and(|&t| t <= since) {
                    times.pop_front();
                }
            }
        }
        let empty = VecDeque::new();
        let times = |k: &str| -> Vec<i64> {
            state
                .failures
                .get(k)
                .unwrap_or(&empty)
                .iter()
                .copied()
                .collect()
        };
        let (pair, client, account) = (times(&keys[0]), times(&keys[1]), times(&keys[2]));
        let known_pair = state
            .known
            .get(&keys[0])
            .is_some_and(|&t| t > now - self.limits.known_for);
        let decision = s4::decide(
            &self.limits,
            Facts {
                pair: &pair,
                client: &client,
                account: &account,
                known_pair,
                now,
            },
        );
        (decision, known_pair)
    }

    /// Over [`MAX_KEYS`]: forgets what left the window, then, if that is not enough, the
    /// oldest tenth.
    fn shrink_failures(&self, state: &mut State, now: i64) {
        let since = now - self.limits.window;
        state
            .failures
            .retain(|_, times| times.back().is_some_and(|&t| t > since));
        if state.failures.len() > MAX_KEYS * 9 / 10 {
            evict_oldest(&mut state.failures, |times| {
                times.back().copied().unwrap_or(i64::MIN)
            });
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
    async fn attempts_at_once_count_like_attempts_one_after_the_other() {
        let t = LoginThrottle::new(ThrottleLimits::default());
        // A check in flight holds the client's gate: the next waits for its outcome.
        let first = t.begin(" Anna@X.example.", A, 1000).await.unwrap();
        let waiting = tokio::time::timeout(
            Duration::from_millis(20),
            t.begin("anna@x.example", A, 1000),
        )
        .await;
        assert!(waiting.is_err(), "one check per client at a time");
        drop(first);
        // Four more wrong ones (any spelling): the sixth is refused unchecked.
        for _ in 0..4 {
            drop(t.begin("ANNA@x.example", A, 1000).await.unwrap());
        }
        assert!(refused(t.begin("anna@x.example\t", A, 1001).await));
        // The real user, elsewhere, is not locked out.
        t.begin("anna@x.example", B, 1001)
            .await
            .unwrap()
            .succeeded();
        // The window moves on.
        assert!(t.begin("anna@x.example", A, 1000 + 901).await.is_ok());
    }

    #[tokio::test]
    async fn a_distributed_attack_gets_one_check_at_a_time_and_known_devices_pass() {
        let t = LoginThrottle::new(ThrottleLimits::default());
        // Anna's phone logged in from A before.
        t.begin("anna@x.example", A, 900).await.unwrap().succeeded();
        // An attacker's check from B is in flight: one from C waits for it.
        let b = t.begin("anna@x.example", B, 1000).await.unwrap();
        let c: IpAddr = "203.0.113.9".parse().unwrap();
        let waiting = tokio::time::timeout(
            Duration::from_millis(20),
            t.begin("anna@x.example", c, 1000),
        )
        .await;
        assert!(waiting.is_err(), "one check per account from new clients");
        // The known device does not queue behind the attack.
        let phone = tokio::time::timeout(
            Duration::from_millis(20),
            t.begin("anna@x.example", A, 1000),
        )
        .await;
        assert!(phone.is_ok_and(|a| a.is_ok()));
        drop(b);
    }

    #[tokio::test]
    async fn an_account_queue_is_bounded() {
        let t = Arc::new(LoginThrottle::new(ThrottleLimits::default()));
        let first = t.begin("anna@x.example", A, 1000).await.unwrap();
        let mut waiting = tokio::task::JoinSet::new();
        for i in 0..ACCOUNT_QUEUE {
            let t = t.clone();
            waiting.spawn(async move {
                let ip = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, i as u8));
                t.begin("anna@x.example", ip, 1000).await.map(|_| ())
            });
        }
        // Let them all reach the account's gate.
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        let over = t.begin("anna@x.example", B, 1000).await;
        assert!(refused(over), "the seventeenth waiter is refused");
        drop(first);
        waiting.abort_all();
    }

    #[test]
    fn evicting_keeps_the_newest() {
        let mut map: HashMap<String, i64> = (0..100).map(|i| (format!("k{i}"), i)).collect();
        evict_oldest(&mut map, |&t| t);
        assert_eq!(map.len(), 90);
        assert!(!map.contains_key("k9") && map.contains_key("k10"));
    }

    #[tokio::test]
    async fn right_passwords_at_once_all_get_in() {
        // A mail client opening a dozen connections at once, each with the right password.
        let t = Arc::new(LoginThrottle::new(ThrottleLimits::default()));
        let mut all = tokio::task::JoinSet::new();
        for _ in 0..12 {
            let t = t.clone();
            all.spawn(async move {
                let a = t.begin("anna@x.example", A, 1000).await?;
                tokio::task::yield_now().await;
                a.succeeded();
                Ok::<_, Error>(())
            });
        }
        while let Some(r) = all.join_next().await {
            r.unwrap().unwrap();
        }
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
        // On a dual-stack listener IPv4 clients come as ::ffff:a.b.c.d: each its own client.
        let mapped_a: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let mapped_b: IpAddr = "::ffff:198.51.100.7".parse().unwrap();
        assert_ne!(ip_key(mapped_a), ip_key(mapped_b));
        assert_eq!(ip_key(mapped_a), ip_key(A));
    }
}
