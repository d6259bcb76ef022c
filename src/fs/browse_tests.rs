//! Tests of the browsing layout over the fake store: INDEX, FOLDERS, and a message
//! directory's FLAGS, BODYSTRUCTURE, RFC822, TEXT, N.MIME, N.utf8 and attachment links.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::fake::parts::{leaf, multipart};
use super::fake::{FakeMessage, FakeStore};
use super::tests::{child_names, path_ino};
use super::{FsError, FsOptions, Kind, MailFs};

const HEADER: &[u8] = b"From: =?iso-8859-1?q?J=F6rg?= <j@example.org>\r\nSubject: Invoice\r\n\tMarch\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n";

pub(super) struct Fx {
    pub store: Arc<FakeStore>,
    pub fs: MailFs,
    body: Vec<u8>,
}

pub(super) fn fixture(poll: Duration) -> Fx {
    let store = Arc::new(FakeStore::new());
    store.add_folder("INBOX", true, 1);
    store.add_folder("INBOX/INDEX", true, 2);
    store.add_folder("Sent", true, 3);
    store.edit_folder("Sent", |f| f.list_flags = vec!["\\Sent".into()]);
    let latin = b"Gr\xfc\xdfe\r\n".to_vec();
    let pdf = b"%PDF-1.4 fake".to_vec();
    let png = b"PNG".to_vec();
    let mimes = [
        b"Content-Type: text/plain; charset=iso-8859-1\r\n\r\n".to_vec(),
        b"Content-Type: application/pdf\r\nContent-Disposition: attachment\r\n\r\n".to_vec(),
        b"Content-Type: image/png; name=FLAGS\r\n\r\n".to_vec(),
    ];
    let mut body = Vec::new();
    for (m, p) in mimes.iter().zip([&latin, &pdf, &png]) {
        body.extend_from_slice(b"--b\r\n");
        body.extend_from_slice(m);
        body.extend_from_slice(p);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"--b--\r\n");
    let whole = [HEADER, &body].concat();
    let bs = multipart(
        vec![
            crate::mime::Part {
                charset: Some("iso-8859-1".into()),
                ..leaf("text", "plain", "8bit", latin.len())
            },
            crate::mime::Part {
                disposition: Some("attachment".into()),
                filename: Some("résumé.pdf".into()),
                ..leaf("application", "pdf", "7bit", pdf.len())
            },
            crate::mime::Part {
                filename: Some("FLAGS".into()),
                ..leaf("image", "png", "7bit", png.len())
            },
        ],
        "mixed",
    );
    let mut sections = HashMap::from([
        ("1".to_string(), latin),
        ("2".to_string(), pdf),
        ("3".to_string(), png),
        ("".to_string(), whole),
        ("TEXT".to_string(), body.clone()),
    ]);
    for (i, m) in mimes.iter().enumerate() {
        sections.insert(format!("{}.MIME", i + 1), m.clone());
    }
    store.add_message(
        "INBOX",
        7,
        FakeMessage {
            internal_date: 1_709_543_700,
            header: HEADER.to_vec(),
            structure: Ok(bs),
            sections,
            unparseable: false,
        },
    );
    store.edit_folder("INBOX", |f| {
        f.flags.insert(7, vec!["\\Seen".into(), "$Label1".into()]);
    });
    let fs = MailFs::new(
        store.clone(),
        FsOptions {
            poll_interval: poll,
            cache_size: 1 << 20,
            uid: 1,
            gid: 1,
            parallel_fetches: 2,
            max_message_infos: 1000,
        },
    );
    Fx { store, fs, body }
}

/// The whole file, checked against its st_size.
fn read_all(fs: &MailFs, path: &str) -> Vec<u8> {
    let ino = path_ino(fs, path).unwrap();
    let size = fs.getattr(ino).unwrap().0.size;
    let fh = fs.open(ino).unwrap();
    let mut out = Vec::new();
    loop {
        let got = fs.read(ino, fh, out.len() as u64, 7).unwrap();
        if got.is_empty() {
            break;
        }
        out.extend_from_slice(&got);
    }
    fs.release(fh);
    assert_eq!(out.len() as u64, size, "st_size of {path}");
    out
}

fn text(fs: &MailFs, path: &str) -> String {
    String::from_utf8(read_all(fs, path)).unwrap()
}

#[test]
fn message_directory_has_the_browsing_files() {
    let f = fixture(Duration::from_secs(60));
    assert_eq!(
        child_names(&f.fs, "INBOX/7"),
        [
            "HEADER",
            "1",
            "2",
            "3",
            "TEXT",
            "RFC822",
            "1.MIME",
            "2.MIME",
            "3.MIME",
            "FLAGS",
            "BODYSTRUCTURE",
            "1.utf8",
            "résumé.pdf",
            "FLAGS~3"
        ]
    );
    assert_eq!(text(&f.fs, "INBOX/7/FLAGS"), "\\Seen $Label1\n");
    assert_eq!(read_all(&f.fs, "INBOX/7/TEXT"), f.body);
    assert_eq!(
        read_all(&f.fs, "INBOX/7/RFC822"),
        [HEADER, &f.body].concat()
    );
    assert_eq!(
        text(&f.fs, "INBOX/7/2.MIME"),
        "Content-Type: application/pdf\r\nContent-Disposition: attachment\r\n\r\n"
    );
    assert_eq!(text(&f.fs, "INBOX/7/1.utf8"), "Grüße\r\n");
    assert_eq!(
        text(&f.fs, "INBOX/7/BODYSTRUCTURE"),
        "TEXT multipart/mixed\n  1 text/plain size=7 charset=iso-8859-1\n  \
         2 application/pdf size=13 attachment filename=résumé.pdf\n  3 image/png size=3 filename=FLAGS\n"
    );
    let dir = path_ino(&f.fs, "INBOX/7").unwrap();
    let (attr, _) = f.fs.lookup(dir, "résumé.pdf").unwrap();
    assert_eq!(attr.kind, Kind::Symlink);
    assert_eq!(f.fs.readlink(attr.ino).unwrap(), "2");
    let link = path_ino(&f.fs, "INBOX/7/FLAGS~3").unwrap();
    assert_eq!(f.fs.readlink(link).unwrap(), "3");
    assert!(f.fs.is_live(path_ino(&f.fs, "INBOX/7/FLAGS").unwrap()));
    assert!(!f.fs.is_live(path_ino(&f.fs, "INBOX/7/1.utf8").unwrap()));
    assert_eq!(path_ino(&f.fs, "INBOX/7/4.utf8"), Err(FsError::NotFound));
}

#[test]
fn index_and_folders() {
    let f = fixture(Duration::ZERO);
    assert_eq!(
        child_names(&f.fs, ""),
        ["FOLDERS", "SEARCH", "INBOX", "Sent"]
    );
    assert_eq!(
        child_names(&f.fs, "INBOX"),
        ["INDEX", "SEARCH", "%49NDEX", "7"]
    );
    assert_eq!(child_names(&f.fs, "INBOX/%49NDEX"), ["INDEX", "SEARCH"]);
    let size = HEADER.len() + f.body.len();
    assert_eq!(
        text(&f.fs, "INBOX/INDEX"),
        format!("7\t2024-03-04T10:15:00+01:00\t{size}\t\\Seen $Label1\tJörg <j@example.org>\tInvoice March\n")
    );
    assert_eq!(
        text(&f.fs, "FOLDERS"),
        "INBOX\t1\t0\t-\nINBOX/%49NDEX\t0\t0\t-\nSent\t0\t0\t\\Sent\n"
    );
    // Another client changes the flags: INDEX and FLAGS follow (poll interval zero).
    f.store.edit_folder("INBOX", |inbox| {
        inbox.flags.insert(7, vec!["\\Flagged".into()]);
    });
    assert_eq!(text(&f.fs, "INBOX/7/FLAGS"), "\\Flagged\n");
    assert!(text(&f.fs, "INBOX/INDEX").contains("\t\\Flagged\t"));
    assert_eq!(
        text(&f.fs, "FOLDERS").lines().next(),
        Some("INBOX\t1\t1\t-")
    );
    // An open INDEX keeps what it showed at open.
    let ino = path_ino(&f.fs, "INBOX/INDEX").unwrap();
    let fh = f.fs.open(ino).unwrap();
    f.store.edit_folder("INBOX", |inbox| {
        inbox.flags.insert(7, vec![]);
    });
    let got = f.fs.read(ino, fh, 0, 4096).unwrap();
    assert!(String::from_utf8(got).unwrap().contains("\t\\Flagged\t"));
    f.fs.release(fh);
    assert!(text(&f.fs, "INBOX/INDEX").contains("\t-\t"));
    assert_eq!(text(&f.fs, "INBOX/7/FLAGS"), "\n");
}

#[test]
fn index_costs_one_summary_fetch_and_no_bodies() {
    let f = fixture(Duration::from_secs(60));
    let before = f.store.counters();
    text(&f.fs, "INBOX/INDEX");
    text(&f.fs, "INBOX/INDEX");
    let after = f.store.counters();
    assert_eq!(after.fetch_briefs - before.fetch_briefs, 1);
    assert_eq!(
        after.fetch_flags, before.fetch_flags,
        "flags came with the summary"
    );
    assert_eq!(after.fetch_structures, before.fetch_structures);
    assert_eq!(after.fetch_ranges, before.fetch_ranges);
}

#[test]
fn unreadable_structure_keeps_header_text_rfc822_flags() {
    let f = fixture(Duration::from_secs(60));
    let mut broken = f.store.folders.lock().unwrap()["INBOX"].messages[&7].clone();
    broken.unparseable = true;
    f.store.add_message("INBOX", 8, broken);
    assert_eq!(
        child_names(&f.fs, "INBOX/8"),
        ["HEADER", "TEXT", "RFC822", "FLAGS"]
    );
    assert_eq!(read_all(&f.fs, "INBOX/8/TEXT"), f.body);
    assert_eq!(
        read_all(&f.fs, "INBOX/8/RFC822"),
        [HEADER, &f.body].concat()
    );
    assert_eq!(text(&f.fs, "INBOX/8/FLAGS"), "\n");
}

#[test]
fn listing_with_attributes_builds_nothing() {
    let f = fixture(Duration::from_secs(60));
    let root = f.fs.readdir(1).unwrap();
    let attrs = f.fs.attrs_of(1, &root);
    let folders = root.iter().position(|e| e.name == "FOLDERS").unwrap();
    assert_eq!(attrs[folders].map(|a| a.1), Some(super::Ttl::Live));
    let inbox = path_ino(&f.fs, "INBOX").unwrap();
    let entries = f.fs.readdir(inbox).unwrap();
    let attrs = f.fs.attrs_of(inbox, &entries);
    assert!(attrs.iter().all(Option::is_some), "every entry listed");
    let dir = path_ino(&f.fs, "INBOX/7").unwrap();
    let entries = f.fs.readdir(dir).unwrap();
    let attrs = f.fs.attrs_of(dir, &entries);
    assert!(attrs.iter().all(Option::is_some), "every entry listed");
    let c = f.store.counters();
    assert_eq!((c.folder_counts, c.fetch_briefs, c.fetch_flags), (0, 0, 0));
    // The exact size comes with a lookup.
    assert_eq!(
        f.fs.lookup(1, "FOLDERS").unwrap().0.size,
        read_all(&f.fs, "FOLDERS").len() as u64
    );
}

#[test]
fn a_reader_waiting_for_a_cold_index_keeps_its_flags() {
    let f = Arc::new(fixture(Duration::from_secs(60)));
    *f.store.briefs_delay.lock().unwrap() = Duration::from_millis(200);
    let inbox = path_ino(&f.fs, "INBOX").unwrap();
    let first = {
        let f = f.clone();
        std::thread::spawn(move || f.fs.lookup(inbox, "INDEX").map(|a| a.0.size))
    };
    std::thread::sleep(Duration::from_millis(50));
    // Starts while the first build is fetching: waits for it, then uses it.
    let second = f.fs.lookup(inbox, "INDEX").map(|a| a.0.size);
    assert_eq!(first.join().unwrap(), second);
    assert_eq!(text(&f.fs, "INBOX/7/FLAGS"), "\\Seen $Label1\n");
    assert_eq!(f.store.counters().fetch_briefs, 1);
}
