//! Server folder names are bytes, not always UTF-8 (a Latin-1 `Entw\xfcrfe` sent as a literal).
//! They travel through the program as `String`s by a reversible mapping:
//!
//! - valid UTF-8 is kept, except the characters U+10FF00–U+10FFFF (private use): those are
//!   written as the mapping of each of their four bytes, below, so the mapping stays one-to-one;
//! - every other byte `b` (not part of valid UTF-8) becomes the character U+10FF00 + `b`.
//!
//! [`raw_bytes`] undoes it: each character U+10FF00 + `b` gives back byte `b`.

const BASE: u32 = 0x10_FF00;

fn byte_char(b: u8) -> char {
    char::from_u32(BASE + u32::from(b)).unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// The byte a mapped character stands for, if it is one.
pub(crate) fn mapped_byte(c: char) -> Option<u8> {
    let v = u32::from(c);
    (BASE..=BASE + 0xFF).contains(&v).then(|| (v - BASE) as u8)
}

pub(crate) fn from_raw(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len());
    for chunk in raw.utf8_chunks() {
        for c in chunk.valid().chars() {
            if mapped_byte(c).is_some() {
                for b in c.encode_utf8(&mut [0; 4]).bytes() {
                    out.push(byte_char(b));
                }
            } else {
                out.push(c);
            }
        }
        for &b in chunk.invalid() {
            out.push(byte_char(b));
        }
    }
    out
}

pub(crate) fn to_raw(name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len());
    for c in name.chars() {
        match mapped_byte(c) {
            Some(b) => out.push(b),
            None => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn examples() {
        assert_eq!(from_raw(b"INBOX"), "INBOX");
        assert_eq!(from_raw("Entwürfe".as_bytes()), "Entwürfe");
        let latin1 = from_raw(b"Entw\xfcrfe");
        assert_eq!(latin1, "Entw\u{10FFFC}rfe");
        assert_eq!(to_raw(&latin1), b"Entw\xfcrfe");
        // A genuine U+10FFFC is escaped byte by byte, and comes back.
        let genuine = "a\u{10FFFC}".as_bytes();
        let s = from_raw(genuine);
        assert_eq!(s.chars().count(), 5);
        assert_eq!(to_raw(&s), genuine);
    }

    proptest! {
        #[test]
        fn round_trip(raw in proptest::collection::vec(any::<u8>(), 0..40)) {
            prop_assert_eq!(to_raw(&from_raw(&raw)), raw);
        }

        #[test]
        fn utf8_round_trip(s in "\\PC{0,10}|[\u{10FF00}-\u{10FFFF}a]{0,5}") {
            prop_assert_eq!(to_raw(&from_raw(s.as_bytes())), s.as_bytes());
        }
    }
}
