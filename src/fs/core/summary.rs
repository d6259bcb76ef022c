//! Folder summaries: the flags of every message (for FLAGS and INDEX) and INDEX itself, one
//! line per message, kept compact (a few dozen bytes a message plus its From and Subject) and
//! rendered by range on read. Flags follow the server: with CONDSTORE a refresh of an
//! unchanged folder costs nothing beyond the listing's STATUS; without, they are fetched again
//! once per poll interval when looked at.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::fs::{Attr, FsError, FsResult, Ttl};
use crate::mime::header::{decode_words, field, one_line};
use crate::store::MessageBrief;
use crate::store::StoreError;
use crate::sync::lock;

use super::{release_free_memory, FolderState, Listing, MailFs};

/// UIDs per summary command: keeps each response, and memory while building, bounded.
const BRIEF_PIECE: usize = 5_000;

pub use super::folder_flags::FolderFlags;

/// Briefs fetched, their flags (UID, space-separated) and the mod-sequence to ask changes from.
type Fetched = (Briefs, Vec<(u32, String)>, Option<u64>);

/// Of two answers' mod-sequences, the one to ask CHANGEDSINCE from: answers taken at different
/// moments each saw every change up to their own, so the lower one misses nothing.
fn earliest(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

/// One message's line, without its flags (they change).
#[derive(Clone, Copy, Debug)]
struct Brief {
    uid: u32,
    zone: i32,
    date: i64,
    size: u64,
    /// `From TAB Subject` in `Briefs::text`.
    text: (u32, u32),
}

#[derive(Debug, Default)]
struct Briefs {
    entries: Vec<Brief>,
    text: String,
}

impl Briefs {
    fn push(&mut self, b: &MessageBrief) {
        let from = field(&b.fields, "From").map(|v| one_line(&decode_words(&v)));
        let subject = field(&b.fields, "Subject").map(|v| one_line(&decode_words(&v)));
        let start = self.text.len();
        self.text.push_str(from.as_deref().unwrap_or("").trim());
        self.text.push('\t');
        self.text.push_str(subject.as_deref().unwrap_or("").trim());
        self.entries.push(Brief {
            uid: b.uid,
            zone: b.zone_offset,
            date: b.internal_date,
            size: b.rfc822_size,
            text: (start as u32, (self.text.len() - start) as u32),
        });
    }

    fn text_of(&self, b: &Brief) -> &str {
        let (o, n) = (b.text.0 as usize, b.text.1 as usize);
        self.text.get(o..o + n).unwrap_or("")
    }
}

/// INDEX at one moment: the folder's lines and the flags they show.
#[derive(Debug)]
pub struct Summary {
    uidvalidity: u32,
    briefs: Arc<Briefs>,
    flags: Arc<FolderFlags>,
    /// End offset of each line.
    ends: Vec<u64>,
}

/// `2024-03-04T10:15:00+01:00`: INTERNALDATE in the zone the server gave it in.
pub fn iso_date(epoch: i64, zone: i32) -> String {
    let offset = chrono::FixedOffset::east_opt(zone)
        .unwrap_or_else(|| chrono::FixedOffset::east_opt(0).expect("zero offset"));
    match chrono::DateTime::from_timestamp(epoch, 0) {
        Some(t) => t
            .with_timezone(&offset)
            .format("%Y-%m-%dT%H:%M:%S%:z")
            .to_string(),
        None => "-".into(),
    }
}

/// One INDEX line: `UID TAB INTERNALDATE TAB RFC822.SIZE TAB FLAGS TAB From TAB Subject LF`.
pub fn index_line(uid: u32, date: &str, size: u64, flags: &str, from_subject: &str) -> String {
    let flags = match flags {
        "" => "-",
        f => f,
    };
    format!("{uid}\t{date}\t{size}\t{flags}\t{from_subject}\n")
}

impl Summary {
    fn new(uidvalidity: u32, briefs: Arc<Briefs>, flags: Arc<FolderFlags>) -> Summary {
        let mut ends = Vec::with_capacity(briefs.entries.len());
        let mut end = 0u64;
        let mut s = Summary {
            uidvalidity,
            briefs,
            flags,
            ends: Vec::new(),
        };
        for i in 0..s.briefs.entries.len() {
            end += s.line(i).len() as u64;
            ends.push(end);
        }
        s.ends = ends;
        s
    }

    fn line(&self, i: usize) -> String {
        let b = &self.briefs.entries[i];
        let flags = self.flags.of(b.uid).unwrap_or("");
        let date = iso_date(b.date, b.zone);
        index_line(b.uid, &date, b.size, flags, self.briefs.text_of(b))
    }

    /// The lines of the messages in `uids` (ascending), as INDEX shows them.
    pub fn lines_of(&self, uids: &[u32]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, b) in self.briefs.entries.iter().enumerate() {
            if uids.binary_search(&b.uid).is_ok() {
                out.extend_from_slice(self.line(i).as_bytes());
            }
        }
        out
    }

    pub fn len(&self) -> u64 {
        self.ends.last().copied().unwrap_or(0)
    }

    /// Bytes `[offset, offset + n)`, rendering only the lines they touch.
    pub fn read(&self, offset: u64, n: u64) -> Vec<u8> {
        let end = offset.saturating_add(n).min(self.len());
        let mut out = Vec::new();
        let mut i = self.ends.partition_point(|&e| e <= offset);
        while i < self.ends.len() {
            let start = if i == 0 { 0 } else { self.ends[i - 1] };
            if start >= end {
                break;
            }
            let line = self.line(i);
            let lo = offset.saturating_sub(start) as usize;
            let hi = ((end - start) as usize).min(line.len());
            out.extend_from_slice(&line.as_bytes()[lo.min(hi)..hi]);
            i += 1;
        }
        out
    }
}

impl MailFs {
    /// The flags of every message in the folder, refreshed when the listing was and at most
    /// once per poll interval.
    pub(super) fn folder_flags(
        &self,
        fs: &FolderState,
        listing: &Listing,
    ) -> FsResult<Arc<FolderFlags>> {
        let mut slot = lock(&fs.flags);
        let uv = listing.data.uidvalidity;
        let cur = slot.clone().filter(|c| c.uidvalidity == uv);
        // The listing is refreshed once per poll interval (with the STATUS that tells whether
        // flags changed): the flags follow it.
        if let Some(c) = cur.as_ref().filter(|c| c.listing_at == listing.fetched) {
            return Ok(c.clone());
        }
        let fresh = match cur.as_ref().and_then(|c| Some((c, c.modseq()?))) {
            Some((c, since)) => {
                let status = fs.modseq.load(Ordering::Relaxed);
                let same_uids = c.by_uid.len() == listing.uids.len()
                    && c.by_uid
                        .iter()
                        .map(|e| e.0)
                        .eq(listing.uids.iter().copied());
                if status != 0 && status <= since && same_uids {
                    // Nothing changed on the server: no command at all.
                    FolderFlags::build(uv, c.pairs(), Some(since), listing.fetched)
                } else {
                    let ans = self.store.fetch_flags(&fs.raw, uv, &[], Some(since))?;
                    let mut map: HashMap<u32, String> = c.pairs().collect();
                    for (u, f) in ans.flags {
                        map.insert(u, f.join(" "));
                    }
                    let missing: Vec<u32> = listing
                        .uids
                        .iter()
                        .copied()
                        .filter(|u| !map.contains_key(u))
                        .collect();
                    let mut modseq = ans.modseq.unwrap_or(since).max(since);
                    if !missing.is_empty() {
                        let more = self.store.fetch_flags(&fs.raw, uv, &missing, None)?;
                        modseq = earliest(Some(modseq), more.modseq).unwrap_or(modseq);
                        map.extend(more.flags.into_iter().map(|(u, f)| (u, f.join(" "))));
                    }
                    let keep = listing
                        .uids
                        .iter()
                        .filter_map(|u| Some((*u, map.remove(u)?)));
                    FolderFlags::build(uv, keep, Some(modseq), listing.fetched)
                }
            }
            None => {
                let ans = self.store.fetch_flags(&fs.raw, uv, &listing.uids, None)?;
                let pairs = ans.flags.into_iter().map(|(u, f)| (u, f.join(" ")));
                FolderFlags::build(uv, pairs, ans.modseq, listing.fetched)
            }
        };
        let fresh = Arc::new(fresh);
        *slot = Some(fresh.clone());
        Ok(fresh)
    }

    /// INDEX of folder `id` as it is now.
    pub(super) fn index_of(&self, id: u32) -> FsResult<Arc<Summary>> {
        let fs = self.folder_state(id)?.ok_or(FsError::NotFound)?;
        let listing = self.listing(&fs)?;
        let uv = listing.data.uidvalidity;
        let cold = lock(&fs.flags).as_ref().is_none_or(|f| f.uidvalidity != uv);
        let flags = match cold {
            true => None,
            false => Some(self.folder_flags(&fs, &listing)?),
        };
        let mut slot = lock(&fs.summary);
        // Another reader may have built the flags while this one waited for the summary.
        let flags = flags.or_else(|| lock(&fs.flags).clone().filter(|f| f.uidvalidity == uv));
        let cur = slot.clone().filter(|s| s.uidvalidity == uv);
        if let (Some(c), Some(f)) = (&cur, &flags) {
            if Arc::ptr_eq(&c.flags, f) {
                return Ok(c.clone());
            }
        }
        let old = cur.as_ref().map(|c| c.briefs.clone()).unwrap_or_default();
        let have: HashSet<u32> = old.entries.iter().map(|b| b.uid).collect();
        let missing: Vec<u32> = listing
            .uids
            .iter()
            .copied()
            .filter(|u| !have.contains(u))
            .collect();
        let same = missing.is_empty() && old.entries.len() == listing.uids.len();
        let (briefs, new_flags, new_modseq) = match same {
            true => (old, Vec::new(), None),
            false => {
                let (fetched, flags, modseq) = self.fetch_briefs(&fs, uv, &missing)?;
                let mut b = Briefs::default();
                let mut it_old = old
                    .entries
                    .iter()
                    .filter(|e| listing.message(e.uid).is_some());
                let mut it_new = fetched.entries.iter();
                let (mut x, mut y) = (it_old.next(), it_new.next());
                // Merge by UID, both sides ascending.
                loop {
                    let (src, e) = match (x, y) {
                        (Some(a), Some(n)) if a.uid < n.uid => (&*old, a),
                        (Some(_), Some(n)) | (None, Some(n)) => (&fetched, n),
                        (Some(a), None) => (&*old, a),
                        (None, None) => break,
                    };
                    let start = b.text.len();
                    b.text.push_str(src.text_of(e));
                    b.entries.push(Brief {
                        text: (start as u32, (b.text.len() - start) as u32),
                        ..*e
                    });
                    if std::ptr::eq(src, &fetched) {
                        y = it_new.next();
                    } else {
                        x = it_old.next();
                    }
                }
                b.text.shrink_to_fit();
                (Arc::new(b), flags, modseq)
            }
        };
        let flags = match flags {
            Some(f) => f,
            // No FETCH brought the flags along: ask for them.
            None if same => self.folder_flags(&fs, &listing)?,
            None => {
                // Cold: the summary's own FETCH brought every message's flags.
                let f = Arc::new(FolderFlags::build(
                    uv,
                    new_flags.into_iter(),
                    new_modseq,
                    listing.fetched,
                ));
                *lock(&fs.flags) = Some(f.clone());
                f
            }
        };
        let s = Arc::new(Summary::new(uv, briefs, flags));
        *slot = Some(s.clone());
        if missing.len() >= 10_000 {
            // Parsing big answers leaves megabytes of freed buffers behind.
            release_free_memory();
        }
        Ok(s)
    }

    /// Briefs of `uids` (ascending), in pieces over several connections; compact as they come.
    /// Also the flags, and a mod-sequence from which CHANGEDSINCE catches every later change.
    fn fetch_briefs(&self, fs: &FolderState, uidvalidity: u32, uids: &[u32]) -> FsResult<Fetched> {
        let pieces: Vec<&[u32]> = uids.chunks(BRIEF_PIECE).collect();
        let parts = crate::parallel::in_order(
            &pieces,
            self.opts.parallel_fetches.max(1),
            |piece| {
                let mut got = self.store.fetch_briefs(&fs.raw, uidvalidity, piece)?;
                got.sort_by_key(|b| b.uid);
                got.dedup_by_key(|b| b.uid);
                let mut b = Briefs::default();
                let mut flags = Vec::with_capacity(got.len());
                for m in &got {
                    b.push(m);
                    flags.push((m.uid, m.flags.join(" ")));
                }
                let modseq = got.iter().filter_map(|m| m.modseq).max();
                Ok::<_, StoreError>((b, flags, modseq))
            },
            || StoreError::Connection("a summary worker panicked".into()),
        )?;
        let mut out = Briefs::default();
        let mut flags = Vec::new();
        let mut modseq: Option<u64> = None;
        for (b, f, m) in parts {
            modseq = earliest(modseq, m);
            let base = out.text.len() as u32;
            out.text.push_str(&b.text);
            out.entries.extend(b.entries.iter().map(|e| Brief {
                text: (e.text.0 + base, e.text.1),
                ..*e
            }));
            flags.extend(f);
        }
        Ok((out, flags, modseq))
    }

    pub(super) fn index_attr(&self, ino: u64, id: u32) -> FsResult<(Attr, Ttl)> {
        let s = self.index_of(id)?;
        Ok((self.file_attr(ino, s.len(), self.mount_time), Ttl::Live))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn dates_keep_the_servers_offset() {
        assert_eq!(iso_date(1_709_543_700, 3600), "2024-03-04T10:15:00+01:00");
        assert_eq!(
            iso_date(1_709_543_700, -5 * 3600 - 1800),
            "2024-03-04T03:45:00-05:30"
        );
        assert_eq!(iso_date(0, 0), "1970-01-01T00:00:00+00:00");
    }

    #[test]
    fn index_lines() {
        assert_eq!(
            index_line(7, "D", 120, "\\Seen $Label1", "Alice <a@x>\tHi"),
            "7\tD\t120\t\\Seen $Label1\tAlice <a@x>\tHi\n"
        );
        assert_eq!(index_line(8, "D", 1, "", "\t"), "8\tD\t1\t-\t\t\n");
    }

    fn brief(uid: u32, fields: &str) -> MessageBrief {
        MessageBrief {
            uid,
            flags: vec![],
            internal_date: 0,
            zone_offset: 0,
            rfc822_size: 10,
            fields: fields.as_bytes().to_vec(),
            modseq: None,
        }
    }

    #[test]
    fn summary_reads_by_range_and_decodes_headers() {
        let mut b = Briefs::default();
        b.push(&brief(
            1,
            "From: =?utf-8?q?J=C3=B6rg?= <j@x>\r\nSubject: a\r\n\tb\tc\r\n\r\n",
        ));
        b.push(&brief(2, "\r\n"));
        let flags = FolderFlags::build(
            5,
            [(1, "\\Seen".to_string())].into_iter(),
            None,
            Instant::now(),
        );
        let s = Summary::new(5, Arc::new(b), Arc::new(flags));
        let all = String::from_utf8(s.read(0, 1 << 20)).unwrap();
        let d = iso_date(0, 0);
        assert_eq!(
            all,
            format!("1\t{d}\t10\t\\Seen\tJörg <j@x>\ta b c\n2\t{d}\t10\t-\t\t\n")
        );
        assert_eq!(s.len(), all.len() as u64);
        for (o, n) in [
            (0, 1),
            (3, 40),
            (50, 7),
            (all.len() as u64 - 2, 10),
            (999, 5),
        ] {
            let want = all.as_bytes().get(o as usize..).unwrap_or(&[]);
            let want = &want[..want.len().min(n as usize)];
            assert_eq!(s.read(o, n), want, "{o} {n}");
        }
    }
}
