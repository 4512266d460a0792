//! O3: sending limits per 24 hours, per address, by offer ("every recipient counts: one
//! message to 42 people in CC/BCC = 42"), over a rolling window. Decided on the count as
//! written: the spool adds the message's recipients to the address's send log in the
//! transaction that queues it (under the address row's lock) and undoes both when
//! [`check_written`] refuses, so two sessions at once cannot both slip under the limit. The
//! SMTP session asks [`allows`] at each `RCPT` only to answer sooner.

use crate::error::Error;

/// The rolling window.
pub const WINDOW_SECONDS: i64 = 24 * 3600;

/// Whether `adding` more recipients fit next to the `sent` ones of the window.
pub fn allows(sent: i64, adding: i64, limit: i64) -> bool {
    sent.saturating_add(adding) <= limit
}

/// The rule on the window's count once this message's recipients are in it.
pub fn check_written(sent_with_this: i64, limit: i64) -> Result<(), Error> {
    if sent_with_this <= limit {
        Ok(())
    } else {
        Err(Error::SendingLimit { limit })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_itself_is_allowed_one_more_is_not() {
        assert!(allows(1439, 1, 1440));
        assert!(!allows(1439, 2, 1440));
        assert!(!allows(0, 1, 0), "an offer without sending");
        assert!(check_written(1440, 1440).is_ok());
        assert_eq!(
            check_written(1441, 1440).unwrap_err().code(),
            "sending_limit"
        );
    }
}
