//! A delivered message (any bytes after DATA): MIME parsing, spam rules and Bayes tokens,
//! the external banner, winmail.dat unpacking (F5, F8, F12).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    postfach_delivery::exercise(data);
});
