//! [`FailingStore`]: any [`MailStore`] with faults injected on command (errors, delays, dropped
//! connections, unreadable messages), for tests of the core's fallbacks without a server.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::search::Criteria;
use crate::store::{
    FlagsAnswer, FolderCounts, FolderEntry, FolderListing, MailStore, MessageBrief, RangeRequest,
    Refresh, Result, StoreError, StructureData,
};

/// The store operations a fault can be aimed at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    ListFolders,
    ListMessages,
    Refresh,
    FetchStructures,
    FetchRanges,
    Search,
    FetchBriefs,
    FetchFlags,
    FolderCounts,
    Quota,
}

#[derive(Clone, Debug)]
pub enum Fault {
    /// The operation fails with this error without reaching the inner store.
    Fail(StoreError),
    /// The operation waits this long, then runs.
    Delay(Duration),
    /// The connection drops after the server did the work: the answer is lost.
    Drop,
    /// `fetch_structures` only: this UID's answer is unreadable, the others stand.
    BadMessage(u32),
}

struct Armed {
    op: Op,
    fault: Fault,
    /// Calls it still applies to.
    left: usize,
}

pub struct FailingStore {
    inner: Arc<dyn MailStore>,
    armed: Mutex<Vec<Armed>>,
}

impl FailingStore {
    pub fn new(inner: Arc<dyn MailStore>) -> FailingStore {
        FailingStore {
            inner,
            armed: Mutex::new(Vec::new()),
        }
    }

    /// Apply `fault` to the next `times` calls of `op` (`usize::MAX`: until cleared).
    pub fn inject(&self, op: Op, fault: Fault, times: usize) {
        self.armed.lock().unwrap().push(Armed {
            op,
            fault,
            left: times,
        });
    }

    /// No more faults.
    pub fn clear(&self) {
        self.armed.lock().unwrap().clear();
    }

    /// The faults for this call of `op`, each used up once.
    fn take(&self, op: Op) -> Vec<Fault> {
        let mut armed = self.armed.lock().unwrap();
        let mut out = Vec::new();
        for a in armed.iter_mut().filter(|a| a.op == op && a.left > 0) {
            a.left -= 1;
            out.push(a.fault.clone());
        }
        armed.retain(|a| a.left > 0);
        out
    }

    fn run<T>(&self, op: Op, call: impl FnOnce() -> Result<T>) -> Result<T> {
        let faults = self.take(op);
        let mut dropped = false;
        for f in &faults {
            match f {
                Fault::Fail(e) => return Err(e.clone()),
                Fault::Delay(d) => std::thread::sleep(*d),
                Fault::Drop => dropped = true,
                Fault::BadMessage(_) => {}
            }
        }
        let answer = call();
        if dropped {
            return Err(StoreError::Connection("fault: connection dropped".into()));
        }
        answer
    }
}

impl MailStore for FailingStore {
    fn offers_binary(&self) -> bool {
        self.inner.offers_binary()
    }

    fn list_folders(&self) -> Result<Vec<FolderEntry>> {
        self.run(Op::ListFolders, || self.inner.list_folders())
    }

    fn list_messages(&self, folder: &str) -> Result<FolderListing> {
        self.run(Op::ListMessages, || self.inner.list_messages(folder))
    }

    fn refresh(&self, folder: &str, since: Option<&FolderListing>) -> Result<Refresh> {
        self.run(Op::Refresh, || self.inner.refresh(folder, since))
    }

    fn wait_for_change(&self, folder: &str, max: Duration) -> Result<bool> {
        self.inner.wait_for_change(folder, max)
    }

    fn fetch_structures(
        &self,
        folder: &str,
        uidvalidity: u32,
        uids: &[u32],
    ) -> Result<Vec<(u32, Result<StructureData>)>> {
        let bad: Vec<u32> = self
            .armed
            .lock()
            .unwrap()
            .iter()
            .filter_map(|a| match a.fault {
                Fault::BadMessage(u) if a.op == Op::FetchStructures => Some(u),
                _ => None,
            })
            .collect();
        let mut got = self.run(Op::FetchStructures, || {
            self.inner.fetch_structures(folder, uidvalidity, uids)
        })?;
        for (uid, r) in &mut got {
            if bad.contains(uid) {
                *r = Err(StoreError::Parse(format!("fault: UID {uid} unreadable")));
            }
        }
        Ok(got)
    }

    fn search(&self, folder: &str, uidvalidity: u32, criteria: &Criteria) -> Result<Vec<u32>> {
        self.run(Op::Search, || {
            self.inner.search(folder, uidvalidity, criteria)
        })
    }

    fn fetch_ranges(
        &self,
        folder: &str,
        uidvalidity: u32,
        reqs: &[RangeRequest],
    ) -> Result<Vec<Vec<u8>>> {
        self.run(Op::FetchRanges, || {
            self.inner.fetch_ranges(folder, uidvalidity, reqs)
        })
    }

    fn fetch_briefs(
        &self,
        folder: &str,
        uidvalidity: u32,
        uids: &[u32],
    ) -> Result<Vec<MessageBrief>> {
        self.run(Op::FetchBriefs, || {
            self.inner.fetch_briefs(folder, uidvalidity, uids)
        })
    }

    fn fetch_flags(
        &self,
        folder: &str,
        uidvalidity: u32,
        uids: &[u32],
        changed_since: Option<u64>,
    ) -> Result<FlagsAnswer> {
        self.run(Op::FetchFlags, || {
            self.inner
                .fetch_flags(folder, uidvalidity, uids, changed_since)
        })
    }

    fn folder_counts(&self) -> Result<Vec<FolderCounts>> {
        self.run(Op::FolderCounts, || self.inner.folder_counts())
    }

    fn quota(&self) -> Result<Option<crate::store::Quota>> {
        self.run(Op::Quota, || self.inner.quota())
    }
}
