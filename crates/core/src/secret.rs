//! Secrets: argon2id password hashes (S1), generated passwords, API tokens.
//!
//! Hashing is CPU-heavy by design (~tens of ms); it runs on the blocking thread pool so that a
//! burst of logins cannot stall the async workers that serve mail.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Why a SASL PLAIN response (RFC 4616) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlainError {
    /// Not `[authzid] NUL authcid NUL passwd`.
    Malformed,
    /// An authorization identity other than the login (we do not let anyone act as another).
    AuthzMismatch,
}

/// Splits a decoded SASL PLAIN response into (login, password); every login surface (SMTP,
/// IMAP, POP3, ManageSieve) uses this one.
pub fn sasl_plain(decoded: &[u8]) -> std::result::Result<(String, String), PlainError> {
    let mut parts = decoded.split(|&b| b == 0);
    let (Some(authz), Some(user), Some(pass), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(PlainError::Malformed);
    };
    if !authz.is_empty() && !authz.eq_ignore_ascii_case(user) {
        return Err(PlainError::AuthzMismatch);
    }
    Ok((
        String::from_utf8_lossy(user).into_owned(),
        String::from_utf8_lossy(pass).into_owned(),
    ))
}

/// argon2id (the crate's default algorithm) with its default, OWASP-recommended parameters.
pub fn hash_password_blocking(password: &str) -> Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(format!("password hashing failed: {e}")))
}

/// Verifies against a stored PHC string; a malformed stored hash never verifies.
pub fn verify_password_blocking(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A job for the hashing threads.
type HashJob = Box<dyn FnOnce() + Send>;

/// Runs `f` on one of a few dedicated hashing threads (one per core) and waits for it.
///
/// Why not `spawn_blocking`: each argon2id computation allocates its 19 MiB working memory.
/// Spread over tokio's many blocking threads, glibc gives each thread its own malloc arena and
/// keeps the freed 19 MiB in every one of them (measured by bench/soak: ~900 MiB RSS after a
/// login storm). On a fixed set of threads the same memory is reused, and a flood of logins
/// queues here instead of taking every core from the sessions.
async fn on_hash_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    static POOL: std::sync::OnceLock<std::sync::Mutex<std::sync::mpsc::Sender<HashJob>>> =
        std::sync::OnceLock::new();
    let pool = POOL.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<HashJob>();
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        for i in 0..threads {
            let rx = rx.clone();
            let _ = std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    loop {
                        // The lock is held only while waiting for the next job.
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match job {
                            // A panicking job loses its answer (the caller sees None), not
                            // the thread.
                            Ok(job) => {
                                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                            }
                            Err(_) => return,
                        }
                    }
                });
        }
        std::sync::Mutex::new(tx)
    });
    let (done, result) = tokio::sync::oneshot::channel();
    let job: HashJob = Box::new(move || {
        let _ = done.send(f());
    });
    pool.lock().ok()?.send(job).ok()?;
    result.await.ok()
}

pub async fn hash_password(password: &str) -> Result<String> {
    let password = password.to_string();
    on_hash_thread(move || hash_password_blocking(&password))
        .await
        .unwrap_or_else(|| Err(Error::Internal("password hashing threads stopped".into())))
}

pub async fn verify_password(password: &str, phc: &str) -> bool {
    let (password, phc) = (password.to_string(), phc.to_string());
    on_hash_thread(move || verify_password_blocking(&password, &phc))
        .await
        .unwrap_or(false)
}

/// A hash that no password verifies against, used to spend the same time on unknown logins as
/// on known ones (so response time does not reveal which logins exist).
pub const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc";

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the OS random number generator failed");
    b
}

/// A generated password that passes the strength rule: 20 characters from an alphabet without
/// look-alikes (0/O, 1/l/I), always with lower, upper, digit and symbol.
/// The password a caller gave, or a generated one when none was given (S1: "no password
/// given, generate one", for users and addresses alike): (the password to use, the generated
/// one to show once).
pub fn given_or_generated(password: Option<&str>) -> (String, Option<String>) {
    match password {
        Some(p) => (p.to_string(), None),
        None => {
            let p = generate_password();
            (p.clone(), Some(p))
        }
    }
}

pub fn generate_password() -> String {
    const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
    const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    const DIGIT: &[u8] = b"23456789";
    const SYMBOL: &[u8] = b"-_.:+=!";
    loop {
        let bytes = random_bytes::<20>();
        let pw: String = bytes
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                let set = match i % 6 {
                    0 | 3 => LOWER,
                    1 | 4 => UPPER,
                    2 => DIGIT,
                    _ => SYMBOL,
                };
                set[b as usize % set.len()] as char
            })
            .collect();
        let distinct = {
            let mut c: Vec<char> = pw.chars().collect();
            c.sort_unstable();
            c.dedup();
            c.len()
        };
        if distinct >= 8 {
            return pw;
        }
    }
}

/// `n` random bytes as lower-case hex (message and queue identifiers).
pub fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).expect("the OS random number generator failed");
    hex::encode(b)
}

/// A new bearer token: `PREFIX_` + 32 random bytes in hex. Only its SHA-256 is stored.
pub fn generate_token(prefix: &str) -> String {
    format!("{prefix}_{}", hex::encode(random_bytes::<32>()))
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PasswordRules;

    #[test]
    fn hash_and_verify() {
        let h = hash_password_blocking("G7#kq2LmWz!").unwrap();
        assert!(h.starts_with("$argon2id$"), "argon2id PHC string: {h}");
        assert!(verify_password_blocking("G7#kq2LmWz!", &h));
        assert!(!verify_password_blocking("G7#kq2LmWz?", &h));
        assert!(!verify_password_blocking("x", "not a hash"));
        assert!(
            PasswordHash::new(DUMMY_HASH).is_ok(),
            "the dummy hash must be well-formed"
        );
        assert!(!verify_password_blocking("", DUMMY_HASH));
    }

    #[test]
    fn generated_passwords_are_strong_and_distinct() {
        let a = generate_password();
        assert_ne!(a, generate_password());
        for _ in 0..50 {
            let p = generate_password();
            crate::rules::s1_passwords::strong_enough(&p, &PasswordRules::default(), None).unwrap();
        }
        let t = generate_token("pfk");
        assert!(t.starts_with("pfk_") && t.len() == 68);
        assert_eq!(token_hash(&t).len(), 64);
    }
}
