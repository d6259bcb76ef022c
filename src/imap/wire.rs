//! Framing: the one reader of every byte a server sends on a connection (greeting, CAPABILITY,
//! STARTTLS, LOGIN/AUTHENTICATE, LIST, EXAMINE, STATUS, SEARCH, NOOP, IDLE, FETCH, LOGOUT).
//!
//! Framing is kept apart from parsing (as imap-codec does): [`Wire::read_frame`] cuts the byte
//! stream into whole responses (a text line plus the literals it announces), and callers parse
//! those. Every command runs under [`Limits`] (text line length, literal size, untagged count,
//! total bytes) and a deadline kept by [`Clocked`], the socket wrapper under TLS:
//!
//! deadline = start + timeout + (bytes received so far) / [`MIN_RATE`](super::clock::MIN_RATE)
//!
//! so the first byte must come within `--timeout` and after it the server must keep up at least
//! that rate on average; a slow but honest link finishes a large FETCH, a server that drips
//! one byte a second is dropped after about one timeout. Each socket read gets the read timeout
//! min(time left, timeout). Literals are allocated as their bytes arrive, never up front.

use std::io;
use std::time::Duration;

pub use super::clock::{Clocked, Transport};
pub use super::cmd::{Cmd, Piece};

/// What one command's answer may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest text segment of a response (a line, or the text between two literals).
    pub line: usize,
    /// Largest literal accepted.
    pub literal: u64,
    /// Most bytes of all responses to the command together.
    pub total: u64,
    /// Most untagged responses.
    pub untagged: usize,
}

/// Greeting, CAPABILITY, LOGIN, EXAMINE, STATUS, NOOP, IDLE, LOGOUT: small answers (plus any
/// unsolicited responses, which are read and dropped).
pub const CONTROL: Limits = Limits {
    line: 1 << 20,
    literal: 1 << 20,
    total: 16 << 20,
    untagged: 1_000_000,
};

/// LIST: a line per folder, names up to 64 KiB, at most 100,000 folders (each kept as a
/// FolderEntry until the answer ends: about 12 MiB at the limit).
pub const LIST: Limits = Limits {
    line: 1 << 20,
    literal: 64 << 10,
    total: 8 << 20,
    untagged: 100_000,
};

/// UID SEARCH: one line holding every UID (8 bytes each for a million messages).
pub const SEARCH: Limits = Limits {
    line: 32 << 20,
    literal: 1 << 20,
    total: 32 << 20,
    untagged: 1_000_000,
};

/// FETCH: lines hold BODYSTRUCTUREs (parsed one response at a time and refused past 5,000
/// parts, so a 100,000-part one is read and dropped); `literal` is set per command from the
/// ranges it asks for.
pub const FETCH: Limits = Limits {
    line: 16 << 20,
    literal: 16 << 20,
    total: 256 << 20,
    untagged: 4_000_000,
};

/// Bytes a ranged FETCH literal may exceed the range asked for before it counts as a protocol
/// error (none should: a server never sends more than asked).
pub const LITERAL_SLACK: u64 = 4096;

/// Why reading or writing failed; every variant leaves the connection unusable.
#[derive(Debug)]
pub enum WireError {
    /// The socket failed, closed, or the deadline passed.
    Io(io::Error),
    /// The server broke a limit or the protocol.
    Protocol(String),
    /// `* BYE`: the server is closing the connection.
    Bye(String),
}

impl From<io::Error> for WireError {
    fn from(e: io::Error) -> WireError {
        WireError::Io(e)
    }
}

impl WireError {
    pub fn is_timeout(&self) -> bool {
        matches!(self, WireError::Io(e) if matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock))
    }
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Io(e) if self.is_timeout() => {
                let _ = e;
                write!(f, "timed out")
            }
            WireError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                write!(f, "connection closed by the server")
            }
            WireError::Io(e) => write!(f, "{e}"),
            WireError::Protocol(m) => write!(f, "protocol error: {m}"),
            WireError::Bye(m) => write!(f, "server closed the connection: {m}"),
        }
    }
}

/// How a tagged command ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    No,
    Bad,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Ok => "OK",
            Status::No => "NO",
            Status::Bad => "BAD",
        })
    }
}

/// One whole response as it came off the wire.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// `* ...` with its literals inline, CRLF included.
    Untagged(Vec<u8>),
    /// `+ ...`: the server waits for a literal or a SASL step (the text after `+ `).
    Continue(Vec<u8>),
    /// `tag OK|NO|BAD text`.
    Tagged {
        tag: String,
        status: Status,
        /// The text after the status word, response code included, trimmed.
        text: String,
    },
}

/// Bytes read so far for one command (all its frames).
#[derive(Default)]
pub struct Tally {
    pub bytes: u64,
    pub untagged: usize,
}

/// One connection's reader and writer.
pub struct Wire<T> {
    pub io: T,
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    next_tag: u64,
    /// Whether the server offers LITERAL+ (non-synchronizing literals).
    pub literal_plus: bool,
}

const BUF: usize = 64 * 1024;

impl<T: Transport> Wire<T> {
    pub fn new(io: T) -> Wire<T> {
        Wire {
            io,
            buf: vec![0; BUF].into_boxed_slice(),
            pos: 0,
            end: 0,
            next_tag: 0,
            literal_plus: false,
        }
    }

    /// Bytes read from the socket but not yet framed.
    pub fn buffered(&self) -> usize {
        self.end - self.pos
    }

    /// Give back the stream (nothing may be buffered: see STARTTLS).
    pub fn into_inner(self) -> T {
        self.io
    }

    fn fill(&mut self) -> Result<(), WireError> {
        if self.pos == self.end {
            self.pos = 0;
            self.end = 0;
        }
        let n = loop {
            match self.io.read(&mut self.buf[self.end..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(WireError::Io(e)),
            }
        };
        if n == 0 {
            return Err(WireError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed by the server",
            )));
        }
        self.end += n;
        Ok(())
    }

    /// Wait up to `max` for the server to send anything: false when nothing came.
    pub fn wait_readable(&mut self, max: Duration) -> Result<bool, WireError> {
        if self.pos < self.end {
            return Ok(true);
        }
        self.io.clock().begin(max, max);
        match self.fill() {
            Ok(()) => Ok(true),
            Err(e) if e.is_timeout() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Read one whole response (text and literals) within `lim`, counting into `tally`.
    pub fn read_frame(&mut self, lim: &Limits, tally: &mut Tally) -> Result<Frame, WireError> {
        let mut data: Vec<u8> = Vec::new();
        loop {
            // One text segment, up to LF.
            let seg_start = data.len();
            loop {
                if self.pos == self.end {
                    self.fill()?;
                }
                let avail = &self.buf[self.pos..self.end];
                let (take, done) = match avail.iter().position(|&b| b == b'\n') {
                    Some(k) => (k + 1, true),
                    None => (avail.len(), false),
                };
                if data.len() - seg_start + take > lim.line {
                    return Err(WireError::Protocol(format!(
                        "response line longer than {} bytes",
                        lim.line
                    )));
                }
                count(tally, take as u64, lim)?;
                data.extend_from_slice(&avail[..take]);
                self.pos += take;
                if done {
                    break;
                }
            }
            let Some(len) = literal_len(&data[seg_start..]) else {
                break;
            };
            if len > lim.literal {
                return Err(WireError::Protocol(format!(
                    "literal of {len} bytes announced, more than the {} expected",
                    lim.literal
                )));
            }
            self.read_literal(&mut data, len, lim, tally)?;
        }
        if data.starts_with(b"* ") || data == b"*\r\n" {
            tally.untagged += 1;
            if tally.untagged > lim.untagged {
                return Err(WireError::Protocol(format!(
                    "more than {} untagged responses to one command",
                    lim.untagged
                )));
            }
            if data.len() >= 5 && data[2..5].eq_ignore_ascii_case(b"BYE") {
                return Err(WireError::Bye(text_of(&data[5..])));
            }
            return Ok(Frame::Untagged(data));
        }
        if let Some(rest) = data.strip_prefix(b"+") {
            let rest = rest.strip_prefix(b" ").unwrap_or(rest);
            return Ok(Frame::Continue(trim_crlf(rest).to_vec()));
        }
        let sp = data.iter().position(|&b| b == b' ').ok_or_else(|| {
            WireError::Protocol(format!("unexpected line {:.60}", text_of(&data)))
        })?;
        let tag = String::from_utf8_lossy(&data[..sp]).into_owned();
        let rest = &data[sp + 1..];
        let word_end = rest
            .iter()
            .position(|&b| b == b' ' || b == b'\r' || b == b'\n');
        let (word, text) = match word_end {
            Some(k) => (&rest[..k], &rest[k..]),
            None => (rest, &b""[..]),
        };
        let status = if word.eq_ignore_ascii_case(b"OK") {
            Status::Ok
        } else if word.eq_ignore_ascii_case(b"NO") {
            Status::No
        } else if word.eq_ignore_ascii_case(b"BAD") {
            Status::Bad
        } else {
            return Err(WireError::Protocol(format!(
                "unexpected line {:.60}",
                text_of(&data)
            )));
        };
        Ok(Frame::Tagged {
            tag,
            status,
            text: text_of(text),
        })
    }

    /// Append a literal of `len` bytes to `data`, growing the buffer as bytes arrive.
    fn read_literal(
        &mut self,
        data: &mut Vec<u8>,
        len: u64,
        lim: &Limits,
        tally: &mut Tally,
    ) -> Result<(), WireError> {
        let mut left = len as usize;
        while left > 0 {
            if self.pos == self.end {
                self.fill()?;
            }
            let take = left.min(self.end - self.pos);
            count(tally, take as u64, lim)?;
            if data.capacity() - data.len() < take {
                // At most twice what arrived so far, never more than the literal's rest.
                data.reserve_exact(left.min(data.len().max(BUF)).max(take));
            }
            data.extend_from_slice(&self.buf[self.pos..self.pos + take]);
            self.pos += take;
            left -= take;
        }
        Ok(())
    }

    fn tag(&mut self) -> String {
        self.next_tag += 1;
        format!("a{}", self.next_tag)
    }

    /// Send `cmds` (pipelined when several) and read until each has its tagged status; every
    /// untagged response goes to `on_untagged`. A synchronizing literal waits for the server's
    /// `+` (only in a command sent alone). The answer is bounded by `lim` and the deadline.
    pub fn run(
        &mut self,
        cmds: &[Cmd],
        lim: &Limits,
        on_untagged: &mut dyn FnMut(Vec<u8>) -> Result<(), WireError>,
    ) -> Result<Vec<(Status, String)>, WireError> {
        let tags: Vec<String> = cmds.iter().map(|_| self.tag()).collect();
        let mut outcomes: Vec<Option<(Status, String)>> = vec![None; cmds.len()];
        let mut tally = Tally::default();
        let sync = cmds.len() == 1 && !self.literal_plus;
        let mut out = Vec::new();
        for (tag, cmd) in tags.iter().zip(cmds) {
            out.extend_from_slice(tag.as_bytes());
            out.push(b' ');
            for piece in &cmd.pieces {
                match piece {
                    Piece::Text(t) => out.extend_from_slice(t),
                    Piece::Literal(l) if sync => {
                        out.extend_from_slice(format!("{{{}}}\r\n", l.len()).as_bytes());
                        self.send(&out)?;
                        out.clear();
                        self.io.clock().begin_default();
                        if let Some(refused) =
                            self.await_continue(tag, lim, &mut tally, on_untagged)?
                        {
                            return Ok(vec![refused]);
                        }
                        out.extend_from_slice(l);
                    }
                    Piece::Literal(l) if self.literal_plus => {
                        out.extend_from_slice(format!("{{{}+}}\r\n", l.len()).as_bytes());
                        out.extend_from_slice(l);
                    }
                    Piece::Literal(_) => {
                        return Err(WireError::Protocol(
                            "a literal cannot be pipelined without LITERAL+".into(),
                        ))
                    }
                }
            }
            out.extend_from_slice(b"\r\n");
        }
        self.send(&out)?;
        self.io.clock().begin_default();
        while outcomes.iter().any(Option::is_none) {
            match self.read_frame(lim, &mut tally)? {
                Frame::Untagged(d) => on_untagged(d)?,
                Frame::Continue(_) => {
                    return Err(WireError::Protocol(
                        "unexpected continuation request".into(),
                    ))
                }
                Frame::Tagged { tag, status, text } => match tags.iter().position(|t| *t == tag) {
                    Some(i) if outcomes[i].is_none() => outcomes[i] = Some((status, text)),
                    _ => {
                        return Err(WireError::Protocol(format!(
                            "answer for unknown tag {tag:.20}"
                        )))
                    }
                },
            }
        }
        Ok(outcomes.into_iter().flatten().collect())
    }

    /// Read until the server's `+` (Ok(None)) or the command's refusal (Ok(Some)).
    pub fn await_continue(
        &mut self,
        tag: &str,
        lim: &Limits,
        tally: &mut Tally,
        on_untagged: &mut dyn FnMut(Vec<u8>) -> Result<(), WireError>,
    ) -> Result<Option<(Status, String)>, WireError> {
        Ok(self.await_challenge(tag, lim, tally, on_untagged)?.err())
    }

    /// Read until the server's `+` (Ok(Ok(its text))) or the tagged end (Ok(Err)).
    pub fn await_challenge(
        &mut self,
        tag: &str,
        lim: &Limits,
        tally: &mut Tally,
        on_untagged: &mut dyn FnMut(Vec<u8>) -> Result<(), WireError>,
    ) -> Result<Result<Vec<u8>, (Status, String)>, WireError> {
        loop {
            match self.read_frame(lim, tally)? {
                Frame::Untagged(d) => on_untagged(d)?,
                Frame::Continue(d) => return Ok(Ok(d)),
                Frame::Tagged {
                    tag: t,
                    status,
                    text,
                } if t == tag => return Ok(Err((status, text))),
                Frame::Tagged { tag, .. } => {
                    return Err(WireError::Protocol(format!(
                        "answer for unknown tag {tag:.20}"
                    )))
                }
            }
        }
    }

    /// Write and flush raw bytes.
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), WireError> {
        self.io.write_all(bytes)?;
        self.io.flush()?;
        Ok(())
    }

    /// A fresh tag for a command run step by step (AUTHENTICATE, IDLE).
    pub fn new_tag(&mut self) -> String {
        self.tag()
    }
}

fn count(tally: &mut Tally, n: u64, lim: &Limits) -> Result<(), WireError> {
    tally.bytes += n;
    if tally.bytes > lim.total {
        return Err(WireError::Protocol(format!(
            "answer larger than {} bytes",
            lim.total
        )));
    }
    Ok(())
}

fn trim_crlf(b: &[u8]) -> &[u8] {
    let b = b.strip_suffix(b"\n").unwrap_or(b);
    b.strip_suffix(b"\r").unwrap_or(b)
}

/// Response text for messages: lossy UTF-8, trimmed, at most 200 bytes.
pub fn text_of(b: &[u8]) -> String {
    let t = String::from_utf8_lossy(trim_crlf(b)).trim().to_string();
    if t.len() <= 200 {
        return t;
    }
    let mut k = 200;
    while !t.is_char_boundary(k) {
        k -= 1;
    }
    t[..k].to_string()
}

/// The length of a literal announced at the end of `line` (`{n}`, `{n+}`, `~{n}` before CRLF).
pub fn literal_len(line: &[u8]) -> Option<u64> {
    let line = line.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.strip_suffix(b"}")?;
    let line = line.strip_suffix(b"+").unwrap_or(line);
    let open = line.iter().rposition(|&b| b == b'{')?;
    let digits = &line[open + 1..];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // Too many digits for a u64: too large for any limit anyway.
    Some(
        std::str::from_utf8(digits)
            .ok()?
            .parse()
            .unwrap_or(u64::MAX),
    )
}
