//! One folder-name level → one path component, by percent-escaping (see the module docs of
//! [`crate::names`] for the scheme).

use std::fmt::Write;

/// Longest component most filesystems and FUSE accept (NAME_MAX).
const MAX_COMPONENT: usize = 255;
/// `~` + 16 hex digits.
const HASH_SUFFIX: usize = 17;

fn needs_escape(c: char) -> bool {
    c == '%' || c == '/' || c.is_control() || super::raw::mapped_byte(c).is_some()
}

fn push_escaped(out: &mut String, c: char) {
    // A byte of a non-UTF-8 server name stands for itself.
    if let Some(b) = super::raw::mapped_byte(c) {
        let _ = write!(out, "%{b:02X}");
        return;
    }
    for b in c.encode_utf8(&mut [0; 4]).bytes() {
        let _ = write!(out, "%{b:02X}");
    }
}

/// `escaped` cut to at most `max` bytes at a character boundary outside any `%XX`.
pub(crate) fn cut(escaped: &str, max: usize) -> &str {
    if escaped.len() <= max {
        return escaped;
    }
    let mut cut = max;
    while cut > 0 && !escaped.is_char_boundary(cut) {
        cut -= 1;
    }
    let b = escaped.as_bytes();
    for back in 1..=2 {
        if cut >= back && b.get(cut - back) == Some(&b'%') {
            cut -= back;
            break;
        }
    }
    escaped.get(..cut).unwrap_or("")
}

/// FNV-1a, 64 bit: stable across runs and versions, unlike std's hasher.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// True for `...~` + 16 lower-case hex digits: the shape reserved for shortened names.
fn looks_hashed(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= HASH_SUFFIX
        && b.get(b.len() - HASH_SUFFIX) == Some(&b'~')
        && b.iter()
            .rev()
            .take(HASH_SUFFIX - 1)
            .all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// A component made only of digits, with its first digit escaped (`2024` → `%32024`): the name a
/// subfolder takes when a message of its parent has that UID. Other components are returned as
/// they are.
pub(crate) fn beside_uid(component: &str) -> String {
    let mut chars = component.chars();
    match chars.next() {
        Some(first) if component.bytes().all(|b| b.is_ascii_digit()) => {
            let mut out = String::with_capacity(component.len() + 2);
            push_escaped(&mut out, first);
            out.push_str(chars.as_str());
            out
        }
        _ => component.to_string(),
    }
}

pub(crate) fn component(level: &str) -> String {
    if level.is_empty() {
        return "%".to_string();
    }
    if level == "." || level == ".." {
        return "%2E".repeat(level.len());
    }
    let mut out = String::with_capacity(level.len());
    for c in level.chars() {
        if needs_escape(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    if out.len() > MAX_COMPONENT {
        return shortened(&out, level);
    }
    if looks_hashed(&out) {
        // Keep the reserved shape for shortened names only: escape this `~`.
        let at = out.len() - HASH_SUFFIX;
        out.replace_range(at..=at, "%7E");
        if out.len() > MAX_COMPONENT {
            return shortened(&out, level);
        }
    }
    out
}

/// A prefix of `escaped`, cut at a char boundary outside any `%XX`, plus `~` and the hash.
fn shortened(escaped: &str, level: &str) -> String {
    let mut cut = MAX_COMPONENT - HASH_SUFFIX;
    while cut > 0 && !escaped.is_char_boundary(cut) {
        cut -= 1;
    }
    // Back off from the middle of an escape (`%` is ASCII: its offset is a char boundary).
    let b = escaped.as_bytes();
    for back in 1..=2 {
        if cut >= back && b.get(cut - back) == Some(&b'%') {
            cut -= back;
            break;
        }
    }
    let mut out = escaped.get(..cut).unwrap_or("").to_string();
    let _ = write!(out, "~{:016x}", fnv1a64(level.as_bytes()));
    out
}

/// The level a component stands for; `None` for a shortened (hashed) component or a string
/// that no level escapes to.
pub(crate) fn level_of(name: &str) -> Option<String> {
    if name == "%" {
        return Some(String::new());
    }
    if looks_hashed(name) {
        return None;
    }
    let b = name.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hex = name.get(i + 1..i + 3)?;
            if !hex.bytes().all(|h| h.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    let level = super::raw::from_raw(&out);
    // Only the canonical spellings count, so that the inverse is exact.
    let canonical = component(&level);
    (canonical == name || beside_uid(&canonical) == name).then_some(level)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn examples() {
        let cases = [
            ("INBOX", "INBOX"),
            ("Entwürfe", "Entwürfe"),
            ("a/b", "a%2Fb"),
            ("100%", "100%25"),
            ("", "%"),
            (".", "%2E"),
            ("..", "%2E%2E"),
            ("...", "..."),
            (".hidden", ".hidden"),
            ("2024", "2024"),
            ("0", "0"),
            ("2024a", "2024a"),
            ("a\0b", "a%00b"),
            ("l1\r\nl2", "l1%0D%0Al2"),
            ("del\u{7f}", "del%7F"),
            ("c1\u{85}", "c1%C2%85"),
            ("x~0123456789abcdef", "x%7E0123456789abcdef"),
            ("x~0123456789ABCDEF", "x~0123456789ABCDEF"),
        ];
        for (level, want) in cases {
            assert_eq!(component(level), want, "{level:?}");
            assert_eq!(level_of(want).as_deref(), Some(level), "{want:?}");
        }
    }

    #[test]
    fn long_names_are_shortened_with_a_hash() {
        let long = "ä".repeat(200);
        let c = component(&long);
        assert!(c.len() <= 255 && c.len() >= 250, "{}", c.len());
        assert!(looks_hashed(&c));
        assert_eq!(c, component(&long), "stable");
        assert_ne!(c, component(&"ä".repeat(201)));
        assert_eq!(level_of(&c), None);
        // Cut outside an escape.
        let c = component(&"\u{1}".repeat(100));
        assert!(c
            .trim_end_matches(|ch: char| ch.is_ascii_hexdigit())
            .ends_with("%01~"));
        for pad in 0..4 {
            let c = component(&("ä".repeat(pad) + &"\u{1}".repeat(100)));
            let prefix = &c[..c.len() - HASH_SUFFIX];
            assert!(prefix.ends_with("%01") || prefix.ends_with('ä'), "{c}");
        }
        assert_eq!(component(&"a".repeat(255)), "a".repeat(255));
        assert_eq!(component(&"a".repeat(256)).len(), 255);
    }

    #[test]
    fn digits_escape_only_beside_a_uid() {
        assert_eq!(beside_uid("2024"), "%32024");
        assert_eq!(beside_uid("Q1"), "Q1");
        assert_eq!(
            crate::names::folder_level(&beside_uid("2024")).as_deref(),
            Some("2024")
        );
    }

    fn check_safe(c: &str) -> Result<(), TestCaseError> {
        prop_assert!(!c.is_empty() && c != "." && c != "..");
        prop_assert!(c.len() <= MAX_COMPONENT);
        prop_assert!(!c.contains('/') && !c.chars().any(char::is_control));
        Ok(())
    }

    proptest! {
        #[test]
        fn safe_and_injective(level in "\\PC{0,10}|[0-9]{1,5}|[./%~a-f0-9\\x00-\\x1f]{0,20}|.{0,300}") {
            // Only levels a server name can give: a mapped character stands for a byte that is
            // not valid UTF-8 there (U+10FF00 alone, "byte 0x00", never comes from `from_raw`).
            prop_assume!(super::super::raw::from_raw(&super::super::raw::to_raw(&level)) == level);
            let c = component(&level);
            check_safe(&c)?;
            if !looks_hashed(&c) {
                // Injective: the level is recoverable from its component.
                prop_assert_eq!(level_of(&c), Some(level));
            }
        }

        #[test]
        fn shortened_prefix_is_whole_escapes(level in "[%ä\\x01a/]{90,300}") {
            let c = component(&level);
            check_safe(&c)?;
            if looks_hashed(&c) {
                let prefix = &c[..c.len() - HASH_SUFFIX];
                let b = prefix.as_bytes();
                for (i, _) in prefix.match_indices('%') {
                    prop_assert!(b.get(i + 2).is_some_and(u8::is_ascii_hexdigit), "{}", c);
                }
            }
        }

        #[test]
        fn distinct_levels_distinct_components(a in "[./%~a1\\n]{0,6}", b in "[./%~a1\\n]{0,6}") {
            prop_assert_eq!(a == b, component(&a) == component(&b));
        }
    }
}
