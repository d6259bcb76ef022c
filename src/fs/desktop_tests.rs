//! Tests of what desktop tools read besides files: extended attributes (over the browsing
//! fixture) and what `statfs` reports for the fake store's quota.

use std::time::Duration;

use super::browse_tests::fixture;
use super::tests::path_ino;
use super::{FsError, MailFs};

/// Every attribute of the node at `path`, as `getfattr -d` would show them.
fn xattrs(fs: &MailFs, path: &str) -> Vec<(String, String)> {
    xattrs_of(fs, path_ino(fs, path).unwrap(), path)
}

fn xattrs_of(fs: &MailFs, ino: u64, path: &str) -> Vec<(String, String)> {
    let list = fs.xattr_list(ino).unwrap();
    let names: Vec<&str> = fs.xattr_names(ino).unwrap();
    let joined: Vec<u8> = names
        .iter()
        .flat_map(|n| [n.as_bytes(), b"\0"].concat())
        .collect();
    assert_eq!(list, joined, "{path}");
    names
        .iter()
        .map(|n| {
            let v = fs
                .xattr(ino, n)
                .unwrap()
                .expect("a listed name has a value");
            (n.to_string(), String::from_utf8(v).unwrap())
        })
        .collect()
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn message_directories_have_flags_uid_and_internaldate() {
    let f = fixture(Duration::ZERO);
    assert_eq!(
        xattrs(&f.fs, "INBOX/7"),
        pairs(&[
            ("user.imap.flags", "\\Seen $Label1"),
            ("user.imap.internaldate", "2024-03-04T09:15:00+00:00"),
            ("user.imap.uid", "7"),
        ])
    );
    // The flags follow the server, as FLAGS does.
    f.store.edit_folder("INBOX", |fo| {
        fo.flags.insert(7, vec![]);
    });
    let dir = path_ino(&f.fs, "INBOX/7").unwrap();
    assert_eq!(
        f.fs.xattr(dir, "user.imap.flags").unwrap(),
        Some(Vec::new())
    );
    // Nothing but metadata was asked of the server.
    let c = f.store.counters.lock().unwrap().clone();
    assert_eq!((c.fetch_ranges, c.range_bytes), (0, 0));
}

#[test]
fn part_files_have_their_media_type_and_charset() {
    let f = fixture(Duration::from_secs(60));
    let mime = |t: &str| pairs(&[("user.mime_type", t)]);
    // Looking files up may fetch (to settle sizes); their attributes never do.
    let paths = [
        "1", "2", "3", "1.utf8", "HEADER", "TEXT", "1.MIME", "RFC822",
    ];
    let inos: Vec<u64> = paths
        .iter()
        .map(|p| path_ino(&f.fs, &format!("INBOX/7/{p}")).unwrap())
        .collect();
    let before = f.store.counters.lock().unwrap().clone();
    for (ino, p) in inos.iter().zip(paths) {
        xattrs_of(&f.fs, *ino, p);
    }
    let after = f.store.counters.lock().unwrap().clone();
    assert_eq!(before, after);
    assert_eq!(
        xattrs(&f.fs, "INBOX/7/1"),
        pairs(&[
            ("user.mime_type", "text/plain"),
            ("user.charset", "iso-8859-1")
        ])
    );
    assert_eq!(xattrs(&f.fs, "INBOX/7/2"), mime("application/pdf"));
    assert_eq!(xattrs(&f.fs, "INBOX/7/3"), mime("image/png"));
    // The converted copy: the part's type, in UTF-8.
    assert_eq!(
        xattrs(&f.fs, "INBOX/7/1.utf8"),
        pairs(&[("user.mime_type", "text/plain"), ("user.charset", "utf-8")])
    );
    for header in ["HEADER", "TEXT", "1.MIME"] {
        assert_eq!(
            xattrs(&f.fs, &format!("INBOX/7/{header}")),
            mime("text/plain")
        );
    }
    assert_eq!(xattrs(&f.fs, "INBOX/7/RFC822"), mime("message/rfc822"));
    // Generated files, links, folders and the root have none.
    for none in [
        "",
        "INBOX",
        "INBOX/INDEX",
        "FOLDERS",
        "INBOX/7/FLAGS",
        "INBOX/7/BODYSTRUCTURE",
        "INBOX/7/résumé.pdf",
    ] {
        assert_eq!(xattrs(&f.fs, none), pairs(&[]), "{none:?}");
    }
}

#[test]
fn other_names_have_no_value() {
    let f = fixture(Duration::from_secs(60));
    let dir = path_ino(&f.fs, "INBOX/7").unwrap();
    let pdf = path_ino(&f.fs, "INBOX/7/2").unwrap();
    for (ino, name) in [
        (dir, "user.mime_type"),
        (dir, "user.imap.flags.x"),
        (pdf, "user.charset"),
        (pdf, "user.imap.uid"),
        (1, "user.imap.flags"),
    ] {
        assert_eq!(f.fs.xattr(ino, name), Ok(None), "{name}");
    }
    // Other namespaces are not supported at all (so that `ls -l` stops asking).
    for (ino, name) in [(dir, "security.selinux"), (pdf, "system.posix_acl_access")] {
        assert_eq!(f.fs.xattr(ino, name), Err(FsError::NotSupported), "{name}");
    }
    assert_eq!(f.fs.xattr_list(9999), Err(FsError::NotFound));
    assert_eq!(f.fs.xattr(9999, "user.imap.uid"), Err(FsError::NotFound));
}
