//! Reading files: open handles, sequential read-ahead (in the background when workers run),
//! and read-ahead across messages for tools that walk one file name through a folder.

use super::*;
use crate::fs::message::{FileInfo, Snapshot};

impl MailFs {
    /// Fetch read-ahead windows on `workers` background threads, so that a sequential reader
    /// gets its bytes while the next window is on its way.
    pub fn start_readahead(self: &Arc<Self>, workers: usize) {
        let (tx, rx) = std::sync::mpsc::channel::<Background>();
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..workers.max(1) {
            let me = Arc::downgrade(self);
            let rx = rx.clone();
            std::thread::spawn(move || loop {
                let job = match lock(&rx).recv() {
                    Ok(job) => job,
                    Err(_) => return,
                };
                let Some(me) = me.upgrade() else { return };
                match job {
                    Background::Content(job) => {
                        if let Err(e) = me.fetch_ahead(job) {
                            log::debug!("read-ahead of UID {} failed: {e}", job.uid);
                        }
                    }
                    Background::Meta(job) => {
                        if let Err(e) = me.fetch_meta_ahead(job) {
                            log::debug!("walk read-ahead failed: {e}");
                        }
                    }
                }
            });
        }
        *lock(&self.readahead_tx) = Some(tx);
    }

    /// Hand work to the background workers; gives it back when there are none.
    pub(super) fn queue_background(&self, job: Background) -> Result<(), Background> {
        match lock(&self.readahead_tx).as_ref() {
            Some(tx) => tx.send(job).map_err(|e| e.0),
            None => Err(job),
        }
    }

    pub(super) fn fetch_ahead(&self, job: ReadAhead) -> FsResult<()> {
        let fs = self.folder_state(job.folder)?.ok_or(FsError::NotFound)?;
        let info = self.message_info(&fs, job.uidvalidity, job.uid)?;
        let f = info.files.get(job.file as usize).ok_or(FsError::NotFound)?;
        let size = self.file_size(&fs, job.uidvalidity, job.uid, &info, job.file as usize)?;
        if job.from >= size {
            return Ok(());
        }
        let ctx = self.ctx(&fs, job.uidvalidity, job.uid);
        let result = ctx.fetch_window(job.file, f, job.from, job.to.min(size));
        self.tell_corrections(job.folder, job.uidvalidity, job.uid, job.file, f);
        result
    }

    /// A read found a file's size wrong and corrected it: the kernel must drop its attributes
    /// and pages (notified from another thread, never from inside a request).
    fn tell_corrections(&self, folder: u32, uidvalidity: u32, uid: u32, file: u32, f: &FileInfo) {
        if f.take_correction() {
            let ino = self.ino(Node::File {
                folder,
                uidvalidity,
                uid,
                file,
            });
            self.invalidate(Invalidation::Inode(ino));
        }
    }

    /// Open a file for reading; the handle tracks sequential access for read-ahead.
    pub fn open(&self, ino: u64) -> FsResult<u64> {
        match self.node(ino)? {
            node @ (Node::Extra { .. }
            | Node::Folders
            | Node::Index(_)
            | Node::SearchIndex { .. }) => {
                let snap = self.snapshot(node)?.ok_or(FsError::IsDir)?;
                let fh = self.next_handle.fetch_add(1, Ordering::Relaxed);
                lock(&self.snapshots).insert(fh, snap);
                Ok(fh)
            }
            Node::File { .. } => {
                let fh = self.next_handle.fetch_add(1, Ordering::Relaxed);
                lock(&self.handles).insert(fh, ReadState::default());
                Ok(fh)
            }
            _ => Err(FsError::IsDir),
        }
    }

    pub fn release(&self, fh: u64) {
        lock(&self.handles).remove(&fh);
        lock(&self.snapshots).remove(&fh);
    }

    /// Up to `size` bytes at `offset`; fewer only at the end of the file.
    pub fn read(&self, ino: u64, fh: u64, offset: u64, size: u32) -> FsResult<Vec<u8>> {
        if let Some(bytes) = self.read_snapshot(fh, offset, size) {
            return Ok(bytes);
        }
        let Node::File {
            folder,
            uidvalidity,
            uid,
            file,
        } = self.node(ino)?
        else {
            return Err(FsError::IsDir);
        };
        let fs = self.folder_state(folder)?.ok_or(FsError::NotFound)?;
        let info = self.message_info(&fs, uidvalidity, uid)?;
        let f = info.files.get(file as usize).ok_or(FsError::NotFound)?;
        let file_size = self.file_size(&fs, uidvalidity, uid, &info, file as usize)?;
        let end = offset.saturating_add(size as u64).min(file_size);
        if offset >= end {
            return Ok(Vec::new());
        }
        if offset == 0 {
            let listing = self.listing(&fs)?;
            let targets = lock(&fs.walk).note(&f.name, uid, &listing.uids);
            if !targets.is_empty() {
                self.prefetch_starts(&fs, uidvalidity, &f.name, &targets);
            }
        }
        let ctx = self.ctx(&fs, uidvalidity, uid);
        let ahead = self.readahead(fh, offset, end);
        log::trace!("read UID {uid} file {file} [{offset}, {end}) ahead {ahead:?}");
        let queued = ahead.is_some_and(|(from, to)| {
            self.queue_background(Background::Content(ReadAhead {
                folder,
                uidvalidity,
                uid,
                file,
                from,
                to,
            }))
            .is_ok()
        });
        // Without background workers (tests), fetch the window along with the read.
        let prefetch_end = match (ahead, queued) {
            (Some((_, to)), false) => to,
            _ => end,
        };
        // Asked by what the kernel wants, not clamped: a size corrected meanwhile is handled
        // inside (see content::read).
        let result = ctx.read(
            file,
            f,
            offset,
            offset.saturating_add(size as u64),
            prefetch_end,
        );
        self.tell_corrections(folder, uidvalidity, uid, file, f);
        if result == Err(FsError::NotFound) {
            // The server no longer has it: look again at the folder on the next access.
            fs.stale.store(true, Ordering::Relaxed);
        }
        result
    }

    /// Fetch the first chunk of file `name` of each of `uids` (where not cached yet) in one
    /// batch. Best effort: a failure only means the reads fetch for themselves.
    pub(super) fn prefetch_starts(
        &self,
        fs: &FolderState,
        uidvalidity: u32,
        name: &str,
        uids: &[u32],
    ) {
        struct Job {
            uid: u32,
            info: Arc<MessageInfo>,
            file: usize,
            len: u64,
            snap: Snapshot,
            plan: Option<RangePlan>,
        }
        let mut jobs = Vec::new();
        let mut reqs = Vec::new();
        let mut keys = Vec::new();
        for &uid in uids {
            let Ok(info) = self.message_info(fs, uidvalidity, uid) else {
                continue;
            };
            let Some(file) = info.file_index(name) else {
                continue;
            };
            let f = &info.files[file];
            let ctx = self.ctx(fs, uidvalidity, uid);
            let Ok(size) = self.file_size(fs, uidvalidity, uid, &info, file) else {
                continue;
            };
            let snap = f.snapshot();
            let key = ctx.key(file as u32, snap.generation, 0);
            let len = size.min(CHUNK);
            if len == 0 || self.content.cache.get(&key).is_some() {
                continue;
            }
            // Parts served as stored all ask for the same length, so one command covers them.
            let (offset, fetch_len, plan) = match *snap.locator {
                Locator::Identity { .. } => (0, CHUNK, None),
                ref other => {
                    let plan = other.plan(0, len);
                    (plan.enc_start, plan.enc_end - plan.enc_start, Some(plan))
                }
            };
            reqs.push(RangeRequest {
                uid,
                section: f.section.clone(),
                offset,
                len: fetch_len,
                binary: f.binary,
            });
            keys.push(key);
            jobs.push(Job {
                uid,
                info: info.clone(),
                file,
                len,
                snap,
                plan,
            });
        }
        if reqs.is_empty() {
            return;
        }
        let claimed = self.content.inflight.claim(&keys);
        let (mut reqs_mine, mut jobs_mine, mut keys_mine) = (Vec::new(), Vec::new(), Vec::new());
        for (((r, j), k), c) in reqs.into_iter().zip(jobs).zip(keys).zip(claimed) {
            if c {
                reqs_mine.push(r);
                jobs_mine.push(j);
                keys_mine.push(k);
            }
        }
        match self.store.fetch_ranges(&fs.raw, uidvalidity, &reqs_mine) {
            Ok(answers) => {
                for (job, bytes) in jobs_mine.iter().zip(answers) {
                    let decoded = match &job.plan {
                        // More bytes than the size of a short part served as stored: its size
                        // is wrong; the read will find out and correct it.
                        None if job.len < CHUNK && bytes.len() as u64 > job.len => None,
                        None => Some(bytes),
                        Some(plan) => job.snap.locator.decode(plan, &bytes),
                    };
                    let Some(decoded) = decoded.filter(|d| d.len() as u64 >= job.len) else {
                        continue;
                    };
                    let f = &job.info.files[job.file];
                    let g = job.snap.generation;
                    self.ctx(fs, uidvalidity, job.uid).cache_decoded(
                        job.file as u32,
                        g,
                        0,
                        &decoded[..job.len as usize],
                        job.snap.size,
                    );
                    if job.snap.is_guess() {
                        // Decoded strictly from the part's first byte: confirmed.
                        f.record_clean(g, 0, 1);
                    }
                }
            }
            Err(e) => log::debug!("{}: read-ahead across messages failed: {e}", fs.raw),
        }
        self.content.inflight.release(&keys_mine);
    }

    /// What to fetch beyond a read, as `[from, to)`: nothing for random access; for reads that
    /// push the handle's frontier forward (from the second on), a window that starts at four
    /// chunks and grows fourfold up to MAX_READAHEAD, so `head` stays cheap and `cat` needs few
    /// round trips. Reads behind the frontier (the kernel's own read-ahead arrives out of order)
    /// and re-reads neither reset nor trigger anything; a jump far away starts over.
    pub(super) fn readahead(&self, fh: u64, offset: u64, end: u64) -> Option<(u64, u64)> {
        const JUMP: u64 = 4 * 1024 * 1024;
        let mut handles = lock(&self.handles);
        let state = handles.get_mut(&fh)?;
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
