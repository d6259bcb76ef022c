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

/// What the tests mount with: a 64 MiB cache, 4 parallel fetches.
fn options(poll: Duration) -> FsOptions {
    FsOptions {
        poll_interval: poll,
        cache_size: 64 << 20,
        uid: 1000,
        gid: 1000,
        parallel_fetches: 4,
        max_message_infos: 100_000,
    }
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
    let fs = MailFs::new(store.clone(), options(poll));
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

mod content;
mod faults;
mod structures;

#[test]
fn an_open_directory_lists_what_it_held_at_opendir() {
    let f = fixture(Duration::ZERO);
    let inbox = path_ino(&f.fs, "INBOX").unwrap();
    let fh = f.fs.opendir(inbox).unwrap();
    let six = f.store.folders.lock().unwrap()["INBOX"].messages[&5].clone();
    f.store.add_message("INBOX", 6, six);
    let held: Vec<String> =
        f.fs.dir_entries(inbox, fh)
            .unwrap()
            .iter()
            .map(|e| e.name.clone())
            .collect();
    assert_eq!(held[2..], ["INDEX", "SEARCH", "5"]);
    let fresh = f.fs.opendir(inbox).unwrap();
    assert_eq!(
        f.fs.dir_entries(inbox, fresh).unwrap().len(),
        held.len() + 1
    );
    f.fs.releasedir(fh);
    // A handle the core does not know (released) lists the directory as it is now.
    assert_eq!(f.fs.dir_entries(inbox, fh).unwrap().len(), held.len() + 1);
}
