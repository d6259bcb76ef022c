//! The fake store's changes (`--read-write`), each recorded in `FakeStore::changes`.

use super::FakeStore;
use crate::store::{FlagChange, FlagsOutcome, Result, StoreError};

impl FakeStore {
    fn record(&self, what: String) {
        self.changes.lock().unwrap().push(what);
    }

    pub(super) fn do_store_flags(
        &self,
        folder: &str,
        uidvalidity: u32,
        uid: u32,
        change: &FlagChange,
        unchanged_since: Option<u64>,
    ) -> Result<FlagsOutcome> {
        let mut folders = self.folders.lock().unwrap();
        let f = folders
            .get_mut(folder)
            .filter(|f| f.selectable)
            .ok_or_else(|| StoreError::NoSuchFolder(folder.into()))?;
        if f.uidvalidity != uidvalidity {
            return Err(StoreError::UidValidityChanged(folder.into()));
        }
        let new = match change {
            FlagChange::Replace(s) | FlagChange::Edit { add: s, .. } => s,
        };
        if let Some(k) = new.iter().find(|k| !k.starts_with('\\')) {
            if !self
                .keywords_allowed
                .load(std::sync::atomic::Ordering::Relaxed)
            {
                return Err(StoreError::NotPermitted(format!(
                    "{folder}: keyword {k} not in PERMANENTFLAGS"
                )));
            }
        }
        if unchanged_since.is_some() && self.modified.lock().unwrap().contains(&uid) {
            return Ok(FlagsOutcome::Modified);
        }
        if f.messages.contains_key(&uid) {
            let old = f.flags.get(&uid).cloned().unwrap_or_default();
            f.flags.insert(uid, change.apply(&old));
        }
        drop(folders);
        self.record(format!(
            "STORE {folder} {uid} {change:?} since {unchanged_since:?}"
        ));
        Ok(FlagsOutcome::Stored { modseq: None })
    }

    pub(super) fn do_move(
        &self,
        from: &str,
        uidvalidity: u32,
        uids: &[u32],
        to: &str,
    ) -> Result<Vec<(u32, u32)>> {
        let mut folders = self.folders.lock().unwrap();
        let src = folders
            .get_mut(from)
            .filter(|f| f.uidvalidity == uidvalidity)
            .ok_or_else(|| StoreError::UidValidityChanged(from.into()))?;
        let moving: Vec<_> = uids
            .iter()
            .filter_map(|u| Some((*u, src.messages.remove(u)?, src.flags.remove(u))))
            .collect();
        let dst = folders
            .get_mut(to)
            .ok_or_else(|| StoreError::NoSuchFolder(to.into()))?;
        let mut map = Vec::new();
        for (uid, msg, flags) in moving {
            let new = dst.messages.keys().next_back().map_or(1, |u| u + 1);
            dst.messages.insert(new, msg);
            if let Some(f) = flags {
                dst.flags.insert(new, f);
            }
            map.push((uid, new));
        }
        drop(folders);
        self.record(format!("MOVE {from} {uids:?} {to}"));
        Ok(map)
    }

    pub(super) fn do_expunge(&self, folder: &str, uidvalidity: u32, uids: &[u32]) -> Result<()> {
        let mut folders = self.folders.lock().unwrap();
        let f = folders
            .get_mut(folder)
            .filter(|f| f.uidvalidity == uidvalidity)
            .ok_or_else(|| StoreError::UidValidityChanged(folder.into()))?;
        for u in uids {
            f.messages.remove(u);
            f.flags.remove(u);
        }
        drop(folders);
        self.record(format!("EXPUNGE {folder} {uids:?}"));
        Ok(())
    }

    pub(super) fn do_create_folder(&self, name: &str) -> Result<()> {
        if self.folders.lock().unwrap().contains_key(name) {
            return Err(StoreError::AlreadyExists(name.into()));
        }
        self.add_folder(name, true, 1);
        self.record(format!("CREATE {name}"));
        Ok(())
    }

    pub(super) fn do_delete_folder(&self, name: &str) -> Result<()> {
        self.folders
            .lock()
            .unwrap()
            .remove(name)
            .ok_or_else(|| StoreError::NoSuchFolder(name.into()))?;
        self.record(format!("DELETE {name}"));
        Ok(())
    }

    pub(super) fn do_rename_folder(&self, from: &str, to: &str) -> Result<()> {
        let mut folders = self.folders.lock().unwrap();
        if folders.contains_key(to) {
            return Err(StoreError::AlreadyExists(to.into()));
        }
        // The folder and everything under it, as IMAP's RENAME does.
        let prefix = format!("{from}/");
        let moved: Vec<String> = folders
            .keys()
            .filter(|k| *k == from || k.starts_with(&prefix))
            .cloned()
            .collect();
        if moved.is_empty() {
            return Err(StoreError::NoSuchFolder(from.into()));
        }
        for old in moved {
            let f = folders.remove(&old).expect("listed above");
            folders.insert(format!("{to}{}", &old[from.len()..]), f);
        }
        drop(folders);
        self.record(format!("RENAME {from} {to}"));
        Ok(())
    }

    /// APPEND: the bytes become a message with the next UID (a plain-text leaf; the header is
    /// what precedes the first empty line). Refused beyond `append_limit`.
    pub(super) fn do_append(
        &self,
        folder: &str,
        file: &mut std::fs::File,
        size: u64,
    ) -> Result<crate::store::Appended> {
        use std::io::{Read, Seek};
        if let Some(limit) = *self.append_limit.lock().unwrap() {
            if size > limit {
                return Err(StoreError::TooBig(format!(
                    "{folder}: {size} > APPENDLIMIT {limit}"
                )));
            }
        }
        let mut bytes = Vec::new();
        file.rewind()
            .and_then(|_| file.take(size).read_to_end(&mut bytes))
            .map_err(|e| StoreError::Connection(format!("spool: {e}")))?;
        let split = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(0, |p| p + 4);
        let mut folders = self.folders.lock().unwrap();
        let f = folders
            .get_mut(folder)
            .filter(|f| f.selectable)
            .ok_or_else(|| StoreError::NoSuchFolder(folder.into()))?;
        let uid = f.messages.keys().next_back().map_or(1, |u| u + 1);
        let body = bytes[split..].to_vec();
        let msg = super::FakeMessage {
            internal_date: 1_800_000_000,
            header: bytes[..split].to_vec(),
            structure: Ok(super::parts::leaf("text", "plain", "7bit", body.len())),
            sections: [("1".to_string(), body), (String::new(), bytes)].into(),
            unparseable: false,
        };
        f.messages.insert(uid, msg);
        let uv = f.uidvalidity;
        drop(folders);
        self.record(format!("APPEND {folder} {size} -> {uid}"));
        Ok(crate::store::Appended {
            uid: Some((uv, uid)),
            recovered: false,
        })
    }
}
