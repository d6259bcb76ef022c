//! Following the mailbox: the folder list and folder listings, refreshed cheaply (STATUS, new
//! UIDs, UID SEARCH on expunge), pushed by IDLE or polled, and the kernel told what is gone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::fs::folders::{FolderTree, ROOT_FOLDER};
use crate::fs::inodes::Node;
use crate::fs::readahead::{MetaWalk, Walk};
use crate::fs::{FsError, FsResult, Invalidation};
use crate::store::{FolderChanges, FolderListing, StoreError};
use crate::sync::lock;

use super::{release_free_memory, FolderState, Listing, MailFs};

impl MailFs {
    pub(super) fn tree(&self) -> FsResult<Arc<FolderTree>> {
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
    pub(super) fn forget_removed_folders(&self, old: &FolderTree, new: &FolderTree) {
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
    pub(super) fn folder_state(&self, id: u32) -> FsResult<Option<Arc<FolderState>>> {
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
                settle_lock: Mutex::new(()),
                stale: AtomicBool::new(false),
                last_access: Mutex::new(Instant::now()),
                walk: Mutex::new(Walk::default()),
                meta_walk: Mutex::new(MetaWalk::default()),
                extras: Mutex::new(HashMap::new()),
                flags: Mutex::new(None),
                summary: Mutex::new(None),
                modseq: AtomicU64::new(0),
            })
        });
        *lock(&state.last_access) = Instant::now();
        Ok(Some(state.clone()))
    }

    pub(super) fn listing(&self, fs: &FolderState) -> FsResult<Arc<Listing>> {
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

    /// The folder's current listing, or `None` if it is unchanged since `old`: the store
    /// says what changed (IMAP: a STATUS, plus only the new messages, and the UIDs when some
    /// were expunged).
    pub(super) fn fetch_listing(
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
    pub(super) fn forget_changed(
        &self,
        fs: &FolderState,
        old: &FolderListing,
        new: &FolderListing,
    ) {
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

    pub(super) fn invalidate(&self, inv: Invalidation) {
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
}
