//! Open handles, the core's part that has its own state: files being read (with their
//! sequential read-ahead state), generated files snapshotted at open, and open directories.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::browse::Snapshot;
use crate::fs::dirsnap::DirSnapshots;
use crate::fs::readahead::ReadState;
use crate::sync::lock;

#[derive(Default)]
pub(super) struct Handles {
    next: AtomicU64,
    files: Mutex<HashMap<u64, ReadState>>,
    snapshots: Mutex<HashMap<u64, Snapshot>>,
    /// Directory listings kept per open directory handle.
    pub dirs: DirSnapshots,
}

impl Handles {
    fn next(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A handle number with nothing behind it here (a write-only handle: its state is kept
    /// by the writes part).
    pub fn open_bare(&self) -> u64 {
        self.next()
    }

    /// A handle for a part file, read through the content path.
    pub fn open_file(&self) -> u64 {
        let fh = self.next();
        lock(&self.files).insert(fh, ReadState::default());
        fh
    }

    /// A handle for a generated file, whose bytes are fixed at open.
    pub fn open_snapshot(&self, snap: Snapshot) -> u64 {
        let fh = self.next();
        lock(&self.snapshots).insert(fh, snap);
        fh
    }

    pub fn release(&self, fh: u64) {
        lock(&self.files).remove(&fh);
        lock(&self.snapshots).remove(&fh);
    }

    /// The snapshot behind `fh`, when it is a generated file's handle.
    pub fn snapshot(&self, fh: u64) -> Option<Snapshot> {
        lock(&self.snapshots).get(&fh).cloned()
    }

    /// A read of `[offset, end)` on `fh`: the window to fetch ahead, if any (see
    /// [`ReadState::advance`]).
    pub fn advance(&self, fh: u64, offset: u64, end: u64) -> Option<(u64, u64)> {
        lock(&self.files)
            .get_mut(&fh)
            .and_then(|h| h.advance(offset, end))
    }
}
