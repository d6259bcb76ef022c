//! Following a folder cheaply: what changed since a listing, in a STATUS plus only what moved
//! (`UID FETCH n:*` for new mail, `UID SEARCH ALL` when messages vanished). CONDSTORE/QRESYNC
//! would change only this file.

use std::collections::HashSet;

use super::mapping::summaries;
use super::ImapStore;
use crate::store::{FolderChanges, FolderListing, MessageSummary, Refresh, Result, StoreError};

/// A cheap look at a folder (STATUS): enough to tell whether its listing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FolderStatus {
    pub uidvalidity: u32,
    /// UIDNEXT, 0 when the server did not say.
    pub uidnext: u32,
    pub messages: u32,
}

impl ImapStore {
    /// See [`MailStore::refresh`](crate::store::MailStore::refresh).
    pub(super) fn refresh_folder(
        &self,
        folder: &str,
        since: Option<&FolderListing>,
    ) -> Result<Refresh> {
        let relisted = |highest_modseq| -> Result<Refresh> {
            Ok(Refresh {
                changes: FolderChanges::Relisted(self.listing_of(folder)?),
                highest_modseq,
            })
        };
        let Some(old) = since else {
            return relisted(None);
        };
        // A server whose EXAMINE has no UIDNEXT (Courier): the highest UID listed + 1 stands
        // in, so that a refresh is still a STATUS, not the whole folder again; the first one
        // learns the real UIDNEXT from STATUS.
        let old_next = match old.uidnext {
            0 => old.messages.last().map_or(1, |m| m.uid.saturating_add(1)),
            n => n,
        };
        let (st, modseq) = self.browse_status(folder)?;
        if st.uidvalidity != old.uidvalidity || st.uidnext == 0 {
            return relisted(modseq);
        }
        let changed = |changes| {
            Ok(Refresh {
                changes,
                highest_modseq: modseq,
            })
        };
        if st.uidnext == old_next && st.messages as usize == old.messages.len() {
            return changed(FolderChanges::Unchanged);
        }
        let mut new = Vec::new();
        if st.uidnext != old_next {
            new = self.list_messages_from(folder, old.uidvalidity, old_next)?;
        }
        let mut vanished = Vec::new();
        if old.messages.len() + new.len() != st.messages as usize {
            let uids: HashSet<u32> = self
                .list_uids(folder, old.uidvalidity)?
                .into_iter()
                .collect();
            vanished = old
                .messages
                .iter()
                .map(|m| m.uid)
                .filter(|u| !uids.contains(u))
                .collect();
            new.retain(|m| uids.contains(&m.uid));
            if old.messages.len() - vanished.len() + new.len() != uids.len() {
                // Mail arrived between the commands: start over from a full listing.
                return relisted(modseq);
            }
        }
        changed(FolderChanges::Changed {
            new,
            vanished,
            uidnext: st.uidnext,
        })
    }

    /// EXAMINE the folder afresh (for fresh counts) and list every message.
    pub(super) fn listing_of(&self, folder: &str) -> Result<FolderListing> {
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
            listing.messages = summaries(folder, &resps);
            Ok(listing)
        })
    }

    /// The messages whose UID is at least `from_uid` (`UID FETCH from:*`, filtered: `n:*`
    /// always matches the highest UID). Fails with `UidValidityChanged` if the folder's
    /// UIDVALIDITY is not `uidvalidity`.
    pub(super) fn list_messages_from(
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
        let mut msgs: Vec<MessageSummary> = summaries(folder, &resps)
            .into_iter()
            .filter(|m| m.uid >= from_uid)
            .collect();
        msgs.sort_by_key(|m| m.uid);
        msgs.dedup_by_key(|m| m.uid);
        Ok(msgs)
    }

    /// Every UID in the folder, ascending (`UID SEARCH ALL`), after a fresh EXAMINE.
    pub(super) fn list_uids(&self, folder: &str, uidvalidity: u32) -> Result<Vec<u32>> {
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

    /// UIDVALIDITY, UIDNEXT and the message count (STATUS).
    #[cfg(test)]
    pub(super) fn folder_status(&self, folder: &str) -> Result<FolderStatus> {
        self.with_conn(None, None, |c| c.status(folder))
    }
}
