//! Folder names: modified UTF-7 (RFC 3501 §5.1.3) and the escaping that turns one level of a
//! folder name into a safe, unique path component.
//!
//! CONTRACT (used by the filesystem core; keep these signatures): [`decode_mutf7`],
//! [`encode_mutf7`], [`folder_component`].
//!
//! # How folder names become directory names
//!
//! Each level of a folder name (split at the server's hierarchy delimiter, then decoded from
//! modified UTF-7) becomes one directory name by percent-escaping:
//!
//! - `%` is written `%25` and `/` is written `%2F`;
//! - control characters (U+0000–U+001F, U+007F–U+009F, including CR and LF) are written as
//!   `%XX` per UTF-8 byte, upper-case hex (`%0A`, `%C2%85`);
//! - a level that is exactly `.` or `..` is written `%2E` or `%2E%2E`;
//! - the empty level (as in `a//b`) is written as a lone `%`;
//! - a level of only decimal digits is kept (`Archive/2024`), except when its parent folder holds
//!   a message with that UID: then, and only then, the folder's first digit is escaped
//!   (`2024` → `%32024`) so that the message directory keeps its name;
//! - a byte of the server's name that is not valid UTF-8 (a Latin-1 `ü` sent raw) is written
//!   `%XX` (`Entw%FCrfe`), see [`name_from_raw`];
//! - everything else, including all other Unicode, is kept as it is.
//!
//! Percent-decoding a directory name therefore gives back the folder level (the lone `%` gives
//! the empty level), so distinct levels get distinct names. One exception: a name longer than
//! 255 bytes once escaped is cut at a character boundary (never inside a `%XX`) and ends in `~`
//! plus the 16 lower-case hex digits of the FNV-1a 64-bit hash of the full level. That shape is
//! reserved: an ordinary name that happens to end in `~` and 16 lower-case hex digits gets that
//! `~` escaped as `%7E`.

//!
//! # Colliding names
//!
//! Distinct server folders can escape to the same name (`.` and `&AC4-` both decode to `.`;
//! `Entwürfe` sent as UTF-8 and as `Entw&APw-rfe`). Among the subfolders of one folder that
//! would share a name, the one whose raw server name sorts first (bytewise) keeps it; each
//! other one, in that order, gets the name followed by `~2`, `~3`, ... (the first not used by a
//! sibling), cut first if needed to stay within 255 bytes. See [`disambiguate`].

mod escape;
mod mutf7;
mod raw;

/// Decode a modified UTF-7 name to UTF-8. Malformed input is kept as it is (never fails).
pub fn decode_mutf7(name: &str) -> String {
    mutf7::decode(name).unwrap_or_else(|| name.to_string())
}

/// Encode a UTF-8 name to modified UTF-7.
pub fn encode_mutf7(name: &str) -> String {
    mutf7::encode(name)
}

/// The path component for one level of a folder name (already decoded from mUTF-7). Injective,
/// never empty, never `.` or `..`, no `/` or NUL, at most 255 bytes, no control characters.
pub fn folder_component(level: &str) -> String {
    escape::component(level)
}

/// The name of a subfolder whose component (from [`folder_component`]) equals the UID of a
/// message beside it: `2024` → `%32024`. Other components are returned unchanged.
pub fn component_beside_uid(component: &str) -> String {
    escape::beside_uid(component)
}

/// The inverse of [`folder_component`]: the level a directory name stands for, or `None` for a
/// shortened (hashed) name and for strings that `folder_component` never produces.
pub fn folder_level(component: &str) -> Option<String> {
    escape::level_of(component)
}

/// A folder name as the server sent it (bytes, not always UTF-8) as a `String`: valid UTF-8 is
/// kept, any other byte `b` becomes the private-use character U+10FF00 + `b` (and a genuine
/// character of that range is written byte by byte the same way), so that [`raw_bytes`] gives
/// back exactly the server's bytes.
pub fn name_from_raw(raw: &[u8]) -> String {
    raw::from_raw(raw)
}

/// The bytes to send for a name made by [`name_from_raw`].
pub fn raw_bytes(name: &str) -> Vec<u8> {
    raw::to_raw(name)
}

/// Distinct directory names for the subfolders of one folder. `levels[i]` is (the subfolder's
/// raw level as the server names it, the name [`folder_component`] gave it); the answer is in
/// the same order. See the module docs for the rule.
pub fn disambiguate(levels: &[(String, String)]) -> Vec<String> {
    let mut order: Vec<usize> = (0..levels.len()).collect();
    order.sort_by(|&a, &b| raw_bytes(&levels[a].0).cmp(&raw_bytes(&levels[b].0)));
    let mut taken: std::collections::HashSet<&str> = std::collections::HashSet::new();
    let mut out: Vec<Option<String>> = vec![None; levels.len()];
    for &i in &order {
        if taken.insert(levels[i].1.as_str()) {
            out[i] = Some(levels[i].1.clone());
        }
    }
    let mut used: std::collections::HashSet<String> = taken.iter().map(|s| s.to_string()).collect();
    for &i in &order {
        if out[i].is_some() {
            continue;
        }
        let plain = &levels[i].1;
        let mut k = 2u64;
        let name = loop {
            let suffix = format!("~{k}");
            let candidate = format!("{}{suffix}", escape::cut(plain, 255 - suffix.len()));
            if !used.contains(&candidate) {
                break candidate;
            }
            k += 1;
        };
        used.insert(name.clone());
        out[i] = Some(name);
    }
    out.into_iter().map(Option::unwrap_or_default).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dis(levels: &[(&str, &str)]) -> Vec<String> {
        let v: Vec<(String, String)> = levels
            .iter()
            .map(|(r, p)| (r.to_string(), p.to_string()))
            .collect();
        disambiguate(&v)
    }

    #[test]
    fn collisions_get_suffixes_by_raw_order() {
        // `&AC4-` sorts before `.`: it keeps the name.
        assert_eq!(dis(&[(".", "%2E"), ("&AC4-", "%2E")]), ["%2E~2", "%2E"]);
        assert_eq!(
            dis(&[
                ("Entwürfe", "Entwürfe"),
                ("Entw&APw-rfe", "Entwürfe"),
                ("x", "x")
            ]),
            ["Entwürfe~2", "Entwürfe", "x"]
        );
        // A suffix already taken by a real sibling is skipped.
        assert_eq!(
            dis(&[("b", "a"), ("a", "a"), ("a~2", "a~2")]),
            ["a~3", "a", "a~2"]
        );
        let long = "a".repeat(255);
        let names = dis(&[("1", &long), ("2", &long)]);
        assert_eq!(names[0], long);
        assert_eq!(names[1].len(), 255);
        assert!(names[1].ends_with("~2"));
    }

    #[test]
    fn non_utf8_bytes_show_percent_escaped() {
        let name = name_from_raw(b"Entw\xfcrfe");
        assert_eq!(folder_component(&name), "Entw%FCrfe");
        assert_eq!(folder_level("Entw%FCrfe").as_deref(), Some(name.as_str()));
        assert_eq!(raw_bytes(&name), b"Entw\xfcrfe");
        // Distinct from the UTF-8 spelling.
        assert_ne!(folder_component(&name), folder_component("Entwürfe"));
    }
}
