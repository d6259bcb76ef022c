//! Server answers → store results: FETCH summaries into [`MessageSummary`]s, LIST entries
//! completed with the parents they imply.

use std::collections::{BTreeMap, HashSet};

use super::items::parse_internal_date;
use super::response::FetchResponse;
use super::sexp::Value;
use crate::store::{FolderEntry, MessageSummary};

/// Add the parents that LIST implies but did not report (`a.b.c` alone gives `a`, `a.b`), as
/// non-selectable entries.
pub fn add_implied_parents(mut folders: Vec<FolderEntry>) -> Vec<FolderEntry> {
    let mut known: HashSet<String> = folders.iter().map(|f| f.name.clone()).collect();
    let mut extra = Vec::new();
    for f in &folders {
        let Some(d) = f.delimiter else { continue };
        for (k, ch) in f.name.char_indices() {
            if ch == d && k > 0 {
                let parent = &f.name[..k];
                if known.insert(parent.to_string()) {
                    extra.push(FolderEntry {
                        name: parent.to_string(),
                        delimiter: Some(d),
                        selectable: false,
                        attributes: Vec::new(),
                    });
                }
            }
        }
    }
    folders.extend(extra);
    folders
}

/// The listing entries in `resps` (`folder` names them in log lines).
pub fn summaries(folder: &str, resps: &[FetchResponse]) -> Vec<MessageSummary> {
    let mut by_uid: BTreeMap<u32, MessageSummary> = BTreeMap::new();
    for f in resps {
        let Some(uid) = f.uid() else { continue };
        let date = f.get("INTERNALDATE");
        let size = f.get("RFC822.SIZE");
        if date.is_none() && size.is_none() {
            continue; // an unsolicited FLAGS update
        }
        let e = by_uid.entry(uid).or_insert(MessageSummary {
            uid,
            internal_date: 0,
            rfc822_size: 0,
        });
        if let Some(d) = date {
            match d.as_text().as_deref().and_then(parse_internal_date) {
                Some(t) => e.internal_date = t,
                None => log::warn!("IMAP {folder} UID {uid}: unreadable INTERNALDATE {d:?}"),
            }
        }
        if let Some(s) = size.and_then(Value::as_u64) {
            e.rfc822_size = s;
        }
    }
    by_uid.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::response::parse_fetches;

    #[test]
    fn implied_parents() {
        let f = add_implied_parents(vec![
            FolderEntry {
                name: "a.b.c".into(),
                delimiter: Some('.'),
                selectable: true,
                attributes: Vec::new(),
            },
            FolderEntry {
                name: "INBOX".into(),
                delimiter: Some('.'),
                selectable: true,
                attributes: Vec::new(),
            },
        ]);
        let names: Vec<(&str, bool)> = f.iter().map(|e| (e.name.as_str(), e.selectable)).collect();
        assert_eq!(
            names,
            vec![
                ("a.b.c", true),
                ("INBOX", true),
                ("a", false),
                ("a.b", false)
            ]
        );
    }

    #[test]
    fn summaries_merge_and_skip_unsolicited() {
        let raw = b"* 1 FETCH (UID 3 INTERNALDATE \"25-Nov-2026 22:21:14 +0000\" RFC822.SIZE 10)\r\n\
* 2 FETCH (FLAGS (\\Seen) UID 1)\r\n* 2 FETCH (UID 2 RFC822.SIZE 7 INTERNALDATE \" 1-Jan-1970 00:00:01 +0000\")\r\n";
        let s = summaries("INBOX", &parse_fetches(raw).unwrap());
        assert_eq!(
            s,
            vec![
                MessageSummary {
                    uid: 2,
                    internal_date: 1,
                    rfc822_size: 7
                },
                MessageSummary {
                    uid: 3,
                    internal_date: 1795645274,
                    rfc822_size: 10
                },
            ]
        );
    }
}
