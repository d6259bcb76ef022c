//! Folders on a read-write mount: `mkdir` → CREATE, `rmdir` of an empty folder → DELETE (a
//! folder with messages or subfolders: ENOTEMPTY), `mv` of a folder → RENAME. Directory names
//! are turned back into server names: escapes reversed (`%49NDEX` → `INDEX`), encoded to
//! modified UTF-7, joined with the server's hierarchy delimiter.

use std::sync::atomic::Ordering;

use super::super::MailFs;
use crate::fs::folders::ROOT_FOLDER;
use crate::fs::inodes::Node;
use crate::fs::layout;
use crate::fs::Attr;
use crate::fs::FsError;
use crate::fs::FsResult;
use crate::fs::Invalidation;
use crate::fs::Ttl;
use crate::names::encode_mutf7;
use crate::names::folder_level;

impl MailFs {
    /// The folder a directory of the root or of a folder is (not a message directory).
    fn folder_id_of(&self, parent: u64) -> FsResult<u32> {
        match self.node(parent)? {
            Node::Root => Ok(ROOT_FOLDER),
            Node::Folder(id) => Ok(id),
            _ => Err(FsError::NotPermitted),
        }
    }

    /// The server's hierarchy delimiter (the first LIST entry that has one).
    fn delimiter(&self) -> FsResult<Option<char>> {
        let entries = self.store.list_folders()?;
        Ok(entries.iter().find_map(|e| e.delimiter))
    }

    /// The raw server name for a new directory `name` in folder `parent`.
    fn new_folder_name(&self, parent: u32, name: &str) -> FsResult<String> {
        Ok(self.new_folder_levels(parent, name)?.1)
    }

    /// The same, as levels and joined by the delimiter.
    fn new_folder_levels(&self, parent: u32, name: &str) -> FsResult<(Vec<String>, String)> {
        if layout::RESERVED.contains(&name) {
            log::warn!("{name}: a reserved name; a folder of that name is made as %XX escape");
            return Err(FsError::Invalid(format!("{name} is reserved")));
        }
        let level = layout::reserved_component(name)
            .map(str::to_string)
            .or_else(|| folder_level(name))
            .ok_or_else(|| FsError::Invalid(format!("{name}: not a folder name")))?;
        let tree = self.tree()?;
        let mut levels = tree.raw_levels(parent).ok_or(FsError::NotFound)?;
        let delim = self.delimiter()?;
        if let Some(d) = delim {
            if level.contains(d) {
                return Err(FsError::Invalid(format!("{name}: holds the delimiter {d}")));
            }
        }
        let sep = match (delim, levels.is_empty()) {
            (Some(d), _) => d.to_string(),
            (None, true) => String::new(),
            (None, false) => return Err(FsError::NotPermitted),
        };
        levels.push(encode_mutf7(&level));
        let joined = levels.join(&sep);
        Ok((levels, joined))
    }

    /// Forget the folder list and tell the kernel `parent` changed.
    fn folders_changed(&self, parents: &[u64]) {
        self.folders.refetch_tree();
        for &p in parents {
            self.invalidate(Invalidation::Inode(p));
        }
    }

    /// `mkdir parent/name` → CREATE.
    pub fn mkdir(&self, parent: u64, name: &str) -> FsResult<(Attr, Ttl)> {
        self.check_writable()?;
        let id = self.folder_id_of(parent)?;
        if self.lookup(parent, name).is_ok() {
            return Err(FsError::Exists);
        }
        let raw = self.new_folder_name(id, name)?;
        log::info!("CREATE {raw}");
        self.store.create_folder(&raw)?;
        self.folders_changed(&[parent]);
        self.lookup(parent, name).map_err(|e| {
            FsError::Io(format!(
                "created {raw}, but it does not show as {name}: {e}"
            ))
        })
    }

    /// `rmdir parent/name` of a folder → DELETE, only when it holds nothing.
    pub fn rmdir(&self, parent: u64, name: &str) -> FsResult<()> {
        self.check_writable()?;
        let (attr, _) = self.lookup(parent, name)?;
        let id = match self.node(attr.ino)? {
            Node::Folder(id) => id,
            Node::Message {
                folder,
                uidvalidity,
                uid,
            } => return self.delete_message(folder, uidvalidity, uid),
            _ => return Err(FsError::NotDir),
        };
        let tree = self.tree()?;
        let folder = tree.get(id).ok_or(FsError::NotFound)?;
        if !folder.children.is_empty() {
            return Err(FsError::NotEmpty);
        }
        if let Some(fs) = self.folder_state(id)? {
            fs.stale.store(true, Ordering::Relaxed);
            if !self.listing(&fs)?.data.messages.is_empty() {
                return Err(FsError::NotEmpty);
            }
        }
        let levels = tree.raw_levels(id).ok_or(FsError::NotFound)?;
        let raw = match &folder.raw {
            Some(r) => r.clone(),
            None => levels.join(&self.delimiter()?.map_or(String::new(), String::from)),
        };
        log::info!("DELETE {raw}");
        self.store.delete_folder(&raw)?;
        self.invalidate(Invalidation::Entry {
            parent,
            name: name.to_string(),
        });
        self.folders_changed(&[parent]);
        Ok(())
    }

    /// `mv parent/name newparent/newname` of a folder → RENAME (subfolders go along).
    pub fn rename_folder(
        &self,
        id: u32,
        parent: u64,
        name: &str,
        newparent: u64,
        newname: &str,
    ) -> FsResult<()> {
        let to_id = self.folder_id_of(newparent)?;
        if self.lookup(newparent, newname).is_ok() {
            return Err(FsError::Exists);
        }
        let tree = self.tree()?;
        let delim = self.delimiter()?;
        let from = match tree.get(id).and_then(|f| f.raw.clone()) {
            Some(r) => r,
            None => {
                let levels = tree.raw_levels(id).ok_or(FsError::NotFound)?;
                levels.join(&delim.map_or(String::new(), String::from))
            }
        };
        let (to_levels, to) = self.new_folder_levels(to_id, newname)?;
        log::info!("RENAME {from} {to}");
        self.store.rename_folder(&from, &to)?;
        // The directory keeps its inode (the kernel moved it): the folders keep their ids,
        // and their state (which holds the old name) is made afresh.
        let from_levels = tree.raw_levels(id).ok_or(FsError::NotFound)?;
        self.folders.renamed(&tree, &from_levels, &to_levels);
        self.invalidate(Invalidation::Entry {
            parent,
            name: name.to_string(),
        });
        self.folders_changed(&[parent, newparent]);
        Ok(())
    }

    /// `mv`: of a folder (RENAME) or a message directory (a move); nothing else.
    pub fn rename(&self, parent: u64, name: &str, newparent: u64, newname: &str) -> FsResult<()> {
        self.check_writable()?;
        let (attr, _) = self.lookup(parent, name)?;
        match self.node(attr.ino)? {
            Node::Folder(id) => self.rename_folder(id, parent, name, newparent, newname),
            Node::Message {
                folder,
                uidvalidity,
                uid,
            } => self.move_message((folder, uidvalidity, uid), newparent, newname),
            _ => {
                log::warn!("rename of {name}: only folders and messages can be moved");
                Err(FsError::NotPermitted)
            }
        }
    }
}
