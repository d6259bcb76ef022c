//! The thin adapter between fuser's callbacks and the filesystem core: argument and reply
//! conversion, TTLs. No filesystem logic lives here (directory snapshots per open handle are
//! the core's).

use std::ffi::OsStr;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenAccMode, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory,
    ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyXattr, Request,
};

use crate::fs::{Attr, DirEntry, FsError, Kind, MailFs, Ttl, CHUNK};

/// Message directories and files never change under their inode: let the kernel keep them.
const LONG_TTL: Duration = Duration::from_secs(24 * 3600);
/// The root and folder directories follow the mailbox.
const SHORT_TTL: Duration = Duration::from_secs(1);

pub struct FuseAdapter {
    core: Arc<MailFs>,
}

impl FuseAdapter {
    pub fn new(core: Arc<MailFs>) -> FuseAdapter {
        FuseAdapter { core }
    }

    /// The entries snapshotted at opendir (or read now, for a handle the core does not know).
    fn entries(&self, ino: INodeNo, fh: FileHandle) -> Result<Arc<Vec<DirEntry>>, Errno> {
        self.core.dir_entries(ino.0, fh.0).map_err(|e| errno(&e))
    }
}

fn ttl(t: Ttl) -> Duration {
    match t {
        Ttl::Long => LONG_TTL,
        Ttl::Short => SHORT_TTL,
        Ttl::Live => Duration::ZERO,
    }
}

fn kind(k: Kind) -> FileType {
    match k {
        Kind::Dir => FileType::Directory,
        Kind::File => FileType::RegularFile,
        Kind::Symlink => FileType::Symlink,
    }
}

fn errno(e: &FsError) -> Errno {
    if let FsError::Io(msg) = e {
        log::warn!("{msg}");
    }
    Errno::from_i32(e.errno())
}

fn file_attr(a: &Attr) -> FileAttr {
    let time = if a.mtime >= 0 {
        UNIX_EPOCH + Duration::from_secs(a.mtime as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(a.mtime.unsigned_abs())
    };
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.size.div_ceil(512),
        atime: time,
        mtime: time,
        ctime: time,
        crtime: time,
        kind: kind(a.kind),
        perm: a.perm,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: 0,
        // Tools size their reads by st_blksize: ask for whole chunks.
        blksize: CHUNK as u32,
        flags: 0,
    }
}

impl Filesystem for FuseAdapter {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Listing a folder hands the kernel every entry's attributes at once (`ls -l` of a big
        // folder then needs no lookup per message).
        let _ = config
            .add_capabilities(InitFlags::FUSE_DO_READDIRPLUS | InitFlags::FUSE_READDIRPLUS_AUTO);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let Some(name) = name.to_str() else {
            return reply.error(Errno::ENOENT);
        };
        match self.core.lookup(parent.0, name) {
            Ok((attr, t)) => reply.entry(&ttl(t), &file_attr(&attr), Generation(0)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.core.getattr(ino.0) {
            Ok((attr, t)) => reply.attr(&ttl(t), &file_attr(&attr)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.core.opendir(ino.0) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let entries = match self.entries(ino, fh) {
            Ok(e) => e,
            Err(e) => return reply.error(e),
        };
        for (i, e) in entries.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(e.ino), i as u64 + 1, kind(e.kind), &e.name) {
                break;
            }
        }
        reply.ok();
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let entries = match self.entries(ino, fh) {
            Ok(e) => e,
            Err(e) => return reply.error(e),
        };
        // Attributes for a window of entries at a time: the buffer holds a few hundred.
        let mut start = offset as usize;
        'fill: while start < entries.len() {
            let window = &entries[start..(start + 512).min(entries.len())];
            let attrs = self.core.attrs_of(ino.0, window);
            for (k, (e, a)) in window.iter().zip(attrs).enumerate() {
                // An entry that vanished meanwhile is left out rather than failing the listing.
                let Some((attr, t)) = a else { continue };
                let next_offset = (start + k) as u64 + 1;
                if reply.add(
                    INodeNo(e.ino),
                    next_offset,
                    &e.name,
                    &ttl(t),
                    &file_attr(&attr),
                    Generation(0),
                ) {
                    break 'fill;
                }
            }
            start += window.len();
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        reply.ok();
        self.core.releasedir(fh.0);
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.acc_mode() != OpenAccMode::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        match self.core.open(ino.0) {
            // Files whose bytes change (FLAGS, INDEX, FOLDERS) bypass the page cache, so a read
            // never mixes old pages with new bytes.
            Ok(fh) if self.core.is_live(ino.0) => {
                reply.opened(FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO)
            }
            // Content never changes under an inode: the page cache may keep it across opens.
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.core.read(ino.0, fh.0, offset, size) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.core.release(fh.0);
        reply.ok();
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.core.readlink(ino.0) {
            Ok(target) => reply.data(target.as_bytes()),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let s = self.core.statfs();
        reply.statfs(
            s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.frsize,
        );
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        match name.to_str().map(|n| self.core.xattr(ino.0, n)) {
            Some(Ok(Some(value))) => xattr_reply(&value, size, reply),
            None | Some(Ok(None)) => reply.error(Errno::from_i32(libc::ENODATA)),
            Some(Err(e)) => reply.error(errno(&e)),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        match self.core.xattr_list(ino.0) {
            Ok(list) => xattr_reply(&list, size, reply),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }
}

/// An xattr value or name list as the kernel asks for it: its size for a size-0 probe, ERANGE
/// when the caller's buffer is too small.
fn xattr_reply(value: &[u8], size: u32, reply: ReplyXattr) {
    if size == 0 {
        reply.size(value.len() as u32);
    } else if value.len() > size as usize {
        reply.error(Errno::ERANGE);
    } else {
        reply.data(value);
    }
}
