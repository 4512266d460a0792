//! The IMAP command path: bytes as a client sends them, in chunks, through the
//! framer (literals, continuation requests, limits), imap-codec and the LIST/CREATE shim.
//! `postfach_imap::framing::exercise` asserts it neither panics, loops nor hoards input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    postfach_imap::framing::exercise(data);
});
