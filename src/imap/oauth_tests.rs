//! The SASL strings (RFC 7628 §4.1's and Google's examples) and the exchange over a local TCP
//! pair: SASL-IR or not, a refused token's error challenge answered and its status reported.

use std::io::Write;
use std::time::Duration;

use super::*;
use crate::imap::wire_tests::{pair, read_line};

#[test]
fn oauthbearer_is_rfc_7628_example() {
    let p = Mech::OAuthBearer.initial(
        "user@example.com",
        "server.example.com",
        143,
        "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==",
    );
    assert_eq!(
        p,
        b"n,a=user@example.com,\x01host=server.example.com\x01port=143\x01auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"
    );
    assert_eq!(
        base64(&p),
        "bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9MTQzAWF1dGg9QmVhcmVyIHZGOWRmdDRxbVRjMk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB"
    );
    // saslname escaping of the authzid.
    let p = Mech::OAuthBearer.initial("a,b=c", "h", 993, "t");
    assert!(p.starts_with(b"n,a=a=2Cb=3Dc,\x01host=h\x01port=993\x01"));
}

#[test]
fn xoauth2_is_googles_example() {
    let p = Mech::XOAuth2.initial(
        "someuser@example.com",
        "imap.gmail.com",
        993,
        "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg",
    );
    assert_eq!(
        base64(&p),
        "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ=="
    );
}

#[test]
fn mechanism_choice_prefers_oauthbearer() {
    let caps = |s: &str| Caps::from_code(&format!("[CAPABILITY IMAP4rev1 {s}]")).unwrap();
    assert_eq!(
        Mech::choose(&caps("AUTH=XOAUTH2 AUTH=OAUTHBEARER")),
        Some(Mech::OAuthBearer)
    );
    assert_eq!(
        Mech::choose(&caps("AUTH=PLAIN AUTH=XOAUTH2")),
        Some(Mech::XOAuth2)
    );
    assert_eq!(Mech::choose(&caps("AUTH=PLAIN")), None);
}

#[test]
fn error_challenge_status() {
    let c = b"eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIiwic2NvcGUiOiJleGFtcGxlX3Njb3BlIiwib3BlbmlkLWNvbmZpZ3VyYXRpb24iOiJodHRwczovL2V4YW1wbGUuY29tLy53ZWxsLWtub3duL29wZW5pZC1jb25maWd1cmF0aW9uIn0=";
    assert_eq!(error_status(c).as_deref(), Some("invalid_token"));
    assert_eq!(error_status(b"not base64!"), None);
    assert_eq!(
        error_status(base64(b"{\"status\":\"a b\"}").as_bytes()),
        None
    );
    assert_eq!(error_status(b""), None);
}

/// Run `exchange` against a server thread that answers each line it reads with the next reply,
/// and return the outcome with every line the client sent.
fn scripted(
    mech: Mech,
    sasl_ir: bool,
    replies: &'static [&'static str],
) -> (Result<(Status, String), WireError>, Vec<String>) {
    let (mut w, s) = pair(Duration::from_secs(5));
    let h = std::thread::spawn(move || {
        let mut s = s;
        let mut seen = Vec::new();
        for r in replies {
            seen.push(read_line(&mut s));
            s.write_all(r.as_bytes()).unwrap();
        }
        seen
    });
    let got = exchange(&mut w, mech, b"payload", sasl_ir, &mut |_| Ok(()));
    drop(w);
    (got, h.join().unwrap())
}

#[test]
fn accepted_with_sasl_ir() {
    let (got, seen) = scripted(Mech::OAuthBearer, true, &["a1 OK logged in\r\n"]);
    assert_eq!(got.unwrap(), (Status::Ok, "logged in".into()));
    assert_eq!(seen, ["a1 AUTHENTICATE OAUTHBEARER cGF5bG9hZA==\r\n"]);
}

#[test]
fn accepted_after_continuation() {
    let (got, seen) = scripted(Mech::XOAuth2, false, &["+ \r\n", "a1 OK in\r\n"]);
    assert_eq!(got.unwrap().0, Status::Ok);
    assert_eq!(seen, ["a1 AUTHENTICATE XOAUTH2\r\n", "cGF5bG9hZA==\r\n"]);
}

#[test]
fn refused_token_gets_the_dummy_reply() {
    const ERR: &str = "+ eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIn0=\r\n";
    let (got, seen) = scripted(
        Mech::OAuthBearer,
        true,
        &[ERR, "a1 NO [AUTHENTICATIONFAILED] failed\r\n"],
    );
    assert_eq!(
        got.unwrap(),
        (
            Status::No,
            "[AUTHENTICATIONFAILED] failed (token refused: 401)".into()
        )
    );
    assert_eq!(seen[1], "AQ==\r\n");
    let (got, seen) = scripted(Mech::XOAuth2, true, &[ERR, "a1 NO failed\r\n"]);
    assert_eq!(got.unwrap().0, Status::No);
    assert_eq!(seen[1], "\r\n");
    // A server that keeps challenging is cancelled.
    let (got, seen) = scripted(
        Mech::OAuthBearer,
        true,
        &["+ x\r\n", "+ y\r\n", "a1 BAD cancelled\r\n"],
    );
    assert_eq!(got.unwrap().0, Status::No);
    assert_eq!(seen[2], "*\r\n");
}
