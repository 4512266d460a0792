/*
 * SPDX-FileCopyrightText: 2020 Stalwart Labs LLC <hello@stalw.art>
 *
 * SPDX-License-Identifier: Apache-2.0 OR MIT
 */

use super::{ArcError, ChainValidation, Results, Seal, Signature};
use crate::common::parse::*;
use crate::{
    Error,
    common::{crypto::Algorithm, parse::TagParser},
    dkim::{Canonicalization, parse::SignatureParser},
};
use mail_parser::decoders::base64::base64_decode_stream;

pub(crate) const CV: u64 = (b'c' as u64) | ((b'v' as u64) << 8);

/// Postfach patch: a value must be a DKIM tag-list (RFC 6376 §3.2, which RFC 8617 §4.1.2 and
/// §4.1.3 refer to): `tag=value` specs separated by ";", an optional final ";", tag names
/// made of ALPHA then ALPHA / DIGIT / "_", and no tag twice ("Tags with duplicate names MUST
/// NOT occur"). Returns the tag names.
fn tag_names(value: &[u8]) -> crate::Result<Vec<String>> {
    let malformed = || Error::Arc(ArcError::BrokenChain);
    let text = std::str::from_utf8(value).map_err(|_| malformed())?;
    let specs: Vec<&str> = text.split(';').collect();
    let mut names: Vec<String> = Vec::new();
    for (n, spec) in specs.iter().enumerate() {
        if spec.trim().is_empty() {
            // Only the part after a final ";" may be empty.
            if n + 1 == specs.len() && n > 0 {
                continue;
            }
            return Err(malformed());
        }
        let (name, _) = spec.split_once('=').ok_or_else(malformed)?;
        let name = name.trim().to_ascii_lowercase();
        if !name.starts_with(|c: char| c.is_ascii_alphabetic())
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            || names.contains(&name)
        {
            return Err(malformed());
        }
        names.push(name);
    }
    Ok(names)
}

/// Postfach patch: the tags RFC 8617 requires, and rsa-sha1 refused (RFC 8301: it is not
/// a secure algorithm; no ARC implementation may rely on it).
fn require(names: &[String], required: &[&str], a: Algorithm) -> crate::Result<()> {
    if required.iter().all(|r| names.iter().any(|n| n == r)) && a != Algorithm::RsaSha1 {
        Ok(())
    } else {
        Err(Error::MissingParameters)
    }
}

impl Signature {
    #[allow(clippy::while_let_on_iterator)]
    pub fn parse(header: &'_ [u8]) -> crate::Result<Self> {
        let names = tag_names(header)?;
        let mut signature = Signature {
            a: Algorithm::RsaSha256,
            d: "".into(),
            s: "".into(),
            b: Vec::with_capacity(0),
            bh: Vec::with_capacity(0),
            h: Vec::with_capacity(0),
            z: Vec::with_capacity(0),
            l: 0,
            x: 0,
            t: 0,
            i: 0,
            ch: Canonicalization::Simple,
            cb: Canonicalization::Simple,
        };
        let header_len = header.len();
        let mut header = header.iter();

        while let Some(key) = header.key() {
            match key {
                I => {
                    signature.i = header.number().unwrap_or(0) as u32;
                    if !(1..=50).contains(&signature.i) {
                        return Err(Error::Arc(ArcError::InvalidInstance(signature.i)));
                    }
                }
                A => {
                    signature.a = header.algorithm()?;
                }
                B => {
                    signature.b =
                        base64_decode_stream(&mut header, header_len, b';').ok_or(Error::Base64)?
                }
                BH => {
                    signature.bh =
                        base64_decode_stream(&mut header, header_len, b';').ok_or(Error::Base64)?
                }
                C => {
                    let (ch, cb) = header.canonicalization(Canonicalization::Simple)?;
                    signature.ch = ch;
                    signature.cb = cb;
                }
                D => signature.d = header.text(true),
                H => signature.h = header.items(),
                L => signature.l = header.number().unwrap_or(0),
                S => signature.s = header.text(true),
                T => signature.t = header.number().unwrap_or(0),
                X => signature.x = header.number().unwrap_or(0),
                Z => signature.z = header.headers_qp(),
                _ => header.ignore(),
            }
        }

        // RFC 8617 §4.1.2: the AMS has the DKIM-Signature's required tags (but v=), and its
        // h= never covers ARC-Seal (§5.1.1: that would make the seal sign itself).
        require(&names, &["a", "b", "bh", "d", "h", "i", "s"], signature.a)?;
        if signature
            .h
            .iter()
            .any(|h| h.trim().eq_ignore_ascii_case("arc-seal"))
        {
            return Err(Error::Arc(ArcError::HasHeaderTag));
        }
        if !signature.d.is_empty()
            && !signature.s.is_empty()
            && !signature.b.is_empty()
            && !signature.bh.is_empty()
            && !signature.h.is_empty()
        {
            Ok(signature)
        } else {
            Err(Error::MissingParameters)
        }
    }
}

impl Seal {
    #[allow(clippy::while_let_on_iterator)]
    pub fn parse(header: &'_ [u8]) -> crate::Result<Self> {
        let names = tag_names(header)?;
        let mut seal = Seal {
            a: Algorithm::RsaSha256,
            d: "".into(),
            s: "".into(),
            b: Vec::with_capacity(0),
            t: 0,
            i: 0,
            cv: ChainValidation::None,
        };
        let header_len = header.len();
        let mut header = header.iter();
        let mut cv = None;

        while let Some(key) = header.key() {
            match key {
                I => {
                    seal.i = header.number().unwrap_or(0) as u32;
                }
                A => {
                    seal.a = header.algorithm()?;
                }
                B => {
                    seal.b =
                        base64_decode_stream(&mut header, header_len, b';').ok_or(Error::Base64)?
                }
                D => seal.d = header.text(true),
                S => seal.s = header.text(true),
                T => seal.t = header.number().unwrap_or(0),
                CV => {
                    match header.next_skip_whitespaces().unwrap_or(0) {
                        b'n' | b'N' if header.match_bytes(b"one") => {
                            cv = ChainValidation::None.into();
                        }
                        b'f' | b'F' if header.match_bytes(b"ail") => {
                            cv = ChainValidation::Fail.into();
                        }
                        b'p' | b'P' if header.match_bytes(b"ass") => {
                            cv = ChainValidation::Pass.into();
                        }
                        _ => return Err(Error::Arc(ArcError::InvalidCV)),
                    }
                    if !header.seek_tag_end() {
                        return Err(Error::Arc(ArcError::InvalidCV));
                    }
                }
                H => {
                    return Err(Error::Arc(ArcError::HasHeaderTag));
                }
                _ => header.ignore(),
            }
        }
        seal.cv = cv.ok_or(Error::Arc(ArcError::InvalidCV))?;
        // RFC 8617 §4.1.3: a, b, cv, d, i, s and t must all be present.
        require(&names, &["a", "b", "cv", "d", "i", "s", "t"], seal.a)?;

        if !(1..=50).contains(&seal.i) {
            Err(Error::Arc(ArcError::InvalidInstance(seal.i)))
        } else if !seal.d.is_empty() && !seal.s.is_empty() && !seal.b.is_empty() {
            Ok(seal)
        } else {
            Err(Error::MissingParameters)
        }
    }
}

impl Results {
    #[allow(clippy::while_let_on_iterator)]
    pub fn parse(header: &'_ [u8]) -> crate::Result<Self> {
        let mut results = Results { i: 0 };
        let mut header = header.iter();

        while let Some(key) = header.key() {
            match key {
                I => {
                    results.i = header.number().unwrap_or(0) as u32;
                    break;
                }
                _ => header.ignore(),
            }
        }

        if (1..=50).contains(&results.i) {
            Ok(results)
        } else {
            Err(Error::Arc(ArcError::InvalidInstance(results.i)))
        }
    }
}
