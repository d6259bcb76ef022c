//! The IMAP side of browsing: message briefs for INDEX, flags (with CONDSTORE's CHANGEDSINCE
//! when offered), STATUS with HIGHESTMODSEQ, and folder counts (LIST-STATUS, RFC 5819, in one
//! round trip, else STATUS per folder over the pool). Read-only: EXAMINE and `.PEEK` only.

use std::collections::HashSet;

use super::items::parse_internal_date;
use super::parse::parse_value;
use super::response::FetchResponse;
use super::session::Conn;
use super::store::ImapStore;
use super::uidset;
use crate::sexp::Value;
use crate::store::{FlagsAnswer, FolderCounts, FolderStatus, MessageBrief, Result, StoreError};

/// UIDs per command (the caller sends pieces of about this size already).
const PIECE: usize = 5_000;
/// A UID set longer than this is sent as `first:last` and the answer filtered.
const MAX_SET_LEN: usize = 8_000;

/// Capabilities after login that browsing uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Caps {
    pub condstore: bool,
    pub list_status: bool,
    pub special_use: bool,
}

impl Caps {
    fn parse(data: &[u8]) -> Caps {
        let mut caps = Caps::default();
        for line in logical_lines(data) {
            let text = String::from_utf8_lossy(line).to_ascii_uppercase();
            let Some(rest) = text.strip_prefix("* CAPABILITY ") else {
                continue;
            };
            for c in rest.split_ascii_whitespace() {
                match c {
                    "CONDSTORE" | "QRESYNC" => caps.condstore = true,
                    "LIST-STATUS" => caps.list_status = true,
                    "SPECIAL-USE" => caps.special_use = true,
                    _ => {}
                }
            }
        }
        caps
    }
}

/// Untagged response bytes split into logical lines (a literal belongs to its line).
fn logical_lines(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < data.len() {
        let Some(nl) = data[i..].iter().position(|&b| b == b'\n') else {
            out.push(&data[start..]);
            return out;
        };
        let end = i + nl + 1;
        let line = data[i..end].strip_suffix(b"\r\n").unwrap_or(&data[i..end]);
        let literal = line
            .strip_suffix(b"}")
            .and_then(|l| l.iter().rposition(|&b| b == b'{').map(|p| &l[p + 1..]))
            .and_then(|n| std::str::from_utf8(n.strip_suffix(b"+").unwrap_or(n)).ok())
            .and_then(|n| n.parse::<usize>().ok());
        match literal {
            Some(n) => i = end.saturating_add(n).min(data.len()),
            None => {
                out.push(&data[start..end]);
                start = end;
                i = end;
            }
        }
    }
    if start < data.len() {
        out.push(&data[start..]);
    }
    out
}

/// The values after `* WORD ` on an untagged line (`* LIST (..) "/" x` → `[(..), "/", x]`).
fn untagged(line: &[u8], word: &str) -> Option<Vec<Value>> {
    let rest = line.strip_prefix(b"* ")?;
    let (w, rest) = rest.split_at(rest.iter().position(|&b| b == b' ')?);
    if !w.eq_ignore_ascii_case(word.as_bytes()) {
        return None;
    }
    let rest = rest[1..].strip_suffix(b"\r\n").unwrap_or(&rest[1..]);
    let mut wrapped = Vec::with_capacity(rest.len() + 2);
    wrapped.push(b'(');
    wrapped.extend_from_slice(rest);
    wrapped.push(b')');
    match parse_value(&wrapped) {
        Ok(Value::List(v)) => Some(v),
        _ => None,
    }
}

/// A mailbox name as a quoted string.
fn quote(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// `MESSAGES 3 UNSEEN 0 …` as (name, number) pairs.
fn status_items(v: Option<&Value>) -> Vec<(String, u64)> {
    let Some(list) = v.and_then(Value::as_list) else {
        return Vec::new();
    };
    list.chunks(2)
        .filter_map(|kv| match kv {
            [k, v] => Some((k.as_text()?.to_ascii_uppercase(), v.as_u64()?)),
            _ => None,
        })
        .collect()
}

fn get(items: &[(String, u64)], name: &str) -> Option<u64> {
    items.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
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

fn briefs_of(resps: &[FetchResponse], wanted: &HashSet<u32>) -> Vec<MessageBrief> {
    let mut out = Vec::new();
    for f in resps {
        let Some(uid) = f.uid().filter(|u| wanted.contains(u)) else {
            continue;
        };
        let Some(size) = f.get("RFC822.SIZE").and_then(Value::as_u64) else {
            continue; // an unsolicited FLAGS update
        };
        let date = f.get("INTERNALDATE").and_then(Value::as_text);
        let (internal_date, zone_offset) = match date.as_deref().and_then(date_and_zone) {
            Some(d) => d,
            None => {
                log::warn!("IMAP UID {uid}: unreadable INTERNALDATE {date:?}");
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
        out.push(MessageBrief {
            uid,
            flags: flags_of(f).unwrap_or_default(),
            internal_date,
            zone_offset,
            rfc822_size: size,
            fields,
            modseq: modseq_of(f),
        });
    }
    out
}

impl ImapStore {
    /// The capabilities browsing cares about (asked once).
    fn caps(&self) -> Result<Caps> {
        if let Some(c) = self.caps.get() {
            return Ok(*c);
        }
        let caps = match self.with_conn(None, None, |c| c.run_raw("CAPABILITY")) {
            Ok(data) => Caps::parse(&data),
            // A server that refuses to say offers nothing extra.
            Err(StoreError::Server(msg)) => {
                log::info!(
                    "IMAP CAPABILITY refused ({msg}): no CONDSTORE, LIST-STATUS, SPECIAL-USE"
                );
                Caps::default()
            }
            Err(e) => return Err(e),
        };
        Ok(*self.caps.get_or_init(|| caps))
    }

    pub(super) fn browse_briefs(
        &self,
        folder: &str,
        uidvalidity: u32,
        uids: &[u32],
    ) -> Result<Vec<MessageBrief>> {
        let modseq = if self.caps()?.condstore {
            " MODSEQ"
        } else {
            ""
        };
        let pieces: Vec<&[u32]> = uids.chunks(PIECE).collect();
        let per_piece = self.in_parallel(&pieces, |piece| {
            let cmd = format!(
                "UID FETCH {} (UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)]{modseq})",
                uid_set(piece)
            );
            let resps = self.with_conn(Some(folder), Some(uidvalidity), |c| c.fetch(&cmd))?;
            Ok(briefs_of(&resps, &piece.iter().copied().collect()))
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
        let caps = self.caps()?;
        let items = if caps.condstore {
            "UID FLAGS MODSEQ"
        } else {
            "UID FLAGS"
        };
        let collect = |resps: Vec<FetchResponse>, wanted: Option<&HashSet<u32>>| {
            let mut ans = FlagsAnswer::default();
            for f in &resps {
                let Some(uid) = f.uid().filter(|u| wanted.is_none_or(|w| w.contains(u))) else {
                    continue;
                };
                if let Some(m) = modseq_of(f) {
                    ans.modseq = Some(ans.modseq.unwrap_or(0).max(m));
                }
                if let Some(flags) = flags_of(f) {
                    ans.flags.push((uid, flags));
                }
            }
            ans
        };
        if let (Some(since), true) = (changed_since, caps.condstore) {
            // NOOP first: a session that has the folder open sees other clients' changes only
            // at a command that syncs.
            let cmds = [
                "NOOP".to_string(),
                format!("UID FETCH 1:* ({items}) (CHANGEDSINCE {since})"),
            ];
            let resps = self.with_conn(Some(folder), Some(uidvalidity), |c| c.fetch_many(&cmds))?;
            let mut ans = collect(resps, None);
            ans.modseq = Some(ans.modseq.unwrap_or(since).max(since));
            return Ok(ans);
        }
        let pieces: Vec<&[u32]> = uids.chunks(PIECE).collect();
        let per_piece = self.in_parallel(&pieces, |piece| {
            let cmd = format!("UID FETCH {} ({items})", uid_set(piece));
            let resps = self.with_conn(Some(folder), Some(uidvalidity), |c| c.fetch(&cmd))?;
            Ok(collect(resps, Some(&piece.iter().copied().collect())))
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
        if !self.caps()?.condstore {
            return self
                .with_conn(None, None, |c| c.status(folder))
                .map(|s| (s, None));
        }
        let cmd = format!(
            "STATUS {} (UIDVALIDITY UIDNEXT MESSAGES HIGHESTMODSEQ)",
            quote(folder)
        );
        let data = self.with_conn(None, None, |c| {
            sync_if_open(c, folder)?;
            c.run_raw(&cmd).map_err(|e| missing_folder(e, folder))
        })?;
        for line in logical_lines(&data) {
            let Some(v) = untagged(line, "STATUS") else {
                continue;
            };
            let items = status_items(v.get(1));
            let n = |k: &str| {
                get(&items, k)
                    .and_then(|x| u32::try_from(x).ok())
                    .unwrap_or(0)
            };
            let status = FolderStatus {
                uidvalidity: n("UIDVALIDITY"),
                uidnext: n("UIDNEXT"),
                messages: n("MESSAGES"),
            };
            return Ok((status, get(&items, "HIGHESTMODSEQ")));
        }
        Err(StoreError::Parse(format!(
            "STATUS {folder}: no STATUS response"
        )))
    }

    pub(super) fn browse_counts(&self) -> Result<Vec<FolderCounts>> {
        let caps = self.caps()?;
        let special = if caps.special_use { "SPECIAL-USE " } else { "" };
        let cmd = match (caps.list_status, caps.special_use) {
            (true, _) => format!("LIST \"\" \"*\" RETURN ({special}STATUS (MESSAGES UNSEEN))"),
            (false, true) => "LIST \"\" \"*\" RETURN (SPECIAL-USE)".to_string(),
            (false, false) => "LIST \"\" \"*\"".to_string(),
        };
        let data = self.with_conn(None, None, |c| {
            // A session with a folder open would count that folder from its own, older view.
            if c.examined.is_some() {
                c.run_raw("NOOP")?;
            }
            c.run_raw(&cmd)
        })?;
        let mut folders = Vec::new();
        let mut counts = std::collections::HashMap::new();
        for line in logical_lines(&data) {
            if let Some(v) = untagged(line, "LIST") {
                let flags: Vec<String> = match v.first() {
                    Some(Value::List(l)) => l.iter().filter_map(Value::as_text).collect(),
                    _ => Vec::new(),
                };
                let delimiter = v
                    .get(1)
                    .and_then(Value::as_text)
                    .and_then(|d| d.chars().next());
                let Some(name) = v.get(2).and_then(Value::as_text) else {
                    continue;
                };
                folders.push(FolderCounts {
                    name,
                    delimiter,
                    flags,
                    messages: None,
                    unseen: None,
                });
            } else if let Some(v) = untagged(line, "STATUS") {
                if let Some(name) = v.first().and_then(Value::as_text) {
                    counts.insert(name, status_items(v.get(1)));
                }
            }
        }
        if !caps.list_status {
            let selectable: Vec<String> = folders
                .iter()
                .filter(|f| !unselectable(&f.flags))
                .map(|f| f.name.clone())
                .collect();
            let got = self.in_parallel(&selectable, |name| {
                let cmd = format!("STATUS {} (MESSAGES UNSEEN)", quote(name));
                let r = self.with_conn(None, None, |c| {
                    sync_if_open(c, name)?;
                    c.run_raw(&cmd)
                });
                match r {
                    Ok(data) => Ok(logical_lines(&data)
                        .into_iter()
                        .filter_map(|l| untagged(l, "STATUS"))
                        .map(|v| status_items(v.get(1)))
                        .next()),
                    // A folder that cannot be opened shows `-`.
                    Err(StoreError::Server(_)) => Ok(None),
                    Err(e) => Err(e),
                }
            })?;
            for (name, items) in selectable.into_iter().zip(got) {
                if let Some(items) = items {
                    counts.insert(name, items);
                }
            }
        }
        for f in &mut folders {
            if let Some(items) = counts.get(&f.name) {
                let n = |k: &str| get(items, k).and_then(|x| u32::try_from(x).ok());
                f.messages = n("MESSAGES");
                f.unseen = n("UNSEEN");
            }
        }
        Ok(folders)
    }
}

fn unselectable(flags: &[String]) -> bool {
    flags
        .iter()
        .any(|f| f.eq_ignore_ascii_case("\\Noselect") || f.eq_ignore_ascii_case("\\NonExistent"))
}

/// NOOP on a connection that has `folder` open, so that its STATUS is not stale (Dovecot).
fn sync_if_open(c: &mut Conn, folder: &str) -> Result<()> {
    if c.examined.as_ref().is_some_and(|(name, _)| name == folder) {
        c.run_raw("NOOP")?;
    }
    Ok(())
}

/// A NO to STATUS that says the folder does not exist (`[NONEXISTENT]`, or no response code, as
/// for EXAMINE) is `NoSuchFolder`.
fn missing_folder(e: StoreError, folder: &str) -> StoreError {
    match e {
        StoreError::Server(msg) => {
            let lower = msg.to_ascii_lowercase();
            let missing = match lower.rfind(": no ") {
                Some(i) => {
                    let text = lower[i + 5..].trim_start();
                    text.starts_with("[nonexistent]") || !text.starts_with('[')
                }
                None => false,
            };
            match missing {
                true => StoreError::NoSuchFolder(folder.to_string()),
                false => StoreError::Server(msg),
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_keep_literals() {
        let d = b"* LIST () \"/\" {3}\r\na\nb\r\n* STATUS x (MESSAGES 1)\r\n";
        let lines = logical_lines(d);
        assert_eq!(lines.len(), 2);
        let v = untagged(lines[0], "LIST").unwrap();
        assert_eq!(v[2], Value::Str(b"a\nb".to_vec()));
        let v = untagged(lines[1], "STATUS").unwrap();
        assert_eq!(status_items(v.get(1)), [("MESSAGES".to_string(), 1)]);
        assert!(untagged(lines[1], "LIST").is_none());
    }

    #[test]
    fn missing_folders() {
        let e = |m: &str| missing_folder(StoreError::Server(m.into()), "x");
        let gone = StoreError::NoSuchFolder("x".into());
        assert_eq!(
            e("STATUS \"x\" (A): NO [NONEXISTENT] Mailbox doesn't exist: x"),
            gone
        );
        assert_eq!(e("STATUS \"x\" (A): NO Mailbox doesn't exist"), gone);
        assert!(matches!(
            e("STATUS x: NO [UNAVAILABLE] later"),
            StoreError::Server(_)
        ));
        assert!(matches!(e("STATUS x: BAD syntax"), StoreError::Server(_)));
    }

    #[test]
    fn capabilities_and_dates() {
        let c = Caps::parse(b"* CAPABILITY IMAP4rev1 CONDSTORE LIST-STATUS\r\n");
        assert!(c.condstore && c.list_status && !c.special_use);
        assert_eq!(
            date_and_zone("04-Mar-2024 10:15:00 +0100"),
            Some((1_709_543_700, 3600))
        );
        assert_eq!(
            date_and_zone(" 4-Mar-2024 04:45:00 -0530").map(|d| d.1),
            Some(-19800)
        );
        assert_eq!(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(uid_set(&[1, 2, 3, 7]), "1:3,7");
        let sparse: Vec<u32> = (1..5000).map(|u| u * 2).collect();
        assert_eq!(uid_set(&sparse), "2:9998");
    }
}
