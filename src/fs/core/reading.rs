//! Reading files: open handles and reads. What to fetch ahead is decided in `fs::readahead`
//! and fetched by `ahead.rs`.

use std::sync::atomic::Ordering;

use crate::fs::inodes::Node;
use crate::fs::message::FileInfo;
use crate::fs::readahead::{Background, ReadAhead};
use crate::fs::{FsError, FsResult, Invalidation};
use crate::sync::lock;

use super::MailFs;

impl MailFs {
    /// A read found a file's size wrong and corrected it: the kernel must drop its attributes
    /// and pages (notified from another thread, never from inside a request).
    pub(super) fn tell_corrections(
        &self,
        folder: u32,
        uidvalidity: u32,
        uid: u32,
        file: u32,
        f: &FileInfo,
    ) {
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
                Ok(self.handles.open_snapshot(snap))
            }
            Node::File { .. } => Ok(self.handles.open_file()),
            _ => Err(FsError::IsDir),
        }
    }

    pub fn release(&self, fh: u64) {
        self.handles.release(fh);
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
        let file_size = self
            .messages
            .file_size(&fs, uidvalidity, uid, &info, file as usize)?;
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
        let ctx = self.messages.ctx(&fs, uidvalidity, uid);
        let ahead = self.handles.advance(fh, offset, end);
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
}
