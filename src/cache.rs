//! The content cache: decoded chunks of message files in an LRU bounded in bytes.
//!
//! Keys carry the folder's UIDVALIDITY, so a cached chunk can never be served for a different
//! message: content under (folder, UIDVALIDITY, UID) never changes on an IMAP server.

use std::sync::{Arc, Mutex};

use lru::LruCache;

/// One decoded chunk of one file of one message.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ChunkKey {
    pub folder: u32,
    pub uidvalidity: u32,
    pub uid: u32,
    /// Index of the file within its message directory.
    pub file: u32,
    /// The file's locator generation the chunk was decoded under: a replaced locator's chunks
    /// are never looked up again (they age out of the LRU).
    pub generation: u32,
    pub chunk: u64,
}

/// Approximate bookkeeping cost of one entry beyond its bytes (key, Arc, list links).
const ENTRY_OVERHEAD: usize = 96;

pub struct ChunkCache {
    inner: Mutex<Inner>,
}

struct Inner {
    lru: LruCache<ChunkKey, Arc<Vec<u8>>>,
    bytes: usize,
    capacity: usize,
}

impl ChunkCache {
    /// A cache holding at most `capacity` bytes (content plus per-entry overhead).
    pub fn new(capacity: usize) -> ChunkCache {
        ChunkCache {
            inner: Mutex::new(Inner {
                lru: LruCache::unbounded(),
                bytes: 0,
                capacity,
            }),
        }
    }

    pub fn get(&self, key: &ChunkKey) -> Option<Arc<Vec<u8>>> {
        self.lock().lru.get(key).cloned()
    }

    /// Insert a chunk, evicting least recently used ones to stay within capacity. A chunk larger
    /// than the whole capacity is not kept.
    pub fn put(&self, key: ChunkKey, data: Arc<Vec<u8>>) {
        let cost = data.len() + ENTRY_OVERHEAD;
        let mut inner = self.lock();
        if cost > inner.capacity {
            return;
        }
        if let Some(old) = inner.lru.put(key, data) {
            inner.bytes -= old.len() + ENTRY_OVERHEAD;
        }
        inner.bytes += cost;
        while inner.bytes > inner.capacity {
            match inner.lru.pop_lru() {
                Some((_, old)) => inner.bytes -= old.len() + ENTRY_OVERHEAD,
                None => break,
            }
        }
    }

    /// Drop every chunk of a folder (used when its UIDVALIDITY changes).
    pub fn drop_folder(&self, folder: u32) {
        let mut inner = self.lock();
        let doomed: Vec<ChunkKey> = inner
            .lru
            .iter()
            .filter(|(k, _)| k.folder == folder)
            .map(|(k, _)| k.clone())
            .collect();
        for key in doomed {
            if let Some(old) = inner.lru.pop(&key) {
                inner.bytes -= old.len() + ENTRY_OVERHEAD;
            }
        }
    }

    /// Bytes currently accounted (content plus overhead).
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    pub fn capacity(&self) -> usize {
        self.lock().capacity
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data (every update is complete before
        // any call that could panic), so a poisoned lock is still usable.
        crate::sync::lock(&self.inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(uid: u32, chunk: u64) -> ChunkKey {
        ChunkKey {
            folder: 1,
            uidvalidity: 7,
            uid,
            file: 0,
            generation: 0,
            chunk,
        }
    }

    #[test]
    fn stays_within_byte_budget_and_evicts_least_recent() {
        let cache = ChunkCache::new(3 * (1000 + ENTRY_OVERHEAD));
        for i in 0..3 {
            cache.put(key(i, 0), Arc::new(vec![0; 1000]));
        }
        assert!(cache.get(&key(0, 0)).is_some()); // 0 becomes most recent
        cache.put(key(9, 0), Arc::new(vec![0; 1000]));
        assert!(cache.get(&key(1, 0)).is_none(), "least recent evicted");
        assert!(cache.get(&key(0, 0)).is_some());
        assert!(cache.bytes() <= cache.capacity());
    }

    #[test]
    fn oversized_chunk_is_not_kept() {
        let cache = ChunkCache::new(100);
        cache.put(key(1, 0), Arc::new(vec![0; 1000]));
        assert!(cache.get(&key(1, 0)).is_none());
        assert_eq!(cache.bytes(), 0);
    }

    #[test]
    fn replacing_a_key_keeps_accounting_exact() {
        let cache = ChunkCache::new(10_000);
        cache.put(key(1, 0), Arc::new(vec![0; 1000]));
        cache.put(key(1, 0), Arc::new(vec![0; 10]));
        assert_eq!(cache.bytes(), 10 + ENTRY_OVERHEAD);
    }

    #[test]
    fn drop_folder_removes_only_that_folder() {
        let cache = ChunkCache::new(10_000);
        cache.put(key(1, 0), Arc::new(vec![1]));
        let mut other = key(1, 0);
        other.folder = 2;
        cache.put(other.clone(), Arc::new(vec![2]));
        cache.drop_folder(1);
        assert!(cache.get(&key(1, 0)).is_none());
        assert!(cache.get(&other).is_some());
        assert_eq!(cache.bytes(), 1 + ENTRY_OVERHEAD);
    }
}
