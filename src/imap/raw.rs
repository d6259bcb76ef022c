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

/// Send `tag cmd` and read the response up to the tagged status line.
pub fn run(stream: &mut SharedStream, tag: &str, cmd: &str) -> io::Result<Outcome> {
    stream.write_all(format!("{tag} {cmd}\r\n").as_bytes())?;
    stream.flush()?;
    let mut reader = BufReader::with_capacity(256 * 1024, stream.clone());
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
            if data.len() > MAX_RESPONSE {
                return Err(io::Error::other("response too large"));
            }
            match literal_len(&data[line_start..]) {
                Some(len) if len <= MAX_RESPONSE - data.len() => {
                    let at = data.len();
                    data.resize(at + len, 0);
                    reader.read_exact(&mut data[at..])?;
                }
                Some(_) => return Err(io::Error::other("literal too large")),
                None => break,
            }
        }
        let line = &data[line_start..];
        if let Some(rest) = line
            .strip_prefix(tag.as_bytes())
            .and_then(|r| r.strip_prefix(b" "))
        {
            let text = String::from_utf8_lossy(rest).trim_end().to_string();
            data.truncate(line_start);
            if text.len() >= 2 && text[..2].eq_ignore_ascii_case("OK") {
                return Ok(Outcome::Ok(data));
            }
            return Ok(Outcome::Refused(text));
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
