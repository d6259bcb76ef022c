//! Metadata read-ahead for tools that walk a folder's message directories in UID order (`find`,
//! `ls -lR`, `du`, `grep -r`): once two structure batches in a row were needed, the structures
//! of the next messages, and the sizes of the files the walk asked about, are fetched in the
//! background, in windows that double up to [`MAX_WINDOW`] messages. The walk then finds them
//! in memory instead of waiting for a few round trips every 64 messages.

use super::super::message::STRUCTURE_BATCH;

/// Most messages fetched ahead in one window.
const MAX_WINDOW: usize = 1024;
/// The first window, once a walk is seen: a few batches, so round trips overlap early.
const FIRST_WINDOW: usize = 4 * STRUCTURE_BATCH;
/// Most file names whose sizes are settled ahead.
const MAX_NAMES: usize = 16;

/// The walk seen in one folder.
#[derive(Default, Debug)]
pub struct MetaWalk {
    /// Listing position just after the last batch fetched for a miss: a miss there means the
    /// tool is going through the messages in order.
    expect: Option<usize>,
    /// File names whose size the tool asked for (in the order first asked).
    names: Vec<String>,
    /// Reaching this UID (the first of the last window queued) queues the next window, which
    /// starts at listing position `next`.
    marker: Option<u32>,
    /// The last window queued: listing positions `[ahead_from, next)`.
    ahead_from: usize,
    next: usize,
    window: usize,
}

/// A window of message directories to fetch in the background.
#[derive(Clone, Debug)]
pub struct MetaAhead {
    pub folder: u32,
    pub uidvalidity: u32,
    pub uids: Vec<u32>,
    pub names: Vec<String>,
}

impl MetaWalk {
    /// A batch of structures `[first, end)` (listing positions) was fetched for a miss at
    /// `first`. Returns the UIDs to fetch ahead when this continues a walk.
    /// `cap` bounds a window (a fraction of the structures kept in memory, so a window does
    /// not push out what the tool is using).
    pub fn on_miss(
        &mut self,
        first: usize,
        end: usize,
        uids: &[u32],
        cap: usize,
    ) -> Option<Vec<u32>> {
        if self.marker.is_some() && (self.ahead_from..self.next).contains(&first) {
            // The tool got there before the window fetched ahead (which skips what is in
            // memory by then): still the same walk.
            return None;
        }
        let continues = self.expect == Some(first);
        self.expect = Some(end);
        if !continues {
            self.marker = None;
            return None;
        }
        self.window = FIRST_WINDOW;
        self.queue_from(end, uids, cap)
    }

    /// A message directory was used: when it is the marker, the next window.
    pub fn on_touch(&mut self, uid: u32, uids: &[u32], cap: usize) -> Option<Vec<u32>> {
        if self.marker != Some(uid) {
            return None;
        }
        self.window = (self.window * 2).clamp(STRUCTURE_BATCH, MAX_WINDOW);
        self.queue_from(self.next, uids, cap)
    }

    fn queue_from(&mut self, start: usize, uids: &[u32], cap: usize) -> Option<Vec<u32>> {
        self.window = self.window.min(cap);
        let end = start.saturating_add(self.window).min(uids.len());
        if start >= end || self.window < STRUCTURE_BATCH {
            self.marker = None;
            return None;
        }
        self.marker = Some(uids[start]);
        self.ahead_from = start;
        self.next = end;
        // A miss right after this window still continues the walk.
        self.expect = Some(end);
        Some(uids[start..end].to_vec())
    }

    /// The size of file `name` was asked for.
    pub fn note_name(&mut self, name: &str) {
        if !self.names.iter().any(|n| n == name) {
            if self.names.len() >= MAX_NAMES {
                self.names.remove(0);
            }
            self.names.push(name.to_string());
        }
    }

    pub fn names(&self) -> Vec<String> {
        self.names.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    const CAP: usize = 5000;

    fn uids(n: u32) -> Vec<u32> {
        (1..=n).map(|u| u * 3).collect()
    }

    #[test]
    fn a_single_miss_fetches_nothing_ahead() {
        let all = uids(1000);
        let mut w = MetaWalk::default();
        assert_eq!(w.on_miss(500, 564, &all, CAP), None);
        assert_eq!(w.on_touch(all[564], &all, CAP), None);
    }

    #[test]
    fn a_walk_fetches_doubling_windows_ahead() {
        let all = uids(3000);
        let mut w = MetaWalk::default();
        assert_eq!(w.on_miss(0, 64, &all, CAP), None);
        let first = w
            .on_miss(64, 128, &all, CAP)
            .expect("second batch in a row is a walk");
        assert_eq!(first, all[128..384]);
        // Nothing until the walk reaches the window's first message.
        assert_eq!(w.on_touch(all[130], &all, CAP), None);
        // A miss inside the window on its way (the tool was faster) keeps the walk going.
        assert_eq!(w.on_miss(128, 192, &all, CAP), None);
        assert_eq!(w.on_touch(all[128], &all, CAP).unwrap(), all[384..896]);
        assert_eq!(w.on_touch(all[384], &all, CAP).unwrap(), all[896..1920]);
        // Capped, and cut at the end of the folder.
        assert_eq!(w.on_touch(all[896], &all, CAP).unwrap(), all[1920..2944]);
        assert_eq!(w.on_touch(all[1920], &all, CAP).unwrap(), all[2944..3000]);
        assert_eq!(w.on_touch(all[2944], &all, CAP), None);
    }

    #[test]
    fn a_jump_elsewhere_ends_the_walk() {
        let all = uids(2000);
        let mut w = MetaWalk::default();
        w.on_miss(0, 64, &all, CAP);
        assert!(w.on_miss(64, 128, &all, CAP).is_some());
        assert_eq!(w.on_miss(1500, 1564, &all, CAP), None);
        assert_eq!(
            w.on_touch(all[128], &all, CAP),
            None,
            "the old marker is gone"
        );
        // A miss right after a window fetched ahead still counts as the walk going on.
        assert!(w.on_miss(1564, 1628, &all, CAP).is_some());
    }

    #[test]
    fn windows_stay_within_the_cap() {
        let all = uids(3000);
        let mut w = MetaWalk::default();
        w.on_miss(0, 64, &all, 300);
        assert_eq!(w.on_miss(64, 128, &all, 300).unwrap().len(), 256);
        assert_eq!(w.on_touch(all[128], &all, 300).unwrap().len(), 300);
        // Too little memory for windows at all: no walk read-ahead.
        let mut w = MetaWalk::default();
        w.on_miss(0, 64, &all, 25);
        assert_eq!(w.on_miss(64, 128, &all, 25), None);
    }

    #[test]
    fn names_are_remembered_once_and_bounded() {
        let mut w = MetaWalk::default();
        for i in 0..40 {
            w.note_name(&format!("{}", i % 20));
        }
        let names = w.names();
        assert_eq!(names.len(), MAX_NAMES);
        let distinct: HashSet<&String> = names.iter().collect();
        assert_eq!(distinct.len(), names.len());
    }
}
