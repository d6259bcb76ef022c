//! `FOLDERS` at the root: one line per folder the server lists, `path TAB MESSAGES TAB UNSEEN
//! TAB flags`, with the path as the mount shows it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use crate::fs::folders::{FolderTree, ROOT_FOLDER};
use crate::fs::{layout, Attr, FsResult, Ttl};
use crate::store::FolderEntry;
use crate::sync::lock;

use super::{parse_uid, MailFs};

/// One FOLDERS line; `-` for counts that are not known and for no flags.
pub fn folders_line(
    path: &str,
    messages: Option<u32>,
    unseen: Option<u32>,
    flags: &[String],
) -> String {
    let n = |c: Option<u32>| c.map_or("-".to_string(), |c| c.to_string());
    let flags = match flags.join(" ") {
        f if f.is_empty() => "-".to_string(),
        f => crate::mime::header::one_line(&f),
    };
    format!("{path}\t{}\t{}\t{flags}\n", n(messages), n(unseen))
}

impl MailFs {
    /// FOLDERS as it is now (built again once per poll interval).
    pub(super) fn folders_bytes(&self) -> FsResult<Arc<Vec<u8>>> {
        let mut slot = lock(&self.folders_file);
        if let Some((at, bytes)) = slot.as_ref() {
            if at.elapsed() < self.opts.poll_interval {
                return Ok(bytes.clone());
            }
        }
        let tree = self.tree()?;
        let paths = tree.paths();
        let by_raw: HashMap<&str, u32> = tree
            .folders
            .iter()
            .filter_map(|(&id, f)| f.raw.as_deref().map(|r| (r, id)))
            .collect();
        let counts = self.store.folder_counts()?;
        let mut lines: Vec<String> = Vec::with_capacity(counts.len());
        for c in &counts {
            // Non-selectable folders have no raw name in the tree: find them by their path.
            let id = by_raw.get(c.name.as_str()).copied().or_else(|| {
                let entry = FolderEntry {
                    name: c.name.clone(),
                    delimiter: c.delimiter,
                    selectable: false,
                    attributes: Vec::new(),
                };
                tree.find(&entry)
            });
            let Some(path) = id.and_then(|id| paths.get(&id)) else {
                continue;
            };
            lines.push(folders_line(
                &self.shown_path(&tree, path),
                c.messages,
                c.unseen,
                &c.flags,
            ));
        }
        lines.sort();
        let bytes = Arc::new(lines.concat().into_bytes());
        *slot = Some((Instant::now(), bytes.clone()));
        Ok(bytes)
    }

    /// A folder's path as the mount shows it (`/` between levels), from its raw components.
    pub(super) fn shown_path(&self, tree: &FolderTree, path: &[String]) -> String {
        let mut parent = ROOT_FOLDER;
        let mut shown = Vec::with_capacity(path.len());
        for comp in path {
            let beside = parse_uid(comp).is_some_and(|uid| self.holds_message(parent, uid));
            shown.push(layout::subfolder_name(comp, beside));
            parent = tree
                .get(parent)
                .and_then(|f| f.children.get(comp).copied())
                .unwrap_or(ROOT_FOLDER);
        }
        shown.join("/")
    }

    /// Does selectable folder `id` have a message with this UID (so a subfolder named by it
    /// shows escaped)?
    fn holds_message(&self, id: u32, uid: u32) -> bool {
        match self.folder_state(id) {
            Ok(Some(fs)) => self.listing(&fs).is_ok_and(|l| l.message(uid).is_some()),
            _ => false,
        }
    }

    pub(super) fn folders_attr(&self, ino: u64) -> FsResult<(Attr, Ttl)> {
        let bytes = self.folders_bytes()?;
        Ok((
            self.file_attr(ino, bytes.len() as u64, self.mount_time),
            Ttl::Live,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let flags = vec!["\\HasNoChildren".to_string(), "\\Sent".to_string()];
        assert_eq!(
            folders_line("Sent", Some(3), Some(0), &flags),
            "Sent\t3\t0\t\\HasNoChildren \\Sent\n"
        );
        assert_eq!(folders_line("A/B", None, None, &[]), "A/B\t-\t-\t-\n");
    }
}
