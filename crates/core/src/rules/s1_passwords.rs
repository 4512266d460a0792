//! S1: what makes a password strong enough (the seeds: "the password must be strong enough",
//! for mail passwords, Manager passwords and CSV imports alike). Generating one when none is
//! given is `secret::given_or_generated`; hashing (argon2id) is `secret.rs`.

use crate::error::{Error, Result};
use crate::policy::PasswordRules;

/// Passwords that people pick first; compared after lower-casing and stripping trailing digits
/// and symbols ("Passwort123!" is "passwort").
const COMMON_STEMS: &[&str] = &[
    "password",
    "passwort",
    "motdepasse",
    "passwd",
    "qwerty",
    "qwertz",
    "azerty",
    "letmein",
    "welcome",
    "willkommen",
    "bienvenue",
    "admin",
    "administrator",
    "iloveyou",
    "monkey",
    "dragon",
    "sunshine",
    "princess",
    "football",
    "baseball",
    "master",
    "secret",
    "geheim",
    "changeme",
    "abc",
    "abcdef",
    "test",
    "hallo",
    "hello",
    "summer",
    "winter",
    "sommer",
];

/// M3/M6 strength rule ("the password must be strong enough"): at least `min_length`
/// characters; at least three of lower case, upper case, digits, other characters — or a
/// passphrase of 16+ characters using two of them; not mostly one character; not a common
/// password; not containing the address's local part.
pub fn strong_enough(password: &str, rules: &PasswordRules, context: Option<&str>) -> Result<()> {
    let n = password.chars().count();
    let weak = |why: String| Err(Error::WeakPassword(why));
    if password.chars().any(char::is_control) {
        return weak("control characters are not allowed".into());
    }
    if password.trim() != password {
        return weak("it starts or ends with a space".into());
    }
    if n < rules.min_length {
        return weak(format!(
            "use at least {} characters (this one has {n})",
            rules.min_length
        ));
    }
    if n > 256 {
        return weak("use at most 256 characters".into());
    }
    let classes = [
        password.chars().any(|c| c.is_lowercase()),
        password.chars().any(|c| c.is_uppercase()),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| !c.is_alphanumeric()),
    ]
    .iter()
    .filter(|&&b| b)
    .count();
    if classes < 3 && !(n >= 16 && classes >= 2) {
        return weak(
            "mix at least three of: lower-case letters, upper-case letters, digits, symbols (or use 16+ characters)"
                .into(),
        );
    }
    let mut distinct: Vec<char> = password.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 6 {
        return weak("too many repeated characters".into());
    }
    let lower = password.to_lowercase();
    let stem = lower.trim_end_matches(|c: char| !c.is_alphabetic());
    let stem = stem.trim_start_matches(|c: char| !c.is_alphabetic());
    if COMMON_STEMS.contains(&stem) {
        return weak("it is a commonly used password".into());
    }
    if let Some(ctx) = context {
        let ctx = ctx.to_lowercase();
        if ctx.chars().count() >= 3 && lower.contains(&ctx) {
            return weak(format!("it contains the name {ctx:?}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_rule() {
        let r = PasswordRules::default();
        for ok in ["Tr0ub4dor&3x", "correct horse battery staple", "G7#kq2LmWz"] {
            assert!(strong_enough(ok, &r, None).is_ok(), "{ok:?} should pass");
        }
        for bad in [
            "short1A!",
            "alllowercaseletters",
            "Passwort123!",
            "aaaaaaaaaaaaaaaaaaaa1A",
            " Leading1spaceX",
            "ONLYUPPER12345",
        ] {
            assert!(strong_enough(bad, &r, None).is_err(), "{bad:?} should fail");
        }
        assert!(strong_enough("Jean.Dupont-2024!", &r, Some("jean.dupont")).is_err());
    }
}
