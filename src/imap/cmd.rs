//! A command to send: text pieces and strings, each string quoted or (when it holds anything
//! else than plain printable ASCII) a literal, with what logs may show of it.

/// One piece of a command: text, or a string sent as a literal.
#[derive(Clone, Debug)]
pub enum Piece {
    Text(Vec<u8>),
    Literal(Vec<u8>),
}

/// A command without its tag, ready to send.
#[derive(Clone, Debug, Default)]
pub struct Cmd {
    pub pieces: Vec<Piece>,
    /// What logs and errors show (never a password).
    pub shown: String,
}

impl Cmd {
    pub fn text(s: &str) -> Cmd {
        Cmd {
            pieces: vec![Piece::Text(s.as_bytes().to_vec())],
            shown: s.to_string(),
        }
    }

    /// Append text.
    pub fn t(mut self, s: &str) -> Cmd {
        self.shown.push_str(s);
        match self.pieces.last_mut() {
            Some(Piece::Text(t)) => t.extend_from_slice(s.as_bytes()),
            _ => self.pieces.push(Piece::Text(s.as_bytes().to_vec())),
        }
        self
    }

    /// Append a string argument: quoted when it is printable 7-bit ASCII without `"` and `\`,
    /// otherwise a literal (CR, LF, quotes, backslashes, 8-bit bytes all arrive intact).
    pub fn string(self, bytes: &[u8]) -> Cmd {
        self.string_shown(bytes, &String::from_utf8_lossy(bytes))
    }

    /// As [`Cmd::string`], shown in logs as `shown` (a password as `***`).
    pub fn string_shown(mut self, bytes: &[u8], shown: &str) -> Cmd {
        if bytes
            .iter()
            .all(|&b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
        {
            let mut q = Vec::with_capacity(bytes.len() + 2);
            q.push(b'"');
            q.extend_from_slice(bytes);
            q.push(b'"');
            let shown_before = std::mem::take(&mut self.shown);
            self = self.t(&String::from_utf8_lossy(&q));
            self.shown = shown_before;
        } else {
            self.pieces.push(Piece::Literal(bytes.to_vec()));
        }
        self.shown.push_str(&format!("{shown:?}"));
        self
    }
}
