//! The changes a read-write mount may ask of a store (`--read-write`): flags, and later moves,
//! deletions, new messages and folders. Types only; the trait methods are in `MailStore`.

/// How a FLAGS write changes a message's flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlagChange {
    /// Replace the whole set (`UID STORE uid FLAGS.SILENT (...)`).
    Replace(Vec<String>),
    /// Add these and remove those (`+FLAGS.SILENT` / `-FLAGS.SILENT`); either may be empty.
    Edit {
        add: Vec<String>,
        remove: Vec<String>,
    },
}

impl FlagChange {
    /// The flags `old` becomes (case-insensitive for system flags, as IMAP compares them).
    pub fn apply(&self, old: &[String]) -> Vec<String> {
        let same = |a: &str, b: &str| {
            if a.starts_with('\\') {
                a.eq_ignore_ascii_case(b)
            } else {
                a == b
            }
        };
        let mut out: Vec<String> = match self {
            FlagChange::Replace(set) => set.clone(),
            FlagChange::Edit { add, remove } => {
                let mut v: Vec<String> = old
                    .iter()
                    .filter(|f| !remove.iter().any(|r| same(r, f)))
                    .cloned()
                    .collect();
                for a in add {
                    if !v.iter().any(|f| same(a, f)) {
                        v.push(a.clone());
                    }
                }
                v
            }
        };
        out.dedup();
        out
    }
}

/// What a FLAGS write ended as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlagsOutcome {
    /// Done; with CONDSTORE, the message's new mod-sequence.
    Stored { modseq: Option<u64> },
    /// CONDSTORE: the message's flags changed after `unchanged_since`; nothing was stored.
    Modified,
}

/// What an APPEND ended as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// APPENDUID (UIDPLUS): the folder's UIDVALIDITY and the new message's UID.
    pub uid: Option<(u32, u32)>,
    /// A cut left the outcome unknown and the message was found (or appended again).
    pub recovered: bool,
}
