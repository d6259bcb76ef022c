//! Directory listings: the root, folder directories and message directories, with the names
//! [`layout`] gives them, and their attributes in one go for READDIRPLUS.

use std::sync::Arc;

use crate::fs::folders::ROOT_FOLDER;
use crate::fs::inodes::{Node, ROOT_INO};
use crate::fs::{layout, Attr, DirEntry, FsError, FsResult, Kind, Ttl};

use super::{parse_uid, release_free_memory, MailFs};

impl MailFs {
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
                if let Some(a) = self.listed_attr(e.ino) {
                    return Some(a);
                }
                if folder.is_none() || e.name == "." || e.name == ".." {
                    return match e.name.as_str() {
                        "." | ".." => self.getattr(e.ino).ok(),
                        // A look-up in SEARCH would count as using the search again.
                        _ if matches!(self.node(parent), Ok(Node::SearchDir(_))) => {
                            self.getattr(e.ino).ok()
                        }
                        name => self.lookup(parent, name).ok(),
                    };
                }
                match self.node(e.ino).ok()? {
                    Node::Message { uid, .. } => {
                        let summary = listing.as_ref()?.message(uid)?;
                        Some((self.dir_attr(e.ino, summary.internal_date), Ttl::Long))
                    }
                    Node::Folder(_) => Some((self.dir_attr(e.ino, self.mount_time), Ttl::Short)),
                    _ => self.getattr(e.ino).ok(),
                }
            })
            .collect()
    }

    /// Open a directory: its entries are kept for the handle, so that a listing read in
    /// several calls is consistent.
    pub fn opendir(&self, ino: u64) -> FsResult<u64> {
        Ok(self.handles.dirs.open(self.readdir(ino)?))
    }

    /// The entries of an open directory handle (or read now, for a handle not known).
    pub fn dir_entries(&self, ino: u64, fh: u64) -> FsResult<Arc<Vec<DirEntry>>> {
        match self.handles.dirs.get(fh) {
            Some(e) => Ok(e),
            None => self.readdir(ino).map(Arc::new),
        }
    }

    pub fn releasedir(&self, fh: u64) {
        if self.handles.dirs.release(fh) >= 10_000 {
            // A big folder's snapshot (tens of bytes an entry) is gone: return the memory.
            release_free_memory();
        }
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
                if id == ROOT_FOLDER {
                    out.push(DirEntry {
                        ino: self.ino(Node::Folders),
                        kind: Kind::File,
                        name: layout::FOLDERS.into(),
                    });
                }
                if listing.is_some() {
                    out.push(DirEntry {
                        ino: self.ino(Node::Index(id)),
                        kind: Kind::File,
                        name: layout::INDEX.into(),
                    });
                }
                if listing.is_some() || id == ROOT_FOLDER {
                    out.push(DirEntry {
                        ino: self.ino(Node::SearchDir(id)),
                        kind: Kind::Dir,
                        name: layout::SEARCH.into(),
                    });
                }
                for (name, &child) in &folder.children {
                    let beside_message = parse_uid(name).is_some_and(|uid| {
                        listing.as_ref().is_some_and(|l| l.message(uid).is_some())
                    });
                    out.push(DirEntry {
                        ino: self.ino(Node::Folder(child)),
                        kind: Kind::Dir,
                        name: layout::subfolder_name(name, beside_message),
                    });
                }
                if let Some(listing) = listing {
                    let uidvalidity = listing.data.uidvalidity;
                    let mut inodes = self.nodes.table();
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
                let extras = self.message_extras(&fs, uidvalidity, uid)?;
                for (i, (name, extra)) in extras.items.iter().enumerate() {
                    out.push(DirEntry {
                        ino: self.ino(Node::Extra {
                            folder,
                            uidvalidity,
                            uid,
                            item: i as u32,
                        }),
                        kind: match extra {
                            layout::Extra::Link { .. } => Kind::Symlink,
                            _ => Kind::File,
                        },
                        name: name.clone(),
                    });
                }
            }
            node @ (Node::SearchDir(_) | Node::Search { .. } | Node::SearchIn { .. }) => {
                out.extend(self.search_readdir(node)?)
            }
            _ => return Err(FsError::NotDir),
        }
        Ok(out)
    }
}
