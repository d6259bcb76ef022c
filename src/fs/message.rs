//! A message directory's files and their exact sizes, resolved for a batch of messages at once.
//!
//! Sizes come from BODYSTRUCTURE where the bytes are served as stored; a decoded part's size is
//! computed: small parts are fetched whole and decoded (they are likely to be read anyway), big
//! base64 parts from the line layout seen at their head and tail, anything else by a full scan.
//! All whole/head/tail fetches of a batch go out as one request to the store.

use std::sync::{Arc, RwLock};

use crate::mime::{
    files_of, infer_base64_layout, parse_bodystructure, Encoding, FileKind, IndexBuilder, Locator,
    LAYOUT_SAMPLE,
};
use crate::store::{RangeRequest, StructureData};

use super::content::{whole_len, FileInfo, MsgCtx, UNKNOWN_SIZE_GUESS};
use super::{FsResult, CHUNK};

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
enum Need {
    Whole,
    HeadTail,
    Scan,
}

struct Pending {
    msg: usize,
    file: usize,
    need: Need,
}

/// Build the directories of a batch of messages. `ctx_of(uid)` gives the fetch context of a
/// message. A message whose structure cannot be read gets a directory with HEADER only.
pub fn build_batch<'a>(
    items: Vec<(u32, StructureData)>,
    ctx_of: impl Fn(u32) -> MsgCtx<'a>,
) -> FsResult<Vec<(u32, Arc<MessageInfo>)>> {
    let mut infos: Vec<(u32, Vec<FileInfo>)> = Vec::with_capacity(items.len());
    let mut pending: Vec<Pending> = Vec::new();
    for (m, (uid, data)) in items.into_iter().enumerate() {
        let ctx = ctx_of(uid);
        let header_size = data.header.len() as u64;
        ctx.cache_decoded(0, 0, &data.header, header_size);
        let mut files = vec![FileInfo {
            name: "HEADER".into(),
            section: "HEADER".into(),
            encoding: Encoding::Identity,
            encoded_size: header_size,
            size: header_size,
            locator: RwLock::new(Locator::Identity { size: header_size }),
        }];
        match parse_bodystructure(&data.bodystructure) {
            Ok(root) => {
                for part in files_of(&root) {
                    let need = match (part.kind, part.encoding) {
                        (FileKind::NestedHeader, _) => Some(Need::Whole),
                        (_, Encoding::Identity) => None,
                        (_, _) if part.encoded_size <= SMALL_PART => Some(Need::Whole),
                        (_, Encoding::Base64) => Some(Need::HeadTail),
                        (_, Encoding::QuotedPrintable) => Some(Need::Scan),
                    };
                    if let Some(need) = need {
                        pending.push(Pending {
                            msg: m,
                            file: files.len(),
                            need,
                        });
                    }
                    let size = part.encoded_size;
                    files.push(FileInfo {
                        name: part.file_name(),
                        section: part.fetch_section(),
                        encoding: part.encoding,
                        encoded_size: size,
                        size,
                        locator: RwLock::new(Locator::Identity { size }),
                    });
                }
            }
            Err(e) => log::warn!("UID {uid}: {e}; showing its HEADER only"),
        }
        infos.push((uid, files));
    }

    // One round trip for every whole part and every head/tail sample of the batch.
    let mut reqs = Vec::new();
    for p in &pending {
        let (uid, files) = &infos[p.msg];
        let f = &files[p.file];
        match p.need {
            Need::Whole => reqs.push(range(*uid, &f.section, 0, whole_request(f))),
            Need::HeadTail => {
                let n = LAYOUT_SAMPLE.min(f.encoded_size);
                reqs.push(range(*uid, &f.section, 0, n));
                reqs.push(range(*uid, &f.section, f.encoded_size - n, n));
            }
            Need::Scan => {}
        }
    }
    let mut answers = if reqs.is_empty() {
        Vec::new()
    } else {
        let ctx = ctx_of(infos[pending[0].msg].0);
        ctx.store.fetch_ranges(ctx.raw, ctx.uidvalidity, &reqs)?
    }
    .into_iter();

    for p in pending {
        let (uid, files) = &mut infos[p.msg];
        let ctx = ctx_of(*uid);
        let f = &mut files[p.file];
        let file_no = p.file as u32;
        let locator = match p.need {
            Need::Whole if f.encoding == Encoding::Identity => {
                let first = answers.next().unwrap_or_default();
                let bytes = ctx.complete(&f.section, first, whole_request(f))?;
                ctx.cache_decoded(file_no, 0, &bytes, bytes.len() as u64);
                f.encoded_size = bytes.len() as u64;
                Locator::Identity {
                    size: bytes.len() as u64,
                }
            }
            Need::Whole => {
                let first = answers.next().unwrap_or_default();
                let bytes = ctx.complete(&f.section, first, whole_request(f))?;
                let mut out = Vec::new();
                let mut builder = IndexBuilder::new(f.encoding, bytes.len() as u64, CHUNK);
                builder.feed(&bytes, &mut out);
                let index = builder.finish(&mut out);
                ctx.cache_decoded(file_no, 0, &out, out.len() as u64);
                f.encoded_size = bytes.len() as u64;
                Locator::Index(index)
            }
            Need::HeadTail => {
                let head = answers.next().unwrap_or_default();
                let tail = answers.next().unwrap_or_default();
                match infer_base64_layout(&head, &tail, f.encoded_size) {
                    Some(layout) => Locator::Layout(layout),
                    None => ctx.scan(file_no, &f.section, f.encoding, f.encoded_size)?,
                }
            }
            Need::Scan => ctx.scan(file_no, &f.section, f.encoding, f.encoded_size)?,
        };
        f.size = locator.decoded_size();
        f.locator = RwLock::new(locator);
    }
    Ok(infos
        .into_iter()
        .map(|(uid, files)| (uid, Arc::new(MessageInfo { files })))
        .collect())
}

/// Bytes to ask for to get a file's whole section in one go (nested headers have no size in
/// BODYSTRUCTURE). The same length for every small part, so that messages wanting the same
/// sections share one command (the store groups UIDs with identical item lists).
fn whole_request(f: &FileInfo) -> u64 {
    match f.encoded_size {
        0 => UNKNOWN_SIZE_GUESS,
        n if n <= SMALL_PART => whole_len(SMALL_PART),
        n => whole_len(n),
    }
}

fn range(uid: u32, section: &str, offset: u64, len: u64) -> RangeRequest {
    RangeRequest {
        uid,
        section: section.to_string(),
        offset,
        len,
    }
}
