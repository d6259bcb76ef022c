//! Folder names: modified UTF-7 (RFC 3501 §5.1.3) and the escaping that turns one level of a
//! folder name into a safe, unique path component.
//!
//! CONTRACT (used by the filesystem core; keep these signatures): [`decode_mutf7`],
//! [`encode_mutf7`], [`folder_component`].

/// Decode a modified UTF-7 name to UTF-8. Malformed input is kept as it is (never fails).
pub fn decode_mutf7(name: &str) -> String {
    todo!("names agent {name}")
}

/// Encode a UTF-8 name to modified UTF-7.
pub fn encode_mutf7(name: &str) -> String {
    todo!("names agent {name}")
}

/// The path component for one level of a folder name (already decoded from mUTF-7). Injective,
/// never empty, never `.` or `..`, no `/` or NUL, at most 255 bytes, no control characters, and
/// never all decimal digits (those names belong to messages).
pub fn folder_component(level: &str) -> String {
    todo!("names agent {level}")
}
