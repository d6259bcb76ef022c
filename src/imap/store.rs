//! [`ImapStore`]: the [`MailStore`] over a pool of IMAP connections: retry and fail-fast, the
//! isolation of unreadable messages in a structure batch, the IDLE slot. Read-only by
//! construction: only LIST, EXAMINE, STATUS, NOOP, UID SEARCH, IDLE, GETQUOTAROOT and
//! `UID FETCH` with `BODY.PEEK`/`BINARY.PEEK` are ever sent. The fetch planner is in
//! [`plan`](super::plan), the answers' mapping in [`mapping`](super::mapping).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::mapping::add_implied_parents;
use super::plan::{collect_bodies, Bodies, RangePlan, MAX_ITEMS};
use super::pool::{Lease, Pool};
use super::session::Conn;
use super::sexp::Value;
use super::uidset;
use super::{ConnectError, ServerConfig};
use crate::store::{
    FlagsAnswer, FolderCounts, FolderEntry, FolderListing, MailStore, MessageBrief, RangeRequest,
    Refresh, Result, StoreError, StructureData,
};

/// Wait before the first retry of an idempotent command after a transient failure; each later
/// retry waits twice as long, up to MAX_BACKOFF, while the operation's time budget (the
/// `--timeout`) lasts.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Most failed commands spent isolating unparsable messages in one `fetch_structures` call.
const MAX_NARROWING_FAILURES: usize = 32;

pub struct ImapStore {
    pool: Pool,
    /// When an operation last gave up on the server (all retries spent).
    gave_up: Mutex<Option<(Instant, String)>>,
    /// The connection that IDLEs, outside the pool; `Err` once the server refused IDLE.
    idler: Mutex<std::result::Result<Option<Conn>, ()>>,
    /// `--read-write`: folders are opened with SELECT and changes are allowed.
    read_write: std::sync::atomic::AtomicBool,
}

/// After an operation gave up on the server, others fail at once for this long instead of each
/// spending a whole timeout (the kernel re-asks a failed read straight away, and a lookup path
/// asks several times).
const FAIL_FAST: Duration = Duration::from_secs(2);

impl ImapStore {
    /// Connect and log in once, so that a wrong password, an unreachable host or a bad
    /// certificate is reported before mounting; the connection is kept in the pool.
    pub fn connect(cfg: ServerConfig) -> std::result::Result<ImapStore, ConnectError> {
        Pool::connect(cfg)
            .map(|pool| ImapStore {
                pool,
                gave_up: Mutex::new(None),
                idler: Mutex::new(Ok(None)),
                read_write: Default::default(),
            })
            .map_err(|f| ConnectError(f.msg))
    }

    /// Open the rest of the pool's connections now, in parallel (see [`Pool::fill`]).
    pub fn open_all(&self) {
        self.pool.fill();
    }

    /// The most connections currently used (lower than configured after a `[LIMIT]`).
    pub fn connection_limit(&self) -> usize {
        self.pool.limit()
    }

    /// Open folders with SELECT from now on, and allow changes (`--read-write`).
    pub fn set_read_write(&self, on: bool) {
        self.read_write
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    fn selects(&self) -> bool {
        self.read_write.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A connection for a change (see `write.rs`), opening folders with SELECT; refused on a
    /// read-only mount whatever the caller.
    pub(super) fn pool_checkout(&self, folder: Option<&str>) -> Result<Lease<'_>> {
        if !self.selects() {
            return Err(StoreError::NotPermitted("the mount is read-only".into()));
        }
        self.pool.checkout(folder)
    }

    pub(super) fn pool_flush_idle(&self) {
        self.pool.flush_idle();
    }

    /// What the server offers, as said after login.
    pub(super) fn pool_caps(&self) -> &super::caps::Caps {
        self.pool.caps()
    }

    /// Run `op` on a connection (preferring one that has `folder` EXAMINEd), retrying on a
    /// fresh one after transient (connection) errors. With `uidvalidity`, the connection has
    /// `folder` EXAMINEd first and its UIDVALIDITY must be that one; without, `op` EXAMINEs.
    pub(super) fn with_conn<T>(
        &self,
        folder: Option<&str>,
        uidvalidity: Option<u32>,
        mut op: impl FnMut(&mut Conn) -> Result<T>,
    ) -> Result<T> {
        // Retry fast failures (a reset, a refused connect while the server restarts) until the
        // time budget is spent; a stalled attempt spends it alone, so a dead server gives EIO
        // after about one timeout, not several.
        if let Some((at, msg)) = &*crate::sync::lock(&self.gave_up) {
            if at.elapsed() < FAIL_FAST.min(self.pool.timeout()) {
                return Err(StoreError::Connection(format!("{msg} (failing fast)")));
            }
        }
        let start = Instant::now();
        let budget = self.pool.timeout();
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let r = self.pool.checkout(folder).and_then(|mut lease| {
                lease.select = self.selects();
                run_on(&mut lease, folder, uidvalidity, &mut op)
            });
            match r {
                Err(StoreError::Connection(msg)) => {
                    // Other idle connections from the same era are suspect too.
                    self.pool.flush_idle();
                    if start.elapsed() + backoff >= budget {
                        log::warn!("IMAP: {msg}; giving up after {attempt} attempts");
                        // Refused connects spend about half the budget on their backoff
                        // (0.2 + 0.4 + 0.8 s): operations one after another (a lookup, its
                        // refreshes, the read) would add that up, so fail fast after them too.
                        *crate::sync::lock(&self.gave_up) = Some((Instant::now(), msg.clone()));
                        return Err(StoreError::Connection(msg));
                    }
                    log::warn!("IMAP: {msg}; reconnecting (attempt {})", attempt + 1);
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    attempt += 1;
                }
                other => {
                    if other.is_ok() {
                        *crate::sync::lock(&self.gave_up) = None;
                    }
                    return other;
                }
            }
        }
    }

    /// Run `job` on each of `jobs`, several at once over the pool's connections (round trips
    /// overlap instead of adding up); results in job order. The first error stops the rest and
    /// is returned.
    pub(super) fn in_parallel<T: Sync, R: Send>(
        &self,
        jobs: &[T],
        job: impl Fn(&T) -> Result<R> + Sync,
    ) -> Result<Vec<R>> {
        crate::parallel::in_order(jobs, self.pool.limit(), job, || {
            StoreError::Connection("an IMAP worker thread panicked".into())
        })
    }

    /// Structures of `uids` (one command's worth); when the response cannot be read, the
    /// batch is halved until the unreadable messages are isolated.
    fn structures_isolating(
        &self,
        folder: &str,
        uidvalidity: u32,
        uids: &[u32],
    ) -> Result<Vec<(u32, Result<StructureData>)>> {
        let mut queue: VecDeque<Vec<u32>> = VecDeque::from([uids.to_vec()]);
        let mut out = Vec::new();
        let mut failures = 0;
        while let Some(batch) = queue.pop_front() {
            match self.structures_once(folder, uidvalidity, &batch) {
                Ok(mut r) => out.append(&mut r),
                Err(StoreError::Parse(msg)) => {
                    failures += 1;
                    if batch.len() == 1 {
                        log::warn!("IMAP {folder} UID {}: {msg}", batch[0]);
                        out.push((batch[0], Err(StoreError::Parse(msg))));
                    } else if failures >= MAX_NARROWING_FAILURES {
                        log::warn!(
                            "IMAP {folder}: giving up isolating unreadable messages among {} UIDs",
                            batch.len()
                        );
                        out.extend(
                            batch
                                .iter()
                                .map(|&u| (u, Err(StoreError::Parse(msg.clone())))),
                        );
                    } else {
                        log::debug!(
                            "IMAP {folder}: unreadable response for {} UIDs; narrowing",
                            batch.len()
                        );
                        let (a, b) = batch.split_at(batch.len() / 2);
                        queue.push_front(b.to_vec());
                        queue.push_front(a.to_vec());
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// One `UID FETCH` of structures for `uids`; per-UID results.
    fn structures_once(
        &self,
        folder: &str,
        uidvalidity: u32,
        uids: &[u32],
    ) -> Result<Vec<(u32, Result<StructureData>)>> {
        let cmd = format!(
            "UID FETCH {} (UID BODYSTRUCTURE BODY.PEEK[HEADER])",
            uidset::compact(uids)
        );
        let resps = self.with_conn(Some(folder), Some(uidvalidity), |c| c.fetch(&cmd))?;
        let wanted: HashSet<u32> = uids.iter().copied().collect();
        // Per UID: structure, header, why the structure was refused.
        type Got = (Option<Value>, Option<Vec<u8>>, Option<String>);
        let mut got: BTreeMap<u32, Got> = BTreeMap::new();
        for f in resps {
            let Some(uid) = f.uid() else { continue };
            if !wanted.contains(&uid) {
                continue;
            }
            let e = got.entry(uid).or_default();
            // Moved, not cloned: structures can be large.
            for (name, v) in f.items {
                match name.as_str() {
                    "BODYSTRUCTURE" => e.0 = Some(v),
                    "BODY[HEADER]" => {
                        e.1 = Some(v.as_bytes().map(<[u8]>::to_vec).unwrap_or_default())
                    }
                    _ => {}
                }
            }
            if let Some((_, why)) = f.refused.into_iter().next() {
                e.2 = Some(why);
            }
        }
        Ok(got
            .into_iter()
            .filter(|(_, (bs, h, why))| bs.is_some() || h.is_some() || why.is_some())
            .map(|(uid, (bs, h, why))| {
                let r = match (bs, why) {
                    (_, Some(why)) => {
                        log::warn!("IMAP {folder} UID {uid}: {why}");
                        Err(StoreError::Parse(format!("UID {uid}: {why}")))
                    }
                    (Some(bs @ Value::List(_)), None) => Ok(StructureData {
                        structure: super::bodystructure::parse(&bs),
                        header: h.unwrap_or_default(),
                    }),
                    _ => Err(StoreError::Parse(format!(
                        "UID {uid}: no usable BODYSTRUCTURE in the server's response"
                    ))),
                };
                (uid, r)
            })
            .collect())
    }
}

/// EXAMINE as needed, then `op`.
fn run_on<T>(
    c: &mut Lease<'_>,
    folder: Option<&str>,
    uidvalidity: Option<u32>,
    op: &mut impl FnMut(&mut Conn) -> Result<T>,
) -> Result<T> {
    if let (Some(f), Some(want)) = (folder, uidvalidity) {
        let current = match &c.examined {
            Some((name, uv)) if name == f => *uv,
            _ => c.examine(f)?.uidvalidity,
        };
        if want != current {
            return Err(StoreError::UidValidityChanged(f.to_string()));
        }
    }
    op(c)
}

impl MailStore for ImapStore {
    fn offers_binary(&self) -> bool {
        self.pool.caps().has("BINARY")
    }

    fn store_flags(
        &self,
        folder: &str,
        uidvalidity: u32,
        uid: u32,
        change: &crate::store::FlagChange,
        unchanged_since: Option<u64>,
    ) -> Result<crate::store::FlagsOutcome> {
        self.write_store_flags(folder, uidvalidity, uid, change, unchanged_since)
    }

    fn move_messages(
        &self,
        from: &str,
        uidvalidity: u32,
        uids: &[u32],
        to: &str,
    ) -> Result<Vec<(u32, u32)>> {
        self.write_move(from, uidvalidity, uids, to)
    }

    fn expunge_messages(&self, folder: &str, uidvalidity: u32, uids: &[u32]) -> Result<()> {
        self.write_expunge(folder, uidvalidity, uids)
    }

    fn append_message(
        &self,
        folder: &str,
        file: &mut std::fs::File,
        size: u64,
    ) -> Result<crate::store::Appended> {
        self.write_append(folder, file, size)
    }

    fn create_folder(&self, name: &str) -> Result<()> {
        self.write_create_folder(name)
    }

    fn delete_folder(&self, name: &str) -> Result<()> {
        self.write_delete_folder(name)
    }

    fn rename_folder(&self, from: &str, to: &str) -> Result<()> {
        self.write_rename_folder(from, to)
    }

    fn wait_for_change(&self, folder: &str, max: Duration) -> Result<bool> {
        let mut idler = crate::sync::lock(&self.idler);
        if idler.is_ok() && !self.pool.caps().has("IDLE") {
            // At the default level: new mail now waits for the poll interval.
            log::warn!("IMAP server does not offer IDLE; polling for changes only");
            *idler = Err(());
        }
        let Ok(slot) = &mut *idler else {
            // No IDLE here: just wait (the poller notices changes).
            drop(idler);
            std::thread::sleep(max);
            return Ok(false);
        };
        if slot.is_none() {
            *slot = Some(self.pool.open_dedicated()?);
        }
        let conn = slot.as_mut().expect("set above");
        let result = match &conn.examined {
            Some((name, _)) if name == folder => conn.idle(max),
            // Changes made before this EXAMINE would never be reported by IDLE: have the
            // caller look once now.
            _ => conn.examine(folder).map(|_| true),
        };
        match result {
            Ok(changed) => Ok(changed),
            Err(StoreError::Server(msg)) => {
                log::warn!("IMAP IDLE not available ({msg}); polling for changes only");
                *idler = Err(());
                Err(StoreError::Server(msg))
            }
            Err(e) => {
                // Reconnect next time.
                *slot = None;
                Err(e)
            }
        }
    }

    fn list_folders(&self) -> Result<Vec<FolderEntry>> {
        let folders = self.with_conn(None, None, |c| c.list())?;
        Ok(add_implied_parents(folders))
    }

    fn list_messages(&self, folder: &str) -> Result<FolderListing> {
        self.listing_of(folder)
    }

    fn refresh(&self, folder: &str, since: Option<&FolderListing>) -> Result<Refresh> {
        self.refresh_folder(folder, since)
    }

    fn search(
        &self,
        folder: &str,
        uidvalidity: u32,
        criteria: &crate::search::Criteria,
    ) -> Result<Vec<u32>> {
        self.with_conn(Some(folder), None, |c| {
            // A fresh EXAMINE, as for list_uids: the session's view must include other clients'
            // changes (new mail, expunges, flags) for the answer to be current.
            let ex = c.examine(folder)?;
            if ex.uidvalidity != uidvalidity {
                return Err(StoreError::UidValidityChanged(folder.to_string()));
            }
            c.search(criteria)
        })
    }

    fn fetch_structures(
        &self,
        folder: &str,
        uidvalidity: u32,
        uids: &[u32],
    ) -> Result<Vec<(u32, Result<StructureData>)>> {
        let mut sorted: Vec<u32> = uids.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let chunks: Vec<&[u32]> = sorted.chunks(MAX_ITEMS).collect();
        let per_chunk = self.in_parallel(&chunks, |chunk| {
            self.structures_isolating(folder, uidvalidity, chunk)
        })?;
        let mut out: Vec<_> = per_chunk.into_iter().flatten().collect();
        out.sort_by_key(|(u, _)| *u);
        Ok(out)
    }

    fn fetch_ranges(
        &self,
        folder: &str,
        uidvalidity: u32,
        reqs: &[RangeRequest],
    ) -> Result<Vec<Vec<u8>>> {
        let plan = RangePlan::new(reqs)?;
        let got: Mutex<Bodies> = Mutex::new(HashMap::new());
        let run = |group: &Vec<String>| -> Result<()> {
            let resps = self.with_conn(Some(folder), Some(uidvalidity), |c| c.fetch_many(group))?;
            // Dovecot runs pipelined FETCHes concurrently and interleaves their untagged
            // responses, so an answer may arrive before an earlier command's tagged OK: match
            // answers to the whole group (UID, section and origin are unique in a plan).
            let uids: HashSet<u32> = group.iter().flat_map(|c| plan.uids_of(c)).collect();
            let mut got = crate::sync::lock(&got);
            collect_bodies(resps, &uids, &mut got);
            Ok(())
        };
        // Small commands are pipelined (a group is one round trip), and the groups go out over
        // several connections at once.
        self.in_parallel(&plan.groups(self.pool.limit()), run)?;
        let got = crate::sync::into_inner(got);
        Ok(plan.answers(got))
    }

    // Browsing: see `browse`.
    fn fetch_briefs(
        &self,
        folder: &str,
        uidvalidity: u32,
        uids: &[u32],
    ) -> Result<Vec<MessageBrief>> {
        self.browse_briefs(folder, uidvalidity, uids)
    }

    fn fetch_flags(
        &self,
        folder: &str,
        uidvalidity: u32,
        uids: &[u32],
        changed_since: Option<u64>,
    ) -> Result<FlagsAnswer> {
        self.browse_flags(folder, uidvalidity, uids, changed_since)
    }

    fn folder_counts(&self) -> Result<Vec<FolderCounts>> {
        self.browse_counts()
    }

    // The quota: see `quota`.
    fn quota(&self) -> Result<Option<crate::store::Quota>> {
        self.account_quota()
    }
}
