//! Chunks being fetched right now, so that concurrent readers of the same bytes (the kernel's
//! own read-ahead, two processes reading one attachment) wait for one fetch instead of each
//! asking the server.

use std::collections::HashSet;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::cache::ChunkKey;

#[derive(Default)]
pub struct InFlight {
    keys: Mutex<HashSet<ChunkKey>>,
    done: Condvar,
}

impl InFlight {
    /// Claim every key not already being fetched; returns the claimed ones. The caller must
    /// [`release`](Self::release) them when its fetch ends, successfully or not.
    pub fn claim(&self, keys: &[ChunkKey]) -> Vec<bool> {
        let mut set = crate::sync::lock(&self.keys);
        keys.iter().map(|k| set.insert(k.clone())).collect()
    }

    pub fn release(&self, keys: &[ChunkKey]) {
        let mut set = crate::sync::lock(&self.keys);
        for k in keys {
            set.remove(k);
        }
        drop(set);
        self.done.notify_all();
    }

    /// Wait until `key` is no longer being fetched, at most `limit`.
    pub fn wait(&self, key: &ChunkKey, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut set = crate::sync::lock(&self.keys);
        while set.contains(key) {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            set = crate::sync::wait_timeout(&self.done, set, deadline - now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn key(chunk: u64) -> ChunkKey {
        ChunkKey {
            folder: 1,
            uidvalidity: 1,
            uid: 1,
            file: 1,
            generation: 0,
            chunk,
        }
    }

    #[test]
    fn claim_is_exclusive_and_release_wakes_waiters() {
        let f = Arc::new(InFlight::default());
        assert_eq!(f.claim(&[key(0), key(1)]), [true, true]);
        assert_eq!(f.claim(&[key(1), key(2)]), [false, true]);
        let g = f.clone();
        let waiter = std::thread::spawn(move || {
            let t = Instant::now();
            g.wait(&key(1), Duration::from_secs(10));
            t.elapsed()
        });
        std::thread::sleep(Duration::from_millis(50));
        f.release(&[key(0), key(1), key(2)]);
        assert!(waiter.join().unwrap() < Duration::from_secs(10));
        assert_eq!(f.claim(&[key(1)]), [true]);
    }
}
