//! Tests against a real server, ignored by a plain `cargo test` (shown as ignored, never as
//! passed): `scripts/imap-server-tests.sh` starts a Dovecot and runs them with `--ignored`.
//! Run by hand, they need
//!
//! `IMAPFS_TEST_SERVER=host:port,user,password,cafile[,starttls_port]`
//!
//! (port is the implicit-TLS port). They only read: LIST, EXAMINE, UID FETCH with BODY.PEEK.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{ImapStore, Security, ServerConfig};
use crate::secret::Secret;
use crate::store::{MailStore, RangeRequest, StoreError};

struct Server {
    cfg: ServerConfig,
    starttls_port: Option<u16>,
}

fn server() -> Option<Server> {
    let spec = std::env::var("IMAPFS_TEST_SERVER").ok()?;
    let f: Vec<&str> = spec.split(',').collect();
    assert!(
        f.len() >= 4,
        "IMAPFS_TEST_SERVER=host:port,user,password,cafile[,starttls_port]"
    );
    let (host, port) = f[0].rsplit_once(':').expect("host:port");
    Some(Server {
        cfg: ServerConfig {
            host: host.to_string(),
            port: port.parse().expect("port"),
            user: f[1].to_string(),
            password: Secret::new(f[2].to_string()),
            oauth2: None,
            security: Security::ImplicitTls,
            ca_file: Some(PathBuf::from(f[3])),
            insecure: false,
            timeout: Duration::from_secs(10),
            connections: 4,
        },
        starttls_port: f.get(4).map(|p| p.parse().expect("starttls port")),
    })
}

/// The first `len` bytes of a message's header.
fn header_range(uid: u32, len: u64) -> RangeRequest {
    RangeRequest {
        uid,
        section: "HEADER".into(),
        offset: 0,
        len,
        binary: false,
    }
}

/// The real-server tests share the account's connection limit: run them one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

macro_rules! server {
    ($guard:ident, $s:ident) => {
        let $guard = crate::sync::lock(&SERIAL);
        let $s = server().expect("IMAPFS_TEST_SERVER is not set: see scripts/imap-server-tests.sh");
    };
}

#[test]
#[ignore = "needs a real server: scripts/imap-server-tests.sh"]
fn real_folders_and_messages() {
    server!(_serial, s);
    let t = Instant::now();
    let store = ImapStore::connect(s.cfg.clone()).expect("connect");
    eprintln!("connect: {:?}", t.elapsed());
    let folders = store.list_folders().expect("list_folders");
    eprintln!("{} folders: {:?}", folders.len(), folders);
    assert!(folders.iter().any(|f| f.name == "INBOX" && f.selectable));
    // Every parent of a folder is listed.
    for f in &folders {
        if let Some(d) = f.delimiter {
            if let Some((parent, _)) = f.name.rsplit_once(d) {
                assert!(
                    folders.iter().any(|p| p.name == parent),
                    "parent of {}",
                    f.name
                );
            }
        }
    }
    for f in folders.iter().filter(|f| f.selectable) {
        let t = Instant::now();
        let l = store.list_messages(&f.name).expect("list_messages");
        eprintln!(
            "{}: uidvalidity {} uidnext {} exists {} messages {} in {:?}",
            f.name,
            l.uidvalidity,
            l.uidnext,
            l.exists,
            l.messages.len(),
            t.elapsed()
        );
        assert_eq!(l.messages.len() as u32, l.exists);
        assert!(l.messages.windows(2).all(|w| w[0].uid < w[1].uid));
        assert!(l
            .messages
            .iter()
            .all(|m| m.internal_date > 0 && m.rfc822_size > 0 && m.uid < l.uidnext));
        let uids: Vec<u32> = l.messages.iter().map(|m| m.uid).collect();
        let t = Instant::now();
        let st = store
            .fetch_structures(&f.name, l.uidvalidity, &uids)
            .expect("fetch_structures");
        eprintln!("  structures of {} in {:?}", st.len(), t.elapsed());
        assert_eq!(st.iter().map(|(u, _)| *u).collect::<Vec<_>>(), uids);
        for (uid, r) in &st {
            match r {
                Ok(sd) => {
                    assert!(sd.structure.is_ok(), "structure of {uid}");
                    assert!(
                        !sd.header.is_empty() || f.name != "INBOX",
                        "header of {uid}"
                    );
                }
                Err(e) => eprintln!("  UID {uid}: {e}"),
            }
        }
        // Whole message as one range vs. 1000-byte pieces: the same bytes, rfc822_size long.
        if let Some(m) = l.messages.first() {
            let t = Instant::now();
            let whole = store
                .fetch_ranges(
                    &f.name,
                    l.uidvalidity,
                    &[RangeRequest {
                        uid: m.uid,
                        section: String::new(),
                        offset: 0,
                        len: m.rfc822_size + 100,
                        binary: false,
                    }],
                )
                .expect("fetch whole")
                .remove(0);
            assert_eq!(whole.len() as u64, m.rfc822_size);
            eprintln!(
                "  whole UID {} ({} bytes) in {:?}",
                m.uid,
                whole.len(),
                t.elapsed()
            );
            let t = Instant::now();
            let piece = (m.rfc822_size / 200).max(1000);
            let reqs: Vec<RangeRequest> = (0..m.rfc822_size.div_ceil(piece) + 1)
                .map(|k| RangeRequest {
                    uid: m.uid,
                    section: String::new(),
                    offset: k * piece,
                    len: piece,
                    binary: false,
                })
                .collect();
            let parts = store
                .fetch_ranges(&f.name, l.uidvalidity, &reqs)
                .expect("fetch pieces");
            eprintln!(
                "  as {} {piece}-byte ranges in {:?}",
                reqs.len(),
                t.elapsed()
            );
            assert_eq!(parts.concat(), whole);
            assert!(parts.last().is_some_and(Vec::is_empty), "past the end");
        }
        // Stale UIDVALIDITY.
        if !uids.is_empty() {
            let e = store
                .fetch_structures(&f.name, l.uidvalidity.wrapping_add(1), &uids[..1])
                .unwrap_err();
            assert_eq!(e, StoreError::UidValidityChanged(f.name.clone()));
        }
    }
    assert_eq!(
        store.list_messages("No/Such/Folder").unwrap_err(),
        StoreError::NoSuchFolder("No/Such/Folder".into())
    );
    // Vanished UIDs are absent / empty.
    let l = store.list_messages("INBOX").unwrap();
    let st = store
        .fetch_structures("INBOX", l.uidvalidity, &[l.uidnext + 10])
        .unwrap();
    assert!(st.is_empty());
    let r = store
        .fetch_ranges(
            "INBOX",
            l.uidvalidity,
            &[RangeRequest {
                uid: l.uidnext + 10,
                section: "1".into(),
                offset: 0,
                len: 10,
                binary: false,
            }],
        )
        .unwrap();
    assert_eq!(r, vec![Vec::<u8>::new()]);
}

#[test]
#[ignore = "needs a real server: scripts/imap-server-tests.sh"]
fn real_connect_errors() {
    server!(_serial, s);
    let mut c = s.cfg.clone();
    c.password = Secret::new("wrong-password-for-test".into());
    let e = ImapStore::connect(c).err().expect("wrong password").0;
    eprintln!("{e}");
    assert!(e.starts_with("login failed for"), "{e}");
    assert!(!e.contains("wrong-password-for-test"));

    let mut c = s.cfg.clone();
    c.ca_file = None;
    let e = ImapStore::connect(c).err().expect("untrusted").0;
    eprintln!("{e}");
    assert!(e.contains("is not trusted"), "{e}");
    assert!(e.contains("--ca-file"), "{e}");

    let mut c = s.cfg.clone();
    c.ca_file = None;
    c.insecure = true;
    ImapStore::connect(c).expect("insecure");

    let mut c = s.cfg.clone();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    c.host = "127.0.0.1".into();
    c.port = l.local_addr().unwrap().port();
    drop(l);
    let e = ImapStore::connect(c).err().expect("refused").0;
    eprintln!("{e}");
    assert!(e.starts_with("cannot connect to 127.0.0.1:"), "{e}");

    let mut c = s.cfg.clone();
    c.host = "no-such-host.invalid".into();
    let e = ImapStore::connect(c).err().expect("unresolvable").0;
    eprintln!("{e}");
    assert!(
        e.starts_with("cannot resolve host no-such-host.invalid"),
        "{e}"
    );

    if let Some(p) = s.starttls_port {
        let mut c = s.cfg.clone();
        c.port = p;
        c.security = Security::StartTls;
        let store = ImapStore::connect(c.clone()).expect("starttls");
        assert!(store.list_folders().unwrap().len() > 1);
        // Implicit TLS on the plain port fails cleanly.
        c.security = Security::ImplicitTls;
        let e = ImapStore::connect(c).err().expect("tls on plain port").0;
        eprintln!("{e}");
        // And STARTTLS on the TLS port.
        let mut c = s.cfg.clone();
        c.security = Security::StartTls;
        c.timeout = Duration::from_secs(2);
        let e = ImapStore::connect(c).err().expect("starttls on tls port").0;
        eprintln!("{e}");
    }
}

#[test]
#[ignore = "needs a real server: scripts/imap-server-tests.sh"]
fn real_parallel_use() {
    server!(_serial, s);
    let mut cfg = s.cfg.clone();
    cfg.connections = 6;
    let store = ImapStore::connect(cfg).expect("connect");
    let l = store.list_messages("INBOX").unwrap();
    let uids: Vec<u32> = l.messages.iter().map(|m| m.uid).collect();
    let t = Instant::now();
    std::thread::scope(|sc| {
        for k in 0..12 {
            let store = &store;
            let uids = &uids;
            sc.spawn(move || {
                for round in 0..5 {
                    let uid = uids[(k + round) % uids.len()];
                    let r = store
                        .fetch_ranges("INBOX", l.uidvalidity, &[header_range(uid, 4096)])
                        .unwrap();
                    assert!(!r[0].is_empty());
                }
            });
        }
    });
    eprintln!("60 fetches on 12 threads in {:?}", t.elapsed());
}

/// More connections than the server allows per user and IP (Dovecot: 10 by default, the test
/// server 20): the pool shrinks and keeps serving. It takes every connection the account may
/// have, so it runs only with `IMAPFS_TEST_LIMIT=1`.
#[test]
#[ignore = "needs a real server: scripts/imap-server-tests.sh"]
fn real_connection_limit() {
    server!(_serial, s);
    assert_eq!(
        std::env::var("IMAPFS_TEST_LIMIT").as_deref(),
        Ok("1"),
        "takes every connection the account may have: set IMAPFS_TEST_LIMIT=1 to run it"
    );
    let mut cfg = s.cfg.clone();
    cfg.connections = 40;
    let store = ImapStore::connect(cfg).expect("connect");
    let l = store.list_messages("INBOX").unwrap();
    let uid = l.messages[0].uid;
    let t = Instant::now();
    // All 40 threads start together and keep fetching for a while, so that the pool needs more
    // connections at once than the server allows (a few fetches each finished so fast that 20
    // connections were enough, and the limit was never met).
    let start = std::sync::Barrier::new(40);
    let fetches = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|sc| {
        for _ in 0..40 {
            let (store, start, fetches) = (&store, &start, &fetches);
            sc.spawn(move || {
                start.wait();
                let began = Instant::now();
                while began.elapsed() < Duration::from_millis(1500) {
                    let r = store
                        .fetch_ranges("INBOX", l.uidvalidity, &[header_range(uid, 100)])
                        .unwrap();
                    assert_eq!(r[0].len(), 100);
                    fetches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
    });
    eprintln!(
        "{} fetches on 40 threads in {:?}; pool limit now {}",
        fetches.into_inner(),
        t.elapsed(),
        store.connection_limit()
    );
    assert!(store.connection_limit() < 40);
}
