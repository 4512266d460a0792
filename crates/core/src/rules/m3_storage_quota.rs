//! M3: an address's storage quota. Every message that comes to stay in a mailbox — a
//! delivery (each of its copies), an IMAP APPEND, a COPY — is counted against it; removing
//! mail never is refused. The rule is decided on the usage *as written*: the writer adds the
//! message's size in its transaction, reads back the usage it left (under the address row's
//! lock), and undoes everything when [`check_written`] refuses. Earlier looks at the usage
//! (SMTP `RCPT` with the declared `SIZE`, RFC 1870; the end of `DATA`; a large APPEND before
//! its file is written) ask [`has_room`] only to answer sooner, never instead.

use postfach_store::Usage;

use crate::error::Error;

/// Whether a message of `size` bytes (0 when not known yet) still fits: a mailbox whose
/// usage is at its quota has no room even for a message of unknown size.
pub fn has_room(used: i64, quota: i64, size: i64) -> bool {
    used.saturating_add(size.max(1)) <= quota
}

/// The rule on a write that added `added` bytes and left `usage`: `Ok` or the refusal.
pub fn check_written(usage: Usage, added: i64) -> Result<(), Error> {
    if added <= 0 || usage.used <= usage.quota {
        return Ok(());
    }
    Err(full(usage.used - added, usage.quota))
}

/// The refusal (IMAP `NO [OVERQUOTA]` (RFC 9208), SMTP `452 4.2.2`, a `552 5.2.2` bounce).
pub fn full(used: i64, quota: i64) -> Error {
    const MIB: i64 = 1024 * 1024;
    Error::OverQuota(format!(
        "the mailbox is full ({} of {} MiB in use)",
        used.max(0) / MIB,
        quota / MIB
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_full_fits_one_byte_more_does_not() {
        assert!(has_room(90, 100, 10));
        assert!(!has_room(90, 100, 11));
        // Unknown size: room only while below the quota.
        assert!(has_room(99, 100, 0));
        assert!(!has_room(100, 100, 0));
        // No overflow into a negative usage that would fit.
        assert!(!has_room(i64::MAX - 1, i64::MAX - 1, 5));
        assert!(
            check_written(
                Usage {
                    used: 100,
                    quota: 100
                },
                10
            )
            .is_ok()
        );
        let e = check_written(
            Usage {
                used: 101,
                quota: 100,
            },
            10,
        )
        .unwrap_err();
        assert_eq!(e.code(), "over_quota");
        // Taking mail out is never refused, even over the quota (a lowered quota).
        assert!(
            check_written(
                Usage {
                    used: 500,
                    quota: 100
                },
                -10
            )
            .is_ok()
        );
    }
}
