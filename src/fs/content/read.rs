//! Reading decoded ranges: exact bytes or an error, never other bytes.
//!
//! Chunks come from the cache or from partial fetches mapped through the file's locator. With a
//! layout guess (see `file.rs` for why) a chunk is served only once it is confirmed:
//!
//! - Sequential reading (`cat`, `head`, `grep`) confirms as it goes at no extra cost: each piece
//!   starts where the confirmed prefix ends, or behind pieces still in flight (read-ahead), which
//!   are waited for.
//! - A read further on (`tail -c`, a seek) finds a gap before it. When the server offers BINARY,
//!   only the wanted chunks are fetched with `BINARY.PEEK[section]<o.n>`: the server decodes, so
//!   the bytes are exact wherever the part is irregular; a read reaching the end asks one byte
//!   more, so a size that was wrong shows. Otherwise (or when the server refuses BINARY for the
//!   part, as Dovecot does for broken base64) the gap itself is fetched and checked, in pieces in
//!   parallel: a `tail -c` of a 12 MiB attachment then costs a download of the whole part, once.
//! - Bytes that contradict the locator (a window off the layout, a part longer or shorter than
//!   its size) replace it by a full scan: exact restart points and the exact size, under the next
//!   generation. The read retries once under it; a read whose range now lies past the corrected
//!   end gets EIO (the kernel still believes the old size), and the caller tells the kernel.

use std::sync::Arc;
use std::time::Duration;

use crate::cache::ChunkKey;
use crate::mime::Locator;

use super::super::message::{FileInfo, Snapshot};
use super::super::{FsError, FsResult, CHUNK};
use super::MsgCtx;

/// Decoded chunks by position.
type Chunks = Vec<(usize, Arc<Vec<u8>>)>;

/// Chunks fetched by one command when reading; longer runs are split and fetched in parallel.
const PIECE_CHUNKS: usize = 8;

/// A gap before a read is checked in windows of this many chunks (8 MiB), so memory does not
/// grow with the gap.
const GAP_WINDOW: u64 = 64;

/// A read starting this many chunks (2 MiB) past the confirmed prefix is a seek, not a
/// sequential reader whose earlier reads are still in flight.
const SEEK_CHUNKS: u64 = 16;

/// How long to wait for another reader's fetch of a chunk before fetching it ourselves.
const INFLIGHT_WAIT: Duration = Duration::from_secs(120);

impl MsgCtx<'_> {
    /// Decoded bytes `[start, min(req_end, size))` of a file, from the cache where possible.
    /// Missing chunks are fetched once even when several readers want them at the same time,
    /// and a long run of them is fetched in pieces over several connections at once.
    ///
    /// Chunks up to `prefetch_end` are fetched along (read-ahead) but not copied out.
    pub fn read(
        &self,
        file: u32,
        info: &FileInfo,
        start: u64,
        req_end: u64,
        prefetch_end: u64,
    ) -> FsResult<Vec<u8>> {
        let size_at_start = info.size();
        for _ in 0..3 {
            if info.is_broken() {
                break;
            }
            let snap = info.snapshot();
            if snap.size < size_at_start && req_end > snap.size {
                // The kernel asked by the old size; a short answer would leave it padding.
                return Err(self.error(info, "was corrected to a smaller size during this read"));
            }
            let end = req_end.min(snap.size);
            if start >= end {
                return Ok(Vec::new());
            }
            match self.read_once(file, info, &snap, start, end, prefetch_end, true) {
                Ok(bytes) if info.generation() == snap.generation => return Ok(bytes),
                Ok(_) => {}
                Err(e) if info.generation() != snap.generation => {
                    log::debug!(
                        "{} UID {} {}: retrying after: {e}",
                        self.raw,
                        self.uid,
                        info.section
                    );
                }
                Err(e) => return Err(e),
            }
        }
        Err(self.error(info, "cannot be read consistently"))
    }

    /// Read-ahead: fetch and cache the chunks of `[from, to)` not cached yet. Nothing is
    /// confirmed or copied out here; the reads that want these bytes do that.
    pub fn fetch_window(&self, file: u32, info: &FileInfo, from: u64, to: u64) -> FsResult<()> {
        let snap = info.snapshot();
        let to = to.min(snap.size);
        if from >= to {
            return Ok(());
        }
        let (lo, hi) = (from / CHUNK, (to - 1) / CHUNK + 1);
        if snap.is_guess() && self.binary_usable(info) && info.reading_on_exact(snap.generation, lo)
        {
            // A reader going on from bytes the server decoded (a seek past the unchecked
            // lines): its reads fetch by BINARY, so the window too, or it would come twice.
            for piece in (lo..hi).step_by(PIECE_CHUNKS) {
                let end = (piece + PIECE_CHUNKS as u64).min(hi);
                self.fetch_exact(file, info, &snap, piece, end)?;
            }
            return Ok(());
        }
        self.read_once(file, info, &snap, from, from + 1, to, false)
            .map(drop)
    }

    fn binary_usable(&self, info: &FileInfo) -> bool {
        self.f.store.offers_binary() && !info.binary_refused()
    }

    fn error(&self, info: &FileInfo, what: &str) -> FsError {
        FsError::Io(format!(
            "{} UID {} section {} {what}",
            self.raw, self.uid, info.section
        ))
    }

    /// The bytes `[start, end)` (end ≤ `snap.size`) under one generation; with `confirm`, a
    /// layout's chunks are confirmed before they are served.
    #[allow(clippy::too_many_arguments)]
    fn read_once(
        &self,
        file: u32,
        info: &FileInfo,
        snap: &Snapshot,
        start: u64,
        end: u64,
        prefetch_end: u64,
        confirm: bool,
    ) -> FsResult<Vec<u8>> {
        let g = snap.generation;
        let first = start / CHUNK;
        let last = (prefetch_end.max(end).min(snap.size) - 1) / CHUNK;
        // Chunks [0, wanted) hold the bytes asked for; the rest is read-ahead.
        let wanted = ((end - 1) / CHUNK - first + 1) as usize;
        let keys: Vec<ChunkKey> = (first..=last).map(|c| self.key(file, g, c)).collect();
        let mut chunks: Vec<Option<Arc<Vec<u8>>>> =
            keys.iter().map(|k| self.f.cache.get(k)).collect();
        // A read well past the confirmed prefix (a seek) on a server that decodes: the bytes
        // come by BINARY (in `confirm`), not by BODY first.
        let seek = confirm
            && snap.is_guess()
            && self.binary_usable(info)
            && info.beyond_prefix(g, first, SEEK_CHUNKS);
        let missing: Vec<usize> = match seek {
            true => Vec::new(),
            false => (0..chunks.len()).filter(|&i| chunks[i].is_none()).collect(),
        };
        if !missing.is_empty() {
            let missing_keys: Vec<ChunkKey> = missing.iter().map(|&i| keys[i].clone()).collect();
            let claimed = self.f.inflight.claim(&missing_keys);
            let mine: Vec<usize> = missing
                .iter()
                .zip(&claimed)
                .filter(|(_, &c)| c)
                .map(|(&i, _)| i)
                .collect();
            let result = self.fetch_chunks(file, info, snap, first, &mine);
            let mine_keys: Vec<ChunkKey> = mine.iter().map(|&i| keys[i].clone()).collect();
            self.f.inflight.release(&mine_keys);
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
                self.f.inflight.wait(&keys[i], INFLIGHT_WAIT);
                chunks[i] = match self.f.cache.get(&keys[i]) {
                    Some(c) => Some(c),
                    None => self
                        .fetch_chunks(file, info, snap, first, &[i])?
                        .pop()
                        .map(|(_, c)| c),
                };
            }
        }
        if snap.is_guess() && confirm {
            self.confirm(file, info, snap, first, &mut chunks[..wanted])?;
            // Chunks confirmed without their bytes at hand (checked as part of a gap).
            for i in 0..wanted {
                if chunks[i].is_none() {
                    chunks[i] = match self.f.cache.get(&keys[i]) {
                        Some(c) => Some(c),
                        None => self
                            .fetch_chunks(file, info, snap, first, &[i])?
                            .pop()
                            .map(|(_, c)| c),
                    };
                }
            }
        }
        let mut out = Vec::with_capacity((end - start) as usize);
        for (k, chunk) in chunks.iter().enumerate().take(wanted) {
            let chunk = chunk
                .as_ref()
                .ok_or_else(|| self.error(info, "lost a chunk after fetching it"))?;
            let chunk_start = (first + k as u64) * CHUNK;
            let lo = start.saturating_sub(chunk_start).min(chunk.len() as u64);
            let hi = (end - chunk_start).min(chunk.len() as u64);
            out.extend_from_slice(&chunk[lo as usize..hi as usize]);
        }
        if out.len() as u64 != end - start {
            return Err(self.error(
                info,
                &format!("gave {} bytes, not {}", out.len(), end - start),
            ));
        }
        Ok(out)
    }

    /// Make sure every chunk of `chunks` (chunk `first` on) is confirmed under a layout guess:
    /// fetch the wanted ones exactly (BINARY), or check the gap before them, or wait for the
    /// readers already fetching it.
    fn confirm(
        &self,
        file: u32,
        info: &FileInfo,
        snap: &Snapshot,
        first: u64,
        chunks: &mut [Option<Arc<Vec<u8>>>],
    ) -> FsResult<()> {
        let g = snap.generation;
        let stale = || self.error(info, "was re-indexed meanwhile");
        // Each round fetches something or waits for another reader's fetch.
        for _ in 0..8 {
            let open: Vec<u64> = (first..first + chunks.len() as u64)
                .filter(|&c| !info.servable(g, c))
                .collect();
            let (Some(&lo), Some(&hi)) = (open.first(), open.last()) else {
                return Ok(());
            };
            let (prefix, _) = info.confirmation(g, lo).ok_or_else(stale)?;
            // The gap: chunks up to the last open one not checked against the layout yet
            // (chunks the server decoded too: they say nothing about the lines after them).
            let gap: Vec<u64> = (prefix..=hi)
                .filter(|&c| !info.confirmation(g, c).is_some_and(|(_, island)| island))
                .collect();
            let gap_keys: Vec<ChunkKey> = gap.iter().map(|&c| self.key(file, g, c)).collect();
            let claimed = self.f.inflight.claim(&gap_keys);
            let (mine, theirs): (Vec<usize>, Vec<usize>) =
                (0..gap.len()).partition(|&i| claimed[i]);
            let use_binary = !mine.is_empty() && self.binary_usable(info);
            if use_binary {
                self.f.inflight.release(&gap_keys_of(&gap_keys, &mine));
                match self.fetch_exact(file, info, snap, lo, hi + 1) {
                    Ok(exact) => {
                        for (c, data) in (lo..).zip(exact) {
                            if let Some(slot) = chunks.get_mut((c - first) as usize) {
                                *slot = Some(data);
                            }
                        }
                        continue;
                    }
                    Err(e) if info.generation() != g => return Err(e),
                    Err(e) => {
                        log::info!(
                            "{} UID {} section {}: BINARY refused ({e}); checking the part instead",
                            self.raw,
                            self.uid,
                            info.section
                        );
                        info.refuse_binary();
                        continue;
                    }
                }
            }
            // Check the gap ourselves, a window at a time, then wait for the others' parts.
            let result = self.check_gap(file, info, snap, &gap, &mine);
            self.f.inflight.release(&gap_keys_of(&gap_keys, &mine));
            result?;
            for &i in &theirs {
                self.f.inflight.wait(&gap_keys[i], INFLIGHT_WAIT);
            }
        }
        Err(self.error(info, "could not be checked"))
    }

    /// Fetch and check the gap chunks at positions `mine` of `gap`, in windows.
    fn check_gap(
        &self,
        file: u32,
        info: &FileInfo,
        snap: &Snapshot,
        gap: &[u64],
        mine: &[usize],
    ) -> FsResult<()> {
        for window in mine.chunks(GAP_WINDOW as usize) {
            let base = gap[window[0]];
            let idxs: Vec<usize> = window.iter().map(|&i| (gap[i] - base) as usize).collect();
            // Only checked and cached: the chunks themselves are dropped here.
            self.fetch_chunks(file, info, snap, base, &idxs)?;
        }
        Ok(())
    }

    /// Chunks `[lo, hi)` as the server decodes them (BINARY), cached as exact. A read reaching
    /// the end asks one byte more: an answer of another length means the size was wrong, and
    /// the part is re-indexed.
    fn fetch_exact(
        &self,
        file: u32,
        info: &FileInfo,
        snap: &Snapshot,
        lo: u64,
        hi: u64,
    ) -> FsResult<Vec<Arc<Vec<u8>>>> {
        let start = lo * CHUNK;
        let end = (hi * CHUNK).min(snap.size);
        let at_end = end == snap.size;
        let want = end - start;
        let _permit = self.f.permits.acquire();
        let bytes =
            self.fetch_section(info.section_for(true), start, want + at_end as u64, true)?;
        if bytes.len() as u64 != want {
            let why = format!(
                "the server decodes {} bytes at {start} where {want} were expected",
                bytes.len()
            );
            self.reindex(file, info, snap.generation, &why)?;
            return Err(self.error(info, "was re-indexed"));
        }
        let chunks = self.cache_decoded(file, snap.generation, start, &bytes, snap.size);
        info.record_exact(snap.generation, lo, lo + chunks.len() as u64);
        Ok(chunks)
    }

    /// Fetch the chunks at positions `idxs` (relative to chunk `first`): consecutive ones
    /// together, in pieces of at most PIECE_CHUNKS, up to `parallel` pieces at a time.
    pub(super) fn fetch_chunks(
        &self,
        file: u32,
        info: &FileInfo,
        snap: &Snapshot,
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
        let g = snap.generation;
        let fetch_piece = |(lo, hi): (usize, usize)| -> FsResult<Chunks> {
            let piece_start = (first + lo as u64) * CHUNK;
            let piece_end = ((first + hi as u64 + 1) * CHUNK).min(snap.size);
            let _permit = self.f.permits.acquire();
            let bytes = self.fetch_decoded(file, info, snap, piece_start, piece_end)?;
            let chunks = self.cache_decoded(file, g, piece_start, &bytes, snap.size);
            if chunks.len() != hi - lo + 1 {
                return Err(self.error(info, &format!("came back short at {piece_start}")));
            }
            if snap.is_guess() {
                info.record_clean(g, first + lo as u64, first + hi as u64 + 1);
            }
            Ok((lo..).zip(chunks).collect())
        };
        // Workers take the pieces in order (no waiting for a whole group before the next), so
        // the pieces a sequential reader needs first are asked for first.
        let per_piece = crate::parallel::in_order(
            &pieces,
            self.f.parallel.max(1),
            |&p| fetch_piece(p),
            || FsError::Io("fetch thread panicked".into()),
        )?;
        Ok(per_piece.into_iter().flatten().collect())
    }

    /// Exactly the decoded bytes `[start, end)` as `snap`'s locator maps them. Bytes that
    /// contradict it (a window off the layout; a part shorter or longer than its size) re-index
    /// the part, and the read is retried by [`read`](Self::read).
    fn fetch_decoded(
        &self,
        file: u32,
        info: &FileInfo,
        snap: &Snapshot,
        start: u64,
        end: u64,
    ) -> FsResult<Vec<u8>> {
        let locator = &snap.locator;
        let plan = locator.plan(start, end);
        // A part served as stored: one byte more at the end shows a size that is too small.
        let probe = matches!(**locator, Locator::Identity { .. }) && end == snap.size;
        let len = plan.enc_end - plan.enc_start + probe as u64;
        let mut fetched = self.fetch_section(
            info.section_for(info.binary),
            plan.enc_start,
            len,
            info.binary,
        )?;
        if fetched.is_empty() && plan.enc_start == 0 && plan.enc_end > 0 {
            // Servers answer an empty body for a message expunged meanwhile (further on, it is
            // a part shorter than its size: re-indexed below, and the scan tells them apart).
            return Err(FsError::NotFound);
        }
        let longer = probe && fetched.len() as u64 == len;
        if longer {
            fetched.pop();
        }
        let decoded = match locator.decode(&plan, &fetched) {
            Some(decoded) if !longer => decoded,
            _ => {
                let why = match **locator {
                    Locator::Layout(_) => {
                        "the part does not have the line layout of its head and tail"
                    }
                    _ => "the part does not have the size its structure gave",
                };
                self.reindex(file, info, snap.generation, why)?;
                return Err(self.error(info, "was re-indexed"));
            }
        };
        let lo = (start - plan.dec_start) as usize;
        let hi = (end - plan.dec_start) as usize;
        decoded
            .get(lo..hi)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| self.error(info, "is shorter than its index says"))
    }

    /// Replace generation `g`'s locator by a full scan's exact index (once, whoever comes first).
    pub(super) fn reindex(&self, file: u32, info: &FileInfo, g: u32, why: &str) -> FsResult<()> {
        let _one_at_a_time = info.rescan_lock();
        if info.generation() != g {
            return Ok(());
        }
        log::warn!(
            "{} UID {} section {}: {why}; re-indexing it",
            self.raw,
            self.uid,
            info.section
        );
        let scanned = self.scan(file, g.wrapping_add(1), info)?;
        let (old, new) = (info.size(), scanned.decoded_size());
        if info.replace(g, scanned) && old != new {
            log::warn!(
                "{} UID {} section {}: decoded size is {new}, not the {old} reported earlier; \
                 size corrected",
                self.raw,
                self.uid,
                info.section
            );
        }
        Ok(())
    }
}

fn gap_keys_of(keys: &[ChunkKey], positions: &[usize]) -> Vec<ChunkKey> {
    positions.iter().map(|&i| keys[i].clone()).collect()
}
