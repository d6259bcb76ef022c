//! Deleting and moving messages on a read-write mount.
//!
//! `rm -r Folder/2703` first unlinks every file in the message directory, then removes the
//! directory. Unlinking a file inside a message directory succeeds and changes nothing (the
//! file stays: a message's parts cannot be removed one by one); the `rmdir` of the message
//! directory is the deletion: a move to the Trash folder (the one LIST marks `\Trash`, else a
//! top-level folder named `Trash`), or, in the Trash itself or without one, `\Deleted` and
//! `UID EXPUNGE` of that one UID. `mv Folder/2703 Other/` is a move (`UID MOVE`, or the COPY
//! fallback); the message then shows in `Other` under the UID the server gave it.

use std::sync::atomic::Ordering;

use super::super::MailFs;
use crate::fs::core::FolderState;
use crate::fs::core::Listing;
use crate::fs::inodes::Node;
use crate::fs::FsError;
use crate::fs::FsResult;
use crate::fs::Invalidation;
use crate::store::FolderListing;
use crate::store::MessageSummary;
use crate::sync::lock;
use std::sync::Arc;
use std::time::Duration;

/// How long after a rename the kernel is told to forget the name it was given (it moves the
/// entry itself once the rename returns; the message shows under its new UID instead).
const AFTER_RENAME: Duration = Duration::from_millis(200);

impl MailFs {
    /// `unlink`: inside a message directory a no-op that lets `rm -r` through (see above);
    /// anything else cannot be removed.
    pub fn unlink(&self, parent: u64, name: &str) -> FsResult<()> {
        self.check_writable()?;
        self.lookup(parent, name)?;
        match self.node(parent)? {
            Node::Message { .. } => Ok(()),
            _ => {
                log::warn!("unlink {name}: only messages (directories) can be deleted");
                Err(FsError::NotPermitted)
            }
        }
    }

    /// A move done: the cached listings are edited in place (the UID leaves the source, and
    /// joins the target under its new UID) rather than asked for again, so `mv` of many
    /// messages costs one round trip each, not a listing of both folders each. A listing that
    /// cannot be edited (none yet, or no new UID known) is asked for at the next look.
    fn listing_moved(
        &self,
        from: &FolderState,
        to: &FolderState,
        moved: MessageSummary,
        new_uid: Option<u32>,
    ) {
        let edit = |fs: &FolderState, f: &dyn Fn(&mut FolderListing) -> bool| {
            let mut guard = lock(&fs.listing);
            let done = match guard.as_ref() {
                Some(l) => {
                    let mut data = l.data.clone();
                    let ok = f(&mut data);
                    if ok {
                        let fetched = l.fetched;
                        let mut new = Listing::new(data);
                        new.fetched = fetched;
                        *guard = Some(Arc::new(new));
                    }
                    ok
                }
                None => false,
            };
            drop(guard);
            fs.note_own_change();
            if !done {
                fs.stale.store(true, Ordering::Relaxed);
            }
            *lock(&fs.flags) = None;
            if let Some(ino) = self.nodes.existing(&Node::Folder(fs.id)) {
                self.invalidate(Invalidation::Inode(ino));
            }
        };
        edit(from, &|d| {
            d.messages.retain(|m| m.uid != moved.uid);
            d.exists = d.messages.len() as u32;
            true
        });
        edit(to, &|d| {
            let Some(uid) = new_uid else {
                return false;
            };
            match d.messages.binary_search_by_key(&uid, |m| m.uid) {
                Ok(_) => {}
                Err(i) => d.messages.insert(i, MessageSummary { uid, ..moved }),
            }
            d.exists = d.messages.len() as u32;
            d.uidnext = d.uidnext.max(uid.saturating_add(1));
            true
        });
    }

    /// The folder deleted messages go to: LIST's `\Trash`, else a top-level `Trash`.
    fn trash_folder(&self) -> FsResult<Option<String>> {
        let entries = self.store.list_folders()?;
        let marked = entries.iter().find(|e| {
            e.selectable
                && e.attributes
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case("\\Trash"))
        });
        let named = entries
            .iter()
            .find(|e| e.selectable && e.name.eq_ignore_ascii_case("Trash"));
        Ok(marked.or(named).map(|e| e.name.clone()))
    }

    /// Listings of these folders are out of date: ask the server at the next look, and tell
    /// the kernel.
    pub(in crate::fs::core) fn listings_changed(&self, folders: &[&FolderState]) {
        for fs in folders {
            fs.note_own_change();
            fs.stale.store(true, Ordering::Relaxed);
            *lock(&fs.flags) = None;
            if let Some(ino) = self.nodes.existing(&Node::Folder(fs.id)) {
                self.invalidate(Invalidation::Inode(ino));
            }
        }
    }

    /// `rmdir` of a message directory: to the Trash, or expunged there (see above).
    pub(super) fn delete_message(&self, folder: u32, uidvalidity: u32, uid: u32) -> FsResult<()> {
        let (fs, _) = self.summary(folder, uidvalidity, uid)?;
        match self.trash_folder()? {
            Some(trash) if trash != fs.raw => {
                log::info!("{}: UID {uid}: delete = UID MOVE to {trash}", fs.raw);
                self.store
                    .move_messages(&fs.raw, uidvalidity, &[uid], &trash)
                    .inspect_err(|_| self.listings_changed(&[&fs]))?;
                let tree = self.tree()?;
                let trash_state = (tree.folders.iter())
                    .find(|(_, f)| f.raw.as_deref() == Some(trash.as_str()))
                    .map(|(&id, _)| id);
                match trash_state.map(|id| self.folder_state(id)) {
                    Some(Ok(Some(t))) => self.listings_changed(&[&fs, &t]),
                    _ => self.listings_changed(&[&fs]),
                }
            }
            _ => {
                log::info!("{}: UID {uid}: delete = \\Deleted + UID EXPUNGE", fs.raw);
                self.store
                    .expunge_messages(&fs.raw, uidvalidity, &[uid])
                    .inspect_err(|_| self.listings_changed(&[&fs]))?;
                self.listings_changed(&[&fs]);
            }
        }
        Ok(())
    }

    /// `mv` of a message directory into another folder's directory.
    pub(super) fn move_message(
        &self,
        (folder, uidvalidity, uid): (u32, u32, u32),
        newparent: u64,
        newname: &str,
    ) -> FsResult<()> {
        let (fs, summary) = self.summary(folder, uidvalidity, uid)?;
        let to = match self.node(newparent)? {
            Node::Folder(id) if id != folder => id,
            _ => {
                log::warn!(
                    "{}: UID {uid}: a message moves only into another folder",
                    fs.raw
                );
                return Err(FsError::NotPermitted);
            }
        };
        let target = self.folder_state(to)?.ok_or_else(|| {
            log::warn!(
                "{}: UID {uid}: the target holds no messages (\\Noselect)",
                fs.raw
            );
            FsError::NotPermitted
        })?;
        log::info!("{}: UID {uid}: move to {}", fs.raw, target.raw);
        // IDLE may echo the move before its answer comes (see FolderState::own_change).
        fs.note_own_change();
        target.note_own_change();
        let map = self
            .store
            .move_messages(&fs.raw, uidvalidity, &[uid], &target.raw)
            // A cut may have left it done or not: both folders are asked again.
            .inspect_err(|_| self.listings_changed(&[&fs, &target]))?;
        self.note_moved((folder, uidvalidity, uid), summary.internal_date);
        if let Some((_, new)) = map.first() {
            log::info!("{}: UID {uid} is now {} UID {new}", fs.raw, target.raw);
        }
        self.listing_moved(&fs, &target, summary, map.first().map(|m| m.1));
        // The name given is not kept: once the kernel has moved its entry, make it forget it.
        if let Some(tx) = self.nodes.invalidator() {
            let name = newname.to_string();
            std::thread::spawn(move || {
                std::thread::sleep(AFTER_RENAME);
                let _ = tx.send(Invalidation::Entry {
                    parent: newparent,
                    name,
                });
            });
        }
        Ok(())
    }
}
