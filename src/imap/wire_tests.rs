//! The framing reader against hostile transcripts, over a real local TCP pair (plain text): an
//! endless line, a huge literal announcement, a server dripping bytes against the deadline, an
//! honest slow link, unsolicited responses in the middle of an answer, synchronizing literals.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::wire::{self, Clocked, Cmd, Frame, Limits, Status, Tally, Wire, WireError};

/// A client wire and the server's socket.
pub(super) fn pair(timeout: Duration) -> (Wire<Clocked<TcpStream>>, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    (Wire::new(Clocked::new(c, timeout)), s)
}

/// Run `f` on the server's socket in a thread.
fn serve(s: TcpStream, f: impl FnOnce(TcpStream) + Send + 'static) -> JoinHandle<()> {
    std::thread::spawn(move || f(s))
}

/// Read the client's command line from the server's side.
pub(super) fn read_line(s: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while s.read(&mut b).unwrap_or(0) == 1 {
        line.push(b[0]);
        if b[0] == b'\n' {
            break;
        }
    }
    String::from_utf8_lossy(&line).into_owned()
}

#[test]
fn endless_line_is_cut_at_the_line_limit() {
    let (mut w, s) = pair(Duration::from_secs(5));
    let h = serve(s, |mut s| {
        let chunk = vec![b'a'; 64 * 1024];
        let _ = s.write_all(b"* OK ");
        // 64 MiB at most, never a line end: the client must stop long before.
        for _ in 0..1024 {
            if s.write_all(&chunk).is_err() {
                return;
            }
        }
    });
    w.io.begin_default();
    let mut tally = Tally::default();
    let e = w.read_frame(&wire::CONTROL, &mut tally).unwrap_err();
    assert!(
        matches!(&e, WireError::Protocol(m) if m.contains("longer than")),
        "{e}"
    );
    assert!(tally.bytes <= wire::CONTROL.line as u64 + 64 * 1024);
    drop(w);
    h.join().unwrap();
}

#[test]
fn literal_larger_than_asked_is_refused_before_reading_it() {
    let (mut w, s) = pair(Duration::from_secs(5));
    let h = serve(s, |mut s| {
        let line = read_line(&mut s);
        let tag = line.split(' ').next().unwrap().to_string();
        let _ = s.write_all(b"* 1 FETCH (UID 1 BODY[1]<0> {250000000}\r\n");
        let _ = s.write_all(&[b'x'; 4096]);
        let _ = s.write_all(format!("{tag} OK done\r\n").as_bytes());
    });
    let lim = Limits {
        literal: 100 + wire::LITERAL_SLACK,
        ..wire::FETCH
    };
    let t = Instant::now();
    let e = w
        .run(
            &[Cmd::text("UID FETCH 1 (UID BODY.PEEK[1]<0.100>)")],
            &lim,
            &mut |_| Ok(()),
        )
        .unwrap_err();
    assert!(
        matches!(&e, WireError::Protocol(m) if m.contains("literal of 250000000 bytes")),
        "{e}"
    );
    assert!(t.elapsed() < Duration::from_secs(1));
    h.join().unwrap();
}

#[test]
fn literal_cut_short_is_an_error() {
    // Announced 8 MiB (within the limit), 1 KiB sent, then the server goes away.
    let (mut w, s) = pair(Duration::from_secs(5));
    let h = serve(s, |mut s| {
        let _ = s.write_all(b"* 1 FETCH (BODY[] {8388608}\r\n");
        let _ = s.write_all(&[b'x'; 1024]);
    });
    h.join().unwrap();
    w.io.begin_default();
    let mut tally = Tally::default();
    let e = w.read_frame(&wire::FETCH, &mut tally).unwrap_err();
    assert!(e.to_string().contains("closed"), "{e}");
    assert!(tally.bytes < 2048);
}

#[test]
fn dripping_server_hits_the_deadline() {
    // One byte every 50 ms: each socket read succeeds well within the timeout, but the answer
    // as a whole must end within about one timeout.
    let timeout = Duration::from_millis(400);
    let (mut w, s) = pair(timeout);
    let h = serve(s, |mut s| {
        let _ = read_line(&mut s);
        for _ in 0..200 {
            if s.write_all(b"x").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let t = Instant::now();
    let e = w
        .run(&[Cmd::text("NOOP")], &wire::CONTROL, &mut |_| Ok(()))
        .unwrap_err();
    let took = t.elapsed();
    assert!(e.is_timeout(), "{e}");
    assert!(took >= Duration::from_millis(350), "{took:?}");
    assert!(took < Duration::from_millis(900), "{took:?}");
    drop(w);
    h.join().unwrap();
}

#[test]
fn slow_but_steady_answer_completes_past_the_timeout() {
    // 400 KiB at about 800 KiB/s: longer than the 300 ms timeout, faster than the minimum rate.
    let timeout = Duration::from_millis(300);
    let (mut w, s) = pair(timeout);
    let h = serve(s, |mut s| {
        let line = read_line(&mut s);
        let tag = line.split(' ').next().unwrap().to_string();
        let _ =
            s.write_all(format!("* 1 FETCH (UID 1 BODY[1]<0> {{{}}}\r\n", 400 << 10).as_bytes());
        for _ in 0..100 {
            let _ = s.write_all(&[b'y'; 4096]);
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = s.write_all(format!(")\r\n{tag} OK done\r\n").as_bytes());
    });
    let t = Instant::now();
    let mut got = Vec::new();
    let out = w
        .run(
            &[Cmd::text("UID FETCH 1 (BODY.PEEK[1]<0.409600>)")],
            &wire::FETCH,
            &mut |d| {
                got.push(d);
                Ok(())
            },
        )
        .unwrap();
    assert!(t.elapsed() > timeout, "{:?}", t.elapsed());
    assert_eq!(out, vec![(Status::Ok, "done".to_string())]);
    assert_eq!(got.len(), 1);
    assert!(got[0].len() > 400 << 10);
    h.join().unwrap();
}

#[test]
fn silent_server_times_out_after_one_timeout() {
    let timeout = Duration::from_millis(300);
    let (mut w, s) = pair(timeout);
    let t = Instant::now();
    let e = w
        .run(&[Cmd::text("NOOP")], &wire::CONTROL, &mut |_| Ok(()))
        .unwrap_err();
    assert!(e.is_timeout(), "{e}");
    assert!(t.elapsed() < Duration::from_millis(700));
    drop(s);
}

#[test]
fn unsolicited_responses_are_handed_over_not_fatal() {
    let (mut w, s) = pair(Duration::from_secs(5));
    let h = serve(s, |mut s| {
        let line = read_line(&mut s);
        let tag = line.split(' ').next().unwrap().to_string();
        let _ = s.write_all(
            format!(
                "* 1 FETCH (FLAGS (\\Seen))\r\n* CAPABILITY IMAP4rev1 IDLE\r\n* ENABLED\r\n\
                 * SEARCH 1 2\r\n* NO [ALERT] disk almost full\r\n* 3 EXISTS\r\n* 2 EXPUNGE\r\n\
                 * LIST () \"/\" {{3}}\r\na\r\n\r\n{tag} OK done\r\n"
            )
            .as_bytes(),
        );
    });
    let mut frames = Vec::new();
    let out = w
        .run(&[Cmd::text("NOOP")], &wire::CONTROL, &mut |d| {
            frames.push(d);
            Ok(())
        })
        .unwrap();
    assert_eq!(out[0].0, Status::Ok);
    assert_eq!(frames.len(), 8);
    assert_eq!(frames[7], b"* LIST () \"/\" {3}\r\na\r\n\r\n");
    h.join().unwrap();
}

#[test]
fn too_many_untagged_responses() {
    let (mut w, s) = pair(Duration::from_secs(5));
    let h = serve(s, |mut s| {
        let _ = read_line(&mut s);
        for _ in 0..1000 {
            if s.write_all(b"* 1 EXISTS\r\n").is_err() {
                return;
            }
        }
    });
    let lim = Limits {
        untagged: 100,
        ..wire::CONTROL
    };
    let e = w
        .run(&[Cmd::text("NOOP")], &lim, &mut |_| Ok(()))
        .unwrap_err();
    assert!(e.to_string().contains("more than 100 untagged"), "{e}");
    drop(w);
    h.join().unwrap();
}

#[test]
fn total_bytes_are_bounded() {
    let (mut w, s) = pair(Duration::from_secs(5));
    let h = serve(s, |mut s| {
        let _ = read_line(&mut s);
        for _ in 0..100_000 {
            if s.write_all(b"* LIST () \"/\" \"endless\"\r\n").is_err() {
                return;
            }
        }
    });
    let lim = Limits {
        total: 100_000,
        ..wire::LIST
    };
    let e = w
        .run(&[Cmd::text("LIST \"\" \"*\"")], &lim, &mut |_| Ok(()))
        .unwrap_err();
    assert!(e.to_string().contains("larger than 100000"), "{e}");
    drop(w);
    h.join().unwrap();
}

#[test]
fn bye_and_garbage_end_the_connection() {
    let (mut w, s) = pair(Duration::from_secs(5));
    let h = serve(s, |mut s| {
        let _ = read_line(&mut s);
        let _ = s.write_all(b"* BYE shutting down\r\n");
    });
    let e = w
        .run(&[Cmd::text("NOOP")], &wire::CONTROL, &mut |_| Ok(()))
        .unwrap_err();
    assert!(
        matches!(&e, WireError::Bye(t) if t == "shutting down"),
        "{e}"
    );
    h.join().unwrap();

    let (mut w, s) = pair(Duration::from_secs(5));
    let h = serve(s, |mut s| {
        let _ = read_line(&mut s);
        let _ = s.write_all(b"zz9 OK not ours\r\n");
    });
    let e = w
        .run(&[Cmd::text("NOOP")], &wire::CONTROL, &mut |_| Ok(()))
        .unwrap_err();
    assert!(e.to_string().contains("unknown tag"), "{e}");
    h.join().unwrap();
}

#[test]
fn strings_become_literals_when_needed() {
    // Without LITERAL+: a synchronizing literal waits for the server's `+`.
    let (mut w, s) = pair(Duration::from_secs(5));
    let h = serve(s, |mut s| {
        let first = read_line(&mut s);
        assert!(first.ends_with("EXAMINE {5}\r\n"), "{first:?}");
        let tag = first.split(' ').next().unwrap().to_string();
        let _ = s.write_all(b"+ go ahead\r\n");
        let mut lit = [0u8; 5];
        s.read_exact(&mut lit).unwrap();
        assert_eq!(&lit, b"a\r\nb\xfc");
        assert_eq!(read_line(&mut s), "\r\n");
        let _ = s.write_all(format!("{tag} OK done\r\n").as_bytes());
    });
    let cmd = Cmd::text("EXAMINE ").string(b"a\r\nb\xfc");
    let out = w.run(&[cmd], &wire::CONTROL, &mut |_| Ok(())).unwrap();
    assert_eq!(out[0].0, Status::Ok);
    h.join().unwrap();

    // A refusal instead of `+` ends the command.
    let (mut w, s) = pair(Duration::from_secs(5));
    let h = serve(s, |mut s| {
        let first = read_line(&mut s);
        let tag = first.split(' ').next().unwrap().to_string();
        let _ = s.write_all(format!("{tag} BAD no literals here\r\n").as_bytes());
    });
    let cmd = Cmd::text("EXAMINE ").string(b"q\"uote");
    let out = w.run(&[cmd], &wire::CONTROL, &mut |_| Ok(())).unwrap();
    assert_eq!(out[0], (Status::Bad, "no literals here".to_string()));
    h.join().unwrap();

    // With LITERAL+: `{n+}` inline, no round trip; plain names stay quoted.
    let (mut w, s) = pair(Duration::from_secs(5));
    w.literal_plus = true;
    let h = serve(s, |mut s| {
        let mut all = vec![0u8; 0];
        let mut b = [0u8; 1];
        while !all.ends_with(b"INBOX\"\r\n") {
            s.read_exact(&mut b).unwrap();
            all.push(b[0]);
        }
        let text = String::from_utf8_lossy(&all).into_owned();
        assert!(
            text.ends_with("STATUS {3+}\r\na\\b \"INBOX\"\r\n"),
            "{text:?}"
        );
        let tag = text.split(' ').next().unwrap().to_string();
        let _ = s.write_all(format!("{tag} OK done\r\n").as_bytes());
    });
    let cmd = Cmd::text("STATUS ").string(b"a\\b").t(" ").string(b"INBOX");
    assert_eq!(cmd.shown, "STATUS \"a\\\\b\" \"INBOX\"");
    let out = w.run(&[cmd], &wire::CONTROL, &mut |_| Ok(())).unwrap();
    assert_eq!(out[0].0, Status::Ok);
    h.join().unwrap();
}

#[test]
fn frames_are_cut_at_literal_boundaries() {
    let (mut w, s) = pair(Duration::from_secs(5));
    let h = serve(s, |mut s| {
        let _ = s.write_all(
            b"* 1 FETCH (BODY[1] {5}\r\na\r\nb) BINARY[2] ~{3}\r\n\0\r\n)\r\n+ more\r\na1 ok fine\r\n",
        );
    });
    h.join().unwrap();
    w.io.begin_default();
    let mut t = Tally::default();
    assert_eq!(
        w.read_frame(&wire::FETCH, &mut t).unwrap(),
        Frame::Untagged(
            b"* 1 FETCH (BODY[1] {5}\r\na\r\nb) BINARY[2] ~{3}\r\n\0\r\n)\r\n".to_vec()
        )
    );
    assert_eq!(
        w.read_frame(&wire::FETCH, &mut t).unwrap(),
        Frame::Continue(b"more".to_vec())
    );
    assert_eq!(
        w.read_frame(&wire::FETCH, &mut t).unwrap(),
        Frame::Tagged {
            tag: "a1".into(),
            status: Status::Ok,
            text: "fine".into()
        }
    );
}

#[test]
fn literal_lengths() {
    use super::wire::literal_len;
    assert_eq!(literal_len(b"* 1 FETCH (BODY[2]<0> {1234}\r\n"), Some(1234));
    assert_eq!(literal_len(b"* 1 FETCH (X ~{5}\r\n"), Some(5));
    assert_eq!(literal_len(b"a {7+}\r\n"), Some(7));
    assert_eq!(
        literal_len(b"x {99999999999999999999999}\r\n"),
        Some(u64::MAX)
    );
    assert_eq!(literal_len(b"* 1 FETCH (X \"{5}\")\r\n"), None);
    assert_eq!(literal_len(b"text {}\r\n"), None);
    assert_eq!(literal_len(b"{abc}\r\n"), None);
    assert_eq!(literal_len(b"no newline {5}"), None);
}

#[test]
fn frames_do_not_depend_on_how_bytes_arrive() {
    let transcript: &[u8] = b"* 1 FETCH (UID 1 BODY[1]<0> {12}\r\nab\r\n* 2 x\r\ncd UID 1)\r\n\
* OK [UIDNEXT 4] n\r\n* LIST () \"/\" {3}\r\n\xfc\r\n\r\n* 3 FETCH (X ~{2}\r\n\0\0)\r\na1 OK done\r\n";
    let frames = |chunk: usize| {
        let (mut w, s) = pair(Duration::from_secs(5));
        let h = serve(s, move |mut s| {
            let _ = read_line(&mut s);
            for c in transcript.chunks(chunk) {
                let _ = s.write_all(c);
                let _ = s.flush();
                if chunk < 4 {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        });
        let mut got = Vec::new();
        let out = w
            .run(&[Cmd::text("NOOP")], &wire::FETCH, &mut |d| {
                got.push(d);
                Ok(())
            })
            .unwrap();
        h.join().unwrap();
        assert_eq!(out, vec![(Status::Ok, "done".to_string())]);
        got
    };
    let whole = frames(transcript.len());
    assert_eq!(whole.len(), 4);
    assert_eq!(whole[0], &transcript[..56]);
    for chunk in [1, 2, 3, 7, 64] {
        assert_eq!(frames(chunk), whole, "chunks of {chunk}");
    }
}
