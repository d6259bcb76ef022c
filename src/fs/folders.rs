//! The folder hierarchy: LIST entries split by their delimiter, decoded from modified UTF-7 and
//! escaped into path components; parents that LIST implies but does not name become
//! non-selectable directories.

use std::collections::{BTreeMap, HashMap};

use crate::names::{decode_mutf7, folder_component};
use crate::store::FolderEntry;

pub const ROOT_FOLDER: u32 = 0;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Folder {
    /// The server's name (mUTF-7) when the folder can be EXAMINEd.
    pub raw: Option<String>,
    /// Subfolders by path component.
    pub children: BTreeMap<String, u32>,
}

/// Folder ids, stable by path for the life of the mount (so inodes survive a re-LIST).
#[derive(Default)]
pub struct FolderIds {
    by_path: HashMap<Vec<String>, u32>,
}

impl FolderIds {
    fn id_of(&mut self, path: &[String]) -> u32 {
        if path.is_empty() {
            return ROOT_FOLDER;
        }
        let next = self.by_path.len() as u32 + 1;
        *self.by_path.entry(path.to_vec()).or_insert(next)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FolderTree {
    /// Every folder by id; the root (id 0) holds the top-level folders.
    pub folders: HashMap<u32, Folder>,
}

impl FolderTree {
    pub fn build(entries: &[FolderEntry], ids: &mut FolderIds) -> FolderTree {
        let mut folders: HashMap<u32, Folder> = HashMap::new();
        folders.insert(ROOT_FOLDER, empty_folder());
        for entry in entries {
            let path = display_path(entry);
            let mut parent = ROOT_FOLDER;
            for depth in 1..=path.len() {
                let id = ids.id_of(&path[..depth]);
                folders.entry(id).or_insert_with(empty_folder);
                let component = path[depth - 1].clone();
                if let Some(p) = folders.get_mut(&parent) {
                    let existing = *p.children.entry(component).or_insert(id);
                    if existing != id {
                        log::warn!("folder name collision at {:?}", &path[..depth]);
                    }
                }
                parent = id;
            }
            if entry.selectable {
                if let Some(f) = folders.get_mut(&parent) {
                    f.raw = Some(entry.name.clone());
                }
            }
        }
        FolderTree { folders }
    }

    pub fn get(&self, id: u32) -> Option<&Folder> {
        self.folders.get(&id)
    }
}

fn empty_folder() -> Folder {
    Folder {
        raw: None,
        children: BTreeMap::new(),
    }
}

/// Path components of a folder: split on the delimiter (ASCII, so it never occurs inside
/// modified UTF-7's base64 runs), each level decoded and escaped. INBOX is case-insensitive on
/// every server and is shown as `INBOX`.
pub(super) fn display_path(entry: &FolderEntry) -> Vec<String> {
    let levels: Vec<&str> = match entry.delimiter {
        Some(d) => entry.name.split(d).collect(),
        None => vec![entry.name.as_str()],
    };
    levels
        .iter()
        .enumerate()
        .map(|(i, level)| {
            if i == 0 && level.eq_ignore_ascii_case("INBOX") {
                "INBOX".to_string()
            } else {
                folder_component(&decode_mutf7(level))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, selectable: bool) -> FolderEntry {
        FolderEntry {
            name: name.into(),
            delimiter: Some('/'),
            selectable,
        }
    }

    #[test]
    fn nests_and_implies_parents() {
        let mut ids = FolderIds::default();
        let t = FolderTree::build(
            &[
                entry("INBOX", true),
                entry("Archive", false),
                entry("Archive/2024/Q1", true),
                entry("Entw&APw-rfe", true),
            ],
            &mut ids,
        );
        let root = t.get(ROOT_FOLDER).unwrap();
        assert_eq!(
            root.children.keys().collect::<Vec<_>>(),
            ["Archive", "Entwürfe", "INBOX"]
        );
        let archive = t.get(root.children["Archive"]).unwrap();
        assert_eq!(archive.raw, None);
        let y2024 = t.get(archive.children["2024"]).unwrap();
        assert_eq!(y2024.raw, None, "implied parent is not selectable");
        let q1 = t.get(y2024.children["Q1"]).unwrap();
        assert_eq!(q1.raw.as_deref(), Some("Archive/2024/Q1"));
        assert_eq!(
            t.get(root.children["Entwürfe"]).unwrap().raw.as_deref(),
            Some("Entw&APw-rfe")
        );
    }

    #[test]
    fn ids_survive_rebuild() {
        let mut ids = FolderIds::default();
        let a = FolderTree::build(&[entry("A", true), entry("B", true)], &mut ids);
        let b = FolderTree::build(&[entry("B", true)], &mut ids);
        let root_a = &a.get(ROOT_FOLDER).unwrap().children;
        let root_b = &b.get(ROOT_FOLDER).unwrap().children;
        assert_eq!(root_a["B"], root_b["B"]);
        assert!(!root_b.contains_key("A"));
    }

    #[test]
    fn slash_inside_a_level_does_not_nest() {
        let mut ids = FolderIds::default();
        let t = FolderTree::build(
            &[FolderEntry {
                name: "a/b.c".into(),
                delimiter: Some('.'),
                selectable: true,
            }],
            &mut ids,
        );
        let root = t.get(ROOT_FOLDER).unwrap();
        assert_eq!(root.children.keys().collect::<Vec<_>>(), ["a%2Fb"]);
    }
}
