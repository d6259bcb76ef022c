//! The parenthesised values IMAP responses are made of, independent of any parser.

/// One IMAP response value (RFC 3501 §4): an atom or number, a string (quoted or literal, raw
/// bytes), NIL, or a parenthesised list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Nil,
    /// An atom, e.g. `BODY[2]<0>` or `\Seen`; numbers are atoms too (see [`Value::as_u64`]).
    Atom(String),
    /// A quoted string or literal, as raw bytes (may hold 8-bit data).
    Str(Vec<u8>),
    List(Vec<Value>),
}

impl Value {
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Atom(a) => a.parse().ok(),
            Value::Str(s) => std::str::from_utf8(s).ok()?.trim().parse().ok(),
            _ => None,
        }
    }

    /// The value as text: atoms and strings (lossy UTF-8); `None` for NIL and lists.
    pub fn as_text(&self) -> Option<String> {
        match self {
            Value::Atom(a) => Some(a.clone()),
            Value::Str(s) => Some(String::from_utf8_lossy(s).into_owned()),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Str(s) => Some(s),
            Value::Atom(a) => Some(a.as_bytes()),
            _ => None,
        }
    }

    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }
}
