//! The core's fallbacks when the store fails, over [`FailingStore`]: a failed or timed-out
//! fetch is EIO (never other bytes) and leaves nothing wrong behind; a structure batch that
//! fails is EIO and is fetched again later; one unreadable message leaves its neighbours be; a
//! failing refresh keeps the old listing.

use super::*;
use crate::fs::fake::failing::{FailingStore, Fault, Op};
use crate::store::StoreError;

/// The fixture's messages behind a [`FailingStore`], with `poll` as the poll interval.
fn failing(poll: Duration) -> (Fixture, Arc<FailingStore>, MailFs) {
    let f = fixture(poll);
    let store = Arc::new(FailingStore::new(f.store.clone()));
    let fs = MailFs::new(store.clone(), options(poll));
    (f, store, fs)
}

fn timed_out() -> StoreError {
    StoreError::Connection("timed out".into())
}

fn is_eio<T: std::fmt::Debug>(r: Result<T, FsError>) -> bool {
    matches!(r, Err(FsError::Io(_)))
}

#[test]
fn failed_or_slow_and_timed_out_fetches_are_eio_and_leave_nothing_wrong_behind() {
    for fault in [
        Fault::Fail(timed_out()),
        Fault::Drop,
        Fault::Delay(Duration::from_millis(50)),
    ] {
        // Files whose bytes settling the size did not bring into the cache: a part served as
        // stored, and a big base64 part sized from its head and tail.
        let (f, store, fs) = failing(Duration::from_secs(60));
        for name in ["1", "2"] {
            let path = format!("INBOX/5/{name}");
            let ino = path_ino(&fs, &path).unwrap();
            let size = fs.getattr(ino).unwrap().0.size;
            assert_eq!(size, f.expected[name].len() as u64);
            let fh = fs.open(ino).unwrap();
            // A delay is slow and then times out; the others fail as they are.
            store.inject(Op::FetchRanges, fault.clone(), usize::MAX);
            if matches!(fault, Fault::Delay(_)) {
                store.inject(Op::FetchRanges, Fault::Fail(timed_out()), usize::MAX);
            }
            assert!(
                is_eio(fs.read(ino, fh, size / 2, 4096)),
                "{path} under {fault:?}"
            );
            store.clear();
            fs.release(fh);
            assert_eq!(
                read_all(&fs, &path),
                f.expected[name],
                "{path} after {fault:?}"
            );
        }
    }
}

#[test]
fn a_failed_structure_batch_is_eio_and_fetched_again_later() {
    let (f, store, fs) = failing(Duration::from_secs(60));
    store.inject(Op::FetchStructures, Fault::Fail(timed_out()), 1);
    let ino = path_ino(&fs, "INBOX/5").unwrap();
    assert!(is_eio(fs.readdir(ino)));
    assert!(names(&fs, "INBOX/5").contains(&"4".to_string()));
    assert_eq!(read_all(&fs, "INBOX/5/2"), f.expected["2"]);
}

#[test]
fn one_unreadable_message_in_a_batch_leaves_its_neighbours_be() {
    let (f, store, fs) = failing(Duration::from_secs(60));
    let mut six = f.store.folders.lock().unwrap()["INBOX"].messages[&5].clone();
    six.sections.insert("TEXT".into(), b"body\r\n".to_vec());
    f.store.add_message("INBOX", 6, six);
    store.inject(Op::FetchStructures, Fault::BadMessage(6), 1);
    assert_eq!(names(&fs, "INBOX/6"), ["HEADER", "TEXT", "RFC822", "FLAGS"]);
    assert_eq!(read_all(&fs, "INBOX/6/TEXT"), b"body\r\n");
    assert_eq!(read_all(&fs, "INBOX/5/2"), f.expected["2"]);
    assert_eq!(f.store.counters().fetch_structures, 1, "one batch for both");
}

#[test]
fn a_failing_refresh_keeps_the_old_listing_until_the_server_answers() {
    let (f, store, fs) = failing(Duration::ZERO);
    assert_eq!(names(&fs, "INBOX"), ["INDEX", "SEARCH", "5"]);
    let seven = f.store.folders.lock().unwrap()["INBOX"].messages[&5].clone();
    f.store.add_message("INBOX", 7, seven);
    store.inject(Op::Refresh, Fault::Fail(timed_out()), usize::MAX);
    assert_eq!(names(&fs, "INBOX"), ["INDEX", "SEARCH", "5"]);
    assert_eq!(read_all(&fs, "INBOX/5/1"), f.expected["1"]);
    store.clear();
    assert_eq!(names(&fs, "INBOX"), ["INDEX", "SEARCH", "5", "7"]);
}
