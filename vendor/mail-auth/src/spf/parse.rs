/*
 * SPDX-FileCopyrightText: 2020 Stalwart Labs LLC <hello@stalw.art>
 *
 * SPDX-License-Identifier: Apache-2.0 OR MIT
 */

use super::{Directive, Macro, Mechanism, Qualifier, Spf, Variable};
use crate::DnsError;
use crate::{
    Error, Version,
    common::parse::TxtRecordParser,
};
use std::{
    net::{Ipv4Addr, Ipv6Addr},
    slice::Iter,
};

/// The netmask of a CIDR length (0 matches every address; a plain shift by 32 overflows).
fn mask4(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - len as u32).unwrap_or(0)
}

fn mask6(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - len as u32).unwrap_or(0)
}

impl TxtRecordParser for Spf {
    /// RFC 7208 §4.5: the records that start with "v=spf1"; none is "none", more than one
    /// is "permerror" (Postfach patch: the first that parsed was used).
    fn select(records: &[Vec<u8>]) -> crate::Result<Self> {
        let mut spf = records.iter().filter(|r| is_spf_record(r));
        match (spf.next(), spf.next()) {
            (None, _) => Err(Error::Dns(DnsError::InvalidRecordType)),
            (Some(one), None) => Self::parse(one),
            (Some(_), Some(_)) => Err(Error::ParseError),
        }
    }

    /// A strict reading of an SPF record by the ABNF of RFC 7208 §12 (Postfach patch: the
    /// original reader accepted control characters, unknown mechanisms, malformed modifiers,
    /// out-of-range CIDR lengths and domain-specs without a valid top label). Anything that
    /// does not match the grammar is a syntax error, which check_host() turns into
    /// "permerror" (§4.6).
    fn parse(bytes: &[u8]) -> crate::Result<Spf> {
        if !is_spf_record(bytes) {
            return Err(Error::Dns(DnsError::InvalidRecordType));
        }
        // §4.6.1 / §12: terms are separated by 1*SP; every other character is VCHAR.
        if bytes.iter().any(|&b| b != b' ' && !(0x21..=0x7e).contains(&b)) {
            return Err(Error::ParseError);
        }
        let mut redirect = None;
        let mut exp = None;
        let mut directives = Vec::new();
        for term in bytes[6..].split(|&b| b == b' ').filter(|t| !t.is_empty()) {
            let split = term.iter().position(|&b| matches!(b, b':' | b'/' | b'='));
            if let Some(p) = split
                && term[p] == b'='
            {
                // modifier = redirect / explanation / unknown-modifier (§6, §12):
                // name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." )
                let (name, value) = (&term[..p], &term[p + 1..]);
                if !name.first().is_some_and(u8::is_ascii_alphabetic)
                    || !name
                        .iter()
                        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
                {
                    return Err(Error::ParseError);
                }
                if name.eq_ignore_ascii_case(b"redirect") {
                    if redirect.is_some() {
                        return Err(Error::ParseError);
                    }
                    redirect = Some(domain_spec(value)?);
                } else if name.eq_ignore_ascii_case(b"exp") {
                    if exp.is_some() {
                        return Err(Error::ParseError);
                    }
                    exp = Some(domain_spec(value)?);
                } else if !value.is_empty() {
                    // unknown-modifier: the value must still be a macro-string.
                    value.iter().macro_string(true)?;
                }
                continue;
            }
            let (qualifier, rest) = match term.first() {
                Some(b'+') => (Qualifier::Pass, &term[1..]),
                Some(b'-') => (Qualifier::Fail, &term[1..]),
                Some(b'~') => (Qualifier::SoftFail, &term[1..]),
                Some(b'?') => (Qualifier::Neutral, &term[1..]),
                _ => (Qualifier::Pass, term),
            };
            let end = rest
                .iter()
                .position(|&b| matches!(b, b':' | b'/'))
                .unwrap_or(rest.len());
            let (name, args) = (rest[..end].to_ascii_lowercase(), &rest[end..]);
            let target = |args: &[u8]| -> crate::Result<Macro> {
                match args.strip_prefix(b":") {
                    Some(spec) => domain_spec(spec),
                    None => Err(Error::ParseError),
                }
            };
            let mechanism = match name.as_slice() {
                b"all" if args.is_empty() => Mechanism::All,
                b"include" => Mechanism::Include {
                    macro_string: target(args)?,
                },
                b"exists" => Mechanism::Exists {
                    macro_string: target(args)?,
                },
                b"ptr" => Mechanism::Ptr {
                    macro_string: if args.is_empty() {
                        Macro::None
                    } else {
                        target(args)?
                    },
                },
                b"a" | b"mx" => {
                    let (spec, ip4, ip6) = split_dual_cidr(args)?;
                    let macro_string = if spec.is_empty() {
                        Macro::None
                    } else {
                        target(spec)?
                    };
                    let (ip4_mask, ip6_mask) = (mask4(ip4), mask6(ip6));
                    if name == b"a" {
                        Mechanism::A {
                            macro_string,
                            ip4_mask,
                            ip6_mask,
                        }
                    } else {
                        Mechanism::Mx {
                            macro_string,
                            ip4_mask,
                            ip6_mask,
                        }
                    }
                }
                b"ip4" => {
                    let net = args.strip_prefix(b":").ok_or(Error::ParseError)?;
                    let (addr, len) = match net.iter().position(|&b| b == b'/') {
                        Some(p) => (&net[..p], cidr(&net[p + 1..], 32)?),
                        None => (net, 32),
                    };
                    let addr: Ipv4Addr = std::str::from_utf8(addr)
                        .ok()
                        .and_then(|a| a.parse().ok())
                        .ok_or(Error::ParseError)?;
                    Mechanism::Ip4 {
                        addr,
                        mask: mask4(len),
                    }
                }
                b"ip6" => {
                    let net = args.strip_prefix(b":").ok_or(Error::ParseError)?;
                    let (addr, len) = match net.iter().rposition(|&b| b == b'/') {
                        Some(p) => (&net[..p], cidr(&net[p + 1..], 128)?),
                        None => (net, 128),
                    };
                    let addr: Ipv6Addr = std::str::from_utf8(addr)
                        .ok()
                        .and_then(|a| a.parse().ok())
                        .ok_or(Error::ParseError)?;
                    Mechanism::Ip6 {
                        addr,
                        mask: mask6(len),
                    }
                }
                _ => return Err(Error::ParseError),
            };
            directives.push(Directive::new(qualifier, mechanism));
        }
        Ok(Spf {
            version: Version::V1,
            directives: directives.into_boxed_slice(),
            redirect,
            exp,
            ra: None,
            rp: 100,
            rr: u8::MAX,
        })
    }
}

/// RFC 7208 §4.5: a record is an SPF record when it starts with "v=spf1" (any case) followed
/// by a space or its end.
pub(crate) fn is_spf_record(bytes: &[u8]) -> bool {
    bytes.len() >= 6
        && bytes[..6].eq_ignore_ascii_case(b"v=spf1")
        && bytes.get(6).is_none_or(|&b| b == b' ')
}

/// ip4-cidr-length / ip6-cidr-length (§12): "0" / %x31-39 0*1DIGIT (0*2DIGIT for ip6), at most
/// `max`.
fn cidr(digits: &[u8], max: u8) -> crate::Result<u8> {
    if digits.is_empty()
        || digits.len() > 3
        || !digits.iter().all(u8::is_ascii_digit)
        || (digits.len() > 1 && digits[0] == b'0')
    {
        return Err(Error::ParseError);
    }
    let v: u32 = digits.iter().fold(0, |v, d| v * 10 + (d - b'0') as u32);
    if v > max as u32 {
        return Err(Error::ParseError);
    }
    Ok(v as u8)
}

/// Splits `[":" domain-spec] [dual-cidr-length]` (§5.3, §5.4): the CIDR lengths are the
/// trailing "/N", "//M" or "/N//M" made of digits only (a domain-spec may itself contain "/").
fn split_dual_cidr(args: &[u8]) -> crate::Result<(&[u8], u8, u8)> {
    let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    let mut rest = args;
    let mut ip6 = 128;
    if let Some(p) = rest.windows(2).rposition(|w| w == b"//")
        && digits(&rest[p + 2..])
    {
        ip6 = cidr(&rest[p + 2..], 128)?;
        rest = &rest[..p];
    }
    let mut ip4 = 32;
    if let Some(p) = rest.iter().rposition(|&b| b == b'/')
        && digits(&rest[p + 1..])
    {
        ip4 = cidr(&rest[p + 1..], 32)?;
        rest = &rest[..p];
    }
    if !rest.is_empty() && rest[0] != b':' {
        return Err(Error::ParseError);
    }
    Ok((rest, ip4, ip6))
}

/// domain-spec = macro-string domain-end; domain-end = ( "." toplabel [ "." ] ) / macro-expand
/// (§7.1). The macro-string is parsed by the crate's macro reader; the domain-end is checked
/// on the text, since "%%", "%_" and "%-" are macro-expands too.
fn domain_spec(spec: &[u8]) -> crate::Result<Macro> {
    if spec.is_empty() {
        return Err(Error::ParseError);
    }
    let (macro_string, _) = spec.iter().macro_string(false)?;
    if !ends_with_macro_expand(spec) {
        let text = spec.strip_suffix(b".").unwrap_or(spec);
        let Some(dot) = text.iter().rposition(|&b| b == b'.') else {
            return Err(Error::ParseError);
        };
        if !is_toplabel(&text[dot + 1..]) {
            return Err(Error::ParseError);
        }
    }
    Ok(macro_string)
}

fn ends_with_macro_expand(spec: &[u8]) -> bool {
    let mut i = 0;
    let mut last_expand_end = usize::MAX;
    while i < spec.len() {
        if spec[i] == b'%' {
            match spec.get(i + 1) {
                Some(b'{') => match spec[i..].iter().position(|&b| b == b'}') {
                    Some(close) => {
                        i += close + 1;
                        last_expand_end = i;
                        continue;
                    }
                    None => return false,
                },
                Some(b'%' | b'_' | b'-') => {
                    i += 2;
                    last_expand_end = i;
                    continue;
                }
                _ => return false,
            }
        }
        i += 1;
    }
    last_expand_end == spec.len()
}

/// toplabel = ( *alphanum ALPHA *alphanum ) / ( 1*alphanum "-" *( alphanum / "-" ) alphanum )
fn is_toplabel(label: &[u8]) -> bool {
    if label.is_empty() || !label.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-') {
        return false;
    }
    if label.contains(&b'-') {
        label[0].is_ascii_alphanumeric()
            && label[label.len() - 1].is_ascii_alphanumeric()
            && label[0] != b'-'
    } else {
        label.iter().any(u8::is_ascii_alphabetic)
    }
}

pub(crate) trait SPFParser: Sized {
    fn macro_string(&mut self, is_exp: bool) -> crate::Result<(Macro, u8)>;
}

impl SPFParser for Iter<'_, u8> {
    #[allow(clippy::while_let_on_iterator)]
    fn macro_string(&mut self, is_exp: bool) -> crate::Result<(Macro, u8)> {
        let stop_char = b' ';
        let mut last_is_pct = false;
        let mut literal = Vec::with_capacity(16);
        let mut macro_string = Vec::new();

        while let Some(&ch) = self.next() {
            match ch {
                b'%' => {
                    if last_is_pct {
                        literal.push(b'%');
                    } else {
                        last_is_pct = true;
                        continue;
                    }
                }
                b'_' if last_is_pct => {
                    literal.push(b' ');
                }
                b'-' if last_is_pct => {
                    literal.extend_from_slice(b"%20");
                }
                b'{' if last_is_pct => {
                    if !literal.is_empty() {
                        macro_string.push(Macro::Literal(literal.as_slice().into()));
                        literal.clear();
                    }

                    let (letter, escape) = self
                        .next()
                        .copied()
                        .and_then(|l| {
                            if !is_exp {
                                Variable::parse(l)
                            } else {
                                Variable::parse_exp(l)
                            }
                        })
                        .ok_or(Error::ParseError)?;
                    let mut num_parts: u32 = 0;
                    let mut reverse = false;
                    let mut delimiters = 0;

                    while let Some(&ch) = self.next() {
                        match ch {
                            b'0'..=b'9' => {
                                num_parts = num_parts
                                    .saturating_mul(10)
                                    .saturating_add((ch - b'0') as u32);
                            }
                            b'r' | b'R' => {
                                reverse = true;
                            }
                            b'}' => {
                                break;
                            }
                            b'.' | b'-' | b'+' | b',' | b'/' | b'_' | b'=' => {
                                delimiters |= 1u64 << (ch - b'+');
                            }
                            _ => {
                                return Err(Error::ParseError);
                            }
                        }
                    }

                    if delimiters == 0 {
                        delimiters = 1u64 << (b'.' - b'+');
                    }

                    macro_string.push(Macro::Variable {
                        letter,
                        num_parts,
                        reverse,
                        escape,
                        delimiters,
                    });
                }
                // Postfach patch: "/" is a macro-literal (§7.1); the CIDR lengths that may
                // follow a domain-spec are split off before it is read.
                _ => {
                    if last_is_pct {
                        return Err(Error::ParseError);
                    } else if !ch.is_ascii_whitespace() || is_exp {
                        literal.push(ch);
                    } else {
                        break;
                    }
                }
            }

            last_is_pct = false;
        }

        if !literal.is_empty() {
            macro_string.push(Macro::Literal(literal.into_boxed_slice()));
        }

        match macro_string.len() {
            1 => Ok((macro_string.pop().unwrap(), stop_char)),
            0 => Err(Error::ParseError),
            _ => Ok((Macro::List(macro_string.into_boxed_slice()), stop_char)),
        }
    }

}

impl Variable {
    fn parse(ch: u8) -> Option<(Self, bool)> {
        match ch {
            b's' => (Variable::Sender, false),
            b'l' => (Variable::SenderLocalPart, false),
            b'o' => (Variable::SenderDomainPart, false),
            b'd' => (Variable::Domain, false),
            b'i' => (Variable::Ip, false),
            b'p' => (Variable::ValidatedDomain, false),
            b'v' => (Variable::IpVersion, false),
            b'h' => (Variable::HeloDomain, false),

            b'S' => (Variable::Sender, true),
            b'L' => (Variable::SenderLocalPart, true),
            b'O' => (Variable::SenderDomainPart, true),
            b'D' => (Variable::Domain, true),
            b'I' => (Variable::Ip, true),
            b'P' => (Variable::ValidatedDomain, true),
            b'V' => (Variable::IpVersion, true),
            b'H' => (Variable::HeloDomain, true),
            _ => return None,
        }
        .into()
    }

    fn parse_exp(ch: u8) -> Option<(Self, bool)> {
        match ch {
            b's' => (Variable::Sender, false),
            b'l' => (Variable::SenderLocalPart, false),
            b'o' => (Variable::SenderDomainPart, false),
            b'd' => (Variable::Domain, false),
            b'i' => (Variable::Ip, false),
            b'p' => (Variable::ValidatedDomain, false),
            b'v' => (Variable::IpVersion, false),
            b'h' => (Variable::HeloDomain, false),
            b'c' => (Variable::SmtpIp, false),
            b'r' => (Variable::HostDomain, false),
            b't' => (Variable::CurrentTime, false),

            b'S' => (Variable::Sender, true),
            b'L' => (Variable::SenderLocalPart, true),
            b'O' => (Variable::SenderDomainPart, true),
            b'D' => (Variable::Domain, true),
            b'I' => (Variable::Ip, true),
            b'P' => (Variable::ValidatedDomain, true),
            b'V' => (Variable::IpVersion, true),
            b'H' => (Variable::HeloDomain, true),
            b'C' => (Variable::SmtpIp, true),
            b'R' => (Variable::HostDomain, true),
            b'T' => (Variable::CurrentTime, true),
            _ => return None,
        }
        .into()
    }
}

impl TxtRecordParser for Macro {
    /// RFC 7208 §6.2 (Postfach patch): the explanation is the one TXT record of the name, in
    /// US-ASCII; several records or other characters give no explanation.
    fn select(records: &[Vec<u8>]) -> crate::Result<Self> {
        match records {
            [one] if one.is_ascii() => Self::parse(one),
            _ => Err(Error::ParseError),
        }
    }

    fn parse(record: &[u8]) -> crate::Result<Self> {
        record.iter().macro_string(true).map(|(m, _)| m)
    }
}
