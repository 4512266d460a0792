//! Message data as it arrives after DATA (F4, RFC 5321 §4.1.1.4): the end-of-data scanner and
//! the strict header-section reader that every verdict shares. Invariants, not just "no
//! panic": the scanner finds the same end whether the bytes come at once or one by one, that
//! end is always a real `<CRLF>.<CRLF>`, and a header section that was accepted is rebuilt
//! byte for byte.
#![no_main]

use postfach_core::mail::header_block::{HeaderBlock, content_fault, strip_our_results};
use postfach_smtp::data::DataScanner;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut whole = Vec::new();
    let at_once = DataScanner::default().ingest(data, &mut whole);
    let mut bytewise = Vec::new();
    let mut scanner = DataScanner::default();
    let mut one_by_one = None;
    for (i, b) in data.iter().enumerate() {
        if scanner.ingest(std::slice::from_ref(b), &mut bytewise).is_some() {
            one_by_one = Some(i + 1);
            break;
        }
    }
    assert_eq!(at_once, one_by_one);
    if let Some(n) = at_once {
        assert_eq!(whole, bytewise);
        let framed = [b"\r\n".as_slice(), &data[..n]].concat();
        assert!(framed.ends_with(b"\r\n.\r\n"));
    }
    let message = &whole;
    if content_fault(message).is_none()
        && let Ok(block) = HeaderBlock::parse(message)
    {
        assert_eq!(&block.without(|_, _| false), message);
        let _ = block.author();
        let _ = block.agrees_with_mail_auth();
        let _ = strip_our_results(&block, "mail.example.net");
    }
});
