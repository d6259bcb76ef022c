//! The lexer of IMAP values (RFC 3501 §4): atoms, quoted strings, literals, NIL and lists, over
//! one whole response as [`Wire`](super::wire::Wire) framed it. Never panics; nesting depth is
//! bounded; truncated input is an error.

use super::sexp::Value;

/// Deepest list nesting accepted (a BODYSTRUCTURE is rarely deeper than 10).
pub const MAX_DEPTH: usize = 256;

/// Why raw response bytes could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{msg} at byte {pos}")]
pub struct ParseError {
    pub msg: &'static str,
    pub pos: usize,
}

/// A cursor over one response's bytes.
pub(super) struct Parser<'a> {
    pub(super) d: &'a [u8],
    pub(super) i: usize,
}

impl<'a> Parser<'a> {
    pub(super) fn new(d: &'a [u8]) -> Parser<'a> {
        Parser { d, i: 0 }
    }

    pub(super) fn err(&self, msg: &'static str) -> ParseError {
        ParseError { msg, pos: self.i }
    }

    pub(super) fn eof(&self) -> bool {
        self.i >= self.d.len()
    }

    pub(super) fn peek(&self) -> Option<u8> {
        self.d.get(self.i).copied()
    }

    pub(super) fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
    }

    pub(super) fn skip_blank_lines(&mut self) {
        while matches!(self.peek(), Some(b'\r' | b'\n' | b' ')) {
            self.i += 1;
        }
    }

    /// Consume the line end (CRLF, or a bare LF); at end of input too (tolerated).
    pub(super) fn end_of_line(&mut self) -> Result<(), ParseError> {
        self.skip_spaces();
        match self.peek() {
            None => Ok(()),
            Some(b'\r') if self.d.get(self.i + 1) == Some(&b'\n') => {
                self.i += 2;
                Ok(())
            }
            Some(b'\n') => {
                self.i += 1;
                Ok(())
            }
            _ => Err(self.err("expected end of line")),
        }
    }

    /// Skip to just past the next LF (text lines such as `* OK [...] text`, which hold no
    /// literals).
    pub(super) fn skip_line(&mut self) {
        match self.d[self.i.min(self.d.len())..]
            .iter()
            .position(|&b| b == b'\n')
        {
            Some(k) => self.i += k + 1,
            None => self.i = self.d.len(),
        }
    }

    /// Values up to the end of the line (skipping them), literals honoured.
    pub(super) fn values_to_eol(&mut self) -> Result<(), ParseError> {
        loop {
            self.skip_spaces();
            match self.peek() {
                None | Some(b'\r' | b'\n') => return self.end_of_line(),
                Some(b')' | b']') => self.i += 1, // tolerate stray closers in odd lines
                Some(_) => {
                    self.value(0)?;
                }
            }
        }
    }

    /// Letters/digits up to a space, paren or line end.
    pub(super) fn bare_word(&mut self) -> &'a [u8] {
        let start = self.i;
        while let Some(b) = self.peek() {
            if matches!(b, b' ' | b'(' | b')' | b'\r' | b'\n' | b'"' | b'{') {
                break;
            }
            self.i += 1;
        }
        &self.d[start..self.i]
    }

    /// An atom; `[...]` inside it may hold anything but a line end (`BODY[HEADER.FIELDS (A B)]`).
    pub(super) fn atom(&mut self) -> Result<String, ParseError> {
        let start = self.i;
        while let Some(b) = self.peek() {
            match b {
                b' ' | b'(' | b')' | b'\r' | b'\n' | b'"' => break,
                b'[' => {
                    self.i += 1;
                    loop {
                        match self.peek() {
                            None => return Err(self.err("truncated section in atom")),
                            Some(b'\r' | b'\n') => {
                                return Err(self.err("line ends inside '[' of an atom"))
                            }
                            Some(b']') => {
                                self.i += 1;
                                break;
                            }
                            Some(_) => self.i += 1,
                        }
                    }
                }
                _ => self.i += 1,
            }
        }
        if self.i == start {
            return Err(self.err("expected an atom"));
        }
        Ok(String::from_utf8_lossy(&self.d[start..self.i]).into_owned())
    }

    pub(super) fn value(&mut self, depth: usize) -> Result<Value, ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.err("lists nested too deeply"));
        }
        match self.peek() {
            None => Err(self.err("truncated: expected a value")),
            Some(b'(') => {
                self.i += 1;
                let mut list = Vec::new();
                loop {
                    self.skip_spaces();
                    match self.peek() {
                        None => return Err(self.err("truncated list")),
                        Some(b')') => {
                            self.i += 1;
                            return Ok(Value::List(list));
                        }
                        Some(b'\r' | b'\n') => return Err(self.err("line ends inside a list")),
                        Some(_) => list.push(self.value(depth + 1)?),
                    }
                }
            }
            Some(b'"') => self.quoted(),
            Some(b'{') => self.literal(),
            Some(b'~') if self.d.get(self.i + 1) == Some(&b'{') => {
                self.i += 1;
                self.literal()
            }
            Some(b')') => Err(self.err("unexpected ')'")),
            Some(b'\r' | b'\n') => Err(self.err("unexpected line end")),
            Some(_) => {
                let a = self.atom()?;
                if a.eq_ignore_ascii_case("NIL") {
                    Ok(Value::Nil)
                } else {
                    Ok(Value::Atom(a))
                }
            }
        }
    }

    /// `"..."` with `\"` and `\\` escapes; 8-bit bytes kept as they are.
    pub(super) fn quoted(&mut self) -> Result<Value, ParseError> {
        self.i += 1;
        let mut s = Vec::new();
        loop {
            match self.peek() {
                None => return Err(self.err("truncated quoted string")),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(Value::Str(s));
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        None => return Err(self.err("truncated quoted string")),
                        Some(b'\r' | b'\n') => {
                            return Err(self.err("line ends inside a quoted string"))
                        }
                        Some(c) => {
                            // Only \" and \\ are defined; keep anything else verbatim.
                            if c != b'"' && c != b'\\' {
                                s.push(b'\\');
                            }
                            s.push(c);
                            self.i += 1;
                        }
                    }
                }
                Some(b'\r' | b'\n') => return Err(self.err("line ends inside a quoted string")),
                Some(c) => {
                    s.push(c);
                    self.i += 1;
                }
            }
        }
    }

    /// `{n}\r\n` followed by n bytes (also `{n+}`, and a bare LF after the brace).
    pub(super) fn literal(&mut self) -> Result<Value, ParseError> {
        self.i += 1;
        let start = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        let n = std::str::from_utf8(&self.d[start..self.i])
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
            .ok_or_else(|| self.err("bad literal length"))?;
        if self.peek() == Some(b'+') {
            self.i += 1;
        }
        if self.peek() != Some(b'}') {
            return Err(self.err("expected '}' in literal"));
        }
        self.i += 1;
        match self.peek() {
            Some(b'\r') if self.d.get(self.i + 1) == Some(&b'\n') => self.i += 2,
            Some(b'\n') => self.i += 1,
            None => return Err(self.err("truncated literal")),
            _ => return Err(self.err("expected line end after literal length")),
        }
        let end = self
            .i
            .checked_add(n)
            .filter(|&e| e <= self.d.len())
            .ok_or_else(|| self.err("truncated literal"))?;
        let bytes = self.d[self.i..end].to_vec();
        self.i = end;
        Ok(Value::Str(bytes))
    }
}

impl Parser<'_> {
    /// Skip one value without building it (lists by counting parentheses, not recursion).
    pub(super) fn skip_value(&mut self) -> Result<(), ParseError> {
        let mut depth = 0usize;
        loop {
            self.skip_spaces();
            match self.peek() {
                None => return Err(self.err("truncated: expected a value")),
                Some(b'\r' | b'\n') => return Err(self.err("unexpected line end")),
                Some(b'(') => {
                    self.i += 1;
                    depth += 1;
                    continue;
                }
                Some(b')') if depth > 0 => {
                    self.i += 1;
                    depth -= 1;
                }
                Some(b')') => return Err(self.err("unexpected ')'")),
                Some(b'"') => drop(self.quoted()?),
                Some(b'{') => drop(self.literal()?),
                Some(b'~') if self.d.get(self.i + 1) == Some(&b'{') => {
                    self.i += 1;
                    drop(self.literal()?);
                }
                Some(_) => drop(self.atom()?),
            }
            if depth == 0 {
                return Ok(());
            }
        }
    }

    /// Every value up to the end of the line (LIST, STATUS, SEARCH answers).
    pub(super) fn values_until_eol(&mut self) -> Result<Vec<Value>, ParseError> {
        let mut out = Vec::new();
        loop {
            self.skip_spaces();
            match self.peek() {
                None | Some(b'\r' | b'\n') => {
                    self.end_of_line()?;
                    return Ok(out);
                }
                Some(_) => out.push(self.value(1)?),
            }
        }
    }
}

/// The values of one untagged response after `* `: `LIST (\\Noselect) "/" {3}\r\nabc` gives
/// `[LIST, (\\Noselect), "/", "abc"]`.
pub fn untagged_values(frame: &[u8]) -> Result<Vec<Value>, ParseError> {
    let mut p = Parser::new(frame);
    if p.peek() != Some(b'*') {
        return Err(p.err("expected '*' at start of a response line"));
    }
    p.i += 1;
    p.values_until_eol()
}

/// STATUS items as (name upper-cased, number) pairs, in the order sent.
pub type StatusItems = Vec<(String, u64)>;

/// One `* STATUS name (ITEM n ...)` response: the name's bytes and the items, upper-cased, in
/// the order sent (items that are not `word number` pairs are skipped); `None` for other
/// responses or unreadable ones.
pub fn status_response(frame: &[u8]) -> Option<(Vec<u8>, StatusItems)> {
    let v = untagged_values(frame).ok()?;
    if !v.first()?.as_text()?.eq_ignore_ascii_case("STATUS") {
        return None;
    }
    let name = match v.get(1)? {
        Value::Nil | Value::List(_) => return None,
        n => n.as_bytes()?.to_vec(),
    };
    let items = v
        .get(2)?
        .as_list()?
        .chunks(2)
        .filter_map(|kv| match kv {
            [k, n] => Some((k.as_text()?.to_ascii_uppercase(), n.as_u64()?)),
            _ => None,
        })
        .collect();
    Some((name, items))
}

/// Is `got` (a name as the server sent it) the folder `asked` (its bytes as sent)? INBOX in
/// any case is INBOX.
pub fn same_folder(got: &[u8], asked: &[u8]) -> bool {
    got == asked || (got.eq_ignore_ascii_case(b"INBOX") && asked.eq_ignore_ascii_case(b"INBOX"))
}

/// The value of `name` among STATUS items.
pub fn status_item(items: &[(String, u64)], name: &str) -> Option<u64> {
    items.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
}

pub(super) fn parse_u32(b: &[u8]) -> Option<u32> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// Parse one value (atom, string, literal, NIL or list) from the whole of `data`.
#[cfg(test)]
pub fn parse_value(data: &[u8]) -> Result<Value, ParseError> {
    let mut p = Parser::new(data);
    let v = p.value(0)?;
    if !p.eof() {
        return Err(p.err("trailing bytes after value"));
    }
    Ok(v)
}

/// Serialize a value in IMAP syntax (strings as literals when they need to be): the inverse of
/// [`parse_value`].
#[cfg(test)]
pub fn serialize(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Nil => out.extend_from_slice(b"NIL"),
        Value::Atom(a) => out.extend_from_slice(a.as_bytes()),
        Value::Str(s) => {
            if s.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0) {
                out.extend_from_slice(format!("{{{}}}\r\n", s.len()).as_bytes());
                out.extend_from_slice(s);
            } else {
                out.push(b'"');
                for &b in s {
                    if b == b'"' || b == b'\\' {
                        out.push(b'\\');
                    }
                    out.push(b);
                }
                out.push(b'"');
            }
        }
        Value::List(l) => {
            out.push(b'(');
            for (k, x) in l.iter().enumerate() {
                if k > 0 {
                    out.push(b' ');
                }
                serialize(x, out);
            }
            out.push(b')');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_responses() {
        let (name, items) =
            status_response(b"* status {5}\r\na\r\n\xff) (messages 3 UNSEEN \"2\" X)\r\n").unwrap();
        assert_eq!(name, b"a\r\n\xff)");
        assert_eq!(
            items,
            [("MESSAGES".to_string(), 3), ("UNSEEN".to_string(), 2)]
        );
        assert_eq!(status_item(&items, "UNSEEN"), Some(2));
        assert_eq!(status_item(&items, "X"), None);
        let (name, _) = status_response(b"* STATUS \"q\\\"x\" ()\r\n").unwrap();
        assert_eq!(name, b"q\"x");
        assert!(status_response(b"* STATUS NIL (MESSAGES 1)\r\n").is_none());
        assert!(status_response(b"* STATUS x\r\n").is_none());
        assert!(status_response(b"* LIST () \"/\" x\r\n").is_none());
        assert!(status_response(b"* STATUS {9}\r\nx\r\n").is_none());
        assert!(same_folder(b"inbox", b"INBOX") && !same_folder(b"a", b"A"));
    }
}
