//! Inode numbers: one per node, handed out on first sight and stable for the mount's life.

use std::collections::HashMap;

/// What an inode stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Node {
    Root,
    /// A folder directory (selectable or not), by folder id.
    Folder(u32),
    Message {
        folder: u32,
        uidvalidity: u32,
        uid: u32,
    },
    /// File `file` of a message directory (0 is HEADER).
    File {
        folder: u32,
        uidvalidity: u32,
        uid: u32,
        file: u32,
    },
    /// Generated entry `item` of a message directory (FLAGS, BODYSTRUCTURE, `.utf8`, links;
    /// see `layout::message_extras`).
    Extra {
        folder: u32,
        uidvalidity: u32,
        uid: u32,
        item: u32,
    },
    /// `FOLDERS` at the root.
    Folders,
    /// `INDEX` of a selectable folder, by folder id.
    Index(u32),
    /// `SEARCH` of a selectable folder, or of the root (`ROOT_FOLDER`).
    SearchDir(u32),
    /// One search (`query`, see `core::search`) in a folder, or across folders at the root.
    Search {
        folder: u32,
        query: u32,
    },
    /// Under a search at the root: the matches in folder `folder`.
    SearchIn {
        query: u32,
        folder: u32,
    },
    /// `INDEX` of a folder's search.
    SearchIndex {
        folder: u32,
        query: u32,
    },
    /// A match: a link to its message directory (`global`: under the root search).
    SearchHit {
        folder: u32,
        query: u32,
        uid: u32,
        global: bool,
    },
}

pub const ROOT_INO: u64 = 1;

#[derive(Default)]
pub struct InodeTable {
    nodes: Vec<Node>,
    by_node: HashMap<Node, u64>,
}

impl InodeTable {
    pub fn new() -> InodeTable {
        let mut t = InodeTable::default();
        t.ino_of(Node::Root);
        t
    }

    /// The inode of `node`, allocating one on first sight.
    pub fn ino_of(&mut self, node: Node) -> u64 {
        if let Some(&ino) = self.by_node.get(&node) {
            return ino;
        }
        self.nodes.push(node);
        let ino = self.nodes.len() as u64;
        self.by_node.insert(node, ino);
        ino
    }

    /// The inode of `node` if one was ever handed out (the kernel can only know those).
    pub fn existing(&self, node: &Node) -> Option<u64> {
        self.by_node.get(node).copied()
    }

    pub fn node(&self, ino: u64) -> Option<Node> {
        let idx = usize::try_from(ino.checked_sub(1)?).ok()?;
        self.nodes.get(idx).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_distinct() {
        let mut t = InodeTable::new();
        assert_eq!(t.node(ROOT_INO), Some(Node::Root));
        let a = t.ino_of(Node::Folder(3));
        let m = Node::Message {
            folder: 3,
            uidvalidity: 9,
            uid: 12,
        };
        let b = t.ino_of(m);
        assert_ne!(a, b);
        assert_eq!(t.ino_of(Node::Folder(3)), a);
        assert_eq!(t.node(b), Some(m));
        assert_eq!(t.node(0), None);
        assert_eq!(t.node(999), None);
    }
}
