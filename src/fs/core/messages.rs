//! The messages part of the core ([`Messages`]): message directories, their structure fetched in
//! batches, sizes settled on demand, and a bound on how many are kept in memory. `message_info`
//! stays on `MailFs` because a miss also drives the read-ahead walks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::fs::content::{ContentFetcher, MsgCtx, UNKNOWN_SIZE_GUESS};
use crate::fs::message::{build_batch, MessageInfo, STRUCTURE_BATCH};
use crate::fs::{FsError, FsResult};
use crate::store::MailStore;
use crate::sync::lock;

use super::live::Folders;
use super::{neighbours, FolderState, MailFs};

impl MailFs {
    /// The files of a message, fetching the structure of it and its next neighbours if needed.
    pub(super) fn message_info(
        &self,
        fs: &FolderState,
        uidvalidity: u32,
        uid: u32,
    ) -> FsResult<Arc<MessageInfo>> {
        let listing = self.listing(fs)?;
        if listing.data.uidvalidity != uidvalidity {
            return Err(FsError::Stale);
        }
        self.walk_touch(fs, &listing, uid);
        if let Some(info) = lock(&fs.infos).get(&uid).cloned() {
            self.messages.promote(fs.id, uid);
            return Ok(info);
        }
        let one_fetch_at_a_time = lock(&fs.structure_lock);
        if let Some(info) = lock(&fs.infos).get(&uid) {
            return Ok(info.clone());
        }
        let msgs = &listing.data.messages;
        let pos = msgs
            .binary_search_by_key(&uid, |m| m.uid)
            .map_err(|_| FsError::NotFound)?;
        let positions = {
            let infos = lock(&fs.infos);
            neighbours(pos, msgs.len(), STRUCTURE_BATCH, |i| {
                !infos.contains_key(&msgs[i].uid)
            })
        };
        let batch: Vec<u32> = positions.iter().map(|&i| msgs[i].uid).collect();
        self.messages.load_structures(fs, uidvalidity, &batch)?;
        drop(one_fetch_at_a_time);
        self.walk_after_miss(fs, &listing, &positions);
        lock(&fs.infos)
            .get(&uid)
            .cloned()
            .ok_or_else(|| match batch.contains(&uid) {
                true => FsError::NotFound,
                false => FsError::Io(format!("{} UID {uid} was not fetched", fs.raw)),
            })
    }
}

/// The messages part: which message directories are in memory (their structure fetched), up to
/// a bound, and loading them; settling the sizes of their files. The directories themselves live
/// in each folder's state (`FolderState::infos`, `extras`), so they go with the folder.
pub(super) struct Messages {
    store: Arc<dyn MailStore>,
    content: Arc<ContentFetcher>,
    folders: Arc<Folders>,
    /// (folder, UID) of every message whose structure is in memory, least recently used first.
    known: Mutex<lru::LruCache<(u32, u32), ()>>,
    /// Message structures kept in memory (see MAX_MESSAGE_INFOS).
    max_infos: usize,
}

impl Messages {
    pub fn new(
        store: Arc<dyn MailStore>,
        content: Arc<ContentFetcher>,
        folders: Arc<Folders>,
        max_infos: usize,
    ) -> Messages {
        Messages {
            store,
            content,
            folders,
            known: Mutex::new(lru::LruCache::unbounded()),
            max_infos,
        }
    }

    /// How many message structures are in memory.
    pub fn count(&self) -> usize {
        lock(&self.known).len()
    }

    /// Note a use of a message directory in memory (it is forgotten last).
    pub fn promote(&self, folder: u32, uid: u32) {
        lock(&self.known).promote(&(folder, uid));
    }

    pub fn ctx<'a>(&'a self, fs: &'a FolderState, uidvalidity: u32, uid: u32) -> MsgCtx<'a> {
        self.content.msg(fs.id, &fs.raw, uidvalidity, uid)
    }

    /// Fetch the structures of `batch` and keep their directories (the caller holds
    /// `structure_lock`).
    pub fn load_structures(
        &self,
        fs: &FolderState,
        uidvalidity: u32,
        batch: &[u32],
    ) -> FsResult<()> {
        let results = self.store.fetch_structures(&fs.raw, uidvalidity, batch)?;
        let mut good = Vec::with_capacity(results.len());
        let mut broken = Vec::new();
        for (u, r) in results {
            match r {
                Ok(data) => good.push((u, data)),
                Err(e) => {
                    log::warn!("{} UID {u}: cannot read its structure: {e}", fs.raw);
                    broken.push(u);
                }
            }
        }
        let mut outlines: HashMap<u32, _> = good
            .iter()
            .map(|(u, data)| (*u, super::browse::outline_of(data)))
            .collect();
        for (u, data) in &good {
            let len = data.header.len() as u64;
            self.ctx(fs, uidvalidity, *u)
                .cache_decoded(0, 0, 0, &data.header, len);
        }
        let mut built = build_batch(&fs.raw, good, self.store.offers_binary());
        built.extend(
            broken
                .iter()
                .filter_map(|&u| Some((u, self.header_only(fs, uidvalidity, u)?))),
        );
        let rfc822_sizes: HashMap<u32, u64> = match lock(&fs.listing).as_ref() {
            Some(l) => batch
                .iter()
                .filter_map(|u| Some((*u, l.message(*u)?.rfc822_size)))
                .collect(),
            None => HashMap::new(),
        };
        let extras: Vec<_> = built
            .iter_mut()
            .map(|(u, info)| {
                let (nodes, mime) = outlines.remove(u).unwrap_or_default();
                let size = rfc822_sizes.get(u).copied();
                let e = super::browse::complete_message(info, nodes, &mime, size);
                (*u, Arc::new(e))
            })
            .collect();
        // Kept only if the folder still has this UIDVALIDITY: a refresh that saw it change
        // clears `infos` while holding the listing lock, so check and insert under it too
        // (a window fetched in the background may finish after such a change).
        let listing = lock(&fs.listing);
        if listing.as_ref().map(|l| l.data.uidvalidity) != Some(uidvalidity) {
            return Err(FsError::Stale);
        }
        let mut infos = lock(&fs.infos);
        let mut extras_map = lock(&fs.extras);
        for ((u, info), (_, e)) in built.into_iter().zip(extras) {
            infos.insert(u, info);
            extras_map.insert(u, e);
        }
        drop(extras_map);
        drop(infos);
        drop(listing);
        self.remember(fs.id, batch);
        Ok(())
    }

    /// A directory with just HEADER, for a message whose structure the server sent unreadably.
    pub fn header_only(
        &self,
        fs: &FolderState,
        uidvalidity: u32,
        uid: u32,
    ) -> Option<Arc<MessageInfo>> {
        let ctx = self.ctx(fs, uidvalidity, uid);
        let first = ctx.fetch("HEADER", 0, UNKNOWN_SIZE_GUESS).ok()?;
        let header = ctx.complete("HEADER", first, UNKNOWN_SIZE_GUESS).ok()?;
        let data = crate::store::StructureData {
            structure: Err(crate::mime::StructureError(
                "the server's answer was unreadable".into(),
            )),
            header,
        };
        ctx.cache_decoded(0, 0, 0, &data.header, data.header.len() as u64);
        build_batch(&fs.raw, vec![(uid, data)], self.store.offers_binary())
            .pop()
            .map(|(_, info)| info)
    }

    /// The decoded size of file `idx` of a message, settling it (for the same file of the
    /// neighbouring messages too, in one batch) if nobody asked before.
    pub fn file_size(
        &self,
        fs: &FolderState,
        uidvalidity: u32,
        uid: u32,
        info: &Arc<MessageInfo>,
        idx: usize,
    ) -> FsResult<u64> {
        let f = info.files.get(idx).ok_or(FsError::NotFound)?;
        if let Some(&size) = f.size.get() {
            return Ok(size);
        }
        lock(&fs.meta_walk).note_name(&f.name);
        let _one_settle_at_a_time = lock(&fs.settle_lock);
        if let Some(&size) = f.size.get() {
            return Ok(size);
        }
        let listing = self.folders.listing(fs)?;
        let msgs = &listing.data.messages;
        let batch: Vec<(u32, Arc<MessageInfo>)> = match msgs.binary_search_by_key(&uid, |m| m.uid) {
            Ok(pos) => {
                let infos = lock(&fs.infos);
                let unsettled = |i: usize| {
                    infos.get(&msgs[i].uid).is_some_and(|m| {
                        m.file_index(&f.name)
                            .is_some_and(|k| m.files[k].size.get().is_none())
                    })
                };
                let mut batch = vec![(uid, info.clone())];
                for i in neighbours(pos, msgs.len(), STRUCTURE_BATCH, unsettled)
                    .into_iter()
                    .skip(1)
                {
                    if let Some(m) = infos.get(&msgs[i].uid) {
                        batch.push((msgs[i].uid, m.clone()));
                    }
                }
                batch
            }
            Err(_) => vec![(uid, info.clone())],
        };
        // MIME headers are small and fetched whole: settle them along with any other file of
        // the message, so that `ls -l` of its directory adds no round trip for them.
        let mut names: Vec<&str> = vec![&f.name];
        names.extend(
            info.files
                .iter()
                .filter(|g| g.name != f.name && g.name.ends_with(".MIME") && g.size.get().is_none())
                .map(|g| g.name.as_str()),
        );
        self.content
            .settle(fs.id, &fs.raw, uidvalidity, &batch, &names)?;
        f.size
            .get()
            .copied()
            .ok_or_else(|| FsError::Io(format!("{} UID {uid}: size of {} unknown", fs.raw, f.name)))
    }

    /// Note that these messages' structures are in memory; forget the least recently used
    /// beyond `max_message_infos`.
    pub fn remember(&self, folder: u32, uids: &[u32]) {
        let mut evicted = Vec::new();
        {
            let mut known = lock(&self.known);
            for &uid in uids.iter().rev() {
                known.put((folder, uid), ());
            }
            while known.len() > self.max_infos.max(STRUCTURE_BATCH) {
                match known.pop_lru() {
                    Some((key, ())) => evicted.push(key),
                    None => break,
                }
            }
        }
        if evicted.is_empty() {
            return;
        }
        let folders: HashMap<u32, Arc<FolderState>> = self.folders.states();
        for (f, uid) in evicted {
            if let Some(state) = folders.get(&f) {
                let mut infos = lock(&state.infos);
                infos.remove(&uid);
                lock(&state.extras).remove(&uid);
            }
        }
    }
}
