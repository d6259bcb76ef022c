//! Response shapes and limits of one connection's commands.

use super::*;

#[test]
fn missing_folder_detection() {
    assert!(no_means_missing("[NONEXISTENT] Mailbox doesn't exist: x"));
    assert!(no_means_missing("Mailbox doesn't exist: x"));
    assert!(!no_means_missing("[UNAVAILABLE] Temporary failure"));
    assert!(!no_means_missing("[SERVERBUG] Internal error"));
}

#[test]
fn response_shapes() {
    assert_eq!(numbered(b"* 3 EXISTS\r\n"), Some((3, "EXISTS".into())));
    assert_eq!(
        numbered(b"* 1 FETCH (FLAGS ())\r\n"),
        Some((1, "FETCH".into()))
    );
    assert_eq!(numbered(b"* OK x\r\n"), None);
    assert_eq!(
        ok_code(b"* OK [UIDNEXT 9] Predicted\r\n", "UIDNEXT"),
        Some(9)
    );
    assert_eq!(ok_code(b"* OK [UIDVALIDITY 12] x\r\n", "UIDNEXT"), None);
    assert!(is_untagged(b"* SEARCH 1 2\r\n", "SEARCH"));
    assert!(is_untagged(b"* SEARCH\r\n", "SEARCH"));
    assert!(!is_untagged(b"* SEARCHX\r\n", "SEARCH"));
}

#[test]
fn literal_limits_follow_the_ranges_asked_for() {
    let l = fetch_limits(&["UID FETCH 5 (UID BODY.PEEK[2]<0.100> BODY.PEEK[1]<5.3000>)".into()]);
    assert_eq!(l.literal, 3000 + wire::LITERAL_SLACK);
    let l = fetch_limits(&["UID FETCH 5 (UID BINARY.PEEK[2]<0.10>)".into()]);
    assert_eq!(l.literal, 10 + wire::LITERAL_SLACK);
    let l = fetch_limits(&["UID FETCH 1:3 (UID BODYSTRUCTURE BODY.PEEK[HEADER])".into()]);
    assert_eq!(l, wire::FETCH);
    let l = fetch_limits(&["UID FETCH 1:* (UID INTERNALDATE RFC822.SIZE)".into()]);
    assert_eq!(l.literal, wire::LITERAL_SLACK);
}
