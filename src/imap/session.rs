//! Commands on one authenticated connection, all read by its [`Wire`]: each under its limits and
//! deadline, with unsolicited responses (RFC 3501 §7: any untagged response at any time) read
//! and ignored. A `dead` flag marks connections that must not be reused.

use std::time::{Duration, Instant};

use super::caps::Caps;
use super::connect::{Opened, Stream};
use super::list::parse_list;
use super::parse::{same_folder, status_item, status_response};
use super::refresh::FolderStatus;
use super::response::{parse_fetches, FetchResponse};
use super::wire::{self, Cmd, Limits, Status, Transport, Wire, WireError};
use crate::names;
use crate::store::{FolderEntry, StoreError};

/// Most bytes of structures and headers one FETCH keeps (a batch of 200 ordinary messages
/// needs about 2 MiB).
const MAX_KEPT_STRUCTURES: u64 = 64 << 20;

/// What EXAMINE reports about a folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Examined {
    pub uidvalidity: u32,
    pub uidnext: u32,
    pub exists: u32,
}

/// One logged-in connection and the folder it has EXAMINEd.
pub struct Conn {
    pub id: u64,
    pub(super) wire: Wire<Stream>,
    /// What the server offers (as said after login).
    pub caps: Caps,
    /// The folder currently EXAMINEd and its UIDVALIDITY.
    pub examined: Option<(String, u32)>,
    /// Set after an IO error, timeout, BYE, broken limit or unreadable answer: the
    /// connection's state is unknown, so it must be dropped, never reused.
    pub dead: bool,
    pub last_used: Instant,
    /// Open folders with SELECT (read-write mounts) instead of EXAMINE.
    pub select: bool,
    /// PERMANENTFLAGS of the folder open (SELECT), as sent.
    pub permanent_flags: Vec<String>,
}

/// Is a NO to EXAMINE a "no such folder"? `[NONEXISTENT]`, or no response code and words to
/// that effect, or no response code at all (RFC 3501's plain "NO - select failure").
fn no_means_missing(info: &str) -> bool {
    let t = info.trim_start().to_ascii_lowercase();
    if t.starts_with("[nonexistent]") {
        return true;
    }
    if t.starts_with('[') {
        return false; // [UNAVAILABLE], [SERVERBUG], [LIMIT], [NOPERM], ...
    }
    true
}

/// `* <n> <word> ...`: (n, word upper-cased).
fn numbered(frame: &[u8]) -> Option<(u32, String)> {
    let rest = frame.strip_prefix(b"* ")?;
    let sp = rest.iter().position(|&b| b == b' ')?;
    let n: u32 = std::str::from_utf8(&rest[..sp]).ok()?.parse().ok()?;
    let word: Vec<u8> = rest[sp + 1..]
        .iter()
        .take_while(|b| b.is_ascii_alphabetic())
        .copied()
        .collect();
    Some((n, String::from_utf8_lossy(&word).to_ascii_uppercase()))
}

/// `* OK [CODE n] ...`: n when CODE matches.
fn ok_code(frame: &[u8], code: &str) -> Option<u32> {
    let text = String::from_utf8_lossy(frame);
    let rest = text.strip_prefix("* ")?;
    if !rest.get(..3)?.eq_ignore_ascii_case("OK ") {
        return None;
    }
    let inner = rest[3..].trim_start().strip_prefix('[')?;
    let (c, after) = inner.split_once(' ')?;
    if !c.eq_ignore_ascii_case(code) {
        return None;
    }
    after.split(']').next()?.trim().parse().ok()
}

/// Does this untagged response start with `* WORD`?
pub(super) fn is_untagged(frame: &[u8], word: &str) -> bool {
    frame.len() > 2 + word.len()
        && frame[2..2 + word.len()].eq_ignore_ascii_case(word.as_bytes())
        && matches!(frame[2 + word.len()], b' ' | b'\r' | b'\n')
}

/// The most a FETCH command's literals may hold: the largest range it asks for plus slack, or
/// the default for commands with an un-ranged item.
fn fetch_limits(cmds: &[String]) -> Limits {
    let mut max = 0u64;
    for cmd in cmds {
        for item in cmd.split(' ') {
            let item = item.trim_end_matches(')');
            if item.starts_with("BODY.PEEK[") || item.starts_with("BINARY.PEEK[") {
                let len = item
                    .rsplit_once('.')
                    .filter(|_| item.ends_with('>'))
                    .and_then(|(_, n)| n.trim_end_matches('>').parse::<u64>().ok());
                match len {
                    Some(n) => max = max.max(n),
                    None => return wire::FETCH,
                }
            }
        }
    }
    if cmds
        .iter()
        .any(|c| c.contains("[HEADER") || c.contains("BODYSTRUCTURE"))
    {
        return wire::FETCH;
    }
    Limits {
        literal: max + wire::LITERAL_SLACK,
        ..wire::FETCH
    }
}

impl Conn {
    pub fn new(id: u64, opened: Opened) -> Conn {
        Conn {
            id,
            wire: opened.wire,
            caps: opened.caps,
            examined: None,
            dead: false,
            last_used: Instant::now(),
            select: false,
            permanent_flags: Vec::new(),
        }
    }

    /// Map a wire failure, marking the connection dead.
    pub(super) fn fail(&mut self, e: WireError, what: &str) -> StoreError {
        self.dead = true;
        self.examined = None;
        match e {
            WireError::Protocol(m) => StoreError::Parse(format!("{what}: {m}")),
            other => StoreError::Connection(format!("{what}: {other}")),
        }
    }

    /// Run commands, handing untagged responses to `on_untagged`; the tagged outcomes.
    pub(super) fn run(
        &mut self,
        cmds: &[Cmd],
        lim: &Limits,
        what: &str,
        on_untagged: &mut dyn FnMut(Vec<u8>) -> Result<(), WireError>,
    ) -> Result<Vec<(Status, String)>, StoreError> {
        self.last_used = Instant::now();
        for c in cmds {
            log::debug!("[imap {}] {}", self.id, short(&c.shown));
        }
        match self.wire.run(cmds, lim, on_untagged) {
            Ok(o) => Ok(o),
            Err(e) => Err(self.fail(e, what)),
        }
    }

    /// One command; a NO/BAD is `StoreError::Server`.
    pub(super) fn run_one(
        &mut self,
        cmd: Cmd,
        lim: &Limits,
        on_untagged: &mut dyn FnMut(Vec<u8>) -> Result<(), WireError>,
    ) -> Result<(), StoreError> {
        let what = short(&cmd.shown);
        let mut out = self.run(&[cmd], lim, &what, on_untagged)?;
        match out.pop() {
            Some((Status::Ok, _)) => Ok(()),
            Some((s, text)) => Err(StoreError::Server(format!("{what}: {s} {text}"))),
            None => Err(StoreError::Parse(format!("{what}: no answer"))),
        }
    }

    /// EXAMINE (read-only) `folder`; SELECT on a read-write mount (`select`).
    pub fn examine(&mut self, folder: &str) -> Result<Examined, StoreError> {
        // A failed EXAMINE leaves no folder selected.
        self.examined = None;
        let verb = if self.select { "SELECT" } else { "EXAMINE" };
        let cmd = Cmd::text(&format!("{verb} ")).string(&names::raw_bytes(folder));
        let mut permanent = Vec::new();
        let mut ex = Examined {
            uidvalidity: 0,
            uidnext: 0,
            exists: 0,
        };
        let mut on = |d: Vec<u8>| {
            if let Some((n, w)) = numbered(&d) {
                if w == "EXISTS" {
                    ex.exists = n;
                }
            } else if let Some(v) = ok_code(&d, "UIDVALIDITY") {
                ex.uidvalidity = v;
            } else if let Some(v) = ok_code(&d, "UIDNEXT") {
                ex.uidnext = v;
            } else if let Some(f) = super::write::permanent_flags(&d) {
                permanent = f;
            }
            Ok(())
        };
        let what = format!("{verb} {folder}");
        let mut out = self.run(&[cmd], &wire::CONTROL, &what, &mut on)?;
        match out.pop() {
            Some((Status::Ok, _)) => {
                self.examined = Some((folder.to_string(), ex.uidvalidity));
                self.permanent_flags = permanent;
                Ok(ex)
            }
            Some((Status::No, text)) if no_means_missing(&text) => {
                log::debug!("[imap {}] {verb} {:?}: NO {}", self.id, folder, text);
                Err(StoreError::NoSuchFolder(folder.to_string()))
            }
            Some((s, text)) => Err(StoreError::Server(format!("{what}: {s} {text}"))),
            None => Err(StoreError::Parse(format!("{what}: no answer"))),
        }
    }

    /// STATUS `folder` (UIDVALIDITY UIDNEXT MESSAGES): whether it changed, without listing it.
    pub fn status(&mut self, folder: &str) -> Result<FolderStatus, StoreError> {
        let items = self.status_items(folder, "UIDVALIDITY UIDNEXT MESSAGES")?;
        let n = |k: &str| status_item(&items, k).and_then(|n| u32::try_from(n).ok());
        Ok(FolderStatus {
            uidvalidity: n("UIDVALIDITY").unwrap_or(0),
            uidnext: n("UIDNEXT").unwrap_or(0),
            messages: n("MESSAGES").unwrap_or(0),
        })
    }

    /// STATUS `folder` (`items`): the items answered for that folder, upper-cased. A NO that
    /// says the folder does not exist is `NoSuchFolder`.
    pub fn status_items(
        &mut self,
        folder: &str,
        items: &str,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        if self
            .examined
            .as_ref()
            .is_some_and(|(name, _)| name == folder)
        {
            // Dovecot answers STATUS on the folder this session has open from the session's
            // view, which only catches up on other clients' changes at a command that syncs.
            self.noop()?;
        }
        let raw = names::raw_bytes(folder);
        let cmd = Cmd::text("STATUS ").string(&raw).t(&format!(" ({items})"));
        let what = format!("STATUS {folder}");
        let mut got = Vec::new();
        let mut on = |d: Vec<u8>| {
            if !is_untagged(&d, "STATUS") {
                return Ok(());
            }
            // An unreadable or unsolicited STATUS (another folder) is ignored.
            match status_response(&d) {
                Some((name, items)) if same_folder(&name, &raw) => got = items,
                _ => {}
            }
            Ok(())
        };
        let mut out = self.run(&[cmd], &wire::CONTROL, &what, &mut on)?;
        match out.pop() {
            Some((Status::Ok, _)) => Ok(got),
            Some((Status::No, text)) if no_means_missing(&text) => {
                Err(StoreError::NoSuchFolder(folder.to_string()))
            }
            Some((s, text)) => Err(StoreError::Server(format!("{what}: {s} {text}"))),
            None => Err(StoreError::Parse(format!("{what}: no answer"))),
        }
    }

    /// NOOP: lets the server report changes to the open folder (answers ignored).
    pub fn noop(&mut self) -> Result<(), StoreError> {
        self.run_one(Cmd::text("NOOP"), &wire::CONTROL, &mut |_| Ok(()))
    }

    /// `UID SEARCH ALL` in the EXAMINEd folder, ascending.
    pub fn all_uids(&mut self) -> Result<Vec<u32>, StoreError> {
        let mut uids = Vec::new();
        let mut on = |d: Vec<u8>| {
            if is_untagged(&d, "SEARCH") {
                let text = String::from_utf8_lossy(&d[8..]);
                for w in text.split_ascii_whitespace() {
                    // Not a number: `(MODSEQ n)` from CONDSTORE, not a UID.
                    if let Ok(u) = w.parse::<u32>() {
                        uids.push(u);
                    }
                }
            }
            Ok(())
        };
        self.run_one(Cmd::text("UID SEARCH ALL"), &wire::SEARCH, &mut on)?;
        uids.sort_unstable();
        uids.dedup();
        Ok(uids)
    }

    /// IDLE in the EXAMINEd folder for up to `max`: true when the server reported a change.
    pub fn idle(&mut self, max: Duration) -> Result<bool, StoreError> {
        self.last_used = Instant::now();
        log::debug!("[imap {}] IDLE up to {:?}", self.id, max);
        let r = self.idle_inner(max);
        r.map_err(|e| match e {
            Ok(refusal) => refusal,
            Err(w) => self.fail(w, "IDLE"),
        })
    }

    #[allow(clippy::type_complexity)]
    fn idle_inner(&mut self, max: Duration) -> Result<bool, Result<StoreError, WireError>> {
        let tag = self.wire.new_tag();
        let lim = wire::CONTROL;
        let mut tally = wire::Tally::default();
        self.wire
            .send(format!("{tag} IDLE\r\n").as_bytes())
            .map_err(Err)?;
        self.wire.io.clock().begin_default();
        let changed = std::cell::Cell::new(false);
        let note = |d: Vec<u8>| {
            // `* OK Still here` keepalives are not changes.
            if !is_untagged(&d, "OK") {
                changed.set(true);
            }
            Ok(())
        };
        if let Some((_, text)) = self
            .wire
            .await_continue(&tag, &lim, &mut tally, &mut { note })
            .map_err(Err)?
        {
            return Err(Ok(StoreError::Server(format!("IDLE: {text}"))));
        }
        let until = Instant::now() + max;
        while !changed.get() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() || !self.wire.wait_readable(left).map_err(Err)? {
                break;
            }
            self.wire.io.clock().begin_default();
            match self.wire.read_frame(&lim, &mut tally).map_err(Err)? {
                wire::Frame::Untagged(d) => note(d).map_err(Err)?,
                wire::Frame::Tagged { text, .. } => {
                    // The server ended the IDLE itself.
                    log::debug!("[imap {}] IDLE ended by the server: {text}", self.id);
                    return Ok(changed.get());
                }
                wire::Frame::Continue(_) => {}
            }
        }
        self.wire.send(b"DONE\r\n").map_err(Err)?;
        self.wire.io.clock().begin_default();
        loop {
            match self.wire.read_frame(&lim, &mut tally).map_err(Err)? {
                wire::Frame::Untagged(d) => note(d).map_err(Err)?,
                wire::Frame::Tagged { tag: t, .. } if t == tag => return Ok(changed.get()),
                _ => return Err(Err(WireError::Protocol("unexpected answer to DONE".into()))),
            }
        }
    }

    /// LIST "" "*": every folder, names mapped to strings by [`names::name_from_raw`].
    pub fn list(&mut self) -> Result<Vec<FolderEntry>, StoreError> {
        let mut out = Vec::new();
        let mut bad = 0usize;
        let mut on = |d: Vec<u8>| {
            if is_untagged(&d, "LIST") {
                match parse_list(&d) {
                    Some(e) => out.push(e),
                    None => bad += 1,
                }
            }
            Ok(())
        };
        self.run_one(Cmd::text("LIST \"\" \"*\""), &wire::LIST, &mut on)?;
        if bad > 0 {
            log::warn!("LIST: {bad} unreadable lines skipped");
        }
        Ok(out)
    }

    /// Run a FETCH-like command (without tag) and parse its untagged FETCH responses.
    pub fn fetch(&mut self, cmd: &str) -> Result<Vec<FetchResponse>, StoreError> {
        self.fetch_many(std::slice::from_ref(&cmd.to_string()))
    }

    /// Several FETCH-like commands pipelined: sent together, answered in one round trip. The
    /// untagged FETCH responses of all of them, in arrival order (the server may interleave
    /// them), each parsed as it arrives. Any refusal or unreadable answer fails the whole call.
    pub fn fetch_many(&mut self, cmds: &[String]) -> Result<Vec<FetchResponse>, StoreError> {
        let what = match cmds {
            [one] => short(one),
            [first, ..] => format!("{} (+{} pipelined)", short(first), cmds.len() - 1),
            [] => return Ok(Vec::new()),
        };
        let lim = fetch_limits(cmds);
        // What structure answers may keep in memory (refused structures are not kept).
        let keep_limit = if cmds.iter().any(|c| c.contains("BODYSTRUCTURE")) {
            MAX_KEPT_STRUCTURES
        } else {
            u64::MAX
        };
        let list: Vec<Cmd> = cmds.iter().map(|c| Cmd::text(c)).collect();
        let mut out = Vec::new();
        self.fetch_each(&list, &lim, keep_limit, &what, &mut |f| out.push(f))?;
        Ok(out)
    }

    /// Commands answered by FETCH responses, pipelined: each response parsed as it arrives and
    /// handed to `on`, under `lim`; the bytes of responses that were not refused must stay
    /// under `keep_limit`. Any refusal or unreadable answer fails the whole call.
    pub(super) fn fetch_each(
        &mut self,
        cmds: &[Cmd],
        lim: &Limits,
        keep_limit: u64,
        what: &str,
        on: &mut dyn FnMut(FetchResponse),
    ) -> Result<(), StoreError> {
        let mut unreadable: Option<String> = None;
        let mut kept = 0u64;
        let mut on_untagged = |d: Vec<u8>| {
            if unreadable.is_some() || numbered(&d).is_none_or(|(_, w)| w != "FETCH") {
                return Ok(());
            }
            match parse_fetches(&d) {
                Ok(f) => {
                    if f.iter().all(|r| r.refused.is_empty()) {
                        kept += d.len() as u64;
                    }
                    if kept > keep_limit {
                        return Err(WireError::Protocol(format!(
                            "structures and headers larger than {keep_limit} bytes"
                        )));
                    }
                    f.into_iter().for_each(&mut *on);
                }
                Err(e) => unreadable = Some(e.to_string()),
            }
            Ok(())
        };
        let outcomes = self.run(cmds, lim, what, &mut on_untagged)?;
        if let Some(e) = unreadable {
            // Read whole, so the connection is still in step.
            return Err(StoreError::Parse(format!("{what}: {e}")));
        }
        if let Some((s, text)) = outcomes.into_iter().find(|(s, _)| *s != Status::Ok) {
            return Err(StoreError::Server(format!("{what}: {s} {text}")));
        }
        Ok(())
    }

    /// LOGOUT, for a clean shutdown: sent, not waited for (a hung server must not hold up
    /// the exit); errors ignored.
    pub fn logout(mut self) {
        if !self.dead {
            log::debug!("[imap {}] LOGOUT", self.id);
            let tag = self.wire.new_tag();
            let _ = self.wire.send(format!("{tag} LOGOUT\r\n").as_bytes());
        }
    }
}

/// A command shortened for logs and error messages.
pub(super) fn short(cmd: &str) -> String {
    if cmd.len() <= 80 {
        cmd.to_string()
    } else {
        let mut k = 77;
        while !cmd.is_char_boundary(k) {
            k -= 1;
        }
        format!("{}...", &cmd[..k])
    }
}

#[cfg(test)]
mod tests;
