//! Reading decoded content: chunk-aligned cache lookups, partial fetches mapped through each
//! file's [`Locator`], and the full-scan fallback that builds an exact index. What a file knows
//! about its bytes is in `message/file.rs`; settling sizes in `settle.rs`; the read path, and why it never serves other bytes than the
//! part's, in `read.rs`.

mod read;
mod settle;

use std::sync::Arc;

use crate::cache::{ChunkCache, ChunkKey};
use crate::mime::{IndexBuilder, Locator};
use crate::store::{MailStore, RangeRequest};

use super::inflight::InFlight;
use super::message::FileInfo;
use super::permits::Permits;
use super::{FsError, FsResult, CHUNK};

/// Encoded bytes fetched per command while scanning a whole part.
const SCAN_PIECE: u64 = 1024 * 1024;

/// How much to ask for when fetching a part of unknown size whole (nested headers): most are
/// far smaller; [`MsgCtx::complete`] fetches the rest of a bigger one.
pub const UNKNOWN_SIZE_GUESS: u64 = 64 * 1024;

/// A partial length that surely covers a part of `size` bytes and tells, by coming back short,
/// that nothing follows.
pub fn whole_len(size: u64) -> u64 {
    size.max(UNKNOWN_SIZE_GUESS / 16) + 4096
}

/// The fetch engine, built once: the store, the chunk cache, the table of chunks being
/// fetched, and the permits that bound the pieces in flight.
pub struct ContentFetcher {
    pub store: Arc<dyn MailStore>,
    pub cache: ChunkCache,
    pub inflight: InFlight,
    /// Bounds the pieces in flight over all reads (memory).
    pub permits: Permits,
    /// Most fetches to run at once for one read.
    pub parallel: usize,
}

impl ContentFetcher {
    pub fn new(store: Arc<dyn MailStore>, cache_bytes: usize, parallel: usize) -> ContentFetcher {
        ContentFetcher {
            store,
            cache: ChunkCache::new(cache_bytes),
            inflight: InFlight::default(),
            permits: Permits::new(parallel),
            parallel,
        }
    }

    /// The parts of one message, for fetching.
    pub fn msg<'a>(&'a self, folder: u32, raw: &'a str, uidvalidity: u32, uid: u32) -> MsgCtx<'a> {
        MsgCtx {
            f: self,
            folder,
            raw,
            uidvalidity,
            uid,
        }
    }
}

/// One message of a folder, as the fetcher reaches it.
#[derive(Clone, Copy)]
pub struct MsgCtx<'a> {
    f: &'a ContentFetcher,
    pub folder: u32,
    pub raw: &'a str,
    pub uidvalidity: u32,
    pub uid: u32,
}

impl MsgCtx<'_> {
    /// The cache key of a chunk decoded under generation `generation` of the file's locator.
    pub fn key(&self, file: u32, generation: u32, chunk: u64) -> ChunkKey {
        ChunkKey {
            folder: self.folder,
            uidvalidity: self.uidvalidity,
            uid: self.uid,
            file,
            generation,
            chunk,
        }
    }

    /// Cache the decoded bytes starting at chunk-aligned `start`: every whole chunk, and the last
    /// one when it ends the file. Returns the cached chunks in order.
    pub fn cache_decoded(
        &self,
        file: u32,
        generation: u32,
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
            self.f
                .cache
                .put(self.key(file, generation, abs / CHUNK), piece.clone());
            out.push(piece);
            off += want;
        }
        out
    }

    /// Fetch encoded bytes of a section.
    pub fn fetch(&self, section: &str, offset: u64, len: u64) -> FsResult<Vec<u8>> {
        self.fetch_section(section, offset, len, false)
    }

    /// Fetch bytes of a section: as stored, or with `binary` as the server decodes them.
    pub fn fetch_section(
        &self,
        section: &str,
        offset: u64,
        len: u64,
        binary: bool,
    ) -> FsResult<Vec<u8>> {
        let req = RangeRequest {
            uid: self.uid,
            section: section.to_string(),
            offset,
            len,
            binary,
        };
        let mut answers =
            self.f
                .store
                .fetch_ranges(self.raw, self.uidvalidity, std::slice::from_ref(&req))?;
        answers
            .pop()
            .ok_or_else(|| FsError::Io("empty answer to FETCH".into()))
    }

    /// `bytes` answered a fetch of `requested` bytes from offset 0 of `section`: if it came back
    /// full, more may follow, so fetch on until an answer comes back short.
    pub fn complete(&self, section: &str, bytes: Vec<u8>, requested: u64) -> FsResult<Vec<u8>> {
        self.complete_section(section, bytes, requested, false)
    }

    /// [`complete`](Self::complete), as stored or (`binary`) as the server decodes.
    pub fn complete_section(
        &self,
        section: &str,
        mut bytes: Vec<u8>,
        requested: u64,
        binary: bool,
    ) -> FsResult<Vec<u8>> {
        let mut full = bytes.len() as u64 >= requested;
        while full {
            let more = self.fetch_section(section, bytes.len() as u64, SCAN_PIECE, binary)?;
            full = more.len() as u64 >= SCAN_PIECE;
            bytes.extend_from_slice(&more);
        }
        Ok(bytes)
    }

    /// Read the whole encoded part in pieces, decoding as it goes: exact decoded size and an
    /// index of restart points. Decoded chunks are cached on the way, under `generation`.
    pub fn scan(&self, file: u32, generation: u32, info: &FileInfo) -> FsResult<Locator> {
        let section = info.section_for(info.binary);
        let enc = info.encoding;
        let mut builder = IndexBuilder::new(enc, info.encoded_size, CHUNK);
        let mut pending = Vec::new();
        let mut pending_start = 0u64;
        let mut offset = 0u64;
        loop {
            let piece = self.fetch_section(section, offset, SCAN_PIECE, info.binary)?;
            builder.feed(&piece, &mut pending);
            offset += piece.len() as u64;
            // Hand whole chunks to the cache as they complete, to bound memory on huge parts.
            let whole = pending.len() as u64 / CHUNK * CHUNK;
            if whole > 0 {
                let rest = pending.split_off(whole as usize);
                self.cache_decoded(file, generation, pending_start, &pending, u64::MAX);
                pending_start += whole;
                pending = rest;
            }
            if (piece.len() as u64) < SCAN_PIECE {
                break;
            }
        }
        if offset == 0 && info.encoded_size > 0 {
            // Nothing at all where the structure promised bytes: the message is gone.
            return Err(FsError::NotFound);
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
        self.cache_decoded(file, generation, pending_start, &pending, size);
        Ok(locator)
    }
}
