//! A tolerant parser for raw IMAP response bytes (as returned by the `imap` crate's
//! `run_command_and_read_response`: every untagged line, literals inline as `{n}\r\n<bytes>`).
//!
//! It turns `* <n> FETCH (...)` lines into name/value items and skips everything else (`EXISTS`,
//! `EXPUNGE`, `OK [...]` and friends), never panics, bounds nesting depth and reports truncated
//! input as an error.

use crate::sexp::Value;

/// Deepest list nesting accepted (a BODYSTRUCTURE is rarely deeper than 10).
pub const MAX_DEPTH: usize = 256;

/// Why raw response bytes could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{msg} at byte {pos}")]
pub struct ParseError {
    pub msg: &'static str,
    pub pos: usize,
}

/// One `* <seq> FETCH (...)` response: its items in order, names uppercased (`UID`,
/// `BODY[2]<1024>`, `BODY[HEADER.FIELDS (A B)]`, `BODYSTRUCTURE`, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchResponse {
    pub seq: u32,
    pub items: Vec<(String, Value)>,
}

impl FetchResponse {
    /// The first item with this (uppercase) name.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.items.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The `UID` item, if present and numeric.
    pub fn uid(&self) -> Option<u32> {
        self.get("UID")
            .and_then(Value::as_u64)
            .and_then(|u| u32::try_from(u).ok())
    }
}

/// Every FETCH response in `data`; other untagged responses are skipped.
pub fn parse_fetches(data: &[u8]) -> Result<Vec<FetchResponse>, ParseError> {
    let mut p = Parser { d: data, i: 0 };
    let mut out = Vec::new();
    loop {
        p.skip_blank_lines();
        if p.eof() {
            return Ok(out);
        }
        if let Some(f) = p.untagged_line()? {
            out.push(f);
        }
    }
}

/// Parse one value (atom, string, literal, NIL or list) from the whole of `data`.
pub fn parse_value(data: &[u8]) -> Result<Value, ParseError> {
    let mut p = Parser { d: data, i: 0 };
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

struct Parser<'a> {
    d: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn err(&self, msg: &'static str) -> ParseError {
        ParseError { msg, pos: self.i }
    }

    fn eof(&self) -> bool {
        self.i >= self.d.len()
    }

    fn peek(&self) -> Option<u8> {
        self.d.get(self.i).copied()
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
    }

    fn skip_blank_lines(&mut self) {
        while matches!(self.peek(), Some(b'\r' | b'\n' | b' ')) {
            self.i += 1;
        }
    }

    /// Consume the line end (CRLF, or a bare LF); at end of input too (tolerated).
    fn end_of_line(&mut self) -> Result<(), ParseError> {
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
    fn skip_line(&mut self) {
        match self.d[self.i.min(self.d.len())..]
            .iter()
            .position(|&b| b == b'\n')
        {
            Some(k) => self.i += k + 1,
            None => self.i = self.d.len(),
        }
    }

    /// One untagged (or continuation) line; `Some` for a FETCH response.
    fn untagged_line(&mut self) -> Result<Option<FetchResponse>, ParseError> {
        match self.peek() {
            Some(b'*') => self.i += 1,
            Some(b'+') => {
                self.skip_line();
                return Ok(None);
            }
            _ => return Err(self.err("expected '*' at start of a response line")),
        }
        self.skip_spaces();
        let first = self.bare_word();
        if first.is_empty() {
            return Err(self.err("empty untagged response"));
        }
        if first.iter().all(u8::is_ascii_digit) {
            let seq = parse_u32(first).ok_or_else(|| self.err("message number out of range"))?;
            self.skip_spaces();
            let kw = self.bare_word().to_ascii_uppercase();
            if kw.is_empty() {
                return Err(self.err("message number without a keyword"));
            }
            if kw == b"FETCH" {
                self.skip_spaces();
                let items = self.fetch_items()?;
                self.end_of_line()?;
                return Ok(Some(FetchResponse { seq, items }));
            }
            // EXISTS, EXPUNGE, RECENT, ...: the rest of the line is values, if anything.
            self.values_to_eol()?;
            return Ok(None);
        }
        let kw = first.to_ascii_uppercase();
        match kw.as_slice() {
            // resp-cond-state / BYE / PREAUTH: free text, never literals.
            b"OK" | b"NO" | b"BAD" | b"BYE" | b"PREAUTH" => {
                self.skip_line();
                Ok(None)
            }
            _ => {
                self.values_to_eol()?;
                Ok(None)
            }
        }
    }

    /// Values up to the end of the line (skipping them), literals honoured.
    fn values_to_eol(&mut self) -> Result<(), ParseError> {
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
    fn bare_word(&mut self) -> &'a [u8] {
        let start = self.i;
        while let Some(b) = self.peek() {
            if matches!(b, b' ' | b'(' | b')' | b'\r' | b'\n' | b'"' | b'{') {
                break;
            }
            self.i += 1;
        }
        &self.d[start..self.i]
    }

    /// `(name value name value ...)`.
    fn fetch_items(&mut self) -> Result<Vec<(String, Value)>, ParseError> {
        if self.peek() != Some(b'(') {
            return Err(self.err("expected '(' after FETCH"));
        }
        self.i += 1;
        let mut items = Vec::new();
        loop {
            self.skip_spaces();
            match self.peek() {
                None => return Err(self.err("truncated FETCH response")),
                Some(b')') => {
                    self.i += 1;
                    return Ok(items);
                }
                Some(b'\r' | b'\n') => return Err(self.err("line ends inside FETCH response")),
                Some(_) => {
                    let name = self.atom()?;
                    self.skip_spaces();
                    let value = match self.peek() {
                        None => return Err(self.err("truncated FETCH response")),
                        Some(b')') => return Err(self.err("FETCH item without value")),
                        _ => self.value(1)?,
                    };
                    items.push((name.to_ascii_uppercase(), value));
                }
            }
        }
    }

    /// An atom; `[...]` inside it may hold anything but a line end (`BODY[HEADER.FIELDS (A B)]`).
    fn atom(&mut self) -> Result<String, ParseError> {
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

    fn value(&mut self, depth: usize) -> Result<Value, ParseError> {
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
    fn quoted(&mut self) -> Result<Value, ParseError> {
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
    fn literal(&mut self) -> Result<Value, ParseError> {
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

fn parse_u32(b: &[u8]) -> Option<u32> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn atom(s: &str) -> Value {
        Value::Atom(s.into())
    }
    fn st(s: &[u8]) -> Value {
        Value::Str(s.to_vec())
    }

    #[test]
    fn literal_and_range_items() {
        let d = b"* 3 FETCH (UID 7 BODY[2]<1024> {3}\r\nabc BODY[2]<0> \"\")\r\n";
        let f = parse_fetches(d).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].seq, 3);
        assert_eq!(f[0].uid(), Some(7));
        assert_eq!(f[0].get("BODY[2]<1024>"), Some(&st(b"abc")));
        assert_eq!(f[0].get("BODY[2]<0>"), Some(&st(b"")));
    }

    #[test]
    fn literal_with_crlf_and_parens_inside() {
        let d = b"* 1 FETCH (UID 1 BODY[HEADER] {12}\r\na: (b\r\n\r\n)\"x)\r\n";
        let f = parse_fetches(d).unwrap();
        assert_eq!(f[0].get("BODY[HEADER]"), Some(&st(b"a: (b\r\n\r\n)\"x")));
    }

    #[test]
    fn eight_bit_quoted_and_escapes() {
        let d = b"* 1 FETCH (UID 2 X \"Entw\xc3\xbcrfe \\\"q\\\" \\\\ \\n\")\r\n";
        let f = parse_fetches(d).unwrap();
        assert_eq!(f[0].get("X"), Some(&st(b"Entw\xc3\xbcrfe \"q\" \\ \\n")));
    }

    #[test]
    fn bracketed_section_with_spaces_and_parens() {
        let d = b"* 9 FETCH (BODY[HEADER.FIELDS (FROM SUBJECT)] {5}\r\nx\r\n\r\n uid 4)\r\n";
        let f = parse_fetches(d).unwrap();
        assert_eq!(
            f[0].get("BODY[HEADER.FIELDS (FROM SUBJECT)]"),
            Some(&st(b"x\r\n\r\n"))
        );
        assert_eq!(f[0].uid(), Some(4));
    }

    #[test]
    fn nested_bodystructure() {
        let d = b"* 1 FETCH (UID 5 BODYSTRUCTURE ((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 12 1 NIL NIL NIL NIL)(\"application\" \"pdf\" (\"name\" {6}\r\na\xc3\xa4.pd) NIL NIL \"base64\" 100 NIL (\"attachment\" (\"filename\" \"x.pdf\")) NIL NIL) \"mixed\" (\"boundary\" \"b\") NIL NIL NIL))\r\n";
        let f = parse_fetches(d).unwrap();
        let bs = f[0].get("BODYSTRUCTURE").unwrap().as_list().unwrap();
        assert_eq!(bs.len(), 7);
        let p1 = bs[0].as_list().unwrap();
        assert_eq!(p1[0], st(b"text"));
        assert_eq!(p1[3], Value::Nil);
        assert_eq!(p1[6], atom("12"));
        let p2 = bs[1].as_list().unwrap();
        assert_eq!(p2[2], Value::List(vec![st(b"name"), st(b"a\xc3\xa4.pd")]));
        assert_eq!(bs[2], st(b"mixed"));
    }

    #[test]
    fn unsolicited_responses_in_between() {
        let d = b"* 4 EXISTS\r\n* OK [UIDNEXT 9] Predicted \"next UID\r\n* 1 FETCH (UID 3 FLAGS (\\Seen))\r\n* 2 EXPUNGE\r\n* 2 FETCH (UID 8 RFC822.SIZE 44 INTERNALDATE \"25-Nov-2026 22:21:14 +0000\")\r\n* 1 RECENT\r\n";
        let f = parse_fetches(d).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].uid(), Some(3));
        assert_eq!(f[0].get("FLAGS"), Some(&Value::List(vec![atom("\\Seen")])));
        assert_eq!(f[1].uid(), Some(8));
        assert_eq!(f[1].get("RFC822.SIZE").and_then(Value::as_u64), Some(44));
    }

    #[test]
    fn other_lines_with_literals_are_skipped() {
        let d = b"* LIST (\\HasNoChildren) \".\" {5}\r\nab cd\r\n* CAPABILITY IMAP4rev1 IDLE\r\n* 1 FETCH (UID 1)\r\n";
        let f = parse_fetches(d).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].uid(), Some(1));
    }

    #[test]
    fn literal8_and_nil_case() {
        let d = b"* 1 FETCH (UID 1 BINARY[1] ~{2}\r\n\x00\xff X nil)\r\n";
        let f = parse_fetches(d).unwrap();
        assert_eq!(f[0].get("BINARY[1]"), Some(&st(b"\x00\xff")));
        assert_eq!(f[0].get("X"), Some(&Value::Nil));
    }

    #[test]
    fn names_are_uppercased() {
        let d = b"* 1 FETCH (uid 1 body[1.mime]<0> {1}\r\nz)\r\n";
        let f = parse_fetches(d).unwrap();
        assert_eq!(f[0].get("BODY[1.MIME]<0>"), Some(&st(b"z")));
    }

    #[test]
    fn truncated_inputs_are_errors() {
        let full: &[u8] =
            b"* 1 FETCH (UID 5 BODY[HEADER.FIELDS (A)] {5}\r\nhello X \"q\\\"\" Y ((a) b))\r\n";
        assert!(parse_fetches(full).is_ok());
        // Every strict prefix that cuts into the FETCH must fail, never panic.
        for k in 9..full.len() - 2 {
            assert!(parse_fetches(&full[..k]).is_err(), "prefix {k} parsed");
        }
        for bad in [
            &b"* 1 FETCH (UID 1 X {99999999999999999999999}\r\n)"[..],
            b"* 1 FETCH (UID 1 X {5}\r\nab)\r\n",
            b"* 1 FETCH UID 1\r\n",
            b"garbage\r\n",
            b"* 99999999999 FETCH (UID 1)\r\n",
            b"* 1 FETCH (UID)\r\n",
        ] {
            assert!(
                parse_fetches(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn depth_is_bounded() {
        let mut d = b"* 1 FETCH (X ".to_vec();
        d.extend(std::iter::repeat_n(b'(', 100_000));
        d.extend(std::iter::repeat_n(b')', 100_000));
        d.extend_from_slice(b")\r\n");
        assert!(parse_fetches(&d).is_err());
        let mut ok = b"* 1 FETCH (X ".to_vec();
        ok.extend(std::iter::repeat_n(b'(', 200));
        ok.extend(std::iter::repeat_n(b')', 200));
        ok.extend_from_slice(b")\r\n");
        assert!(parse_fetches(&ok).is_ok());
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Nil),
            "[A-Za-z0-9.\\\\<>-]{1,12}(\\[[A-Z0-9. ()]{0,12}\\][<>0-9]{0,4})?"
                .prop_filter("not NIL", |s| !s.eq_ignore_ascii_case("NIL"))
                .prop_map(Value::Atom),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::Str),
        ];
        leaf.prop_recursive(6, 64, 8, |inner| {
            proptest::collection::vec(inner, 0..8).prop_map(Value::List)
        })
    }

    proptest! {
        #[test]
        fn roundtrip(v in arb_value()) {
            let mut b = Vec::new();
            serialize(&v, &mut b);
            prop_assert_eq!(parse_value(&b).unwrap(), v.clone());
            // And as a FETCH item.
            let mut line = b"* 1 FETCH (UID 3 X ".to_vec();
            line.extend_from_slice(&b);
            line.extend_from_slice(b")\r\n");
            let f = parse_fetches(&line).unwrap();
            prop_assert_eq!(f[0].get("X"), Some(&v));
        }

        #[test]
        fn never_panics(d in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_fetches(&d);
            let mut line = b"* 1 FETCH (".to_vec();
            line.extend_from_slice(&d);
            let _ = parse_fetches(&line);
        }
    }
}
