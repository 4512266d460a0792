//! The CSV import of addresses (M6): any bytes an administrator may upload.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = postfach_core::csvio::parse_import(data, 10_000);
});
