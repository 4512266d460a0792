//! Per-IP protection of the protocol listeners (SMTP, IMAP, POP3): simultaneous connections,
//! new connections per minute and commands per minute. Past a limit the protocol turns the
//! client away in its own words (`421 4.7.0`, `* BYE`, `-ERR [SYS/TEMP]`). Counters live in
//! memory per node and forget idle addresses.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Default)]
struct PerIp {
    open: usize,
    /// (minute, count) fixed windows.
    connects: (u64, u32),
    commands: (u64, u32),
}

pub struct Limiter {
    max_open: usize,
    connects_per_minute: u32,
    commands_per_minute: u32,
    started: Instant,
    state: Mutex<HashMap<IpAddr, PerIp>>,
}

/// Holds one connection slot; released on drop.
pub struct ConnectionGuard {
    limiter: Arc<Limiter>,
    ip: IpAddr,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let mut state = self.limiter.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = state.get_mut(&self.ip) {
            s.open = s.open.saturating_sub(1);
        }
    }
}

impl Limiter {
    pub fn new(max_open: usize, connects_per_minute: u32, commands_per_minute: u32) -> Arc<Self> {
        Arc::new(Limiter {
            max_open,
            connects_per_minute,
            commands_per_minute,
            started: Instant::now(),
            state: Mutex::new(HashMap::new()),
        })
    }

    fn minute(&self) -> u64 {
        self.started.elapsed().as_secs() / 60
    }

    fn bump(window: &mut (u64, u32), minute: u64) -> u32 {
        if window.0 != minute {
            *window = (minute, 0);
        }
        window.1 += 1;
        window.1
    }

    /// A connection from `ip` may proceed (Ok, holding a slot) or must be turned away.
    pub fn connect(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionGuard, &'static str> {
        let minute = self.minute();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.len() > 100_000 {
            state.retain(|_, s| s.open > 0 || s.connects.0 == minute || s.commands.0 == minute);
        }
        let s = state.entry(ip).or_default();
        if s.open >= self.max_open {
            return Err("Too many connections from your address; try again later");
        }
        if Self::bump(&mut s.connects, minute) > self.connects_per_minute {
            return Err("Too many connections from your address per minute; try again later");
        }
        s.open += 1;
        Ok(ConnectionGuard {
            limiter: self.clone(),
            ip,
        })
    }

    /// Counts one command from `ip`; false once the minute's allowance is used up.
    pub fn command(&self, ip: IpAddr) -> bool {
        let minute = self.minute();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let s = state.entry(ip).or_default();
        Self::bump(&mut s.commands, minute) <= self.commands_per_minute
    }
}

/// A process-wide budget of bytes that messages in transit may hold in memory (SMTP `DATA`
/// and `BDAT` buffers, and the copies the verdict on a message makes). Each session holds
/// its part in a [`Held`]; past the budget a session's message is refused with a temporary
/// error instead of growing the process without bound.
pub struct MemoryBudget {
    used: std::sync::atomic::AtomicUsize,
    cap: usize,
}

impl MemoryBudget {
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(MemoryBudget {
            used: Default::default(),
            cap,
        })
    }

    /// A session's part, empty so far.
    pub fn hold(self: &Arc<Self>) -> Held {
        Held {
            budget: self.clone(),
            bytes: 0,
        }
    }

    pub fn used(&self) -> usize {
        self.used.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Bytes of a [`MemoryBudget`] one session holds; given back on drop.
pub struct Held {
    budget: Arc<MemoryBudget>,
    bytes: usize,
}

impl Held {
    /// Holds `total` bytes from now on (more or fewer than before); false, holding what it
    /// held before, when the budget has no room for the growth.
    pub fn set(&mut self, total: usize) -> bool {
        use std::sync::atomic::Ordering;
        if total <= self.bytes {
            self.budget
                .used
                .fetch_sub(self.bytes - total, Ordering::Relaxed);
            self.bytes = total;
            return true;
        }
        let grow = total - self.bytes;
        let cap = self.budget.cap;
        let taken = self
            .budget
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(grow).filter(|&n| n <= cap)
            });
        if taken.is_ok() {
            self.bytes = total;
        }
        taken.is_ok()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.set(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_budget_is_shared_and_given_back() {
        let b = MemoryBudget::new(100);
        let (mut one, mut two) = (b.hold(), b.hold());
        assert!(one.set(60));
        assert!(!two.set(50), "past the budget");
        assert!(two.set(40));
        assert_eq!(b.used(), 100);
        assert!(one.set(10));
        assert!(two.set(90));
        drop(two);
        drop(one);
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn limits_connections_and_commands() {
        let l = Limiter::new(2, 100, 3);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let a = l.connect(ip).unwrap();
        let _b = l.connect(ip).unwrap();
        assert!(l.connect(ip).is_err(), "third simultaneous connection");
        drop(a);
        assert!(l.connect(ip).is_ok(), "a slot was released");
        assert!(
            l.connect("192.0.2.2".parse().unwrap()).is_ok(),
            "other addresses are separate"
        );
        assert!(l.command(ip) && l.command(ip) && l.command(ip));
        assert!(!l.command(ip));
        let r = Limiter::new(100, 2, 100);
        let _x = r.connect(ip).unwrap();
        let _y = r.connect(ip).unwrap();
        assert!(r.connect(ip).is_err(), "connection rate");
    }
}
