//! What `df` shows: the account's quota (STORAGE as size/used/available, MESSAGE as inodes)
//! when the server has one, otherwise "no limit known" figures large enough that `df` lists the
//! mount. The quota is asked in the background at most once per poll interval, and a `statfs`
//! waits for that answer only briefly: `df` never hangs on a slow server.

use std::sync::Arc;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::store::{MailStore, Quota};
use crate::sync::lock;

use super::MailFs;

/// The unit of sizes in `StatFs`: the quota's own (RFC 9208 STORAGE counts 1024 octets).
pub const BLOCK: u32 = 1024;
/// Without a quota: 1 PiB in blocks, "no limit known" (rclone shows the same).
pub const UNLIMITED_BLOCKS: u64 = 1 << 40;
/// Without a MESSAGE quota: inodes (total and free).
pub const UNLIMITED_FILES: u64 = 1 << 32;
/// Longest name in a directory (NAME_MAX).
pub const NAME_MAX: u32 = 255;
/// The longest a `statfs` waits for the server's quota answer before answering with what it
/// knew (the answer still lands in the cache for the next one).
pub const QUOTA_WAIT: Duration = Duration::from_secs(2);

/// What `statfs` reports; sizes in blocks of `frsize` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatFs {
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub bsize: u32,
    pub frsize: u32,
    pub namelen: u32,
}

impl StatFs {
    /// The figures for a quota (or none). Usage beyond the limit shows as a full filesystem of
    /// the size used, never as negative free space.
    pub fn of(quota: Option<Quota>) -> StatFs {
        let q = quota.unwrap_or_default();
        let (blocks, free) = match q.storage {
            Some((used, limit)) => (used.max(limit).max(1), limit.saturating_sub(used)),
            None => (UNLIMITED_BLOCKS, UNLIMITED_BLOCKS),
        };
        let (files, ffree) = match q.messages {
            Some((used, limit)) => (used.max(limit).max(1), limit.saturating_sub(used)),
            None => (UNLIMITED_FILES, UNLIMITED_FILES),
        };
        StatFs {
            blocks,
            bfree: free,
            bavail: free,
            files,
            ffree,
            bsize: BLOCK,
            frsize: BLOCK,
            namelen: NAME_MAX,
        }
    }
}

#[derive(Default)]
struct State {
    /// The last answer: `Some(None)` when the server has no quota.
    known: Option<Option<Quota>>,
    /// When the last refresh ended (successfully or not).
    checked: Option<Instant>,
    refreshing: bool,
}

/// The quota as last asked, refreshed in the background.
#[derive(Default)]
pub struct QuotaCache {
    inner: Arc<(Mutex<State>, Condvar)>,
}

impl QuotaCache {
    /// The quota: the cached answer while younger than `ttl`, else a fresh one if it comes
    /// within `wait`, else the last one known (`None` before any).
    pub fn get(&self, store: &Arc<dyn MailStore>, ttl: Duration, wait: Duration) -> Option<Quota> {
        let (state, ready) = &*self.inner;
        let mut s = lock(state);
        let fresh = s.checked.is_some_and(|t| t.elapsed() < ttl);
        if fresh {
            return s.known.flatten();
        }
        if !s.refreshing {
            s.refreshing = true;
            let inner = self.inner.clone();
            let store = store.clone();
            let spawned = std::thread::Builder::new()
                .name("quota".into())
                .spawn(move || {
                    let r = store.quota();
                    let (state, ready) = &*inner;
                    let mut s = lock(state);
                    match r {
                        Ok(q) => s.known = Some(q),
                        Err(e) => log::warn!("quota: {e}"),
                    }
                    s.checked = Some(Instant::now());
                    s.refreshing = false;
                    ready.notify_all();
                });
            if spawned.is_err() {
                s.refreshing = false;
                return s.known.flatten();
            }
        }
        let until = Instant::now() + wait;
        while s.refreshing {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            s = ready
                .wait_timeout(s, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        s.known.flatten()
    }
}

impl MailFs {
    /// What `df` shows for the mount.
    pub fn statfs(&self) -> StatFs {
        StatFs::of(
            self.quota
                .get(&self.store, self.opts.poll_interval, QUOTA_WAIT),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{
        FolderEntry, FolderListing, RangeRequest, Result, StoreError, StructureData,
    };

    #[test]
    fn figures_of_a_quota() {
        let s = StatFs::of(Some(Quota {
            storage: Some((5, 10240)),
            messages: Some((1, 100)),
        }));
        assert_eq!((s.blocks, s.bfree, s.bavail), (10240, 10235, 10235));
        assert_eq!((s.files, s.ffree), (100, 99));
        assert_eq!((s.bsize, s.frsize, s.namelen), (1024, 1024, 255));
        // Over quota: full, the size is what is used.
        let s = StatFs::of(Some(Quota {
            storage: Some((300, 200)),
            messages: None,
        }));
        assert_eq!((s.blocks, s.bfree, s.bavail), (300, 0, 0));
        assert_eq!((s.files, s.ffree), (UNLIMITED_FILES, UNLIMITED_FILES));
        // A zero limit still lists the mount (df hides filesystems of 0 blocks).
        let s = StatFs::of(Some(Quota {
            storage: Some((0, 0)),
            messages: None,
        }));
        assert_eq!((s.blocks, s.bfree), (1, 0));
        // No quota: large, non-zero, nothing used.
        let s = StatFs::of(None);
        assert_eq!((s.blocks, s.bfree, s.bavail), (1 << 40, 1 << 40, 1 << 40));
        assert!(s.files > 0 && s.ffree == s.files);
    }

    /// A store that only answers `quota`, slowly if told to, counting the questions.
    #[derive(Default)]
    struct QuotaStore {
        answer: Mutex<Option<Result<Option<Quota>>>>,
        delay: Mutex<Duration>,
        asked: Mutex<usize>,
    }

    impl MailStore for QuotaStore {
        fn list_folders(&self) -> Result<Vec<FolderEntry>> {
            Ok(Vec::new())
        }
        fn list_messages(&self, folder: &str) -> Result<FolderListing> {
            Err(StoreError::NoSuchFolder(folder.into()))
        }
        fn fetch_structures(
            &self,
            _: &str,
            _: u32,
            _: &[u32],
        ) -> Result<Vec<(u32, Result<StructureData>)>> {
            Ok(Vec::new())
        }
        fn fetch_ranges(&self, _: &str, _: u32, _: &[RangeRequest]) -> Result<Vec<Vec<u8>>> {
            Ok(Vec::new())
        }
        fn quota(&self) -> Result<Option<Quota>> {
            *lock(&self.asked) += 1;
            std::thread::sleep(*lock(&self.delay));
            lock(&self.answer).clone().unwrap_or(Ok(None))
        }
    }

    fn quota(used: u64, limit: u64) -> Quota {
        Quota {
            storage: Some((used, limit)),
            messages: None,
        }
    }

    #[test]
    fn the_quota_is_cached_for_a_while() {
        let qs = Arc::new(QuotaStore::default());
        *lock(&qs.answer) = Some(Ok(Some(quota(1, 10))));
        let store: Arc<dyn MailStore> = qs.clone();
        let cache = QuotaCache::default();
        // Within the ttl the answer is kept; with a ttl of zero it is old at once.
        let (keep, old) = (Duration::from_secs(600), Duration::ZERO);
        let wait = Duration::from_secs(5);
        assert_eq!(cache.get(&store, keep, wait), Some(quota(1, 10)));
        *lock(&qs.answer) = Some(Ok(Some(quota(2, 10))));
        assert_eq!(cache.get(&store, keep, wait), Some(quota(1, 10)));
        assert_eq!(*lock(&qs.asked), 1);
        assert_eq!(cache.get(&store, old, wait), Some(quota(2, 10)));
        assert_eq!(*lock(&qs.asked), 2);
        // A failure keeps the last answer, and counts as asked for the ttl.
        *lock(&qs.answer) = Some(Err(StoreError::Connection("down".into())));
        assert_eq!(cache.get(&store, old, wait), Some(quota(2, 10)));
        assert_eq!(cache.get(&store, keep, wait), Some(quota(2, 10)));
        assert_eq!(*lock(&qs.asked), 3);
        // The server no longer has a quota.
        *lock(&qs.answer) = Some(Ok(None));
        assert_eq!(cache.get(&store, old, wait), None);
        assert_eq!(*lock(&qs.asked), 4);
    }

    #[test]
    fn a_slow_server_does_not_hold_statfs() {
        let qs = Arc::new(QuotaStore::default());
        *lock(&qs.answer) = Some(Ok(Some(quota(3, 10))));
        *lock(&qs.delay) = Duration::from_millis(2000);
        let store: Arc<dyn MailStore> = qs.clone();
        let cache = QuotaCache::default();
        let ttl = Duration::from_secs(60);
        let t0 = Instant::now();
        // Nothing known yet, and the answer takes longer than the wait.
        assert_eq!(cache.get(&store, ttl, Duration::from_millis(100)), None);
        assert_eq!(cache.get(&store, ttl, Duration::from_millis(100)), None);
        assert!(
            t0.elapsed() < Duration::from_millis(700),
            "{:?}",
            t0.elapsed()
        );
        // One question in flight at a time; its answer is served once it lands.
        assert_eq!(
            cache.get(&store, ttl, Duration::from_secs(5)),
            Some(quota(3, 10))
        );
        assert_eq!(*lock(&qs.asked), 1);
    }
}
