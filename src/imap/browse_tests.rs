//! Browsing's IMAP side: answer parsing (hostile names, unsolicited responses in between) and
//! whole commands against the scriptable fake server.

use super::*;
use crate::imap::hostile_server::{greet, ok, start, starts, Reply};
use crate::store::MailStore;

#[test]
fn dates_and_uid_sets() {
    assert_eq!(
        date_and_zone("04-Mar-2024 10:15:00 +0100"),
        Some((1_709_543_700, 3600))
    );
    assert_eq!(
        date_and_zone(" 4-Mar-2024 04:45:00 -0530").map(|d| d.1),
        Some(-19800)
    );
    assert_eq!(uid_set(&[1, 2, 3, 7]), "1:3,7");
    let sparse: Vec<u32> = (1..5000).map(|u| u * 2).collect();
    assert_eq!(uid_set(&sparse), "2:9998");
}

#[test]
fn caps_come_from_the_login_capabilities() {
    let c =
        super::super::caps::Caps::from_untagged(b"* CAPABILITY IMAP4rev1 qresync LIST-STATUS\r\n")
            .unwrap();
    assert_eq!(
        Caps::of(&c),
        Caps {
            condstore: true,
            list_status: true,
            special_use: false
        }
    );
}

#[test]
fn list_status_answers_with_hostile_names() {
    let mut l = Listed::default();
    for frame in [
        &b"* LIST (\\HasNoChildren \\Sent) \"/\" {8}\r\nEntw\xfcrfe\r\n"[..],
        b"* 3 EXISTS\r\n",
        b"* 1 FETCH (FLAGS (\\Seen))\r\n",
        b"* STATUS {8}\r\nEntw\xfcrfe (MESSAGES 5 UNSEEN 2)\r\n",
        b"* LIST () \"/\" {4}\r\nx\r\ny\r\n",
        b"* STATUS {4}\r\nx\r\ny (MESSAGES 1 UNSEEN 0)\r\n",
        b"* LIST (\\HasNoChildren) \"/\" INBOX\r\n",
        b"* STATUS inbox (UNSEEN 4 MESSAGES 9)\r\n",
        b"* LIST (\\Noselect) \"/\" \"q\\\"uote\"\r\n",
        b"* STATUS elsewhere (MESSAGES 7)\r\n",
        b"* STATUS (MESSAGES 7)\r\n",
        b"* LIST garbage\r\n",
    ] {
        l.add(frame);
    }
    assert_eq!(l.unreadable, 2);
    let latin1 = names::name_from_raw(b"Entw\xfcrfe");
    let names: Vec<&str> = l.folders.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, [latin1.as_str(), "x\r\ny", "INBOX", "q\"uote"]);
    assert_eq!(l.folders[0].attributes, ["\\HasNoChildren", "\\Sent"]);
    let get = |n: &str, k: &str| l.counts_of(n).and_then(|i| status_item(i, k));
    assert_eq!(get(&latin1, "MESSAGES"), Some(5));
    assert_eq!(get("x\r\ny", "UNSEEN"), Some(0));
    assert_eq!(get("INBOX", "MESSAGES"), Some(9));
    assert_eq!(get("q\"uote", "MESSAGES"), None);
}

/// A server with `caps` after login, answering browsing commands with noise in between and
/// folder names that are not UTF-8 or hold CR/LF.
fn browsing_server(caps: &'static str) -> crate::imap::hostile_server::Server {
    const NOISE: &[u8] = b"* 1 FETCH (FLAGS (\\Seen))\r\n* 9 EXISTS\r\n* NO [ALERT] noise\r\n\
* STATUS other (MESSAGES 99 UNSEEN 9)\r\n";
    start(greet(""), move |tag, cmd| {
        let mut out = NOISE.to_vec();
        if starts(cmd, "LOGIN") {
            return Reply::Now(
                format!("{tag} OK [CAPABILITY IMAP4rev1 {caps}] in\r\n").into_bytes(),
            );
        }
        if starts(cmd, "LIST") {
            out.extend_from_slice(b"* LIST (\\Drafts) \"/\" {8}\r\nEntw\xfcrfe\r\n");
            if starts(cmd, "LIST \"\" \"*\" RETURN (SPECIAL-USE STATUS") {
                out.extend_from_slice(b"* STATUS {8}\r\nEntw\xfcrfe (MESSAGES 3 UNSEEN 1)\r\n");
            }
            out.extend_from_slice(NOISE);
            out.extend_from_slice(b"* LIST () \"/\" {4}\r\nx\r\ny\r\n");
            if starts(cmd, "LIST \"\" \"*\" RETURN (SPECIAL-USE STATUS") {
                out.extend_from_slice(b"* STATUS {4}\r\nx\r\ny (MESSAGES 2 UNSEEN 2)\r\n");
            }
            out.extend_from_slice(b"* LIST (\\Noselect) \"/\" parent\r\n");
            return ok(tag, &out);
        }
        if cmd.starts_with(b"STATUS {8}\r\nEntw\xfcrfe (") {
            out.extend_from_slice(b"* STATUS {8}\r\nEntw\xfcrfe (MESSAGES 3 UNSEEN 1 UIDNEXT 4 UIDVALIDITY 7 HIGHESTMODSEQ 40)\r\n");
            return ok(tag, &out);
        }
        if cmd.starts_with(b"STATUS {4}\r\nx\r\ny (") {
            out.extend_from_slice(b"* STATUS {4}\r\nx\r\ny (MESSAGES 2 UNSEEN 2)\r\n");
            return ok(tag, &out);
        }
        if starts(cmd, "STATUS") || (starts(cmd, "EXAMINE") && !cmd.ends_with(b"y")) {
            return Reply::Now(format!("{tag} NO [NONEXISTENT] no\r\n").into_bytes());
        }
        if starts(cmd, "EXAMINE") {
            out.extend_from_slice(
                b"* 3 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 4] n\r\n",
            );
            return Reply::Now(
                [out, format!("{tag} OK [READ-ONLY] done\r\n").into_bytes()].concat(),
            );
        }
        if starts(cmd, "UID FETCH 1:* (UID FLAGS MODSEQ) (CHANGEDSINCE 30)") {
            out.extend_from_slice(b"* 2 FETCH (UID 2 FLAGS (\\Seen \\Recent) MODSEQ (41))\r\n");
            out.extend_from_slice(NOISE);
            return ok(tag, &out);
        }
        if starts(cmd, "UID FETCH 1:3 (UID FLAGS INTERNALDATE RFC822.SIZE") {
            for u in 1..=3 {
                out.extend_from_slice(format!("* {u} FETCH (UID {u} FLAGS () INTERNALDATE \"25-Nov-2026 22:21:14 +0100\" RFC822.SIZE {u}0 BODY[HEADER.FIELDS (FROM SUBJECT)] {{15}}\r\nSubject: s{u}\r\n\r\n)\r\n").as_bytes());
                out.extend_from_slice(NOISE);
            }
            // Not asked for: dropped.
            out.extend_from_slice(b"* 9 FETCH (UID 9 FLAGS () RFC822.SIZE 5)\r\n");
            return ok(tag, &out);
        }
        ok(tag, &out)
    })
}

#[test]
fn list_status_and_condstore_through_the_session() {
    let f = browsing_server("CONDSTORE LIST-STATUS SPECIAL-USE");
    let store = ImapStore::connect(f.cfg("pw")).unwrap();
    let latin1 = names::name_from_raw(b"Entw\xfcrfe");
    let counts = store.folder_counts().unwrap();
    let got: Vec<(&str, Option<u32>, Option<u32>)> = counts
        .iter()
        .map(|c| (c.name.as_str(), c.messages, c.unseen))
        .collect();
    assert_eq!(
        got,
        [
            (latin1.as_str(), Some(3), Some(1)),
            ("x\r\ny", Some(2), Some(2)),
            ("parent", None, None)
        ]
    );
    assert_eq!(counts[0].flags, ["\\Drafts"]);
    // One LIST, no STATUS per folder, no CAPABILITY of its own.
    assert!(!f.sent("STATUS") && !f.sent("CAPABILITY"));

    let (st, modseq) = store.browse_status(&latin1).unwrap();
    assert_eq!((st.uidvalidity, st.uidnext, st.messages), (7, 4, 3));
    assert_eq!(modseq, Some(40));
    assert!(matches!(
        store.browse_status("gone"),
        Err(StoreError::NoSuchFolder(_))
    ));

    let flags = store
        .fetch_flags("x\r\ny", 7, &[1, 2, 3], Some(30))
        .unwrap();
    assert_eq!(flags.flags, [(2, vec!["\\Seen".to_string()])]);
    assert_eq!(flags.modseq, Some(41));

    let briefs = store.fetch_briefs("x\r\ny", 7, &[1, 2, 3]).unwrap();
    let got: Vec<(u32, u64, &[u8])> = briefs
        .iter()
        .map(|b| (b.uid, b.rfc822_size, &b.fields[..]))
        .collect();
    assert_eq!(
        got,
        [
            (1, 10, &b"Subject: s1\r\n\r\n"[..]),
            (2, 20, b"Subject: s2\r\n\r\n"),
            (3, 30, b"Subject: s3\r\n\r\n")
        ]
    );
    assert_eq!(briefs[0].zone_offset, 3600);
    let cmds = f.commands();
    assert!(cmds.iter().any(|c| c.starts_with(b"EXAMINE {4}\r\nx\r\ny")));
    for c in cmds {
        let c = String::from_utf8_lossy(&c).to_ascii_uppercase();
        assert!(!c.starts_with("SELECT") && !c.contains("BODY["), "{c}");
    }
}

#[test]
fn without_list_status_each_folder_is_asked() {
    let f = browsing_server("");
    let store = ImapStore::connect(f.cfg("pw")).unwrap();
    let counts = store.folder_counts().unwrap();
    let got: Vec<(Option<u32>, Option<u32>)> =
        counts.iter().map(|c| (c.messages, c.unseen)).collect();
    assert_eq!(got, [(Some(3), Some(1)), (Some(2), Some(2)), (None, None)]);
    // Names as literals, the unselectable folder not asked.
    let mut statuses: Vec<Vec<u8>> = f
        .commands()
        .into_iter()
        .filter(|c| starts(c, "STATUS"))
        .collect();
    statuses.sort();
    assert_eq!(
        statuses,
        [
            b"STATUS {4}\r\nx\r\ny (MESSAGES UNSEEN)".to_vec(),
            b"STATUS {8}\r\nEntw\xfcrfe (MESSAGES UNSEEN)".to_vec()
        ]
    );
    let (st, modseq) = store.browse_status("x\r\ny").unwrap();
    assert_eq!((st.messages, modseq), (2, None));
    assert!(!f.sent("CAPABILITY"));
}

#[test]
fn list_status_answers_are_bounded() {
    // More untagged responses than 100,000 folders can give: refused, not collected.
    let f = start(greet(""), |tag, cmd| {
        if starts(cmd, "LOGIN") {
            return Reply::Now(
                format!("{tag} OK [CAPABILITY IMAP4rev1 LIST-STATUS] in\r\n").into_bytes(),
            );
        }
        if starts(cmd, "LIST") {
            return ok(
                tag,
                &b"* LIST () \"/\" a\r\n".repeat(LIST_STATUS.untagged + 1),
            );
        }
        ok(tag, b"")
    });
    let store = ImapStore::connect(f.cfg("pw")).unwrap();
    let t = std::time::Instant::now();
    match store.folder_counts() {
        Err(StoreError::Parse(m)) => assert!(m.contains("untagged responses"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(t.elapsed() < std::time::Duration::from_secs(30));
}
