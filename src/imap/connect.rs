//! Opening one authenticated session: resolve, TCP connect with a timeout, STARTTLS or implicit
//! TLS (native-tls, extra CA certificates, `--insecure`), greeting, CAPABILITY, LOGIN or
//! AUTHENTICATE PLAIN, CAPABILITY again. Everything is read by [`Wire`] under a deadline, and the
//! whole setup ends within about three times the timeout. Every failure is one clear line that
//! never holds the password; a failed TLS handshake, or an `imap://` port that stays quiet, is
//! looked into by [`diagnose`] (certificate names, plain or TLS port) within that time.

use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use native_tls::{Certificate, HandshakeError, TlsConnector};

use super::caps::Caps;
use super::clock;
use super::diagnose;
use super::login;
use super::wire::{self, Clocked, Cmd, Frame, Status, Tally, Transport, Wire, WireError};
use super::{Security, ServerConfig};

/// The one stream type of every session, STARTTLS or implicit TLS.
pub type Stream = native_tls::TlsStream<Clocked<TcpStream>>;

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
    /// Closed (or reset) before the server sent a byte: how Courier refuses connections over
    /// its per-address limit; a limit when other connections work, else the server is down.
    Closed,
}

#[derive(Clone, Debug)]
pub struct ConnectFailure {
    pub kind: FailKind,
    pub msg: String,
}

impl ConnectFailure {
    pub(super) fn new(kind: FailKind, msg: impl Into<String>) -> ConnectFailure {
        ConnectFailure {
            kind,
            msg: msg.into(),
        }
    }
}

/// A logged-in connection and what its server offers (asked again after login).
pub struct Opened {
    pub wire: Wire<Stream>,
    pub caps: Caps,
}

/// Connect, secure (with `tls`, from [`connector`]) and log in one session, all by `hard` (the
/// resolver aside, which has its own timeout).
pub fn open(
    cfg: &ServerConfig,
    tls: &TlsConnector,
    hard: Instant,
) -> Result<Opened, ConnectFailure> {
    let (mut wire, caps) = secure(cfg, tls, hard).map_err(|e| match e {
        Unsecured::Failed(f) => f,
        Unsecured::Handshake(text) => diagnose::handshake_failure(cfg, &text, hard),
    })?;
    let caps = if caps.is_empty() {
        capability(&mut wire).map_err(|e| wire_failure(cfg, "reading CAPABILITY", &e))?
    } else {
        caps
    };
    wire.literal_plus = caps.has("LITERAL+");
    let caps = login::login(cfg, &mut wire, &caps)?;
    wire.literal_plus = caps.has("LITERAL+");
    wire.io.clock().set_hard_deadline(None);
    Ok(Opened { wire, caps })
}

/// Why [`secure`] failed.
pub(super) enum Unsecured {
    /// The TLS handshake failed (the TLS library's words, for [`diagnose`]).
    Handshake(String),
    Failed(ConnectFailure),
}

impl From<ConnectFailure> for Unsecured {
    fn from(f: ConnectFailure) -> Unsecured {
        Unsecured::Failed(f)
    }
}

/// Connect and start TLS with `tls` (at once, or after STARTTLS): the TLS session and the
/// capabilities the greeting named (none after STARTTLS).
pub(super) fn secure(
    cfg: &ServerConfig,
    tls: &TlsConnector,
    hard: Instant,
) -> Result<(Wire<Stream>, Caps), Unsecured> {
    let tcp = tcp_connect(cfg, hard)?;
    let mut clocked = Clocked::new(tcp, cfg.timeout);
    clocked.set_hard_deadline(Some(hard));
    match cfg.security {
        Security::ImplicitTls => {
            clocked.begin_default();
            let mut wire = Wire::new(tls_wrap(cfg, tls, clocked)?);
            let caps = greeting(cfg, &mut wire)?;
            Ok((wire, caps))
        }
        Security::StartTls => {
            let mut plain = Wire::new(clocked);
            // A TLS port says nothing and waits for a handshake: ask, rather than time out.
            let quiet = !plain
                .wait_readable(diagnose::GREETING_WAIT.min(cfg.timeout))
                .map_err(|e| wire_failure(cfg, "reading the greeting", &e))?;
            if quiet && diagnose::speaks_tls(cfg, hard) {
                return Err(diagnose::tls_port(cfg).into());
            }
            let caps = greeting(cfg, &mut plain)?;
            starttls(cfg, &mut plain, caps)?;
            if plain.buffered() > 0 {
                // Bytes after the OK would be taken as if they came over TLS.
                return Err(ConnectFailure::new(
                    FailKind::Setup,
                    format!(
                        "server {} sent data after accepting STARTTLS; refusing to send the password",
                        addr(cfg)
                    ),
                )
                .into());
            }
            let mut clocked = plain.into_inner();
            clocked.begin_default();
            // What was said before TLS is forgotten (RFC 3501 §6.2.1).
            Ok((Wire::new(tls_wrap(cfg, tls, clocked)?), Caps::default()))
        }
    }
}

/// Read the greeting: the capabilities it carries (often empty), or why it is refused.
fn greeting<T: Transport>(cfg: &ServerConfig, wire: &mut Wire<T>) -> Result<Caps, ConnectFailure> {
    wire.io.clock().begin_default();
    let frame = match wire.read_frame(&wire::CONTROL, &mut Tally::default()) {
        Ok(f) => f,
        Err(WireError::Bye(t)) => {
            let kind = if is_limit(&t) {
                FailKind::Limit
            } else {
                FailKind::Network
            };
            return Err(ConnectFailure::new(
                kind,
                format!("server {} refused the connection: * BYE {}", addr(cfg), t),
            ));
        }
        Err(WireError::Io(e)) if clock::closed_silently(&e) => return Err(closed(cfg)),
        Err(e) => return Err(wire_failure(cfg, "reading the greeting", &e)),
    };
    let line = match &frame {
        Frame::Untagged(d) => wire::text_of(d),
        Frame::Continue(d) => format!("+ {}", wire::text_of(d)),
        Frame::Tagged { tag, text, .. } => format!("{tag} {text}"),
    };
    let up = line.to_ascii_uppercase();
    if up.starts_with("* OK") {
        Ok(Caps::from_code(&line[4..]).unwrap_or_default())
    } else if up.starts_with("* PREAUTH") {
        Err(ConnectFailure::new(
            FailKind::Setup,
            format!(
                "server {} pre-authenticated the connection; not supported",
                addr(cfg)
            ),
        ))
    } else {
        Err(ConnectFailure::new(
            FailKind::Setup,
            format!(
                "server {} does not speak IMAP (greeting: {:.80})",
                addr(cfg),
                line
            ),
        ))
    }
}

/// CAPABILITY, on any connection.
pub fn capability<T: Transport>(wire: &mut Wire<T>) -> Result<Caps, WireError> {
    let mut caps = Caps::default();
    let out = wire.run(&[Cmd::text("CAPABILITY")], &wire::CONTROL, &mut |d| {
        if let Some(c) = Caps::from_untagged(&d) {
            caps = c;
        }
        Ok(())
    })?;
    // A server that refuses CAPABILITY is taken to offer nothing beyond IMAP4rev1.
    match out.first() {
        Some((Status::Ok, _)) => Ok(caps),
        _ => Ok(Caps::default()),
    }
}

/// STARTTLS on the plain connection; fails (before any password is sent) unless the server
/// offers STARTTLS and accepts it.
fn starttls(
    cfg: &ServerConfig,
    wire: &mut Wire<Clocked<TcpStream>>,
    caps: Caps,
) -> Result<(), ConnectFailure> {
    let caps = if caps.is_empty() {
        capability(wire).map_err(|e| wire_failure(cfg, "reading CAPABILITY", &e))?
    } else {
        caps
    };
    if !caps.has("STARTTLS") {
        return Err(ConnectFailure::new(
            FailKind::Setup,
            format!(
                "server {} does not offer STARTTLS; refusing to send the password",
                addr(cfg)
            ),
        ));
    }
    let out = wire
        .run(&[Cmd::text("STARTTLS")], &wire::CONTROL, &mut |_| Ok(()))
        .map_err(|e| wire_failure(cfg, "reading the STARTTLS answer", &e))?;
    match out.first() {
        Some((Status::Ok, _)) => Ok(()),
        Some((status, text)) => Err(ConnectFailure::new(
            FailKind::Setup,
            format!(
                "server {} refused STARTTLS ({} {}); refusing to send the password",
                addr(cfg),
                if *status == Status::No { "NO" } else { "BAD" },
                text
            ),
        )),
        None => Err(ConnectFailure::new(
            FailKind::Network,
            format!("no answer to STARTTLS from {}", addr(cfg)),
        )),
    }
}

/// A failure while reading or writing during setup.
pub(super) fn wire_failure(cfg: &ServerConfig, what: &str, e: &WireError) -> ConnectFailure {
    let msg = match e {
        e if e.is_timeout() => format!("timed out {} from {}", what, addr(cfg)),
        WireError::Io(io) if io.kind() == io::ErrorKind::UnexpectedEof => {
            format!("{} from {} failed: connection closed", what, addr(cfg))
        }
        WireError::Io(io) => format!("{} from {} failed: {}", what, addr(cfg), io_text(io)),
        other => format!("{} from {} failed: {}", what, addr(cfg), other),
    };
    ConnectFailure::new(FailKind::Network, msg)
}

pub(super) fn addr(cfg: &ServerConfig) -> String {
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

pub(super) fn tcp_connect(cfg: &ServerConfig, hard: Instant) -> Result<TcpStream, ConnectFailure> {
    let addrs = resolve(cfg)?;
    let mut last: Option<io::Error> = None;
    for a in &addrs {
        let left = hard.saturating_duration_since(Instant::now());
        if left.is_zero() {
            last = Some(io::Error::new(io::ErrorKind::TimedOut, "timed out"));
            break;
        }
        match TcpStream::connect_timeout(a, cfg.timeout.min(left)) {
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
    tcp: Clocked<TcpStream>,
) -> Result<Stream, Unsecured> {
    match conn.connect(&cfg.host, tcp) {
        Ok(s) => Ok(s),
        Err(HandshakeError::WouldBlock(_)) => Err(ConnectFailure::new(
            FailKind::Network,
            format!("timed out in the TLS handshake with {}", addr(cfg)),
        )
        .into()),
        Err(HandshakeError::Failure(e)) if clock::closed_silently(&e) => Err(closed(cfg).into()),
        Err(HandshakeError::Failure(e)) => Err(Unsecured::Handshake(e.to_string())),
    }
}

fn closed(cfg: &ServerConfig) -> ConnectFailure {
    ConnectFailure::new(
        FailKind::Closed,
        format!(
            "server {} closed the connection before its greeting (a limit on connections?)",
            addr(cfg)
        ),
    )
}

/// Does a server message say "too many connections"?
pub fn is_limit(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("[limit]")
        || t.contains("too many")
        || t.contains("maximum number of connections")
        || t.contains("max_userip_connections")
}
