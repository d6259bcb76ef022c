//! Moving and deleting messages on a read-write mount. `UID MOVE` (RFC 6851) when offered;
//! otherwise `UID COPY`, then `\Deleted` and `UID EXPUNGE` (UIDPLUS) of exactly those UIDs, and
//! only after COPYUID confirmed the copy: a cut or a refusal anywhere leaves every message in
//! the source or the target (at worst in both), never in neither. Without UIDPLUS nothing is
//! deleted: a plain EXPUNGE would also remove other clients' `\Deleted` messages.

use super::session::{is_untagged, Conn};
use super::store::ImapStore;
use super::uidset;
use super::wire::{self, Cmd, Status};
use crate::names;
use crate::store::{Result, StoreError};

/// Most UIDs a COPYUID set may name (a bound on what a server's answer makes us hold).
const MAX_COPYUID: usize = 1 << 20;

/// `a:b,c` → the UIDs, in order (`None` when unreadable or too many).
fn expand(set: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for piece in set.split(',') {
        let (a, b) = piece.split_once(':').unwrap_or((piece, piece));
        let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
        let (lo, hi) = (a.min(b), a.max(b));
        if out.len() + (hi - lo) as usize >= MAX_COPYUID {
            return None;
        }
        out.extend(lo..=hi);
    }
    Some(out)
}

/// `[COPYUID uidvalidity source-set target-set] ...` → (source UID, target UID) pairs.
fn copyuid(text: &str) -> Option<Vec<(u32, u32)>> {
    let inner = text.trim_start().strip_prefix('[')?;
    let (code, _) = inner.split_once(']')?;
    let mut words = code.split_ascii_whitespace();
    if !words.next()?.eq_ignore_ascii_case("COPYUID") {
        return None;
    }
    let _uidvalidity: u32 = words.next()?.parse().ok()?;
    let (from, to) = (expand(words.next()?)?, expand(words.next()?)?);
    (from.len() == to.len()).then(|| from.into_iter().zip(to).collect())
}

/// Run one command; its tagged OK text, any untagged `OK [COPYUID ...]` mapping gathered.
fn run(c: &mut Conn, cmd: Cmd, what: &str, map: &mut Vec<(u32, u32)>) -> Result<String> {
    let mut on = |d: Vec<u8>| {
        if is_untagged(&d, "OK") {
            let text = String::from_utf8_lossy(&d[4..]).into_owned();
            map.extend(copyuid(&text).unwrap_or_default());
        }
        Ok(())
    };
    let mut out = c.run(&[cmd], &wire::CONTROL, what, &mut on)?;
    match out.pop() {
        Some((Status::Ok, text)) => Ok(text),
        Some((s, text)) => Err(StoreError::Server(format!("{what}: {s} {text}"))),
        None => Err(StoreError::Parse(format!("{what}: no answer"))),
    }
}

/// `\Deleted` and `UID EXPUNGE` of exactly `set` (the caller checked UIDPLUS).
fn expunge_set(c: &mut Conn, folder: &str, set: &str) -> Result<()> {
    let mut none = Vec::new();
    let what = format!("{folder}: UID STORE {set} +FLAGS.SILENT (\\Deleted)");
    log::info!("{what}");
    let cmd = Cmd::text(&format!("UID STORE {set} +FLAGS.SILENT (\\Deleted)"));
    run(c, cmd, &what, &mut none)?;
    let what = format!("{folder}: UID EXPUNGE {set}");
    log::info!("{what}");
    run(
        c,
        Cmd::text(&format!("UID EXPUNGE {set}")),
        &what,
        &mut none,
    )?;
    Ok(())
}

impl ImapStore {
    pub(super) fn write_move(
        &self,
        from: &str,
        uidvalidity: u32,
        uids: &[u32],
        to: &str,
    ) -> Result<Vec<(u32, u32)>> {
        let set = uidset::compact(uids);
        if set.is_empty() {
            return Ok(Vec::new());
        }
        let target = names::raw_bytes(to);
        self.once(Some((from, uidvalidity)), |c| {
            let mut map = Vec::new();
            if c.caps.has("MOVE") {
                let what = format!("{from}: UID MOVE {set} {to}");
                log::info!("{what}");
                let cmd = Cmd::text(&format!("UID MOVE {set} ")).string(&target);
                let text = run(c, cmd, &what, &mut map)?;
                map.extend(copyuid(&text).unwrap_or_default());
                return Ok(map);
            }
            if !c.caps.has("UIDPLUS") {
                return Err(StoreError::NotPermitted(format!(
                    "{from}: moving UID {set} to {to} needs MOVE or UIDPLUS (a plain EXPUNGE \
                     would also remove other clients' deleted messages)"
                )));
            }
            let what = format!("{from}: UID COPY {set} {to}");
            log::info!("{what}");
            let cmd = Cmd::text(&format!("UID COPY {set} ")).string(&target);
            let text = run(c, cmd, &what, &mut map)?;
            let copied = copyuid(&text).unwrap_or_default();
            let mut sources: Vec<u32> = copied.iter().map(|p| p.0).collect();
            sources.sort_unstable();
            let mut asked = uids.to_vec();
            asked.sort_unstable();
            asked.dedup();
            if sources != asked {
                // The copy is not confirmed for every message: keep the originals.
                return Err(StoreError::Server(format!(
                    "{what}: the server did not confirm the copy (COPYUID); originals kept"
                )));
            }
            expunge_set(c, from, &set)?;
            Ok(copied)
        })
    }

    pub(super) fn write_expunge(&self, folder: &str, uidvalidity: u32, uids: &[u32]) -> Result<()> {
        let set = uidset::compact(uids);
        if set.is_empty() {
            return Ok(());
        }
        self.once(Some((folder, uidvalidity)), |c| {
            if !c.caps.has("UIDPLUS") {
                return Err(StoreError::NotPermitted(format!(
                    "{folder}: deleting UID {set} needs UIDPLUS (UID EXPUNGE; a plain EXPUNGE \
                     would also remove other clients' deleted messages)"
                )));
            }
            expunge_set(c, folder, &set)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copyuid_codes() {
        assert_eq!(
            copyuid("[COPYUID 38505 304,319:320 3956:3958] Done"),
            Some(vec![(304, 3956), (319, 3957), (320, 3958)])
        );
        assert_eq!(copyuid("[COPYUID 1 1:2 5] x"), None);
        assert_eq!(copyuid("Done"), None);
        assert_eq!(copyuid("[APPENDUID 1 5] x"), None);
        assert_eq!(expand("4294967295:1"), None);
    }
}
