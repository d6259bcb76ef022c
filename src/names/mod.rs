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
//! - everything else, including all other Unicode, is kept as it is.
//!
//! Percent-decoding a directory name therefore gives back the folder level (the lone `%` gives
//! the empty level), so distinct levels get distinct names. One exception: a name longer than
//! 255 bytes once escaped is cut at a character boundary (never inside a `%XX`) and ends in `~`
//! plus the 16 lower-case hex digits of the FNV-1a 64-bit hash of the full level. That shape is
//! reserved: an ordinary name that happens to end in `~` and 16 lower-case hex digits gets that
//! `~` escaped as `%7E`.

mod escape;
mod mutf7;

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
