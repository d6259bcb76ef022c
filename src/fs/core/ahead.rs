//! Running read-ahead: the background workers, and the jobs the policies in `fs::readahead`
//! name (a window of a file, the first chunks of one file name across messages, a window of
//! message directories for a walk).

use std::sync::Arc;

use crate::fs::message::MessageInfo;
use crate::fs::message::Snapshot;
use crate::fs::readahead::{Background, MetaAhead, ReadAhead, Workers};
use crate::fs::{FsError, FsResult, CHUNK};
use crate::mime::{Locator, RangePlan};
use crate::store::RangeRequest;
use crate::sync::lock;

use super::{FolderState, Listing, MailFs};

impl MailFs {
    /// Fetch read-ahead windows on `workers` background threads, so that a sequential reader
    /// gets its bytes while the next window is on its way.
    pub fn start_readahead(self: &Arc<Self>, workers: usize) {
        let me = Arc::downgrade(self);
        let pool = Workers::start(workers, move |job| {
            let Some(me) = me.upgrade() else {
                return false;
            };
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
            true
        });
        if self.workers.set(pool).is_err() {
            log::warn!("read-ahead workers were started already");
        }
    }

    /// Hand work to the background workers; gives it back when there are none.
    pub(super) fn queue_background(&self, job: Background) -> Result<(), Background> {
        match self.workers.get() {
            Some(w) => w.queue(job),
            None => Err(job),
        }
    }

    pub(super) fn fetch_ahead(&self, job: ReadAhead) -> FsResult<()> {
        let fs = self.folder_state(job.folder)?.ok_or(FsError::NotFound)?;
        let info = self.message_info(&fs, job.uidvalidity, job.uid)?;
        let f = info.files.get(job.file as usize).ok_or(FsError::NotFound)?;
        let size =
            self.messages
                .file_size(&fs, job.uidvalidity, job.uid, &info, job.file as usize)?;
        if job.from >= size {
            return Ok(());
        }
        let ctx = self.messages.ctx(&fs, job.uidvalidity, job.uid);
        let result = ctx.fetch_window(job.file, f, job.from, job.to.min(size));
        self.tell_corrections(job.folder, job.uidvalidity, job.uid, job.file, f);
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
            let ctx = self.messages.ctx(fs, uidvalidity, uid);
            let Ok(size) = self.messages.file_size(fs, uidvalidity, uid, &info, file) else {
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
                    self.messages.ctx(fs, uidvalidity, job.uid).cache_decoded(
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

    /// Note a miss of the structure batch `batch` (listing positions, the miss first) and
    /// queue a window ahead when it continues a walk. Call without holding `structure_lock`.
    pub(super) fn walk_after_miss(&self, fs: &FolderState, listing: &Listing, batch: &[usize]) {
        let (Some(&first), Some(&last)) = (batch.first(), batch.iter().max()) else {
            return;
        };
        let mut walk = lock(&fs.meta_walk);
        let ahead = walk
            .on_miss(first, last + 1, &listing.uids, self.window_cap())
            .map(|window| {
                // The batch just fetched gets its sizes with the window's job (first), not
                // one file name at a time as the tool asks.
                let mut uids: Vec<u32> = batch.iter().map(|&i| listing.uids[i]).collect();
                uids.extend(window);
                uids
            });
        let window = ahead.map(|uids| (uids, walk.names()));
        drop(walk);
        self.queue_meta_ahead(fs, listing, window);
    }

    /// Note that message `uid` was used; queue the next window when the walk reached it.
    pub(super) fn walk_touch(&self, fs: &FolderState, listing: &Listing, uid: u32) {
        let mut walk = lock(&fs.meta_walk);
        let ahead = walk.on_touch(uid, &listing.uids, self.window_cap());
        // Called on every use of a message directory: copy the names only for a window.
        let window = ahead.map(|uids| (uids, walk.names()));
        drop(walk);
        self.queue_meta_ahead(fs, listing, window);
    }

    fn window_cap(&self) -> usize {
        self.opts.max_message_infos / 4
    }

    fn queue_meta_ahead(
        &self,
        fs: &FolderState,
        listing: &Listing,
        window: Option<(Vec<u32>, Vec<String>)>,
    ) {
        let Some((uids, names)) = window else { return };
        log::debug!(
            "{}: walk: fetching {} message directories ahead (UIDs {}..={}), sizes of {:?}",
            fs.raw,
            uids.len(),
            uids.first().copied().unwrap_or(0),
            uids.last().copied().unwrap_or(0),
            names
        );
        let job = Background::Meta(MetaAhead {
            folder: fs.id,
            uidvalidity: listing.data.uidvalidity,
            uids,
            names,
        });
        // Without background workers (tests), fetch it now.
        if let Err(Background::Meta(job)) = self.queue_background(job) {
            if let Err(e) = self.fetch_meta_ahead(job) {
                log::debug!("walk read-ahead failed: {e}");
            }
        }
    }

    /// Fetch a window queued by a walk: the sizes of the walk's file names for the messages
    /// whose structures are in memory already (the tool is about to need them), then the
    /// structures of the others and their sizes, all in a few commands.
    pub(super) fn fetch_meta_ahead(&self, job: MetaAhead) -> FsResult<()> {
        let fs = self.folder_state(job.folder)?.ok_or(FsError::NotFound)?;
        let names: Vec<&str> = job.names.iter().map(String::as_str).collect();
        let (known, missing): (Vec<u32>, Vec<u32>) = {
            let infos = lock(&fs.infos);
            job.uids
                .iter()
                .copied()
                .partition(|u| infos.contains_key(u))
        };
        let settle_these = |uids: &[u32]| -> FsResult<()> {
            let _one_settle_at_a_time = lock(&fs.settle_lock);
            let batch: Vec<(u32, Arc<MessageInfo>)> = {
                let infos = lock(&fs.infos);
                uids.iter()
                    .filter_map(|u| infos.get(u).map(|i| (*u, i.clone())))
                    .collect()
            };
            self.content
                .settle(fs.id, &fs.raw, job.uidvalidity, &batch, &names)
        };
        if !known.is_empty() {
            settle_these(&known)?;
        }
        if missing.is_empty() {
            return Ok(());
        }
        {
            let _one_fetch_at_a_time = lock(&fs.structure_lock);
            let still_missing: Vec<u32> = {
                let infos = lock(&fs.infos);
                missing
                    .iter()
                    .copied()
                    .filter(|u| !infos.contains_key(u))
                    .collect()
            };
            if !still_missing.is_empty() {
                self.messages
                    .load_structures(&fs, job.uidvalidity, &still_missing)?;
            }
        }
        settle_these(&missing)
    }
}
