//! IMAP SEARCH criteria as a user types them in a path (`SEARCH/FROM alice SINCE 1-Mar-2024`):
//! parsed and checked here, never pasted into a command. [`parse`] gives a [`Criteria`] tree
//! (RFC 3501 §6.4.4 search keys); [`Criteria::command_args`] writes it back in IMAP syntax, with
//! strings quoted or sent as literals, so a name cannot smuggle a line end, a tag or another
//! command to the server.

mod parse;

pub use parse::{parse, ParseError, MAX_CRITERIA_BYTES};

/// One search key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Key {
    /// A key without argument: `ALL`, `SEEN`, `UNSEEN`, `FLAGGED`, ... (upper case).
    Flag(&'static str),
    /// A key with a string argument: `FROM`, `SUBJECT`, `TEXT`, `BODY`, `TO`, `CC`, `BCC`.
    Text(&'static str, Vec<u8>),
    /// `HEADER name value`.
    Header(Vec<u8>, Vec<u8>),
    /// `KEYWORD` / `UNKEYWORD` with a flag atom.
    Keyword(&'static str, String),
    /// A date key (`BEFORE`, `ON`, `SINCE`, `SENTBEFORE`, `SENTON`, `SENTSINCE`) with its date
    /// in canonical form (`1-Mar-2024`).
    Date(&'static str, String),
    /// `LARGER n` / `SMALLER n`.
    Size(&'static str, u64),
    /// `UID set`.
    Uid(String),
    Not(Box<Key>),
    Or(Box<Key>, Box<Key>),
    /// A parenthesised list: all of them.
    And(Vec<Key>),
}

/// A whole search: all of its keys must match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Criteria {
    pub keys: Vec<Key>,
}

/// A piece of a command: text sent as it is, or a string sent as a literal (the writer
/// announces it as `{n}` or `{n+}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arg {
    Text(String),
    Literal(Vec<u8>),
}

impl Criteria {
    /// True when some string is not plain ASCII: the command needs `CHARSET UTF-8`.
    pub fn needs_utf8(&self) -> bool {
        fn key(k: &Key) -> bool {
            match k {
                Key::Text(_, s) => !s.is_ascii(),
                Key::Header(n, v) => !n.is_ascii() || !v.is_ascii(),
                Key::Not(k) => key(k),
                Key::Or(a, b) => key(a) || key(b),
                Key::And(ks) => ks.iter().any(key),
                _ => false,
            }
        }
        self.keys.iter().any(key)
    }

    /// The criteria in IMAP syntax, for `UID SEARCH [CHARSET UTF-8] <args>`: strings that are
    /// printable ASCII are quoted, others are literals; everything else is atoms we produced.
    pub fn command_args(&self) -> Vec<Arg> {
        let mut out = Vec::new();
        let mut text = String::new();
        for (i, k) in self.keys.iter().enumerate() {
            if i > 0 {
                text.push(' ');
            }
            write_key(k, &mut text, &mut out);
        }
        if !text.is_empty() {
            out.push(Arg::Text(text));
        }
        out
    }
}

fn write_string(s: &[u8], text: &mut String, out: &mut Vec<Arg>) {
    if s.iter().all(|&b| (0x20..0x7f).contains(&b)) {
        text.push('"');
        for &b in s {
            if b == b'"' || b == b'\\' {
                text.push('\\');
            }
            text.push(b as char);
        }
        text.push('"');
    } else {
        // The writer announces the literal (`{n}` or `{n+}`) and sends its bytes.
        if !text.is_empty() {
            out.push(Arg::Text(std::mem::take(text)));
        }
        out.push(Arg::Literal(s.to_vec()));
    }
}

fn write_key(k: &Key, text: &mut String, out: &mut Vec<Arg>) {
    match k {
        Key::Flag(f) => text.push_str(f),
        Key::Text(name, s) => {
            text.push_str(name);
            text.push(' ');
            write_string(s, text, out);
        }
        Key::Header(name, value) => {
            text.push_str("HEADER ");
            write_string(name, text, out);
            text.push(' ');
            write_string(value, text, out);
        }
        Key::Keyword(name, flag) => {
            text.push_str(name);
            text.push(' ');
            text.push_str(flag);
        }
        Key::Date(name, d) => {
            text.push_str(name);
            text.push(' ');
            text.push_str(d);
        }
        Key::Size(name, n) => {
            text.push_str(name);
            text.push(' ');
            text.push_str(&n.to_string());
        }
        Key::Uid(set) => {
            text.push_str("UID ");
            text.push_str(set);
        }
        Key::Not(k) => {
            text.push_str("NOT ");
            write_key(k, text, out);
        }
        Key::Or(a, b) => {
            text.push_str("OR ");
            write_key(a, text, out);
            text.push(' ');
            write_key(b, text, out);
        }
        Key::And(ks) => {
            text.push('(');
            for (i, k) in ks.iter().enumerate() {
                if i > 0 {
                    text.push(' ');
                }
                write_key(k, text, out);
            }
            text.push(')');
        }
    }
}

#[cfg(test)]
mod tests;
