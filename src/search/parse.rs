//! The criteria parser: percent-unescaping (`%2F` is `/`, `%25` is `%`, as in folder names),
//! tokens (atoms, quoted strings, parentheses) and the RFC 3501 §6.4.4 grammar, with limits.

use super::{Criteria, Key};

/// Longest criteria accepted (a path component holds at most 255 bytes anyway).
pub const MAX_CRITERIA_BYTES: usize = 1024;
/// Deepest nesting of parentheses, NOT and OR.
const MAX_DEPTH: usize = 32;

/// Why a name is not valid criteria: said in the log, answered with ENOENT.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError(msg.into()))
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Open,
    Close,
    /// A bare word (keys, numbers, dates, sets, unquoted strings).
    Atom(String),
    Quoted(Vec<u8>),
}

/// `%XX` → the byte; a `%` not followed by two hex digits is an error.
fn unescape(name: &str) -> Result<Vec<u8>, ParseError> {
    let b = name.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(v) => out.push(v),
                None => return err(format!("bad %-escape at byte {i} (write % as %25)")),
            }
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn tokens(s: &[u8]) -> Result<Vec<Token>, ParseError> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b' ' => i += 1,
            b'(' => {
                out.push(Token::Open);
                i += 1;
            }
            b')' => {
                out.push(Token::Close);
                i += 1;
            }
            b'"' => {
                let mut v = Vec::new();
                i += 1;
                loop {
                    match s.get(i) {
                        None => return err("unbalanced quote"),
                        Some(b'"') => break,
                        Some(b'\\') => match s.get(i + 1) {
                            Some(&c @ (b'"' | b'\\')) => {
                                v.push(c);
                                i += 1;
                            }
                            _ => return err("a backslash in quotes escapes only \" and \\"),
                        },
                        Some(&c) => v.push(c),
                    }
                    i += 1;
                }
                out.push(Token::Quoted(v));
                i += 1;
            }
            _ => {
                let start = i;
                while i < s.len() && !matches!(s[i], b' ' | b'(' | b')' | b'"') {
                    i += 1;
                }
                let word = std::str::from_utf8(&s[start..i])
                    .map_err(|_| ParseError("not UTF-8".into()))?;
                out.push(Token::Atom(word.to_string()));
            }
        }
    }
    Ok(out)
}

/// Parse a search directory's name into criteria.
pub fn parse(name: &str) -> Result<Criteria, ParseError> {
    if name.len() > MAX_CRITERIA_BYTES {
        return err(format!("criteria longer than {MAX_CRITERIA_BYTES} bytes"));
    }
    if name == "." || name == ".." {
        return err("not criteria");
    }
    let bytes = unescape(name)?;
    if std::str::from_utf8(&bytes).is_err() {
        return err("not UTF-8 once unescaped");
    }
    if let Some(c) = bytes.iter().find(|&&c| c < 0x20 || c == 0x7f) {
        return err(format!("control character 0x{c:02X} in the criteria"));
    }
    let toks = tokens(&bytes)?;
    if toks.is_empty() {
        return err("empty criteria");
    }
    let mut p = Parser { toks, i: 0 };
    let mut keys = Vec::new();
    while p.i < p.toks.len() {
        keys.push(p.key(0)?);
    }
    Ok(Criteria { keys })
}

struct Parser {
    toks: Vec<Token>,
    i: usize,
}

const FLAG_KEYS: &[&str] = &[
    "ALL",
    "ANSWERED",
    "DELETED",
    "DRAFT",
    "FLAGGED",
    "NEW",
    "OLD",
    "RECENT",
    "SEEN",
    "UNANSWERED",
    "UNDELETED",
    "UNDRAFT",
    "UNFLAGGED",
    "UNSEEN",
];
const TEXT_KEYS: &[&str] = &["BCC", "BODY", "CC", "FROM", "SUBJECT", "TEXT", "TO"];
const DATE_KEYS: &[&str] = &["BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn known(table: &[&'static str], word: &str) -> Option<&'static str> {
    table.iter().copied().find(|k| k.eq_ignore_ascii_case(word))
}

impl Parser {
    fn next(&mut self) -> Option<Token> {
        let t = self.toks.get(self.i).cloned();
        self.i += 1;
        t
    }

    fn key(&mut self, depth: usize) -> Result<Key, ParseError> {
        if depth > MAX_DEPTH {
            return err("criteria nested too deeply");
        }
        let word = match self.next() {
            Some(Token::Atom(w)) => w,
            Some(Token::Open) => {
                let mut keys = Vec::new();
                loop {
                    match self.toks.get(self.i) {
                        Some(Token::Close) => {
                            self.i += 1;
                            break;
                        }
                        None => return err("unbalanced parenthesis"),
                        Some(_) => keys.push(self.key(depth + 1)?),
                    }
                }
                if keys.is_empty() {
                    return err("empty parentheses");
                }
                return Ok(Key::And(keys));
            }
            Some(Token::Close) => return err("unbalanced parenthesis"),
            Some(Token::Quoted(_)) => return err("a quoted string where a search key belongs"),
            None => return err("criteria end too early"),
        };
        if let Some(k) = known(FLAG_KEYS, &word) {
            return Ok(Key::Flag(k));
        }
        if let Some(k) = known(TEXT_KEYS, &word) {
            return Ok(Key::Text(k, self.string(k)?));
        }
        if let Some(k) = known(DATE_KEYS, &word) {
            return Ok(Key::Date(k, self.date(k)?));
        }
        match word.to_ascii_uppercase().as_str() {
            "HEADER" => {
                let name = self.string("HEADER")?;
                if name.is_empty() || name.iter().any(|&c| c == b':' || c <= b' ' || c > b'~') {
                    return err("HEADER needs a header field name");
                }
                Ok(Key::Header(name, self.string("HEADER")?))
            }
            "KEYWORD" => Ok(Key::Keyword("KEYWORD", self.flag_atom("KEYWORD")?)),
            "UNKEYWORD" => Ok(Key::Keyword("UNKEYWORD", self.flag_atom("UNKEYWORD")?)),
            "LARGER" => Ok(Key::Size("LARGER", self.number("LARGER")?)),
            "SMALLER" => Ok(Key::Size("SMALLER", self.number("SMALLER")?)),
            "UID" => match self.next() {
                Some(Token::Atom(set)) if is_sequence_set(&set) => Ok(Key::Uid(set)),
                _ => err("UID needs a set of UIDs such as 100:200"),
            },
            "NOT" => Ok(Key::Not(Box::new(self.key(depth + 1)?))),
            "OR" => {
                let a = self.key(depth + 1)?;
                let b = self.key(depth + 1)?;
                Ok(Key::Or(Box::new(a), Box::new(b)))
            }
            // A bare sequence set (message numbers) is refused: the mount names messages by UID
            // (`UID 5:9`), and `Folder/*/1` must never find a search directory named `1`.
            _ if is_sequence_set(&word) => err(format!(
                "{word:?}: message numbers are not searched here (write UID {word})"
            )),
            _ => err(format!("unknown search key {word:?}")),
        }
    }

    fn string(&mut self, key: &str) -> Result<Vec<u8>, ParseError> {
        match self.next() {
            Some(Token::Atom(w)) => Ok(w.into_bytes()),
            Some(Token::Quoted(v)) => Ok(v),
            _ => err(format!("{key} needs a word or a quoted string")),
        }
    }

    fn number(&mut self, key: &str) -> Result<u64, ParseError> {
        match self.next() {
            Some(Token::Atom(w)) if !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()) => w
                .parse()
                .map_err(|_| ParseError(format!("{key}: number too large"))),
            _ => err(format!("{key} needs a number")),
        }
    }

    fn flag_atom(&mut self, key: &str) -> Result<String, ParseError> {
        match self.next() {
            Some(Token::Atom(w))
                if w.bytes().all(|b| {
                    b > b' '
                        && b < 0x7f
                        && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"')
                        && b != b'\\'
                        && b != b']'
                }) =>
            {
                Ok(w)
            }
            _ => err(format!("{key} needs a keyword such as $Label1")),
        }
    }

    fn date(&mut self, key: &str) -> Result<String, ParseError> {
        let Some(Token::Atom(w)) = self.next() else {
            return err(format!("{key} needs a date such as 1-Mar-2024"));
        };
        let parts: Vec<&str> = w.split('-').collect();
        let ok = match parts.as_slice() {
            [d, m, y] => {
                let day = d.parse::<u32>().ok().filter(|d| (1..=31).contains(d));
                let month = MONTHS.iter().find(|x| x.eq_ignore_ascii_case(m));
                let year = Some(y)
                    .filter(|y| y.len() == 4)
                    .and_then(|y| y.parse::<u32>().ok());
                match (day, month, year, d.len() <= 2) {
                    (Some(day), Some(month), Some(year), true) => {
                        Some(format!("{day}-{month}-{year}"))
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        ok.ok_or_else(|| ParseError(format!("{key}: {w:?} is not a date such as 1-Mar-2024")))
    }
}

/// `1`, `2:4`, `5:*`, `1,3:7,9` (RFC 3501 sequence-set).
fn is_sequence_set(s: &str) -> bool {
    let number = |n: &str| {
        n == "*"
            || (!n.is_empty()
                && n.len() <= 10
                && n.bytes().all(|b| b.is_ascii_digit())
                && !n.starts_with('0')
                && n.parse::<u32>().is_ok())
    };
    !s.is_empty()
        && s.split(',').all(|r| match r.split_once(':') {
            Some((a, b)) => number(a) && number(b),
            None => number(r),
        })
}
