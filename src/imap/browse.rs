//! The IMAP side of browsing: message briefs for INDEX, flags (with CONDSTORE's CHANGEDSINCE
//! when offered), STATUS with HIGHESTMODSEQ, and folder counts (LIST-STATUS, RFC 5819, in one
//! round trip, else STATUS per folder over the pool). Read-only: EXAMINE and `.PEEK` only.

use std::collections::{HashMap, HashSet};

use super::cmd::Cmd;
use super::items::parse_internal_date;
use super::list::parse_list;
use super::parse::{same_folder, status_item, status_response};
use super::refresh::FolderStatus;
use super::response::FetchResponse;
use super::session::{is_untagged, short, Conn};
use super::sexp::Value;
use super::store::ImapStore;
use super::uidset;
use super::wire::{self, Limits};
use crate::names;
use crate::store::{FlagsAnswer, FolderCounts, FolderEntry, MessageBrief, Result, StoreError};

/// UIDs per command (the caller sends pieces of about this size already).
const PIECE: usize = 5_000;
/// A UID set longer than this is sent as `first:last` and the answer filtered.
const MAX_SET_LEN: usize = 8_000;

/// A summary FETCH of up to [`PIECE`] messages: a line and a From/Subject literal each, plus
/// unsolicited responses (flag changes, expunges) in between. One odd message may carry a huge
/// header (refusing it would fail the whole INDEX); all of them together may not.
const BRIEFS: Limits = Limits {
    line: 1 << 20,
    literal: 16 << 20,
    total: 128 << 20,
    untagged: 100_000,
};

/// A flags FETCH of up to [`PIECE`] messages: one line each, no literals expected.
const FLAGS_PIECE: Limits = Limits {
    line: 1 << 20,
    literal: 64 << 10,
    total: 64 << 20,
    untagged: 100_000,
};

/// `UID FETCH 1:* (FLAGS) (CHANGEDSINCE n)`: every message of the folder may have changed.
const FLAGS_ALL: Limits = Limits {
    literal: 64 << 10,
    ..wire::FETCH
};

/// LIST ... RETURN (STATUS ...): a LIST and a STATUS line per folder, at most 100,000 folders
/// (as [`wire::LIST`]), names up to 64 KiB.
const LIST_STATUS: Limits = Limits {
    line: 1 << 20,
    literal: 64 << 10,
    total: 24 << 20,
    untagged: 250_000,
};

/// The capabilities browsing uses, from what the server said after login.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Caps {
    condstore: bool,
    list_status: bool,
    special_use: bool,
}

impl Caps {
    fn of(c: &super::caps::Caps) -> Caps {
        Caps {
            condstore: c.has("CONDSTORE") || c.has("QRESYNC"),
            list_status: c.has("LIST-STATUS"),
            special_use: c.has("SPECIAL-USE"),
        }
    }
}

/// The UID set for a command: compact, or `first:last` when that would be too long (the
/// answers are filtered to the UIDs wanted).
fn uid_set(uids: &[u32]) -> String {
    let set = uidset::compact(uids);
    match (
        set.len() > MAX_SET_LEN,
        uids.iter().min(),
        uids.iter().max(),
    ) {
        (true, Some(lo), Some(hi)) => format!("{lo}:{hi}"),
        _ => set,
    }
}

fn flags_of(f: &FetchResponse) -> Option<Vec<String>> {
    let list = f.get("FLAGS")?.as_list()?;
    // \Recent belongs to one session, not to the message: other clients see it differently.
    let flags = list.iter().filter_map(Value::as_text);
    Some(
        flags
            .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
            .collect(),
    )
}

fn modseq_of(f: &FetchResponse) -> Option<u64> {
    match f.get("MODSEQ")? {
        Value::List(l) => l.first()?.as_u64(),
        v => v.as_u64(),
    }
}

/// INTERNALDATE as epoch seconds and the offset it was given in.
fn date_and_zone(s: &str) -> Option<(i64, i32)> {
    let epoch = parse_internal_date(s)?;
    let zone = s.trim().rsplit(' ').next()?;
    let sign = if zone.starts_with('-') { -1 } else { 1 };
    let h: i32 = zone.get(1..3)?.parse().ok()?;
    let m: i32 = zone.get(3..5)?.parse().ok()?;
    Some((epoch, sign * (h * 3600 + m * 60)))
}

/// One summary FETCH response as a brief; `None` for responses that are not one (an
/// unsolicited flags update, a UID not asked for).
fn brief_of(folder: &str, f: &FetchResponse, wanted: &HashSet<u32>) -> Option<MessageBrief> {
    let uid = f.uid().filter(|u| wanted.contains(u))?;
    let size = f.get("RFC822.SIZE").and_then(Value::as_u64)?;
    let date = f.get("INTERNALDATE").and_then(Value::as_text);
    let (internal_date, zone_offset) = match date.as_deref().and_then(date_and_zone) {
        Some(d) => d,
        None => {
            log::warn!("IMAP {folder} UID {uid}: unreadable INTERNALDATE {date:?}");
            (0, 0)
        }
    };
    let fields = f
        .items
        .iter()
        .find(|(k, _)| k.starts_with("BODY[HEADER.FIELDS"))
        .and_then(|(_, v)| v.as_bytes())
        .unwrap_or_default()
        .to_vec();
    Some(MessageBrief {
        uid,
        flags: flags_of(f).unwrap_or_default(),
        internal_date,
        zone_offset,
        rfc822_size: size,
        fields,
        modseq: modseq_of(f),
    })
}

/// Flags (and the highest MODSEQ) from FETCH responses, one at a time.
#[derive(Default)]
struct FlagsCollector {
    ans: FlagsAnswer,
}

impl FlagsCollector {
    fn add(&mut self, f: &FetchResponse, wanted: Option<&HashSet<u32>>) {
        let Some(uid) = f.uid().filter(|u| wanted.is_none_or(|w| w.contains(u))) else {
            return;
        };
        if let Some(m) = modseq_of(f) {
            self.ans.modseq = Some(self.ans.modseq.unwrap_or(0).max(m));
        }
        if let Some(flags) = flags_of(f) {
            self.ans.flags.push((uid, flags));
        }
    }
}

/// What one LIST ... RETURN (STATUS ...) answer holds: the folders, and the STATUS items per
/// folder name (as [`names::name_from_raw`] maps it).
#[derive(Default)]
struct Listed {
    folders: Vec<FolderEntry>,
    counts: HashMap<String, Vec<(String, u64)>>,
    unreadable: usize,
}

impl Listed {
    /// One untagged response; others than LIST and STATUS are ignored.
    fn add(&mut self, d: &[u8]) {
        if is_untagged(d, "LIST") {
            match parse_list(d) {
                Some(e) => self.folders.push(e),
                None => self.unreadable += 1,
            }
        } else if is_untagged(d, "STATUS") {
            match status_response(d) {
                Some((raw, items)) => {
                    self.counts.insert(names::name_from_raw(&raw), items);
                }
                None => self.unreadable += 1,
            }
        }
    }

    /// The items for `name` (INBOX in any case is INBOX; only it is looked for further).
    fn counts_of(&self, name: &str) -> Option<&Vec<(String, u64)>> {
        self.counts.get(name).or_else(|| {
            let raw = names::raw_bytes(name);
            if !raw.eq_ignore_ascii_case(b"INBOX") {
                return None;
            }
            self.counts
                .iter()
                .find(|(k, _)| same_folder(&names::raw_bytes(k), &raw))
                .map(|(_, v)| v)
        })
    }
}

impl Conn {
    /// LIST with RETURN options (`cmd`), LIST and STATUS responses collected.
    fn list_returning(&mut self, cmd: Cmd, lim: &Limits) -> Result<Listed> {
        let mut listed = Listed::default();
        self.run_one(cmd, lim, &mut |d| {
            listed.add(&d);
            Ok(())
        })?;
        if listed.unreadable > 0 {
            log::warn!("LIST: {} unreadable lines skipped", listed.unreadable);
        }
        Ok(listed)
    }
}

impl ImapStore {
    /// The capabilities browsing cares about, as said after login.
    fn browse_caps(&self) -> Caps {
        Caps::of(self.pool_caps())
    }

    pub(super) fn browse_briefs(
        &self,
        folder: &str,
        uidvalidity: u32,
        uids: &[u32],
    ) -> Result<Vec<MessageBrief>> {
        let modseq = if self.browse_caps().condstore {
            " MODSEQ"
        } else {
            ""
        };
        let pieces: Vec<&[u32]> = uids.chunks(PIECE).collect();
        let per_piece = self.in_parallel(&pieces, |piece| {
            let cmd = Cmd::text(&format!(
                "UID FETCH {} (UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)]{modseq})",
                uid_set(piece)
            ));
            let wanted: HashSet<u32> = piece.iter().copied().collect();
            self.with_conn(Some(folder), Some(uidvalidity), |c| {
                let mut out = Vec::new();
                let what = short(&cmd.shown);
                c.fetch_each(
                    std::slice::from_ref(&cmd),
                    &BRIEFS,
                    u64::MAX,
                    &what,
                    &mut |f| out.extend(brief_of(folder, &f, &wanted)),
                )?;
                Ok(out)
            })
        })?;
        Ok(per_piece.into_iter().flatten().collect())
    }

    pub(super) fn browse_flags(
        &self,
        folder: &str,
        uidvalidity: u32,
        uids: &[u32],
        changed_since: Option<u64>,
    ) -> Result<FlagsAnswer> {
        let caps = self.browse_caps();
        let items = if caps.condstore {
            "UID FLAGS MODSEQ"
        } else {
            "UID FLAGS"
        };
        if let (Some(since), true) = (changed_since, caps.condstore) {
            // NOOP first: a session that has the folder open sees other clients' changes only
            // at a command that syncs.
            let cmds = [
                Cmd::text("NOOP"),
                Cmd::text(&format!("UID FETCH 1:* ({items}) (CHANGEDSINCE {since})")),
            ];
            let mut ans = self.with_conn(Some(folder), Some(uidvalidity), |c| {
                let mut got = FlagsCollector::default();
                let what = short(&cmds[1].shown);
                c.fetch_each(&cmds, &FLAGS_ALL, u64::MAX, &what, &mut |f| {
                    got.add(&f, None)
                })?;
                Ok(got.ans)
            })?;
            ans.modseq = Some(ans.modseq.unwrap_or(since).max(since));
            return Ok(ans);
        }
        let pieces: Vec<&[u32]> = uids.chunks(PIECE).collect();
        let per_piece = self.in_parallel(&pieces, |piece| {
            let cmd = Cmd::text(&format!("UID FETCH {} ({items})", uid_set(piece)));
            let wanted: HashSet<u32> = piece.iter().copied().collect();
            self.with_conn(Some(folder), Some(uidvalidity), |c| {
                let mut got = FlagsCollector::default();
                let what = short(&cmd.shown);
                c.fetch_each(
                    std::slice::from_ref(&cmd),
                    &FLAGS_PIECE,
                    u64::MAX,
                    &what,
                    &mut |f| got.add(&f, Some(&wanted)),
                )?;
                Ok(got.ans)
            })
        })?;
        let mut out = FlagsAnswer::default();
        for a in per_piece {
            out.flags.extend(a.flags);
            // Pieces answered at different moments: the lowest misses no later change.
            out.modseq = match (out.modseq, a.modseq) {
                (Some(x), Some(y)) => Some(x.min(y)),
                (x, y) => x.or(y),
            };
        }
        Ok(out)
    }

    pub(super) fn browse_status(&self, folder: &str) -> Result<(FolderStatus, Option<u64>)> {
        if !self.browse_caps().condstore {
            return self
                .with_conn(None, None, |c| c.status(folder))
                .map(|s| (s, None));
        }
        let items = self.with_conn(None, None, |c| {
            c.status_items(folder, "UIDVALIDITY UIDNEXT MESSAGES HIGHESTMODSEQ")
        })?;
        if items.is_empty() {
            return Err(StoreError::Parse(format!(
                "STATUS {folder}: no STATUS response"
            )));
        }
        let n = |k: &str| {
            status_item(&items, k)
                .and_then(|x| u32::try_from(x).ok())
                .unwrap_or(0)
        };
        let status = FolderStatus {
            uidvalidity: n("UIDVALIDITY"),
            uidnext: n("UIDNEXT"),
            messages: n("MESSAGES"),
        };
        Ok((status, status_item(&items, "HIGHESTMODSEQ")))
    }

    pub(super) fn browse_counts(&self) -> Result<Vec<FolderCounts>> {
        let caps = self.browse_caps();
        let special = if caps.special_use { "SPECIAL-USE " } else { "" };
        let (text, lim) = match (caps.list_status, caps.special_use) {
            (true, _) => (
                format!("LIST \"\" \"*\" RETURN ({special}STATUS (MESSAGES UNSEEN))"),
                LIST_STATUS,
            ),
            (false, true) => (
                "LIST \"\" \"*\" RETURN (SPECIAL-USE)".to_string(),
                wire::LIST,
            ),
            (false, false) => ("LIST \"\" \"*\"".to_string(), wire::LIST),
        };
        let mut listed = self.with_conn(None, None, |c| {
            // A session with a folder open would count that folder from its own, older view.
            if c.examined.is_some() {
                c.noop()?;
            }
            c.list_returning(Cmd::text(&text), &lim)
        })?;
        if !caps.list_status {
            let selectable: Vec<String> = listed
                .folders
                .iter()
                .filter(|f| f.selectable)
                .map(|f| f.name.clone())
                .collect();
            let got = self.in_parallel(&selectable, |name| {
                let r = self.with_conn(None, None, |c| c.status_items(name, "MESSAGES UNSEEN"));
                match r {
                    Ok(items) => Ok(Some(items)),
                    // A folder that cannot be opened (or is gone since LIST) shows `-`.
                    Err(StoreError::Server(_) | StoreError::NoSuchFolder(_)) => Ok(None),
                    Err(e) => Err(e),
                }
            })?;
            for (name, items) in selectable.into_iter().zip(got) {
                if let Some(items) = items {
                    listed.counts.insert(name, items);
                }
            }
        }
        let out = listed
            .folders
            .iter()
            .map(|f| {
                let items = listed.counts_of(&f.name);
                let n = |k: &str| {
                    items
                        .and_then(|i| status_item(i, k))
                        .and_then(|x| u32::try_from(x).ok())
                };
                FolderCounts {
                    name: f.name.clone(),
                    delimiter: f.delimiter,
                    flags: f.attributes.clone(),
                    messages: n("MESSAGES"),
                    unseen: n("UNSEEN"),
                }
            })
            .collect();
        Ok(out)
    }
}

#[cfg(test)]
#[path = "browse_tests.rs"]
mod tests;
