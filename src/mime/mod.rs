//! MIME structure and decoding: the tree of parts with IMAP section numbers (read from
//! BODYSTRUCTURE by `imap`), which parts become files, transfer decodings, and how decoded byte
//! ranges map onto encoded ones.
//!
//! CONTRACT (used by the filesystem core; keep these signatures):
//! - [`Part`], [`files_of`], [`outline`]
//! - [`Encoding::from_cte`]
//! - [`decode_all`]
//! - [`Locator`] with [`Locator::plan`], [`Locator::decode`], [`Locator::decoded_size`]
//! - [`IndexBuilder`] (full-scan path), [`infer_base64_layout`] (head/tail path)

mod base64;
mod decoder;
pub mod header;
mod index;
mod layout;
mod locator;
mod outline;
mod qp;
mod structure;

pub use index::{DecodeIndex, IndexBuilder};
pub use layout::Base64Layout;
pub use outline::{outline, NodeInfo};

/// Content-Transfer-Encoding as far as decoding is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// 7bit, 8bit, binary, absent, or unknown: served as the server holds it.
    Identity,
    Base64,
    QuotedPrintable,
}

impl Encoding {
    /// From a Content-Transfer-Encoding value (case-insensitive); unknown values are `Identity`.
    pub fn from_cte(cte: Option<&str>) -> Encoding {
        let cte = cte.unwrap_or("").trim();
        if cte.eq_ignore_ascii_case("base64") {
            Encoding::Base64
        } else if cte.eq_ignore_ascii_case("quoted-printable") {
            Encoding::QuotedPrintable
        } else {
            Encoding::Identity
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartKind {
    /// A non-multipart, non-message part.
    Leaf,
    /// message/rfc822 (also message/global): has an encapsulated header and body.
    Message,
    Multipart,
}

/// One node of a message's MIME tree, as BODYSTRUCTURE describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    /// IMAP section number (RFC 3501 §6.4.5), e.g. `1`, `2.1`, `3.2.1`. The top-level multipart
    /// of a message has the empty section; so does the multipart body of an encapsulated
    /// message, which takes the section of its message part (its children are `n.1`, `n.2`).
    pub section: String,
    pub kind: PartKind,
    /// Lower-case `type/subtype`, e.g. `text/plain`, `multipart/mixed`.
    pub media_type: String,
    pub encoding: Encoding,
    /// Stored as `8bit` or `binary`: may hold NUL, which `BODY[]` cannot carry (servers replace it).
    pub eight_bit: bool,
    /// Octets of the part's body as stored on the server (0 for multiparts and when unknown).
    pub encoded_size: u64,
    /// False when BODYSTRUCTURE gave no believable size (NIL, or absurdly large).
    pub size_known: bool,
    /// Subparts of a multipart; for a message part, its one body (a Part whose section follows the
    /// numbering rule above).
    pub children: Vec<Part>,
    /// The `charset` parameter, as sent.
    pub charset: Option<String>,
    /// Lower-case disposition type (`attachment`, `inline`).
    pub disposition: Option<String>,
    /// Content-Disposition `filename`, else Content-Type `name`, decoded (RFC 2231, RFC 2047).
    pub filename: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable BODYSTRUCTURE: {0}")]
pub struct StructureError(pub String);

/// Which of a message's files a part gives rise to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// `<section>`: the part's decoded content (for a message part: the whole encapsulated message).
    Content,
    /// `<section>.HEADER`: the header of an encapsulated message.
    NestedHeader,
}

/// One file of a message directory, derived from the MIME tree (HEADER is not included).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilePart {
    pub section: String,
    pub kind: FileKind,
    pub encoding: Encoding,
    /// Stored as `8bit` or `binary` (see [`Part::eight_bit`]).
    pub eight_bit: bool,
    /// For Content: the encoded size from BODYSTRUCTURE. For NestedHeader: 0 (unknown until fetched).
    pub encoded_size: u64,
    /// False when the size must be learnt by reading (nested headers, NIL or absurd sizes).
    pub size_known: bool,
    /// For the one non-multipart body of a message: its message's `TEXT` section (`TEXT`, `2.TEXT`),
    /// fetched in place of the part number for bytes as stored. RFC 3501 makes them the same bytes,
    /// but Courier answers `BODY[1]` of a top-level message/rfc822 (or `BODY[n.1]` of a nested
    /// one's single body) with the wrong bytes, and `BODY[1]` of a boundary-less multipart with none.
    pub text_section: Option<String>,
}

impl FilePart {
    /// The file's name in the message directory: `2.1` or `2.HEADER`.
    pub fn file_name(&self) -> String {
        match self.kind {
            FileKind::Content => self.section.clone(),
            FileKind::NestedHeader => format!("{}.HEADER", self.section),
        }
    }

    /// The IMAP section to fetch its bytes as stored: `2.1`, `2.TEXT` (see
    /// [`text_section`](Self::text_section)) or `2.HEADER`.
    pub fn fetch_section(&self) -> String {
        self.text_section
            .clone()
            .unwrap_or_else(|| self.file_name())
    }

    /// The section for `BINARY[...]`, which takes only part numbers: `2.1`.
    pub fn binary_section(&self) -> String {
        self.file_name()
    }
}

/// Every leaf part and every message part as a file (`<section>`), plus `<section>.HEADER` for
/// each message part, in section order. Multipart containers give no file.
pub fn files_of(root: &Part) -> Vec<FilePart> {
    structure::files_of(root)
}

/// Decode a whole part leniently: never fails; bytes it cannot decode are dropped (base64) or kept
/// as they are (quoted-printable), the way Dovecot's BINARY decoder treats valid input.
pub fn decode_all(enc: Encoding, input: &[u8]) -> Vec<u8> {
    decoder::decode_all(enc, input)
}

/// Which encoded bytes to fetch for a decoded range, and where their decoding starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RangePlan {
    /// First encoded byte to fetch.
    pub enc_start: u64,
    /// One past the last encoded byte to fetch (≤ the part's encoded size).
    pub enc_end: u64,
    /// The decoded offset at which decoding `enc_start..enc_end` begins (≤ the wanted start).
    pub dec_start: u64,
}

/// Knows a part's decoded size and how to reach any decoded range by a partial fetch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Locator {
    /// Identity encoding: decoded = encoded.
    Identity { size: u64 },
    /// Base64 with a regular line layout inferred from the part's head and tail.
    Layout(Base64Layout),
    /// Any encoding after a full scan: restart points every so many decoded bytes.
    Index(DecodeIndex),
}

/// Bytes of a part's head and tail needed by [`infer_base64_layout`].
pub const LAYOUT_SAMPLE: u64 = 1024;

/// Infer the layout of a base64 part from its first and last bytes (up to LAYOUT_SAMPLE each)
/// and its encoded size; `None` when no regular layout explains both (then the caller scans).
pub fn infer_base64_layout(head: &[u8], tail: &[u8], encoded_size: u64) -> Option<Base64Layout> {
    layout::infer(head, tail, encoded_size)
}
