//! [`ImapStore`]: the [`MailStore`] over a pool of IMAP connections. Read-only by construction:
//! only LIST, EXAMINE and `UID FETCH` with `BODY.PEEK` are ever sent.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::items::{body_key, parse_internal_date, valid_section};
use super::pool::{Lease, Pool};
use super::response::FetchResponse;
use super::session::Conn;
use super::uidset;
use super::{ConnectError, ServerConfig};
use crate::sexp::Value;
use crate::store::{
    FlagsAnswer, FolderCounts, FolderEntry, FolderListing, FolderStatus, MailStore, MessageBrief,
    MessageSummary, RangeRequest, Result, StoreError, StructureData,
};

/// Wait before the first retry of an idempotent command after a transient failure; each later
/// retry waits twice as long, up to MAX_BACKOFF, while the operation's time budget (the
/// `--timeout`) lasts.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Most body bytes asked for in one command (the `imap` crate buffers whole responses).
pub const MAX_COMMAND_BYTES: u64 = 16 << 20;
/// Most commands pipelined on one connection, and most body bytes they may ask for together.
const MAX_PIPELINE: usize = 64;
const PIPELINE_BYTES: u64 = 8 << 20;
/// Most FETCH items, or UIDs in a structure batch, per command.
const MAX_ITEMS: usize = 200;
/// The `imap` crate re-parses a FETCH response from its start after every line it reads, so a
/// response with many literals costs about (lines × literals before them): bound that estimate
/// (in item parses; about 10 ms at 64 bytes a line) per command.
const MAX_REPARSE_COST: u64 = 64_000;
/// Most failed commands spent isolating unparsable messages in one `fetch_structures` call.
const MAX_NARROWING_FAILURES: usize = 32;

pub struct ImapStore {
    pool: Pool,
    /// When an operation last gave up on the server (all retries spent).
    gave_up: Mutex<Option<(Instant, String)>>,
    /// The connection that IDLEs, outside the pool; `Err` once the server refused IDLE.
    idler: Mutex<std::result::Result<Option<Conn>, ()>>,
    /// What the server offers for browsing (asked once; see `browse`).
    pub(super) caps: std::sync::OnceLock<super::browse::Caps>,
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
                caps: std::sync::OnceLock::new(),
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
        if let Some((at, msg)) = &*self.gave_up.lock().unwrap_or_else(|e| e.into_inner()) {
            if at.elapsed() < FAIL_FAST.min(self.pool.timeout()) {
                return Err(StoreError::Connection(format!("{msg} (failing fast)")));
            }
        }
        let start = Instant::now();
        let budget = self.pool.timeout();
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let r = self
                .pool
                .checkout(folder)
                .and_then(|mut lease| run_on(&mut lease, folder, uidvalidity, &mut op));
            match r {
                Err(StoreError::Connection(msg)) => {
                    // Other idle connections from the same era are suspect too.
                    self.pool.flush_idle();
                    if start.elapsed() + backoff >= budget {
                        log::warn!("IMAP: {msg}; giving up after {attempt} attempts");
                        // Only a server that made us wait (a stall, a timeout) is worth
                        // failing fast for; refusals are quick to retry anyway.
                        if start.elapsed() >= budget / 2 {
                            *self.gave_up.lock().unwrap_or_else(|e| e.into_inner()) =
                                Some((Instant::now(), msg.clone()));
                        }
                        return Err(StoreError::Connection(msg));
                    }
                    log::warn!("IMAP: {msg}; reconnecting (attempt {})", attempt + 1);
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    attempt += 1;
                }
                other => {
                    if other.is_ok() {
                        *self.gave_up.lock().unwrap_or_else(|e| e.into_inner()) = None;
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
        let mut got: BTreeMap<u32, (Option<Value>, Option<Vec<u8>>)> = BTreeMap::new();
        for f in &resps {
            let Some(uid) = f.uid() else { continue };
            if !wanted.contains(&uid) {
                continue;
            }
            let e = got.entry(uid).or_default();
            if let Some(bs) = f.get("BODYSTRUCTURE") {
                e.0 = Some(bs.clone());
            }
            if let Some(h) = f.get("BODY[HEADER]") {
                e.1 = Some(h.as_bytes().map(<[u8]>::to_vec).unwrap_or_default());
            }
        }
        Ok(got
            .into_iter()
            .filter(|(_, (bs, h))| bs.is_some() || h.is_some())
            .map(|(uid, (bs, h))| {
                let r = match bs {
                    Some(bodystructure @ Value::List(_)) => Ok(StructureData {
                        bodystructure,
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

/// Add the parents that LIST implies but did not report (`a.b.c` alone gives `a`, `a.b`), as
/// non-selectable entries.
fn add_implied_parents(mut folders: Vec<FolderEntry>) -> Vec<FolderEntry> {
    let mut known: HashSet<String> = folders.iter().map(|f| f.name.clone()).collect();
    let mut extra = Vec::new();
    for f in &folders {
        let Some(d) = f.delimiter else { continue };
        for (k, ch) in f.name.char_indices() {
            if ch == d && k > 0 {
                let parent = &f.name[..k];
                if known.insert(parent.to_string()) {
                    extra.push(FolderEntry {
                        name: parent.to_string(),
                        delimiter: Some(d),
                        selectable: false,
                    });
                }
            }
        }
    }
    folders.extend(extra);
    folders
}

impl MailStore for ImapStore {
    fn wait_for_change(&self, folder: &str, max: Duration) -> Result<bool> {
        let mut idler = self.idler.lock().unwrap_or_else(|e| e.into_inner());
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
                log::info!("IMAP IDLE not available ({msg}); polling only");
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
        self.with_conn(Some(folder), None, |c| {
            // Always a new EXAMINE, for fresh counts.
            let ex = c.examine(folder)?;
            let mut listing = FolderListing {
                uidvalidity: ex.uidvalidity,
                uidnext: ex.uidnext,
                exists: ex.exists,
                messages: Vec::new(),
            };
            if ex.exists == 0 {
                return Ok(listing);
            }
            let resps = c.fetch("UID FETCH 1:* (UID INTERNALDATE RFC822.SIZE)")?;
            listing.messages = summaries(&resps);
            Ok(listing)
        })
    }

    fn folder_status(&self, folder: &str) -> Result<FolderStatus> {
        self.with_conn(None, None, |c| c.status(folder))
    }

    fn list_messages_from(
        &self,
        folder: &str,
        uidvalidity: u32,
        from_uid: u32,
    ) -> Result<Vec<MessageSummary>> {
        let cmd = format!(
            "UID FETCH {}:* (UID INTERNALDATE RFC822.SIZE)",
            from_uid.max(1)
        );
        let resps = self.with_conn(Some(folder), Some(uidvalidity), |c| c.fetch(&cmd))?;
        // `n:*` always includes the highest UID, even below n.
        Ok(summaries(&resps)
            .into_iter()
            .filter(|m| m.uid >= from_uid)
            .collect())
    }

    fn list_uids(&self, folder: &str, uidvalidity: u32) -> Result<Vec<u32>> {
        self.with_conn(Some(folder), None, |c| {
            // A fresh EXAMINE: a session that already had the folder open would still count
            // messages expunged since, until told (no EXPUNGE is sent during SEARCH).
            let ex = c.examine(folder)?;
            if ex.uidvalidity != uidvalidity {
                return Err(StoreError::UidValidityChanged(folder.to_string()));
            }
            c.all_uids()
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
            let mut got = got.lock().unwrap_or_else(|e| e.into_inner());
            collect_bodies(resps, &uids, &mut got);
            Ok(())
        };
        // Small commands are pipelined (a group is one round trip), and the groups go out over
        // several connections at once.
        self.in_parallel(&plan.groups(self.pool.limit()), run)?;
        let got = got.into_inner().unwrap_or_else(|e| e.into_inner());
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

    fn folder_status_modseq(&self, folder: &str) -> Result<(FolderStatus, Option<u64>)> {
        self.browse_status(folder)
    }

    fn folder_counts(&self) -> Result<Vec<FolderCounts>> {
        self.browse_counts()
    }
}

fn summaries(resps: &[FetchResponse]) -> Vec<MessageSummary> {
    let mut by_uid: BTreeMap<u32, MessageSummary> = BTreeMap::new();
    for f in resps {
        let Some(uid) = f.uid() else { continue };
        let date = f.get("INTERNALDATE");
        let size = f.get("RFC822.SIZE");
        if date.is_none() && size.is_none() {
            continue; // an unsolicited FLAGS update
        }
        let e = by_uid.entry(uid).or_insert(MessageSummary {
            uid,
            internal_date: 0,
            rfc822_size: 0,
        });
        if let Some(d) = date {
            match d.as_text().as_deref().and_then(parse_internal_date) {
                Some(t) => e.internal_date = t,
                None => log::warn!("IMAP UID {uid}: unreadable INTERNALDATE {d:?}"),
            }
        }
        if let Some(s) = size.and_then(Value::as_u64) {
            e.rfc822_size = s;
        }
    }
    by_uid.into_values().collect()
}

/// Body sections received, by (UID, section, origin).
type Bodies = HashMap<(u32, String, Option<u64>), Vec<u8>>;

/// One FETCH item: section, origin, length.
type Item = (String, u64, u64);

/// One piece of a request: at most [`MAX_COMMAND_BYTES`] of one section of one message.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Piece {
    uid: u32,
    section: String,
    offset: u64,
    len: u64,
}

/// The commands for a batch of range requests.
struct RangePlan {
    /// The pieces of each request, in order.
    pieces: Vec<Vec<Piece>>,
    commands: Vec<String>,
    /// The UIDs each command asks about.
    cmd_uids: HashMap<String, Vec<u32>>,
    /// The body bytes each command asks for, at most.
    cmd_bytes: HashMap<String, u64>,
}

impl RangePlan {
    fn new(reqs: &[RangeRequest]) -> Result<RangePlan> {
        // Split into pieces; dedupe by (uid, section, offset) keeping the longest length, since
        // a response is keyed by section and origin only.
        let mut pieces = Vec::with_capacity(reqs.len());
        let mut wanted: BTreeMap<(u32, String, u64), u64> = BTreeMap::new();
        for r in reqs {
            if !valid_section(&r.section) {
                return Err(StoreError::Server(format!(
                    "refusing to send an invalid section spec {:?}",
                    r.section
                )));
            }
            let section = r.section.to_ascii_uppercase();
            let mut ps = Vec::new();
            let mut off = r.offset;
            let end = r.offset.saturating_add(r.len);
            while off < end {
                let len = (end - off).min(MAX_COMMAND_BYTES);
                let e = wanted.entry((r.uid, section.clone(), off)).or_insert(0);
                *e = (*e).max(len);
                ps.push(Piece {
                    uid: r.uid,
                    section: section.clone(),
                    offset: off,
                    len,
                });
                off += len;
            }
            pieces.push(ps);
        }
        // Per UID, the item lists of its commands (bounded in bytes and items).
        let mut per_uid: BTreeMap<u32, Vec<Vec<Item>>> = BTreeMap::new();
        for ((uid, section, off), len) in wanted {
            let cmds = per_uid.entry(uid).or_default();
            let fits = cmds.last().is_some_and(|items: &Vec<Item>| {
                let mut with: Vec<u64> = items.iter().map(|i| i.2).collect();
                with.push(len);
                items.len() < MAX_ITEMS
                    && with.iter().sum::<u64>() <= MAX_COMMAND_BYTES
                    && reparse_cost(&with) <= MAX_REPARSE_COST
            });
            if !fits {
                cmds.push(Vec::new());
            }
            if let Some(items) = cmds.last_mut() {
                items.push((section, off, len));
            }
        }
        // UIDs with identical item lists share a command (bounded in total bytes).
        let mut by_items: BTreeMap<Vec<Item>, Vec<u32>> = BTreeMap::new();
        for (uid, cmds) in per_uid {
            for items in cmds {
                by_items.entry(items).or_default().push(uid);
            }
        }
        let mut commands = Vec::new();
        let mut cmd_uids = HashMap::new();
        let mut cmd_bytes = HashMap::new();
        for (items, uids) in by_items {
            let bytes: u64 = items.iter().map(|i| i.2).sum::<u64>().max(1);
            let per_cmd = ((MAX_COMMAND_BYTES / bytes) as usize).clamp(1, MAX_ITEMS);
            let list: Vec<String> = items
                .iter()
                .map(|(s, o, n)| format!("BODY.PEEK[{s}]<{o}.{n}>"))
                .collect();
            for group in uids.chunks(per_cmd) {
                let cmd = format!(
                    "UID FETCH {} (UID {})",
                    uidset::compact(group),
                    list.join(" ")
                );
                cmd_uids.insert(cmd.clone(), group.to_vec());
                cmd_bytes.insert(cmd.clone(), bytes.saturating_mul(group.len() as u64));
                commands.push(cmd);
            }
        }
        Ok(RangePlan {
            pieces,
            commands,
            cmd_uids,
            cmd_bytes,
        })
    }

    /// The commands in groups to pipeline (each group one round trip on one connection):
    /// small commands spread over `workers` groups, each group bounded in count and bytes; a big
    /// command goes alone.
    fn groups(&self, workers: usize) -> Vec<Vec<String>> {
        let bytes = |c: &String| self.cmd_bytes.get(c).copied().unwrap_or(MAX_COMMAND_BYTES);
        let (small, big): (Vec<&String>, Vec<&String>) = self
            .commands
            .iter()
            .partition(|c| bytes(c) < PIPELINE_BYTES / 8);
        let mut groups: Vec<Vec<String>> = big.into_iter().map(|c| vec![c.clone()]).collect();
        let per_group = small.len().div_ceil(workers.max(1)).clamp(1, MAX_PIPELINE);
        let mut current: Vec<String> = Vec::new();
        let mut current_bytes = 0;
        for c in small {
            if current.len() >= per_group || current_bytes + bytes(c) > PIPELINE_BYTES {
                groups.push(std::mem::take(&mut current));
                current_bytes = 0;
            }
            current_bytes += bytes(c);
            current.push(c.clone());
        }
        if !current.is_empty() {
            groups.push(current);
        }
        groups
    }

    fn uids_of(&self, cmd: &str) -> HashSet<u32> {
        self.cmd_uids
            .get(cmd)
            .map(|v| v.iter().copied().collect())
            .unwrap_or_default()
    }

    fn answers(&self, mut got: Bodies) -> Vec<Vec<u8>> {
        // A request answered by one item that no other request shares takes it as it is.
        let mut uses: HashMap<(u32, &str, u64), usize> = HashMap::new();
        for p in self.pieces.iter().flatten() {
            *uses.entry((p.uid, &p.section, p.offset)).or_default() += 1;
        }
        let mut out = Vec::with_capacity(self.pieces.len());
        for ps in &self.pieces {
            if let [p] = ps.as_slice() {
                let key = (p.uid, p.section.clone(), Some(p.offset));
                let alone = uses.get(&(p.uid, p.section.as_str(), p.offset)) == Some(&1);
                if alone && got.get(&key).is_some_and(|d| d.len() as u64 <= p.len) {
                    out.push(got.remove(&key).unwrap_or_default());
                    continue;
                }
            }
            let mut bytes = Vec::new();
            for p in ps {
                let data = piece_bytes(p, &got);
                let short = (data.len() as u64) < p.len;
                bytes.extend_from_slice(data);
                if short {
                    break; // end of the section
                }
            }
            out.push(bytes);
        }
        out
    }
}

/// The estimated re-parse work for literals of these lengths in one FETCH response.
fn reparse_cost(lens: &[u64]) -> u64 {
    lens.iter()
        .enumerate()
        .map(|(k, n)| (n / 64 + 1).saturating_mul(k as u64))
        .fold(0u64, u64::saturating_add)
}

/// The bytes answering one piece: the item with its origin, or (for servers that drop the
/// origin) an un-ranged item, cut to the range if it is the whole section.
fn piece_bytes<'g>(p: &Piece, got: &'g Bodies) -> &'g [u8] {
    let cut = |d: &'g [u8], from: u64| -> &'g [u8] {
        let start = (from as usize).min(d.len());
        let end = (start as u64).saturating_add(p.len).min(d.len() as u64) as usize;
        &d[start..end]
    };
    if let Some(d) = got.get(&(p.uid, p.section.clone(), Some(p.offset))) {
        return cut(d, 0);
    }
    if let Some(d) = got.get(&(p.uid, p.section.clone(), None)) {
        // Longer than asked: the server sent the whole section.
        if d.len() as u64 > p.len {
            return cut(d, p.offset);
        }
        return cut(d, 0);
    }
    &[]
}

fn collect_bodies(resps: Vec<FetchResponse>, uids: &HashSet<u32>, got: &mut Bodies) {
    for f in resps {
        let Some(uid) = f.uid() else { continue };
        if !uids.contains(&uid) {
            continue;
        }
        for (name, v) in f.items {
            if let Some((section, origin)) = body_key(&name) {
                // Moved, not copied: these are the bulk of a read.
                let data = match v {
                    Value::Str(bytes) => bytes,
                    other => other.as_bytes().map(<[u8]>::to_vec).unwrap_or_default(),
                };
                got.insert((uid, section.to_string(), origin), data);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::response::parse_fetches;

    fn req(uid: u32, section: &str, offset: u64, len: u64) -> RangeRequest {
        RangeRequest {
            uid,
            section: section.into(),
            offset,
            len,
            binary: false,
        }
    }

    #[test]
    fn implied_parents() {
        let f = add_implied_parents(vec![
            FolderEntry {
                name: "a.b.c".into(),
                delimiter: Some('.'),
                selectable: true,
            },
            FolderEntry {
                name: "INBOX".into(),
                delimiter: Some('.'),
                selectable: true,
            },
        ]);
        let names: Vec<(&str, bool)> = f.iter().map(|e| (e.name.as_str(), e.selectable)).collect();
        assert_eq!(
            names,
            vec![
                ("a.b.c", true),
                ("INBOX", true),
                ("a", false),
                ("a.b", false)
            ]
        );
    }

    #[test]
    fn plan_groups_and_answers() {
        let reqs = vec![
            req(5, "2", 0, 10),
            req(5, "2", 10, 10),
            req(5, "2", 0, 4), // same origin, shorter: shares the item
            req(6, "1", 0, 10),
            req(7, "1", 0, 10), // same item list as 6: one command for both
            req(8, "", 0, 0),   // empty: nothing sent
        ];
        let plan = RangePlan::new(&reqs).unwrap();
        assert_eq!(
            plan.commands,
            vec![
                "UID FETCH 6:7 (UID BODY.PEEK[1]<0.10>)".to_string(),
                "UID FETCH 5 (UID BODY.PEEK[2]<0.10> BODY.PEEK[2]<10.10>)".to_string(),
            ]
        );
        let raw = b"* 1 FETCH (UID 5 BODY[2]<0> {10}\r\n0123456789 BODY[2]<10> {3}\r\nabc)\r\n\
* 2 FETCH (UID 6 BODY[1]<0> \"hello\")\r\n* 9 FETCH (UID 99 FLAGS ())\r\n";
        let resps = parse_fetches(raw).unwrap();
        let mut got = HashMap::new();
        let uids: HashSet<u32> = plan.commands.iter().flat_map(|c| plan.uids_of(c)).collect();
        collect_bodies(resps, &uids, &mut got);
        let a = plan.answers(got);
        assert_eq!(a[0], b"0123456789");
        assert_eq!(a[1], b"abc");
        assert_eq!(a[2], b"0123");
        assert_eq!(a[3], b"hello");
        assert_eq!(a[4], b""); // UID 7 vanished
        assert_eq!(a[5], b"");
    }

    #[test]
    fn small_commands_are_pipelined_in_groups_per_connection() {
        // 100 messages each wanting its own tail: 100 commands.
        let mut reqs: Vec<RangeRequest> = (1..=100)
            .map(|u| req(u, "2", 1000 + u as u64, 100))
            .collect();
        reqs.push(req(500, "1", 0, 4 << 20));
        let plan = RangePlan::new(&reqs).unwrap();
        assert_eq!(plan.commands.len(), 101);
        let groups = plan.groups(4);
        let big: Vec<_> = groups
            .iter()
            .filter(|g| g.iter().any(|c| c.contains("<0.4194304>")))
            .collect();
        assert_eq!(big.len(), 1);
        assert_eq!(big[0].len(), 1, "a big command goes alone");
        let small: Vec<usize> = groups
            .iter()
            .filter(|g| !big.contains(g))
            .map(Vec::len)
            .collect();
        assert_eq!(small, [25, 25, 25, 25]);
        let all: usize = groups.iter().map(Vec::len).sum();
        assert_eq!(all, 101, "every command once");
    }

    #[test]
    fn big_requests_are_split() {
        let reqs = vec![req(1, "1", 5, 2 * MAX_COMMAND_BYTES + 3)];
        let plan = RangePlan::new(&reqs).unwrap();
        assert_eq!(plan.commands.len(), 3);
        assert_eq!(plan.pieces[0].len(), 3);
        assert!(plan.commands[2].ends_with(&format!("<{}.3>)", 5 + 2 * MAX_COMMAND_BYTES)));
    }

    #[test]
    fn many_small_ranges_are_spread_over_commands() {
        let reqs: Vec<RangeRequest> = (0..1000).map(|k| req(1, "2", k * 1000, 1000)).collect();
        let plan = RangePlan::new(&reqs).unwrap();
        assert!(plan.commands.len() >= 10, "{}", plan.commands.len());
        assert!(plan.commands.len() <= 20, "{}", plan.commands.len());
        // A few big chunks of one section still share a command.
        let reqs: Vec<RangeRequest> = (0..4).map(|k| req(1, "2", k << 17, 1 << 17)).collect();
        assert_eq!(RangePlan::new(&reqs).unwrap().commands.len(), 1);
    }

    #[test]
    fn origin_less_answers() {
        let reqs = vec![req(1, "1", 2, 3)];
        let plan = RangePlan::new(&reqs).unwrap();
        let mut got = HashMap::new();
        got.insert((1, "1".to_string(), None), b"abcdefgh".to_vec());
        assert_eq!(plan.answers(got)[0], b"cde");
    }

    #[test]
    fn invalid_sections_are_refused() {
        assert!(RangePlan::new(&[req(1, "1]<0.1> BODY[2", 0, 1)]).is_err());
    }

    #[test]
    fn summaries_merge_and_skip_unsolicited() {
        let raw = b"* 1 FETCH (UID 3 INTERNALDATE \"25-Nov-2026 22:21:14 +0000\" RFC822.SIZE 10)\r\n\
* 2 FETCH (FLAGS (\\Seen) UID 1)\r\n* 2 FETCH (UID 2 RFC822.SIZE 7 INTERNALDATE \" 1-Jan-1970 00:00:01 +0000\")\r\n";
        let s = summaries(&parse_fetches(raw).unwrap());
        assert_eq!(
            s,
            vec![
                MessageSummary {
                    uid: 2,
                    internal_date: 1,
                    rfc822_size: 7
                },
                MessageSummary {
                    uid: 3,
                    internal_date: 1795645274,
                    rfc822_size: 10
                },
            ]
        );
    }
}
