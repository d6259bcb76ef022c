//! Tests of the search directories over the fake store: per-folder and root searches, links,
//! INDEX lines, refused criteria, the recent list and refresh after a change.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::fake::parts::leaf;
use super::fake::{FakeMessage, FakeStore};
use super::tests::{child_names, path_ino};
use super::{FsError, FsOptions, Kind, MailFs};

fn message(from: &str, subject: &str, body: &str) -> FakeMessage {
    let header = format!("From: {from}\r\nSubject: {subject}\r\n\r\n").into_bytes();
    let whole = [header.clone(), body.as_bytes().to_vec()].concat();
    let bs = leaf("text", "plain", "7bit", body.len());
    FakeMessage {
        internal_date: 1_709_543_700,
        header,
        structure: Ok(bs),
        sections: HashMap::from([
            ("1".to_string(), body.as_bytes().to_vec()),
            ("".into(), whole),
        ]),
        unparseable: false,
    }
}

fn fixture(poll: Duration) -> (Arc<FakeStore>, MailFs) {
    let store = Arc::new(FakeStore::new());
    store.add_folder("INBOX", true, 1);
    store.add_folder("Work", false, 0);
    store.add_folder("Work/100%", true, 2);
    store.add_folder("Broken", true, 3);
    store.add_folder("SEARCH", true, 4);
    let inbox = [
        (1, "Alice <a@x>", "invoice March", "pay now"),
        (2, "Bob <b@x>", "lunch", "needle here"),
        (3, "Alice <a@x>", "holiday", "no"),
        (5, "Carol <c@x>", "Invoice April", "needle again"),
    ];
    for (uid, from, subject, body) in inbox {
        store.add_message("INBOX", uid, message(from, subject, body));
    }
    store.add_message("Work/100%", 9, message("Alice <a@x>", "report", "needle"));
    store.add_message("Broken", 1, message("Alice <a@x>", "x", "needle"));
    store.add_message("SEARCH", 4, message("Dan <d@x>", "y", "needle"));
    store.edit_folder("INBOX", |f| {
        f.flags.insert(1, vec!["\\Seen".into()]);
        f.flags.insert(3, vec!["\\Seen".into(), "\\Flagged".into()]);
    });
    store.search_fails.lock().unwrap().push("Broken".into());
    let fs = MailFs::new(
        store.clone(),
        FsOptions {
            poll_interval: poll,
            cache_size: 1 << 20,
            uid: 1,
            gid: 1,
            parallel_fetches: 3,
            max_message_infos: 1000,
        },
    );
    (store, fs)
}

fn read_all(fs: &MailFs, path: &str) -> String {
    let ino = path_ino(fs, path).unwrap();
    let size = fs.getattr(ino).unwrap().0.size;
    let fh = fs.open(ino).unwrap();
    let got = fs.read(ino, fh, 0, 1 << 20).unwrap();
    fs.release(fh);
    assert_eq!(got.len() as u64, size, "st_size of {path}");
    String::from_utf8(got).unwrap()
}

/// Follow a relative link from the directory `dir` (a path from the root).
fn resolve(dir: &str, target: &str) -> String {
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for p in target.split('/') {
        match p {
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

#[test]
fn folder_search_lists_links_to_the_matches_and_their_index_lines() {
    let (store, fs) = fixture(Duration::from_secs(60));
    assert!(child_names(&fs, "INBOX").contains(&"SEARCH".to_string()));
    assert!(child_names(&fs, "").contains(&"SEARCH".to_string()));
    assert_eq!(child_names(&fs, "INBOX/SEARCH/UNSEEN"), ["INDEX", "2", "5"]);
    assert_eq!(
        child_names(&fs, "INBOX/SEARCH/SUBJECT invoice"),
        ["INDEX", "1", "5"]
    );
    assert_eq!(
        child_names(&fs, "INBOX/SEARCH/OR FROM bob (FLAGGED SEEN)"),
        ["INDEX", "2", "3"]
    );
    assert_eq!(child_names(&fs, "INBOX/SEARCH/NOT UID 1:3"), ["INDEX", "5"]);
    assert_eq!(
        child_names(&fs, "INBOX/SEARCH/TEXT nothing-like-it"),
        ["INDEX"]
    );
    let dir = "INBOX/SEARCH/UNSEEN";
    let ino = path_ino(&fs, &format!("{dir}/5")).unwrap();
    let (attr, _) = fs.getattr(ino).unwrap();
    assert_eq!(attr.kind, Kind::Symlink);
    let target = fs.readlink(ino).unwrap();
    assert_eq!(target, "../../5");
    assert_eq!(attr.size, target.len() as u64);
    // The link resolves to the message directory.
    let msg = resolve(dir, &target);
    assert_eq!(msg, "INBOX/5");
    assert!(child_names(&fs, &msg).contains(&"HEADER".to_string()));
    // A UID that is not a match, and one not in the folder, are not there.
    assert_eq!(
        path_ino(&fs, "INBOX/SEARCH/UNSEEN/1"),
        Err(FsError::NotFound)
    );
    assert_eq!(
        path_ino(&fs, "INBOX/SEARCH/UNSEEN/4"),
        Err(FsError::NotFound)
    );
    // INDEX holds exactly the folder's INDEX lines of the matches.
    let index = read_all(&fs, "INBOX/INDEX");
    let want: String = index
        .lines()
        .filter(|l| l.starts_with("2\t") || l.starts_with("5\t"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(want.lines().count(), 2);
    assert_eq!(read_all(&fs, "INBOX/SEARCH/UNSEEN/INDEX"), want);
    // Read-only: searching changed no flag.
    let flags = store.folders.lock().unwrap()["INBOX"].flags.clone();
    assert_eq!(flags.len(), 2);
    assert_eq!(flags[&1], ["\\Seen"]);
}

#[test]
fn refused_criteria_are_not_found_and_send_nothing() {
    let (store, fs) = fixture(Duration::from_secs(60));
    path_ino(&fs, "INBOX").unwrap();
    let before = store.counters().search;
    for bad in [
        "FROM \"alice",
        "(UNSEEN",
        "UNSEEN)",
        "FROBNICATE",
        "SUBJECT a%0D%0AX DELETE INBOX",
        "SUBJECT %zz",
        "UID 1..3",
    ] {
        assert_eq!(
            path_ino(&fs, &format!("INBOX/SEARCH/{bad}")),
            Err(FsError::NotFound),
            "{bad:?}"
        );
    }
    assert_eq!(store.counters().search, before);
    assert!(child_names(&fs, "INBOX/SEARCH").is_empty());
}

#[test]
fn recent_searches_newest_first_at_most_32() {
    let (_store, fs) = fixture(Duration::from_secs(60));
    for i in 1..=40 {
        path_ino(&fs, &format!("INBOX/SEARCH/UID {i}")).unwrap();
    }
    // Looked up again: first again.
    path_ino(&fs, "INBOX/SEARCH/UID 20").unwrap();
    let listed = child_names(&fs, "INBOX/SEARCH");
    let mut want = vec!["UID 20".to_string()];
    want.extend(
        (9..=40)
            .rev()
            .filter(|&i| i != 20)
            .map(|i| format!("UID {i}")),
    );
    want.truncate(32);
    assert_eq!(listed, want);
    // Attributes for `ls -l` are not look-ups: the order stays.
    let dir = path_ino(&fs, "INBOX/SEARCH").unwrap();
    let entries = fs.readdir(dir).unwrap();
    let attrs = fs.attrs_of(dir, &entries);
    assert!(attrs
        .iter()
        .all(|a| a.is_some_and(|(a, _)| a.kind == Kind::Dir)));
    assert_eq!(child_names(&fs, "INBOX/SEARCH"), want);
    // Evicted searches are gone.
    assert_eq!(child_names(&fs, "INBOX/SEARCH").len(), 32);
    // Other folders have their own list.
    assert!(child_names(&fs, "Work/100%25/SEARCH").is_empty());
}

#[test]
fn results_follow_changes_after_the_poll_interval() {
    let (store, fs) = fixture(Duration::from_millis(200));
    assert_eq!(child_names(&fs, "INBOX/SEARCH/UNSEEN"), ["INDEX", "2", "5"]);
    let n = store.counters().search;
    // Within the interval: the answer is kept.
    assert_eq!(child_names(&fs, "INBOX/SEARCH/UNSEEN"), ["INDEX", "2", "5"]);
    assert_eq!(store.counters().search, n);
    store.edit_folder("INBOX", |f| {
        f.flags.insert(2, vec!["\\Seen".into()]);
        f.messages.remove(&5);
    });
    store.add_message("INBOX", 6, message("Eve <e@x>", "new", "needle"));
    std::thread::sleep(Duration::from_millis(250));
    assert_eq!(child_names(&fs, "INBOX/SEARCH/UNSEEN"), ["INDEX", "6"]);
    assert_eq!(
        path_ino(&fs, "INBOX/SEARCH/UNSEEN/5"),
        Err(FsError::NotFound)
    );
    assert!(read_all(&fs, "INBOX/SEARCH/UNSEEN/INDEX").starts_with("6\t"));
}

#[test]
fn root_search_has_one_directory_per_folder_with_matches() {
    let (store, fs) = fixture(Duration::from_secs(60));
    // "SEARCH" the folder shows escaped; Broken fails and is left out; Work is not selectable.
    assert_eq!(
        child_names(&fs, "SEARCH/TEXT needle"),
        ["%53EARCH", "INBOX", "Work%2F100%25"]
    );
    assert!(store.counters().search >= 4);
    assert_eq!(child_names(&fs, "SEARCH/TEXT needle/INBOX"), ["2", "5"]);
    let dir = "SEARCH/TEXT needle/Work%2F100%25";
    assert_eq!(child_names(&fs, dir), ["9"]);
    let ino = path_ino(&fs, &format!("{dir}/9")).unwrap();
    let target = fs.readlink(ino).unwrap();
    assert_eq!(target, "../../../Work/100%25/9");
    let msg = resolve(dir, &target);
    assert!(child_names(&fs, &msg).contains(&"HEADER".to_string()));
    assert_eq!(
        fs.readlink(path_ino(&fs, "SEARCH/TEXT needle/%53EARCH/4").unwrap()),
        Ok("../../../%53EARCH/4".to_string())
    );
    // A folder failing is left out of the list; looked up by name, it says why.
    assert!(matches!(
        path_ino(&fs, "SEARCH/TEXT needle/Broken"),
        Err(FsError::Io(_))
    ));
    // A folder without matches is not there.
    assert_eq!(
        path_ino(&fs, "SEARCH/SUBJECT lunch/Work%2F100%25"),
        Err(FsError::NotFound)
    );
    assert_eq!(child_names(&fs, "SEARCH"), ["SUBJECT lunch", "TEXT needle"]);
    // The folder named SEARCH is still reachable, and has its own SEARCH.
    assert_eq!(child_names(&fs, "%53EARCH/SEARCH/ALL"), ["INDEX", "4"]);
}

#[test]
fn listing_a_search_does_not_build_the_folder_index() {
    // `ls` of a search (READDIRPLUS) must cost the SEARCH, not a summary FETCH of the whole
    // folder for the st_size of the search's INDEX.
    let (store, fs) = fixture(Duration::from_secs(60));
    let dir = path_ino(&fs, "INBOX/SEARCH/TEXT needle").unwrap();
    let entries = fs.readdir(dir).unwrap();
    assert!(entries.iter().any(|e| e.name == "INDEX"));
    let attrs = fs.attrs_of(dir, &entries);
    assert!(attrs.iter().all(Option::is_some));
    assert_eq!(
        store.counters().fetch_briefs,
        0,
        "INDEX built for a listing"
    );
    // Reading it does build it.
    let index = path_ino(&fs, "INBOX/SEARCH/TEXT needle/INDEX").unwrap();
    assert!(fs.getattr(index).unwrap().0.size > 0);
    assert!(store.counters().fetch_briefs > 0);
}
