//! FETCH responses from raw untagged response bytes (as [`Wire`](super::wire::Wire) frames them:
//! literals inline as `{n}\r\n<bytes>`).
//!
//! It turns `* <n> FETCH (...)` lines into name/value items and skips everything else (`EXISTS`,
//! `EXPUNGE`, `OK [...]` and friends), never panics, bounds nesting depth and reports truncated
//! input as an error. A BODYSTRUCTURE is bounded *while* it is parsed: past [`MAX_LEAVES`] leaf
//! parts or [`MAX_BODY_DEPTH`] levels the rest of it is skipped without being built, and the
//! message gets a refusal of its own in [`FetchResponse::refused`].

pub use super::parse::ParseError;
use super::parse::{parse_u32, Parser};
#[cfg(test)]
pub use super::parse::{parse_value, serialize};
use super::sexp::Value;

/// One `* <seq> FETCH (...)` response: its items in order, names uppercased (`UID`,
/// `BODY[2]<1024>`, `BODY[HEADER.FIELDS (A B)]`, `BODYSTRUCTURE`, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchResponse {
    pub seq: u32,
    pub items: Vec<(String, Value)>,
    /// Items read but not kept, with why (a BODYSTRUCTURE over the limits).
    pub refused: Vec<(String, String)>,
}

/// Most leaf parts of one message's BODYSTRUCTURE ("more than 5,000 parts is refused").
pub const MAX_LEAVES: usize = 5_000;
/// Deepest nesting of body parts in a BODYSTRUCTURE.
pub const MAX_BODY_DEPTH: usize = 100;

/// Why a BODYSTRUCTURE was not built.
enum Stop {
    /// Over a limit: skip the rest, refuse this message only.
    Refuse(String),
    /// Not IMAP: the response is unreadable.
    Bad(ParseError),
}

impl From<ParseError> for Stop {
    fn from(e: ParseError) -> Stop {
        Stop::Bad(e)
    }
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
    let mut p = Parser::new(data);
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

impl Parser<'_> {
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
                let (items, refused) = self.fetch_items()?;
                self.end_of_line()?;
                return Ok(Some(FetchResponse {
                    seq,
                    items,
                    refused,
                }));
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
    /// `(name value name value ...)`, and the items refused.
    #[allow(clippy::type_complexity)]
    fn fetch_items(&mut self) -> Result<(Vec<(String, Value)>, Vec<(String, String)>), ParseError> {
        if self.peek() != Some(b'(') {
            return Err(self.err("expected '(' after FETCH"));
        }
        self.i += 1;
        let mut items = Vec::new();
        let mut refused = Vec::new();
        loop {
            self.skip_spaces();
            match self.peek() {
                None => return Err(self.err("truncated FETCH response")),
                Some(b')') => {
                    self.i += 1;
                    return Ok((items, refused));
                }
                Some(b'\r' | b'\n') => return Err(self.err("line ends inside FETCH response")),
                Some(_) => {
                    let name = self.atom()?;
                    self.skip_spaces();
                    let name = name.to_ascii_uppercase();
                    let value = match self.peek() {
                        None => return Err(self.err("truncated FETCH response")),
                        Some(b')') => return Err(self.err("FETCH item without value")),
                        Some(b'(') if name == "BODYSTRUCTURE" || name == "BODY" => {
                            let start = self.i;
                            match self.body(0, &mut 0) {
                                Ok(v) => v,
                                Err(Stop::Bad(e)) => return Err(e),
                                Err(Stop::Refuse(why)) => {
                                    self.i = start;
                                    self.skip_value()?;
                                    refused.push((name, why));
                                    continue;
                                }
                            }
                        }
                        _ => self.value(1)?,
                    };
                    items.push((name, value));
                }
            }
        }
    }
}

impl Parser<'_> {
    /// One body part (at its `(`), counting leaf parts into `leaves`: a multipart starts with
    /// its parts' lists, a leaf with its type string; a message/rfc822 leaf holds a body of its
    /// own (its 9th element).
    fn body(&mut self, depth: usize, leaves: &mut usize) -> Result<Value, Stop> {
        if depth > MAX_BODY_DEPTH {
            return Err(Stop::Refuse(format!(
                "BODYSTRUCTURE nested deeper than {MAX_BODY_DEPTH}"
            )));
        }
        self.i += 1; // '('
        let mut list = Vec::new();
        self.skip_spaces();
        let multipart = self.peek() == Some(b'(');
        if !multipart {
            *leaves += 1;
            if *leaves > MAX_LEAVES {
                return Err(Stop::Refuse(format!(
                    "BODYSTRUCTURE has more than {MAX_LEAVES} parts"
                )));
            }
        }
        loop {
            self.skip_spaces();
            let is_message = list.len() == 8
                && !multipart
                && matches!(list.first(), Some(Value::Str(t)) if t.eq_ignore_ascii_case(b"message"))
                && matches!(list.get(1), Some(Value::Str(t)) if t.eq_ignore_ascii_case(b"rfc822") || t.eq_ignore_ascii_case(b"global"));
            let parts_run = multipart && list.iter().all(|v| matches!(v, Value::List(_)));
            match self.peek() {
                None => return Err(Stop::Bad(self.err("truncated list"))),
                Some(b')') => {
                    self.i += 1;
                    return Ok(Value::List(list));
                }
                Some(b'\r' | b'\n') => return Err(Stop::Bad(self.err("line ends inside a list"))),
                Some(b'(') if parts_run || is_message => list.push(self.body(depth + 1, leaves)?),
                Some(_) => list.push(self.value(depth + 2)?),
            }
        }
    }
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

    /// A multipart BODYSTRUCTURE of `n` leaf parts.
    fn many_parts(n: usize) -> Vec<u8> {
        let mut d = b"(".to_vec();
        for _ in 0..n {
            d.extend_from_slice(b"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 1 NIL NIL NIL NIL)");
        }
        d.extend_from_slice(b" \"mixed\" (\"boundary\" \"b\") NIL NIL NIL)");
        d
    }

    #[test]
    fn bodystructure_limits_apply_per_message_while_parsing() {
        let mut d = Vec::new();
        for (uid, parts) in [(1, MAX_LEAVES), (2, MAX_LEAVES + 1), (3, 2), (4, 100_000)] {
            d.extend_from_slice(format!("* {uid} FETCH (UID {uid} BODYSTRUCTURE ").as_bytes());
            d.extend_from_slice(&many_parts(parts));
            d.extend_from_slice(b" BODY[HEADER] {4}\r\nA: b)\r\n");
        }
        let f = parse_fetches(&d).unwrap();
        assert_eq!(f.len(), 4);
        let leaves = |r: &FetchResponse| {
            r.get("BODYSTRUCTURE")
                .and_then(Value::as_list)
                .map(|l| l.iter().take_while(|v| v.as_list().is_some()).count())
        };
        assert_eq!(leaves(&f[0]), Some(MAX_LEAVES), "exactly the limit is kept");
        assert_eq!(leaves(&f[1]), None);
        assert!(f[1].refused[0].1.contains("more than 5000 parts"));
        assert_eq!(leaves(&f[2]), Some(2));
        assert!(f[2].refused.is_empty());
        assert_eq!(leaves(&f[3]), None);
        // The items after a refused structure are still read.
        for r in &f {
            assert_eq!(r.get("BODY[HEADER]"), Some(&st(b"A: b")));
        }
    }

    #[test]
    fn bodystructure_depth_and_nested_messages() {
        // message/rfc822 parts count the leaves of the message inside.
        let inner = "(\"text\" \"plain\" NIL NIL NIL \"7bit\" 1 1)";
        let msg = format!("(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 10 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) {inner} 3)");
        let d = format!("* 1 FETCH (UID 1 BODYSTRUCTURE ({msg} {inner} \"mixed\"))\r\n");
        let f = parse_fetches(d.as_bytes()).unwrap();
        assert!(f[0].refused.is_empty());
        assert!(f[0].get("BODYSTRUCTURE").is_some());
        // 101 nested multiparts.
        let mut deep = String::new();
        for _ in 0..=MAX_BODY_DEPTH {
            deep.push('(');
        }
        deep.push_str(inner);
        for _ in 0..=MAX_BODY_DEPTH {
            deep.push_str(" \"mixed\")");
        }
        let d = format!("* 1 FETCH (UID 1 BODYSTRUCTURE {deep})\r\n");
        let f = parse_fetches(d.as_bytes()).unwrap();
        assert!(f[0].refused[0].1.contains("deeper"), "{:?}", f[0].refused);
        assert_eq!(f[0].uid(), Some(1));
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
