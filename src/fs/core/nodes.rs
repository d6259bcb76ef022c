//! The part of the core that faces the kernel's names: inode numbers of every node shown, and the
//! channel that tells the kernel to forget entries. Shared (through an `Arc`) by `MailFs` and
//! the `Folders` part, which invalidates what a refresh removed.

use std::sync::mpsc::Sender;
use std::sync::{Mutex, MutexGuard};

use crate::fs::inodes::{InodeTable, Node};
use crate::fs::{FsError, FsResult, Invalidation};
use crate::sync::lock;

pub(super) struct Nodes {
    inodes: Mutex<InodeTable>,
    /// Where to tell the kernel to forget entries (a thread outside request handlers does it).
    invalidations: Mutex<Option<Sender<Invalidation>>>,
}

impl Nodes {
    pub fn new() -> Nodes {
        Nodes {
            inodes: Mutex::new(InodeTable::new()),
            invalidations: Mutex::new(None),
        }
    }

    pub fn node(&self, ino: u64) -> FsResult<Node> {
        lock(&self.inodes).node(ino).ok_or(FsError::NotFound)
    }

    pub fn ino(&self, node: Node) -> u64 {
        lock(&self.inodes).ino_of(node)
    }

    /// The inode of a node if the kernel may know it (it was given out before).
    pub fn existing(&self, node: &Node) -> Option<u64> {
        lock(&self.inodes).existing(node)
    }

    /// The table itself, to number many entries under one lock (a directory listing).
    pub fn table(&self) -> MutexGuard<'_, InodeTable> {
        lock(&self.inodes)
    }

    pub fn invalidate(&self, inv: Invalidation) {
        if let Some(tx) = lock(&self.invalidations).as_ref() {
            let _ = tx.send(inv);
        }
    }

    /// The channel to the kernel, for a thread that tells it later.
    pub fn invalidator(&self) -> Option<Sender<Invalidation>> {
        lock(&self.invalidations).clone()
    }

    pub fn set_invalidator(&self, tx: Sender<Invalidation>) {
        *lock(&self.invalidations) = Some(tx);
    }
}
