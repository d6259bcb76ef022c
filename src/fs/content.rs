//! Reading decoded content: chunk-aligned cache lookups, partial fetches mapped through each
//! file's [`Locator`], and the full-scan fallback that builds an exact index.

use std::sync::{Arc, OnceLock, RwLock};

use crate::cache::{ChunkCache, ChunkKey};
use crate::mime::{Encoding, IndexBuilder, Locator};
use crate::store::{MailStore, RangeRequest};

use super::inflight::InFlight;
use super::message::Need;
use super::permits::Permits;
use super::{FsError, FsResult, CHUNK};

/// Decoded chunks by position.
type Chunks = Vec<(usize, Arc<Vec<u8>>)>;

/// Encoded bytes fetched per command while scanning a whole part.
const SCAN_PIECE: u64 = 1024 * 1024;

/// Chunks fetched by one command when reading; longer runs are split and fetched in parallel.
const PIECE_CHUNKS: usize = 8;

/// How long to wait for another reader's fetch of a chunk before fetching it ourselves.
const INFLIGHT_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// How much to ask for when fetching a part of unknown size whole (nested headers): most are
/// far smaller; [`MsgCtx::complete`] fetches the rest of a bigger one.
pub const UNKNOWN_SIZE_GUESS: u64 = 64 * 1024;

/// A partial length that surely covers a part of `size` bytes and tells, by coming back short,
/// that nothing follows.
pub fn whole_len(size: u64) -> u64 {
    size.max(UNKNOWN_SIZE_GUESS / 16) + 4096
}

/// Everything needed to fetch one message's parts.
#[derive(Clone, Copy)]
pub struct MsgCtx<'a> {
    pub store: &'a dyn MailStore,
    pub cache: &'a ChunkCache,
    pub inflight: &'a InFlight,
    /// Most fetches to run at once for one read.
    pub parallel: usize,
    /// Bounds the pieces in flight over all reads (memory).
    pub permits: &'a Permits,
    pub folder: u32,
    pub raw: &'a str,
    pub uidvalidity: u32,
    pub uid: u32,
}

/// One file of a message directory.
#[derive(Debug)]
pub struct FileInfo {
    pub name: String,
    /// The IMAP section its bytes come from (`HEADER`, `2`, `3.HEADER`).
    pub section: String,
    pub encoding: Encoding,
    /// Size as stored on the server (for a full scan).
    pub encoded_size: u64,
    /// What must be fetched to learn the decoded size (`None`: it is the encoded size).
    pub need: Option<Need>,
    /// The decoded size, once settled (see `message::settle`).
    pub size: OnceLock<u64>,
    pub locator: RwLock<Locator>,
}

impl FileInfo {
    /// The decoded size; callers settle it first (0 if they did not).
    pub fn size(&self) -> u64 {
        self.size.get().copied().unwrap_or(0)
    }
}

impl MsgCtx<'_> {
    pub fn key(&self, file: u32, chunk: u64) -> ChunkKey {
        ChunkKey {
            folder: self.folder,
            uidvalidity: self.uidvalidity,
            uid: self.uid,
            file,
            chunk,
        }
    }

    /// Cache the decoded bytes starting at chunk-aligned `start`: every whole chunk, and the last
    /// one when it ends the file. Returns the cached chunks in order.
    pub fn cache_decoded(
        &self,
        file: u32,
        start: u64,
        bytes: &[u8],
        file_size: u64,
    ) -> Vec<Arc<Vec<u8>>> {
        debug_assert_eq!(start % CHUNK, 0);
        let mut out = Vec::new();
        let mut off = 0u64;
        while off < bytes.len() as u64 {
            let abs = start + off;
            let want = CHUNK.min(file_size.saturating_sub(abs));
            let have = bytes.len() as u64 - off;
            if want == 0 || have < want {
                break;
            }
            let piece = Arc::new(bytes[off as usize..(off + want) as usize].to_vec());
            self.cache.put(self.key(file, abs / CHUNK), piece.clone());
            out.push(piece);
            off += want;
        }
        out
    }

    /// Fetch encoded bytes of a section.
    pub fn fetch(&self, section: &str, offset: u64, len: u64) -> FsResult<Vec<u8>> {
        let req = RangeRequest {
            uid: self.uid,
            section: section.to_string(),
            offset,
            len,
            binary: false,
        };
        let mut answers =
            self.store
                .fetch_ranges(self.raw, self.uidvalidity, std::slice::from_ref(&req))?;
        answers
            .pop()
            .ok_or_else(|| FsError::Io("empty answer to FETCH".into()))
    }

    /// `bytes` answered a fetch of `requested` bytes from offset 0 of `section`: if it came back
    /// full, more may follow, so fetch on until an answer comes back short.
    pub fn complete(&self, section: &str, mut bytes: Vec<u8>, requested: u64) -> FsResult<Vec<u8>> {
        let mut full = bytes.len() as u64 >= requested;
        while full {
            let more = self.fetch(section, bytes.len() as u64, SCAN_PIECE)?;
            full = more.len() as u64 >= SCAN_PIECE;
            bytes.extend_from_slice(&more);
        }
        Ok(bytes)
    }

    /// Read the whole encoded part in pieces, decoding as it goes: exact decoded size and an
    /// index of restart points. Decoded chunks are cached on the way.
    pub fn scan(
        &self,
        file: u32,
        section: &str,
        enc: Encoding,
        encoded_size: u64,
    ) -> FsResult<Locator> {
        let mut builder = IndexBuilder::new(enc, encoded_size, CHUNK);
        let mut pending = Vec::new();
        let mut pending_start = 0u64;
        let mut offset = 0u64;
        loop {
            let piece = self.fetch(section, offset, SCAN_PIECE)?;
            builder.feed(&piece, &mut pending);
            offset += piece.len() as u64;
            // Hand whole chunks to the cache as they complete, to bound memory on huge parts.
            let whole = pending.len() as u64 / CHUNK * CHUNK;
            if whole > 0 {
                let rest = pending.split_off(whole as usize);
                self.cache_decoded(file, pending_start, &pending, u64::MAX);
                pending_start += whole;
                pending = rest;
            }
            if (piece.len() as u64) < SCAN_PIECE {
                break;
            }
        }
        let index = builder.finish(&mut pending);
        let locator = Locator::Index(index);
        let size = locator.decoded_size();
        if pending_start + pending.len() as u64 != size {
            return Err(FsError::Io(format!(
                "scan of section {section} decoded {} bytes, index says {size}",
                pending_start + pending.len() as u64
            )));
        }
        self.cache_decoded(file, pending_start, &pending, size);
        Ok(locator)
    }

    /// Decoded bytes `[start, end)` of a file (end ≤ size), from the cache where possible.
    /// Missing chunks are fetched once even when several readers want them at the same time,
    /// and a long run of them is fetched in pieces over several connections at once.
    ///
    /// Chunks up to `prefetch_end` are fetched along (read-ahead) but not copied out.
    pub fn read(
        &self,
        file: u32,
        info: &FileInfo,
        start: u64,
        end: u64,
        prefetch_end: u64,
    ) -> FsResult<Vec<u8>> {
        let end = end.min(info.size());
        if start >= end {
            return Ok(Vec::new());
        }
        let first = start / CHUNK;
        let last = (prefetch_end.max(end).min(info.size()) - 1) / CHUNK;
        // Chunks [0, wanted) hold the bytes asked for; the rest is read-ahead.
        let wanted = ((end - 1) / CHUNK - first + 1) as usize;
        let keys: Vec<ChunkKey> = (first..=last).map(|c| self.key(file, c)).collect();
        let mut chunks: Vec<Option<Arc<Vec<u8>>>> =
            keys.iter().map(|k| self.cache.get(k)).collect();
        let missing: Vec<usize> = (0..chunks.len()).filter(|&i| chunks[i].is_none()).collect();
        if !missing.is_empty() {
            let missing_keys: Vec<ChunkKey> = missing.iter().map(|&i| keys[i].clone()).collect();
            let claimed = self.inflight.claim(&missing_keys);
            let mine: Vec<usize> = missing
                .iter()
                .zip(&claimed)
                .filter(|(_, &c)| c)
                .map(|(&i, _)| i)
                .collect();
            let result = self.fetch_chunks(file, info, first, &mine);
            let mine_keys: Vec<ChunkKey> = mine.iter().map(|&i| keys[i].clone()).collect();
            self.inflight.release(&mine_keys);
            for (i, data) in result? {
                chunks[i] = Some(data);
            }
            // Chunks another reader was fetching: wait for it, then use the cache (or fetch
            // them ourselves if that fetch failed or the cache already let them go).
            for &i in &missing {
                // Read-ahead chunks someone else is fetching are theirs to finish.
                if chunks[i].is_some() || i >= wanted {
                    continue;
                }
                self.inflight.wait(&keys[i], INFLIGHT_WAIT);
                chunks[i] = match self.cache.get(&keys[i]) {
                    Some(c) => Some(c),
                    None => self
                        .fetch_chunks(file, info, first, &[i])?
                        .pop()
                        .map(|(_, c)| c),
                };
            }
        }
        let mut out = Vec::with_capacity((end - start) as usize);
        for (k, chunk) in chunks.iter().enumerate().take(wanted) {
            let chunk = chunk
                .as_ref()
                .ok_or_else(|| FsError::Io("chunk missing after fetch".into()))?;
            let chunk_start = (first + k as u64) * CHUNK;
            let lo = start.saturating_sub(chunk_start).min(chunk.len() as u64);
            let hi = (end - chunk_start).min(chunk.len() as u64);
            out.extend_from_slice(&chunk[lo as usize..hi as usize]);
        }
        if out.len() as u64 != end - start {
            return Err(FsError::Io(format!(
                "section {} of UID {}: expected {} bytes, got {}",
                info.section,
                self.uid,
                end - start,
                out.len()
            )));
        }
        Ok(out)
    }

    /// Fetch the chunks at positions `idxs` (relative to chunk `first`): consecutive ones
    /// together, in pieces of at most PIECE_CHUNKS, up to `parallel` pieces at a time.
    fn fetch_chunks(
        &self,
        file: u32,
        info: &FileInfo,
        first: u64,
        idxs: &[usize],
    ) -> FsResult<Chunks> {
        let mut pieces: Vec<(usize, usize)> = Vec::new(); // [lo, hi] positions, inclusive
        for &i in idxs {
            match pieces.last_mut() {
                Some((lo, hi)) if *hi + 1 == i && i - *lo < PIECE_CHUNKS => *hi = i,
                _ => pieces.push((i, i)),
            }
        }
        let fetch_piece = |(lo, hi): (usize, usize)| -> FsResult<Chunks> {
            let piece_start = (first + lo as u64) * CHUNK;
            let piece_end = ((first + hi as u64 + 1) * CHUNK).min(info.size());
            let _permit = self.permits.acquire();
            let bytes = self.fetch_decoded(file, info, piece_start, piece_end)?;
            let chunks = self.cache_decoded(file, piece_start, &bytes, info.size());
            if chunks.len() != hi - lo + 1 {
                return Err(FsError::Io(format!(
                    "section {} of UID {}: short read at {piece_start}",
                    info.section, self.uid
                )));
            }
            Ok((lo..).zip(chunks).collect())
        };
        // Workers take the pieces in order (no waiting for a whole group before the next), so
        // the pieces a sequential reader needs first are asked for first.
        let per_piece = crate::parallel::in_order(
            &pieces,
            self.parallel.max(1),
            |&p| fetch_piece(p),
            || FsError::Io("fetch thread panicked".into()),
        )?;
        Ok(per_piece.into_iter().flatten().collect())
    }

    /// Exactly the decoded bytes `[start, end)`, fetched from the server. A layout guess that the
    /// fetched bytes contradict is replaced by a full scan, then the read is retried.
    fn fetch_decoded(&self, file: u32, info: &FileInfo, start: u64, end: u64) -> FsResult<Vec<u8>> {
        for attempt in 0..2 {
            let locator = info
                .locator
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            let plan = locator.plan(start, end);
            let fetched =
                self.fetch(&info.section, plan.enc_start, plan.enc_end - plan.enc_start)?;
            if fetched.is_empty() && plan.enc_end > plan.enc_start {
                // Servers answer an empty body for a message expunged meanwhile.
                return Err(FsError::NotFound);
            }
            match locator.decode(&plan, &fetched) {
                Some(decoded) => {
                    let lo = (start - plan.dec_start) as usize;
                    let hi = (end - plan.dec_start) as usize;
                    return decoded.get(lo..hi).map(<[u8]>::to_vec).ok_or_else(|| {
                        FsError::Io(format!(
                            "section {} of UID {} is shorter than its size {}",
                            info.section,
                            self.uid,
                            info.size()
                        ))
                    });
                }
                None if attempt == 0 => {
                    log::warn!(
                        "UID {} section {}: line layout differs from its head and tail; rescanning",
                        self.uid,
                        info.section
                    );
                    let scanned =
                        self.scan(file, &info.section, info.encoding, info.encoded_size)?;
                    if scanned.decoded_size() != info.size() {
                        log::error!(
                            "UID {} section {}: decoded size is {}, not the {} reported earlier",
                            self.uid,
                            info.section,
                            scanned.decoded_size(),
                            info.size()
                        );
                    }
                    *info.locator.write().unwrap_or_else(|e| e.into_inner()) = scanned;
                }
                None => break,
            }
        }
        Err(FsError::Io(format!(
            "cannot decode section {} of UID {}",
            info.section, self.uid
        )))
    }
}
