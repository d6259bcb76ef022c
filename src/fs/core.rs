//! [`MailFs`]: lookup, getattr, readdir, open/read/release over a [`MailStore`], in terms the
//! FUSE adapter passes straight on to the kernel.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::cache::ChunkCache;
use crate::mime::{Locator, RangePlan};
use crate::names::{component_beside_uid, folder_level};
use crate::store::{FolderListing, MailStore, MessageSummary, RangeRequest, StoreError};

use super::Invalidation;

use super::content::{MsgCtx, UNKNOWN_SIZE_GUESS};
use super::folders::{FolderIds, FolderTree, ROOT_FOLDER};
use super::inflight::InFlight;
use super::inodes::{InodeTable, Node, ROOT_INO};
use super::message::{build_batch, settle, MessageInfo};
use super::walk::Walk;
use super::{Attr, DirEntry, FsError, FsResult, Kind, Ttl, CHUNK};

/// Messages whose structure is fetched together when one of them is first needed.
const STRUCTURE_BATCH: usize = 64;
/// Message directories whose structure is kept in memory by default (a few hundred bytes each);
/// beyond this the least recently used are forgotten and fetched again when needed.
pub const MAX_MESSAGE_INFOS: usize = 20_000;
/// Sequential read-ahead grows up to this many bytes.
const MAX_READAHEAD: u64 = 8 * 1024 * 1024;

#[derive(Clone, Debug)]
pub struct FsOptions {
    /// How long a folder listing (and the folder list) is trusted before asking the server again.
    pub poll_interval: Duration,
    /// Bytes of decoded content to cache.
    pub cache_size: u64,
    /// Owner of every node.
    pub uid: u32,
    pub gid: u32,
    /// Most fetches one read runs at once (no more than the store's connections).
    pub parallel_fetches: usize,
    /// Message structures kept in memory (see MAX_MESSAGE_INFOS).
    pub max_message_infos: usize,
}

pub struct MailFs {
    store: Arc<dyn MailStore>,
    opts: FsOptions,
    cache: ChunkCache,
    inflight: InFlight,
    inodes: Mutex<InodeTable>,
    tree: Mutex<TreeState>,
    folders: Mutex<HashMap<u32, Arc<FolderState>>>,
    handles: Mutex<HashMap<u64, ReadState>>,
    next_handle: AtomicU64,
    mount_time: i64,
    /// Where to tell the kernel to forget entries (a thread outside request handlers does it).
    invalidations: Mutex<Option<Sender<Invalidation>>>,
    /// (folder, UID) of every message whose structure is in memory, least recently used first.
    known: Mutex<lru::LruCache<(u32, u32), ()>>,
    /// Where reads hand their read-ahead to background workers (see `start_readahead`).
    readahead_tx: Mutex<Option<Sender<ReadAhead>>>,
}

/// A window of a file to fetch in the background.
#[derive(Clone, Copy, Debug)]
struct ReadAhead {
    folder: u32,
    uidvalidity: u32,
    uid: u32,
    file: u32,
    from: u64,
    to: u64,
}

#[derive(Default)]
struct TreeState {
    tree: Arc<FolderTree>,
    ids: FolderIds,
    fetched: Option<Instant>,
}

struct FolderState {
    id: u32,
    raw: String,
    listing: Mutex<Option<Arc<Listing>>>,
    /// Message directories of the current UIDVALIDITY, by UID.
    infos: Mutex<HashMap<u32, Arc<MessageInfo>>>,
    /// Serialises structure fetches so a batch is fetched once, not by every waiting reader.
    structure_lock: Mutex<()>,
    /// Set to make the next access ask the server, whatever the listing's age.
    stale: AtomicBool,
    /// When a request last touched the folder: the poller keeps folders in use fresh.
    last_access: Mutex<Instant>,
    /// One file name read across many messages (`grep x Folder/*/1`).
    walk: Mutex<Walk>,
}

struct Listing {
    data: FolderListing,
    /// The UIDs of `data.messages`, for walk detection.
    uids: Vec<u32>,
    fetched: Instant,
}

impl Listing {
    fn new(data: FolderListing) -> Listing {
        Listing {
            uids: data.messages.iter().map(|m| m.uid).collect(),
            data,
            fetched: Instant::now(),
        }
    }

    fn message(&self, uid: u32) -> Option<&MessageSummary> {
        let msgs = &self.data.messages;
        msgs.binary_search_by_key(&uid, |m| m.uid)
            .ok()
            .map(|i| &msgs[i])
    }
}

/// Sequential-read detection for one open file.
#[derive(Clone, Copy, Default)]
struct ReadState {
    /// Furthest byte read so far.
    next: u64,
    /// Where what was fetched ahead ends.
    ahead: u64,
    window: u64,
}

/// Return freed heap memory to the system (glibc keeps it otherwise).
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; safe at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Up to `want` positions around `pos` (itself first, then alternately after and before it,
/// nearest first) for which `wanted` holds, looking at most a few windows away: tools walk a
/// folder in either direction, and the next batch should hold what they ask for next.
fn neighbours(pos: usize, len: usize, want: usize, wanted: impl Fn(usize) -> bool) -> Vec<usize> {
    let mut out = vec![pos];
    let reach = want * 4;
    let mut d = 1;
    while out.len() < want && d <= reach && (pos + d < len || d <= pos) {
        for i in [pos.checked_add(d).filter(|&i| i < len), pos.checked_sub(d)]
            .into_iter()
            .flatten()
        {
            if out.len() < want && wanted(i) {
                out.push(i);
            }
        }
        d += 1;
    }
    out
}

/// A message directory name: a UID in canonical decimal (no sign, no leading zero).
fn parse_uid(name: &str) -> Option<u32> {
    if name.is_empty() || name.starts_with('0') || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok().filter(|&u| u > 0)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl MailFs {
    pub fn new(store: Arc<dyn MailStore>, opts: FsOptions) -> MailFs {
        let mount_time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        MailFs {
            store,
            cache: ChunkCache::new(opts.cache_size as usize),
            inflight: InFlight::default(),
            opts,
            inodes: Mutex::new(InodeTable::new()),
            tree: Mutex::new(TreeState::default()),
            folders: Mutex::new(HashMap::new()),
            handles: Mutex::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
            mount_time,
            invalidations: Mutex::new(None),
            known: Mutex::new(lru::LruCache::unbounded()),
            readahead_tx: Mutex::new(None),
        }
    }

    /// Fetch read-ahead windows on `workers` background threads, so that a sequential reader
    /// gets its bytes while the next window is on its way.
    pub fn start_readahead(self: &Arc<Self>, workers: usize) {
        let (tx, rx) = std::sync::mpsc::channel::<ReadAhead>();
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
                if let Err(e) = me.fetch_ahead(job) {
                    log::debug!("read-ahead of UID {} failed: {e}", job.uid);
                }
            });
        }
        *lock(&self.readahead_tx) = Some(tx);
    }

    /// Hand a window to the background workers; false when there are none.
    fn queue_readahead(&self, job: ReadAhead) -> bool {
        lock(&self.readahead_tx)
            .as_ref()
            .is_some_and(|tx| tx.send(job).is_ok())
    }

    fn fetch_ahead(&self, job: ReadAhead) -> FsResult<()> {
        let fs = self.folder_state(job.folder)?.ok_or(FsError::NotFound)?;
        let info = self.message_info(&fs, job.uidvalidity, job.uid)?;
        let f = info.files.get(job.file as usize).ok_or(FsError::NotFound)?;
        let size = self.file_size(&fs, job.uidvalidity, job.uid, &info, job.file as usize)?;
        if job.from >= size {
            return Ok(());
        }
        let ctx = self.ctx(&fs, job.uidvalidity, job.uid);
        // Reading its first byte fetches (and caches) the whole window.
        ctx.read(job.file, f, job.from, job.from + 1, job.to.min(size))
            .map(drop)
    }

    /// How many message structures are in memory.
    pub fn message_infos(&self) -> usize {
        lock(&self.known).len()
    }

    pub fn cache(&self) -> &ChunkCache {
        &self.cache
    }

    fn node(&self, ino: u64) -> FsResult<Node> {
        lock(&self.inodes).node(ino).ok_or(FsError::NotFound)
    }

    fn ino(&self, node: Node) -> u64 {
        lock(&self.inodes).ino_of(node)
    }

    // ---- folders -------------------------------------------------------------------------

    fn tree(&self) -> FsResult<Arc<FolderTree>> {
        let mut state = lock(&self.tree);
        let fresh = state
            .fetched
            .is_some_and(|t| t.elapsed() < self.opts.poll_interval);
        if !fresh {
            match self.store.list_folders() {
                Ok(entries) => {
                    let tree = FolderTree::build(&entries, &mut state.ids);
                    if state.fetched.is_some() {
                        self.forget_removed_folders(&state.tree, &tree);
                    }
                    state.tree = Arc::new(tree);
                    state.fetched = Some(Instant::now());
                }
                Err(e) if state.fetched.is_some() => {
                    // Trust the old list for another interval rather than make every lookup
                    // wait for the server again.
                    log::warn!("cannot refresh the folder list, keeping the old one: {e}");
                    state.fetched = Some(Instant::now());
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(state.tree.clone())
    }

    /// Tell the kernel about folders that disappeared, and about directories whose subfolders
    /// changed.
    fn forget_removed_folders(&self, old: &FolderTree, new: &FolderTree) {
        for (id, folder) in &old.folders {
            let now = new.get(*id).map(|f| &f.children);
            if now == Some(&folder.children) {
                continue;
            }
            let node = if *id == ROOT_FOLDER {
                Node::Root
            } else {
                Node::Folder(*id)
            };
            let Some(ino) = lock(&self.inodes).existing(&node) else {
                continue;
            };
            for name in folder.children.keys() {
                if now.is_none_or(|c| !c.contains_key(name)) {
                    self.invalidate(Invalidation::Entry {
                        parent: ino,
                        name: name.clone(),
                    });
                }
            }
            self.invalidate(Invalidation::Inode(ino));
        }
        let gone: Vec<u32> = old
            .folders
            .keys()
            .filter(|id| !new.folders.contains_key(id))
            .copied()
            .collect();
        let mut folders = lock(&self.folders);
        for id in gone {
            folders.remove(&id);
        }
    }

    /// The state of a selectable folder, or `None` for a directory-only folder.
    fn folder_state(&self, id: u32) -> FsResult<Option<Arc<FolderState>>> {
        let tree = self.tree()?;
        let folder = tree.get(id).ok_or(FsError::NotFound)?;
        let Some(raw) = &folder.raw else {
            return Ok(None);
        };
        let mut folders = lock(&self.folders);
        let state = folders.entry(id).or_insert_with(|| {
            Arc::new(FolderState {
                id,
                raw: raw.clone(),
                listing: Mutex::new(None),
                infos: Mutex::new(HashMap::new()),
                structure_lock: Mutex::new(()),
                stale: AtomicBool::new(false),
                last_access: Mutex::new(Instant::now()),
                walk: Mutex::new(Walk::default()),
            })
        });
        *lock(&state.last_access) = Instant::now();
        Ok(Some(state.clone()))
    }

    fn listing(&self, fs: &FolderState) -> FsResult<Arc<Listing>> {
        let mut guard = lock(&fs.listing);
        let forced = fs.stale.swap(false, Ordering::Relaxed);
        if let Some(l) = guard.as_ref() {
            if !forced && l.fetched.elapsed() < self.opts.poll_interval {
                return Ok(l.clone());
            }
        }
        match self.fetch_listing(fs, guard.as_deref()) {
            Ok(None) => {
                let old = guard.as_ref().expect("unchanged implies an old listing");
                let listing = Arc::new(Listing::new(old.data.clone()));
                *guard = Some(listing.clone());
                Ok(listing)
            }
            Ok(Some(data)) => {
                if let Some(old) = guard.as_ref() {
                    self.forget_changed(fs, &old.data, &data);
                }
                let big = data.messages.len() >= 10_000;
                let listing = Arc::new(Listing::new(data));
                *guard = Some(listing.clone());
                if big {
                    // Parsing a big listing leaves megabytes of freed buffers behind: hand
                    // them back to the system.
                    release_free_memory();
                }
                Ok(listing)
            }
            Err(e @ (StoreError::NoSuchFolder(_) | StoreError::UidValidityChanged(_))) => {
                *guard = None;
                Err(e.into())
            }
            Err(e) => match guard.as_ref() {
                Some(old) => {
                    // Trust it for another interval, so lookups do not each wait on the server.
                    log::warn!("{}: cannot refresh, keeping the old listing: {e}", fs.raw);
                    let listing = Arc::new(Listing::new(old.data.clone()));
                    *guard = Some(listing.clone());
                    Ok(listing)
                }
                None => Err(e.into()),
            },
        }
    }

    /// The folder's current listing, or `None` if it is unchanged since `old`. With an old
    /// listing this costs a STATUS, plus only what changed: the new messages, and the UIDs
    /// when some were expunged.
    fn fetch_listing(
        &self,
        fs: &FolderState,
        old: Option<&Listing>,
    ) -> Result<Option<FolderListing>, StoreError> {
        let Some(old) = old.map(|l| &l.data).filter(|d| d.uidnext > 0) else {
            return self.store.list_messages(&fs.raw).map(Some);
        };
        let st = self.store.folder_status(&fs.raw)?;
        if st.uidvalidity != old.uidvalidity || st.uidnext == 0 {
            return self.store.list_messages(&fs.raw).map(Some);
        }
        if st.uidnext == old.uidnext && st.messages as usize == old.messages.len() {
            return Ok(None);
        }
        let mut msgs = old.messages.clone();
        if st.uidnext != old.uidnext {
            let new = self
                .store
                .list_messages_from(&fs.raw, old.uidvalidity, old.uidnext)?;
            msgs.extend(new.into_iter().filter(|m| m.uid >= old.uidnext));
            msgs.sort_by_key(|m| m.uid);
            msgs.dedup_by_key(|m| m.uid);
        }
        if msgs.len() != st.messages as usize {
            let uids: HashSet<u32> = self
                .store
                .list_uids(&fs.raw, old.uidvalidity)?
                .into_iter()
                .collect();
            msgs.retain(|m| uids.contains(&m.uid));
            if msgs.len() != uids.len() {
                // Mail arrived between the commands: start over from a full listing.
                return self.store.list_messages(&fs.raw).map(Some);
            }
        }
        let uidnext = msgs
            .last()
            .map_or(st.uidnext, |m| st.uidnext.max(m.uid.saturating_add(1)));
        Ok(Some(FolderListing {
            uidvalidity: old.uidvalidity,
            uidnext,
            exists: msgs.len() as u32,
            messages: msgs,
        }))
    }

    /// After a folder changed: drop what belongs to messages that are gone (all of them when
    /// UIDVALIDITY changed), and tell the kernel to forget their entries and the listing.
    fn forget_changed(&self, fs: &FolderState, old: &FolderListing, new: &FolderListing) {
        let renewed = old.uidvalidity != new.uidvalidity;
        if renewed {
            log::warn!(
                "{}: UIDVALIDITY changed {} -> {}; dropping its cache",
                fs.raw,
                old.uidvalidity,
                new.uidvalidity
            );
            lock(&fs.infos).clear();
            self.cache.drop_folder(fs.id);
        }
        let gone: Vec<u32> = old
            .messages
            .iter()
            .map(|m| m.uid)
            .filter(|u| renewed || new.messages.binary_search_by_key(u, |m| m.uid).is_err())
            .collect();
        if !renewed {
            let mut infos = lock(&fs.infos);
            for uid in &gone {
                infos.remove(uid);
            }
        }
        let Some(folder_ino) = lock(&self.inodes).existing(&Node::Folder(fs.id)) else {
            return;
        };
        for uid in gone {
            let node = Node::Message {
                folder: fs.id,
                uidvalidity: old.uidvalidity,
                uid,
            };
            if lock(&self.inodes).existing(&node).is_some() {
                self.invalidate(Invalidation::Entry {
                    parent: folder_ino,
                    name: uid.to_string(),
                });
            }
        }
        self.invalidate(Invalidation::Inode(folder_ino));
    }

    fn invalidate(&self, inv: Invalidation) {
        if let Some(tx) = lock(&self.invalidations).as_ref() {
            let _ = tx.send(inv);
        }
    }

    /// Send kernel invalidations to `tx` from now on.
    pub fn set_invalidator(&self, tx: Sender<Invalidation>) {
        *lock(&self.invalidations) = Some(tx);
    }

    /// Make every listing and the folder list stale, so the next look asks the server.
    pub fn expire_all(&self) {
        lock(&self.tree).fetched = None;
        for fs in lock(&self.folders).values() {
            fs.stale.store(true, Ordering::Relaxed);
        }
    }

    /// Wait up to `max` for the server to push a change in the folder used last (IMAP IDLE),
    /// and refresh that folder when it does, so new mail shows up in about a round trip.
    /// Returns whether something changed. Run it in a loop on a thread of its own.
    pub fn watch_once(&self, max: Duration) -> bool {
        let latest = lock(&self.folders)
            .values()
            .filter(|fs| lock(&fs.listing).is_some())
            .max_by_key(|fs| *lock(&fs.last_access))
            .cloned();
        let Some(fs) = latest else {
            std::thread::sleep(max.min(Duration::from_millis(250)));
            return false;
        };
        match self.store.wait_for_change(&fs.raw, max) {
            Ok(true) => {
                log::debug!("{}: the server reports a change", fs.raw);
                fs.stale.store(true, Ordering::Relaxed);
                if let Err(e) = self.listing(&fs) {
                    log::debug!("{}: refresh failed: {e}", fs.raw);
                }
                true
            }
            Ok(false) => false,
            Err(e) => {
                log::debug!("{}: waiting for changes failed: {e}", fs.raw);
                std::thread::sleep(self.opts.poll_interval);
                false
            }
        }
    }

    /// Refresh the folder list and every folder used in the last `in_use`, so changes made by
    /// other clients reach the kernel without anybody looking. Run it from a timer thread.
    pub fn poll(&self, in_use: Duration) {
        if let Err(e) = self.tree() {
            log::warn!("cannot refresh the folder list: {e}");
        }
        let folders: Vec<Arc<FolderState>> = lock(&self.folders).values().cloned().collect();
        for fs in folders {
            if lock(&fs.last_access).elapsed() < in_use && lock(&fs.listing).is_some() {
                if let Err(e) = self.listing(&fs) {
                    log::debug!("{}: refresh failed: {e}", fs.raw);
                }
            }
        }
    }

    // ---- messages ------------------------------------------------------------------------

    fn ctx<'a>(&'a self, fs: &'a FolderState, uidvalidity: u32, uid: u32) -> MsgCtx<'a> {
        MsgCtx {
            store: self.store.as_ref(),
            cache: &self.cache,
            inflight: &self.inflight,
            parallel: self.opts.parallel_fetches,
            folder: fs.id,
            raw: &fs.raw,
            uidvalidity,
            uid,
        }
    }

    /// The files of a message, fetching the structure of it and its next neighbours if needed.
    fn message_info(
        &self,
        fs: &FolderState,
        uidvalidity: u32,
        uid: u32,
    ) -> FsResult<Arc<MessageInfo>> {
        let listing = self.listing(fs)?;
        if listing.data.uidvalidity != uidvalidity {
            return Err(FsError::Stale);
        }
        if let Some(info) = lock(&fs.infos).get(&uid).cloned() {
            lock(&self.known).promote(&(fs.id, uid));
            return Ok(info);
        }
        let _one_fetch_at_a_time = lock(&fs.structure_lock);
        if let Some(info) = lock(&fs.infos).get(&uid) {
            return Ok(info.clone());
        }
        let msgs = &listing.data.messages;
        let pos = msgs
            .binary_search_by_key(&uid, |m| m.uid)
            .map_err(|_| FsError::NotFound)?;
        let batch: Vec<u32> = {
            let infos = lock(&fs.infos);
            neighbours(pos, msgs.len(), STRUCTURE_BATCH, |i| {
                !infos.contains_key(&msgs[i].uid)
            })
            .into_iter()
            .map(|i| msgs[i].uid)
            .collect()
        };
        let results = self.store.fetch_structures(&fs.raw, uidvalidity, &batch)?;
        let mut good = Vec::with_capacity(results.len());
        let mut broken = Vec::new();
        for (u, r) in results {
            match r {
                Ok(data) => good.push((u, data)),
                Err(e) => {
                    log::warn!("{} UID {u}: cannot read its structure: {e}", fs.raw);
                    broken.push(u);
                }
            }
        }
        let built = build_batch(good, |u| self.ctx(fs, uidvalidity, u));
        let mut infos = lock(&fs.infos);
        for (u, info) in built {
            infos.insert(u, info);
        }
        drop(infos);
        for &u in &broken {
            if let Some(info) = self.header_only(fs, uidvalidity, u) {
                lock(&fs.infos).insert(u, info);
            }
        }
        self.remember(fs.id, &batch);
        lock(&fs.infos)
            .get(&uid)
            .cloned()
            .ok_or_else(|| match batch.contains(&uid) {
                true => FsError::NotFound,
                false => FsError::Io(format!("UID {uid} was not fetched")),
            })
    }

    /// A directory with just HEADER, for a message whose structure the server sent unreadably.
    fn header_only(
        &self,
        fs: &FolderState,
        uidvalidity: u32,
        uid: u32,
    ) -> Option<Arc<MessageInfo>> {
        let ctx = self.ctx(fs, uidvalidity, uid);
        let first = ctx.fetch("HEADER", 0, UNKNOWN_SIZE_GUESS).ok()?;
        let header = ctx.complete("HEADER", first, UNKNOWN_SIZE_GUESS).ok()?;
        let data = crate::store::StructureData {
            bodystructure: crate::sexp::Value::Nil,
            header,
        };
        build_batch(vec![(uid, data)], |u| self.ctx(fs, uidvalidity, u))
            .pop()
            .map(|(_, info)| info)
    }

    /// The decoded size of file `idx` of a message, settling it (for the same file of the
    /// neighbouring messages too, in one batch) if nobody asked before.
    fn file_size(
        &self,
        fs: &FolderState,
        uidvalidity: u32,
        uid: u32,
        info: &Arc<MessageInfo>,
        idx: usize,
    ) -> FsResult<u64> {
        let f = info.files.get(idx).ok_or(FsError::NotFound)?;
        if let Some(&size) = f.size.get() {
            return Ok(size);
        }
        let _one_fetch_at_a_time = lock(&fs.structure_lock);
        if let Some(&size) = f.size.get() {
            return Ok(size);
        }
        let listing = self.listing(fs)?;
        let msgs = &listing.data.messages;
        let batch: Vec<(u32, Arc<MessageInfo>)> = match msgs.binary_search_by_key(&uid, |m| m.uid) {
            Ok(pos) => {
                let infos = lock(&fs.infos);
                let unsettled = |i: usize| {
                    infos.get(&msgs[i].uid).is_some_and(|m| {
                        m.file_index(&f.name)
                            .is_some_and(|k| m.files[k].size.get().is_none())
                    })
                };
                let mut batch = vec![(uid, info.clone())];
                for i in neighbours(pos, msgs.len(), STRUCTURE_BATCH, unsettled)
                    .into_iter()
                    .skip(1)
                {
                    if let Some(m) = infos.get(&msgs[i].uid) {
                        batch.push((msgs[i].uid, m.clone()));
                    }
                }
                batch
            }
            Err(_) => vec![(uid, info.clone())],
        };
        settle(&batch, &f.name, |u| self.ctx(fs, uidvalidity, u))?;
        f.size
            .get()
            .copied()
            .ok_or_else(|| FsError::Io(format!("size of {} of UID {uid} unknown", f.name)))
    }

    /// Note that these messages' structures are in memory; forget the least recently used
    /// beyond `max_message_infos`.
    fn remember(&self, folder: u32, uids: &[u32]) {
        let mut evicted = Vec::new();
        {
            let mut known = lock(&self.known);
            for &uid in uids.iter().rev() {
                known.put((folder, uid), ());
            }
            while known.len() > self.opts.max_message_infos.max(STRUCTURE_BATCH) {
                match known.pop_lru() {
                    Some((key, ())) => evicted.push(key),
                    None => break,
                }
            }
        }
        if evicted.is_empty() {
            return;
        }
        let folders: HashMap<u32, Arc<FolderState>> = lock(&self.folders).clone();
        for (f, uid) in evicted {
            if let Some(state) = folders.get(&f) {
                lock(&state.infos).remove(&uid);
            }
        }
    }

    // ---- attributes ----------------------------------------------------------------------

    fn dir_attr(&self, ino: u64, mtime: i64) -> Attr {
        Attr {
            ino,
            kind: Kind::Dir,
            size: 0,
            mtime,
            perm: 0o555,
            nlink: 2,
            uid: self.opts.uid,
            gid: self.opts.gid,
        }
    }

    fn file_attr(&self, ino: u64, size: u64, mtime: i64) -> Attr {
        Attr {
            ino,
            kind: Kind::File,
            size,
            mtime,
            perm: 0o444,
            nlink: 1,
            uid: self.opts.uid,
            gid: self.opts.gid,
        }
    }

    /// A message known under this UIDVALIDITY: its listing entry.
    fn summary(
        &self,
        folder: u32,
        uidvalidity: u32,
        uid: u32,
    ) -> FsResult<(Arc<FolderState>, MessageSummary)> {
        let fs = self.folder_state(folder)?.ok_or(FsError::NotFound)?;
        let listing = self.listing(&fs)?;
        if listing.data.uidvalidity != uidvalidity {
            return Err(FsError::Stale);
        }
        let summary = *listing.message(uid).ok_or(FsError::NotFound)?;
        Ok((fs, summary))
    }

    pub fn getattr(&self, ino: u64) -> FsResult<(Attr, Ttl)> {
        match self.node(ino)? {
            Node::Root => Ok((self.dir_attr(ino, self.mount_time), Ttl::Short)),
            Node::Folder(id) => {
                self.tree()?.get(id).ok_or(FsError::NotFound)?;
                Ok((self.dir_attr(ino, self.mount_time), Ttl::Short))
            }
            Node::Message {
                folder,
                uidvalidity,
                uid,
            } => {
                let (_, summary) = self.summary(folder, uidvalidity, uid)?;
                Ok((self.dir_attr(ino, summary.internal_date), Ttl::Long))
            }
            Node::File {
                folder,
                uidvalidity,
                uid,
                file,
            } => {
                let (fs, summary) = self.summary(folder, uidvalidity, uid)?;
                let info = self.message_info(&fs, uidvalidity, uid)?;
                let size = self.file_size(&fs, uidvalidity, uid, &info, file as usize)?;
                Ok((self.file_attr(ino, size, summary.internal_date), Ttl::Long))
            }
        }
    }

    pub fn lookup(&self, parent: u64, name: &str) -> FsResult<(Attr, Ttl)> {
        match self.node(parent)? {
            Node::Root => self.lookup_in_folder(ROOT_FOLDER, name),
            Node::Folder(id) => self.lookup_in_folder(id, name),
            Node::Message {
                folder,
                uidvalidity,
                uid,
            } => {
                let (fs, summary) = self.summary(folder, uidvalidity, uid)?;
                let info = self.message_info(&fs, uidvalidity, uid)?;
                let file = info.file_index(name).ok_or(FsError::NotFound)?;
                let ino = self.ino(Node::File {
                    folder,
                    uidvalidity,
                    uid,
                    file: file as u32,
                });
                let size = self.file_size(&fs, uidvalidity, uid, &info, file)?;
                Ok((self.file_attr(ino, size, summary.internal_date), Ttl::Long))
            }
            Node::File { .. } => Err(FsError::NotDir),
        }
    }

    fn lookup_in_folder(&self, id: u32, name: &str) -> FsResult<(Attr, Ttl)> {
        let tree = self.tree()?;
        let folder = tree.get(id).ok_or(FsError::NotFound)?;
        let state = self.folder_state(id)?;
        let listing = match &state {
            Some(fs) => Some(self.listing(fs)?),
            None => None,
        };
        let has_uid = |uid: u32| listing.as_ref().is_some_and(|l| l.message(uid).is_some());
        // A message directory wins over a subfolder of the same name; the subfolder then goes
        // by its escaped name (see names::component_beside_uid).
        if let (Some(uid), Some(l)) = (parse_uid(name), &listing) {
            if let Some(summary) = l.message(uid) {
                let ino = self.ino(Node::Message {
                    folder: id,
                    uidvalidity: l.data.uidvalidity,
                    uid,
                });
                return Ok((self.dir_attr(ino, summary.internal_date), Ttl::Long));
            }
        }
        let child = match folder.children.get(name) {
            Some(&child) => Some(child),
            None => folder_level(name)
                .filter(|plain| parse_uid(plain).is_some_and(has_uid))
                .and_then(|plain| folder.children.get(&plain).copied()),
        };
        let child = child.ok_or(FsError::NotFound)?;
        let ino = self.ino(Node::Folder(child));
        Ok((self.dir_attr(ino, self.mount_time), Ttl::Short))
    }

    /// Attributes of directory entries (from [`readdir`](Self::readdir) of `parent`), for
    /// READDIRPLUS: one look at the folder's listing serves all its message directories. `None`
    /// for an entry that is gone.
    pub fn attrs_of(&self, parent: u64, entries: &[DirEntry]) -> Vec<Option<(Attr, Ttl)>> {
        let folder = match self.node(parent) {
            Ok(Node::Root) => Some(ROOT_FOLDER),
            Ok(Node::Folder(id)) => Some(id),
            _ => None,
        };
        let listing = folder
            .and_then(|id| self.folder_state(id).ok().flatten())
            .and_then(|fs| self.listing(&fs).ok());
        entries
            .iter()
            .map(|e| {
                if folder.is_none() || e.name == "." || e.name == ".." {
                    return match e.name.as_str() {
                        "." | ".." => self.getattr(e.ino).ok(),
                        name => self.lookup(parent, name).ok(),
                    };
                }
                match self.node(e.ino).ok()? {
                    Node::Message { uid, .. } => {
                        let summary = listing.as_ref()?.message(uid)?;
                        Some((self.dir_attr(e.ino, summary.internal_date), Ttl::Long))
                    }
                    Node::Folder(_) => Some((self.dir_attr(e.ino, self.mount_time), Ttl::Short)),
                    _ => None,
                }
            })
            .collect()
    }

    /// Every entry of a directory, `.` and `..` first.
    pub fn readdir(&self, ino: u64) -> FsResult<Vec<DirEntry>> {
        let node = self.node(ino)?;
        let mut out = vec![
            DirEntry {
                ino,
                kind: Kind::Dir,
                name: ".".into(),
            },
            DirEntry {
                ino: ROOT_INO,
                kind: Kind::Dir,
                name: "..".into(),
            },
        ];
        match node {
            Node::Root | Node::Folder(_) => {
                let id = match node {
                    Node::Folder(id) => id,
                    _ => ROOT_FOLDER,
                };
                let tree = self.tree()?;
                let folder = tree.get(id).ok_or(FsError::NotFound)?;
                let listing = match self.folder_state(id)? {
                    Some(fs) => Some(self.listing(&fs)?),
                    None => None,
                };
                for (name, &child) in &folder.children {
                    let beside_message = parse_uid(name).is_some_and(|uid| {
                        listing.as_ref().is_some_and(|l| l.message(uid).is_some())
                    });
                    out.push(DirEntry {
                        ino: self.ino(Node::Folder(child)),
                        kind: Kind::Dir,
                        name: match beside_message {
                            true => component_beside_uid(name),
                            false => name.clone(),
                        },
                    });
                }
                if let Some(listing) = listing {
                    let uidvalidity = listing.data.uidvalidity;
                    let mut inodes = lock(&self.inodes);
                    for m in &listing.data.messages {
                        out.push(DirEntry {
                            ino: inodes.ino_of(Node::Message {
                                folder: id,
                                uidvalidity,
                                uid: m.uid,
                            }),
                            kind: Kind::Dir,
                            name: m.uid.to_string(),
                        });
                    }
                }
            }
            Node::Message {
                folder,
                uidvalidity,
                uid,
            } => {
                let (fs, _) = self.summary(folder, uidvalidity, uid)?;
                let info = self.message_info(&fs, uidvalidity, uid)?;
                for (i, f) in info.files.iter().enumerate() {
                    out.push(DirEntry {
                        ino: self.ino(Node::File {
                            folder,
                            uidvalidity,
                            uid,
                            file: i as u32,
                        }),
                        kind: Kind::File,
                        name: f.name.clone(),
                    });
                }
            }
            Node::File { .. } => return Err(FsError::NotDir),
        }
        Ok(out)
    }

    // ---- reading -------------------------------------------------------------------------

    /// Open a file for reading; the handle tracks sequential access for read-ahead.
    pub fn open(&self, ino: u64) -> FsResult<u64> {
        match self.node(ino)? {
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
    }

    /// Up to `size` bytes at `offset`; fewer only at the end of the file.
    pub fn read(&self, ino: u64, fh: u64, offset: u64, size: u32) -> FsResult<Vec<u8>> {
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
        let queued = ahead.is_some_and(|(from, to)| {
            self.queue_readahead(ReadAhead {
                folder,
                uidvalidity,
                uid,
                file,
                from,
                to,
            })
        });
        // Without background workers (tests), fetch the window along with the read.
        let prefetch_end = match (ahead, queued) {
            (Some((_, to)), false) => to,
            _ => end,
        };
        let result = ctx.read(file, f, offset, end, prefetch_end);
        if result == Err(FsError::NotFound) {
            // The server no longer has it: look again at the folder on the next access.
            fs.stale.store(true, Ordering::Relaxed);
        }
        result
    }

    /// Fetch the first chunk of file `name` of each of `uids` (where not cached yet) in one
    /// batch. Best effort: a failure only means the reads fetch for themselves.
    fn prefetch_starts(&self, fs: &FolderState, uidvalidity: u32, name: &str, uids: &[u32]) {
        struct Job {
            uid: u32,
            info: Arc<MessageInfo>,
            file: usize,
            len: u64,
            plan: Option<(Locator, RangePlan)>,
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
            let key = ctx.key(file as u32, 0);
            let Ok(size) = self.file_size(fs, uidvalidity, uid, &info, file) else {
                continue;
            };
            let len = size.min(CHUNK);
            if len == 0 || self.cache.get(&key).is_some() {
                continue;
            }
            let locator = f.locator.read().unwrap_or_else(|e| e.into_inner()).clone();
            // Parts served as stored all ask for the same length, so one command covers them.
            let (offset, fetch_len, plan) = match locator {
                Locator::Identity { .. } => (0, CHUNK, None),
                other => {
                    let plan = other.plan(0, len);
                    (
                        plan.enc_start,
                        plan.enc_end - plan.enc_start,
                        Some((other, plan)),
                    )
                }
            };
            reqs.push(RangeRequest {
                uid,
                section: f.section.clone(),
                offset,
                len: fetch_len,
            });
            keys.push(key);
            jobs.push(Job {
                uid,
                info: info.clone(),
                file,
                len,
                plan,
            });
        }
        if reqs.is_empty() {
            return;
        }
        let claimed = self.inflight.claim(&keys);
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
                        None => Some(bytes),
                        Some((locator, plan)) => locator.decode(plan, &bytes),
                    };
                    let Some(decoded) = decoded.filter(|d| d.len() as u64 >= job.len) else {
                        continue;
                    };
                    let f = &job.info.files[job.file];
                    self.ctx(fs, uidvalidity, job.uid).cache_decoded(
                        job.file as u32,
                        0,
                        &decoded[..job.len as usize],
                        f.size(),
                    );
                }
            }
            Err(e) => log::debug!("{}: read-ahead across messages failed: {e}", fs.raw),
        }
        self.inflight.release(&keys_mine);
    }

    /// What to fetch beyond a read, as `[from, to)`: nothing for random access; for reads that
    /// push the handle's frontier forward, a window that starts at one chunk and doubles up to
    /// MAX_READAHEAD, so `head` stays cheap and `cat` needs few round trips. Reads behind the
    /// frontier (the kernel's own read-ahead arrives out of order) and re-reads neither reset
    /// nor trigger anything; a jump far away starts over.
    fn readahead(&self, fh: u64, offset: u64, end: u64) -> Option<(u64, u64)> {
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
        state.window = match (state.next, state.window) {
            (0, _) => 0,
            (_, 0) => CHUNK,
            (_, w) => (w * 2).min(MAX_READAHEAD),
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
