//! The folder hierarchy: LIST entries split by their delimiter, decoded from modified UTF-7 and
//! escaped into path components; parents that LIST implies but does not name become
//! non-selectable directories. Folders are told apart by their raw server names, so names that
//! collide once decoded and escaped are disambiguated (see [`crate::names::disambiguate`]) and
//! every folder stays reachable.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use crate::names::{decode_mutf7, disambiguate, folder_component};
use crate::store::FolderEntry;

pub const ROOT_FOLDER: u32 = 0;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Folder {
    /// The server's name (mUTF-7) when the folder can be EXAMINEd.
    pub raw: Option<String>,
    /// Subfolders by path component.
    pub children: BTreeMap<String, u32>,
}

/// Folder ids, stable by raw server path for the life of the mount (so inodes survive a
/// re-LIST).
#[derive(Default)]
pub struct FolderIds {
    by_path: HashMap<Vec<String>, u32>,
}

impl FolderIds {
    /// A folder and its subfolders were renamed: they keep their ids (and so their inodes,
    /// which the kernel moved along with the directory).
    pub fn rename(&mut self, from: &[String], to: &[String]) {
        let moved: Vec<Vec<String>> = self
            .by_path
            .keys()
            .filter(|p| p.starts_with(from))
            .cloned()
            .collect();
        for old in moved {
            let id = self.by_path.remove(&old).expect("listed above");
            let mut new = to.to_vec();
            new.extend_from_slice(&old[from.len()..]);
            self.by_path.insert(new, id);
        }
    }

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
    /// Folder ids by raw server path (levels split at the delimiter).
    by_raw_path: HashMap<Vec<String>, u32>,
}

/// Collisions already logged (a LIST is repeated often; warn once per pair).
static LOGGED: Mutex<Option<HashSet<(String, String)>>> = Mutex::new(None);

impl FolderTree {
    pub fn build(entries: &[FolderEntry], ids: &mut FolderIds) -> FolderTree {
        // Every raw path (and its implied parents), with the name to EXAMINE if selectable.
        let mut nodes: BTreeMap<Vec<String>, Option<String>> = BTreeMap::new();
        for entry in entries {
            let path = raw_path(entry);
            for depth in 1..path.len() {
                nodes.entry(path[..depth].to_vec()).or_insert(None);
            }
            let slot = nodes.entry(path).or_insert(None);
            if entry.selectable {
                *slot = Some(entry.name.clone());
            }
        }
        let mut by_parent: BTreeMap<Vec<String>, Vec<Vec<String>>> = BTreeMap::new();
        for path in nodes.keys() {
            by_parent
                .entry(path[..path.len() - 1].to_vec())
                .or_default()
                .push(path.clone());
        }
        let mut folders: HashMap<u32, Folder> = HashMap::new();
        folders.insert(ROOT_FOLDER, empty_folder());
        let mut by_raw_path = HashMap::new();
        for (path, raw) in &nodes {
            let id = ids.id_of(path);
            by_raw_path.insert(path.clone(), id);
            folders.entry(id).or_insert_with(empty_folder).raw = raw.clone();
        }
        for (parent, kids) in by_parent {
            let levels: Vec<(String, String)> = kids
                .iter()
                .map(|p| {
                    let level = &p[p.len() - 1];
                    (level.clone(), display_level(level, p.len() == 1))
                })
                .collect();
            let names = disambiguate(&levels);
            log_collisions(&parent, &levels, &names);
            let parent_id = ids.id_of(&parent);
            let children: BTreeMap<String, u32> = kids
                .iter()
                .zip(names)
                .map(|(p, name)| (name, ids.id_of(p)))
                .collect();
            folders
                .entry(parent_id)
                .or_insert_with(empty_folder)
                .children = children;
        }
        FolderTree {
            folders,
            by_raw_path,
        }
    }

    /// The id of the folder LIST reported as `entry`.
    pub fn find(&self, entry: &FolderEntry) -> Option<u32> {
        self.by_raw_path.get(&raw_path(entry)).copied()
    }

    /// The raw server levels of folder `id` (the root's: none).
    pub fn raw_levels(&self, id: u32) -> Option<Vec<String>> {
        if id == ROOT_FOLDER {
            return Some(Vec::new());
        }
        let found = self.by_raw_path.iter().find(|(_, &v)| v == id);
        found.map(|(k, _)| k.clone())
    }

    /// The ids of the folder with these raw levels and of every folder under it.
    pub fn ids_under(&self, levels: &[String]) -> Vec<u32> {
        let under = self
            .by_raw_path
            .iter()
            .filter(|(p, _)| p.starts_with(levels));
        under.map(|(_, &id)| id).collect()
    }

    pub fn get(&self, id: u32) -> Option<&Folder> {
        self.folders.get(&id)
    }

    /// The path components (as children are named in the tree, before the escapes applied at
    /// listing time) of every folder, by id; the root's is empty.
    pub fn paths(&self) -> HashMap<u32, Vec<String>> {
        let mut out = HashMap::new();
        let mut stack = vec![(ROOT_FOLDER, Vec::new())];
        while let Some((id, path)) = stack.pop() {
            if let Some(f) = self.folders.get(&id) {
                for (name, &child) in &f.children {
                    let mut p: Vec<String> = path.clone();
                    p.push(name.clone());
                    stack.push((child, p));
                }
            }
            out.insert(id, path);
        }
        out
    }
}

fn empty_folder() -> Folder {
    Folder {
        raw: None,
        children: BTreeMap::new(),
    }
}

/// Warn (once per pair) about subfolders that had to be renamed.
fn log_collisions(parent: &[String], levels: &[(String, String)], names: &[String]) {
    for (i, (raw, plain)) in levels.iter().enumerate() {
        if names[i] == *plain {
            continue;
        }
        let Some(keeper) = levels
            .iter()
            .zip(names)
            .find(|((_, p), n)| p == plain && *n == plain)
            .map(|((r, _), _)| r)
        else {
            continue;
        };
        let mut logged = crate::sync::lock(&LOGGED);
        if logged
            .get_or_insert_with(HashSet::new)
            .insert((keeper.clone(), raw.clone()))
        {
            let mut a = parent.to_vec();
            a.push(keeper.clone());
            let mut b = parent.to_vec();
            b.push(raw.clone());
            log::warn!(
                "folders {:?} and {:?} would both show as {:?}; the second shows as {:?}",
                a.join("/"),
                b.join("/"),
                plain,
                names[i]
            );
        }
    }
}

/// The levels of a folder's raw name, split on the delimiter (ASCII, so it never occurs inside
/// modified UTF-7's base64 runs). INBOX is case-insensitive on every server: its level is
/// written `INBOX`.
fn raw_path(entry: &FolderEntry) -> Vec<String> {
    let mut levels: Vec<String> = match entry.delimiter {
        Some(d) => entry.name.split(d).map(str::to_string).collect(),
        None => vec![entry.name.clone()],
    };
    if levels[0].eq_ignore_ascii_case("INBOX") {
        levels[0] = "INBOX".to_string();
    }
    levels
}

/// The directory name of one level: decoded from modified UTF-7 and escaped.
fn display_level(level: &str, top: bool) -> String {
    if top && level == "INBOX" {
        "INBOX".to_string()
    } else {
        folder_component(&decode_mutf7(level))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, selectable: bool) -> FolderEntry {
        FolderEntry {
            name: name.into(),
            delimiter: Some('/'),
            selectable,
            attributes: Vec::new(),
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
                attributes: Vec::new(),
            }],
            &mut ids,
        );
        let root = t.get(ROOT_FOLDER).unwrap();
        assert_eq!(root.children.keys().collect::<Vec<_>>(), ["a%2Fb"]);
    }

    #[test]
    fn colliding_names_all_reachable() {
        let mut ids = FolderIds::default();
        let t = FolderTree::build(
            &[
                entry(".", true),
                entry("&AC4-", true),
                entry("Entwürfe/a", true),
                entry("Entw&APw-rfe/b", true),
                entry("x%41", true),
                entry("x&ACU-41", true),
            ],
            &mut ids,
        );
        let root = t.get(ROOT_FOLDER).unwrap();
        assert_eq!(
            root.children.keys().collect::<Vec<_>>(),
            [
                "%2E",
                "%2E~2",
                "Entwürfe",
                "Entwürfe~2",
                "x%2541",
                "x%2541~2"
            ]
        );
        let raw = |name: &str| t.get(root.children[name]).unwrap().raw.clone();
        assert_eq!(raw("%2E").as_deref(), Some("&AC4-"));
        assert_eq!(raw("%2E~2").as_deref(), Some("."));
        assert_eq!(raw("x%2541").as_deref(), Some("x%41"));
        assert_eq!(raw("x%2541~2").as_deref(), Some("x&ACU-41"));
        // The two parents stay apart, each with its own child.
        let e1 = t.get(root.children["Entwürfe"]).unwrap();
        let e2 = t.get(root.children["Entwürfe~2"]).unwrap();
        assert_eq!(e1.children.keys().collect::<Vec<_>>(), ["b"]);
        assert_eq!(e2.children.keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!(
            t.get(e2.children["a"]).unwrap().raw.as_deref(),
            Some("Entwürfe/a")
        );
    }

    #[test]
    fn non_utf8_and_control_names() {
        let mut ids = FolderIds::default();
        let latin1 = crate::names::name_from_raw(b"Entw\xfcrfe");
        let t = FolderTree::build(
            &[
                entry(&latin1, true),
                entry("a\r\nb", true),
                entry("INBOX", true),
            ],
            &mut ids,
        );
        let root = t.get(ROOT_FOLDER).unwrap();
        assert_eq!(
            root.children.keys().collect::<Vec<_>>(),
            ["Entw%FCrfe", "INBOX", "a%0D%0Ab"]
        );
        assert_eq!(
            t.get(root.children["Entw%FCrfe"]).unwrap().raw.as_deref(),
            Some(latin1.as_str())
        );
    }
}
