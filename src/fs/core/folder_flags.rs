//! The flags of every message of a folder at one moment (FLAGS files and INDEX show them),
//! compact: each distinct flag list stored once.

use std::collections::HashMap;
use std::time::Instant;

/// The flags of every message of a folder at one moment.
#[derive(Debug)]
pub struct FolderFlags {
    pub(super) uidvalidity: u32,
    /// (UID, index into `sets`), by UID.
    pub(super) by_uid: Vec<(u32, u32)>,
    /// Distinct flag lists, space-separated (`""` for none).
    sets: Vec<String>,
    /// Highest mod-sequence seen (CONDSTORE).
    modseq: Option<u64>,
    /// `fetched` of the listing these flags were checked against.
    pub(super) listing_at: Instant,
}

impl FolderFlags {
    pub(super) fn build(
        uidvalidity: u32,
        flags: impl Iterator<Item = (u32, String)>,
        modseq: Option<u64>,
        listing_at: Instant,
    ) -> FolderFlags {
        let mut ids: HashMap<String, u32> = HashMap::new();
        let mut sets = Vec::new();
        let mut by_uid: Vec<(u32, u32)> = flags
            .map(|(uid, f)| {
                let id = *ids.entry(f.clone()).or_insert_with(|| {
                    sets.push(f);
                    sets.len() as u32 - 1
                });
                (uid, id)
            })
            .collect();
        by_uid.sort_unstable();
        by_uid.dedup_by_key(|e| e.0);
        FolderFlags {
            uidvalidity,
            by_uid,
            sets,
            modseq,
            listing_at,
        }
    }

    /// The flags of `uid`, space-separated; `None` for a UID not known.
    pub fn of(&self, uid: u32) -> Option<&str> {
        let i = self.by_uid.binary_search_by_key(&uid, |e| e.0).ok()?;
        self.sets.get(self.by_uid[i].1 as usize).map(String::as_str)
    }

    /// The highest mod-sequence these flags were checked at (CONDSTORE).
    pub(super) fn modseq(&self) -> Option<u64> {
        self.modseq
    }

    /// These flags with `uid`'s set to `flags` after a STORE of our own that the server gave
    /// `stored_at` (its MODSEQ, CONDSTORE). When that is the very next mod-sequence, nobody
    /// else changed anything between: these flags are then current up to it, and the next
    /// refresh (whose STATUS shows it as HIGHESTMODSEQ) needs no FETCH of flags.
    pub(super) fn with(&self, uid: u32, flags: String, stored_at: Option<u64>) -> FolderFlags {
        let pairs = self.pairs().map(|(u, f)| match u == uid {
            true => (u, flags.clone()),
            false => (u, f),
        });
        let modseq = match (self.modseq, stored_at) {
            (Some(m), Some(s)) if m.checked_add(1) == Some(s) => Some(s),
            (m, _) => m,
        };
        FolderFlags::build(self.uidvalidity, pairs, modseq, self.listing_at)
    }

    pub(super) fn pairs(&self) -> impl Iterator<Item = (u32, String)> + '_ {
        self.by_uid
            .iter()
            .map(|&(u, i)| (u, self.sets[i as usize].clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_store_advances_the_modseq_only_when_nothing_came_between() {
        let pairs = || [(1, "".to_string()), (2, "\\Seen".to_string())].into_iter();
        let f = FolderFlags::build(5, pairs(), Some(10), Instant::now());
        let next = f.with(1, "\\Seen".into(), Some(11));
        assert_eq!(
            (next.of(1), next.of(2), next.modseq()),
            (Some("\\Seen"), Some("\\Seen"), Some(11))
        );
        // A gap: someone else's change may lie between; still only known up to 10.
        assert_eq!(f.with(1, "x".into(), Some(12)).modseq(), Some(10));
        assert_eq!(f.with(1, "x".into(), None).modseq(), Some(10));
        let plain = FolderFlags::build(5, pairs(), None, Instant::now());
        assert_eq!(plain.with(1, "x".into(), Some(1)).modseq(), None);
    }
}
