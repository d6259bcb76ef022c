//! Changes on a read-write mount (`--read-write`): UID STORE, CREATE, DELETE, RENAME. Folders
//! are then opened with SELECT (see `Conn::select`), fetches stay `.PEEK`. A command that is
//! not idempotent runs once ([`ImapStore::once`]): never repeated by the generic retry of
//! [`ImapStore::with_conn`], since a cut after sending leaves unknown whether it was done.

use super::parse::untagged_values;
use super::session::{is_untagged, Conn};
use super::store::ImapStore;
use super::wire::{self, Cmd, Status};
use crate::names;
use crate::store::{FlagChange, FlagsOutcome, Result, StoreError};

/// `* OK [PERMANENTFLAGS (\Seen \*)] ...`: the flags listed.
pub(super) fn permanent_flags(frame: &[u8]) -> Option<Vec<String>> {
    let text = std::str::from_utf8(frame).ok()?;
    let rest = text.strip_prefix("* ")?;
    if !rest.get(..3)?.eq_ignore_ascii_case("OK ") {
        return None;
    }
    let inner = rest[3..].trim_start().strip_prefix('[')?;
    let (code, after) = inner.split_once(' ')?;
    if !code.eq_ignore_ascii_case("PERMANENTFLAGS") {
        return None;
    }
    let list = after.trim_start().strip_prefix('(')?.split(')').next()?;
    Some(list.split_ascii_whitespace().map(str::to_string).collect())
}

/// A flag safe to put in a command: `\` and an atom, or an atom (the core checked already;
/// this keeps anything else from ever reaching the wire).
fn is_flag(f: &str) -> bool {
    let atom = f.strip_prefix('\\').unwrap_or(f);
    !atom.is_empty()
        && atom
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"(){%*\"\\]".contains(&b))
}

/// May `flag` be stored for good in the folder `c` has open? With no PERMANENTFLAGS sent, RFC
/// 3501 says every flag may.
fn permitted(c: &Conn, flag: &str) -> bool {
    let p = &c.permanent_flags;
    p.is_empty()
        || p.iter().any(|x| x.eq_ignore_ascii_case(flag))
        || (!flag.starts_with('\\') && p.iter().any(|x| x == "\\*"))
}

/// `OK [MODIFIED 5]`: the tagged text says nothing was stored (CONDSTORE).
fn says_modified(text: &str) -> bool {
    text.trim_start()
        .strip_prefix('[')
        .and_then(|t| t.get(..8))
        .is_some_and(|c| c.eq_ignore_ascii_case("MODIFIED"))
}

/// `* n FETCH (... MODSEQ (m) ...)`: m.
fn fetch_modseq(frame: &[u8]) -> Option<u64> {
    let v = untagged_values(frame).ok()?;
    let items = v.get(2)?.as_list()?;
    let i = items.iter().position(|x| {
        x.as_text()
            .is_some_and(|t| t.eq_ignore_ascii_case("MODSEQ"))
    })?;
    items.get(i + 1)?.as_list()?.first()?.as_u64()
}

/// `* n FETCH ...`
fn is_untagged_fetch(frame: &[u8]) -> bool {
    let rest = frame.strip_prefix(b"* ").unwrap_or(b"");
    let sp = rest.iter().position(|&b| b == b' ').unwrap_or(0);
    sp > 0 && rest[..sp].iter().all(u8::is_ascii_digit) && is_untagged(&rest[sp - 1..], "FETCH")
}

/// A NO to CREATE/RENAME/DELETE, as the core should see it.
fn refusal(what: &str, text: &str) -> StoreError {
    let code = text
        .trim_start()
        .strip_prefix('[')
        .and_then(|t| t.split([']', ' ']).next().map(str::to_ascii_uppercase));
    match code.as_deref() {
        Some("ALREADYEXISTS") => StoreError::AlreadyExists(what.to_string()),
        Some("NONEXISTENT") => StoreError::NoSuchFolder(what.to_string()),
        Some("NOPERM") | Some("CANNOT") => StoreError::NotPermitted(format!("{what}: {text}")),
        _ => StoreError::Server(format!("{what}: {text}")),
    }
}

impl ImapStore {
    /// Run `op` once on a connection (`folder` SELECTed with `uidvalidity` when given): no
    /// retry, whatever fails.
    pub(super) fn once<T>(
        &self,
        folder: Option<(&str, u32)>,
        op: impl FnOnce(&mut Conn) -> Result<T>,
    ) -> Result<T> {
        let mut lease = self.pool_checkout(folder.map(|f| f.0))?;
        lease.select = true;
        if let Some((f, want)) = folder {
            let current = match &lease.examined {
                Some((name, uv)) if name == f => *uv,
                _ => lease.examine(f)?.uidvalidity,
            };
            if want != current {
                return Err(StoreError::UidValidityChanged(f.to_string()));
            }
        }
        op(&mut lease)
    }

    pub(super) fn write_store_flags(
        &self,
        folder: &str,
        uidvalidity: u32,
        uid: u32,
        change: &FlagChange,
        unchanged_since: Option<u64>,
    ) -> Result<FlagsOutcome> {
        let (sets, all): (Vec<(&str, &[String])>, Vec<&String>) = match change {
            FlagChange::Replace(s) => (vec![("FLAGS", s)], s.iter().collect()),
            FlagChange::Edit { add, remove } => {
                let mut v: Vec<(&str, &[String])> = Vec::new();
                if !add.is_empty() {
                    v.push(("+FLAGS", add));
                }
                if !remove.is_empty() {
                    v.push(("-FLAGS", remove));
                }
                (v, add.iter().collect())
            }
        };
        if let Some(bad) = sets.iter().flat_map(|s| s.1).find(|f| !is_flag(f)) {
            return Err(StoreError::NotPermitted(format!("{bad:?} is not a flag")));
        }
        let run = |c: &mut Conn| -> Result<FlagsOutcome> {
            if let Some(f) = all.iter().find(|f| !permitted(c, f)) {
                return Err(StoreError::NotPermitted(format!(
                    "{folder}: {f} is not in the folder's PERMANENTFLAGS ({})",
                    c.permanent_flags.join(" ")
                )));
            }
            let mut modseq = None;
            for (item, flags) in &sets {
                let cond =
                    unchanged_since.map_or(String::new(), |m| format!("(UNCHANGEDSINCE {m}) "));
                let cmd = Cmd::text(&format!(
                    "UID STORE {uid} {cond}{item}.SILENT ({})",
                    flags.join(" ")
                ));
                let mut on = |d: Vec<u8>| {
                    if let Some(m) = is_untagged_fetch(&d).then(|| fetch_modseq(&d)).flatten() {
                        modseq = Some(m);
                    }
                    Ok(())
                };
                let what = format!("UID STORE {uid} {item}");
                let mut out = c.run(&[cmd], &wire::CONTROL, &what, &mut on)?;
                match out.pop() {
                    Some((Status::Ok, text)) if says_modified(&text) => {
                        return Ok(FlagsOutcome::Modified)
                    }
                    Some((Status::Ok, _)) => {}
                    Some((s, text)) => {
                        return Err(StoreError::Server(format!("{folder}: {what}: {s} {text}")))
                    }
                    None => return Err(StoreError::Parse(format!("{what}: no answer"))),
                }
            }
            Ok(FlagsOutcome::Stored { modseq })
        };
        match unchanged_since {
            // Conditional: a repeat after a cut would find our own change and refuse.
            Some(_) => self.once(Some((folder, uidvalidity)), run),
            // Setting, adding or removing a set of flags twice is the same as once.
            None => self.with_conn(Some(folder), Some(uidvalidity), run),
        }
    }

    /// A command on folders (CREATE, DELETE, RENAME), once.
    fn folder_command(&self, cmd: Cmd, what: &str) -> Result<()> {
        log::info!("{what}");
        let r = self.once(None, |c| {
            let mut out = c.run(&[cmd], &wire::CONTROL, what, &mut |_| Ok(()))?;
            match out.pop() {
                Some((Status::Ok, _)) => Ok(()),
                Some((Status::No, text)) => Err(refusal(what, &text)),
                Some((s, text)) => Err(StoreError::Server(format!("{what}: {s} {text}"))),
                None => Err(StoreError::Parse(format!("{what}: no answer"))),
            }
        });
        // Idle sessions may hold the old name open.
        self.pool_flush_idle();
        r
    }

    pub(super) fn write_create_folder(&self, name: &str) -> Result<()> {
        let cmd = Cmd::text("CREATE ").string(&names::raw_bytes(name));
        self.folder_command(cmd, &format!("CREATE {name}"))
    }

    pub(super) fn write_delete_folder(&self, name: &str) -> Result<()> {
        let cmd = Cmd::text("DELETE ").string(&names::raw_bytes(name));
        self.folder_command(cmd, &format!("DELETE {name}"))
    }

    pub(super) fn write_rename_folder(&self, from: &str, to: &str) -> Result<()> {
        let cmd = Cmd::text("RENAME ")
            .string(&names::raw_bytes(from))
            .t(" ")
            .string(&names::raw_bytes(to));
        self.folder_command(cmd, &format!("RENAME {from} {to}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_codes() {
        assert_eq!(
            permanent_flags(b"* OK [PERMANENTFLAGS (\\Seen \\Deleted \\*)] Flags permitted.\r\n"),
            Some(vec!["\\Seen".into(), "\\Deleted".into(), "\\*".into()])
        );
        assert_eq!(permanent_flags(b"* OK [UIDNEXT 5] x\r\n"), None);
        assert!(says_modified("[MODIFIED 7] Conditional store failed"));
        assert!(!says_modified("Store completed."));
        assert_eq!(fetch_modseq(b"* 3 FETCH (UID 7 MODSEQ (42))\r\n"), Some(42));
        assert_eq!(fetch_modseq(b"* 3 FETCH (UID 7 FLAGS (\\Seen))\r\n"), None);
        assert!(matches!(
            refusal("CREATE x", "[ALREADYEXISTS] Mailbox already exists"),
            StoreError::AlreadyExists(_)
        ));
        assert!(matches!(refusal("DELETE x", "Oops"), StoreError::Server(_)));
        assert!(is_flag("\\Seen") && is_flag("$Label1"));
        assert!(!is_flag("a b") && !is_flag("x)") && !is_flag("\\") && !is_flag(""));
    }
}
