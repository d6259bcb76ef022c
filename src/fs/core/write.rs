//! Changes, on a `--read-write` mount only: without it every change is EROFS and nothing but
//! reads reaches the store. A message's `FLAGS` file takes a line of flags: `\Seen \Flagged`
//! replaces the set, `+\Seen -\Flagged` adds and removes. What is written is kept per open
//! handle and applied at the first flush (close) after it, so `close` (the shell's `>`)
//! reports a refusal; a handle released without a flush applies it at release.

mod append;
mod flags;
mod folders;
mod messages;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use super::MailFs;
use crate::fs::inodes::Node;
use crate::fs::layout::Extra;
use crate::fs::Attr;
use crate::fs::FsError;
use crate::fs::FsResult;
use crate::fs::Ttl;
use crate::sync::lock;

/// Most bytes one FLAGS write may hold.
const MAX_FLAGS_WRITE: usize = 4096;

/// What a read-write mount keeps: whether changes are allowed, and the open writes.
#[derive(Default)]
pub(super) struct Writes {
    enabled: AtomicBool,
    /// Handles open for writing: the node and what was written since the last apply.
    open: Mutex<HashMap<u64, Pending>>,
    /// (folder, UID) → the mod-sequence our own last STORE gave the message (CONDSTORE), so
    /// a second replace of the same message is not mistaken for someone else's change.
    own_modseq: Mutex<HashMap<(u32, u32), u64>>,
    /// Messages moved away by `mv` (folder, UIDVALIDITY, UID) → INTERNALDATE: the kernel keeps
    /// the moved directory's inode under the name given until told to forget it, and `mv`
    /// stats it right after the rename.
    moved: Mutex<HashMap<(u32, u32, u32), i64>>,
    /// Files being written in folder directories (new mail, see `append`), by handle.
    new_files: Mutex<HashMap<u64, append::NewFile>>,
}

/// Moved messages remembered (see `Writes::moved`); beyond this the oldest are dropped.
const MAX_MOVED: usize = 100_000;

struct Pending {
    node: Node,
    buf: Vec<u8>,
    dirty: bool,
}

impl MailFs {
    /// Allow changes (`--read-write`). Off by default.
    pub fn set_read_write(&self, on: bool) {
        self.writes.enabled.store(on, Ordering::Relaxed);
    }

    pub fn read_write(&self) -> bool {
        self.writes.enabled.load(Ordering::Relaxed)
    }

    /// A message directory `mv` moved away still answers `stat` for a moment (see `moved`).
    pub(super) fn moved_attr(&self, ino: u64, key: (u32, u32, u32)) -> Option<(Attr, Ttl)> {
        let date = *lock(&self.writes.moved).get(&key)?;
        Some((self.dir_attr(ino, date), Ttl::Short))
    }

    pub(super) fn note_moved(&self, key: (u32, u32, u32), internal_date: i64) {
        let mut moved = lock(&self.writes.moved);
        if moved.len() >= MAX_MOVED {
            moved.clear();
        }
        moved.insert(key, internal_date);
    }

    /// The per-operation check: EROFS unless the mount is read-write.
    pub(super) fn check_writable(&self) -> FsResult<()> {
        match self.read_write() {
            true => Ok(()),
            false => Err(FsError::ReadOnly),
        }
    }

    /// The node of a message's FLAGS file, or why it cannot be written.
    fn flags_node(&self, ino: u64) -> FsResult<Node> {
        let node = self.node(ino)?;
        match node {
            Node::Extra {
                folder,
                uidvalidity,
                uid,
                item,
            } => {
                if item == super::browse::FLAGS_ITEM {
                    // The message must still be there; its structure is not needed.
                    self.summary(folder, uidvalidity, uid)?;
                    return Ok(node);
                }
                let (_, extras) = self.extras_of(folder, uidvalidity, uid)?;
                match extras.items.get(item as usize) {
                    Some((_, Extra::Flags)) => Ok(node),
                    Some(_) => Err(FsError::Denied),
                    None => Err(FsError::NotFound),
                }
            }
            Node::Root | Node::Folder(_) | Node::Message { .. } | Node::SearchDir(_) => {
                Err(FsError::IsDir)
            }
            _ => Err(FsError::Denied),
        }
    }

    /// Open a file for writing (only a message's FLAGS can be); `read` also lets the handle
    /// read what the file shows now.
    pub fn open_write(&self, ino: u64, read: bool) -> FsResult<u64> {
        self.check_writable()?;
        let node = self.flags_node(ino)?;
        let fh = match read {
            true => self.open(ino)?,
            false => self.handles.open_bare(),
        };
        lock(&self.writes.open).insert(
            fh,
            Pending {
                node,
                buf: Vec::new(),
                dirty: false,
            },
        );
        Ok(fh)
    }

    /// `truncate`/`setattr(size)`: only FLAGS to 0 (the shell's `>` without atomic O_TRUNC);
    /// the line written next is what counts.
    pub fn truncate(&self, ino: u64, size: u64) -> FsResult<(Attr, Ttl)> {
        self.check_writable()?;
        if let Some(r) = self.new_file_truncate(ino, size) {
            return r.and_then(|_| self.getattr(ino));
        }
        self.flags_node(ino)?;
        if size != 0 {
            return Err(FsError::Invalid("FLAGS takes a whole line".into()));
        }
        self.getattr(ino)
    }

    /// `setattr` of times or modes: nothing is kept; refused on a read-only mount.
    pub fn touch(&self, ino: u64) -> FsResult<(Attr, Ttl)> {
        self.check_writable()?;
        self.getattr(ino)
    }

    /// Bytes written to an open FLAGS handle, kept until flush.
    pub fn write(&self, fh: u64, offset: u64, data: &[u8]) -> FsResult<u32> {
        self.check_writable()?;
        if let Some(r) = self.new_file_write(fh, offset, data) {
            return r;
        }
        let mut open = lock(&self.writes.open);
        let p = open.get_mut(&fh).ok_or(FsError::Denied)?;
        let end = offset as usize + data.len();
        if offset > MAX_FLAGS_WRITE as u64 || end > MAX_FLAGS_WRITE {
            return Err(FsError::TooBig);
        }
        if p.buf.len() < end {
            p.buf.resize(end, b' ');
        }
        p.buf[offset as usize..end].copy_from_slice(data);
        p.dirty = true;
        Ok(data.len() as u32)
    }

    /// Apply what was written to the handle since the last flush.
    pub fn flush(&self, fh: u64) -> FsResult<()> {
        if let Some(r) = self.new_file_flush(fh) {
            return r;
        }
        let job = {
            let mut open = lock(&self.writes.open);
            match open.get_mut(&fh) {
                Some(p) if p.dirty => {
                    p.dirty = false;
                    Some((p.node, std::mem::take(&mut p.buf)))
                }
                _ => None,
            }
        };
        match job {
            Some((node, text)) => self.apply_flags(node, &text),
            None => Ok(()),
        }
    }

    /// The handle is closed: apply anything not flushed (the error can only be logged).
    pub fn release_write(&self, fh: u64) {
        if self.new_file_release(fh) {
            return;
        }
        if let Err(e) = self.flush(fh) {
            log::warn!("a FLAGS write failed at release: {e}");
        }
        lock(&self.writes.open).remove(&fh);
    }
}
