//! M9: maintenance mode of a mail service. "Mail is still received and stored, but
//! IMAP/POP3/webmail access is refused until it is lifted." Submission (SMTP AUTH) and
//! ManageSieve are mailbox access as well. The refusal holds for sessions opened before
//! maintenance began too: they are ended within seconds (`crate::sessions`).

use crate::error::Error;

/// How someone reaches a mail service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Mail from outside to its addresses (the MX), and what the queue delivers.
    Inbound,
    /// A mailbox user: IMAP, POP3, ManageSieve, SMTP submission, webmail.
    Mailbox,
}

/// `Ok` when `access` is allowed to a service whose maintenance flag is `in_maintenance`.
pub fn allows(access: Access, in_maintenance: bool, domain: &str) -> Result<(), Error> {
    if access == Access::Mailbox && in_maintenance {
        return Err(Error::Unavailable(format!(
            "the mail service of {domain} is in maintenance; access is suspended until it ends"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_still_arrives_mailboxes_wait() {
        assert!(allows(Access::Inbound, true, "acme.test").is_ok());
        assert!(allows(Access::Mailbox, false, "acme.test").is_ok());
        let e = allows(Access::Mailbox, true, "acme.test").unwrap_err();
        assert_eq!(e.code(), "unavailable");
        assert!(e.to_string().contains("acme.test is in maintenance"), "{e}");
    }
}
