//! M11: what the user of a mailbox (logged in with the address's own password: IMAP,
//! ManageSieve, the mail password on the API) may change of it. The administrator can
//! revoke each right; administrators and managers of the mail service are not bound by it
//! (their rights are M1's). Decided in the transaction that writes, on the address row as
//! it is there, so that a right revoked meanwhile holds, and an error reading it refuses.

use postfach_store::Address;

use crate::error::Error;

/// A right the administrator can take away from the mailbox user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Right {
    Password,
    Autoresponder,
    /// The special-use roles of folders (P5): which folder is Sent, Trash, Junk…
    SpecialFolders,
}

impl Right {
    fn what(self) -> &'static str {
        match self {
            Right::Password => "the password",
            Right::Autoresponder => "the autoresponder",
            Right::SpecialFolders => "the special folders",
        }
    }
}

/// `Ok` if the mailbox user of `a` may change what `right` covers.
pub fn mailbox_user_may(a: &Address, right: Right) -> Result<(), Error> {
    let allowed = match right {
        Right::Password => a.may_change_password,
        Right::Autoresponder => a.may_change_autoresponder,
        Right::SpecialFolders => a.may_change_folders,
    };
    if allowed {
        return Ok(());
    }
    Err(Error::Forbidden(format!(
        "the administrator of {} does not allow changing {} of {}@{}",
        a.domain,
        right.what(),
        a.local_part,
        a.domain
    )))
}

/// The rights a Sieve script needs when the mailbox user stores or activates it (a script is
/// another way to change what the rights cover):
/// - `vacation` (RFC 5230) and `notify` (RFC 5435) answer mail for the user: the
///   autoresponder right;
/// - `fileinto :specialuse … :create` (RFC 8579 §4, RFC 5490) gives the folder it creates a
///   role: the special-folders right.
///
/// Read from sieve-rs's compiled program, not from the text: escapes (`"vac\ation"`),
/// `text:` blocks and comments cannot hide an action. The program is only available through
/// its `Debug` form, so a string of the script that looks like an action can make a script
/// need a right it does not (refusal, never the other way round).
pub fn script_needs(compiled: &sieve::Sieve) -> Vec<Right> {
    let program = format!("{compiled:?}");
    let mut needs = Vec::new();
    if program.contains("Vacation(Vacation {") || program.contains("Notify(Notify {") {
        needs.push(Right::Autoresponder);
    }
    let creates_role = program
        .split("FileInto(FileInto {")
        .skip(1)
        .any(|fileinto| {
            fileinto.contains("create: true") && fileinto.contains("special_use: Some(")
        });
    if creates_role {
        needs.push(Right::SpecialFolders);
    }
    needs
}

/// Whether a compiled script includes other scripts (RFC 6609 `include`).
pub fn script_includes(compiled: &sieve::Sieve) -> bool {
    format!("{compiled:?}").contains("Include(Include {")
}

#[cfg(test)]
mod script_tests {
    use super::*;

    fn needs(script: &str) -> Vec<Right> {
        let compiled = sieve::Compiler::new().compile(script.as_bytes()).unwrap();
        script_needs(&compiled)
    }

    #[test]
    fn actions_that_change_what_a_right_covers_are_found() {
        assert_eq!(needs("require \"fileinto\";\nfileinto \"x\";\n"), vec![]);
        assert_eq!(
            needs("require \"vacation\";\nvacation \"away\";\n"),
            vec![Right::Autoresponder]
        );
        // An escape inside the capability name is still the capability (RFC 5228 §2.4.2).
        assert_eq!(
            needs("require \"vac\\ation\";\nif true { vacation :days 1 \"away\"; }\n"),
            vec![Right::Autoresponder]
        );
        assert_eq!(
            needs("require [\"enotify\"];\nnotify \"mailto:x@example.org\";\n"),
            vec![Right::Autoresponder]
        );
        let special = "require [\"fileinto\", \"special-use\", \"mailbox\"];\n";
        assert_eq!(
            needs(&format!(
                "{special}fileinto :specialuse \"\\\\Junk\" \"Spam\";\n"
            )),
            vec![]
        );
        assert_eq!(
            needs(&format!(
                "{special}fileinto :specialuse \"\\\\Junk\" :create \"Spam\";\n"
            )),
            vec![Right::SpecialFolders]
        );
        assert_eq!(
            needs(&format!("{special}fileinto :create \"Spam\";\n")),
            vec![]
        );
        let include = "require \"include\";\ninclude :personal \"away\";\n";
        let compiled = sieve::Compiler::new().compile(include.as_bytes()).unwrap();
        assert!(script_includes(&compiled));
    }
}
