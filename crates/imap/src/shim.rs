//! The two command forms imap-codec does not parse yet (it marks RFC 5258 as unfinished):
//! LIST with selection options, several patterns or RETURN options (RFC 5258, RFC 5819
//! LIST-STATUS, RFC 6154 SPECIAL-USE), and CREATE with a USE parameter (RFC 6154 §3). Only
//! complete lines without literals are looked at; everything else goes to imap-codec.

/// LIST as RFC 5258 writes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListExt {
    pub tag: String,
    /// Selection options, upper case: SUBSCRIBED, REMOTE, RECURSIVEMATCH, SPECIAL-USE.
    pub select: Vec<String>,
    pub reference: String,
    pub patterns: Vec<String>,
    /// Return options, upper case: SUBSCRIBED, CHILDREN, SPECIAL-USE, STATUS.
    pub returns: Vec<String>,
    /// Items of RETURN (STATUS (…)), upper case.
    pub status: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shimmed {
    List(ListExt),
    Create {
        tag: String,
        mailbox: String,
        /// Special-use attributes, as written (`\Drafts`).
        uses: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Open,
    Close,
    Atom(String),
    Quoted(String),
}

fn tokenize(line: &str) -> Option<Vec<Token>> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            ' ' => {
                chars.next();
            }
            '(' => {
                chars.next();
                out.push(Token::Open);
            }
            ')' => {
                chars.next();
                out.push(Token::Close);
            }
            '"' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next()? {
                        '\\' => s.push(chars.next()?),
                        '"' => break,
                        c => s.push(c),
                    }
                }
                out.push(Token::Quoted(s));
            }
            // Literals are left to imap-codec.
            '{' => return None,
            _ => {
                let mut s = String::new();
                while let Some(&c) = chars.peek() {
                    if c == ' ' || c == '(' || c == ')' || c == '"' {
                        break;
                    }
                    s.push(c);
                    chars.next();
                }
                out.push(Token::Atom(s));
            }
        }
    }
    Some(out)
}

fn string(t: &Token) -> Option<String> {
    match t {
        Token::Atom(s) | Token::Quoted(s) => Some(s.clone()),
        _ => None,
    }
}

fn atoms_until_close(tokens: &[Token], mut i: usize) -> Option<(Vec<String>, usize)> {
    let mut out = Vec::new();
    loop {
        match tokens.get(i)? {
            Token::Close => return Some((out, i + 1)),
            Token::Atom(a) => out.push(a.to_ascii_uppercase()),
            _ => return None,
        }
        i += 1;
    }
}

/// Recognises the extended forms in one command line (without CRLF); None for anything else.
pub fn parse(line: &[u8]) -> Option<Shimmed> {
    let line = std::str::from_utf8(line).ok()?;
    let tokens = tokenize(line.trim_end_matches(['\r', '\n']))?;
    let tag = match tokens.first()? {
        Token::Atom(t) => t.clone(),
        _ => return None,
    };
    let command = match tokens.get(1)? {
        Token::Atom(c) => c.to_ascii_uppercase(),
        _ => return None,
    };
    match command.as_str() {
        "LIST" => parse_list(tag, &tokens[2..]),
        "CREATE" => {
            // CREATE mailbox (USE (attrs))
            let mailbox = string(tokens.get(2)?)?;
            if tokens.get(3)? != &Token::Open {
                return None;
            }
            if !matches!(tokens.get(4)?, Token::Atom(a) if a.eq_ignore_ascii_case("USE")) {
                return None;
            }
            if tokens.get(5)? != &Token::Open {
                return None;
            }
            let mut uses = Vec::new();
            let mut i = 6;
            while let Some(Token::Atom(a)) = tokens.get(i) {
                uses.push(a.clone());
                i += 1;
            }
            if tokens.get(i)? != &Token::Close
                || tokens.get(i + 1)? != &Token::Close
                || tokens.len() != i + 2
            {
                return None;
            }
            Some(Shimmed::Create { tag, mailbox, uses })
        }
        _ => None,
    }
}

fn parse_list(tag: String, t: &[Token]) -> Option<Shimmed> {
    let mut l = ListExt {
        tag,
        ..Default::default()
    };
    let mut i = 0;
    let mut extended = false;
    if t.first()? == &Token::Open {
        let (opts, next) = atoms_until_close(t, 1)?;
        l.select = opts;
        i = next;
        extended = true;
    }
    l.reference = string(t.get(i)?)?;
    i += 1;
    match t.get(i)? {
        Token::Open => {
            i += 1;
            while let Some(p) = t.get(i).and_then(string) {
                l.patterns.push(p);
                i += 1;
            }
            if t.get(i)? != &Token::Close {
                return None;
            }
            i += 1;
            extended = true;
        }
        other => {
            l.patterns.push(string(other)?);
            i += 1;
        }
    }
    if let Some(Token::Atom(r)) = t.get(i)
        && r.eq_ignore_ascii_case("RETURN")
    {
        extended = true;
        if t.get(i + 1)? != &Token::Open {
            return None;
        }
        i += 2;
        loop {
            match t.get(i)? {
                Token::Close => {
                    i += 1;
                    break;
                }
                Token::Atom(a) if a.eq_ignore_ascii_case("STATUS") => {
                    if t.get(i + 1)? != &Token::Open {
                        return None;
                    }
                    let (items, next) = atoms_until_close(t, i + 2)?;
                    l.status = items;
                    l.returns.push("STATUS".into());
                    i = next;
                }
                Token::Atom(a) => {
                    l.returns.push(a.to_ascii_uppercase());
                    i += 1;
                }
                _ => return None,
            }
        }
    }
    (extended && i == t.len()).then_some(Shimmed::List(l))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extended_list() {
        let Some(Shimmed::List(l)) = parse(b"A1 LIST (SUBSCRIBED RECURSIVEMATCH) \"\" \"*\" RETURN (CHILDREN STATUS (MESSAGES UNSEEN))") else {
            panic!()
        };
        assert_eq!(l.tag, "A1");
        assert_eq!(l.select, ["SUBSCRIBED", "RECURSIVEMATCH"]);
        assert_eq!(
            (l.reference.as_str(), l.patterns.as_slice()),
            ("", &["*".to_string()][..])
        );
        assert_eq!(l.returns, ["CHILDREN", "STATUS"]);
        assert_eq!(l.status, ["MESSAGES", "UNSEEN"]);
        let Some(Shimmed::List(l)) =
            parse(b"t LIST \"\" (INBOX \"Sent Items\" Arch%) RETURN (SPECIAL-USE)")
        else {
            panic!()
        };
        assert_eq!(l.patterns, ["INBOX", "Sent Items", "Arch%"]);
        assert_eq!(l.returns, ["SPECIAL-USE"]);
        let Some(Shimmed::List(l)) = parse(b"x list (special-use) \"\" *") else {
            panic!()
        };
        assert_eq!(l.select, ["SPECIAL-USE"]);
        // The plain form is imap-codec's.
        assert_eq!(parse(b"A1 LIST \"\" *"), None);
        assert_eq!(parse(b"A1 LIST \"\" {5}"), None);
        assert_eq!(parse(b"A1 LIST (SUBSCRIBED \"\" *"), None, "unbalanced");
    }

    #[test]
    fn create_with_use() {
        assert_eq!(
            parse(b"c1 CREATE \"My Drafts\" (USE (\\Drafts))"),
            Some(Shimmed::Create {
                tag: "c1".into(),
                mailbox: "My Drafts".into(),
                uses: vec!["\\Drafts".into()]
            })
        );
        assert_eq!(parse(b"c1 CREATE Junk"), None);
    }
}
