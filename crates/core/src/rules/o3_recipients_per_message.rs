//! O3: "Max 100 recipients per message, whatever the field" (the operator may set another
//! maximum, `smtp.max_recipients`). Every distinct envelope recipient counts; past the
//! maximum a recipient is refused with a temporary error (RFC 5321 §4.5.3.1.10), so that the
//! client sends the rest in another transaction.

/// Whether a message that has `so_far` recipients may take one more.
pub fn allows_another(so_far: usize, max: usize) -> bool {
    so_far < max
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hundredth_is_taken_the_hundred_and_first_is_not() {
        assert!(allows_another(99, 100));
        assert!(!allows_another(100, 100));
    }
}
