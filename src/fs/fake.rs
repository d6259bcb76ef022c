//! An in-memory [`MailStore`] for tests of the filesystem core: folders of messages given as
//! header, BODYSTRUCTURE and the encoded bytes of each section, with counters of what was asked.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use crate::sexp::Value;
use crate::store::{
    FolderEntry, FolderListing, MailStore, MessageSummary, RangeRequest, Result, StoreError,
    StructureData,
};

#[derive(Clone, Debug)]
pub struct FakeMessage {
    pub internal_date: i64,
    pub header: Vec<u8>,
    pub bodystructure: Value,
    /// Encoded bytes by IMAP section (`1`, `2.1`, `3.HEADER`, ...).
    pub sections: HashMap<String, Vec<u8>>,
    /// Simulate a server response the parser cannot read.
    pub unparseable: bool,
}

#[derive(Clone, Debug, Default)]
pub struct FakeFolder {
    pub selectable: bool,
    pub uidvalidity: u32,
    pub messages: BTreeMap<u32, FakeMessage>,
}

/// What the core asked of the store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub list_folders: usize,
    pub list_messages: usize,
    pub fetch_structures: usize,
    pub fetch_ranges: usize,
    /// Bytes of section data returned by fetch_ranges.
    pub range_bytes: u64,
}

#[derive(Default)]
pub struct FakeStore {
    pub folders: Mutex<BTreeMap<String, FakeFolder>>,
    pub counters: Mutex<Counters>,
}

impl FakeStore {
    pub fn new() -> FakeStore {
        FakeStore::default()
    }

    pub fn add_folder(&self, name: &str, selectable: bool, uidvalidity: u32) {
        self.folders.lock().unwrap().insert(
            name.to_string(),
            FakeFolder {
                selectable,
                uidvalidity,
                messages: BTreeMap::new(),
            },
        );
    }

    pub fn add_message(&self, folder: &str, uid: u32, msg: FakeMessage) {
        self.folders
            .lock()
            .unwrap()
            .get_mut(folder)
            .expect("folder exists")
            .messages
            .insert(uid, msg);
    }

    /// Change a folder in place (expunge, new UIDVALIDITY, ...), as another client would.
    pub fn edit_folder(&self, name: &str, edit: impl FnOnce(&mut FakeFolder)) {
        edit(
            self.folders
                .lock()
                .unwrap()
                .get_mut(name)
                .expect("folder exists"),
        );
    }

    pub fn counters(&self) -> Counters {
        self.counters.lock().unwrap().clone()
    }

    fn with_folder<T>(
        &self,
        folder: &str,
        uidvalidity: Option<u32>,
        f: impl FnOnce(&FakeFolder) -> T,
    ) -> Result<T> {
        let folders = self.folders.lock().unwrap();
        let fld = folders
            .get(folder)
            .filter(|f| f.selectable)
            .ok_or_else(|| StoreError::NoSuchFolder(folder.into()))?;
        if uidvalidity.is_some_and(|v| v != fld.uidvalidity) {
            return Err(StoreError::UidValidityChanged(folder.into()));
        }
        Ok(f(fld))
    }
}

impl MailStore for FakeStore {
    fn list_folders(&self) -> Result<Vec<FolderEntry>> {
        self.counters.lock().unwrap().list_folders += 1;
        Ok(self
            .folders
            .lock()
            .unwrap()
            .iter()
            .map(|(name, f)| FolderEntry {
                name: name.clone(),
                delimiter: Some('/'),
                selectable: f.selectable,
                attributes: Vec::new(),
            })
            .collect())
    }

    fn list_messages(&self, folder: &str) -> Result<FolderListing> {
        self.counters.lock().unwrap().list_messages += 1;
        self.with_folder(folder, None, |f| FolderListing {
            uidvalidity: f.uidvalidity,
            uidnext: f.messages.keys().last().map_or(1, |u| u + 1),
            exists: f.messages.len() as u32,
            messages: f
                .messages
                .iter()
                .map(|(&uid, m)| MessageSummary {
                    uid,
                    internal_date: m.internal_date,
                    rfc822_size: 0,
                })
                .collect(),
        })
    }

    fn fetch_structures(
        &self,
        folder: &str,
        uidvalidity: u32,
        uids: &[u32],
    ) -> Result<Vec<(u32, Result<StructureData>)>> {
        self.counters.lock().unwrap().fetch_structures += 1;
        self.with_folder(folder, Some(uidvalidity), |f| {
            uids.iter()
                .filter_map(|uid| {
                    let m = f.messages.get(uid)?;
                    let r = if m.unparseable {
                        Err(StoreError::Parse("fake: unparseable".into()))
                    } else {
                        Ok(StructureData {
                            bodystructure: m.bodystructure.clone(),
                            header: m.header.clone(),
                        })
                    };
                    Some((*uid, r))
                })
                .collect()
        })
    }

    fn fetch_ranges(
        &self,
        folder: &str,
        uidvalidity: u32,
        reqs: &[RangeRequest],
    ) -> Result<Vec<Vec<u8>>> {
        let answers: Vec<Vec<u8>> = self.with_folder(folder, Some(uidvalidity), |f| {
            reqs.iter()
                .map(|r| {
                    let Some(m) = f.messages.get(&r.uid) else {
                        return Vec::new();
                    };
                    let data = match r.section.as_str() {
                        "HEADER" => &m.header,
                        s => match m.sections.get(s) {
                            Some(d) => d,
                            None => return Vec::new(),
                        },
                    };
                    let start = (r.offset as usize).min(data.len());
                    let end = (r.offset.saturating_add(r.len) as usize).min(data.len());
                    data[start..end].to_vec()
                })
                .collect()
        })?;
        let mut c = self.counters.lock().unwrap();
        c.fetch_ranges += 1;
        c.range_bytes += answers.iter().map(|a| a.len() as u64).sum::<u64>();
        Ok(answers)
    }
}
