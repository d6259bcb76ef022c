//! Directory snapshots per open directory handle: a listing read in several `readdir` calls
//! (the kernel asks for a buffer at a time) is consistent even if the folder changes between
//! them, and a handle's entries keep their offsets.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::DirEntry;
use crate::sync::lock;

#[derive(Default)]
pub struct DirSnapshots {
    open: Mutex<HashMap<u64, Arc<Vec<DirEntry>>>>,
    next: AtomicU64,
}

impl DirSnapshots {
    /// Keep `entries` for a new handle, which is returned (never 0).
    pub fn open(&self, entries: Vec<DirEntry>) -> u64 {
        let fh = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        lock(&self.open).insert(fh, Arc::new(entries));
        fh
    }

    /// The entries kept for `fh`, if it is open.
    pub fn get(&self, fh: u64) -> Option<Arc<Vec<DirEntry>>> {
        lock(&self.open).get(&fh).cloned()
    }

    /// Forget `fh`; returns how many entries it held.
    pub fn release(&self, fh: u64) -> usize {
        lock(&self.open).remove(&fh).map_or(0, |e| e.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::Kind;

    fn entry(name: &str) -> DirEntry {
        DirEntry {
            ino: 7,
            kind: Kind::File,
            name: name.into(),
        }
    }

    #[test]
    fn handles_keep_their_own_entries_until_released() {
        let d = DirSnapshots::default();
        let a = d.open(vec![entry("1")]);
        let b = d.open(vec![entry("1"), entry("2")]);
        assert_ne!(a, b);
        assert_ne!(a, 0);
        assert_eq!(d.get(a).unwrap().len(), 1);
        assert_eq!(d.get(b).unwrap().len(), 2);
        assert_eq!(d.release(a), 1);
        assert!(d.get(a).is_none());
        assert_eq!(d.release(a), 0);
        assert_eq!(d.get(b).unwrap()[1].name, "2");
    }
}
