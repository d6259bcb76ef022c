//! Lenient streaming quoted-printable decoder (RFC 2045 §6.7), modelled on Dovecot's
//! `qp-decoder.c` so that output matches its BINARY fetches on valid input.
//!
//! Choices (for input the RFC does not define):
//! - `=XX` with upper- or lower-case hex decodes to the byte.
//! - `=` plus optional spaces/tabs plus CRLF or LF is a soft line break: nothing is output.
//! - Spaces/tabs before a line break, or before the end of the part, are dropped.
//! - Hard line breaks are kept as they are: CRLF stays CRLF and a bare LF stays LF (Dovecot
//!   turns a bare LF into CRLF; IMAP servers send CRLF anyway, so this only shows on odd data).
//! - Any other `=` sequence is output literally and decoding resumes right after the `=`
//!   (`=G1` → `=G1`, `=A` at the end → `=A`), as is `=` with only whitespace up to the end of
//!   the part (`= ` → `= `).
//! - A CR not followed by LF is an ordinary byte (whitespace before it is kept).
//! - Unlike Dovecot, overlong runs of whitespace (> 76) are not truncated.

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// What is held back because the next bytes decide how it is output.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum State {
    /// Nothing pending.
    #[default]
    Text,
    /// Whitespace that is dropped if the line ends here.
    Ws,
    /// `=`.
    Eq,
    /// `=` and one hex digit.
    Hex(u8),
    /// `=` then whitespace: a soft break if the line ends here.
    EqWs,
    /// (whitespace then) CR: a line end if LF follows.
    Cr,
    /// `=` (whitespace) CR: a soft break if LF follows.
    SoftCr,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct QpDecoder {
    state: State,
    /// The pending whitespace of `Ws`, `EqWs`, `Cr`, `SoftCr`.
    ws: Vec<u8>,
}

impl QpDecoder {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// True with nothing held back: a fresh decoder started here continues the output exactly.
    pub(crate) fn is_clean(&self) -> bool {
        self.state == State::Text
    }

    pub(crate) fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len());
        for &b in input {
            self.push(b, out);
        }
    }

    pub(crate) fn push(&mut self, b: u8, out: &mut Vec<u8>) {
        // At most two rounds: a byte that ends an invalid sequence is reprocessed as text.
        if !self.step(b, out) {
            self.step(b, out);
        }
    }

    /// One transition; false when `b` was not consumed (pending bytes were flushed literally).
    fn step(&mut self, b: u8, out: &mut Vec<u8>) -> bool {
        match self.state {
            State::Text => match b {
                b'=' => self.state = State::Eq,
                b'\r' => self.state = State::Cr,
                _ if is_ws(b) => {
                    self.ws.push(b);
                    self.state = State::Ws;
                }
                _ => out.push(b),
            },
            State::Ws => match b {
                _ if is_ws(b) => self.ws.push(b),
                b'\r' => self.state = State::Cr,
                b'\n' => {
                    self.ws.clear();
                    out.push(b'\n');
                    self.state = State::Text;
                }
                _ => {
                    self.flush(out);
                    return false;
                }
            },
            State::Eq => match b {
                _ if hex(b).is_some() => self.state = State::Hex(b),
                _ if is_ws(b) => {
                    self.ws.push(b);
                    self.state = State::EqWs;
                }
                b'\r' => self.state = State::SoftCr,
                b'\n' => self.state = State::Text,
                _ => {
                    self.flush(out);
                    return false;
                }
            },
            State::Hex(h) => match (hex(h), hex(b)) {
                (Some(hi), Some(lo)) => {
                    out.push((hi << 4) | lo);
                    self.state = State::Text;
                }
                _ => {
                    self.flush(out);
                    return false;
                }
            },
            State::EqWs => match b {
                _ if is_ws(b) => self.ws.push(b),
                b'\r' => self.state = State::SoftCr,
                b'\n' => {
                    self.ws.clear();
                    self.state = State::Text;
                }
                _ => {
                    self.flush(out);
                    return false;
                }
            },
            State::Cr | State::SoftCr => {
                if b == b'\n' {
                    if self.state == State::Cr {
                        out.extend_from_slice(b"\r\n");
                    }
                    self.ws.clear();
                    self.state = State::Text;
                } else {
                    self.flush(out);
                    return false;
                }
            }
        }
        true
    }

    /// Output whatever is pending as it stands (the sequence turned out not to be special) and
    /// return to `Text`. Plain trailing whitespace is the exception: at a flush it was followed
    /// by text, so it is kept, which `finish` undoes for the end of the part.
    fn flush(&mut self, out: &mut Vec<u8>) {
        match self.state {
            State::Text => {}
            State::Ws => out.extend_from_slice(&self.ws),
            State::Eq => out.push(b'='),
            State::Hex(h) => out.extend_from_slice(&[b'=', h]),
            State::EqWs => {
                out.push(b'=');
                out.extend_from_slice(&self.ws);
            }
            State::Cr => {
                out.extend_from_slice(&self.ws);
                out.push(b'\r');
            }
            State::SoftCr => {
                out.push(b'=');
                out.extend_from_slice(&self.ws);
                out.push(b'\r');
            }
        }
        self.ws.clear();
        self.state = State::Text;
    }

    /// End of the part: trailing whitespace is dropped, any other pending bytes are literal.
    pub(crate) fn finish(&mut self, out: &mut Vec<u8>) {
        if self.state == State::Ws {
            self.ws.clear();
            self.state = State::Text;
        }
        self.flush(out);
    }
}

#[cfg(test)]
pub(crate) fn decode(input: &[u8]) -> Vec<u8> {
    let mut d = QpDecoder::new();
    let mut out = Vec::with_capacity(input.len());
    d.feed(input, &mut out);
    d.finish(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An independent, line-at-a-time statement of the same rules.
    fn reference(input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = input;
        loop {
            let (line, term, next) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    let (content, term) = match rest.get(..i) {
                        Some([c @ .., b'\r']) => (c, &b"\r\n"[..]),
                        Some(c) => (c, &b"\n"[..]),
                        None => unreachable!(),
                    };
                    (content, Some(term), &rest[i + 1..])
                }
                None => (rest, None, &rest[rest.len()..]),
            };
            let mut end = line.len();
            while end > 0 && is_ws(line[end - 1]) {
                end -= 1;
            }
            let stripped = &line[..end];
            let soft = stripped.last() == Some(&b'=');
            let body = if soft { &stripped[..end - 1] } else { stripped };
            let mut i = 0;
            while i < body.len() {
                if body[i] == b'=' {
                    if let (Some(h), Some(l)) = (
                        body.get(i + 1).and_then(|&b| hex(b)),
                        body.get(i + 2).and_then(|&b| hex(b)),
                    ) {
                        out.push(h << 4 | l);
                        i += 3;
                        continue;
                    }
                }
                out.push(body[i]);
                i += 1;
            }
            match term {
                Some(t) if !soft => out.extend_from_slice(t),
                Some(_) => {}
                None => {
                    if soft {
                        // `=` (and whitespace) at the very end: literal.
                        out.extend_from_slice(&line[end - 1..]);
                    }
                    return out;
                }
            }
            rest = next;
        }
    }

    #[test]
    fn vectors() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"foo  \r\nbar=\n", b"foo\r\nbar"),
            (b"foo\t=\nbar", b"foo\tbar"),
            (b"foo = \n=01", b"foo \x01"),
            (b"foo =\t\r\nbar", b"foo bar"),
            (b"foo =\r\n=01", b"foo \x01"),
            (b"foo  \nbar=\r\n", b"foo\nbar"),
            (b"=0A=0D  ", b"\n\r"),
            (b"foo_bar", b"foo_bar"),
            (b"\n\n", b"\n\n"),
            (b"\r\n\n\n\r\n", b"\r\n\n\n\r\n"),
            (b"foo=", b"foo="),
            (b"foo= \t", b"foo= \t"),
            (b"foo= \r", b"foo= \r"),
            (b"foo= \r bar", b"foo= \r bar"),
            (b"foo=A", b"foo=A"),
            (b"foo=Ax", b"foo=Ax"),
            (b"foo=Ax=xy", b"foo=Ax=xy"),
            (b"=G1", b"=G1"),
            (b"caf=C3=a9 ok", b"caf\xc3\xa9 ok"),
            (b"a==\r\nb", b"a=b"),
            (b"a=A=41", b"a=AA"),
            (b"a \rb", b"a \rb"),
            (b"a\r\r\n", b"a\r\r\n"),
            (b"x  \t", b"x"),
        ];
        for (input, want) in cases {
            assert_eq!(decode(input), *want, "{:?}", String::from_utf8_lossy(input));
            assert_eq!(
                reference(input),
                *want,
                "ref {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    fn qp_bytes() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![
                Just(b'a'),
                Just(b'='),
                Just(b' '),
                Just(b'\t'),
                Just(b'\r'),
                Just(b'\n'),
                Just(b'0'),
                Just(b'A'),
                Just(b'f'),
                Just(b'G'),
                any::<u8>()
            ],
            0..200,
        )
    }

    proptest! {
        #[test]
        fn matches_line_reference(input in qp_bytes()) {
            prop_assert_eq!(decode(&input), reference(&input));
        }

        #[test]
        fn piecewise_equals_whole(input in qp_bytes(), cut in 0usize..200) {
            let cut = cut.min(input.len());
            let mut d = QpDecoder::new();
            let mut out = Vec::new();
            d.feed(&input[..cut], &mut out);
            d.feed(&input[cut..], &mut out);
            d.finish(&mut out);
            prop_assert_eq!(out, decode(&input));
        }
    }
}
