//! Modified UTF-7 (RFC 3501 §5.1.3): printable ASCII stands for itself except `&`, written `&-`;
//! anything else is `&` + base64 of UTF-16BE (`,` for `/`, no padding) + `-`.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

fn sextet(b: u8) -> Option<u32> {
    ALPHABET.iter().position(|&a| a == b).map(|p| p as u32)
}

fn is_direct(c: char) -> bool {
    (' '..='~').contains(&c)
}

/// Decode; `None` if any `&...-` run is malformed (the caller then keeps the name as it is).
pub(crate) fn decode(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(amp) = rest.find('&') {
        out.push_str(rest.get(..amp)?);
        let after = rest.get(amp + 1..)?;
        let dash = after.find('-')?;
        let run = after.get(..dash)?;
        if run.is_empty() {
            out.push('&');
        } else {
            out.push_str(&decode_run(run.as_bytes())?);
        }
        rest = after.get(dash + 1..)?;
    }
    out.push_str(rest);
    Some(out)
}

fn decode_run(run: &[u8]) -> Option<String> {
    let mut units = Vec::with_capacity(run.len() * 6 / 16);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in run {
        acc = (acc << 6) | sextet(b)?;
        bits += 6;
        if bits >= 16 {
            bits -= 16;
            units.push((acc >> bits) as u16);
            acc &= (1 << bits) - 1;
        }
    }
    // Leftover bits must be padding: fewer than 6, all zero.
    if bits >= 6 || acc != 0 || units.is_empty() {
        return None;
    }
    char::decode_utf16(units)
        .collect::<Result<String, _>>()
        .ok()
}

pub(crate) fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut run: Vec<u16> = Vec::new();
    for c in name.chars() {
        if is_direct(c) {
            flush_run(&mut run, &mut out);
            match c {
                '&' => out.push_str("&-"),
                _ => out.push(c),
            }
        } else {
            run.extend(c.encode_utf16(&mut [0; 2]).iter());
        }
    }
    flush_run(&mut run, &mut out);
    out
}

fn flush_run(run: &mut Vec<u16>, out: &mut String) {
    if run.is_empty() {
        return;
    }
    out.push('&');
    let (mut acc, mut bits) = (0u32, 0u32);
    let mut push = |v: u32| out.push(char::from(ALPHABET[(v & 63) as usize]));
    for &u in run.iter() {
        acc = (acc << 16) | u32::from(u);
        bits += 16;
        while bits >= 6 {
            bits -= 6;
            push(acc >> bits);
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        push(acc << (6 - bits));
    }
    out.push('-');
    run.clear();
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn vectors() {
        let cases = [
            ("INBOX", "INBOX"),
            ("Entw&APw-rfe", "Entwürfe"),
            ("&ZeVnLIqe-", "日本語"),
            ("Tom &- Jerry", "Tom & Jerry"),
            ("&2D3eAA-", "😀"),
            ("~peter/mail/&U,BTFw-/&ZeVnLIqe-", "~peter/mail/台北/日本語"),
            ("a&AAE-b", "a\u{1}b"),
            ("", ""),
        ];
        for (raw, text) in cases {
            assert_eq!(decode(raw).as_deref(), Some(text), "{raw}");
            assert_eq!(encode(text), raw, "{text}");
        }
    }

    #[test]
    fn malformed() {
        for raw in [
            "&",
            "a&b",
            "&ZeVnLIqe",
            "&Ze/nLIqe-",
            "&A-",
            "&AP-",
            "&APx-",
            "&2D0-",
            "&3gA-",
            "&2D3YPQ-",
        ] {
            assert_eq!(decode(raw), None, "{raw}");
        }
    }

    proptest! {
        #[test]
        fn round_trip(s in "\\PC*|[ -~&]*|.*") {
            let e = encode(&s);
            prop_assert!(e.bytes().all(|b| (b' '..=b'~').contains(&b)));
            prop_assert_eq!(decode(&e), Some(s));
        }

        #[test]
        fn any_input_is_safe(s in ".*") {
            let _ = decode(&s);
        }
    }
}
