//! Filing new mail on a read-write mount: `cp message.eml INBOX/` creates a file in a folder's
//! directory, writes it and closes it; the bytes are spooled to a private temporary file (mode
//! 0600, unlinked at once, under `$TMPDIR`), never held in memory, and the first flush (close)
//! APPENDs them (no flags, INTERNALDATE now). The name given is not kept: the message then
//! shows under the UID the server gave it. While open, the file answers `stat` with the size
//! written and its name with `lookup`.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::AtomicU64;

use super::super::MailFs;
use crate::fs::inodes::Node;
use crate::fs::Attr;
use crate::fs::FsError;
use crate::fs::FsResult;
use crate::fs::Invalidation;
use crate::sync::lock;
use std::sync::atomic::Ordering;

/// Inodes of files being written: far above any the inode table hands out.
const NEW_INO_BASE: u64 = 1 << 56;

/// Most bytes a new message may have when the server sets no smaller APPENDLIMIT.
pub(in crate::fs::core) const MAX_NEW_MESSAGE: u64 = 64 << 20;

/// One file being written in a folder directory.
pub(in crate::fs::core) struct NewFile {
    folder: u32,
    name: String,
    spool: File,
    size: u64,
    /// APPENDed (or failed): later writes are refused, later flushes do nothing.
    done: bool,
}

/// A private spool file: created exclusively with mode 0600, then unlinked so nothing is left
/// behind whatever happens.
fn spool_file() -> std::io::Result<File> {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir();
    for _ in 0..16 {
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("imapfs-append-{}-{n}", std::process::id()));
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(f) => {
                std::fs::remove_file(&path)?;
                return Ok(f);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("no free spool file name"))
}

impl MailFs {
    /// `create` in a folder's directory: a new file to be APPENDed at close. The handle and
    /// the file's attributes.
    pub fn create(&self, parent: u64, name: &str) -> FsResult<(Attr, u64)> {
        self.check_writable()?;
        let folder = match self.node(parent)? {
            Node::Folder(id) => id,
            _ => {
                log::warn!("create {name}: new mail is filed only in a folder's directory");
                return Err(FsError::NotPermitted);
            }
        };
        if self.folder_state(folder)?.is_none() {
            log::warn!("create {name}: the folder holds no messages (\\Noselect)");
            return Err(FsError::NotPermitted);
        }
        let spool = spool_file().map_err(|e| FsError::Io(format!("spool for {name}: {e}")))?;
        let fh = self.handles.open_bare();
        lock(&self.writes.new_files).insert(
            fh,
            NewFile {
                folder,
                name: name.to_string(),
                spool,
                size: 0,
                done: false,
            },
        );
        let attr = self
            .new_file_attr(NEW_INO_BASE + fh)
            .ok_or(FsError::NotFound)?;
        Ok((attr, fh))
    }

    fn new_attr(&self, fh: u64, size: u64) -> Attr {
        let mut a = self.file_attr(NEW_INO_BASE + fh, size, now_secs());
        a.perm = 0o600;
        a
    }

    /// `getattr` of a file being written.
    pub(in crate::fs::core) fn new_file_attr(&self, ino: u64) -> Option<Attr> {
        let fh = ino.checked_sub(NEW_INO_BASE)?;
        let size = lock(&self.writes.new_files).get(&fh)?.size;
        Some(self.new_attr(fh, size))
    }

    /// `lookup` of a file being written, by the name it was created with.
    pub(in crate::fs::core) fn new_file_lookup(&self, folder: u32, name: &str) -> Option<Attr> {
        let files = lock(&self.writes.new_files);
        let (&fh, f) = files
            .iter()
            .find(|(_, f)| f.folder == folder && f.name == name && !f.done)?;
        Some(self.new_attr(fh, f.size))
    }

    /// Bytes written to a new file: to its spool. `None` when `fh` is not a new file.
    pub(in crate::fs::core) fn new_file_write(
        &self,
        fh: u64,
        offset: u64,
        data: &[u8],
    ) -> Option<FsResult<u32>> {
        let mut files = lock(&self.writes.new_files);
        let f = files.get_mut(&fh)?;
        Some((|| {
            if f.done {
                return Err(FsError::Io("the message was filed already".into()));
            }
            let end = offset.saturating_add(data.len() as u64);
            if end > MAX_NEW_MESSAGE {
                log::warn!(
                    "{}: more than {MAX_NEW_MESSAGE} bytes: not a message to file",
                    f.name
                );
                return Err(FsError::TooBig);
            }
            f.spool
                .seek(SeekFrom::Start(offset))
                .and_then(|_| f.spool.write_all(data))
                .map_err(|e| FsError::Io(format!("spool: {e}")))?;
            f.size = f.size.max(end);
            Ok(data.len() as u32)
        })())
    }

    /// `truncate` of a new file.
    pub(in crate::fs::core) fn new_file_truncate(
        &self,
        ino: u64,
        size: u64,
    ) -> Option<FsResult<()>> {
        let fh = ino.checked_sub(NEW_INO_BASE)?;
        let mut files = lock(&self.writes.new_files);
        let f = files.get_mut(&fh)?;
        Some((|| {
            if f.done || size > MAX_NEW_MESSAGE {
                return Err(FsError::TooBig);
            }
            f.spool
                .set_len(size)
                .map_err(|e| FsError::Io(format!("spool: {e}")))?;
            f.size = size;
            Ok(())
        })())
    }

    /// The first flush of a new file APPENDs it. `None` when `fh` is not a new file.
    pub(in crate::fs::core) fn new_file_flush(&self, fh: u64) -> Option<FsResult<()>> {
        let (folder, name, size, mut spool) = {
            let mut files = lock(&self.writes.new_files);
            let f = files.get_mut(&fh)?;
            if f.done {
                return Some(Ok(()));
            }
            f.done = true;
            let spool = match f.spool.try_clone() {
                Ok(s) => s,
                Err(e) => return Some(Err(FsError::Io(format!("spool: {e}")))),
            };
            (f.folder, f.name.clone(), f.size, spool)
        };
        if size == 0 {
            // `touch` or an empty copy: nothing to file.
            log::info!("{name}: empty, not filed");
            return Some(Ok(()));
        }
        Some(self.append_spool(folder, &name, &mut spool, size))
    }

    fn append_spool(&self, folder: u32, name: &str, spool: &mut File, size: u64) -> FsResult<()> {
        let fs = self.folder_state(folder)?.ok_or(FsError::NotFound)?;
        let r = self.store.append_message(&fs.raw, spool, size);
        // Done or not (a cut), the listing is asked again.
        self.listings_changed(&[&fs]);
        match r {
            Ok(a) => {
                match a.uid {
                    Some((_, uid)) => log::info!(
                        "{}: APPEND {size} bytes ({name}): UID {uid}{}",
                        fs.raw,
                        if a.recovered { ", after a cut" } else { "" }
                    ),
                    None => log::info!("{}: APPEND {size} bytes ({name}): done", fs.raw),
                }
                Ok(())
            }
            Err(e) => {
                log::warn!("{}: APPEND {size} bytes ({name}) failed: {e}", fs.raw);
                Err(e.into())
            }
        }
    }

    /// The handle of a new file is closed: APPEND if no flush did, and forget it.
    pub(in crate::fs::core) fn new_file_release(&self, fh: u64) -> bool {
        let Some(r) = self.new_file_flush(fh) else {
            return false;
        };
        if let Err(e) = r {
            log::warn!("a new message failed at release: {e}");
        }
        if let Some(f) = lock(&self.writes.new_files).remove(&fh) {
            // The kernel still knows the name given: make it forget it.
            if let Some(ino) = self.nodes.existing(&Node::Folder(f.folder)) {
                self.invalidate(Invalidation::Entry {
                    parent: ino,
                    name: f.name,
                });
            }
        }
        true
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
