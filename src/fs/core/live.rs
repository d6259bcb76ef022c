//! The folders part of the core ([`Folders`]): the folder list and folder listings, refreshed
//! cheaply (STATUS, new UIDs, UID SEARCH on expunge), pushed by IDLE or polled, and the kernel
//! told what is gone. It owns the per-folder state ([`FolderState`]) the other parts work in.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::fs::content::ContentFetcher;
use crate::fs::folders::{FolderIds, FolderTree, ROOT_FOLDER};
use crate::fs::inodes::Node;
use crate::fs::message::MessageInfo;
use crate::fs::readahead::{MetaWalk, Walk};
use crate::fs::{FsError, FsResult, Invalidation};
use crate::store::{FolderChanges, FolderListing, MailStore, MessageSummary, StoreError};
use crate::sync::lock;

use super::browse::MsgExtras;
use super::nodes::Nodes;
use super::release_free_memory;
use super::summary::{FolderFlags, Summary};

/// The folders part: the folder tree from LIST, the state of every selectable folder used so
/// far (listing, message directories, locks, walks, flags, INDEX), and their refresh.
pub(super) struct Folders {
    store: Arc<dyn MailStore>,
    /// How long a listing (and the folder list) is trusted before asking the server again.
    poll_interval: Duration,
    /// To tell the kernel what a refresh removed.
    nodes: Arc<Nodes>,
    /// To drop a folder's cached content when its UIDVALIDITY changes.
    content: Arc<ContentFetcher>,
    tree: Mutex<TreeState>,
    /// Selectable folders by id.
    states: Mutex<HashMap<u32, Arc<FolderState>>>,
}

#[derive(Default)]
struct TreeState {
    pub tree: Arc<FolderTree>,
    pub ids: FolderIds,
    pub fetched: Option<Instant>,
}

pub(super) struct FolderState {
    pub id: u32,
    pub raw: String,
    pub listing: Mutex<Option<Arc<Listing>>>,
    /// Message directories of the current UIDVALIDITY, by UID.
    pub infos: Mutex<HashMap<u32, Arc<MessageInfo>>>,
    /// Serialises structure fetches so a batch is fetched once, not by every waiting reader.
    pub structure_lock: Mutex<()>,
    /// The same for size settling (apart, so a walk's next structures are fetched while the
    /// sizes of the current ones are settled).
    pub settle_lock: Mutex<()>,
    /// Set to make the next access ask the server, whatever the listing's age.
    pub stale: AtomicBool,
    /// When a request last touched the folder: the poller keeps folders in use fresh.
    pub last_access: Mutex<Instant>,
    /// One file name read across many messages (`grep x Folder/*/1`).
    pub walk: Mutex<Walk>,
    /// Message directories walked in order (`find`, `ls -lR`).
    pub meta_walk: Mutex<MetaWalk>,
    /// Generated entries of the message directories in `infos` (kept and dropped with them).
    pub extras: Mutex<HashMap<u32, Arc<MsgExtras>>>,
    /// Flags of every message, once someone looked at FLAGS or INDEX.
    pub flags: Mutex<Option<Arc<FolderFlags>>>,
    /// INDEX, once someone looked at it.
    pub summary: Mutex<Option<Arc<Summary>>>,
    /// HIGHESTMODSEQ at the last STATUS (0: unknown or no CONDSTORE).
    pub modseq: AtomicU64,
    /// When a change of our own (`--read-write`) last reached this folder: IDLE echoes it
    /// back, and the listing already shows it (see `watch_once`).
    pub own_change: Mutex<Option<Instant>>,
}

impl FolderState {
    /// A change of our own was made here (its listing edited or marked stale already).
    pub fn note_own_change(&self) {
        *lock(&self.own_change) = Some(Instant::now());
    }

    /// How long until our own changes have paused for OWN_QUIET (zero when they have).
    fn own_changes_busy(&self) -> Duration {
        match *lock(&self.own_change) {
            Some(t) => OWN_QUIET.saturating_sub(t.elapsed()),
            None => Duration::ZERO,
        }
    }
}

/// IDLE reports our own changes too (each move, each FLAGS write), and looking at the folder
/// after each would cost a STATUS and more per change, and hold the listing while
/// lookups wait. A report that comes while we are changing the folder is acted on once our
/// changes have paused this long (or after a poll interval at most): others' changes then show.
const OWN_QUIET: Duration = Duration::from_millis(700);

pub(super) struct Listing {
    pub data: FolderListing,
    /// The UIDs of `data.messages`, for walk detection.
    pub uids: Vec<u32>,
    pub fetched: Instant,
}

impl Listing {
    pub fn new(data: FolderListing) -> Listing {
        Listing {
            uids: data.messages.iter().map(|m| m.uid).collect(),
            data,
            fetched: Instant::now(),
        }
    }

    pub fn message(&self, uid: u32) -> Option<&MessageSummary> {
        let msgs = &self.data.messages;
        msgs.binary_search_by_key(&uid, |m| m.uid)
            .ok()
            .map(|i| &msgs[i])
    }
}

impl Folders {
    pub fn new(
        store: Arc<dyn MailStore>,
        poll_interval: Duration,
        nodes: Arc<Nodes>,
        content: Arc<ContentFetcher>,
    ) -> Folders {
        Folders {
            store,
            poll_interval,
            nodes,
            content,
            tree: Mutex::new(TreeState::default()),
            states: Mutex::new(HashMap::new()),
        }
    }

    /// Ask the server for the folder list at the next look (after a change made here).
    pub fn refetch_tree(&self) {
        lock(&self.tree).fetched = None;
    }

    /// A folder was renamed here: its id (and its subfolders') follow it to `to_levels`, and
    /// their states, which hold the old names, are made afresh.
    pub fn renamed(&self, tree: &FolderTree, from_levels: &[String], to_levels: &[String]) {
        lock(&self.tree).ids.rename(from_levels, to_levels);
        let mut states = lock(&self.states);
        for f in tree.ids_under(from_levels) {
            states.remove(&f);
        }
    }

    /// Every folder state made so far.
    pub fn states(&self) -> HashMap<u32, Arc<FolderState>> {
        lock(&self.states).clone()
    }

    pub fn tree(&self) -> FsResult<Arc<FolderTree>> {
        let mut state = lock(&self.tree);
        let fresh = state
            .fetched
            .is_some_and(|t| t.elapsed() < self.poll_interval);
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
    pub fn forget_removed_folders(&self, old: &FolderTree, new: &FolderTree) {
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
            let Some(ino) = self.nodes.existing(&node) else {
                continue;
            };
            for name in folder.children.keys() {
                if now.is_none_or(|c| !c.contains_key(name)) {
                    self.nodes.invalidate(Invalidation::Entry {
                        parent: ino,
                        name: name.clone(),
                    });
                }
            }
            self.nodes.invalidate(Invalidation::Inode(ino));
        }
        let gone: Vec<u32> = old
            .folders
            .keys()
            .filter(|id| !new.folders.contains_key(id))
            .copied()
            .collect();
        let mut folders = lock(&self.states);
        for id in gone {
            folders.remove(&id);
        }
    }

    /// The state of a selectable folder, or `None` for a directory-only folder.
    pub fn folder_state(&self, id: u32) -> FsResult<Option<Arc<FolderState>>> {
        let tree = self.tree()?;
        let folder = tree.get(id).ok_or(FsError::NotFound)?;
        let Some(raw) = &folder.raw else {
            return Ok(None);
        };
        let mut folders = lock(&self.states);
        let state = folders.entry(id).or_insert_with(|| {
            Arc::new(FolderState {
                id,
                raw: raw.clone(),
                listing: Mutex::new(None),
                infos: Mutex::new(HashMap::new()),
                structure_lock: Mutex::new(()),
                settle_lock: Mutex::new(()),
                stale: AtomicBool::new(false),
                last_access: Mutex::new(Instant::now()),
                walk: Mutex::new(Walk::default()),
                meta_walk: Mutex::new(MetaWalk::default()),
                extras: Mutex::new(HashMap::new()),
                flags: Mutex::new(None),
                summary: Mutex::new(None),
                modseq: AtomicU64::new(0),
                own_change: Mutex::new(None),
            })
        });
        *lock(&state.last_access) = Instant::now();
        Ok(Some(state.clone()))
    }

    pub fn listing(&self, fs: &FolderState) -> FsResult<Arc<Listing>> {
        let mut guard = lock(&fs.listing);
        let forced = fs.stale.swap(false, Ordering::Relaxed);
        if let Some(l) = guard.as_ref() {
            if !forced && l.fetched.elapsed() < self.poll_interval {
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

    /// The folder's current listing, or `None` if it is unchanged since `old`: the store
    /// says what changed (IMAP: a STATUS, plus only the new messages, and the UIDs when some
    /// were expunged).
    pub fn fetch_listing(
        &self,
        fs: &FolderState,
        old: Option<&Listing>,
    ) -> Result<Option<FolderListing>, StoreError> {
        let old = old.map(|l| &l.data);
        let r = self.store.refresh(&fs.raw, old)?;
        fs.modseq
            .store(r.highest_modseq.unwrap_or(0), Ordering::Relaxed);
        match (r.changes, old) {
            (FolderChanges::Relisted(l), _) => Ok(Some(l)),
            (changes, Some(old)) => Ok(changes.apply(old)),
            // Changes without a listing to apply them to: a store that broke its contract.
            (_, None) => self.store.list_messages(&fs.raw).map(Some),
        }
    }

    /// After a folder changed: drop what belongs to messages that are gone (all of them when
    /// UIDVALIDITY changed), and tell the kernel to forget their entries and the listing.
    pub fn forget_changed(&self, fs: &FolderState, old: &FolderListing, new: &FolderListing) {
        let renewed = old.uidvalidity != new.uidvalidity;
        if renewed {
            log::warn!(
                "{}: UIDVALIDITY changed {} -> {}; dropping its cache",
                fs.raw,
                old.uidvalidity,
                new.uidvalidity
            );
            let mut infos = lock(&fs.infos);
            infos.clear();
            lock(&fs.extras).clear();
            drop(infos);
            self.content.cache.drop_folder(fs.id);
        }
        let gone: Vec<u32> = old
            .messages
            .iter()
            .map(|m| m.uid)
            .filter(|u| renewed || new.messages.binary_search_by_key(u, |m| m.uid).is_err())
            .collect();
        if !renewed {
            let mut infos = lock(&fs.infos);
            let mut extras = lock(&fs.extras);
            for uid in &gone {
                infos.remove(uid);
                extras.remove(uid);
            }
        }
        let Some(folder_ino) = self.nodes.existing(&Node::Folder(fs.id)) else {
            return;
        };
        for uid in gone {
            let node = Node::Message {
                folder: fs.id,
                uidvalidity: old.uidvalidity,
                uid,
            };
            if self.nodes.existing(&node).is_some() {
                self.nodes.invalidate(Invalidation::Entry {
                    parent: folder_ino,
                    name: uid.to_string(),
                });
            }
        }
        self.nodes.invalidate(Invalidation::Inode(folder_ino));
    }

    /// Make every listing and the folder list stale, so the next look asks the server.
    pub fn expire_all(&self) {
        lock(&self.tree).fetched = None;
        for fs in lock(&self.states).values() {
            fs.stale.store(true, Ordering::Relaxed);
        }
    }

    /// Wait up to `max` for the server to push a change in the folder used last (IMAP IDLE),
    /// and refresh that folder when it does, so new mail shows up in about a round trip.
    /// Returns whether something changed. Run it in a loop on a thread of its own.
    pub fn watch_once(&self, max: Duration) -> bool {
        let latest = lock(&self.states)
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
                let until = Instant::now() + self.poll_interval;
                loop {
                    let wait = fs.own_changes_busy();
                    if wait.is_zero() || Instant::now() >= until {
                        break;
                    }
                    std::thread::sleep(wait.min(until.saturating_duration_since(Instant::now())));
                }
                fs.stale.store(true, Ordering::Relaxed);
                if let Err(e) = self.listing(&fs) {
                    log::debug!("{}: refresh failed: {e}", fs.raw);
                }
                true
            }
            Ok(false) => false,
            Err(e) => {
                log::debug!("{}: waiting for changes failed: {e}", fs.raw);
                std::thread::sleep(self.poll_interval);
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
        let folders: Vec<Arc<FolderState>> = lock(&self.states).values().cloned().collect();
        for fs in folders {
            if lock(&fs.last_access).elapsed() < in_use && lock(&fs.listing).is_some() {
                if let Err(e) = self.listing(&fs) {
                    log::debug!("{}: refresh failed: {e}", fs.raw);
                }
            }
        }
    }
}
