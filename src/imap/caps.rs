//! Server capabilities (RFC 3501 §7.2.1), from `* CAPABILITY ...` or a `[CAPABILITY ...]`
//! response code, and the base64 that AUTHENTICATE PLAIN needs.

use std::collections::BTreeSet;

/// What a server says it can do, upper-cased (`IDLE`, `AUTH=PLAIN`, `LITERAL+`, ...).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Caps(BTreeSet<String>);

impl Caps {
    pub fn has(&self, name: &str) -> bool {
        self.0.contains(&name.to_ascii_uppercase())
    }

    /// The value of a `NAME=value` capability (`APPENDLIMIT=35651584`).
    pub fn value(&self, name: &str) -> Option<&str> {
        let prefix = format!("{}=", name.to_ascii_uppercase());
        self.0.iter().find_map(|w| w.strip_prefix(&prefix))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn from_words<'a>(words: impl Iterator<Item = &'a str>) -> Caps {
        Caps(
            words
                .filter(|w| !w.is_empty())
                .map(str::to_ascii_uppercase)
                .collect(),
        )
    }

    /// From an untagged response `* CAPABILITY a b c`; `None` for other responses.
    pub fn from_untagged(frame: &[u8]) -> Option<Caps> {
        let text = String::from_utf8_lossy(frame);
        let rest = text.strip_prefix("* ")?;
        let (word, rest) = rest.split_once(' ').unwrap_or((rest.trim_end(), ""));
        if !word.eq_ignore_ascii_case("CAPABILITY") {
            return None;
        }
        Some(Caps::from_words(rest.split_ascii_whitespace()))
    }

    /// From the text of a status response beginning with `[CAPABILITY a b c]`.
    pub fn from_code(text: &str) -> Option<Caps> {
        let rest = text.trim_start().strip_prefix('[')?;
        let (code, _) = rest.split_once(']')?;
        let (word, list) = code.split_once(' ').unwrap_or((code, ""));
        if !word.eq_ignore_ascii_case("CAPABILITY") {
            return None;
        }
        Some(Caps::from_words(list.split_ascii_whitespace()))
    }
}

/// Standard base64 with padding (RFC 4648), for SASL.
pub fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(char::from(A[((n >> (18 - 6 * k)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_caps() {
        let c = Caps::from_untagged(b"* CAPABILITY IMAP4rev1 idle AUTH=PLAIN\r\n").unwrap();
        assert!(c.has("IDLE") && c.has("auth=plain") && !c.has("BINARY"));
        assert!(Caps::from_untagged(b"* OK hi\r\n").is_none());
        let c = Caps::from_code("[CAPABILITY IMAP4rev1 LITERAL+ SASL-IR] Dovecot ready.").unwrap();
        assert!(c.has("LITERAL+") && c.has("SASL-IR"));
        assert!(Caps::from_code("[ALERT] x").is_none());
        assert!(Caps::from_code("no code").is_none());
    }

    #[test]
    fn base64_vectors() {
        use base64::Engine;
        for s in [
            &b""[..],
            b"f",
            b"fo",
            b"foo",
            b"foob",
            b"\0user\0p\xc3\xa4ss",
        ] {
            assert_eq!(
                base64(s),
                base64::engine::general_purpose::STANDARD.encode(s)
            );
        }
    }
}
