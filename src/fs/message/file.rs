//! One file of a message directory and what is known about its bytes: its size (settled, then
//! corrected if a read proves it wrong), the locator that reaches its decoded ranges, and which
//! of its chunks are known to sit where that locator puts them.
//!
//! Why the last part matters: a [`Locator::Layout`] is a guess from a base64 part's head and tail.
//! A window fetched from the middle is checked strictly against the layout, but that only shows
//! the window itself is regular: an unseen run of same-length garbage lines *before* it shifts
//! every later decoded byte, and the window still decodes as valid base64, at the wrong offset.
//! So a chunk decoded by a layout is served only when everything before it was seen to be regular
//! too: chunks `[0, prefix)` ("confirmed"), found by strict decodes that join up from the start.
//! Chunks decoded cleanly further on ("islands") wait until the prefix reaches them; chunks the
//! server decoded itself (`BINARY`) are exact wherever they are. Replacing the locator bumps the
//! generation, which is part of every cache key: nothing decoded under the old guess is reachable.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use crate::mime::{Encoding, Locator};

use super::Need;

/// Runs of chunks `[lo, hi)` kept by [`Runs`]: enough for any real access pattern; beyond it
/// the run farthest from the start is forgotten (that costs a refetch, never a wrong byte).
const MAX_RUNS: usize = 256;

/// The settled size and up to two corrections, then the file is given up on (EIO): one
/// re-index gives the exact size, so more means the server answers inconsistently.
const SIZE_SLOTS: usize = 3;

/// A file's decoded size: settled once, then replaced by each correction. Write-once slots, so
/// [`get`](Self::get) hands out a reference without a lock.
#[derive(Debug, Default)]
pub struct SizeCell {
    slots: [OnceLock<u64>; SIZE_SLOTS],
}

impl From<u64> for SizeCell {
    fn from(size: u64) -> SizeCell {
        let cell = SizeCell::default();
        let _ = cell.slots[0].set(size);
        cell
    }
}

impl SizeCell {
    /// The latest size, if settled.
    pub fn get(&self) -> Option<&u64> {
        self.slots.iter().rev().find_map(OnceLock::get)
    }

    /// Replace the size; false when the slots are used up.
    fn correct(&self, size: u64) -> bool {
        self.slots
            .iter()
            .any(|s| s.get().is_none() && s.set(size).is_ok())
    }
}

/// Sorted, disjoint, non-touching runs of chunks `[lo, hi)`.
#[derive(Debug, Default, Clone)]
struct Runs(Vec<(u64, u64)>);

impl Runs {
    fn insert(&mut self, lo: u64, hi: u64) {
        if lo >= hi {
            return;
        }
        let (mut lo, mut hi) = (lo, hi);
        self.0.retain(|&(a, b)| {
            let touches = a <= hi && lo <= b;
            if touches {
                lo = lo.min(a);
                hi = hi.max(b);
            }
            !touches
        });
        let at = self.0.partition_point(|&(a, _)| a < lo);
        self.0.insert(at, (lo, hi));
        if self.0.len() > MAX_RUNS {
            self.0.pop();
        }
    }

    fn contains(&self, c: u64) -> bool {
        let i = self.0.partition_point(|&(a, _)| a <= c);
        i > 0 && c < self.0[i - 1].1
    }

    /// Remove and return the end of the run that starts at or before `c` and reaches past it.
    fn take_from(&mut self, c: u64) -> Option<u64> {
        let i = self.0.partition_point(|&(a, _)| a <= c);
        let (_, hi) = *self.0.get(i.checked_sub(1)?)?;
        if hi <= c {
            return None;
        }
        self.0.remove(i - 1);
        Some(hi)
    }
}

#[derive(Debug)]
struct State {
    generation: u32,
    locator: Arc<Locator>,
    /// What is confirmed of a layout guess; `None` for exact locators (most files: boxed).
    guess: Option<Box<Guess>>,
    /// The server refused a BINARY fetch of this part (Dovecot: `NO [PARSE]` on broken base64).
    binary_refused: bool,
    /// The size was corrected and the kernel not told yet.
    corrected: bool,
    /// The size needed correcting more often than makes sense: serve nothing.
    broken: bool,
}

/// Which chunks of a layout guess may be served.
#[derive(Debug, Default)]
struct Guess {
    /// Chunks `[0, prefix)` are confirmed (decoded strictly, joined from the start).
    prefix: u64,
    /// Chunks decoded strictly beyond the prefix, not yet joined to it.
    islands: Runs,
    /// Chunks the server decoded (BINARY): exact wherever they are.
    exact: Runs,
    /// The last of them fetched.
    last_exact: Option<u64>,
}

/// What one read works with: the generation and locator at its start and the size they give.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub generation: u32,
    pub locator: Arc<Locator>,
    pub size: u64,
}

impl Snapshot {
    /// Only a layout's chunks need confirming; other locators are exact.
    pub fn is_guess(&self) -> bool {
        matches!(*self.locator, Locator::Layout(_))
    }
}

/// One file of a message directory.
#[derive(Debug)]
pub struct FileInfo {
    pub name: String,
    /// The IMAP section its bytes come from (`HEADER`, `2`, `3.HEADER`).
    pub section: String,
    pub encoding: Encoding,
    /// Fetch with `BINARY.PEEK` (literal8): a part stored as 8bit/binary when the server offers
    /// BINARY, so NUL bytes arrive as NUL (servers replace them in `BODY[]`).
    pub binary: bool,
    /// The section for `BINARY[...]` fetches when it differs from `section` (which may be a
    /// `TEXT` section, and BINARY takes only part numbers).
    pub binary_section: Option<String>,
    /// Size as stored on the server (for a full scan; 0 when unknown).
    pub encoded_size: u64,
    /// What must be fetched to learn the decoded size (`None`: it is the encoded size).
    pub need: Option<Need>,
    /// The decoded size, once settled (see `message::settle`); corrected by reads.
    pub size: SizeCell,
    state: Mutex<State>,
    /// One re-index of the part at a time.
    rescan: Mutex<()>,
}

impl FileInfo {
    /// A file whose size is `size` if known (then it is served as stored until a read says
    /// otherwise), else settled later.
    pub fn new(
        name: String,
        section: String,
        encoding: Encoding,
        encoded_size: u64,
        need: Option<Need>,
        size: Option<u64>,
    ) -> FileInfo {
        FileInfo {
            name,
            section,
            encoding,
            binary: false,
            binary_section: None,
            encoded_size,
            need,
            size: size.map(SizeCell::from).unwrap_or_default(),
            state: Mutex::new(State {
                generation: 0,
                locator: Arc::new(Locator::Identity {
                    size: size.unwrap_or(encoded_size),
                }),
                guess: None,
                binary_refused: false,
                corrected: false,
                broken: false,
            }),
            rescan: Mutex::new(()),
        }
    }

    /// The section to fetch: as stored, or (`binary`) as the server decodes it.
    pub fn section_for(&self, binary: bool) -> &str {
        match &self.binary_section {
            Some(s) if binary => s,
            _ => &self.section,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every update is complete before anything that could panic: a poisoned lock is usable.
        crate::sync::lock(&self.state)
    }

    /// The decoded size; callers settle it first (0 if they did not).
    pub fn size(&self) -> u64 {
        self.size.get().copied().unwrap_or(0)
    }

    pub fn snapshot(&self) -> Snapshot {
        let st = self.state();
        Snapshot {
            generation: st.generation,
            locator: st.locator.clone(),
            size: self.size(),
        }
    }

    pub fn generation(&self) -> u32 {
        self.state().generation
    }

    pub fn is_broken(&self) -> bool {
        self.state().broken
    }

    /// Record a settled locator and the size it gives, unless settled already.
    pub fn settle(&self, locator: Locator) {
        let mut st = self.state();
        if self.size.get().is_none() {
            let _ = self.size.slots[0].set(locator.decoded_size());
            st.guess = matches!(locator, Locator::Layout(_)).then(Box::default);
            st.locator = Arc::new(locator);
        }
    }

    /// May chunk `c`, cached under generation `g`, be served?
    pub fn servable(&self, g: u32, c: u64) -> bool {
        let st = self.state();
        st.generation == g
            && !st.broken
            && st
                .guess
                .as_ref()
                .is_none_or(|gs| c < gs.prefix || gs.exact.contains(c))
    }

    /// Is chunk `c` more than `slack` chunks past the confirmed prefix (layout only)?
    pub fn beyond_prefix(&self, g: u32, c: u64, slack: u64) -> bool {
        let st = self.state();
        st.generation == g && st.guess.as_ref().is_some_and(|gs| c > gs.prefix + slack)
    }

    /// Does a read-ahead window from chunk `c` continue a reader served by the server's
    /// decoding, beyond the confirmed prefix (shortly after the last exact chunk)?
    pub fn reading_on_exact(&self, g: u32, c: u64) -> bool {
        const NEAR: u64 = 128; // two read-ahead windows
        let st = self.state();
        st.generation == g
            && st.guess.as_ref().is_some_and(|gs| {
                c >= gs.prefix && gs.last_exact.is_some_and(|e| e < c && c <= e + NEAR)
            })
    }

    /// Chunks `[lo, hi)` were decoded strictly by generation `g`'s layout.
    pub fn record_clean(&self, g: u32, lo: u64, hi: u64) {
        let mut st = self.state();
        if st.generation != g {
            return;
        }
        let Some(gs) = st.guess.as_mut() else { return };
        gs.islands.insert(lo, hi);
        while let Some(hi) = gs.islands.take_from(gs.prefix) {
            gs.prefix = gs.prefix.max(hi);
        }
    }

    /// Chunks `[lo, hi)` were decoded by the server (exact under generation `g`'s size).
    pub fn record_exact(&self, g: u32, lo: u64, hi: u64) {
        let mut st = self.state();
        let current = st.generation == g && lo < hi;
        if let Some(gs) = st.guess.as_mut().filter(|_| current) {
            gs.exact.insert(lo, hi);
            gs.last_exact = Some(hi - 1);
        }
    }

    /// The confirmed prefix and whether chunk `c` was decoded (strictly) beyond it.
    pub fn confirmation(&self, g: u32, c: u64) -> Option<(u64, bool)> {
        let st = self.state();
        (st.generation == g).then(|| match &st.guess {
            Some(gs) => (gs.prefix, gs.islands.contains(c)),
            None => (u64::MAX, false),
        })
    }

    pub fn binary_refused(&self) -> bool {
        self.state().binary_refused
    }

    pub fn refuse_binary(&self) {
        self.state().binary_refused = true;
    }

    /// Hold this while re-indexing; check [`generation`](Self::generation) after getting it.
    pub fn rescan_lock(&self) -> MutexGuard<'_, ()> {
        crate::sync::lock(&self.rescan)
    }

    /// Replace generation `g`'s locator by an exact one (next generation); correct the size if
    /// it differs. False if `g` was replaced already.
    pub fn replace(&self, g: u32, locator: Locator) -> bool {
        let mut st = self.state();
        if st.generation != g {
            return false;
        }
        let new = locator.decoded_size();
        st.generation = g.wrapping_add(1);
        st.locator = Arc::new(locator);
        st.guess = None;
        if self.size.get() != Some(&new) {
            if self.size.correct(new) {
                st.corrected = true;
            } else {
                st.broken = true;
            }
        }
        true
    }

    /// True once after each size correction: the caller tells the kernel.
    pub fn take_correction(&self) -> bool {
        std::mem::take(&mut self.state().corrected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_merge_and_bound() {
        let mut r = Runs::default();
        r.insert(5, 7);
        r.insert(1, 2);
        r.insert(7, 9);
        assert_eq!(r.0, [(1, 2), (5, 9)]);
        assert!(r.contains(5) && r.contains(8) && !r.contains(9) && !r.contains(2));
        r.insert(2, 5);
        assert_eq!(r.0, [(1, 9)]);
        assert_eq!(r.take_from(0), None);
        assert_eq!(r.take_from(3), Some(9));
        assert!(r.0.is_empty());
        for i in 0..1000 {
            r.insert(i * 2, i * 2 + 1);
        }
        assert_eq!(r.0.len(), MAX_RUNS);
        assert_eq!(r.0[0], (0, 1), "the runs nearest the start are kept");
    }

    #[test]
    fn generations_fence_chunks_and_corrections_are_bounded() {
        let f = FileInfo::new("2".into(), "2".into(), Encoding::Base64, 0, None, None);
        f.settle(Locator::Identity { size: 10 });
        assert!(f.servable(0, 3), "identity is exact");
        assert!(!f.servable(1, 3), "another generation never is");
        let size = f.size.get().copied();
        assert_eq!(size, Some(10));
        assert!(f.replace(0, Locator::Identity { size: 7 }));
        assert!(
            !f.replace(0, Locator::Identity { size: 8 }),
            "once per generation"
        );
        assert_eq!(f.size(), 7);
        assert!(f.take_correction() && !f.take_correction());
        assert!(f.replace(1, Locator::Identity { size: 8 }));
        assert!(!f.is_broken());
        assert!(f.replace(2, Locator::Identity { size: 9 }));
        assert!(
            f.is_broken() && !f.servable(3, 0),
            "a third correction: given up"
        );
    }
}
