//! [`MailFs`]: lookup, getattr, readdir, open/read/release over a [`MailStore`], in terms the
//! FUSE adapter passes straight on to the kernel.

mod ahead;
mod browse;
mod dirs;
mod folder_flags;
mod folders_file;
mod handles;
mod live;
mod messages;
mod nodes;
mod reading;
mod search;
mod statfs;
mod summary;
mod write;
mod xattr;

use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::names::folder_level;
use crate::store::{MailStore, MessageSummary};

use super::Invalidation;

use super::content::ContentFetcher;
use super::folders::{FolderTree, ROOT_FOLDER};
use super::inodes::Node;
use super::layout;
use super::readahead::Workers;
use super::{Attr, FsError, FsResult, Kind, Ttl};
use handles::Handles;
use live::{FolderState, Folders, Listing};
use messages::Messages;
use nodes::Nodes;

pub use statfs::StatFs;

/// Messages whose structure is fetched together when one of them is first needed.
/// Message directories whose structure is kept in memory by default (a few hundred bytes each);
/// beyond this the least recently used are forgotten and fetched again when needed.
pub const MAX_MESSAGE_INFOS: usize = 20_000;
/// Sequential read-ahead grows up to this many bytes.

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
    /// Fetching and decoding content: store, chunk cache, in-flight table, permits.
    content: Arc<ContentFetcher>,
    /// Inode numbers and kernel invalidations.
    nodes: Arc<Nodes>,
    /// The folder tree and the state of every folder (listings, message directories).
    folders: Arc<Folders>,
    /// Message directories in memory: loading them, their bound, their files' sizes.
    messages: Messages,
    /// Open files and directories.
    handles: Handles,
    mount_time: i64,
    /// The background workers that reads and walks hand their read-ahead to, once started
    /// (see `start_readahead`).
    workers: std::sync::OnceLock<Workers>,
    /// FOLDERS as last built, and when.
    folders_file: Mutex<Option<(Instant, Arc<Vec<u8>>)>>,
    /// Search directories: criteria looked up, recent per folder, last answers.
    searches: Mutex<search::Searches>,
    /// The account's quota, for `df`.
    quota: statfs::QuotaCache,
    /// Changes (`--read-write`): off unless enabled, and the open writes.
    writes: write::Writes,
}

pub fn release_free_memory() {
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

impl MailFs {
    pub fn new(store: Arc<dyn MailStore>, opts: FsOptions) -> MailFs {
        let mount_time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let content = Arc::new(ContentFetcher::new(
            store.clone(),
            opts.cache_size as usize,
            opts.parallel_fetches,
        ));
        let nodes = Arc::new(Nodes::new());
        let folders = Arc::new(Folders::new(
            store.clone(),
            opts.poll_interval,
            nodes.clone(),
            content.clone(),
        ));
        MailFs {
            messages: Messages::new(
                store.clone(),
                content.clone(),
                folders.clone(),
                opts.max_message_infos,
            ),
            folders,
            content,
            nodes,
            store,
            opts,
            handles: Handles::default(),
            mount_time,
            workers: std::sync::OnceLock::new(),
            folders_file: Mutex::new(None),
            searches: Mutex::new(search::Searches::default()),
            quota: statfs::QuotaCache::default(),
            writes: write::Writes::default(),
        }
    }

    /// How many message structures are in memory.
    pub fn message_infos(&self) -> usize {
        self.messages.count()
    }

    fn node(&self, ino: u64) -> FsResult<Node> {
        self.nodes.node(ino)
    }

    fn ino(&self, node: Node) -> u64 {
        self.nodes.ino(node)
    }

    // ---- the folders part ----------------------------------------------------------------

    fn tree(&self) -> FsResult<Arc<FolderTree>> {
        self.folders.tree()
    }

    /// The state of a selectable folder, or `None` for a directory-only folder.
    fn folder_state(&self, id: u32) -> FsResult<Option<Arc<FolderState>>> {
        self.folders.folder_state(id)
    }

    fn listing(&self, fs: &FolderState) -> FsResult<Arc<Listing>> {
        self.folders.listing(fs)
    }

    fn invalidate(&self, inv: Invalidation) {
        self.nodes.invalidate(inv)
    }

    /// Send kernel invalidations to `tx` from now on.
    pub fn set_invalidator(&self, tx: Sender<Invalidation>) {
        self.nodes.set_invalidator(tx)
    }

    /// Make every listing and the folder list stale, so the next look asks the server.
    pub fn expire_all(&self) {
        self.folders.expire_all()
    }

    /// Wait up to `max` for the server to push a change in the folder used last (IMAP IDLE),
    /// and refresh that folder when it does, so new mail shows up in about a round trip.
    /// Returns whether something changed. Run it in a loop on a thread of its own.
    pub fn watch_once(&self, max: Duration) -> bool {
        self.folders.watch_once(max)
    }

    /// Refresh the folder list and every folder used in the last `in_use`, so changes made by
    /// other clients reach the kernel without anybody looking. Run it from a timer thread.
    pub fn poll(&self, in_use: Duration) {
        self.folders.poll(in_use)
    }

    // ---- attributes ----------------------------------------------------------------------

    fn dir_attr(&self, ino: u64, mtime: i64) -> Attr {
        Attr {
            ino,
            kind: Kind::Dir,
            size: 0,
            mtime,
            // Writable directories on a read-write mount (mkdir, rm -r, mv need it).
            perm: if self.read_write() { 0o755 } else { 0o555 },
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
        if let Some(a) = self.new_file_attr(ino) {
            return Ok((a, Ttl::Live));
        }
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
            } => match self.summary(folder, uidvalidity, uid) {
                Ok((_, summary)) => Ok((self.dir_attr(ino, summary.internal_date), Ttl::Long)),
                Err(FsError::NotFound) => self
                    .moved_attr(ino, (folder, uidvalidity, uid))
                    .ok_or(FsError::NotFound),
                Err(e) => Err(e),
            },
            Node::File {
                folder,
                uidvalidity,
                uid,
                file,
            } => {
                let (fs, summary) = self.summary(folder, uidvalidity, uid)?;
                let info = self.message_info(&fs, uidvalidity, uid)?;
                let size = self
                    .messages
                    .file_size(&fs, uidvalidity, uid, &info, file as usize)?;
                Ok((self.file_attr(ino, size, summary.internal_date), Ttl::Long))
            }
            Node::Extra {
                folder,
                uidvalidity,
                uid,
                item,
            } => self.extra_attr(ino, folder, uidvalidity, uid, item),
            Node::Folders => self.folders_attr(ino),
            Node::Index(id) => self.index_attr(ino, id),
            node @ (Node::SearchDir(_)
            | Node::Search { .. }
            | Node::SearchIn { .. }
            | Node::SearchIndex { .. }
            | Node::SearchHit { .. }) => self.search_attr(ino, node),
        }
    }

    pub fn lookup(&self, parent: u64, name: &str) -> FsResult<(Attr, Ttl)> {
        match self.node(parent)? {
            Node::Root => self.lookup_in_folder(ROOT_FOLDER, name),
            Node::Folder(id) => match self.new_file_lookup(id, name) {
                Some(a) => Ok((a, Ttl::Live)),
                None => self.lookup_in_folder(id, name),
            },
            Node::Message {
                folder,
                uidvalidity,
                uid,
            } => {
                if name == layout::FLAGS {
                    // No structure needed (see browse::FLAGS_ITEM).
                    let item = browse::FLAGS_ITEM;
                    let ino = self.ino(Node::Extra {
                        folder,
                        uidvalidity,
                        uid,
                        item,
                    });
                    return self.extra_attr(ino, folder, uidvalidity, uid, item);
                }
                let (fs, summary) = self.summary(folder, uidvalidity, uid)?;
                let info = self.message_info(&fs, uidvalidity, uid)?;
                let Some(file) = info.file_index(name) else {
                    let item = self.extra_index(&fs, uidvalidity, uid, name)?;
                    let ino = self.ino(Node::Extra {
                        folder,
                        uidvalidity,
                        uid,
                        item,
                    });
                    return self.extra_attr(ino, folder, uidvalidity, uid, item);
                };
                let ino = self.ino(Node::File {
                    folder,
                    uidvalidity,
                    uid,
                    file: file as u32,
                });
                let size = self
                    .messages
                    .file_size(&fs, uidvalidity, uid, &info, file)?;
                Ok((self.file_attr(ino, size, summary.internal_date), Ttl::Long))
            }
            node @ (Node::SearchDir(_) | Node::Search { .. } | Node::SearchIn { .. }) => {
                self.search_lookup(node, name)
            }
            _ => Err(FsError::NotDir),
        }
    }

    fn lookup_in_folder(&self, id: u32, name: &str) -> FsResult<(Attr, Ttl)> {
        if id == ROOT_FOLDER && name == layout::FOLDERS {
            return self.folders_attr(self.ino(Node::Folders));
        }
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
        if name == layout::INDEX && state.is_some() {
            return self.index_attr(self.ino(Node::Index(id)), id);
        }
        if name == layout::SEARCH && (id == ROOT_FOLDER || state.is_some()) {
            let ino = self.ino(Node::SearchDir(id));
            return Ok((self.dir_attr(ino, self.mount_time), Ttl::Short));
        }
        if layout::RESERVED.contains(&name) {
            return Err(FsError::NotFound);
        }
        let child = match folder.children.get(name) {
            Some(&child) => Some(child),
            None if layout::reserved_component(name).is_some() => {
                layout::reserved_component(name).and_then(|c| folder.children.get(c).copied())
            }
            None => folder_level(name)
                .filter(|plain| parse_uid(plain).is_some_and(has_uid))
                .and_then(|plain| folder.children.get(&plain).copied()),
        };
        let child = child.ok_or(FsError::NotFound)?;
        let ino = self.ino(Node::Folder(child));
        Ok((self.dir_attr(ino, self.mount_time), Ttl::Short))
    }
}
