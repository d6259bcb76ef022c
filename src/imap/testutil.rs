//! Test helpers: IMAP-syntax values, so tests read like real server output.

use super::sexp::Value;

/// Parse one IMAP value: `(...)` lists, `"quoted"` strings, `{n}\r\n` literals, `NIL`, atoms.
/// Panics on bad syntax (tests only).
pub(crate) fn imap(s: &str) -> Value {
    let mut p = P {
        s: s.as_bytes(),
        i: 0,
    };
    let v = p.value();
    p.ws();
    assert_eq!(p.i, p.s.len(), "trailing input in {s:?}");
    v
}

struct P<'a> {
    s: &'a [u8],
    i: usize,
}

impl P<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn value(&mut self) -> Value {
        self.ws();
        match self.s[self.i] {
            b'(' => {
                self.i += 1;
                let mut items = Vec::new();
                loop {
                    self.ws();
                    if self.s[self.i] == b')' {
                        self.i += 1;
                        return Value::List(items);
                    }
                    items.push(self.value());
                }
            }
            b'"' => {
                self.i += 1;
                let mut out = Vec::new();
                loop {
                    match self.s[self.i] {
                        b'"' => break,
                        b'\\' => {
                            self.i += 1;
                            out.push(self.s[self.i]);
                        }
                        b => out.push(b),
                    }
                    self.i += 1;
                }
                self.i += 1;
                Value::Str(out)
            }
            b'{' => {
                let close = self.i + self.s[self.i..].iter().position(|&b| b == b'}').unwrap();
                let n: usize = std::str::from_utf8(&self.s[self.i + 1..close])
                    .unwrap()
                    .parse()
                    .unwrap();
                let start = close + 3; // "}\r\n"
                self.i = start + n;
                Value::Str(self.s[start..start + n].to_vec())
            }
            _ => {
                let start = self.i;
                while self.i < self.s.len() && !b" ()\r\n\t".contains(&self.s[self.i]) {
                    self.i += 1;
                }
                let atom = std::str::from_utf8(&self.s[start..self.i]).unwrap();
                if atom.eq_ignore_ascii_case("NIL") {
                    Value::Nil
                } else {
                    Value::Atom(atom.to_string())
                }
            }
        }
    }
}

#[test]
fn parses_imap_syntax() {
    assert_eq!(
        imap(
            r#"("a\"b" NIL 12 ({2}
xy))"#
                .replace('\n', "\r\n")
                .as_str()
        ),
        Value::List(vec![
            Value::Str(b"a\"b".to_vec()),
            Value::Nil,
            Value::Atom("12".into()),
            Value::List(vec![Value::Str(b"xy".to_vec())]),
        ])
    );
}
