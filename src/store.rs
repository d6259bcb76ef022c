//! What the filesystem core needs from a mail server, as a trait: the IMAP backend implements it
//! for real, and an in-memory fake implements it for unit tests of the core.

use crate::mime::{Part, StructureError};

mod write;
pub use write::{Appended, FlagChange, FlagsOutcome};

pub type Result<T> = std::result::Result<T, StoreError>;

/// Why a store operation failed. The core maps these onto errno values.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    /// Network trouble, a dropped connection, a timeout: transient, worth a retry later (EIO).
    #[error("connection problem: {0}")]
    Connection(String),
    /// The folder does not exist (any more) on the server (ENOENT).
    #[error("no such folder: {0}")]
    NoSuchFolder(String),
    /// The folder's UIDVALIDITY is not the one the caller expected (ESTALE).
    #[error("UIDVALIDITY of {0} changed")]
    UidValidityChanged(String),
    /// The server answered NO or BAD (EIO).
    #[error("server refused: {0}")]
    Server(String),
    /// A response could not be understood (EIO); the connection has been dropped.
    #[error("unreadable server response: {0}")]
    Parse(String),
    /// Login failed: wrong user or password (fatal at mount time).
    #[error("login failed: {0}")]
    Auth(String),
    /// A change the server (or this mount) does not allow: a flag outside PERMANENTFLAGS, a
    /// move without MOVE or UIDPLUS (EPERM).
    #[error("not permitted: {0}")]
    NotPermitted(String),
    /// The folder to create or rename to exists already (EEXIST).
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// Larger than the server accepts (APPENDLIMIT) (EFBIG).
    #[error("too large: {0}")]
    TooBig(String),
}

/// One folder as LIST reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolderEntry {
    /// The server's name, raw (modified UTF-7), as it must be sent back in commands. Bytes that
    /// are not UTF-8 are mapped reversibly (see `names::name_from_raw`).
    pub name: String,
    /// The hierarchy delimiter, `None` for a flat namespace.
    pub delimiter: Option<char>,
    /// False for `\Noselect` and `\NonExistent` folders: they hold only subfolders.
    pub selectable: bool,
    /// LIST's attributes as the server wrote them (`\HasChildren`, `\Sent`, ...).
    pub attributes: Vec<String>,
}

/// One message as a folder listing reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageSummary {
    pub uid: u32,
    /// INTERNALDATE as seconds since the Unix epoch.
    pub internal_date: i64,
    pub rfc822_size: u64,
}

/// A folder's state after EXAMINE plus its message list.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct FolderListing {
    pub uidvalidity: u32,
    /// UIDNEXT, 0 when the server did not say.
    pub uidnext: u32,
    pub exists: u32,
    /// Sorted by UID, ascending.
    pub messages: Vec<MessageSummary>,
}

/// A folder's changes since a listing (see [`MailStore::refresh`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refresh {
    pub changes: FolderChanges,
    /// HIGHESTMODSEQ, when the server has CONDSTORE (flags changed iff it moved).
    pub highest_modseq: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FolderChanges {
    /// The listing is current.
    Unchanged,
    /// Same UIDVALIDITY; these messages arrived (UID ≥ the old UIDNEXT, ascending) and these
    /// UIDs vanished; the folder's UIDNEXT is now `uidnext`.
    Changed {
        new: Vec<MessageSummary>,
        vanished: Vec<u32>,
        uidnext: u32,
    },
    /// A whole new listing: the first one, a new UIDVALIDITY (everything known of the folder
    /// is void), or changes that could not be worked out piecewise.
    Relisted(FolderListing),
}

impl FolderChanges {
    /// The changes from `old` to `now`, from two whole listings.
    pub fn between(old: Option<&FolderListing>, now: FolderListing) -> FolderChanges {
        let Some(old) = old.filter(|o| o.uidvalidity == now.uidvalidity) else {
            return FolderChanges::Relisted(now);
        };
        if old == &now {
            return FolderChanges::Unchanged;
        }
        let had = |u: u32| old.messages.binary_search_by_key(&u, |m| m.uid).is_ok();
        let has = |u: u32| now.messages.binary_search_by_key(&u, |m| m.uid).is_ok();
        let new: Vec<MessageSummary> = now
            .messages
            .iter()
            .filter(|m| !had(m.uid))
            .copied()
            .collect();
        if new.iter().any(|m| m.uid < old.uidnext) {
            // A UID below the old UIDNEXT that was not there: not a change IMAP allows.
            return FolderChanges::Relisted(now);
        }
        FolderChanges::Changed {
            new,
            vanished: old
                .messages
                .iter()
                .map(|m| m.uid)
                .filter(|&u| !has(u))
                .collect(),
            uidnext: now.uidnext,
        }
    }

    /// `old` with these changes applied.
    pub fn apply(self, old: &FolderListing) -> Option<FolderListing> {
        match self {
            FolderChanges::Unchanged => None,
            FolderChanges::Relisted(l) => Some(l),
            FolderChanges::Changed {
                new,
                vanished,
                uidnext,
            } => {
                let gone: std::collections::HashSet<u32> = vanished.into_iter().collect();
                let mut messages: Vec<MessageSummary> = old
                    .messages
                    .iter()
                    .filter(|m| !gone.contains(&m.uid))
                    .copied()
                    .collect();
                messages.extend(new);
                messages.sort_by_key(|m| m.uid);
                messages.dedup_by_key(|m| m.uid);
                let uidnext = messages
                    .last()
                    .map_or(uidnext, |m| uidnext.max(m.uid.saturating_add(1)));
                Some(FolderListing {
                    uidvalidity: old.uidvalidity,
                    uidnext,
                    exists: messages.len() as u32,
                    messages,
                })
            }
        }
    }
}

/// What one message's structure fetch returns: its MIME tree (from `BODYSTRUCTURE`) and
/// `BODY.PEEK[HEADER]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StructureData {
    /// The tree, or why the server's BODYSTRUCTURE could not be read (the message then shows
    /// its HEADER and its body as stored).
    pub structure: std::result::Result<Part, StructureError>,
    pub header: Vec<u8>,
}

/// One partial body fetch: `UID FETCH uid BODY.PEEK[section]<offset.len>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RangeRequest {
    pub uid: u32,
    /// An IMAP section spec: `1`, `2.1`, `HEADER`, `3.HEADER`, or empty for the whole message.
    pub section: String,
    pub offset: u64,
    /// Bytes wanted; the answer is shorter at the end of the section.
    pub len: u64,
    /// Fetch `BINARY.PEEK[section]` (the server decodes; literal8 carries NUL bytes) instead of
    /// `BODY.PEEK[section]`. Only when [`MailStore::offers_binary`] says so.
    pub binary: bool,
}

/// The mail server as the filesystem core sees it. Every method may block on the network; all
/// are read-only (EXAMINE, BODY.PEEK).
pub trait MailStore: Send + Sync {
    /// Does the server offer BINARY (RFC 3516), so that `RangeRequest::binary` may be used?
    fn offers_binary(&self) -> bool {
        false
    }

    /// Every folder (LIST "" "*").
    fn list_folders(&self) -> Result<Vec<FolderEntry>>;

    /// EXAMINE the folder and list its messages (UID, INTERNALDATE, RFC822.SIZE) in a constant
    /// number of round trips.
    fn list_messages(&self, folder: &str) -> Result<FolderListing>;

    /// What changed in `folder` since the caller's listing `since` (none: list it afresh). A
    /// store can work this out cheaply (IMAP: a STATUS, then only the new messages, and the
    /// UIDs when some vanished); the default lists the folder and compares.
    fn refresh(&self, folder: &str, since: Option<&FolderListing>) -> Result<Refresh> {
        let now = self.list_messages(folder)?;
        Ok(Refresh {
            changes: FolderChanges::between(since, now),
            highest_modseq: None,
        })
    }

    /// Wait up to `max` for the server to report a change in `folder` (IMAP IDLE, on a
    /// connection of its own): `Ok(true)` when something changed, `Ok(false)` when nothing did
    /// within `max` (or "look now": the first wait on a folder answers `true` at once, since
    /// changes made before the wait began are not reported). A store that cannot be told just
    /// waits.
    fn wait_for_change(&self, folder: &str, max: std::time::Duration) -> Result<bool> {
        let _ = folder;
        std::thread::sleep(max);
        Ok(false)
    }

    /// BODYSTRUCTURE and header of each UID, batched. UIDs that no longer exist are absent from
    /// the answer; a message whose response cannot be parsed gets an `Err` of its own without
    /// failing the others. Fails with `UidValidityChanged` if the folder's UIDVALIDITY is not
    /// `uidvalidity`.
    fn fetch_structures(
        &self,
        folder: &str,
        uidvalidity: u32,
        uids: &[u32],
    ) -> Result<Vec<(u32, Result<StructureData>)>>;

    /// The UIDs of the folder's messages that match `criteria` (`UID SEARCH`), ascending. Fails
    /// with `UidValidityChanged` as above.
    fn search(
        &self,
        folder: &str,
        uidvalidity: u32,
        criteria: &crate::search::Criteria,
    ) -> Result<Vec<u32>> {
        let _ = (folder, uidvalidity, criteria);
        Err(StoreError::Server("this store cannot search".into()))
    }

    /// Partial fetches, batched; answer `i` is the bytes for `reqs[i]` (empty for a vanished
    /// message or a range past the end).
    fn fetch_ranges(
        &self,
        folder: &str,
        uidvalidity: u32,
        reqs: &[RangeRequest],
    ) -> Result<Vec<Vec<u8>>>;

    // ---- browsing: summaries, flags and counts (defaults: not offered) --------------------

    /// One line's worth of each UID for a folder summary (`UID FETCH uids (UID FLAGS
    /// INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)])`), in pieces; vanished
    /// UIDs are absent. Fails with `UidValidityChanged` as above.
    fn fetch_briefs(
        &self,
        folder: &str,
        uidvalidity: u32,
        uids: &[u32],
    ) -> Result<Vec<MessageBrief>> {
        let _ = (folder, uidvalidity, uids);
        Err(StoreError::Server("summaries are not offered".into()))
    }

    /// The flags of `uids` (`UID FETCH uids (UID FLAGS)`), or with `changed_since` (CONDSTORE)
    /// of every message whose flags changed after that mod-sequence. Also the highest
    /// mod-sequence seen, when the server has CONDSTORE.
    fn fetch_flags(
        &self,
        folder: &str,
        uidvalidity: u32,
        uids: &[u32],
        changed_since: Option<u64>,
    ) -> Result<FlagsAnswer> {
        let _ = (folder, uidvalidity, uids, changed_since);
        Err(StoreError::Server("flags are not offered".into()))
    }

    /// LIST flags (with special-use) and MESSAGES / UNSEEN of every folder: one `LIST ...
    /// RETURN (SPECIAL-USE STATUS (MESSAGES UNSEEN))` with LIST-STATUS, else LIST and a STATUS
    /// per folder. Counts are `None` for a folder that cannot be opened.
    fn folder_counts(&self) -> Result<Vec<FolderCounts>> {
        Err(StoreError::Server("folder counts are not offered".into()))
    }

    /// The account's quota (`GETQUOTAROOT INBOX`, RFC 9208); `None` when the server has no
    /// QUOTA or no quota applies to INBOX.
    fn quota(&self) -> Result<Option<Quota>> {
        Ok(None)
    }

    // ---- changes, for --read-write mounts only (defaults: not permitted) -----------------

    /// Change the flags of one message (`UID STORE`, never retried past a cut connection).
    /// With `unchanged_since` (CONDSTORE), nothing is stored if the message's flags changed
    /// after that mod-sequence (`FlagsOutcome::Modified`).
    fn store_flags(
        &self,
        folder: &str,
        uidvalidity: u32,
        uid: u32,
        change: &FlagChange,
        unchanged_since: Option<u64>,
    ) -> Result<FlagsOutcome> {
        let _ = (folder, uidvalidity, uid, change, unchanged_since);
        Err(StoreError::NotPermitted(
            "this store cannot change flags".into(),
        ))
    }

    /// Move `uids` of `from` into folder `to` (`UID MOVE`; without MOVE `UID COPY`, then
    /// `\Deleted` and `UID EXPUNGE` of those UIDs once COPYUID confirmed the copy; without
    /// UIDPLUS either, `NotPermitted`). Never retried. (source UID, new UID) pairs as the
    /// server reported them (COPYUID).
    fn move_messages(
        &self,
        from: &str,
        uidvalidity: u32,
        uids: &[u32],
        to: &str,
    ) -> Result<Vec<(u32, u32)>> {
        let _ = (from, uidvalidity, uids, to);
        Err(StoreError::NotPermitted(
            "this store cannot move messages".into(),
        ))
    }

    /// Remove `uids` for good: `\Deleted` and `UID EXPUNGE` of exactly those (UIDPLUS; never a
    /// plain EXPUNGE, which would remove other clients' deleted messages too).
    fn expunge_messages(&self, folder: &str, uidvalidity: u32, uids: &[u32]) -> Result<()> {
        let _ = (folder, uidvalidity, uids);
        Err(StoreError::NotPermitted(
            "this store cannot delete messages".into(),
        ))
    }

    /// APPEND the `size` bytes of `file` (read from its start) to `folder`: no flags,
    /// INTERNALDATE now. Refused with `TooBig` beyond the server's APPENDLIMIT. Never retried
    /// blindly: after a cut the message is looked for before it is appended again.
    fn append_message(
        &self,
        folder: &str,
        file: &mut std::fs::File,
        size: u64,
    ) -> Result<Appended> {
        let _ = (folder, file, size);
        Err(StoreError::NotPermitted(
            "this store cannot append messages".into(),
        ))
    }

    /// CREATE a folder (`name` raw, modified UTF-7).
    fn create_folder(&self, name: &str) -> Result<()> {
        let _ = name;
        Err(StoreError::NotPermitted(
            "this store cannot create folders".into(),
        ))
    }

    /// DELETE a folder (the caller made sure it is empty).
    fn delete_folder(&self, name: &str) -> Result<()> {
        let _ = name;
        Err(StoreError::NotPermitted(
            "this store cannot delete folders".into(),
        ))
    }

    /// RENAME a folder.
    fn rename_folder(&self, from: &str, to: &str) -> Result<()> {
        let _ = (from, to);
        Err(StoreError::NotPermitted(
            "this store cannot rename folders".into(),
        ))
    }
}

/// An account's quota: (usage, limit) of each resource the server reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Quota {
    /// STORAGE, in units of 1024 octets.
    pub storage: Option<(u64, u64)>,
    /// MESSAGE: a number of messages.
    pub messages: Option<(u64, u64)>,
}

/// One message for a folder summary, as the server gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageBrief {
    pub uid: u32,
    pub flags: Vec<String>,
    /// INTERNALDATE as seconds since the Unix epoch, and the server's offset from UTC in seconds.
    pub internal_date: i64,
    pub zone_offset: i32,
    pub rfc822_size: u64,
    /// `BODY[HEADER.FIELDS (FROM SUBJECT)]` as sent (raw header lines).
    pub fields: Vec<u8>,
    /// MODSEQ, when the server has CONDSTORE (asked along, so flags can follow with CHANGEDSINCE).
    pub modseq: Option<u64>,
}

/// Flags by UID, and the highest mod-sequence seen (CONDSTORE only).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlagsAnswer {
    pub flags: Vec<(u32, Vec<String>)>,
    pub modseq: Option<u64>,
}

/// One folder's line in FOLDERS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolderCounts {
    /// The server's name (modified UTF-7).
    pub name: String,
    pub delimiter: Option<char>,
    /// LIST flags including special-use ones, as sent (`\HasNoChildren`, `\Sent`).
    pub flags: Vec<String>,
    pub messages: Option<u32>,
    pub unseen: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(uidvalidity: u32, uidnext: u32, uids: &[u32]) -> FolderListing {
        FolderListing {
            uidvalidity,
            uidnext,
            exists: uids.len() as u32,
            messages: uids
                .iter()
                .map(|&uid| MessageSummary {
                    uid,
                    internal_date: uid.into(),
                    rfc822_size: 10,
                })
                .collect(),
        }
    }

    #[test]
    fn changes_between_listings_apply_back() {
        let old = listing(7, 5, &[1, 2, 4]);
        let now = listing(7, 9, &[1, 4, 6, 8]);
        let ch = FolderChanges::between(Some(&old), now.clone());
        let FolderChanges::Changed { new, vanished, .. } = &ch else {
            panic!("{ch:?}");
        };
        assert_eq!(new.iter().map(|m| m.uid).collect::<Vec<_>>(), [6, 8]);
        assert_eq!(vanished, &[2]);
        assert_eq!(ch.apply(&old), Some(now.clone()));
        assert_eq!(
            FolderChanges::between(Some(&now), now.clone()),
            FolderChanges::Unchanged
        );
        assert_eq!(FolderChanges::Unchanged.apply(&now), None);
        // A new UIDVALIDITY, or a UID appearing below the old UIDNEXT: a whole new listing.
        let renewed = listing(8, 3, &[1, 2]);
        assert_eq!(
            FolderChanges::between(Some(&old), renewed.clone()),
            FolderChanges::Relisted(renewed)
        );
        let odd = listing(7, 5, &[1, 2, 3, 4]);
        assert_eq!(
            FolderChanges::between(Some(&old), odd.clone()),
            FolderChanges::Relisted(odd)
        );
    }
}
