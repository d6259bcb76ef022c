//! `UID SEARCH` with criteria from [`crate::search`]: `CHARSET UTF-8` when a string needs it,
//! strings as literals where needed, and ESEARCH's `RETURN (ALL)` (a compact UID set instead of
//! one number per message) when the server offers it.

use super::cmd::{Cmd, Piece};
use super::session::{is_untagged, Conn};
use super::wire;
use crate::search::{Arg, Criteria};
use crate::store::StoreError;

/// Most UIDs one answer may expand to (an ESEARCH set like `1:4000000000` is refused).
const MAX_RESULTS: usize = 4_000_000;

impl Conn {
    /// The UIDs of the EXAMINEd folder's messages that match, ascending.
    pub fn search(&mut self, criteria: &Criteria) -> Result<Vec<u32>, StoreError> {
        let esearch = self.caps.has("ESEARCH");
        let mut cmd = Cmd::text("UID SEARCH ");
        if esearch {
            cmd = cmd.t("RETURN (ALL) ");
        }
        if criteria.needs_utf8() {
            cmd = cmd.t("CHARSET UTF-8 ");
        }
        for arg in criteria.command_args() {
            match arg {
                Arg::Text(t) => cmd = cmd.t(&t),
                Arg::Literal(b) => {
                    cmd.shown
                        .push_str(&format!("{:?}", String::from_utf8_lossy(&b)));
                    cmd.pieces.push(Piece::Literal(b));
                }
            }
        }
        let mut uids = Vec::new();
        let mut too_many = false;
        let mut on = |d: Vec<u8>| {
            if !search_uids(&d, &mut uids) && is_untagged(&d, "ESEARCH") {
                if let Some(set) = esearch_all(&d) {
                    too_many |= !expand(set, &mut uids);
                }
            }
            too_many |= uids.len() > MAX_RESULTS;
            Ok(())
        };
        self.run_one(cmd, &wire::SEARCH, &mut on)?;
        if too_many {
            return Err(StoreError::Server(format!(
                "UID SEARCH: more than {MAX_RESULTS} results"
            )));
        }
        uids.sort_unstable();
        uids.dedup();
        Ok(uids)
    }
}

/// The `ALL` set of an `* ESEARCH (TAG "x") UID ALL 1:3,7` answer (none when nothing matched).
/// `* SEARCH 1 5 7` → its UIDs added to `out`; false for another response.
pub(super) fn search_uids(d: &[u8], out: &mut Vec<u32>) -> bool {
    if !is_untagged(d, "SEARCH") {
        return false;
    }
    // Not a number: `(MODSEQ n)` from CONDSTORE, not a UID.
    let text = String::from_utf8_lossy(&d[8..]);
    out.extend(
        text.split_ascii_whitespace()
            .filter_map(|w| w.parse::<u32>().ok()),
    );
    true
}

fn esearch_all(frame: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(frame).ok()?;
    let mut words = text.split_ascii_whitespace();
    while let Some(w) = words.next() {
        if w.eq_ignore_ascii_case("ALL") {
            return words.next();
        }
    }
    None
}

/// Add the UIDs of a sequence set; false when it is malformed or too large.
fn expand(set: &str, out: &mut Vec<u32>) -> bool {
    for range in set.split(',') {
        let (a, b) = range.split_once(':').unwrap_or((range, range));
        let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) else {
            return false;
        };
        let (lo, hi) = (a.min(b), a.max(b));
        if (hi - lo) as usize >= MAX_RESULTS - out.len().min(MAX_RESULTS) {
            return false;
        }
        out.extend(lo..=hi);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn esearch_sets() {
        let f = b"* ESEARCH (TAG \"A5\") UID ALL 1:3,7,10:9\r\n";
        assert_eq!(esearch_all(f), Some("1:3,7,10:9"));
        let mut v = Vec::new();
        assert!(expand("1:3,7,10:9", &mut v));
        assert_eq!(v, vec![1, 2, 3, 7, 9, 10]);
        assert_eq!(esearch_all(b"* ESEARCH (TAG \"A5\") UID\r\n"), None);
        let mut v = Vec::new();
        assert!(!expand("1:4000000000", &mut v));
        assert!(!expand("1:x", &mut v));
    }
}
