//! [`ImapStore`] against a scriptable TLS fake server playing what RFC 3501 allows and what a
//! hostile server does: LOGINDISABLED, SASL-IR, non-ASCII passwords, unsolicited responses
//! everywhere, literal and non-UTF-8 folder names, 100,000-part structures, dripping answers,
//! BINARY, no IDLE.

use std::time::{Duration, Instant};

use super::hostile_server::{caps_reply, greet, ok, start, starts, Reply};
use super::ImapStore;
use crate::names;
use crate::store::{MailStore, RangeRequest, StoreError};

/// The base64 of `\0u\0pässwörd`.
const PLAIN: &str = "AHUAcMOkc3N3w7ZyZA==";

#[test]
fn logindisabled_uses_authenticate_plain_with_sasl_ir() {
    let f = start(greet("LOGINDISABLED AUTH=PLAIN SASL-IR"), |tag, cmd| {
        if starts(cmd, "AUTHENTICATE") {
            if cmd == format!("AUTHENTICATE PLAIN {PLAIN}").as_bytes() {
                return Reply::Now(
                    format!("{tag} OK [CAPABILITY IMAP4rev1 BINARY] in\r\n").into_bytes(),
                );
            }
            return Reply::Now(format!("{tag} NO bad\r\n").into_bytes());
        }
        Reply::Now(format!("{tag} BAD what\r\n").into_bytes())
    });
    let store = ImapStore::connect(f.cfg("pässwörd")).unwrap();
    assert!(!f.sent("LOGIN"), "LOGIN sent despite LOGINDISABLED");
    // Capabilities after login come from the OK's code: BINARY is offered.
    assert!(store.offers_binary());
    assert!(!f.sent("CAPABILITY"));
}

#[test]
fn authenticate_plain_without_sasl_ir_waits_for_the_continuation() {
    let f = start(greet("LOGINDISABLED AUTH=PLAIN"), |tag, cmd| {
        if cmd == format!("AUTHENTICATE PLAIN {PLAIN}").as_bytes() {
            return ok(tag, b"");
        }
        if starts(cmd, "CAPABILITY") {
            return ok(tag, b"* CAPABILITY IMAP4rev1 IDLE\r\n");
        }
        Reply::Now(format!("{tag} NO [AUTHENTICATIONFAILED] no\r\n").into_bytes())
    });
    let store = ImapStore::connect(f.cfg("pässwörd")).unwrap();
    // Asked again after login: no BINARY now.
    assert!(f.sent("CAPABILITY"));
    assert!(!store.offers_binary());
    let e = ImapStore::connect(f.cfg("other")).err().unwrap().0;
    assert_eq!(e, "login failed for u@127.0.0.1: [AUTHENTICATIONFAILED] no");
    assert!(!e.contains("other"));
}

#[test]
fn logindisabled_without_plain_sends_no_password() {
    let f = start(greet("LOGINDISABLED AUTH=GSSAPI"), |tag, _| {
        Reply::Now(format!("{tag} BAD what\r\n").into_bytes())
    });
    let e = ImapStore::connect(f.cfg("secret-pw")).err().unwrap().0;
    assert!(e.contains("disables LOGIN"), "{e}");
    assert!(!e.contains("secret-pw"));
    assert!(f.commands().is_empty(), "{:?}", f.commands());
}

#[test]
fn non_ascii_password_is_sent_as_a_literal() {
    for (caps, brace) in [("", "{10}"), ("LITERAL+", "{10+}")] {
        let f = start(greet(caps), |tag, cmd| {
            if starts(cmd, "LOGIN") {
                return ok(tag, b"");
            }
            ok(tag, b"* CAPABILITY IMAP4rev1\r\n")
        });
        ImapStore::connect(f.cfg("pässwörd")).unwrap();
        let login = f
            .commands()
            .into_iter()
            .find(|c| starts(c, "LOGIN"))
            .unwrap();
        let mut want = format!("LOGIN \"u\" {brace}\r\n").into_bytes();
        want.extend_from_slice("pässwörd".as_bytes());
        assert_eq!(login, want);
    }
}

/// A server that sends every unsolicited response RFC 3501 allows in every answer, and lists
/// a Latin-1 folder name as a literal.
fn noisy(tag: &str, cmd: &[u8]) -> Reply {
    const NOISE: &[u8] =
        b"* 1 FETCH (FLAGS (\\Seen))\r\n* CAPABILITY IMAP4rev1 IDLE\r\n* ENABLED\r\n\
* SEARCH 1\r\n* NO [ALERT] noise\r\n* 9 EXISTS\r\n* 2 EXPUNGE\r\n* 4 RECENT\r\n";
    let mut out = NOISE.to_vec();
    if starts(cmd, "LOGIN") {
        return ok(tag, &out);
    }
    if starts(cmd, "LIST") {
        out.extend_from_slice(b"* LIST () \"/\" {8}\r\nEntw\xfcrfe\r\n");
        out.extend_from_slice(NOISE);
        out.extend_from_slice(b"* LIST (\\HasNoChildren) \"/\" INBOX\r\n");
        out.extend_from_slice(b"* LIST (\\Noselect \\HasChildren) \"/\" \"q\\\"uote\"\r\n");
        out.extend_from_slice(b"* LIST () \"/\" {4}\r\nx\r\ny\r\n");
        return ok(tag, &out);
    }
    if starts(cmd, "EXAMINE") {
        if cmd == b"EXAMINE {8}\r\nEntw\xfcrfe" || cmd == b"EXAMINE {4}\r\nx\r\ny" {
            // After the noise: the last EXISTS is the count.
            out.extend_from_slice(
                b"* 3 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 4] n\r\n",
            );
            out.extend_from_slice(b"* 1 FETCH (FLAGS ())\r\n* CAPABILITY X\r\n* NO n\r\n");
            out.extend_from_slice(format!("{tag} OK [READ-ONLY] done\r\n").as_bytes());
            return Reply::Now(out);
        }
        return Reply::Now(format!("{tag} NO [NONEXISTENT] no\r\n").into_bytes());
    }
    if starts(cmd, "UID FETCH 1:*") {
        for u in 1..=3 {
            out.extend_from_slice(format!("* {u} FETCH (UID {u} INTERNALDATE \"25-Nov-2026 22:21:14 +0000\" RFC822.SIZE {u}0)\r\n").as_bytes());
            out.extend_from_slice(NOISE);
        }
        return ok(tag, &out);
    }
    if starts(cmd, "UID SEARCH") {
        out.extend_from_slice(b"* SEARCH 3 1 2\r\n");
        return ok(tag, &out);
    }
    if starts(cmd, "STATUS") {
        out.extend_from_slice(b"* STATUS other (MESSAGES 99)\r\n* STATUS {8}\r\nEntw\xfcrfe (MESSAGES 3 UIDNEXT 4 UIDVALIDITY 7)\r\n");
        return ok(tag, &out);
    }
    ok(tag, &out)
}

#[test]
fn unsolicited_responses_and_odd_names_are_tolerated() {
    let f = start(greet("IDLE"), noisy);
    let store = ImapStore::connect(f.cfg("pw")).unwrap();
    let folders = store.list_folders().unwrap();
    let latin1 = names::name_from_raw(b"Entw\xfcrfe");
    let names: Vec<(&str, bool)> = folders
        .iter()
        .map(|f| (f.name.as_str(), f.selectable))
        .collect();
    assert_eq!(
        names,
        [
            (latin1.as_str(), true),
            ("INBOX", true),
            ("q\"uote", false),
            ("x\r\ny", true)
        ]
    );
    assert_eq!(folders[2].attributes, ["\\Noselect", "\\HasChildren"]);
    for name in [latin1.as_str(), "x\r\ny"] {
        let l = store.list_messages(name).unwrap();
        assert_eq!((l.uidvalidity, l.uidnext, l.exists), (7, 4, 3));
        assert_eq!(
            l.messages.iter().map(|m| m.uid).collect::<Vec<_>>(),
            [1, 2, 3]
        );
    }
    assert_eq!(store.list_uids(&latin1, 7).unwrap(), [1, 2, 3]);
    let st = store.folder_status(&latin1).unwrap();
    assert_eq!((st.uidvalidity, st.uidnext, st.messages), (7, 4, 3));
    // Never a command that could change anything.
    for c in f.commands() {
        let c = String::from_utf8_lossy(&c).to_ascii_uppercase();
        assert!(!c.starts_with("SELECT") && !c.contains("BODY["), "{c}");
    }
}

#[test]
fn huge_structures_are_refused_per_message() {
    fn parts(n: usize) -> Vec<u8> {
        let mut d = b"(".to_vec();
        for _ in 0..n {
            d.extend_from_slice(b"(\"text\" \"plain\" NIL NIL NIL \"7bit\" 1 1)");
        }
        d.extend_from_slice(b" \"mixed\")");
        d
    }
    let f = start(greet(""), |tag, cmd| {
        if starts(cmd, "EXAMINE") {
            return ok(tag, b"* 1 EXISTS\r\n* OK [UIDVALIDITY 1] v\r\n");
        }
        if starts(cmd, "UID FETCH") {
            let mut out = Vec::new();
            for u in 1..=6u32 {
                out.extend_from_slice(format!("* {u} FETCH (UID {u} BODYSTRUCTURE ").as_bytes());
                out.extend_from_slice(&parts(if u % 3 == 0 { 2 } else { 100_000 }));
                out.extend_from_slice(b" BODY[HEADER] {4}\r\nA: b)\r\n");
            }
            return ok(tag, &out);
        }
        ok(tag, b"")
    });
    let store = ImapStore::connect(f.cfg("pw")).unwrap();
    let t = Instant::now();
    let r = store.fetch_structures("F", 1, &[1, 2, 3, 4, 5, 6]).unwrap();
    assert_eq!(r.len(), 6);
    for (u, x) in &r {
        match x {
            Ok(_) => assert_eq!(u % 3, 0),
            Err(e) => {
                assert_ne!(u % 3, 0);
                assert!(e.to_string().contains("more than 5000 parts"), "{e}");
            }
        }
    }
    // One command: refusing a structure does not fail the batch.
    let fetches = f
        .commands()
        .iter()
        .filter(|c| starts(c, "UID FETCH"))
        .count();
    assert_eq!(fetches, 1);
    eprintln!("4 x 100,000-part structures refused in {:?}", t.elapsed());
}

#[test]
fn dripping_answers_fail_within_the_deadline() {
    let f = start(greet(""), |tag, cmd| {
        if starts(cmd, "EXAMINE") {
            return ok(tag, b"* 1 EXISTS\r\n* OK [UIDVALIDITY 1] v\r\n");
        }
        if starts(cmd, "UID FETCH") || starts(cmd, "LIST") {
            return Reply::Drip(vec![b'*'; 1000], Duration::from_millis(100));
        }
        ok(tag, b"")
    });
    let store = ImapStore::connect(f.cfg("pw")).unwrap();
    let req = RangeRequest {
        uid: 1,
        section: "1".into(),
        offset: 0,
        len: 10,
        binary: false,
    };
    for _ in 0..2 {
        let t = Instant::now();
        let e = store
            .fetch_ranges("F", 1, std::slice::from_ref(&req))
            .unwrap_err();
        assert!(matches!(e, StoreError::Connection(_)), "{e:?}");
        assert!(
            t.elapsed() < Duration::from_millis(1600),
            "{:?}",
            t.elapsed()
        );
    }
    std::thread::sleep(Duration::from_secs(2)); // past the fail-fast window
    let t = Instant::now();
    assert!(matches!(
        store.list_folders(),
        Err(StoreError::Connection(_))
    ));
    assert!(
        t.elapsed() < Duration::from_millis(1600),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn dripping_greeting_fails_the_connect_within_three_timeouts() {
    let mut g = b"* OK [CAPABILITY IMAP4rev1] ".to_vec();
    g.extend(std::iter::repeat_n(b'x', 1000));
    let f = start(Reply::Drip(g, Duration::from_millis(50)), |tag, _| {
        ok(tag, b"")
    });
    let t = Instant::now();
    let e = ImapStore::connect(f.cfg("pw")).err().unwrap().0;
    assert!(e.starts_with("timed out reading the greeting"), "{e}");
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn binary_ranges_carry_nul_bytes() {
    let f = start(greet("BINARY"), |tag, cmd| {
        if starts(cmd, "EXAMINE") {
            return ok(tag, b"* 1 EXISTS\r\n* OK [UIDVALIDITY 1] v\r\n");
        }
        if starts(cmd, "CAPABILITY") {
            return caps_reply(tag, "BINARY");
        }
        if cmd == b"UID FETCH 1 (UID BINARY.PEEK[2]<0.4>)" {
            return ok(tag, b"* 1 FETCH (UID 1 BINARY[2]<0> ~{4}\r\n\0a\0b)\r\n");
        }
        ok(tag, b"")
    });
    let store = ImapStore::connect(f.cfg("pw")).unwrap();
    assert!(store.offers_binary());
    let req = RangeRequest {
        uid: 1,
        section: "2".into(),
        offset: 0,
        len: 4,
        binary: true,
    };
    assert_eq!(
        store.fetch_ranges("F", 1, &[req]).unwrap(),
        vec![b"\0a\0b".to_vec()]
    );
}

#[test]
fn without_idle_the_watcher_only_waits() {
    let f = start(greet(""), |tag, cmd| {
        if starts(cmd, "EXAMINE") {
            return ok(tag, b"* 1 EXISTS\r\n* OK [UIDVALIDITY 1] v\r\n");
        }
        ok(tag, b"")
    });
    let store = ImapStore::connect(f.cfg("pw")).unwrap();
    let t = Instant::now();
    assert!(!store
        .wait_for_change("F", Duration::from_millis(200))
        .unwrap());
    assert!(t.elapsed() >= Duration::from_millis(200));
    assert!(!f.sent("IDLE"));
}

#[test]
fn idle_reports_a_change() {
    let f = start(greet("IDLE"), |tag, cmd| {
        if starts(cmd, "EXAMINE") {
            return ok(tag, b"* 1 EXISTS\r\n* OK [UIDVALIDITY 1] v\r\n");
        }
        if starts(cmd, "CAPABILITY") {
            return caps_reply(tag, "IDLE");
        }
        if starts(cmd, "IDLE") {
            // A keepalive (not a change), then news.
            return Reply::Now(b"+ idling\r\n* OK still here\r\n* 2 EXISTS\r\n".to_vec());
        }
        ok(tag, b"")
    });
    let store = ImapStore::connect(f.cfg("pw")).unwrap();
    // The first wait only EXAMINEs ("look now").
    assert!(store.wait_for_change("F", Duration::from_secs(5)).unwrap());
    let t = Instant::now();
    assert!(store.wait_for_change("F", Duration::from_secs(5)).unwrap());
    assert!(t.elapsed() < Duration::from_secs(1));
    assert!(f.commands().iter().any(|c| c == b"DONE"));
}
