//! Tests of the filesystem core over the in-memory fake store.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use proptest::prelude::*;

pub(super) use super::fake::parts::{leaf, multipart};
use super::fake::{FakeMessage, FakeStore};
use super::{FsError, FsOptions, Kind, MailFs};

fn wrap_base64(data: &[u8], line: usize, eol: &str) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(data);
    let mut out = Vec::new();
    for chunk in b64.as_bytes().chunks(line) {
        out.extend_from_slice(chunk);
        out.extend_from_slice(eol.as_bytes());
    }
    out
}

/// Quoted-printable with soft breaks every 70 columns and CRLF hard breaks.
fn qp_encode(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut col = 0;
    for (i, &b) in text.iter().enumerate() {
        if b == b'\n' && i > 0 && text[i - 1] == b'\r' {
            out.push(b'\n');
            col = 0;
            continue;
        }
        let piece: Vec<u8> = if b == b'\r' && text.get(i + 1) == Some(&b'\n') {
            vec![b'\r']
        } else if (33..=126).contains(&b) && b != b'=' {
            vec![b]
        } else {
            format!("={b:02X}").into_bytes()
        };
        if b != b'\r' && col + piece.len() > 72 {
            out.extend_from_slice(b"=\r\n");
            col = 0;
        }
        col += piece.len();
        out.extend_from_slice(&piece);
    }
    out
}

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

struct Fixture {
    store: Arc<FakeStore>,
    fs: MailFs,
    /// Expected decoded content by file name of message INBOX/5.
    expected: HashMap<String, Vec<u8>>,
}

const HEADER: &[u8] = b"From: a@example.org\r\nSubject: test\r\n\r\n";

fn fixture(poll: Duration) -> Fixture {
    let store = Arc::new(FakeStore::new());
    store.add_folder("INBOX", true, 100);
    store.add_folder("Archive", false, 0);
    store.add_folder("Archive/2024", true, 7);
    let text = b"Hello,\r\nan invoice is attached.\r\n".to_vec();
    let attachment = pseudo_random(300_000, 1);
    let qp_text: Vec<u8> = (0..3000)
        .flat_map(|i| format!("Zeile {i}: Gr\u{fc}\u{df}e = sch\u{f6}n\t \r\n").into_bytes())
        .collect();
    let small = pseudo_random(1000, 2);
    let enc_att = wrap_base64(&attachment, 76, "\r\n");
    let enc_qp = qp_encode(&qp_text);
    let enc_small = wrap_base64(&small, 60, "\n");
    let bs = multipart(
        vec![
            leaf("text", "plain", "7bit", text.len()),
            leaf("application", "pdf", "base64", enc_att.len()),
            leaf("text", "plain", "quoted-printable", enc_qp.len()),
            leaf("image", "png", "BASE64", enc_small.len()),
        ],
        "mixed",
    );
    let sections = HashMap::from([
        ("1".to_string(), text.clone()),
        ("2".to_string(), enc_att),
        ("3".to_string(), enc_qp),
        ("4".to_string(), enc_small),
    ]);
    store.add_message(
        "INBOX",
        5,
        FakeMessage {
            internal_date: 1_700_000_000,
            header: HEADER.to_vec(),
            structure: Ok(bs),
            sections,
            unparseable: false,
        },
    );
    let expected = HashMap::from([
        ("HEADER".to_string(), HEADER.to_vec()),
        ("1".to_string(), text),
        ("2".to_string(), attachment),
        ("3".to_string(), qp_text),
        ("4".to_string(), small),
    ]);
    let fs = MailFs::new(
        store.clone(),
        FsOptions {
            poll_interval: poll,
            cache_size: 64 << 20,
            uid: 1000,
            gid: 1000,
            parallel_fetches: 4,
            max_message_infos: 100_000,
        },
    );
    Fixture {
        store,
        fs,
        expected,
    }
}

/// The inode at `path` (from the root), by lookups as the kernel makes them.
pub(super) fn path_ino(fs: &MailFs, path: &str) -> Result<u64, FsError> {
    let mut ino = 1;
    for part in path.split('/').filter(|p| !p.is_empty()) {
        ino = fs.lookup(ino, part)?.0.ino;
    }
    Ok(ino)
}

/// The entries of the directory at `path`, without `.` and `..`.
pub(super) fn child_names(fs: &MailFs, path: &str) -> Vec<String> {
    let ino = path_ino(fs, path).unwrap();
    let entries = fs.readdir(ino).unwrap().into_iter().skip(2);
    entries.map(|e| e.name).collect()
}

fn names(fs: &MailFs, path: &str) -> Vec<String> {
    let ino = path_ino(fs, path).unwrap();
    fs.readdir(ino)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .filter(|n| n != "." && n != "..")
        .collect()
}

fn read_all(fs: &MailFs, path: &str) -> Vec<u8> {
    let ino = path_ino(fs, path).unwrap();
    let fh = fs.open(ino).unwrap();
    let mut out = Vec::new();
    loop {
        let got = fs.read(ino, fh, out.len() as u64, 128 * 1024).unwrap();
        if got.is_empty() {
            break;
        }
        out.extend_from_slice(&got);
    }
    fs.release(fh);
    out
}

#[test]
fn tree_and_message_layout() {
    let f = fixture(Duration::from_secs(60));
    assert_eq!(names(&f.fs, ""), ["FOLDERS", "SEARCH", "Archive", "INBOX"]);
    assert_eq!(names(&f.fs, "Archive"), ["2024"]);
    assert_eq!(names(&f.fs, "INBOX"), ["INDEX", "SEARCH", "5"]);
    let files = "HEADER 1 2 3 4 TEXT RFC822 1.MIME 2.MIME 3.MIME 4.MIME FLAGS BODYSTRUCTURE";
    assert_eq!(
        names(&f.fs, "INBOX/5"),
        files.split(' ').collect::<Vec<_>>()
    );
    let (attr, _) = f.fs.getattr(path_ino(&f.fs, "INBOX/5").unwrap()).unwrap();
    assert_eq!(
        (attr.kind, attr.mtime, attr.perm),
        (Kind::Dir, 1_700_000_000, 0o555)
    );
    assert_eq!(path_ino(&f.fs, "INBOX/6"), Err(FsError::NotFound));
    assert_eq!(path_ino(&f.fs, "INBOX/05"), Err(FsError::NotFound));
    assert_eq!(path_ino(&f.fs, "INBOX/5/9"), Err(FsError::NotFound));
}

#[test]
fn sizes_are_exact_and_reads_match() {
    let f = fixture(Duration::from_secs(60));
    for (name, want) in &f.expected {
        let path = format!("INBOX/5/{name}");
        let (attr, _) = f.fs.getattr(path_ino(&f.fs, &path).unwrap()).unwrap();
        assert_eq!(attr.size, want.len() as u64, "st_size of {name}");
        assert_eq!(attr.perm, 0o444);
        assert_eq!(&read_all(&f.fs, &path), want, "content of {name}");
    }
}

#[test]
fn stat_of_a_big_base64_part_does_not_download_it() {
    let f = fixture(Duration::from_secs(60));
    let ino = path_ino(&f.fs, "INBOX/5/2").unwrap();
    assert_eq!(f.fs.getattr(ino).unwrap().0.size, 300_000);
    let c = f.store.counters();
    // Small parts are fetched whole (≈ 1.4 KB + 3000 lines of QP are not small: scanned).
    assert!(c.range_bytes < 200_000, "fetched {} bytes", c.range_bytes);
}

#[test]
fn head_fetches_little_and_rereads_come_from_cache() {
    let f = fixture(Duration::from_secs(60));
    let ino = path_ino(&f.fs, "INBOX/5/2").unwrap();
    let before = f.store.counters();
    let fh = f.fs.open(ino).unwrap();
    let got = f.fs.read(ino, fh, 0, 4096).unwrap();
    assert_eq!(got, f.expected["2"][..4096]);
    let after = f.store.counters();
    assert!(
        after.range_bytes - before.range_bytes <= 256 * 1024,
        "head fetched {} bytes",
        after.range_bytes - before.range_bytes
    );
    let again = f.fs.read(ino, fh, 0, 4096).unwrap();
    assert_eq!(again, got);
    assert_eq!(
        f.store.counters(),
        after,
        "a cached re-read asks the server nothing"
    );
}

#[test]
fn expunged_message_disappears_after_poll_interval() {
    let f = fixture(Duration::ZERO);
    let ino = path_ino(&f.fs, "INBOX/5/1").unwrap();
    f.store.edit_folder("INBOX", |inbox| inbox.messages.clear());
    assert_eq!(names(&f.fs, "INBOX"), ["INDEX", "SEARCH"]);
    assert_eq!(f.fs.getattr(ino), Err(FsError::NotFound));
}

#[test]
fn uidvalidity_change_makes_old_inodes_stale() {
    let f = fixture(Duration::ZERO);
    let ino = path_ino(&f.fs, "INBOX/5/1").unwrap();
    f.store
        .edit_folder("INBOX", |inbox| inbox.uidvalidity = 101);
    assert_eq!(f.fs.getattr(ino), Err(FsError::Stale));
    // The new incarnation is reachable under a fresh inode.
    let fresh = path_ino(&f.fs, "INBOX/5/1").unwrap();
    assert_ne!(fresh, ino);
    assert_eq!(read_all(&f.fs, "INBOX/5/1"), f.expected["1"]);
}

#[test]
fn unreadable_structure_still_lists_the_message_with_its_header() {
    let f = fixture(Duration::from_secs(60));
    let mut broken = f.store.folders.lock().unwrap()["INBOX"].messages[&5].clone();
    broken.unparseable = true;
    broken
        .sections
        .insert("TEXT".into(), b"the raw body\r\n".to_vec());
    f.store.add_message("INBOX", 6, broken);
    assert_eq!(names(&f.fs, "INBOX"), ["INDEX", "SEARCH", "5", "6"]);
    assert_eq!(
        names(&f.fs, "INBOX/6"),
        ["HEADER", "TEXT", "RFC822", "FLAGS"]
    );
    assert_eq!(read_all(&f.fs, "INBOX/6/HEADER"), HEADER);
    let (attr, _) =
        f.fs.getattr(path_ino(&f.fs, "INBOX/6/TEXT").unwrap())
            .unwrap();
    let text = read_all(&f.fs, "INBOX/6/TEXT");
    assert_eq!(attr.size, text.len() as u64);
    assert_eq!(text, b"the raw body\r\n");
    // Its neighbour is unaffected.
    assert_eq!(read_all(&f.fs, "INBOX/5/2"), f.expected["2"]);
}

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

mod content;
