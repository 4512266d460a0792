//! ManageSieve command reader (RFC 5804 §4): any bytes a client may send.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    postfach_managesieve::parse::exercise(data);
});
