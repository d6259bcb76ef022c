//! Search directories, answered by the server's `UID SEARCH`:
//! - `Folder/SEARCH/<criteria>/`: one link `UID → ../../UID` per match, and `INDEX` with the
//!   folder's INDEX lines of the matches;
//! - `SEARCH/<criteria>/<folder path, / as %2F>/`: the same links, one directory per folder
//!   with matches, searched folder by folder in parallel.
//!
//! A name is parsed by `crate::search::parse` before anything is sent (refused: ENOENT and one
//! warning). Answers are kept until the folder's listing is refreshed (once per poll interval,
//! at once after an IDLE change), then asked again; matches are those of the current listing, so
//! every link resolves. The kernel is not told when an answer changes: matches and search
//! INDEX have a zero TTL and a directory's listing is read afresh at every opendir (a search
//! directory's own entry is kept a second, so `ls -l SEARCH` does not count as using them all).

use std::collections::HashMap;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::fs::folders::ROOT_FOLDER;
use crate::fs::inodes::Node;
use crate::fs::{layout, Attr, DirEntry, FsError, FsResult, Kind, Ttl};
use crate::search::Criteria;
use crate::sync::lock;

use super::{parse_uid, MailFs};

/// Searches shown in a `SEARCH` directory (per folder, and at the root), newest first.
pub const MAX_RECENT: usize = 32;

#[derive(Default)]
pub struct Searches {
    /// Every accepted criteria name, by query id (inodes refer to them by id).
    queries: Vec<Arc<Query>>,
    by_name: HashMap<String, u32>,
    /// Query ids looked up in each folder's `SEARCH` (`ROOT_FOLDER`: the root's), newest first,
    /// with when (seconds since the epoch: the directory's mtime, so `ls -t` agrees).
    recent: HashMap<u32, VecDeque<(u32, i64)>>,
    /// The last answer for (folder, query), while the query is recent somewhere.
    results: HashMap<(u32, u32), Arc<Results>>,
}

pub struct Query {
    name: String,
    criteria: Criteria,
}

/// Matching UIDs of one folder, ascending, all in the listing they were checked against.
pub struct Results {
    uidvalidity: u32,
    listing_at: Instant,
    uids: Vec<u32>,
}

impl Results {
    fn has(&self, uid: u32) -> bool {
        self.uids.binary_search(&uid).is_ok()
    }
}

/// A folder path as the mount shows it, made one component: `/` as `%2F` (the shown
/// components already have their own `%` and `/` escaped, as in `FOLDERS`).
pub fn escape_path(shown: &str) -> String {
    shown.replace('/', "%2F")
}

impl MailFs {
    fn query(&self, id: u32) -> FsResult<Arc<Query>> {
        let s = lock(&self.searches);
        s.queries.get(id as usize).cloned().ok_or(FsError::NotFound)
    }

    /// Parse a name looked up in `folder`'s SEARCH and put it first among its recent searches.
    fn remember_search(&self, folder: u32, name: &str) -> FsResult<u32> {
        let criteria = crate::search::parse(name).map_err(|e| {
            log::warn!("search {name:?} refused: {e}");
            FsError::NotFound
        })?;
        let mut guard = lock(&self.searches);
        let s = &mut *guard;
        let id = match s.by_name.get(name) {
            Some(&id) => id,
            None => {
                let id = s.queries.len() as u32;
                s.queries.push(Arc::new(Query {
                    name: name.to_string(),
                    criteria,
                }));
                s.by_name.insert(name.to_string(), id);
                id
            }
        };
        drop(guard);
        self.touch_search(folder, id);
        Ok(id)
    }

    /// Put search `id` first among `folder`'s recent searches (looked up, or listed).
    fn touch_search(&self, folder: u32, id: u32) {
        let mut guard = lock(&self.searches);
        let s = &mut *guard;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let recent = s.recent.entry(folder).or_default();
        recent.retain(|&(q, _)| q != id);
        recent.push_front((id, now));
        recent.truncate(MAX_RECENT);
        // Keep answers only for searches someone can still list.
        let recent = &s.recent;
        let listed = |f: u32, q: u32| recent.get(&f).is_some_and(|r| r.iter().any(|e| e.0 == q));
        s.results
            .retain(|&(f, q), _| listed(ROOT_FOLDER, q) || listed(f, q));
    }

    /// The matches of query `q` in selectable folder `folder`, asked again when the listing
    /// was refreshed since.
    fn results(&self, folder: u32, q: u32) -> FsResult<Arc<Results>> {
        let fs = self.folder_state(folder)?.ok_or(FsError::NotFound)?;
        let listing = self.listing(&fs)?;
        let uv = listing.data.uidvalidity;
        let cached = lock(&self.searches).results.get(&(folder, q)).cloned();
        if let Some(r) = cached.filter(|r| r.uidvalidity == uv && r.listing_at == listing.fetched) {
            return Ok(r);
        }
        let query = self.query(q)?;
        let found = self.store.search(&fs.raw, uv, &query.criteria)?;
        let mut uids: Vec<u32> = found
            .into_iter()
            .filter(|&u| listing.message(u).is_some())
            .collect();
        uids.sort_unstable();
        uids.dedup();
        let r = Arc::new(Results {
            uidvalidity: uv,
            listing_at: listing.fetched,
            uids,
        });
        lock(&self.searches).results.insert((folder, q), r.clone());
        Ok(r)
    }

    /// Selectable folders with the name their root search directory gets, by name.
    fn searchable_folders(&self) -> FsResult<Vec<(u32, String)>> {
        let tree = self.tree()?;
        let paths = tree.paths();
        let mut out: Vec<(u32, String)> = tree
            .folders
            .iter()
            .filter(|(_, f)| f.raw.is_some())
            .filter_map(|(&id, _)| {
                Some((id, escape_path(&self.shown_path(&tree, paths.get(&id)?))))
            })
            .collect();
        out.sort_by(|a, b| a.1.cmp(&b.1));
        Ok(out)
    }

    fn symlink_attr(&self, ino: u64, target_len: usize) -> (Attr, Ttl) {
        let mut a = self.file_attr(ino, target_len as u64, self.mount_time);
        a.kind = Kind::Symlink;
        a.perm = 0o777;
        (a, Ttl::Live)
    }

    fn live_dir(&self, node: Node) -> (Attr, Ttl) {
        (self.dir_attr(self.ino(node), self.mount_time), Ttl::Live)
    }

    /// A search directory: mtime is when it was last looked up. Its entry may be kept a
    /// little (a `stat` right after `ls` must not count as a new look-up and reorder the list);
    /// its contents are read afresh at every opendir.
    fn search_dir_attr(&self, ino: u64, folder: u32, query: u32) -> FsResult<(Attr, Ttl)> {
        self.query(query)?;
        let s = lock(&self.searches);
        let at = s.recent.get(&folder).into_iter().flatten();
        let mtime = at.filter(|e| e.0 == query).map(|e| e.1).next();
        Ok((
            self.dir_attr(ino, mtime.unwrap_or(self.mount_time)),
            Ttl::Short,
        ))
    }

    pub(super) fn search_attr(&self, ino: u64, node: Node) -> FsResult<(Attr, Ttl)> {
        match node {
            Node::SearchDir(_) => Ok((self.dir_attr(ino, self.mount_time), Ttl::Live)),
            Node::Search { folder, query } => self.search_dir_attr(ino, folder, query),
            Node::SearchIn { query, .. } => {
                self.query(query)?;
                Ok((self.dir_attr(ino, self.mount_time), Ttl::Live))
            }
            Node::SearchIndex { folder, query } => {
                let bytes = self.search_index_bytes(folder, query)?;
                Ok((
                    self.file_attr(ino, bytes.len() as u64, self.mount_time),
                    Ttl::Live,
                ))
            }
            Node::SearchHit { .. } => {
                let target = self.search_readlink(node)?;
                Ok(self.symlink_attr(ino, target.len()))
            }
            _ => Err(FsError::NotFound),
        }
    }

    pub(super) fn search_lookup(&self, node: Node, name: &str) -> FsResult<(Attr, Ttl)> {
        match node {
            Node::SearchDir(folder) => {
                let query = self.remember_search(folder, name)?;
                if folder != ROOT_FOLDER {
                    self.results(folder, query)?;
                }
                let ino = self.ino(Node::Search { folder, query });
                self.search_dir_attr(ino, folder, query)
            }
            Node::Search {
                folder: ROOT_FOLDER,
                query,
            } => {
                let folders = self.searchable_folders()?;
                let &(folder, _) = folders
                    .iter()
                    .find(|(_, n)| n == name)
                    .ok_or(FsError::NotFound)?;
                if self.results(folder, query)?.uids.is_empty() {
                    return Err(FsError::NotFound);
                }
                Ok(self.live_dir(Node::SearchIn { query, folder }))
            }
            Node::Search { folder, query } if name == layout::INDEX => {
                let ino = self.ino(Node::SearchIndex { folder, query });
                self.search_attr(ino, Node::SearchIndex { folder, query })
            }
            Node::Search { folder, query } | Node::SearchIn { query, folder } => {
                let global = matches!(node, Node::SearchIn { .. });
                let uid = parse_uid(name).ok_or(FsError::NotFound)?;
                if !self.results(folder, query)?.has(uid) {
                    return Err(FsError::NotFound);
                }
                let hit = Node::SearchHit {
                    folder,
                    query,
                    uid,
                    global,
                };
                self.search_attr(self.ino(hit), hit)
            }
            _ => Err(FsError::NotDir),
        }
    }

    /// The entries of a search directory, without `.` and `..`.
    pub(super) fn search_readdir(&self, node: Node) -> FsResult<Vec<DirEntry>> {
        let dir = |node: Node, name: String| DirEntry {
            ino: self.ino(node),
            kind: Kind::Dir,
            name,
        };
        let hits = |folder: u32, query: u32, global: bool| -> FsResult<Vec<DirEntry>> {
            let r = self.results(folder, query)?;
            let mut inodes = self.nodes.table();
            Ok(r.uids
                .iter()
                .map(|&uid| DirEntry {
                    ino: inodes.ino_of(Node::SearchHit {
                        folder,
                        query,
                        uid,
                        global,
                    }),
                    kind: Kind::Symlink,
                    name: uid.to_string(),
                })
                .collect())
        };
        match node {
            Node::SearchDir(folder) => {
                let recent: Vec<(u32, String)> = {
                    let s = lock(&self.searches);
                    let ids = s.recent.get(&folder).into_iter().flatten();
                    ids.map(|&(q, _)| (q, s.queries[q as usize].name.clone()))
                        .collect()
                };
                Ok(recent
                    .into_iter()
                    .map(|(query, name)| dir(Node::Search { folder, query }, name))
                    .collect())
            }
            Node::Search {
                folder: ROOT_FOLDER,
                query,
            } => {
                self.touch_search(ROOT_FOLDER, query);
                let folders = self.searchable_folders()?;
                let found = crate::parallel::in_order(
                    &folders,
                    self.opts.parallel_fetches.max(1),
                    |(id, name)| match self.results(*id, query) {
                        Ok(r) => Ok(Some(r.uids.is_empty()).filter(|e| !e).map(|_| *id)),
                        Err(e) => {
                            // One folder failing leaves it out, not the others.
                            log::warn!("search in {name}: {e}");
                            Ok(None)
                        }
                    },
                    || FsError::Io("a search worker panicked".into()),
                )?;
                Ok(folders
                    .iter()
                    .zip(found)
                    .filter_map(|((_, name), hit)| {
                        let folder = hit?;
                        Some(dir(Node::SearchIn { query, folder }, name.clone()))
                    })
                    .collect())
            }
            Node::Search { folder, query } => {
                // Listing a search uses it (its entry may be in the kernel's cache, unasked).
                self.touch_search(folder, query);
                let mut out = vec![DirEntry {
                    ino: self.ino(Node::SearchIndex { folder, query }),
                    kind: Kind::File,
                    name: layout::INDEX.into(),
                }];
                out.extend(hits(folder, query, false)?);
                Ok(out)
            }
            Node::SearchIn { query, folder } => hits(folder, query, true),
            _ => Err(FsError::NotDir),
        }
    }

    /// Where a search match links to (only while it is a match).
    pub(super) fn search_readlink(&self, node: Node) -> FsResult<String> {
        let Node::SearchHit {
            folder,
            query,
            uid,
            global,
        } = node
        else {
            return Err(FsError::Io("not a symbolic link".into()));
        };
        if !self.results(folder, query)?.has(uid) {
            return Err(FsError::NotFound);
        }
        if !global {
            return Ok(format!("../../{uid}"));
        }
        let tree = self.tree()?;
        let path = tree.paths().remove(&folder).ok_or(FsError::NotFound)?;
        Ok(format!("../../../{}/{uid}", self.shown_path(&tree, &path)))
    }

    /// `INDEX` of a folder's search: the folder's INDEX lines of the matches.
    pub(super) fn search_index_bytes(&self, folder: u32, query: u32) -> FsResult<Arc<Vec<u8>>> {
        let r = self.results(folder, query)?;
        let index = self.index_of(folder)?;
        Ok(Arc::new(index.lines_of(&r.uids)))
    }
}
