//! A scripted fake IMAP server over TLS on 127.0.0.1, for what a real Dovecot will not do:
//! unparsable responses, hanging commands, `[LIMIT]`, missing STARTTLS.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{ImapStore, Security, ServerConfig};
use crate::secret::Secret;
use crate::store::{MailStore, RangeRequest, StoreError};

/// Self-signed for IP:127.0.0.1 and DNS:localhost, valid until 2125; test use only.
pub(super) const CERT: &str = "-----BEGIN CERTIFICATE-----\n\
MIIBmzCCAUGgAwIBAgIUGyXJ45crK7DQMn8CuYXZdGgzDeUwCgYIKoZIzj0EAwIw\n\
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTEyNTIyNTMxNVoYDzIxMjYxMTAx\n\
MjI1MzE1WjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO\n\
PQMBBwNCAASF7f+FOiRPQUrEo/X/JmdGpVf11GPJNATEyQVJ1ovXbSRgOPo+6+7n\n\
gQMC7Za3xwr1LsgdFw1mijOYBuGETmTno28wbTAdBgNVHQ4EFgQUo9yYlC37slnA\n\
/ZM25+hn3Jo6gg4wHwYDVR0jBBgwFoAUo9yYlC37slnA/ZM25+hn3Jo6gg4wDwYD\n\
VR0TAQH/BAUwAwEB/zAaBgNVHREEEzARhwR/AAABgglsb2NhbGhvc3QwCgYIKoZI\n\
zj0EAwIDSAAwRQIhAIgmpQPC1x6nlAEuYkBa81tOM7Vrjzur08cNZ4G/KX30AiBz\n\
8v8rKQIyzZcq/GcSnVg+9simXoXZ+LZ/Dlo4t9JUQA==\n\
-----END CERTIFICATE-----\n\
";
pub(super) const KEY: &str = "-----BEGIN PRIVATE KEY-----\n\
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgHdHjdu+ZtppPFw2Y\n\
jDelqwaeR2hhGZtZQsP9/ReaD8ShRANCAASF7f+FOiRPQUrEo/X/JmdGpVf11GPJ\n\
NATEyQVJ1ovXbSRgOPo+6+7ngQMC7Za3xwr1LsgdFw1mijOYBuGETmTn\n\
-----END PRIVATE KEY-----\n\
";

#[derive(Default)]
struct Stats {
    connections: AtomicUsize,
    logins: AtomicUsize,
    live: AtomicUsize,
    commands: Mutex<Vec<String>>,
}

struct Fake {
    port: u16,
    stats: Arc<Stats>,
    _ca: tempfile::NamedTempFile,
    ca_path: PathBuf,
}

#[derive(Clone, Copy)]
enum Mode {
    /// Implicit TLS, the scripted mailbox below.
    Normal,
    /// Plain greeting whose CAPABILITY has no STARTTLS.
    NoStartTls,
    /// Accept and say nothing.
    Silent,
}

/// Most concurrent logins before `NO [LIMIT]`.
const MAX_LIVE: usize = 3;

fn start(mode: Mode) -> Fake {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let stats = Arc::new(Stats::default());
    let st = stats.clone();
    let id = native_tls::Identity::from_pkcs8(CERT.as_bytes(), KEY.as_bytes()).unwrap();
    let acceptor = Arc::new(native_tls::TlsAcceptor::new(id).unwrap());
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            st.connections.fetch_add(1, Ordering::SeqCst);
            let st = st.clone();
            let acceptor = acceptor.clone();
            std::thread::spawn(move || match mode {
                Mode::Silent => {
                    std::thread::sleep(Duration::from_secs(30));
                    drop(s);
                }
                Mode::NoStartTls => no_starttls(s, &st),
                Mode::Normal => {
                    if let Ok(tls) = acceptor.accept(s) {
                        serve(tls, &st);
                    }
                }
            });
        }
    });
    let mut ca = tempfile::NamedTempFile::new().unwrap();
    ca.write_all(CERT.as_bytes()).unwrap();
    let ca_path = ca.path().to_path_buf();
    Fake {
        port,
        stats,
        _ca: ca,
        ca_path,
    }
}

fn cfg(f: &Fake, password: &str) -> ServerConfig {
    ServerConfig {
        host: "127.0.0.1".into(),
        port: f.port,
        user: "u".into(),
        password: Secret::new(password.into()),
        oauth2: None,
        security: Security::ImplicitTls,
        ca_file: Some(f.ca_path.clone()),
        insecure: false,
        timeout: Duration::from_millis(500),
        connections: 8,
    }
}

fn no_starttls(mut s: TcpStream, st: &Stats) {
    let _ = s.write_all(b"* OK fake\r\n");
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    while r.read_line(&mut line).unwrap_or(0) > 0 {
        st.commands
            .lock()
            .unwrap()
            .push(line.trim_end().to_string());
        let tag = line.split(' ').next().unwrap_or("*").to_string();
        let _ = s.write_all(
            format!("* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n{tag} OK done\r\n").as_bytes(),
        );
        line.clear();
    }
}

fn uids_of(set: &str) -> Vec<u32> {
    let mut v = Vec::new();
    for part in set.split(',') {
        match part.split_once(':') {
            Some((a, b)) => {
                let a: u32 = a.parse().unwrap();
                let b: u32 = if b == "*" { 8 } else { b.parse().unwrap() };
                v.extend(a..=b.min(8));
            }
            None => v.push(part.parse().unwrap()),
        }
    }
    v
}

/// Folder "F": UIDVALIDITY 42, UIDs 1..=8. UID 5's BODYSTRUCTURE has 8-bit bytes in a quoted
/// string (imap-proto's parser failed on it; ours reads it); UID 6's is unbalanced (nobody can
/// read it); a body fetch of UID 7 never gets an answer.
fn serve<S: Read + Write>(s: native_tls::TlsStream<S>, st: &Stats) {
    let s = Arc::new(Mutex::new(s));
    let _ = s.lock().unwrap().write_all(b"* OK fake ready\r\n");
    let mut logged_in = false;
    let mut buf = Vec::new();
    loop {
        // Read one line.
        buf.clear();
        loop {
            let mut b = [0u8; 1];
            match s.lock().unwrap().read(&mut b) {
                Ok(1) => buf.push(b[0]),
                _ => {
                    if logged_in {
                        st.live.fetch_sub(1, Ordering::SeqCst);
                    }
                    return;
                }
            }
            if buf.ends_with(b"\n") {
                break;
            }
        }
        let line = String::from_utf8_lossy(&buf).trim_end().to_string();
        let (tag, cmd) = line.split_once(' ').unwrap_or((&line, ""));
        let up = cmd.to_ascii_uppercase();
        if !up.starts_with("LOGIN") {
            st.commands.lock().unwrap().push(cmd.to_string());
        }
        let mut out: Vec<u8> = Vec::new();
        if up.starts_with("LOGIN") {
            if !cmd.ends_with("\"right\"") {
                out.extend(
                    format!("{tag} NO [AUTHENTICATIONFAILED] Authentication failed.\r\n").bytes(),
                );
            } else if st.live.load(Ordering::SeqCst) >= MAX_LIVE {
                out.extend(
                    format!(
                        "{tag} NO [LIMIT] Maximum number of connections from user+IP exceeded\r\n"
                    )
                    .bytes(),
                );
            } else {
                st.live.fetch_add(1, Ordering::SeqCst);
                st.logins.fetch_add(1, Ordering::SeqCst);
                logged_in = true;
                out.extend(format!("{tag} OK Logged in\r\n").bytes());
            }
        } else if up.starts_with("EXAMINE") {
            if cmd.ends_with("\"F\"") {
                out.extend(format!("* 8 EXISTS\r\n* OK [UIDVALIDITY 42] UIDs valid\r\n* OK [UIDNEXT 9] next\r\n{tag} OK [READ-ONLY] Examine completed\r\n").bytes());
            } else {
                out.extend(format!("{tag} NO [NONEXISTENT] Mailbox doesn't exist: x\r\n").bytes());
            }
        } else if up.starts_with("UID FETCH") && up.contains("BODYSTRUCTURE") {
            let set = cmd.split(' ').nth(2).unwrap();
            for u in uids_of(set) {
                if u == 6 {
                    // Unbalanced: no parser can read this one.
                    out.extend(
                        format!("* {u} FETCH (UID {u} BODYSTRUCTURE ((\"text\" \"plain\"\r\n")
                            .bytes(),
                    );
                    continue;
                }
                let name: &[u8] = if u == 5 { b"Gr\xfc\xdfe" } else { b"plain" };
                out.extend(
                    format!("* {u} FETCH (UID {u} BODYSTRUCTURE (\"text\" \"plain\" (\"name\" \"")
                        .bytes(),
                );
                out.extend(name);
                out.extend(format!("\") NIL NIL \"7bit\" 5 1 NIL NIL NIL NIL) BODY[HEADER] {{{}}}\r\nSubject: {u}\r\n)\r\n", 11 + u.to_string().len()).bytes());
                if u == 2 {
                    out.extend(b"* 3 EXPUNGE\r\n* 8 EXISTS\r\n");
                }
            }
            out.extend(format!("{tag} OK Fetch completed\r\n").bytes());
        } else if up.starts_with("UID FETCH") && up.contains("INTERNALDATE") {
            for u in 1..=8 {
                out.extend(format!("* {u} FETCH (UID {u} INTERNALDATE \"25-Nov-2026 22:21:14 +0000\" RFC822.SIZE 100)\r\n").bytes());
            }
            out.extend(format!("{tag} OK Fetch completed\r\n").bytes());
        } else if up.starts_with("UID FETCH") {
            let set = cmd.split(' ').nth(2).unwrap();
            if uids_of(set).contains(&7) {
                continue; // hang
            }
            for u in uids_of(set) {
                out.extend(format!("* {u} FETCH (UID {u} BODY[1]<0> {{5}}\r\nhello)\r\n").bytes());
            }
            out.extend(format!("{tag} OK Fetch completed\r\n").bytes());
        } else if up.starts_with("LOGOUT") {
            out.extend(format!("* BYE bye\r\n{tag} OK Logout completed\r\n").bytes());
        } else if up.starts_with("LIST") {
            out.extend(format!("* LIST () \"/\" F\r\n* LIST (\\Noselect) \"/\" a\r\n* LIST () \"/\" a/b/c\r\n{tag} OK List completed\r\n").bytes());
        } else {
            out.extend(format!("{tag} BAD unknown\r\n").bytes());
        }
        if s.lock().unwrap().write_all(&out).is_err() {
            return;
        }
    }
}

fn range(uid: u32) -> RangeRequest {
    RangeRequest {
        uid,
        section: "1".into(),
        offset: 0,
        len: 5,
        binary: false,
    }
}

#[test]
fn fake_narrowing_isolates_unparsable_message() {
    let f = start(Mode::Normal);
    let store = ImapStore::connect(cfg(&f, "right")).unwrap();
    let uids: Vec<u32> = (1..=8).collect();
    let r = store.fetch_structures("F", 42, &uids).unwrap();
    assert_eq!(r.iter().map(|(u, _)| *u).collect::<Vec<_>>(), uids);
    for (u, x) in &r {
        match x {
            Ok(sd) => {
                assert_ne!(*u, 6);
                assert_eq!(sd.header, format!("Subject: {u}\r\n").into_bytes());
            }
            Err(e) => {
                assert_eq!(*u, 6);
                assert!(matches!(e, StoreError::Parse(_)), "{e:?}");
            }
        }
    }
    // 8 → 4 → 2 → 1 failures: 4 broken connections, plus the first.
    let conns = f.stats.connections.load(Ordering::SeqCst);
    assert!(conns <= 6, "{conns} connections");
    // Only read-only commands were sent.
    for c in f.stats.commands.lock().unwrap().iter() {
        let u = c.to_ascii_uppercase();
        assert!(
            u.starts_with("EXAMINE") || u.starts_with("UID FETCH") || u == "CAPABILITY",
            "{c}"
        );
        assert!(!u.contains("BODY[") && !u.contains("SELECT"), "{c}");
    }
    // The store still works afterwards.
    assert_eq!(
        store.fetch_ranges("F", 42, &[range(1)]).unwrap(),
        vec![b"hello".to_vec()]
    );
}

#[test]
fn fake_errors_map_precisely() {
    let f = start(Mode::Normal);
    let e = ImapStore::connect(cfg(&f, "wrong")).err().unwrap().0;
    assert_eq!(
        e,
        "login failed for u@127.0.0.1: [AUTHENTICATIONFAILED] Authentication failed."
    );
    let store = ImapStore::connect(cfg(&f, "right")).unwrap();
    assert_eq!(
        store.list_messages("Nope").unwrap_err(),
        StoreError::NoSuchFolder("Nope".into())
    );
    assert_eq!(
        store.fetch_ranges("F", 41, &[range(1)]).unwrap_err(),
        StoreError::UidValidityChanged("F".into())
    );
    let l = store.list_messages("F").unwrap();
    assert_eq!((l.uidvalidity, l.uidnext, l.exists), (42, 9, 8));
    let folders = store.list_folders().unwrap();
    let names: Vec<(&str, bool)> = folders
        .iter()
        .map(|f| (f.name.as_str(), f.selectable))
        .collect();
    assert_eq!(
        names,
        vec![("F", true), ("a", false), ("a/b/c", true), ("a/b", false)]
    );
}

#[test]
fn fake_hanging_command_gives_up_within_the_timeout() {
    let f = start(Mode::Normal);
    let store = ImapStore::connect(cfg(&f, "right")).unwrap();
    let t = Instant::now();
    let e = store.fetch_ranges("F", 42, &[range(7)]).unwrap_err();
    let took = t.elapsed();
    assert!(matches!(e, StoreError::Connection(_)), "{e:?}");
    // One stalled attempt spends the whole 0.5 s budget: no retries stack up behind it.
    assert!(took < Duration::from_millis(1500), "{took:?}");
    assert!(took >= Duration::from_millis(400), "{took:?}");
    // Right after giving up on a stalled server, other operations fail at once...
    let t = Instant::now();
    assert!(store.fetch_ranges("F", 42, &[range(1)]).is_err());
    assert!(t.elapsed() < Duration::from_millis(100));
    // ...and once the fail-fast window (capped by the timeout) is over, they work again.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        store.fetch_ranges("F", 42, &[range(1)]).unwrap()[0],
        b"hello"
    );
}

#[test]
fn fake_limit_shrinks_pool() {
    let f = start(Mode::Normal);
    let store = ImapStore::connect(cfg(&f, "right")).unwrap();
    std::thread::scope(|sc| {
        for _ in 0..8 {
            sc.spawn(|| {
                for _ in 0..5 {
                    assert_eq!(
                        store.fetch_ranges("F", 42, &[range(1)]).unwrap()[0],
                        b"hello"
                    );
                }
            });
        }
    });
    assert_eq!(store.connection_limit(), MAX_LIVE);
}

#[test]
fn fake_missing_starttls_keeps_password() {
    let f = start(Mode::NoStartTls);
    let mut c = cfg(&f, "right");
    c.security = Security::StartTls;
    let e = ImapStore::connect(c).err().unwrap().0;
    assert_eq!(
        e,
        format!(
            "server 127.0.0.1:{} does not offer STARTTLS; refusing to send the password",
            f.port
        )
    );
    let cmds = f.stats.commands.lock().unwrap().clone();
    assert_eq!(cmds, vec!["a1 CAPABILITY".to_string()]);
}

#[test]
fn fake_silent_server_times_out() {
    let f = start(Mode::Silent);
    let t = Instant::now();
    let e = ImapStore::connect(cfg(&f, "right")).err().unwrap().0;
    assert!(t.elapsed() < Duration::from_secs(3));
    assert!(
        e.starts_with("timed out in the TLS handshake with 127.0.0.1:"),
        "{e}"
    );
}

#[test]
fn fake_wrong_scheme_is_recognised_at_once() {
    // imap:// on a TLS port: no greeting, and the port answers a TLS handshake.
    let f = start(Mode::Normal);
    let mut c = cfg(&f, "pw");
    c.security = Security::StartTls;
    c.timeout = Duration::from_secs(10);
    let t0 = Instant::now();
    let e = ImapStore::connect(c).err().unwrap().0;
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    let p = f.port;
    assert_eq!(
        e,
        format!("127.0.0.1:{p} looks like a TLS port (no greeting, but it answers a TLS handshake): use imaps://u@127.0.0.1:{p}")
    );
    // imaps:// on a plain port: it greets in clear text.
    let f = start(Mode::NoStartTls);
    let mut c = cfg(&f, "pw");
    c.timeout = Duration::from_secs(10);
    let e = ImapStore::connect(c).err().unwrap().0;
    let p = f.port;
    assert_eq!(
        e,
        format!("127.0.0.1:{p} looks like a plain IMAP port (it greets in clear text, not with TLS): use imap://u@127.0.0.1:{p} (STARTTLS)")
    );
    assert!(f.stats.commands.lock().unwrap().is_empty());
}

#[test]
fn fake_certificate_problems_name_the_certificate() {
    let f = start(Mode::Normal);
    let p = f.port;
    // "127.1" reaches 127.0.0.1, but is not a name in the certificate.
    let mut c = cfg(&f, "pw");
    c.timeout = Duration::from_secs(10);
    c.host = "127.1".into();
    let e = ImapStore::connect(c).err().unwrap().0;
    assert_eq!(
        e,
        format!("the certificate of 127.1:{p} is for localhost, 127.0.0.1, not for 127.1: use one of its names in the URL (or --insecure to skip the checks)")
    );
    let mut c = cfg(&f, "pw");
    c.timeout = Duration::from_secs(10);
    c.ca_file = None;
    let e = ImapStore::connect(c).err().unwrap().0;
    assert_eq!(
        e,
        format!("the certificate of 127.0.0.1:{p} (for localhost, 127.0.0.1, issued by localhost) is not trusted: trust its CA with --ca-file (or skip the checks with --insecure)")
    );
}
