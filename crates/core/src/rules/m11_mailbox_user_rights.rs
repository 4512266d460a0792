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
