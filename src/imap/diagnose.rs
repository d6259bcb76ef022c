//! Why TLS failed, in words a user can act on, found out within a few seconds after the
//! failure: a certificate for other names (which names, which host was asked), an untrusted or
//! expired certificate, a plain port reached with `imaps://`, a TLS port reached with `imap://`.
//! The extra connections look, and send no credentials.

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use native_tls::TlsConnector;

use super::cert::{self, CertInfo};
use super::connect::{addr, secure, tcp_connect, ConnectFailure, FailKind};
use super::{Security, ServerConfig};

/// How long an `imap://` connection waits for the greeting before asking whether the port
/// speaks TLS instead (the waiting goes on if it does not).
pub(super) const GREETING_WAIT: Duration = Duration::from_secs(1);

/// Longest one look may take.
const LOOK: Duration = Duration::from_secs(3);

fn look_until(cfg: &ServerConfig, hard: Instant) -> Instant {
    hard.min(Instant::now() + LOOK.min(cfg.timeout))
}

fn url(cfg: &ServerConfig, scheme: &str) -> String {
    format!("{scheme}://{}@{}", cfg.user, addr(cfg))
}

/// After a failed TLS handshake (`text`: the TLS library's words): what went wrong.
pub(super) fn handshake_failure(cfg: &ServerConfig, text: &str, hard: Instant) -> ConnectFailure {
    let setup = |msg: String| ConnectFailure::new(FailKind::Setup, msg);
    if !cfg.insecure {
        // A handshake that works without checks: the certificate was the trouble.
        if let Some(info) = peer_certificate(cfg, look_until(cfg, hard)) {
            return setup(certificate_problem(cfg, &info));
        }
    }
    if cfg.security == Security::ImplicitTls && greets_in_clear(cfg, look_until(cfg, hard)) {
        return setup(format!(
            "{} looks like a plain IMAP port (it greets in clear text, not with TLS): use {} (STARTTLS)",
            addr(cfg),
            url(cfg, "imap")
        ));
    }
    setup(format!(
        "TLS handshake with {} failed: {}",
        addr(cfg),
        reason(text)
    ))
}

/// The message for a certificate that works without checks.
fn certificate_problem(cfg: &ServerConfig, info: &CertInfo) -> String {
    let host = cfg.host.as_str();
    if !info.matches(host) {
        return format!(
            "the certificate of {} is for {}, not for {host}: use one of its names in the URL (or --insecure to skip the checks)",
            addr(cfg),
            info.names()
        );
    }
    let now = chrono::DateTime::from_timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64),
        0,
    )
    .map(|t| t.format("%Y%m%d%H%M%S").to_string());
    if let (Some(end), Some(now)) = (&info.not_after, now) {
        if *end < now {
            return format!(
                "the certificate of {} expired on {}-{}-{}",
                addr(cfg),
                &end[..4],
                &end[4..6],
                &end[6..8]
            );
        }
    }
    format!(
        "the certificate of {} (for {}, issued by {}) is not trusted: trust its CA with --ca-file (or skip the checks with --insecure)",
        addr(cfg),
        info.names(),
        info.issuer_cn.as_deref().unwrap_or("an unnamed issuer")
    )
}

/// TLS that checks nothing: only to look at what the server presents.
fn lax() -> Option<TlsConnector> {
    TlsConnector::builder()
        .danger_accept_invalid_certs(true)
        .danger_accept_invalid_hostnames(true)
        .build()
        .ok()
}

/// The server's certificate, from a second handshake that checks nothing.
fn peer_certificate(cfg: &ServerConfig, until: Instant) -> Option<CertInfo> {
    let (wire, _) = secure(cfg, &lax()?, until).ok()?;
    let der = wire.io.peer_certificate().ok()??.to_der().ok()?;
    cert::parse(&der)
}

/// Does the server greet in clear text (`* OK`, `* PREAUTH`, `* BYE`) as soon as one connects?
fn greets_in_clear(cfg: &ServerConfig, until: Instant) -> bool {
    let Some(mut tcp) = connect_by(cfg, until) else {
        return false;
    };
    // Every IMAP greeting begins with "* "; a TLS server says nothing first.
    let mut buf = [0u8; 2];
    let mut got = 0;
    while got < 2 {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || tcp.set_read_timeout(Some(left)).is_err() {
            return false;
        }
        match tcp.read(&mut buf[got..]) {
            Ok(0) | Err(_) => return false,
            Ok(n) => got += n,
        }
    }
    buf == *b"* "
}

/// Does the port answer a TLS handshake (an `imap://` URL for an `imaps://` port, whose server
/// waits for the client to speak first)?
pub(super) fn speaks_tls(cfg: &ServerConfig, hard: Instant) -> bool {
    let until = look_until(cfg, hard);
    let Some(tcp) = connect_by(cfg, until) else {
        return false;
    };
    let Some(lax) = lax() else {
        return false;
    };
    let left = until.saturating_duration_since(Instant::now());
    if left.is_zero() || tcp.set_read_timeout(Some(left)).is_err() {
        return false;
    }
    lax.connect(&cfg.host, tcp).is_ok()
}

/// The failure for an `imap://` URL that reached a TLS port.
pub(super) fn tls_port(cfg: &ServerConfig) -> ConnectFailure {
    ConnectFailure::new(
        FailKind::Setup,
        format!(
            "{} looks like a TLS port (no greeting, but it answers a TLS handshake): use {}",
            addr(cfg),
            url(cfg, "imaps")
        ),
    )
}

fn connect_by(cfg: &ServerConfig, until: Instant) -> Option<TcpStream> {
    tcp_connect(cfg, until).ok()
}

/// The reason in an OpenSSL error line (`error:0A00010B:SSL routines:func:REASON:file:line:`
/// and a verify result in parentheses), without the library's codes and source positions.
fn reason(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    let Some(rest) = line.strip_prefix("error:") else {
        return super::wire::text_of(line.as_bytes());
    };
    let fields: Vec<&str> = rest.splitn(5, ':').collect();
    let mut out = match fields.get(3) {
        Some(r) if !r.is_empty() => r.to_string(),
        _ => "the TLS library gave no reason".to_string(),
    };
    if let (Some(k), true) = (line.rfind(" ("), line.ends_with(')')) {
        out.push_str(&line[k..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_without_library_internals() {
        assert_eq!(
            reason("error:0A00010B:SSL routines:ssl3_get_record:wrong version number:../ssl/record/ssl3_record.c:350:"),
            "wrong version number"
        );
        assert_eq!(
            reason("error:0A000086:SSL routines:tls_post_process_server_certificate:certificate verify failed:../ssl/statem/statem_clnt.c:1889: (IP address mismatch)"),
            "certificate verify failed (IP address mismatch)"
        );
        assert_eq!(reason("connection reset\nmore"), "connection reset");
    }
}
