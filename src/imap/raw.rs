//! The stream shared by the `imap` crate's session and our own FETCH reader, and that reader.
//!
//! The crate reads a response line by line and re-parses it from its start after every line, so
//! a FETCH literal of base64 (a line every 78 bytes) costs a parse per line: most of a cold
//! read's CPU. FETCH commands are therefore written and read here, literals by their announced
//! length, with our own tags; everything else still goes through the crate. The two never run
//! at once on a connection, and between commands the server sends nothing, so neither holds
//! bytes the other needs.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

type Tls = native_tls::TlsStream<TcpStream>;

/// One TLS connection, usable through several handles.
#[derive(Clone)]
pub struct SharedStream {
    inner: Arc<Mutex<Tls>>,
    /// The configured read timeout, restored whenever the crate asks to clear it (after IDLE).
    timeout: Duration,
}

impl SharedStream {
    pub fn new(tls: Tls, timeout: Duration) -> SharedStream {
        SharedStream {
            inner: Arc::new(Mutex::new(tls)),
            timeout,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Tls> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Read for SharedStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.lock().read(buf)
    }
}

impl Write for SharedStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.lock().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.lock().flush()
    }
}

impl imap::extensions::idle::SetReadTimeout for SharedStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> imap::Result<()> {
        // Never leave the socket without a timeout: "none" means ours.
        self.lock()
            .get_ref()
            .set_read_timeout(Some(timeout.unwrap_or(self.timeout)))
            .map_err(imap::Error::Io)
    }
}

/// How a raw command ended.
#[derive(Debug)]
pub enum Outcome {
    /// Tagged OK: the untagged response bytes (tagged line excluded).
    Ok(Vec<u8>),
    /// Tagged NO or BAD, with its text.
    Refused(String),
}

/// Most bytes one response may hold (commands ask for far less).
const MAX_RESPONSE: usize = 256 << 20;

/// Send several tagged commands at once (pipelining: one round trip for all) and read their
/// responses. The server may run them concurrently (Dovecot does) and interleave their untagged
/// responses, so untagged data is given to whichever command completes next: callers must
/// match answers by content, not by command.
pub fn run_many(stream: &mut SharedStream, cmds: &[(String, String)]) -> io::Result<Vec<Outcome>> {
    let mut request = Vec::new();
    for (tag, cmd) in cmds {
        request.extend_from_slice(format!("{tag} {cmd}\r\n").as_bytes());
    }
    stream.write_all(&request)?;
    stream.flush()?;
    let mut reader = BufReader::with_capacity(256 * 1024, stream.clone());
    let tags: Vec<&str> = cmds.iter().map(|(tag, _)| tag.as_str()).collect();
    read_outcomes(&mut reader, &tags)
}

/// Read until every one of `tags` has its tagged status line, in whatever order they come;
/// the outcomes in the order of `tags`.
fn read_outcomes(reader: &mut impl BufRead, tags: &[&str]) -> io::Result<Vec<Outcome>> {
    let mut outcomes: Vec<Option<Outcome>> = tags.iter().map(|_| None).collect();
    let mut total = 0usize;
    while outcomes.iter().any(Option::is_none) {
        let pending: Vec<&str> = tags
            .iter()
            .zip(&outcomes)
            .filter(|(_, o)| o.is_none())
            .map(|(tag, _)| *tag)
            .collect();
        let (tag, outcome, bytes) = read_response(reader, &pending, MAX_RESPONSE - total)?;
        total += bytes;
        if let Some(i) = tags.iter().position(|t| *t == tag) {
            outcomes[i] = Some(outcome);
        }
    }
    Ok(outcomes.into_iter().flatten().collect())
}

/// Read responses up to and including the tagged status line of one of `tags`; returns that
/// tag, its outcome (with the untagged bytes read on the way) and the bytes read.
fn read_response(
    reader: &mut impl BufRead,
    tags: &[&str],
    limit: usize,
) -> io::Result<(String, Outcome, usize)> {
    let mut data = Vec::new();
    loop {
        let line_start = data.len();
        // One logical line: text, then any literals announced at its line ends.
        loop {
            let n = reader.read_until(b'\n', &mut data)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed by the server",
                ));
            }
            if data.len() > limit {
                return Err(io::Error::other("response too large"));
            }
            match literal_len(&data[line_start..]) {
                Some(len) if len <= limit - data.len() => {
                    let at = data.len();
                    data.resize(at + len, 0);
                    reader.read_exact(&mut data[at..])?;
                }
                Some(_) => return Err(io::Error::other("literal too large")),
                None => break,
            }
        }
        let line = &data[line_start..];
        for tag in tags {
            let Some(rest) = line
                .strip_prefix(tag.as_bytes())
                .and_then(|r| r.strip_prefix(b" "))
            else {
                continue;
            };
            let text = String::from_utf8_lossy(rest).trim_end().to_string();
            let bytes = data.len();
            data.truncate(line_start);
            let outcome = if text.len() >= 2 && text[..2].eq_ignore_ascii_case("OK") {
                Outcome::Ok(data)
            } else {
                Outcome::Refused(text)
            };
            return Ok((tag.to_string(), outcome, bytes));
        }
        if line.len() >= 5 && line[..5].eq_ignore_ascii_case(b"* BYE") {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                String::from_utf8_lossy(line).trim_end().to_string(),
            ));
        }
    }
}

/// The length of a literal announced at the end of `line` (`{n}`, `{n+}`, `~{n}` before CRLF).
fn literal_len(line: &[u8]) -> Option<usize> {
    let line = line.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.strip_suffix(b"}")?;
    let line = line.strip_suffix(b"+").unwrap_or(line);
    let open = line.iter().rposition(|&b| b == b'{')?;
    let digits = &line[open + 1..];
    if digits.is_empty() || digits.len() > 12 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipelined_responses_may_interleave_and_complete_out_of_order() {
        // As Dovecot answers pipelined FETCHes: several run at once.
        let transcript: &[u8] = b"* 1 FETCH (UID 1 BODY[2]<10> {3}\r\nabc)\r\n\
            * 2 FETCH (UID 2 BODY[2]<20> {4}\r\nF2 O)\r\n\
            F2 OK done\r\n\
            * 3 FETCH (UID 3 BODY[2]<30> {2}\r\nxy)\r\n\
            F10 NO [SERVERBUG] sorry\r\n\
            F1 OK done\r\n";
        let mut reader = io::Cursor::new(transcript);
        let outcomes = read_outcomes(&mut reader, &["F1", "F2", "F10"]).unwrap();
        let data = |o: &Outcome| match o {
            Outcome::Ok(d) => String::from_utf8_lossy(d).into_owned(),
            Outcome::Refused(t) => format!("refused: {t}"),
        };
        // Each literal was read by length (the "F2 O" inside one is data, not a status).
        assert_eq!(data(&outcomes[1]), "* 1 FETCH (UID 1 BODY[2]<10> {3}\r\nabc)\r\n* 2 FETCH (UID 2 BODY[2]<20> {4}\r\nF2 O)\r\n");
        assert_eq!(data(&outcomes[2]), "refused: NO [SERVERBUG] sorry");
        assert_eq!(data(&outcomes[0]), "");
        // A connection closed before every answer is an error, not a short result.
        let mut cut = io::Cursor::new(&transcript[..60]);
        assert!(read_outcomes(&mut cut, &["F1", "F2"]).is_err());
    }

    #[test]
    fn literal_lengths() {
        assert_eq!(literal_len(b"* 1 FETCH (BODY[2]<0> {1234}\r\n"), Some(1234));
        assert_eq!(literal_len(b"* 1 FETCH (X ~{5}\r\n"), Some(5));
        assert_eq!(literal_len(b"a {7+}\r\n"), Some(7));
        assert_eq!(literal_len(b"* 1 FETCH (X \"{5}\")\r\n"), None);
        assert_eq!(literal_len(b"text {}\r\n"), None);
        assert_eq!(literal_len(b"{abc}\r\n"), None);
        assert_eq!(literal_len(b"no newline {5}"), None);
    }
}
