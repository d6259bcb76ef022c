//! Kernel passthrough for warm re-reads of message content.
//!
//! The kernel keeps a FUSE file's page cache in 4 KiB pages only (measured on 6.18: 12,800 order-0
//! folios for a 50 MiB file, where ext4 holds the same bytes in folios of up to 2 MiB), and a
//! re-read from it costs ~1.3× a local `cat`, the time going to the per-page lookups. With
//! FUSE_PASSTHROUGH the kernel serves a file's reads from a backing file of ours instead: a
//! complete sequential read is copied, as its replies go out, into an unlinked file in a local
//! directory; once every byte is there, later opens are answered with that file as the backing.
//!
//! Only the bytes already replied to the kernel are written, and a backing file is used only once
//! it covers [0, size) exactly, so it never serves bytes the mount would not. Content under an
//! inode never changes (inodes are never reused), which is what FOPEN_KEEP_CACHE already relies on.
//! The kernel refuses a passthrough open while the inode is open in cached mode, and a cached open
//! while it is open in passthrough: per inode, at most one of the two kinds is open at a time.
//! Registering a backing file needs CAP_SYS_ADMIN: unprivileged mounts keep the page cache.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use fuser::{BackingId, FileHandle, FopenFlags, ReplyOpen};

/// Files smaller than this gain little (a re-read of 1 MiB takes ~0.1 ms either way).
const MIN_SIZE: u64 = 1 << 20;
/// Bytes of backing files at most (counted by file size; those not open are evicted, oldest first).
const BUDGET: u64 = 1 << 30;

/// Byte ranges written so far: sorted, disjoint, not touching.
#[derive(Default, Debug, PartialEq)]
struct Ranges(Vec<(u64, u64)>);

impl Ranges {
    fn add(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let v = &mut self.0;
        // The first range that ends at or after `start` and the first that starts after `end`.
        let lo = v.partition_point(|r| r.1 < start);
        let hi = v.partition_point(|r| r.0 <= end);
        let (mut s, mut e) = (start, end);
        if lo < hi {
            s = s.min(v[lo].0);
            e = e.max(v[hi - 1].1);
        }
        v.splice(lo..hi, [(s, e)]);
    }

    fn covers(&self, size: u64) -> bool {
        self.0 == [(0, size)]
    }
}

struct Backing {
    file: Arc<File>,
    size: u64,
    have: Ranges,
    /// Registered with the kernel (at the first passthrough open after completion).
    id: Option<BackingId>,
    cached_open: u32,
    passthrough_open: u32,
    last_used: u64,
}

impl Backing {
    fn complete(&self) -> bool {
        self.have.covers(self.size)
    }
}

#[derive(Default)]
struct State {
    by_ino: HashMap<u64, Backing>,
    /// Open handles of content files: fh -> (ino, opened in passthrough mode).
    handles: HashMap<u64, (u64, bool)>,
    used: u64,
    tick: u64,
    /// Registering a backing file failed (not privileged): never try again.
    refused: bool,
}

pub struct Passthrough {
    dir: PathBuf,
    state: Mutex<State>,
}

impl Passthrough {
    /// Passthrough with backing files in the first of $IMAPFS_PASSTHROUGH_DIR, the temp dir and
    /// /var/tmp that is not in memory (tmpfs pages are small too: nothing gained, memory spent).
    /// None when IMAPFS_PASSTHROUGH=0 or no such directory takes an unlinked file.
    pub fn new() -> Option<Passthrough> {
        if std::env::var_os("IMAPFS_PASSTHROUGH").is_some_and(|v| v == "0") {
            return None;
        }
        let candidates = std::env::var_os("IMAPFS_PASSTHROUGH_DIR")
            .map(PathBuf::from)
            .into_iter()
            .chain([std::env::temp_dir(), PathBuf::from("/var/tmp")]);
        for dir in candidates {
            if !in_memory(&dir) && tmpfile(&dir).is_ok() {
                return Some(Passthrough {
                    dir,
                    state: Mutex::new(State::default()),
                });
            }
        }
        None
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Answer the open of a content file of `size` bytes: through its backing file when one is
    /// complete and the inode is not open in cached mode, else from the page cache (kept across
    /// opens), starting a backing file when there is none.
    pub fn open(&self, ino: u64, size: u64, fh: u64, reply: ReplyOpen) {
        let mut guard = self.lock();
        let st: &mut State = &mut guard;
        st.tick += 1;
        let tick = st.tick;
        let refused = st.refused;
        if let Some(b) = st.by_ino.get_mut(&ino) {
            if b.size == size && b.complete() && b.cached_open == 0 && !refused {
                if b.id.is_none() {
                    match reply.open_backing(&*b.file) {
                        Ok(id) => b.id = Some(id),
                        Err(e) => {
                            log::info!("no kernel passthrough ({e}): re-reads use the page cache");
                            st.refused = true;
                            drop(guard);
                            return self.open(ino, size, fh, reply);
                        }
                    }
                }
                b.passthrough_open += 1;
                b.last_used = tick;
                log::debug!("open of inode {ino} through its backing file");
                if let Some(id) = &b.id {
                    // (no KEEP_CACHE: the kernel refuses it with passthrough)
                    reply.opened_passthrough(FileHandle(fh), FopenFlags::empty(), id);
                }
                st.handles.insert(fh, (ino, true));
                return;
            }
            if b.passthrough_open == 0 {
                b.cached_open += 1;
                b.last_used = tick;
            }
        } else if (MIN_SIZE..=BUDGET).contains(&size) && !refused && self.make_room(st, size) {
            match tmpfile(&self.dir) {
                Ok(file) => {
                    st.used += size;
                    st.by_ino.insert(
                        ino,
                        Backing {
                            file: Arc::new(file),
                            size,
                            have: Ranges::default(),
                            id: None,
                            cached_open: 1,
                            passthrough_open: 0,
                            last_used: tick,
                        },
                    );
                }
                Err(e) => log::debug!("passthrough backing file in {}: {e}", self.dir.display()),
            }
        }
        st.handles.insert(fh, (ino, false));
        drop(guard);
        reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE);
    }

    /// Evict backing files nobody has open, oldest first, until `size` more fits.
    fn make_room(&self, st: &mut State, size: u64) -> bool {
        while st.used + size > BUDGET {
            let victim = st
                .by_ino
                .iter()
                .filter(|(_, b)| b.cached_open == 0 && b.passthrough_open == 0)
                .min_by_key(|(_, b)| b.last_used)
                .map(|(&ino, _)| ino);
            let Some(ino) = victim else { return false };
            if let Some(b) = st.by_ino.remove(&ino) {
                st.used -= b.size;
            }
        }
        true
    }

    /// Bytes about to be replied to a read of handle `fh`: copy them into the inode's backing file.
    /// Before the reply, so that the reader cannot finish (and close) with bytes not yet counted.
    pub fn replied(&self, fh: u64, offset: u64, data: &[u8]) {
        let file = {
            let st = self.lock();
            let Some(&(ino, false)) = st.handles.get(&fh) else {
                return;
            };
            match st.by_ino.get(&ino) {
                Some(b) if !b.complete() && offset.saturating_add(data.len() as u64) <= b.size => {
                    b.file.clone()
                }
                _ => return,
            }
        };
        // Outside the lock: other readers go on meanwhile.
        let ok = file.write_all_at(data, offset).is_ok();
        let mut st = self.lock();
        let Some(&(ino, _)) = st.handles.get(&fh) else {
            return;
        };
        if let Some(b) = st.by_ino.get_mut(&ino) {
            if ok && Arc::ptr_eq(&b.file, &file) {
                b.have.add(offset, offset + data.len() as u64);
            } else if !ok {
                // A short disk (ENOSPC ...): this one is never complete.
                let b = st.by_ino.remove(&ino).map(|b| b.size).unwrap_or(0);
                st.used -= b;
            }
        }
    }

    /// A handle is closed. A backing file still incomplete stays (within the budget): pages the
    /// kernel already holds are not read again, so a later reader may only add the rest.
    pub fn release(&self, fh: u64) {
        let mut st = self.lock();
        let Some((ino, passthrough)) = st.handles.remove(&fh) else {
            return;
        };
        if let Some(b) = st.by_ino.get_mut(&ino) {
            if passthrough {
                b.passthrough_open = b.passthrough_open.saturating_sub(1);
            } else {
                b.cached_open = b.cached_open.saturating_sub(1);
            }
        }
    }
}

/// An unlinked read-write file in `dir` (gone from the disk once closed, also after a crash).
fn tmpfile(dir: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE)
        .open(dir)
}

/// tmpfs or ramfs: page cache in small pages and never written back.
fn in_memory(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return true;
    };
    // SAFETY: a plain C struct, all-zero is a valid value.
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: statfs fills the struct we own from a NUL-terminated path.
    if unsafe { libc::statfs(c.as_ptr(), &mut s) } != 0 {
        return true;
    }
    const TMPFS: i64 = 0x0102_1994;
    const RAMFS: i64 = 0x8584_58f6;
    matches!(s.f_type as i64, TMPFS | RAMFS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_in_any_order() {
        let mut r = Ranges::default();
        r.add(10, 20);
        r.add(30, 40);
        assert_eq!(r.0, vec![(10, 20), (30, 40)]);
        r.add(20, 30); // touching both: one range
        assert_eq!(r.0, vec![(10, 40)]);
        r.add(0, 5);
        r.add(50, 60);
        r.add(3, 55); // spans several
        assert_eq!(r.0, vec![(0, 60)]);
        assert!(r.covers(60));
        assert!(!r.covers(61));
        r.add(7, 7); // empty
        assert_eq!(r.0, vec![(0, 60)]);
        let mut r = Ranges::default();
        r.add(4096, 8192);
        r.add(0, 4096);
        r.add(8192, 9000);
        assert!(r.covers(9000));
        let mut r = Ranges::default();
        r.add(0, 10);
        r.add(11, 20);
        assert!(!r.covers(20), "a one-byte hole");
    }

    #[test]
    fn tmpfile_is_unlinked_and_memory_dirs_are_seen() {
        let dir = tempfile::tempdir().unwrap();
        let f = tmpfile(dir.path()).unwrap();
        f.write_all_at(b"abc", 5).unwrap();
        assert_eq!(f.metadata().unwrap().len(), 8);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert!(in_memory(Path::new("/dev/shm")) || !Path::new("/dev/shm").exists());
        assert!(in_memory(Path::new("/no/such/dir")));
    }
}
