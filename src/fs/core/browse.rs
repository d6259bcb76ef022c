//! The generated files of the browsing layout: a message directory's FLAGS, BODYSTRUCTURE,
//! `.utf8` copies and attachment links, plus the open/read path of every generated file (INDEX
//! and FOLDERS too), whose bytes are fixed when it is opened.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::OnceLock;

use crate::fs::inodes::Node;
use crate::fs::message::MessageInfo;
use crate::fs::{layout, Attr, FsError, FsResult, Kind, Ttl};
use crate::mime::{files_of, outline, NodeInfo};
use crate::store::StructureData;
use crate::sync::lock;

use super::super::layout::Extra;
use super::super::message::add_browse_files;
use super::summary::Summary;
use super::{FolderState, MailFs};

/// The item number of FLAGS among a message directory's generated entries: always the first
/// (see `layout::message_extras`), and no section file is named so. FLAGS therefore exists
/// whatever the structure says, and finding or writing it needs no BODYSTRUCTURE.
pub(super) const FLAGS_ITEM: u32 = 0;

/// A message directory's generated entries.
#[derive(Debug)]
pub struct MsgExtras {
    pub items: Vec<(String, Extra)>,
    pub(super) nodes: Vec<NodeInfo>,
    /// Bytes of BODYSTRUCTURE and of each `.utf8` entry once worked out (by item).
    sizes: Vec<OnceLock<u64>>,
    outline: OnceLock<Arc<Vec<u8>>>,
}

/// What an open generated file shows.
#[derive(Clone)]
pub enum Snapshot {
    Bytes(Arc<Vec<u8>>),
    Index(Arc<Summary>),
}

impl Snapshot {
    fn len(&self) -> u64 {
        match self {
            Snapshot::Bytes(b) => b.len() as u64,
            Snapshot::Index(s) => s.len(),
        }
    }

    fn read(&self, offset: u64, size: u32) -> Vec<u8> {
        match self {
            Snapshot::Bytes(b) => {
                let start = (offset as usize).min(b.len());
                let end = (offset.saturating_add(size as u64) as usize).min(b.len());
                b[start..end].to_vec()
            }
            Snapshot::Index(s) => s.read(offset, size as u64),
        }
    }
}

/// The sections whose MIME header gets a file, and the outline nodes, of a structure.
pub(super) fn outline_of(data: &StructureData) -> (Vec<NodeInfo>, Vec<String>) {
    let Ok(root) = &data.structure else {
        return (Vec::new(), Vec::new());
    };
    let nodes = outline(root);
    // Only sections that are files (files_of agrees with the nodes' `file`).
    let files: HashSet<String> = files_of(root).into_iter().map(|f| f.section).collect();
    let mime = nodes
        .iter()
        .filter(|n| n.in_multipart)
        .filter_map(|n| n.file.clone())
        .filter(|s| files.contains(s))
        .collect();
    (nodes, mime)
}

/// Add the browsing files to a just-built message directory and work out its generated entries.
pub(super) fn complete_message(
    info: &mut Arc<MessageInfo>,
    nodes: Vec<NodeInfo>,
    mime: &[String],
    rfc822_size: Option<u64>,
) -> MsgExtras {
    if let Some(m) = Arc::get_mut(info) {
        add_browse_files(m, rfc822_size, mime);
    }
    let names: Vec<&str> = info.files.iter().map(|f| f.name.as_str()).collect();
    let size_of = |section: &str| {
        info.files
            .iter()
            .find(|f| f.name == section)
            .map(|f| f.encoded_size)
    };
    let items = layout::message_extras(&names, &nodes, size_of);
    MsgExtras {
        sizes: items.iter().map(|_| OnceLock::new()).collect(),
        items,
        nodes,
        outline: OnceLock::new(),
    }
}

/// One outline line per node: label, type, then what is known (`size=`, `charset=`,
/// disposition, `filename=`), indented two spaces per level.
pub fn render_outline(nodes: &[NodeInfo], size_of: impl Fn(&str) -> Option<u64>) -> Vec<u8> {
    let mut out = String::new();
    for n in nodes {
        out.push_str(&"  ".repeat(n.depth));
        out.push_str(&n.label);
        out.push(' ');
        out.push_str(&n.media_type);
        if let Some(size) = n.file.as_deref().and_then(&size_of) {
            out.push_str(&format!(" size={size}"));
        }
        if let Some(cs) = &n.charset {
            out.push_str(&format!(" charset={}", crate::mime::header::one_line(cs)));
        }
        if let Some(d) = &n.disposition {
            out.push(' ');
            out.push_str(&crate::mime::header::one_line(d));
        }
        if let Some(f) = &n.filename {
            out.push_str(&format!(" filename={}", crate::mime::header::one_line(f)));
        }
        out.push('\n');
    }
    out.into_bytes()
}

impl MailFs {
    /// A listed message's folder state and generated entries (the summary first, so a message
    /// that is gone is ENOENT).
    pub(super) fn extras_of(
        &self,
        folder: u32,
        uidvalidity: u32,
        uid: u32,
    ) -> FsResult<(Arc<FolderState>, Arc<MsgExtras>)> {
        let (fs, _) = self.summary(folder, uidvalidity, uid)?;
        let extras = self.message_extras(&fs, uidvalidity, uid)?;
        Ok((fs, extras))
    }

    pub(super) fn message_extras(
        &self,
        fs: &FolderState,
        uidvalidity: u32,
        uid: u32,
    ) -> FsResult<Arc<MsgExtras>> {
        for _ in 0..2 {
            self.message_info(fs, uidvalidity, uid)?;
            if let Some(e) = lock(&fs.extras).get(&uid) {
                return Ok(e.clone());
            }
        }
        Err(FsError::Io(format!(
            "{} UID {uid}: directory not in memory",
            fs.raw
        )))
    }

    pub(super) fn extra_index(
        &self,
        fs: &FolderState,
        uidvalidity: u32,
        uid: u32,
        name: &str,
    ) -> FsResult<u32> {
        let extras = self.message_extras(fs, uidvalidity, uid)?;
        let i = extras.items.iter().position(|(n, _)| n == name);
        i.map(|i| i as u32).ok_or(FsError::NotFound)
    }

    fn live_attr(&self, ino: u64, size: u64, mtime: i64) -> (Attr, Ttl) {
        (self.file_attr(ino, size, mtime), Ttl::Live)
    }

    pub(super) fn extra_attr(
        &self,
        ino: u64,
        folder: u32,
        uidvalidity: u32,
        uid: u32,
        item: u32,
    ) -> FsResult<(Attr, Ttl)> {
        let (fs, summary) = self.summary(folder, uidvalidity, uid)?;
        let mtime = summary.internal_date;
        if item == FLAGS_ITEM {
            let bytes = self.flags_bytes(&fs, uidvalidity, uid)?;
            let (mut a, t) = self.live_attr(ino, bytes.len() as u64, mtime);
            if self.read_write() {
                a.perm = 0o644;
            }
            return Ok((a, t));
        }
        let extras = self.message_extras(&fs, uidvalidity, uid)?;
        let (_, extra) = extras.items.get(item as usize).ok_or(FsError::NotFound)?;
        match extra {
            Extra::Link { target } => {
                let mut a = self.file_attr(ino, target.len() as u64, mtime);
                a.kind = Kind::Symlink;
                a.perm = 0o777;
                Ok((a, Ttl::Long))
            }
            _ => {
                let size = match extras.sizes[item as usize].get() {
                    Some(&s) => s,
                    None => self
                        .extra_bytes(&fs, uidvalidity, uid, &extras, item)?
                        .len() as u64,
                };
                Ok((self.file_attr(ino, size, mtime), Ttl::Long))
            }
        }
    }

    /// `FLAGS` of a message: one line.
    fn flags_bytes(&self, fs: &FolderState, uidvalidity: u32, uid: u32) -> FsResult<Vec<u8>> {
        let listing = self.listing(fs)?;
        if listing.data.uidvalidity != uidvalidity {
            return Err(FsError::Stale);
        }
        let flags = self.folder_flags(fs, &listing)?;
        let mut line = flags.of(uid).ok_or(FsError::NotFound)?.as_bytes().to_vec();
        line.push(b'\n');
        Ok(line)
    }

    /// The bytes of an immutable generated file (BODYSTRUCTURE, `.utf8`), noting their size.
    fn extra_bytes(
        &self,
        fs: &FolderState,
        uidvalidity: u32,
        uid: u32,
        extras: &MsgExtras,
        item: u32,
    ) -> FsResult<Arc<Vec<u8>>> {
        let info = self.message_info(fs, uidvalidity, uid)?;
        let (_, extra) = extras.items.get(item as usize).ok_or(FsError::NotFound)?;
        let bytes = match extra {
            Extra::Outline => {
                if let Some(b) = extras.outline.get() {
                    return Ok(b.clone());
                }
                // Sizes are the decoded ones, as the part files show them: settle them all in
                // one go (one round trip for every sample, then any scans).
                let names: Vec<&str> = extras
                    .nodes
                    .iter()
                    .filter_map(|n| n.file.as_deref())
                    .collect();
                {
                    let _one_settle_at_a_time = lock(&fs.settle_lock);
                    let batch = [(uid, info.clone())];
                    self.content
                        .settle(fs.id, &fs.raw, uidvalidity, &batch, &names)?;
                }
                let mut sizes = HashMap::new();
                for n in &extras.nodes {
                    let Some(idx) = n.file.as_deref().and_then(|f| info.file_index(f)) else {
                        continue;
                    };
                    let size = self.messages.file_size(fs, uidvalidity, uid, &info, idx)?;
                    sizes.insert(info.files[idx].name.clone(), size);
                }
                let b = Arc::new(render_outline(&extras.nodes, |f| sizes.get(f).copied()));
                extras.outline.get_or_init(|| b).clone()
            }
            Extra::Utf8 { section, charset } => {
                let idx = info.file_index(section).ok_or(FsError::NotFound)?;
                let size = self.messages.file_size(fs, uidvalidity, uid, &info, idx)?;
                let ctx = self.messages.ctx(fs, uidvalidity, uid);
                let raw = ctx.read(idx as u32, &info.files[idx], 0, size, size)?;
                Arc::new(crate::mime::header::to_utf8(charset, &raw).into_bytes())
            }
            Extra::Flags | Extra::Link { .. } => return Err(FsError::Io("not a file".into())),
        };
        let _ = extras.sizes[item as usize].set(bytes.len() as u64);
        Ok(bytes)
    }

    /// Attributes for a READDIRPLUS listing of a generated entry, without building it: its
    /// size when known, else a stand-in the kernel must not keep (it asks again, with a
    /// lookup or getattr, before anything uses the size). `None` for other nodes.
    pub(super) fn listed_attr(&self, ino: u64) -> Option<(Attr, Ttl)> {
        let stand_in = |mtime| Some((self.file_attr(ino, 0, mtime), Ttl::Live));
        match self.node(ino).ok()? {
            Node::Folders | Node::Index(_) | Node::SearchIndex { .. } => stand_in(self.mount_time),
            Node::Extra {
                folder,
                uidvalidity,
                uid,
                item,
            } => {
                let (fs, summary) = self.summary(folder, uidvalidity, uid).ok()?;
                let extras = self.message_extras(&fs, uidvalidity, uid).ok()?;
                match &extras.items.get(item as usize)?.1 {
                    Extra::Link { .. } => self.extra_attr(ino, folder, uidvalidity, uid, item).ok(),
                    _ => match extras.sizes[item as usize].get() {
                        Some(&size) => {
                            Some((self.file_attr(ino, size, summary.internal_date), Ttl::Long))
                        }
                        None => stand_in(summary.internal_date),
                    },
                }
            }
            _ => None,
        }
    }

    /// Where a symbolic link points.
    pub fn readlink(&self, ino: u64) -> FsResult<String> {
        let node = self.node(ino)?;
        if let Node::SearchHit { .. } = node {
            return self.search_readlink(node);
        }
        let Node::Extra {
            folder,
            uidvalidity,
            uid,
            item,
        } = node
        else {
            return Err(FsError::Io("not a symbolic link".into()));
        };
        let (_, extras) = self.extras_of(folder, uidvalidity, uid)?;
        match extras.items.get(item as usize) {
            Some((_, Extra::Link { target })) => Ok(target.clone()),
            Some(_) => Err(FsError::Io("not a symbolic link".into())),
            None => Err(FsError::NotFound),
        }
    }

    /// True for files whose bytes may change (the kernel must not keep their pages).
    pub fn is_live(&self, ino: u64) -> bool {
        match self.node(ino) {
            Ok(Node::Folders | Node::Index(_) | Node::SearchIndex { .. }) => true,
            Ok(Node::Extra { item, .. }) if item == FLAGS_ITEM => true,
            Ok(Node::Extra {
                folder,
                uidvalidity,
                uid,
                item,
            }) => self
                .extras_of(folder, uidvalidity, uid)
                .is_ok_and(|(_, e)| matches!(e.items.get(item as usize), Some((_, Extra::Flags)))),
            _ => false,
        }
    }

    /// The bytes a generated file shows now; `None` for section files.
    pub(super) fn snapshot(&self, node: Node) -> FsResult<Option<Snapshot>> {
        Ok(Some(match node {
            Node::Folders => Snapshot::Bytes(self.folders_bytes()?),
            Node::Index(id) => Snapshot::Index(self.index_of(id)?),
            Node::SearchIndex { folder, query } => {
                Snapshot::Bytes(self.search_index_bytes(folder, query)?)
            }
            Node::Extra {
                folder,
                uidvalidity,
                uid,
                item,
            } => {
                if item == FLAGS_ITEM {
                    let (fs, _) = self.summary(folder, uidvalidity, uid)?;
                    let bytes = self.flags_bytes(&fs, uidvalidity, uid)?;
                    return Ok(Some(Snapshot::Bytes(Arc::new(bytes))));
                }
                let (fs, extras) = self.extras_of(folder, uidvalidity, uid)?;
                match extras.items.get(item as usize) {
                    Some((_, Extra::Link { .. })) => return Err(FsError::Io("a link".into())),
                    Some(_) => {
                        Snapshot::Bytes(self.extra_bytes(&fs, uidvalidity, uid, &extras, item)?)
                    }
                    None => return Err(FsError::NotFound),
                }
            }
            _ => return Ok(None),
        }))
    }

    /// Read an open generated file.
    pub(super) fn read_snapshot(&self, fh: u64, offset: u64, size: u32) -> Option<Vec<u8>> {
        let snap = self.handles.snapshot(fh)?;
        Some(match offset < snap.len() {
            true => snap.read(offset, size),
            false => Vec::new(),
        })
    }
}
