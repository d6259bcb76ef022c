//! Tests of changes (`--read-write`) over the fake store: the read-only default refuses every
//! change, FLAGS writes store flags and show them at once.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::fake::parts::leaf;
use super::fake::{FakeMessage, FakeStore};
use super::tests::{child_names, path_ino};
use super::{FsError, FsOptions, MailFs};

fn mount() -> (Arc<FakeStore>, MailFs) {
    let store = Arc::new(FakeStore::new());
    store.add_folder("INBOX", true, 1);
    store.add_folder("Archive", true, 2);
    for uid in [3, 4] {
        store.add_message(
            "INBOX",
            uid,
            FakeMessage {
                internal_date: 1_700_000_000,
                header: b"Subject: x\r\n\r\n".to_vec(),
                structure: Ok(leaf("text", "plain", "7bit", 5)),
                sections: [("1".to_string(), b"hello".to_vec())].into(),
                unparseable: false,
            },
        );
    }
    store.edit_folder("INBOX", |f| {
        f.flags.insert(3, vec!["\\Answered".into()]);
    });
    let fs = MailFs::new(
        store.clone(),
        FsOptions {
            poll_interval: Duration::from_secs(600),
            cache_size: 1 << 20,
            uid: 1,
            gid: 1,
            parallel_fetches: 2,
            max_message_infos: 1000,
        },
    );
    (store, fs)
}

fn flags_text(fs: &MailFs, path: &str) -> String {
    let ino = path_ino(fs, path).unwrap();
    let fh = fs.open(ino).unwrap();
    let got = fs.read(ino, fh, 0, 4096).unwrap();
    fs.release(fh);
    String::from_utf8(got).unwrap()
}

/// `echo text > path`: open for writing, write, flush (close), release.
fn echo(fs: &MailFs, path: &str, text: &str) -> Result<(), FsError> {
    let ino = path_ino(fs, path)?;
    let fh = fs.open_write(ino, false)?;
    let r = fs.write(fh, 0, text.as_bytes()).and_then(|_| fs.flush(fh));
    fs.release_write(fh);
    fs.release(fh);
    r
}

#[test]
fn read_only_by_default_refuses_every_change() {
    let (store, fs) = mount();
    let ino = path_ino(&fs, "INBOX/3/FLAGS").unwrap();
    assert_eq!(fs.open_write(ino, false), Err(FsError::ReadOnly));
    assert_eq!(fs.truncate(ino, 0).map(|_| ()), Err(FsError::ReadOnly));
    assert_eq!(
        echo(&fs, "INBOX/3/FLAGS", "\\Seen\n"),
        Err(FsError::ReadOnly)
    );
    assert!(store.changes.lock().unwrap().is_empty());
}

#[test]
fn flags_writes_replace_add_and_remove() {
    let (store, fs) = mount();
    fs.set_read_write(true);
    assert_eq!(flags_text(&fs, "INBOX/3/FLAGS"), "\\Answered\n");
    echo(&fs, "INBOX/3/FLAGS", "\\seen \\Flagged\n").unwrap();
    // Shown at once, without waiting for the poll interval.
    assert_eq!(flags_text(&fs, "INBOX/3/FLAGS"), "\\Seen \\Flagged\n");
    echo(&fs, "INBOX/3/FLAGS", "+\\Answered -\\Flagged").unwrap();
    assert_eq!(flags_text(&fs, "INBOX/3/FLAGS"), "\\Seen \\Answered\n");
    assert_eq!(
        store.folders.lock().unwrap()["INBOX"].flags[&3],
        ["\\Seen", "\\Answered"]
    );
    // The other message is untouched; INDEX follows.
    assert_eq!(flags_text(&fs, "INBOX/4/FLAGS"), "\n");
    let index = flags_text(&fs, "INBOX/INDEX");
    assert!(index.contains("\\Seen \\Answered"), "{index}");
    assert_eq!(store.changes.lock().unwrap().len(), 2);
}

#[test]
fn bad_flag_lines_and_refused_keywords_store_nothing() {
    let (store, fs) = mount();
    fs.set_read_write(true);
    let invalid = |r: Result<(), FsError>| matches!(r, Err(FsError::Invalid(_)));
    assert!(invalid(echo(&fs, "INBOX/3/FLAGS", "\\Recent")));
    assert!(invalid(echo(&fs, "INBOX/3/FLAGS", "\\Seen +\\Flagged")));
    // A keyword the folder's PERMANENTFLAGS do not allow: EPERM.
    assert_eq!(
        echo(&fs, "INBOX/3/FLAGS", "+$Label1"),
        Err(FsError::NotPermitted)
    );
    assert!(store.changes.lock().unwrap().is_empty());
    store.keywords_allowed.store(true, Ordering::Relaxed);
    echo(&fs, "INBOX/3/FLAGS", "+$Label1").unwrap();
    assert_eq!(flags_text(&fs, "INBOX/3/FLAGS"), "\\Answered $Label1\n");
}

#[test]
fn only_flags_files_take_writes() {
    let (_, fs) = mount();
    fs.set_read_write(true);
    let file = path_ino(&fs, "INBOX/3/1").unwrap();
    assert_eq!(fs.open_write(file, false), Err(FsError::Denied));
    let dir = path_ino(&fs, "INBOX/3").unwrap();
    assert_eq!(fs.open_write(dir, false), Err(FsError::IsDir));
    // The shell's `>` truncates first: allowed for FLAGS, to size 0 only.
    let flags = path_ino(&fs, "INBOX/3/FLAGS").unwrap();
    assert!(fs.truncate(flags, 0).is_ok());
    assert!(matches!(fs.truncate(flags, 3), Err(FsError::Invalid(_))));
    // Too much for one line.
    let fh = fs.open_write(flags, false).unwrap();
    assert_eq!(fs.write(fh, 0, &[b' '; 5000]), Err(FsError::TooBig));
    fs.release_write(fh);
}

#[test]
fn folders_are_created_deleted_and_renamed() {
    let (store, fs) = mount();
    let root = path_ino(&fs, "").unwrap();
    assert_eq!(fs.mkdir(root, "New").map(|_| ()), Err(FsError::ReadOnly));
    fs.set_read_write(true);
    let archive = path_ino(&fs, "Archive").unwrap();
    let made = fs.mkdir(archive, "Grüße").unwrap().0;
    assert_eq!(path_ino(&fs, "Archive/Grüße"), Ok(made.ino));
    assert_eq!(fs.mkdir(archive, "Grüße").map(|_| ()), Err(FsError::Exists));
    // A reserved name is refused; its escape makes a folder named INDEX.
    assert_eq!(fs.mkdir(archive, "INDEX").map(|_| ()), Err(FsError::Exists));
    assert!(matches!(
        fs.mkdir(archive, "FOLDERS"),
        Err(FsError::Invalid(_))
    ));
    fs.mkdir(archive, "%49NDEX").unwrap();
    // Not empty: messages, or subfolders.
    assert_eq!(fs.rmdir(root, "INBOX"), Err(FsError::NotEmpty));
    assert_eq!(fs.rmdir(root, "Archive"), Err(FsError::NotEmpty));
    // Renamed with its subfolders; the directory keeps its inode.
    fs.rename(root, "Archive", root, "Old").unwrap();
    assert_eq!(path_ino(&fs, "Old"), Ok(archive));
    assert_eq!(path_ino(&fs, "Old/Grüße"), Ok(made.ino));
    assert_eq!(path_ino(&fs, "Archive"), Err(FsError::NotFound));
    let old = path_ino(&fs, "Old").unwrap();
    fs.rmdir(old, "Grüße").unwrap();
    fs.rmdir(old, "%49NDEX").unwrap();
    fs.rmdir(root, "Old").unwrap();
    assert_eq!(path_ino(&fs, "Old"), Err(FsError::NotFound));
    assert_eq!(
        *store.changes.lock().unwrap(),
        [
            "CREATE Archive/Gr&APwA3w-e",
            "CREATE Archive/INDEX",
            "RENAME Archive Old",
            "DELETE Old/Gr&APwA3w-e",
            "DELETE Old/INDEX",
            "DELETE Old",
        ]
    );
}

/// `rm -r Folder/uid`: unlink every file (a no-op), then rmdir the directory.
fn rm_r(fs: &MailFs, folder: &str, uid: u32) -> Result<(), FsError> {
    let dir = path_ino(fs, &format!("{folder}/{uid}"))?;
    for e in fs.readdir(dir)?.into_iter().skip(2) {
        fs.unlink(dir, &e.name)?;
    }
    fs.rmdir(path_ino(fs, folder)?, &uid.to_string())
}

fn uids(store: &FakeStore, folder: &str) -> Vec<u32> {
    let folders = store.folders.lock().unwrap();
    folders[folder].messages.keys().copied().collect()
}

#[test]
fn rm_r_moves_to_trash_or_expunges_there() {
    let (store, fs) = mount();
    let inbox = path_ino(&fs, "INBOX").unwrap();
    assert_eq!(
        fs.unlink(path_ino(&fs, "INBOX/3").unwrap(), "1"),
        Err(FsError::ReadOnly)
    );
    assert_eq!(fs.rmdir(inbox, "3"), Err(FsError::ReadOnly));
    fs.set_read_write(true);
    // Without a Trash folder: expunged.
    rm_r(&fs, "INBOX", 3).unwrap();
    assert_eq!(uids(&store, "INBOX"), [4]);
    assert_eq!(path_ino(&fs, "INBOX/3"), Err(FsError::NotFound));
    // With one: moved there; deleting in the Trash expunges.
    store.add_folder("Trash", true, 9);
    fs.expire_all();
    rm_r(&fs, "INBOX", 4).unwrap();
    assert!(uids(&store, "INBOX").is_empty());
    assert_eq!(uids(&store, "Trash"), [1]);
    assert!(path_ino(&fs, "Trash/1").is_ok());
    rm_r(&fs, "Trash", 1).unwrap();
    assert!(uids(&store, "Trash").is_empty());
    assert_eq!(
        *store.changes.lock().unwrap(),
        [
            "EXPUNGE INBOX [3]",
            "MOVE INBOX [4] Trash",
            "EXPUNGE Trash [1]"
        ]
    );
    // Files elsewhere cannot be removed.
    assert_eq!(fs.unlink(inbox, "INDEX"), Err(FsError::NotPermitted));
}

#[test]
fn mv_of_a_message_directory_moves_it() {
    let (store, fs) = mount();
    fs.set_read_write(true);
    let (inbox, archive) = (
        path_ino(&fs, "INBOX").unwrap(),
        path_ino(&fs, "Archive").unwrap(),
    );
    fs.rename(inbox, "3", archive, "3").unwrap();
    assert_eq!(uids(&store, "INBOX"), [4]);
    assert_eq!(uids(&store, "Archive"), [1]);
    // Shown at once under the new UID, with its flags.
    assert_eq!(flags_text(&fs, "Archive/1/FLAGS"), "\\Answered\n");
    assert_eq!(path_ino(&fs, "INBOX/3"), Err(FsError::NotFound));
    // Within one folder, or into the root: refused.
    assert_eq!(
        fs.rename(inbox, "4", inbox, "5"),
        Err(FsError::NotPermitted)
    );
    let root = path_ino(&fs, "").unwrap();
    assert_eq!(fs.rename(inbox, "4", root, "4"), Err(FsError::NotPermitted));
}

#[test]
fn condstore_replace_is_conditional_and_refused_after_a_concurrent_change() {
    let (store, fs) = mount();
    fs.set_read_write(true);
    store.condstore.store(true, Ordering::Relaxed);
    assert_eq!(flags_text(&fs, "INBOX/3/FLAGS"), "\\Answered\n");
    // Someone else changed UID 3 meanwhile: a replace is not stored (EAGAIN)...
    store.modified.lock().unwrap().push(3);
    assert_eq!(echo(&fs, "INBOX/3/FLAGS", "\\Seen"), Err(FsError::Again));
    assert_eq!(
        store.folders.lock().unwrap()["INBOX"].flags[&3],
        ["\\Answered"]
    );
    // ...while adding and removing, which commute with others' changes, are unconditional.
    echo(&fs, "INBOX/3/FLAGS", "+\\Seen").unwrap();
    store.modified.lock().unwrap().clear();
    echo(&fs, "INBOX/4/FLAGS", "\\Flagged").unwrap();
    assert_eq!(
        *store.changes.lock().unwrap(),
        [
            "STORE INBOX 3 Edit { add: [\"\\\\Seen\"], remove: [] } since None",
            "STORE INBOX 4 Replace([\"\\\\Flagged\"]) since Some(5)",
        ]
    );
}

/// `cp`: create in a folder directory, write in two pieces, stat, flush (close), release.
fn cp(fs: &MailFs, folder: &str, name: &str, bytes: &[u8]) -> Result<(), FsError> {
    let parent = path_ino(fs, folder)?;
    let (attr, fh) = fs.create(parent, name)?;
    let half = bytes.len() / 2;
    let r = (|| {
        fs.write(fh, 0, &bytes[..half])?;
        fs.write(fh, half as u64, &bytes[half..])?;
        // While open, the file is a normal file to the writer: its size, its name.
        assert_eq!(fs.getattr(attr.ino)?.0.size, bytes.len() as u64);
        assert_eq!(fs.lookup(parent, name)?.0.ino, attr.ino);
        fs.flush(fh)
    })();
    fs.release_write(fh);
    fs.release(fh);
    r
}

#[test]
fn cp_into_a_folder_appends_once_under_a_new_uid() {
    let (store, fs) = mount();
    let inbox = path_ino(&fs, "INBOX").unwrap();
    assert_eq!(
        fs.create(inbox, "new.eml").map(|_| ()),
        Err(FsError::ReadOnly)
    );
    fs.set_read_write(true);
    let _ = child_names(&fs, "INBOX");
    let msg = b"Subject: filed\r\nMessage-ID: <1@x>\r\n\r\nbody\r\n";
    cp(&fs, "INBOX", "new.eml", msg).unwrap();
    assert_eq!(
        *store.changes.lock().unwrap(),
        [format!("APPEND INBOX {} -> 5", msg.len())]
    );
    // Shown at once under its UID; the name given is gone.
    assert_eq!(
        child_names(&fs, "INBOX"),
        ["INDEX", "SEARCH", "3", "4", "5"]
    );
    assert_eq!(path_ino(&fs, "INBOX/new.eml"), Err(FsError::NotFound));
    assert_eq!(
        store.folders.lock().unwrap()["INBOX"].messages[&5].sections[""],
        msg
    );
    // Not a message: appended as it is. Empty (`touch`): nothing filed.
    cp(&fs, "Archive", "notes.txt", b"just text").unwrap();
    cp(&fs, "Archive", "empty", b"").unwrap();
    assert_eq!(store.changes.lock().unwrap().len(), 2);
    // Beyond the server's APPENDLIMIT: EFBIG at close, nothing filed.
    *store.append_limit.lock().unwrap() = Some(10);
    assert_eq!(
        cp(&fs, "INBOX", "big.eml", &[b'x'; 11]),
        Err(FsError::TooBig)
    );
    assert_eq!(store.changes.lock().unwrap().len(), 2);
    // Only in a folder directory.
    let msg_dir = path_ino(&fs, "INBOX/3").unwrap();
    assert_eq!(
        fs.create(msg_dir, "x").map(|_| ()),
        Err(FsError::NotPermitted)
    );
}

#[test]
fn flags_are_found_read_and_written_without_the_structure() {
    let (store, fs) = mount();
    fs.set_read_write(true);
    echo(&fs, "INBOX/3/FLAGS", "+\\Seen\n").unwrap();
    echo(&fs, "INBOX/4/FLAGS", "\\Flagged\n").unwrap();
    assert_eq!(flags_text(&fs, "INBOX/3/FLAGS"), "\\Answered \\Seen\n");
    assert_eq!(flags_text(&fs, "INBOX/4/FLAGS"), "\\Flagged\n");
    // No BODYSTRUCTURE asked for, and the flags fetched once (our STOREs update them).
    let c = store.counters();
    assert_eq!(c.fetch_structures, 0);
    assert_eq!(c.fetch_flags, 1);
    // A message gone from the listing has no FLAGS.
    assert_eq!(
        path_ino(&fs, "INBOX/5/FLAGS").map(|_| ()),
        Err(FsError::NotFound)
    );
}
