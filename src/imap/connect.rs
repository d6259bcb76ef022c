//! Opening one authenticated session: resolve, TCP connect with a timeout, socket timeouts,
//! STARTTLS by hand or implicit TLS (native-tls, extra CA certificates, `--insecure`), greeting,
//! LOGIN. Every failure is one clear line that never holds the password.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc;
use std::time::Duration;

use native_tls::{Certificate, HandshakeError, TlsConnector};

use super::raw::SharedStream;
use super::{Security, ServerConfig};

/// The one stream type of every session, STARTTLS or implicit TLS.
pub type Stream = native_tls::TlsStream<TcpStream>;
pub type ImapSession = imap::Session<SharedStream>;

/// What kind of connect failure, so the pool can decide to retry, shrink or give up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailKind {
    /// Resolve, connect, timeouts, dropped connections: worth a retry.
    Network,
    /// Certificate or TLS trouble, missing STARTTLS, unreadable CA file: retrying won't help.
    Setup,
    /// Wrong user or password.
    Auth,
    /// The server refuses more connections (`[LIMIT]`, "Maximum number of connections").
    Limit,
}

#[derive(Clone, Debug)]
pub struct ConnectFailure {
    pub kind: FailKind,
    pub msg: String,
}

impl ConnectFailure {
    fn new(kind: FailKind, msg: impl Into<String>) -> ConnectFailure {
        ConnectFailure {
            kind,
            msg: msg.into(),
        }
    }
}

/// Connect, secure (with `tls`, from [`connector`]) and log in one session; also returns a
/// handle on its stream for the raw FETCH reader.
pub fn open(
    cfg: &ServerConfig,
    tls: &TlsConnector,
) -> Result<(ImapSession, SharedStream), ConnectFailure> {
    let tcp = tcp_connect(cfg)?;
    let tls = match cfg.security {
        Security::ImplicitTls => tls_wrap(cfg, tls, tcp)?,
        Security::StartTls => {
            let mut tcp = tcp;
            starttls(cfg, &mut tcp)?;
            tls_wrap(cfg, tls, tcp)?
        }
    };
    let shared = SharedStream::new(tls, cfg.timeout);
    let mut client = imap::Client::new(shared.clone());
    match cfg.security {
        Security::ImplicitTls => {
            let greeting = client
                .read_greeting()
                .map_err(|e| network(cfg, "reading the greeting", &e))?;
            check_greeting(cfg, &greeting)?;
        }
        // The greeting was read on the plain connection; the TLS layer starts silent.
        Security::StartTls => client.greeting_read = true,
    }
    log::debug!("LOGIN {} (password not shown) at {}", cfg.user, addr(cfg));
    match client.login(&cfg.user, cfg.password.expose()) {
        Ok(s) => Ok((s, shared)),
        Err((e, _client)) => Err(login_failure(cfg, e)),
    }
}

fn addr(cfg: &ServerConfig) -> String {
    if cfg.host.contains(':') {
        format!("[{}]:{}", cfg.host, cfg.port)
    } else {
        format!("{}:{}", cfg.host, cfg.port)
    }
}

/// An io::Error's text without the " (os error 111)" tail.
fn io_text(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(k) => s[..k].to_string(),
        None => s,
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

fn resolve(cfg: &ServerConfig) -> Result<Vec<SocketAddr>, ConnectFailure> {
    // getaddrinfo cannot be interrupted: resolve on a helper thread and stop waiting after the
    // timeout (an IP literal resolves immediately).
    let (tx, rx) = mpsc::channel();
    let host = cfg.host.clone();
    let port = cfg.port;
    std::thread::Builder::new()
        .name("imap-resolve".into())
        .spawn(move || {
            let _ = tx.send((host.as_str(), port).to_socket_addrs().map(|a| a.collect()));
        })
        .map_err(|e| {
            ConnectFailure::new(
                FailKind::Network,
                format!("cannot resolve host {}: {}", cfg.host, io_text(&e)),
            )
        })?;
    match rx.recv_timeout(cfg.timeout) {
        Ok(Ok(addrs)) => {
            let addrs: Vec<SocketAddr> = addrs;
            if addrs.is_empty() {
                Err(ConnectFailure::new(
                    FailKind::Network,
                    format!("cannot resolve host {}: no addresses", cfg.host),
                ))
            } else {
                Ok(addrs)
            }
        }
        Ok(Err(e)) => Err(ConnectFailure::new(
            FailKind::Network,
            format!("cannot resolve host {}: {}", cfg.host, io_text(&e)),
        )),
        Err(_) => Err(ConnectFailure::new(
            FailKind::Network,
            format!(
                "timed out resolving host {} after {}",
                cfg.host,
                secs(cfg.timeout)
            ),
        )),
    }
}

fn tcp_connect(cfg: &ServerConfig) -> Result<TcpStream, ConnectFailure> {
    let addrs = resolve(cfg)?;
    let mut last: Option<io::Error> = None;
    for a in &addrs {
        match TcpStream::connect_timeout(a, cfg.timeout) {
            Ok(s) => {
                let setup = s
                    .set_read_timeout(Some(cfg.timeout))
                    .and_then(|_| s.set_write_timeout(Some(cfg.timeout)));
                if let Err(e) = setup {
                    last = Some(e);
                    continue;
                }
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    let e = last.unwrap_or_else(|| io::Error::other("no address"));
    let msg = if is_timeout(&e) {
        format!(
            "timed out connecting to {} after {}",
            addr(cfg),
            secs(cfg.timeout)
        )
    } else {
        format!("cannot connect to {}: {}", addr(cfg), io_text(&e))
    };
    Err(ConnectFailure::new(FailKind::Network, msg))
}

/// One line (up to LF) read byte by byte, so nothing past it is consumed before the TLS layer.
fn read_line(s: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        if s.read(&mut b)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed by the server",
            ));
        }
        line.push(b[0]);
        if b[0] == b'\n' {
            return Ok(line);
        }
        if line.len() > 64 * 1024 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "response line too long",
            ));
        }
    }
}

fn line_text(l: &[u8]) -> String {
    String::from_utf8_lossy(l).trim_end().to_string()
}

/// Read lines up to the one tagged `tag`; returns (untagged lines, tagged line).
fn read_tagged(s: &mut TcpStream, tag: &str) -> io::Result<(Vec<Vec<u8>>, Vec<u8>)> {
    let mut untagged = Vec::new();
    loop {
        let l = read_line(s)?;
        if l.starts_with(tag.as_bytes()) && l.get(tag.len()) == Some(&b' ') {
            return Ok((untagged, l));
        }
        if untagged.len() > 1000 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "too many response lines",
            ));
        }
        untagged.push(l);
    }
}

fn check_greeting(cfg: &ServerConfig, g: &[u8]) -> Result<(), ConnectFailure> {
    let up = g.to_ascii_uppercase();
    if up.starts_with(b"* OK") {
        Ok(())
    } else if up.starts_with(b"* PREAUTH") {
        Err(ConnectFailure::new(
            FailKind::Setup,
            format!(
                "server {} pre-authenticated the connection; not supported",
                addr(cfg)
            ),
        ))
    } else if up.starts_with(b"* BYE") {
        let t = line_text(g);
        let kind = if is_limit(&t) {
            FailKind::Limit
        } else {
            FailKind::Network
        };
        Err(ConnectFailure::new(
            kind,
            format!("server {} refused the connection: {}", addr(cfg), t),
        ))
    } else {
        Err(ConnectFailure::new(
            FailKind::Setup,
            format!(
                "server {} does not speak IMAP (greeting: {:.80})",
                addr(cfg),
                line_text(g)
            ),
        ))
    }
}

/// Greeting, CAPABILITY, STARTTLS on the plain socket; fails (before any password is sent)
/// unless the server offers STARTTLS and accepts it.
fn starttls(cfg: &ServerConfig, s: &mut TcpStream) -> Result<(), ConnectFailure> {
    let io_fail = |what: &str, e: io::Error| {
        if is_timeout(&e) {
            ConnectFailure::new(
                FailKind::Network,
                format!("timed out {} from {}", what, addr(cfg)),
            )
        } else {
            ConnectFailure::new(
                FailKind::Network,
                format!("{} from {} failed: {}", what, addr(cfg), io_text(&e)),
            )
        }
    };
    let g = read_line(s).map_err(|e| io_fail("reading the greeting", e))?;
    check_greeting(cfg, &g)?;

    s.write_all(b"s1 CAPABILITY\r\n")
        .map_err(|e| io_fail("sending CAPABILITY", e))?;
    let (lines, done) = read_tagged(s, "s1").map_err(|e| io_fail("reading CAPABILITY", e))?;
    let has_starttls = lines.iter().any(|l| {
        let up = String::from_utf8_lossy(l).to_ascii_uppercase();
        up.starts_with("* CAPABILITY") && up.split_ascii_whitespace().any(|w| w == "STARTTLS")
    });
    if !done.to_ascii_uppercase().starts_with(b"S1 OK") || !has_starttls {
        return Err(ConnectFailure::new(
            FailKind::Setup,
            format!(
                "server {} does not offer STARTTLS; refusing to send the password",
                addr(cfg)
            ),
        ));
    }
    s.write_all(b"s2 STARTTLS\r\n")
        .map_err(|e| io_fail("sending STARTTLS", e))?;
    let (_, done) = read_tagged(s, "s2").map_err(|e| io_fail("reading the STARTTLS answer", e))?;
    if !done.to_ascii_uppercase().starts_with(b"S2 OK") {
        return Err(ConnectFailure::new(
            FailKind::Setup,
            format!(
                "server {} refused STARTTLS ({}); refusing to send the password",
                addr(cfg),
                line_text(&done)
            ),
        ));
    }
    Ok(())
}

/// The TLS settings for every connection: the system's roots plus `ca_file`, or no checks with
/// `insecure`. Building one loads the system roots (~100 ms): build it once.
pub fn connector(cfg: &ServerConfig) -> Result<TlsConnector, ConnectFailure> {
    let mut b = TlsConnector::builder();
    if let Some(path) = &cfg.ca_file {
        let pem = std::fs::read(path).map_err(|e| {
            ConnectFailure::new(
                FailKind::Setup,
                format!("cannot read CA file {}: {}", path.display(), io_text(&e)),
            )
        })?;
        let certs = Certificate::stack_from_pem(&pem).map_err(|e| {
            ConnectFailure::new(
                FailKind::Setup,
                format!("cannot parse CA file {}: {}", path.display(), e),
            )
        })?;
        if certs.is_empty() {
            return Err(ConnectFailure::new(
                FailKind::Setup,
                format!("no PEM certificate found in CA file {}", path.display()),
            ));
        }
        for c in certs {
            b.add_root_certificate(c);
        }
    }
    if cfg.insecure {
        b.danger_accept_invalid_certs(true);
        b.danger_accept_invalid_hostnames(true);
    }
    b.build()
        .map_err(|e| ConnectFailure::new(FailKind::Setup, format!("cannot set up TLS: {e}")))
}

fn tls_wrap(
    cfg: &ServerConfig,
    conn: &TlsConnector,
    tcp: TcpStream,
) -> Result<Stream, ConnectFailure> {
    match conn.connect(&cfg.host, tcp) {
        Ok(s) => Ok(s),
        Err(HandshakeError::WouldBlock(_)) => Err(ConnectFailure::new(
            FailKind::Network,
            format!("timed out in the TLS handshake with {}", addr(cfg)),
        )),
        Err(HandshakeError::Failure(e)) => {
            let text = e.to_string();
            let hint = if text.contains("certificate") || text.contains("verify") {
                " (trust the server's CA with --ca-file, or skip verification with --insecure)"
            } else if text.contains("wrong version number") {
                " (is this a plain IMAP port? use STARTTLS there)"
            } else {
                ""
            };
            Err(ConnectFailure::new(
                FailKind::Setup,
                format!("TLS handshake with {} failed: {}{}", cfg.host, text, hint),
            ))
        }
    }
}

/// Does a server message say "too many connections"?
pub fn is_limit(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("[limit]")
        || t.contains("too many")
        || t.contains("maximum number of connections")
        || t.contains("max_userip_connections")
}

fn network(cfg: &ServerConfig, what: &str, e: &imap::Error) -> ConnectFailure {
    let msg = match e {
        imap::Error::Io(io) if is_timeout(io) => {
            format!("timed out {} from {}", what, addr(cfg))
        }
        imap::Error::Io(io) => format!("{} from {} failed: {}", what, addr(cfg), io_text(io)),
        imap::Error::ConnectionLost => {
            format!("{} from {} failed: connection closed", what, addr(cfg))
        }
        other => format!("{} from {} failed: {}", what, addr(cfg), other),
    };
    ConnectFailure::new(FailKind::Network, msg)
}

fn login_failure(cfg: &ServerConfig, e: imap::Error) -> ConnectFailure {
    let who = format!("{}@{}", cfg.user, cfg.host);
    match e {
        imap::Error::No(n) => {
            let kind = if is_limit(&n.information) {
                FailKind::Limit
            } else {
                FailKind::Auth
            };
            ConnectFailure::new(
                kind,
                format!("login failed for {}: {}", who, n.information.trim()),
            )
        }
        imap::Error::Bad(b) => ConnectFailure::new(
            FailKind::Auth,
            format!("login failed for {}: {}", who, b.information.trim()),
        ),
        imap::Error::Bye(b) => {
            let kind = if is_limit(&b.information) {
                FailKind::Limit
            } else {
                FailKind::Network
            };
            ConnectFailure::new(
                kind,
                format!(
                    "login failed for {}: server closed the connection: {}",
                    who,
                    b.information.trim()
                ),
            )
        }
        imap::Error::Validate(v) => ConnectFailure::new(
            FailKind::Setup,
            // The validation error names the argument and character, never its value.
            format!("cannot log in as {}: {}", who, v),
        ),
        other => {
            let mut f = network(cfg, "logging in", &other);
            f.msg = format!("login failed for {}: {}", who, f.msg);
            f
        }
    }
}
