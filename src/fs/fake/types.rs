//! What the fake store counts, and how it answers BINARY.

/// What the core asked of the store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub list_folders: usize,
    pub list_messages: usize,
    pub fetch_structures: usize,
    pub fetch_ranges: usize,
    /// Bytes of section data returned by fetch_ranges.
    pub range_bytes: u64,
    pub fetch_briefs: usize,
    pub fetch_flags: usize,
    pub folder_counts: usize,
    /// Ranges asked for with `binary` (BINARY.PEEK), and the bytes they returned.
    pub binary_ranges: usize,
    pub binary_bytes: u64,
    /// UID SEARCH commands.
    pub search: usize,
}

/// What the fake answers to `BINARY.PEEK[section]` (see [`FakeStore::set_binary`]).
#[derive(Clone, Debug)]
pub enum BinaryAnswer {
    /// The section as the server decodes it.
    Decoded(Vec<u8>),
    /// The server refuses (Dovecot: `NO [PARSE] Invalid data in MIME part` for broken base64).
    Refused,
}
