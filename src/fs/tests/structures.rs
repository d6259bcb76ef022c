//! Message structures: fetched in batches that follow a walk, bounded in memory, and metadata
//! read ahead for a walk through every message.

use super::*;

/// Add copies of message 5 under `uids`, look up `1` of each in that order, and check that the
/// structures came in at most `most` fetches.
fn assert_structure_fetches(f: &Fixture, uids: Vec<u32>, most: usize) {
    let template = f.store.folders.lock().unwrap()["INBOX"].messages[&5].clone();
    for &uid in &uids {
        f.store.add_message("INBOX", uid, template.clone());
    }
    for uid in uids {
        path_ino(&f.fs, &format!("INBOX/{uid}/1")).unwrap();
    }
    let fetches = f.store.counters().fetch_structures;
    assert!(fetches <= most, "{fetches} structure fetches");
}

#[test]
fn structure_is_fetched_in_batches() {
    let f = fixture(Duration::from_secs(60));
    assert_structure_fetches(&f, (10..200).collect(), 4);
}

#[test]
fn directories_are_not_files() {
    let f = fixture(Duration::from_secs(60));
    let dir = path_ino(&f.fs, "INBOX/5").unwrap();
    assert_eq!(f.fs.open(dir), Err(FsError::IsDir));
    let file = path_ino(&f.fs, "INBOX/5/1").unwrap();
    assert_eq!(f.fs.readdir(file), Err(FsError::NotDir));
    assert_eq!(f.fs.lookup(file, "x"), Err(FsError::NotDir));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any read at any offset returns exactly the decoded bytes, cold or warm, in any order.
    #[test]
    fn random_reads_are_exact(reads in proptest::collection::vec((0usize..5, 0u64..320_000, 1u32..300_000), 1..12)) {
        let f = fixture(Duration::from_secs(60));
        let files = ["HEADER", "1", "2", "3", "4"];
        for (which, offset, size) in reads {
            let name = files[which];
            let want = &f.expected[name];
            let ino = path_ino(&f.fs, &format!("INBOX/5/{name}")).unwrap();
            let fh = f.fs.open(ino).unwrap();
            let got = f.fs.read(ino, fh, offset, size).unwrap();
            let lo = (offset as usize).min(want.len());
            let hi = (offset as usize + size as usize).min(want.len());
            prop_assert_eq!(&got[..], &want[lo..hi], "{} at {} len {}", name, offset, size);
            f.fs.release(fh);
        }
    }
}

#[test]
fn numeric_subfolder_beside_a_message_of_that_uid_is_escaped() {
    let f = fixture(Duration::from_secs(60));
    f.store.add_folder("INBOX/5", true, 9);
    f.store.add_folder("INBOX/2024", true, 10);
    assert_eq!(
        names(&f.fs, "INBOX"),
        ["INDEX", "SEARCH", "2024", "%35", "5"]
    );
    let (attr, _) = f.fs.lookup(path_ino(&f.fs, "INBOX").unwrap(), "5").unwrap();
    assert_eq!(attr.mtime, 1_700_000_000, "the name 5 is the message");
    assert_eq!(names(&f.fs, "INBOX/%35"), ["INDEX", "SEARCH"]);
    assert_eq!(names(&f.fs, "INBOX/2024"), ["INDEX", "SEARCH"]);
    assert_eq!(path_ino(&f.fs, "INBOX/%32024"), Err(FsError::NotFound));
}

#[test]
fn walking_one_file_through_many_messages_fetches_in_batches() {
    let f = fixture(Duration::from_secs(60));
    let template = f.store.folders.lock().unwrap()["INBOX"].messages[&5].clone();
    for uid in 10..300 {
        let mut m = template.clone();
        let text = format!("message {uid}\r\n").into_bytes();
        m.structure = Ok(multipart(
            vec![
                leaf("text", "plain", "7bit", text.len()),
                leaf("image", "png", "BASE64", m.sections["4"].len()),
            ],
            "mixed",
        ));
        m.sections.insert("1".into(), text);
        m.sections.insert("2".into(), m.sections["4"].clone());
        f.store.add_message("INBOX", uid, m);
    }
    // The shell's glob order: names sorted as strings.
    let mut names: Vec<String> = (10..300).map(|u| u.to_string()).collect();
    names.sort();
    for name in &names {
        path_ino(&f.fs, &format!("INBOX/{name}/1")).unwrap();
    }
    let before = f.store.counters().fetch_ranges;
    for name in &names {
        assert_eq!(
            read_all(&f.fs, &format!("INBOX/{name}/1")),
            format!("message {name}\r\n").into_bytes()
        );
    }
    let calls = f.store.counters().fetch_ranges - before;
    assert!(calls <= 12, "{calls} fetch calls for 290 messages");
}

#[test]
fn structure_batches_follow_a_walk_in_either_direction() {
    let f = fixture(Duration::from_secs(60));
    assert_structure_fetches(&f, (10..400).rev().collect(), 8);
}

#[test]
fn reading_a_message_expunged_meanwhile_gives_enoent() {
    let f = fixture(Duration::from_secs(60));
    let ino = path_ino(&f.fs, "INBOX/5/2").unwrap();
    let fh = f.fs.open(ino).unwrap();
    f.store.edit_folder("INBOX", |inbox| inbox.messages.clear());
    assert_eq!(f.fs.read(ino, fh, 200_000, 4096), Err(FsError::NotFound));
}

#[test]
fn message_structures_in_memory_are_bounded() {
    let f = fixture(Duration::from_secs(60));
    let mut small = f.store.folders.lock().unwrap()["INBOX"].messages[&5].clone();
    small.structure = Ok(leaf("text", "plain", "7bit", 6));
    small.sections = HashMap::from([("1".to_string(), b"hello\n".to_vec())]);
    for uid in 10..1000 {
        f.store.add_message("INBOX", uid, small.clone());
    }
    let fs = MailFs::new(
        f.store.clone(),
        FsOptions {
            poll_interval: Duration::from_secs(60),
            cache_size: 1 << 20,
            uid: 0,
            gid: 0,
            parallel_fetches: 2,
            max_message_infos: 100,
        },
    );
    for uid in 10..1000 {
        assert_eq!(read_all(&fs, &format!("INBOX/{uid}/1")), b"hello\n");
    }
    assert!(fs.message_infos() <= 100, "{} kept", fs.message_infos());
    // A forgotten one comes back on demand, the same.
    assert_eq!(read_all(&fs, "INBOX/10/1"), b"hello\n");
}

#[test]
fn a_walk_through_every_message_gets_exact_sizes_with_metadata_fetched_ahead() {
    let f = fixture(Duration::from_secs(60));
    let template = f.store.folders.lock().unwrap()["INBOX"].messages[&5].clone();
    let mut want: HashMap<u32, Vec<(String, u64)>> = HashMap::new();
    for uid in 10..700u32 {
        let mut m = template.clone();
        let text = format!("message {uid}\r\n").into_bytes();
        // Attachment sizes of every residue mod 3 (padding), small and big.
        let att = pseudo_random(70_000 + uid as usize * 7, uid as u64);
        let enc = wrap_base64(&att, 76, "\r\n");
        m.structure = Ok(multipart(
            vec![
                leaf("text", "plain", "7bit", text.len()),
                leaf("application", "octet-stream", "base64", enc.len()),
            ],
            "mixed",
        ));
        m.sections = HashMap::from([("1".to_string(), text.clone()), ("2".to_string(), enc)]);
        want.insert(
            uid,
            vec![
                ("HEADER".into(), HEADER.len() as u64),
                ("1".into(), text.len() as u64),
                ("2".into(), att.len() as u64),
            ],
        );
        f.store.add_message("INBOX", uid, m);
    }
    let opts = FsOptions {
        poll_interval: Duration::from_secs(60),
        cache_size: 8 << 20,
        uid: 0,
        gid: 0,
        parallel_fetches: 4,
        max_message_infos: 100_000,
    };
    let fs = MailFs::new(f.store.clone(), opts.clone());
    // What `find -printf %s` does: each message directory in order, every file's size.
    let walk = |fs: &MailFs| {
        for uid in 10..700u32 {
            let dir = path_ino(fs, &format!("INBOX/{uid}")).unwrap();
            let entries = fs.readdir(dir).unwrap();
            for (name, size) in &want[&uid] {
                assert!(entries.iter().any(|e| &e.name == name));
                let (attr, _) = fs.lookup(dir, name).unwrap();
                assert_eq!(attr.size, *size, "INBOX/{uid}/{name}");
            }
        }
    };
    // Without background workers the windows are fetched in line: a batch of 64, another
    // (now it is a walk), then windows of 256 and the rest; sizes with them.
    walk(&fs);
    let c = f.store.counters();
    assert_eq!(c.fetch_structures, 4);
    assert!(c.fetch_ranges <= 6, "{} range fetches", c.fetch_ranges);
    // With workers, the windows come in the background while the walk goes on.
    let fs = Arc::new(MailFs::new(f.store.clone(), opts));
    fs.start_readahead(3);
    walk(&fs);
}
