//! The model of a message directory: its files, their exact sizes once settled, and what must
//! be fetched to settle them (the fetching is `content`'s).
//!
//! Sizes come from BODYSTRUCTURE where the bytes are served as stored; a decoded part's size is
//! computed: small parts are fetched whole and decoded (they are likely to be read anyway), big
//! base64 parts from the line layout seen at their head and tail, anything else by a full scan.
//! That work is done only when a file's size is first wanted, and then for the same file of a
//! batch of neighbouring messages at once (`grep x Folder/*/1` needs part 1 of every message,
//! never the attachments' sizes), with all whole/head/tail fetches in one request to the store.

use std::sync::Arc;

use crate::mime::{files_of, Encoding, FileKind};
use crate::store::StructureData;

mod file;

pub use file::{FileInfo, Snapshot};

/// Message structures are fetched this many neighbours at a time.
pub const STRUCTURE_BATCH: usize = 64;

/// Encoded parts up to this size are fetched whole to learn their decoded size.
pub const SMALL_PART: u64 = 64 * 1024;

/// The files of one message directory; `files[0]` is HEADER.
#[derive(Debug)]
pub struct MessageInfo {
    pub files: Vec<FileInfo>,
}

impl MessageInfo {
    pub fn file_index(&self, name: &str) -> Option<usize> {
        self.files.iter().position(|f| f.name == name)
    }
}

/// What must be fetched to settle one file's size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    Whole,
    HeadTail,
    Scan,
}

fn ready_file(name: &str, section: &str, size: u64) -> FileInfo {
    FileInfo::new(
        name.into(),
        section.into(),
        Encoding::Identity,
        size,
        None,
        Some(size),
    )
}

/// Build the directories of a batch of messages; sizes that need fetching are left unsettled
/// (see `ContentFetcher::settle`). A message whose structure cannot be read gets a directory
/// with its HEADER and its body as stored (`TEXT`).
/// `folder` names the messages in log lines; `offers_binary`: the store can fetch 8bit/binary parts
/// with BINARY (see [`FileInfo::binary`]).
pub fn build_batch(
    folder: &str,
    items: Vec<(u32, StructureData)>,
    offers_binary: bool,
) -> Vec<(u32, Arc<MessageInfo>)> {
    let mut out = Vec::with_capacity(items.len());
    for (uid, data) in items {
        let header_size = data.header.len() as u64;
        let mut files = vec![ready_file("HEADER", "HEADER", header_size)];
        match &data.structure {
            Ok(root) => {
                for part in files_of(root) {
                    let need = match (part.kind, part.encoding) {
                        (FileKind::NestedHeader, _) => Some(Need::Whole),
                        // Unknown (NIL, absurd): read it; streamed, as it may be big.
                        _ if !part.size_known => Some(Need::Scan),
                        (_, Encoding::Identity) => None,
                        (_, _) if part.encoded_size <= SMALL_PART => Some(Need::Whole),
                        (_, Encoding::Base64) => Some(Need::HeadTail),
                        (_, Encoding::QuotedPrintable) => Some(Need::Scan),
                    };
                    let size = part.encoded_size;
                    let mut file = FileInfo::new(
                        part.file_name(),
                        part.fetch_section(),
                        part.encoding,
                        size,
                        need,
                        need.is_none().then_some(size),
                    );
                    // An 8bit/binary part's size is the same either way (what the server
                    // stores is what BINARY gives), but only BINARY carries its NUL bytes.
                    file.binary = part.eight_bit && offers_binary;
                    // Bytes as stored may come from a TEXT section (FilePart::text_section);
                    // BINARY takes only the part number. A file always fetched by BINARY uses
                    // it throughout, so `section` and `binary` stay consistent everywhere.
                    let binary_section = part.binary_section();
                    if file.binary {
                        file.section = binary_section;
                    } else if binary_section != file.section {
                        file.binary_section = Some(binary_section);
                    }
                    files.push(file);
                }
            }
            Err(e) => {
                // Still show what can be shown: the header, and the body as stored.
                log::warn!("{folder} UID {uid}: {e}; showing its HEADER and raw TEXT");
                files.push(FileInfo::new(
                    "TEXT".into(),
                    "TEXT".into(),
                    Encoding::Identity,
                    0,
                    Some(Need::Whole),
                    None,
                ));
            }
        }
        out.push((uid, Arc::new(MessageInfo { files })));
    }
    out
}

/// `f` again with its size unknown: BODYSTRUCTURE gave it more bytes than the whole message
/// has, so neither that size nor a fetch of that length can be trusted; it is read, streamed,
/// as a part of unknown size is.
fn size_unknown(f: &FileInfo) -> FileInfo {
    let mut out = FileInfo::new(
        f.name.clone(),
        f.section.clone(),
        f.encoding,
        0,
        Some(Need::Scan),
        None,
    );
    out.binary = f.binary;
    out
}

/// Add the files every message directory has beside its parts (see `fs::layout`): `RFC822`
/// (its size is RFC822.SIZE), `TEXT` (RFC822.SIZE less the header) unless the directory has it
/// already, and `N.MIME` for each of `mime_sections` (sized by fetching them whole, when first
/// wanted). An unknown RFC822.SIZE leaves those sizes to be fetched the same way. A part said
/// to be larger than RFC822.SIZE gets its size from reading it.
pub fn add_browse_files(
    info: &mut MessageInfo,
    rfc822_size: Option<u64>,
    mime_sections: &[String],
) {
    let header = info.files.first().map(FileInfo::size).unwrap_or(0);
    let sized = |name: &str, section: &str, size: Option<u64>| match size {
        Some(size) => ready_file(name, section, size),
        None => FileInfo::new(
            name.into(),
            section.into(),
            Encoding::Identity,
            0,
            Some(Need::Whole),
            None,
        ),
    };
    let rfc822_size = rfc822_size.filter(|&s| s > 0 && s >= header);
    if let Some(total) = rfc822_size {
        for f in info.files.iter_mut().skip(1) {
            if f.encoded_size > total {
                *f = size_unknown(f);
            }
        }
    }
    if info.file_index("TEXT").is_none() {
        let text = rfc822_size.map(|s| s - header);
        info.files.push(sized("TEXT", "TEXT", text));
    }
    info.files.push(sized("RFC822", "", rfc822_size));
    for section in mime_sections {
        let name = format!("{section}.MIME");
        info.files.push(sized(&name, &name, None));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> MessageInfo {
        let coded = |name: &str, enc, size, need| {
            FileInfo::new(name.into(), name.into(), enc, size, Some(need), None)
        };
        let mut big = ready_file("1", "1", 5_000_000);
        big.binary = true;
        MessageInfo {
            files: vec![
                ready_file("HEADER", "HEADER", 100),
                big,
                ready_file("2", "2", 900),
                coded("3", Encoding::Base64, 4_000_000, Need::HeadTail),
                coded("4", Encoding::QuotedPrintable, 2000, Need::Whole),
            ],
        }
    }

    #[test]
    fn parts_larger_than_the_message_are_read_for_their_size() {
        let mut m = info();
        add_browse_files(&mut m, Some(1000), &[]);
        let state = |name: &str| {
            let f = &m.files[m.file_index(name).unwrap()];
            (f.encoded_size, f.need, f.size.get().copied(), f.binary)
        };
        assert_eq!(state("1"), (0, Some(Need::Scan), None, true));
        assert_eq!(state("2"), (900, None, Some(900), false));
        assert_eq!(state("3"), (0, Some(Need::Scan), None, false));
        assert_eq!(state("4"), (0, Some(Need::Scan), None, false));
        assert_eq!(m.files[1].encoding, Encoding::Identity);
        assert_eq!(m.files[3].encoding, Encoding::Base64);
        assert_eq!(state("TEXT"), (900, None, Some(900), false));
        assert_eq!(state("RFC822"), (1000, None, Some(1000), false));
    }

    #[test]
    fn without_a_message_size_part_sizes_stand() {
        let mut m = info();
        add_browse_files(&mut m, None, &[]);
        let f = &m.files[1];
        assert_eq!((f.encoded_size, f.need), (5_000_000, None));
        assert_eq!(m.files[3].need, Some(Need::HeadTail));
        let text = &m.files[m.file_index("TEXT").unwrap()];
        assert_eq!((text.need, text.size.get()), (Some(Need::Whole), None));
    }
}
