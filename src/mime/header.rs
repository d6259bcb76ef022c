//! Header text for people: RFC 2047 encoded words, RFC 2231 parameter values and charset
//! conversion (through `encoding_rs`), field lookup with unfolding, and text made safe for one
//! line or one path component.

use std::borrow::Cow;

/// The `encoding_rs` encoding for a MIME charset label; `None` when unknown (or UTF-7, which
/// it does not do).
pub fn charset(label: &str) -> Option<&'static encoding_rs::Encoding> {
    let label = label.trim();
    // RFC 2231 allows a language suffix (`utf-8*en`); some mailers write `utf8`.
    let label = label.split('*').next().unwrap_or("");
    encoding_rs::Encoding::for_label(label.as_bytes()).or_else(|| {
        label
            .eq_ignore_ascii_case("utf8")
            .then_some(encoding_rs::UTF_8)
    })
}

/// True for charsets whose bytes are already UTF-8 text (UTF-8 itself, US-ASCII and its aliases).
pub fn is_utf8_compatible(label: &str) -> bool {
    let l = label.trim().to_ascii_lowercase();
    matches!(
        l.as_str(),
        "utf-8" | "utf8" | "us-ascii" | "ascii" | "ansi_x3.4-1968" | "iso646-us" | "us"
    )
}

/// `bytes` in charset `enc` as UTF-8; invalid sequences become U+FFFD.
pub fn to_utf8(enc: &'static encoding_rs::Encoding, bytes: &[u8]) -> String {
    enc.decode_without_bom_handling(bytes).0.into_owned()
}

/// The unfolded value of the first header field `name` (case-insensitive) in a raw header
/// block, as bytes; `None` when absent.
pub fn field<'a>(header: &'a [u8], name: &str) -> Option<Cow<'a, [u8]>> {
    let mut lines = header.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        if !line[..colon]
            .trim_ascii()
            .eq_ignore_ascii_case(name.as_bytes())
        {
            continue;
        }
        let mut value: Cow<[u8]> = Cow::Borrowed(line[colon + 1..].trim_ascii_start());
        // Continuation lines start with white space; unfolding removes only the line break.
        while let Some(next) =
            lines.next_if(|l| l.first().is_some_and(|b| *b == b' ' || *b == b'\t'))
        {
            let next = next.strip_suffix(b"\r").unwrap_or(next);
            value.to_mut().extend_from_slice(next);
        }
        return Some(value);
    }
    None
}

/// Decode RFC 2047 encoded words in an unstructured header value (8-bit bytes outside them
/// are taken as UTF-8, lossily). White space between two adjacent encoded words is dropped;
/// words that are malformed or in an unknown charset are kept as they are.
pub fn decode_words(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(text.len());
    let mut rest: &str = &text;
    let mut after_word = false;
    while let Some(start) = rest.find("=?") {
        let (before, from) = rest.split_at(start);
        if let Some((decoded, len)) = encoded_word(from) {
            // White space between two encoded words is not part of the text (RFC 2047 §6.2).
            let only_space = before.chars().all(|c| c == ' ' || c == '\t');
            if !(after_word && only_space) {
                out.push_str(before);
            }
            out.push_str(&decoded);
            after_word = true;
            rest = &from[len..];
        } else {
            // Not a word: keep `=?` and go on after it.
            out.push_str(before);
            out.push_str("=?");
            after_word = false;
            rest = &from[2..];
        }
    }
    out.push_str(rest);
    out
}

/// One encoded word `=?charset?B|Q?text?=` at the start of `s`: its decoded text and length.
fn encoded_word(s: &str) -> Option<(String, usize)> {
    let body = s.strip_prefix("=?")?;
    let q1 = body.find('?')?;
    let cs = &body[..q1];
    let after = &body[q1 + 1..];
    let mut it = after.chars();
    let enc = it.next()?;
    if !after[enc.len_utf8()..].starts_with('?') {
        return None;
    }
    let text_start = enc.len_utf8() + 1;
    let end = after[text_start..].find("?=")?;
    let text = &after[text_start..text_start + end];
    if cs.is_empty() || cs.len() > 40 || text.contains([' ', '\t']) {
        return None;
    }
    let bytes = match enc {
        'B' | 'b' => base64_strict(text)?,
        'Q' | 'q' => q_decode(text)?,
        _ => return None,
    };
    let encoding = charset(cs)?;
    let total = 2 + q1 + 1 + text_start + end + 2;
    Some((to_utf8(encoding, &bytes), total))
}

fn b64_value(c: u8) -> Option<u32> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    } as u32)
}

/// Base64 of an encoded word: only the alphabet and trailing `=` padding.
pub(crate) fn base64_strict(text: &str) -> Option<Vec<u8>> {
    let data = text.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(data.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for &c in data {
        acc = (acc << 6) | b64_value(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// The `Q` encoding: `_` is a space, `=XX` a byte.
fn q_decode(text: &str) -> Option<Vec<u8>> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'_' => out.push(b' '),
            b'=' => {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    Some(out)
}

/// Percent-decoding of an RFC 2231 extended value (`%E2%82%AC`); invalid escapes stay.
fn percent_decode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while let Some(&c) = s.get(i) {
        let hex = s
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (c, hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// The value of parameter `name` among `params` (name/value pairs as the server gives them),
/// with RFC 2231 continuations (`name*0`, `name*1*`, …) joined and charsets applied, then RFC
/// 2047 words decoded (mailers put them in `filename="=?UTF-8?…"` although the RFC forbids it).
pub fn param(params: &[(String, Vec<u8>)], name: &str) -> Option<String> {
    let name = name.to_ascii_lowercase();
    let mut plain: Option<&[u8]> = None;
    let mut extended: Option<&[u8]> = None;
    let mut pieces: Vec<(u32, bool, &[u8])> = Vec::new();
    for (k, v) in params {
        let k = k.to_ascii_lowercase();
        let Some(rest) = k.strip_prefix(name.as_str()) else {
            continue;
        };
        if rest.is_empty() {
            plain.get_or_insert(v);
        } else if rest == "*" {
            extended.get_or_insert(v);
        } else if let Some(n) = rest.strip_prefix('*') {
            let (num, star) = match n.strip_suffix('*') {
                Some(num) => (num, true),
                None => (n, false),
            };
            if let Ok(i) = num.parse::<u32>() {
                pieces.push((i, star, v));
            }
        }
    }
    if let Some(v) = extended {
        let (raw, cs) = extended_raw(v, true);
        return Some(in_charset(cs.as_deref(), &raw));
    }
    if !pieces.is_empty() {
        pieces.sort_by_key(|p| p.0);
        // Only a run from 0 without gaps counts (RFC 2231 §3).
        let mut bytes = Vec::new();
        let mut cs = None;
        for (want, (i, star, v)) in pieces.iter().enumerate() {
            if *i as usize != want {
                break;
            }
            if *star {
                let (raw, found) = extended_raw(v, want == 0);
                if want == 0 {
                    cs = found;
                }
                bytes.extend_from_slice(&raw);
            } else {
                bytes.extend_from_slice(v);
            }
        }
        let text = in_charset(cs.as_deref(), &bytes);
        return Some(decode_words(text.as_bytes()));
    }
    plain.map(decode_words)
}

/// An extended value `charset'language'%XX…` (the prefix only on the first piece): the
/// percent-decoded bytes and the charset named.
fn extended_raw(v: &[u8], first: bool) -> (Vec<u8>, Option<String>) {
    if first {
        let mut parts = v.splitn(3, |&b| b == b'\'');
        if let (Some(cs), Some(_lang), Some(rest)) = (parts.next(), parts.next(), parts.next()) {
            return (
                percent_decode(rest),
                Some(String::from_utf8_lossy(cs).into_owned()),
            );
        }
    }
    (percent_decode(v), None)
}

/// Bytes in a named charset as text; unnamed or unknown charsets are taken as UTF-8 (lossily).
fn in_charset(cs: Option<&str>, bytes: &[u8]) -> String {
    match cs.and_then(charset) {
        Some(enc) => to_utf8(enc, bytes),
        None => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Text for one field of a TAB-separated line: TAB, CR, LF and every other control character
/// become a space.
pub fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Longest path component (NAME_MAX).
pub const MAX_NAME: usize = 255;

/// A file name made a safe single path component: `/`, NUL and control characters become `_`;
/// leading and trailing white space is trimmed; `.` and `..` become `_` and `__`; longer than
/// 255 bytes is cut at a character boundary, keeping a short extension. `None` when nothing is
/// left.
pub fn safe_file_name(name: &str) -> Option<String> {
    let cleaned: String = name
        .chars()
        .map(|c| if c == '/' || c.is_control() { '_' } else { c })
        .collect();
    let trimmed = cleaned.trim();
    let s = match trimmed {
        "" => return None,
        "." => "_".to_string(),
        ".." => "__".to_string(),
        other => other.to_string(),
    };
    Some(fit(&s, "", MAX_NAME))
}

/// `name` with `suffix` put before its extension (`a.pdf` + `~2` → `a~2.pdf`), cut to `max`
/// bytes at a character boundary (keeping the extension and suffix when they fit).
pub fn fit(name: &str, suffix: &str, max: usize) -> String {
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 && name.len() - i <= 16 => name.split_at(i),
        _ => (name, ""),
    };
    let room = max.saturating_sub(suffix.len() + ext.len());
    let mut cut = stem.len().min(room);
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut out = String::with_capacity(cut + suffix.len() + ext.len());
    out.push_str(&stem[..cut]);
    out.push_str(suffix);
    out.push_str(ext);
    if out.len() > max {
        // Extension and suffix alone are too long: plain cut.
        let mut cut = max;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_words() {
        let cases: [(&str, &str); 12] = [
            ("plain text", "plain text"),
            ("=?UTF-8?B?w6Rw?=", "äp"),
            ("=?iso-8859-1?q?Gr=FC=DFe_aus?= Köln", "Grüße aus Köln"),
            ("=?utf-8?q?a?= =?utf-8?q?b?=", "ab"),
            ("=?utf-8?q?a?=\t =?utf-8?q?b?= c", "ab c"),
            ("x =?utf-8?q?a?= y", "x a y"),
            // Unknown charset, broken base64, missing end: kept as they are.
            ("=?x-unknown?Q?abc?=", "=?x-unknown?Q?abc?="),
            ("=?utf-8?B?!!!?=", "=?utf-8?B?!!!?="),
            ("=?utf-8?Q?abc", "=?utf-8?Q?abc"),
            ("=?utf-8?X?abc?=", "=?utf-8?X?abc?="),
            ("=?koi8-r?B?8NLJ18XU?=", "Привет"),
            ("=?ISO-2022-JP?B?GyRCJEskWyRzGyhC?=", "にほん"),
        ];
        for (raw, want) in cases {
            assert_eq!(decode_words(raw.as_bytes()), want, "{raw}");
        }
        // Invalid bytes in a known charset become U+FFFD.
        assert_eq!(decode_words(b"=?utf-8?Q?a=FFb?="), "a\u{fffd}b");
    }

    #[test]
    fn fields_unfold() {
        let h = b"From: Alice\r\n <a@x>\r\nsubject: one\r\n\ttwo\r\nX: y\r\n\r\n";
        assert_eq!(field(h, "from").unwrap().as_ref(), b"Alice <a@x>");
        assert_eq!(field(h, "Subject").unwrap().as_ref(), b"one\ttwo");
        assert!(field(h, "Cc").is_none());
        assert_eq!(one_line("one\ttwo\r\nthree\u{1}"), "one two  three ");
    }

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn rfc2231_parameters() {
        assert_eq!(
            param(&p(&[("NAME", "a.pdf")]), "name").as_deref(),
            Some("a.pdf")
        );
        assert_eq!(
            param(
                &p(&[("filename*", "utf-8''%E2%82%AC%20rate.pdf")]),
                "filename"
            )
            .as_deref(),
            Some("€ rate.pdf")
        );
        assert_eq!(
            param(
                &p(&[
                    ("filename*1*", "%E4t.txt"),
                    ("filename*0*", "iso-8859-1'de'Gr%FC%DF"),
                    ("filename*2", "-x"),
                ]),
                "filename"
            )
            .as_deref(),
            Some("Grüßät.txt-x")
        );
        // A gap ends the continuation.
        assert_eq!(
            param(&p(&[("filename*0", "a"), ("filename*2", "c")]), "filename").as_deref(),
            Some("a")
        );
        assert_eq!(
            param(&p(&[("filename", "=?utf-8?B?w6QucGRm?=")]), "filename").as_deref(),
            Some("ä.pdf")
        );
        assert_eq!(param(&p(&[("charset", "x")]), "filename"), None);
    }

    #[test]
    fn safe_names() {
        assert_eq!(
            safe_file_name("a/b\0c\r\n.pdf").as_deref(),
            Some("a_b_c__.pdf")
        );
        assert_eq!(safe_file_name(" . ").as_deref(), Some("_"));
        assert_eq!(safe_file_name("..").as_deref(), Some("__"));
        assert_eq!(safe_file_name("  "), None);
        let long = format!("{}.pdf", "ä".repeat(300));
        let s = safe_file_name(&long).unwrap();
        assert!(s.len() <= 255 && s.ends_with(".pdf"), "{}", s.len());
        assert_eq!(fit("a.pdf", "~2", 255), "a~2.pdf");
        assert_eq!(fit("noext", "~2", 255), "noext~2");
        assert_eq!(fit(".profile", "~2", 255), ".profile~2");
        assert!(fit(&"x".repeat(255), "~3", 255).ends_with("~3"));
    }

    #[test]
    fn charsets() {
        assert!(charset("ISO-8859-15").is_some());
        assert!(charset("x-nonsense").is_none());
        assert!(is_utf8_compatible("US-ASCII"));
        assert!(!is_utf8_compatible("windows-1252"));
        let enc = charset("windows-1251").unwrap();
        assert_eq!(to_utf8(enc, b"\xcf\xf0\xe8"), "При");
    }
}
