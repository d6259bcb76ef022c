//! An in-memory [`MailStore`] for tests of the filesystem core: folders of messages given as
//! header, MIME tree and the encoded bytes of each section, with counters of what was asked.

pub mod failing;
pub mod parts;
mod types;
pub use types::{BinaryAnswer, Counters};
mod write;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::mime::{Part, StructureError};
use crate::search::{Criteria, Key};
use crate::store::{
    FlagsAnswer, FolderCounts, FolderEntry, FolderListing, MailStore, MessageBrief, MessageSummary,
    RangeRequest, Result, StoreError, StructureData,
};

#[derive(Clone, Debug)]
pub struct FakeMessage {
    pub internal_date: i64,
    pub header: Vec<u8>,
    /// The MIME tree (sections are numbered when served), or an unreadable BODYSTRUCTURE.
    pub structure: std::result::Result<Part, StructureError>,
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
    /// Flags by UID (none when absent).
    pub flags: HashMap<u32, Vec<String>>,
    /// LIST flags, for FOLDERS.
    pub list_flags: Vec<String>,
}

#[derive(Default)]
pub struct FakeStore {
    pub folders: Mutex<BTreeMap<String, FakeFolder>>,
    pub counters: Mutex<Counters>,
    /// How long `fetch_briefs` takes (to let tests line up concurrent readers).
    pub briefs_delay: Mutex<std::time::Duration>,
    /// Offer BINARY (RFC 3516).
    pub binary: AtomicBool,
    /// Replace NUL by 0x80 in `BODY[]` answers, as Dovecot does (IMAP literals cannot hold NUL).
    pub substitute_nul: AtomicBool,
    /// BINARY answers by (folder, UID, section); a section without one is answered as stored
    /// (what a server's BINARY gives for 7bit/8bit/binary parts).
    pub binary_answers: Mutex<HashMap<(String, u32, String), BinaryAnswer>>,
    /// Folders whose searches fail (a server error).
    pub search_fails: Mutex<Vec<String>>,
    /// Changes made (`--read-write`), one line each: `STORE INBOX 5 ...`, `CREATE x`.
    pub changes: Mutex<Vec<String>>,
    /// Answer flags with a mod-sequence (CONDSTORE), and refuse a conditional store of these
    /// UIDs (as if someone else changed their flags meanwhile).
    pub condstore: AtomicBool,
    pub modified: Mutex<Vec<u32>>,
    /// PERMANENTFLAGS has `\*`: keywords may be stored.
    pub keywords_allowed: AtomicBool,
    /// APPENDLIMIT (RFC 7889).
    pub append_limit: Mutex<Option<u64>>,
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
                flags: HashMap::new(),
                list_flags: Vec::new(),
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

    /// Offer BINARY, answering `section` of `uid` with `answer`.
    pub fn set_binary(&self, folder: &str, uid: u32, section: &str, answer: BinaryAnswer) {
        self.binary.store(true, Ordering::Relaxed);
        self.binary_answers
            .lock()
            .unwrap()
            .insert((folder.into(), uid, section.into()), answer);
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
    fn offers_binary(&self) -> bool {
        self.binary.load(Ordering::Relaxed)
    }

    fn store_flags(
        &self,
        folder: &str,
        uidvalidity: u32,
        uid: u32,
        change: &crate::store::FlagChange,
        unchanged_since: Option<u64>,
    ) -> Result<crate::store::FlagsOutcome> {
        self.do_store_flags(folder, uidvalidity, uid, change, unchanged_since)
    }

    fn move_messages(
        &self,
        from: &str,
        uidvalidity: u32,
        uids: &[u32],
        to: &str,
    ) -> Result<Vec<(u32, u32)>> {
        self.do_move(from, uidvalidity, uids, to)
    }

    fn expunge_messages(&self, folder: &str, uidvalidity: u32, uids: &[u32]) -> Result<()> {
        self.do_expunge(folder, uidvalidity, uids)
    }

    fn append_message(
        &self,
        folder: &str,
        file: &mut std::fs::File,
        size: u64,
    ) -> Result<crate::store::Appended> {
        self.do_append(folder, file, size)
    }

    fn create_folder(&self, name: &str) -> Result<()> {
        self.do_create_folder(name)
    }

    fn delete_folder(&self, name: &str) -> Result<()> {
        self.do_delete_folder(name)
    }

    fn rename_folder(&self, from: &str, to: &str) -> Result<()> {
        self.do_rename_folder(from, to)
    }

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
                    // The whole message when the test gives it (section ""), else unknown.
                    rfc822_size: m.sections.get("").map_or(0, |s| s.len() as u64),
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
                            structure: m.structure.clone().map(parts::numbered),
                            header: m.header.clone(),
                        })
                    };
                    Some((*uid, r))
                })
                .collect()
        })
    }

    fn fetch_briefs(
        &self,
        folder: &str,
        uidvalidity: u32,
        uids: &[u32],
    ) -> Result<Vec<MessageBrief>> {
        self.counters.lock().unwrap().fetch_briefs += 1;
        std::thread::sleep(*self.briefs_delay.lock().unwrap());
        self.with_folder(folder, Some(uidvalidity), |f| {
            uids.iter()
                .filter_map(|uid| {
                    let m = f.messages.get(uid)?;
                    Some(MessageBrief {
                        uid: *uid,
                        flags: f.flags.get(uid).cloned().unwrap_or_default(),
                        internal_date: m.internal_date,
                        zone_offset: 3600,
                        rfc822_size: m.sections.get("").map_or(0, |s| s.len() as u64),
                        fields: m.header.clone(),
                        modseq: None,
                    })
                })
                .collect()
        })
    }

    fn fetch_flags(
        &self,
        folder: &str,
        uidvalidity: u32,
        uids: &[u32],
        _changed_since: Option<u64>,
    ) -> Result<FlagsAnswer> {
        self.counters.lock().unwrap().fetch_flags += 1;
        self.with_folder(folder, Some(uidvalidity), |f| FlagsAnswer {
            flags: uids
                .iter()
                .filter(|u| f.messages.contains_key(u))
                .map(|u| (*u, f.flags.get(u).cloned().unwrap_or_default()))
                .collect(),
            modseq: self.condstore.load(Ordering::Relaxed).then_some(5),
        })
    }

    fn folder_counts(&self) -> Result<Vec<FolderCounts>> {
        self.counters.lock().unwrap().folder_counts += 1;
        let folders = self.folders.lock().unwrap();
        Ok(folders
            .iter()
            .map(|(name, f)| {
                let unseen = f
                    .messages
                    .keys()
                    .filter(|u| {
                        !f.flags
                            .get(u)
                            .is_some_and(|fl| fl.iter().any(|x| x == "\\Seen"))
                    })
                    .count() as u32;
                FolderCounts {
                    name: name.clone(),
                    delimiter: Some('/'),
                    flags: f.list_flags.clone(),
                    messages: f.selectable.then_some(f.messages.len() as u32),
                    unseen: f.selectable.then_some(unseen),
                }
            })
            .collect())
    }

    fn search(&self, folder: &str, uidvalidity: u32, criteria: &Criteria) -> Result<Vec<u32>> {
        self.counters.lock().unwrap().search += 1;
        if self
            .search_fails
            .lock()
            .unwrap()
            .iter()
            .any(|f| f == folder)
        {
            return Err(StoreError::Server("fake: search failed".into()));
        }
        self.with_folder(folder, Some(uidvalidity), |f| {
            let max = f.messages.keys().last().copied().unwrap_or(0);
            let mut out = Vec::new();
            for (&uid, m) in &f.messages {
                let flags = f.flags.get(&uid).cloned().unwrap_or_default();
                let msg = (uid, max, m, &flags[..]);
                if all_match(&criteria.keys, msg)? {
                    out.push(uid);
                }
            }
            Ok(out)
        })?
    }

    fn fetch_ranges(
        &self,
        folder: &str,
        uidvalidity: u32,
        reqs: &[RangeRequest],
    ) -> Result<Vec<Vec<u8>>> {
        let binary_answers = self.binary_answers.lock().unwrap().clone();
        let substitute = self.substitute_nul.load(Ordering::Relaxed);
        let answers: Result<Vec<Vec<u8>>> = self.with_folder(folder, Some(uidvalidity), |f| {
            reqs.iter()
                .map(|r| {
                    let Some(m) = f.messages.get(&r.uid) else {
                        return Ok(Vec::new());
                    };
                    let mut data = match r.section.as_str() {
                        "HEADER" => &m.header,
                        s => match m.sections.get(s) {
                            Some(d) => d,
                            None => return Ok(Vec::new()),
                        },
                    };
                    if r.binary {
                        if !self.offers_binary() {
                            return Err(StoreError::Server("BINARY is not offered".into()));
                        }
                        match binary_answers.get(&(folder.to_string(), r.uid, r.section.clone())) {
                            Some(BinaryAnswer::Decoded(d)) => data = d,
                            Some(BinaryAnswer::Refused) => {
                                return Err(StoreError::Server(
                                    "[PARSE] Invalid data in MIME part".into(),
                                ))
                            }
                            None => {}
                        }
                    }
                    let start = (r.offset as usize).min(data.len());
                    let end = (r.offset.saturating_add(r.len) as usize).min(data.len());
                    let mut out = data[start..end].to_vec();
                    if substitute && !r.binary {
                        out.iter_mut().filter(|b| **b == 0).for_each(|b| *b = 0x80);
                    }
                    Ok(out)
                })
                .collect()
        })?;
        let answers = answers?;
        let mut c = self.counters.lock().unwrap();
        c.fetch_ranges += 1;
        c.binary_ranges += reqs.iter().filter(|r| r.binary).count();
        c.binary_bytes += (reqs.iter().zip(&answers))
            .filter(|(r, _)| r.binary)
            .map(|(_, a)| a.len() as u64)
            .sum::<u64>();
        c.range_bytes += answers.iter().map(|a| a.len() as u64).sum::<u64>();
        Ok(answers)
    }
}

/// A message as the fake search sees it: UID, highest UID of the folder, message, flags.
type Searched<'a> = (u32, u32, &'a FakeMessage, &'a [String]);

fn all_match(keys: &[Key], m: Searched) -> Result<bool> {
    for k in keys {
        if !key_matches(k, m)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty()
        || hay
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

/// The unfolded value of header field `name` (empty if absent).
fn header_value(header: &[u8], name: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(header)
        .replace("\r\n\t", " ")
        .replace("\r\n ", " ");
    for line in text.split("\r\n") {
        if let Some((n, v)) = line.split_once(':') {
            if n.as_bytes().eq_ignore_ascii_case(name) {
                return v.trim().as_bytes().to_vec();
            }
        }
    }
    Vec::new()
}

/// `1:3,7,9:*` holding `uid` (`*` is the highest UID).
fn in_set(set: &str, uid: u32, max: u32) -> bool {
    let num = |s: &str| match s {
        "*" => Some(max),
        s => s.parse::<u32>().ok(),
    };
    set.split(',').any(|r| match r.split_once(':') {
        Some((a, b)) => match (num(a), num(b)) {
            (Some(a), Some(b)) => (a.min(b)..=a.max(b)).contains(&uid),
            _ => false,
        },
        None => num(r) == Some(uid),
    })
}

fn key_matches(k: &Key, m: Searched) -> Result<bool> {
    let (uid, max, msg, flags) = m;
    let has = |f: &str| flags.iter().any(|x| x.eq_ignore_ascii_case(f));
    let body = || {
        msg.sections
            .values()
            .flatten()
            .copied()
            .collect::<Vec<u8>>()
    };
    Ok(match k {
        Key::Flag(f) => match *f {
            "ALL" => true,
            "SEEN" | "ANSWERED" | "FLAGGED" | "DELETED" | "DRAFT" => {
                has(&format!("\\{}{}", &f[..1], f[1..].to_ascii_lowercase()))
            }
            un if un.starts_with("UN") => {
                let f = &un[2..];
                !has(&format!("\\{}{}", &f[..1], f[1..].to_ascii_lowercase()))
            }
            other => return Err(StoreError::Server(format!("fake: no {other}"))),
        },
        Key::Text("TEXT", s) => contains_ci(&msg.header, s) || contains_ci(&body(), s),
        Key::Text("BODY", s) => contains_ci(&body(), s),
        Key::Text(name, s) => contains_ci(&header_value(&msg.header, name.as_bytes()), s),
        Key::Header(name, s) => contains_ci(&header_value(&msg.header, name), s),
        Key::Keyword("KEYWORD", f) => has(f),
        Key::Keyword(_, f) => !has(f),
        Key::Size(name, n) => {
            let size = msg.sections.get("").map_or(0, |s| s.len() as u64);
            match *name {
                "LARGER" => size > *n,
                _ => size < *n,
            }
        }
        Key::Uid(set) => in_set(set, uid, max),
        Key::Not(k) => !key_matches(k, m)?,
        Key::Or(a, b) => key_matches(a, m)? || key_matches(b, m)?,
        Key::And(ks) => all_match(ks, m)?,
        other => return Err(StoreError::Server(format!("fake: cannot search {other:?}"))),
    })
}
