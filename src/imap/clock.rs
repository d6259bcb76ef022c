//! The clock under every connection: a socket wrapper that gives each answer a deadline (see
//! [`wire`](super::wire)) by setting the socket's read timeout to min(time left, timeout)
//! before each read. TLS runs on top of it, so the handshake is bounded the same way.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The least average transfer rate a command's answer must keep after its first byte.
pub const MIN_RATE: u64 = 64 * 1024;

/// A socket whose read timeout can be set.
pub trait SetTimeout {
    fn set_read_timeout(&self, d: Duration) -> io::Result<()>;
}

impl SetTimeout for TcpStream {
    fn set_read_timeout(&self, d: Duration) -> io::Result<()> {
        TcpStream::set_read_timeout(self, Some(d))
    }
}

/// The time allowed to the answer being read.
#[derive(Clone, Copy, Debug)]
struct Budget {
    /// The deadline before any byte arrived: start + allowance.
    base: Instant,
    /// Bytes received since the start.
    bytes: u64,
    /// Longest single read wait.
    cap: Duration,
    /// A deadline no amount of bytes extends (the whole login, say).
    hard: Option<Instant>,
}

impl Budget {
    fn deadline(&self) -> Instant {
        let d = self.base + Duration::from_secs_f64(self.bytes as f64 / MIN_RATE as f64);
        match self.hard {
            Some(h) => d.min(h),
            None => d,
        }
    }
}

/// A socket with a per-answer deadline (see the module docs); TLS runs on top of it, so the
/// handshake is bounded the same way.
#[derive(Debug)]
pub struct Clocked<S> {
    inner: S,
    /// The configured `--timeout`: the longest wait for one read.
    timeout: Duration,
    budget: Option<Budget>,
    /// A deadline for every answer while set (connection setup).
    hard: Option<Instant>,
    /// Bytes received over the connection's life.
    received: u64,
}

/// The error of a read that finds the connection closed (or reset) before the server sent a
/// single byte: some servers (Courier's couriertcpd at its per-address limit) refuse a
/// connection over their limit like that, without a word.
#[derive(Debug)]
pub struct ClosedSilently;

impl std::fmt::Display for ClosedSilently {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection closed by the server before it sent anything")
    }
}

impl std::error::Error for ClosedSilently {}

/// Is `e` (or what caused it) a [`ClosedSilently`]?
pub fn closed_silently(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            if io.get_ref().is_some_and(|i| i.is::<ClosedSilently>()) {
                return true;
            }
        }
        cur = e.source();
    }
    false
}

impl<S> Clocked<S> {
    pub fn new(inner: S, timeout: Duration) -> Clocked<S> {
        Clocked {
            inner,
            timeout,
            budget: None,
            hard: None,
            received: 0,
        }
    }

    /// Start the clock for one answer: the first byte within `allowance`, each read waiting at
    /// most `cap`.
    pub fn begin(&mut self, allowance: Duration, cap: Duration) {
        self.budget = Some(Budget {
            base: Instant::now() + allowance,
            bytes: 0,
            cap,
            hard: self.hard,
        });
    }

    /// Start the clock with the configured timeout.
    pub fn begin_default(&mut self) {
        self.begin(self.timeout, self.timeout);
    }

    /// Bound every answer (and the TLS handshake) by `at` until cleared.
    pub fn set_hard_deadline(&mut self, at: Option<Instant>) {
        self.hard = at;
        if let Some(b) = &mut self.budget {
            b.hard = at;
        }
    }
}

impl<S: Read + SetTimeout> Read for Clocked<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let wait = match &self.budget {
            None => self.timeout,
            Some(b) => {
                let now = Instant::now();
                let deadline = b.deadline();
                if now >= deadline {
                    // WouldBlock, as a socket timeout gives: TLS then reports an interrupted
                    // handshake, not a failed one.
                    return Err(io::Error::new(
                        io::ErrorKind::WouldBlock,
                        "the server did not answer in time",
                    ));
                }
                (deadline - now).min(b.cap)
            }
        };
        self.inner
            .set_read_timeout(wait.max(Duration::from_millis(1)))?;
        let n = match self.inner.read(buf) {
            Ok(0) if self.received == 0 && !buf.is_empty() => {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    ClosedSilently,
                ))
            }
            Err(e) if self.received == 0 && e.kind() == io::ErrorKind::ConnectionReset => {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    ClosedSilently,
                ))
            }
            r => r?,
        };
        self.received += n as u64;
        if let Some(b) = &mut self.budget {
            b.bytes += n as u64;
        }
        Ok(n)
    }
}

impl<S: Write> Write for Clocked<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A stream whose reads run on a [`Clocked`] socket.
pub trait Transport: Read + Write {
    fn clock(&mut self) -> &mut Clocked<TcpStream>;
}

impl Transport for Clocked<TcpStream> {
    fn clock(&mut self) -> &mut Clocked<TcpStream> {
        self
    }
}

impl Transport for native_tls::TlsStream<Clocked<TcpStream>> {
    fn clock(&mut self) -> &mut Clocked<TcpStream> {
        self.get_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A loopback server that accepts one connection, sends `say`, and closes it.
    fn closing_server(say: &'static [u8]) -> TcpStream {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            s.write_all(say).unwrap();
        });
        TcpStream::connect(addr).unwrap()
    }

    #[test]
    fn a_close_before_any_byte_is_told_apart() {
        let mut c = Clocked::new(closing_server(b""), Duration::from_secs(5));
        let e = c.read(&mut [0; 16]).unwrap_err();
        assert!(closed_silently(&e));
    }

    #[test]
    fn a_close_after_the_greeting_is_an_ordinary_end() {
        let mut c = Clocked::new(closing_server(b"* OK hi\r\n"), Duration::from_secs(5));
        let mut buf = [0; 64];
        let mut got = 0;
        loop {
            match c.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(&buf[..got], b"* OK hi\r\n");
    }

    #[test]
    fn a_tls_handshake_cut_before_any_byte_is_told_apart() {
        let tls = native_tls::TlsConnector::new().unwrap();
        let c = Clocked::new(closing_server(b""), Duration::from_secs(5));
        match tls.connect("localhost", c) {
            Err(native_tls::HandshakeError::Failure(e)) => assert!(closed_silently(&e), "{e}"),
            Err(native_tls::HandshakeError::WouldBlock(_)) => panic!("timed out"),
            Ok(_) => panic!("handshake succeeded"),
        }
    }
}
