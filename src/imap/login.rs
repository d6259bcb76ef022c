//! Logging in, over TLS only (the stream type allows nothing else): LOGIN with its arguments
//! quoted or as literals (non-ASCII passwords arrive intact), or AUTHENTICATE PLAIN (RFC 4616,
//! UTF-8) when the server says LOGINDISABLED, with SASL-IR when offered; or OAuth2
//! ([`oauth`]). The password is never logged nor put in an error.

use super::caps::{base64, Caps};
use super::connect::{addr, capability, is_limit, wire_failure, ConnectFailure, FailKind, Stream};
use super::oauth;
use super::wire::{self, Cmd, Status, Tally, Transport, Wire, WireError};
use super::ServerConfig;

/// Log in over TLS (the type allows nothing else): OAuth2 when a token command is given, else
/// LOGIN, or AUTHENTICATE PLAIN when the server disables LOGIN. Returns the capabilities after
/// login.
pub(super) fn login(
    cfg: &ServerConfig,
    wire: &mut Wire<Stream>,
    caps: &Caps,
) -> Result<Caps, ConnectFailure> {
    let mut after: Option<Caps> = None;
    let mut on_untagged = |d: Vec<u8>| {
        if let Some(c) = Caps::from_untagged(&d) {
            after = Some(c);
        }
        Ok(())
    };
    let (status, text) = match &cfg.oauth2 {
        Some(src) => oauth::authenticate(cfg, src, wire, caps, &mut on_untagged)?,
        None => password_login(cfg, wire, caps, &mut on_untagged)?,
    };
    if status != Status::Ok {
        let kind = if is_limit(&text) {
            FailKind::Limit
        } else {
            FailKind::Auth
        };
        return Err(ConnectFailure::new(
            kind,
            format!("login failed for {}: {}", who(cfg), text.trim()),
        ));
    }
    // Servers such as Cyrus name most of their capabilities only now.
    match Caps::from_code(&text).or(after) {
        Some(c) => Ok(c),
        None => {
            capability(wire).map_err(|e| wire_failure(cfg, "reading CAPABILITY after login", &e))
        }
    }
}

pub(super) fn who(cfg: &ServerConfig) -> String {
    format!("{}@{}", cfg.user, cfg.host)
}

/// LOGIN, or AUTHENTICATE PLAIN when the server disables LOGIN.
fn password_login(
    cfg: &ServerConfig,
    wire: &mut Wire<Stream>,
    caps: &Caps,
    on_untagged: &mut dyn FnMut(Vec<u8>) -> Result<(), WireError>,
) -> Result<(Status, String), ConnectFailure> {
    let user = cfg.user.as_bytes();
    let pass = cfg.password.expose().as_bytes();
    let result = if caps.has("LOGINDISABLED") {
        if !caps.has("AUTH=PLAIN") {
            return Err(ConnectFailure::new(
                FailKind::Setup,
                format!(
                    "cannot log in as {}: the server disables LOGIN and offers no AUTHENTICATE PLAIN",
                    who(cfg)
                ),
            ));
        }
        log::debug!(
            "AUTHENTICATE PLAIN {} (password not shown) at {}",
            cfg.user,
            addr(cfg)
        );
        authenticate_plain(wire, user, pass, caps.has("SASL-IR"), on_untagged)
    } else {
        log::debug!("LOGIN {} (password not shown) at {}", cfg.user, addr(cfg));
        let cmd = Cmd::text("LOGIN ")
            .string(user)
            .t(" ")
            .string_shown(pass, "***");
        wire.run(&[cmd], &wire::CONTROL, on_untagged)
            .map(|mut o| o.pop().unwrap_or((Status::Bad, String::new())))
    };
    result.map_err(|e| login_wire_failure(cfg, e))
}

/// A read or write failure while logging in (a `* BYE` may say "too many connections").
pub(super) fn login_wire_failure(cfg: &ServerConfig, e: WireError) -> ConnectFailure {
    match e {
        WireError::Bye(t) => {
            let kind = if is_limit(&t) {
                FailKind::Limit
            } else {
                FailKind::Network
            };
            ConnectFailure::new(
                kind,
                format!(
                    "login failed for {}: server closed the connection: {t}",
                    who(cfg)
                ),
            )
        }
        e => {
            let mut f = wire_failure(cfg, "logging in", &e);
            f.msg = format!("login failed for {}: {}", who(cfg), f.msg);
            f
        }
    }
}

/// AUTHENTICATE PLAIN (RFC 4616: UTF-8 `\0user\0password`), with the initial response on the
/// command line when the server offers SASL-IR, else after its `+`.
fn authenticate_plain<T: Transport>(
    wire: &mut Wire<T>,
    user: &[u8],
    pass: &[u8],
    sasl_ir: bool,
    on_untagged: &mut dyn FnMut(Vec<u8>) -> Result<(), WireError>,
) -> Result<(Status, String), WireError> {
    let mut payload = Vec::with_capacity(user.len() + pass.len() + 2);
    payload.push(0);
    payload.extend_from_slice(user);
    payload.push(0);
    payload.extend_from_slice(pass);
    let encoded = base64(&payload);
    let tag = wire.new_tag();
    let mut tally = Tally::default();
    if sasl_ir {
        wire.send(format!("{tag} AUTHENTICATE PLAIN {encoded}\r\n").as_bytes())?;
        wire.io.clock().begin_default();
    } else {
        wire.send(format!("{tag} AUTHENTICATE PLAIN\r\n").as_bytes())?;
        wire.io.clock().begin_default();
        if let Some(refused) = wire.await_continue(&tag, &wire::CONTROL, &mut tally, on_untagged)? {
            return Ok(refused);
        }
        wire.send(format!("{encoded}\r\n").as_bytes())?;
        wire.io.clock().begin_default();
    }
    match wire.await_continue(&tag, &wire::CONTROL, &mut tally, on_untagged)? {
        Some(done) => Ok(done),
        // A challenge PLAIN does not have.
        None => cancel_exchange(wire, &tag, &mut tally, on_untagged),
    }
}

/// Cancel a SASL exchange at an unexpected challenge (`*`): the server's answer, as a NO.
pub(super) fn cancel_exchange<T: Transport>(
    wire: &mut Wire<T>,
    tag: &str,
    tally: &mut Tally,
    on_untagged: &mut dyn FnMut(Vec<u8>) -> Result<(), WireError>,
) -> Result<(Status, String), WireError> {
    wire.send(b"*\r\n")?;
    wire.io.clock().begin_default();
    match wire.await_continue(tag, &wire::CONTROL, tally, on_untagged)? {
        Some((_, text)) => Ok((Status::No, text)),
        None => Err(WireError::Protocol("unexpected SASL challenge".into())),
    }
}
