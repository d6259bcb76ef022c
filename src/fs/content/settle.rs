//! Settling sizes: the files of a batch of messages that need fetching to know their size get
//! it in one round trip for every whole part and head/tail sample, then any full scans.

use std::sync::Arc;

use crate::mime::{infer_base64_layout, Encoding, IndexBuilder, Locator, LAYOUT_SAMPLE};
use crate::store::RangeRequest;

use super::super::message::{FileInfo, MessageInfo, Need, SMALL_PART};
use super::super::{FsResult, CHUNK};
use super::{whole_len, ContentFetcher, UNKNOWN_SIZE_GUESS};

/// Settle the size of the files named `names` in each of these messages (one folder) where it
/// is not settled yet: one round trip for every whole part and head/tail sample, then any full
/// scans.
impl ContentFetcher {
    pub fn settle(
        &self,
        folder: u32,
        raw: &str,
        uidvalidity: u32,
        messages: &[(u32, Arc<MessageInfo>)],
        names: &[&str],
    ) -> FsResult<()> {
        let pending: Vec<(u32, &FileInfo, usize, Need)> = messages
            .iter()
            .flat_map(|(uid, info)| {
                names.iter().filter_map(move |name| {
                    let idx = info.file_index(name)?;
                    let f = &info.files[idx];
                    let need = f.need.filter(|_| f.size.get().is_none())?;
                    Some((*uid, f, idx, need))
                })
            })
            .collect();
        let mut reqs = Vec::new();
        for (uid, f, _, need) in &pending {
            match need {
                Need::Whole => reqs.push(range(*uid, f, 0, whole_request(f))),
                Need::HeadTail => {
                    let n = LAYOUT_SAMPLE.min(f.encoded_size);
                    reqs.push(range(*uid, f, 0, n));
                    reqs.push(range(*uid, f, f.encoded_size - n, n));
                }
                Need::Scan => {}
            }
        }
        let mut answers = match reqs.is_empty() {
            false => self.store.fetch_ranges(raw, uidvalidity, &reqs)?,
            true => Vec::new(),
        }
        .into_iter();

        for (uid, f, idx, need) in pending {
            let ctx = self.msg(folder, raw, uidvalidity, uid);
            let file_no = idx as u32;
            let locator = match need {
                Need::Whole => {
                    let first = answers.next().unwrap_or_default();
                    let bytes = ctx.complete_section(
                        f.section_for(f.binary),
                        first,
                        whole_request(f),
                        f.binary,
                    )?;
                    match f.encoding {
                        Encoding::Identity => {
                            ctx.cache_decoded(file_no, 0, 0, &bytes, bytes.len() as u64);
                            Locator::Identity {
                                size: bytes.len() as u64,
                            }
                        }
                        enc => {
                            let mut out = Vec::new();
                            let mut builder = IndexBuilder::new(enc, bytes.len() as u64, CHUNK);
                            builder.feed(&bytes, &mut out);
                            let index = builder.finish(&mut out);
                            ctx.cache_decoded(file_no, 0, 0, &out, out.len() as u64);
                            Locator::Index(index)
                        }
                    }
                }
                Need::HeadTail => {
                    let head = answers.next().unwrap_or_default();
                    let tail = answers.next().unwrap_or_default();
                    match infer_base64_layout(&head, &tail, f.encoded_size) {
                        Some(layout) => Locator::Layout(layout),
                        None => ctx.scan(file_no, 0, f)?,
                    }
                }
                Need::Scan => ctx.scan(file_no, 0, f)?,
            };
            // Whoever settled it first wins; the answers are the same.
            f.settle(locator);
        }
        Ok(())
    }
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

fn range(uid: u32, f: &FileInfo, offset: u64, len: u64) -> RangeRequest {
    RangeRequest {
        uid,
        section: f.section_for(f.binary).to_string(),
        offset,
        len,
        binary: f.binary,
    }
}
