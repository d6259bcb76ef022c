//! Sequential read-ahead for one open file: from the second read that pushes the handle's
//! frontier forward, a window fetched beyond the read, growing fourfold.

use super::super::CHUNK;

/// The largest window fetched ahead of a sequential reader.
pub const MAX_READAHEAD: u64 = 8 * 1024 * 1024;

/// Sequential-read detection for one open file.
#[derive(Clone, Copy, Default, Debug)]
pub struct ReadState {
    /// Furthest byte read so far.
    next: u64,
    /// Where what was fetched ahead ends.
    ahead: u64,
    window: u64,
}

impl ReadState {
    /// What to fetch beyond a read, as `[from, to)`: nothing for random access; for reads that
    /// push the handle's frontier forward (from the second on), a window that starts at four
    /// chunks and grows fourfold up to MAX_READAHEAD, so `head` stays cheap and `cat` needs few
    /// round trips. Reads behind the frontier (the kernel's own read-ahead arrives out of order)
    /// and re-reads neither reset nor trigger anything; a jump far away starts over.
    pub fn advance(&mut self, offset: u64, end: u64) -> Option<(u64, u64)> {
        const JUMP: u64 = 4 * 1024 * 1024;
        let state = self;
        let far =
            offset > state.next.saturating_add(JUMP) || offset.saturating_add(JUMP) < state.next;
        let advances = end > state.next;
        if far {
            state.window = 0;
            state.next = end;
            state.ahead = end;
            return None;
        }
        if !advances {
            return None;
        }
        // The first read fetches one chunk (`head` stays cheap); once a second read shows a
        // sequential reader, the window starts at a few chunks and grows fourfold, so the link
        // is busy after a couple of round trips.
        state.window = match (state.next, state.window) {
            (0, _) => 0,
            (_, 0) => 4 * CHUNK,
            (_, w) => (w * 4).min(MAX_READAHEAD),
        };
        state.next = end;
        let from = state.ahead.max(end);
        let to = end.saturating_add(state.window);
        // Ask again only when at least half a window is missing: fewer, bigger fetches.
        if state.window == 0 || to <= from || to - from < state.window / 2 {
            return None;
        }
        state.ahead = to;
        Some((from, to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sequential_reader_gets_growing_windows_and_random_access_none() {
        let mut s = ReadState::default();
        assert_eq!(s.advance(0, CHUNK), None, "the first read alone");
        assert_eq!(s.advance(CHUNK, 2 * CHUNK), Some((2 * CHUNK, 6 * CHUNK)));
        // Each advancing read grows the window fourfold; only what is missing is asked for.
        assert_eq!(
            s.advance(2 * CHUNK, 3 * CHUNK),
            Some((6 * CHUNK, 19 * CHUNK))
        );
        assert_eq!(
            s.advance(3 * CHUNK, 4 * CHUNK),
            Some((19 * CHUNK, 4 * CHUNK + MAX_READAHEAD))
        );
        // Then nothing until half a window is missing.
        assert_eq!(s.advance(4 * CHUNK, 5 * CHUNK), None);
        // Re-reads behind the frontier trigger nothing; a far jump starts over.
        assert_eq!(s.advance(0, CHUNK), None);
        let far = 1 << 30;
        assert_eq!(s.advance(far, far + CHUNK), None);
        assert_eq!(
            s.advance(far + CHUNK, far + 2 * CHUNK),
            Some((far + 2 * CHUNK, far + 6 * CHUNK))
        );
    }

    #[test]
    fn a_long_sequential_read_stays_at_most_the_maximum_ahead() {
        let mut s = ReadState::default();
        let mut frontier = 0;
        for i in 0..200 {
            let end = (i + 1) * CHUNK;
            if let Some((from, to)) = s.advance(i * CHUNK, end) {
                assert_eq!(from, frontier.max(end), "no gap, no overlap");
                assert!(to - end <= MAX_READAHEAD);
                frontier = to;
            }
            assert!(frontier >= end || i == 0);
        }
        assert!(frontier >= 200 * CHUNK + MAX_READAHEAD / 2);
    }
}
