//! A FLAGS write: the line parsed into a [`FlagChange`] and stored on the server.

use std::sync::atomic::Ordering;

use super::super::MailFs;
use crate::fs::inodes::Node;
use crate::fs::FsError;
use crate::fs::FsResult;
use crate::fs::Invalidation;
use crate::store::{FlagChange, FlagsOutcome};
use crate::sync::lock;
use std::sync::Arc;

/// The system flags a client may set (RFC 3501 §2.3.2; `\Recent` is the server's).
const SYSTEM: [&str; 5] = ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"];

/// Parse what was written to FLAGS: words separated by white space, all plain (replace the
/// set) or all with `+`/`-` (add/remove). System flags are matched without case; keywords
/// must be IMAP atoms.
pub(crate) fn parse_flags(text: &[u8]) -> FsResult<FlagChange> {
    let text = std::str::from_utf8(text).map_err(|_| FsError::Invalid("not UTF-8".into()))?;
    let (mut plain, mut add, mut remove) = (Vec::new(), Vec::new(), Vec::new());
    for word in text.split_ascii_whitespace() {
        let (sign, flag) = match word.as_bytes()[0] {
            b'+' => (Some(true), &word[1..]),
            b'-' => (Some(false), &word[1..]),
            _ => (None, word),
        };
        let flag = canonical(flag)?;
        match sign {
            None => plain.push(flag),
            Some(true) => add.push(flag),
            Some(false) => remove.push(flag),
        }
    }
    match (plain.is_empty(), add.is_empty() && remove.is_empty()) {
        (_, true) => Ok(FlagChange::Replace(plain)),
        (true, false) => Ok(FlagChange::Edit { add, remove }),
        (false, false) => Err(FsError::Invalid(
            "FLAGS takes either a whole set or +/- words, not both".into(),
        )),
    }
}

/// A flag as it is sent: system flags in their usual spelling; keywords checked as atoms.
fn canonical(flag: &str) -> FsResult<String> {
    if let Some(name) = flag.strip_prefix('\\') {
        return SYSTEM
            .iter()
            .find(|s| s[1..].eq_ignore_ascii_case(name))
            .map(|s| s.to_string())
            .ok_or_else(|| FsError::Invalid(format!("{flag}: not a flag a client may set")));
    }
    let atom = !flag.is_empty()
        && flag
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"(){%*\"\\]".contains(&b));
    match atom {
        true => Ok(flag.to_string()),
        false => Err(FsError::Invalid(format!("{flag:?}: not a keyword"))),
    }
}

fn shown(change: &FlagChange) -> String {
    match change {
        FlagChange::Replace(set) => format!("FLAGS ({})", set.join(" ")),
        FlagChange::Edit { add, remove } => {
            format!("+FLAGS ({}) -FLAGS ({})", add.join(" "), remove.join(" "))
        }
    }
}

impl MailFs {
    /// Store what was written to a FLAGS file, and show the result at once.
    pub(super) fn apply_flags(&self, node: Node, text: &[u8]) -> FsResult<()> {
        self.check_writable()?;
        let Node::Extra {
            folder,
            uidvalidity,
            uid,
            ..
        } = node
        else {
            return Err(FsError::Denied);
        };
        let change = parse_flags(text)?;
        let (fs, _) = self.summary(folder, uidvalidity, uid)?;
        let listing = self.listing(&fs)?;
        if listing.data.uidvalidity != uidvalidity {
            return Err(FsError::Stale);
        }
        let known = self.folder_flags(&fs, &listing)?;
        // Adding and removing commute with others' changes; replacing does not.
        let since = match &change {
            FlagChange::Replace(_) => known.modseq().map(|m| {
                let own = lock(&self.writes.own_modseq).get(&(folder, uid)).copied();
                own.map_or(m, |o| o.max(m))
            }),
            FlagChange::Edit { .. } => None,
        };
        log::info!("{}: UID {uid}: UID STORE {}", fs.raw, shown(&change));
        // Before and after: IDLE may echo the change before the answer comes.
        fs.note_own_change();
        let outcome = self
            .store
            .store_flags(&fs.raw, uidvalidity, uid, &change, since);
        fs.note_own_change();
        let outcome = outcome?;
        match outcome {
            FlagsOutcome::Stored { modseq } => {
                if let Some(m) = modseq {
                    lock(&self.writes.own_modseq).insert((folder, uid), m);
                }
                let old: Vec<String> = known
                    .of(uid)
                    .unwrap_or("")
                    .split_ascii_whitespace()
                    .map(str::to_string)
                    .collect();
                let now = change.apply(&old).join(" ");
                let mut slot = lock(&fs.flags);
                if slot.as_ref().is_some_and(|f| Arc::ptr_eq(f, &known)) {
                    *slot = Some(Arc::new(known.with(uid, now, modseq)));
                } else {
                    // Refreshed meanwhile: ask the server again.
                    *slot = None;
                }
            }
            FlagsOutcome::Modified => {
                log::warn!(
                    "{}: UID {uid}: flags changed by someone else meanwhile; not stored",
                    fs.raw
                );
                *lock(&fs.flags) = None;
                fs.stale.store(true, Ordering::Relaxed);
                return Err(FsError::Again);
            }
        }
        for n in [node, Node::Index(folder)] {
            if let Some(ino) = self.nodes.existing(&n) {
                self.invalidate(Invalidation::Inode(ino));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_lines() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            parse_flags(b"\\seen \\FLAGGED\n").unwrap(),
            FlagChange::Replace(s(&["\\Seen", "\\Flagged"]))
        );
        assert_eq!(parse_flags(b"\n").unwrap(), FlagChange::Replace(vec![]));
        assert_eq!(
            parse_flags(b"+\\Seen -\\Flagged +$Label1").unwrap(),
            FlagChange::Edit {
                add: s(&["\\Seen", "$Label1"]),
                remove: s(&["\\Flagged"])
            }
        );
        for bad in [
            &b"\\Seen +\\Flagged"[..],
            b"\\Recent",
            b"\\Bogus",
            b"a(b",
            b"+",
            b"\xff",
        ] {
            assert!(
                matches!(parse_flags(bad), Err(FsError::Invalid(_))),
                "{bad:?}"
            );
        }
    }
}
