//! OAuth2 login: `AUTHENTICATE OAUTHBEARER` (RFC 7628) or Google's and Microsoft's `XOAUTH2`,
//! whichever the server offers (OAUTHBEARER first), with SASL-IR when offered. A refused token
//! is answered as the mechanism wants (the server's error challenge gets the dummy reply), then
//! the token command runs once more and the login is tried again. The token is never logged
//! nor put in an error.

use super::caps::{base64, Caps};
use super::connect::{addr, ConnectFailure, FailKind};
use super::login::{cancel_exchange, login_wire_failure, who};
use super::wire::{self, Status, Tally, Transport, Wire, WireError};
use super::ServerConfig;
use crate::mime::header::base64_strict;
use crate::token::{Token, TokenSource};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mech {
    OAuthBearer,
    XOAuth2,
}

impl Mech {
    pub(super) fn choose(caps: &Caps) -> Option<Mech> {
        if caps.has("AUTH=OAUTHBEARER") {
            Some(Mech::OAuthBearer)
        } else if caps.has("AUTH=XOAUTH2") {
            Some(Mech::XOAuth2)
        } else {
            None
        }
    }

    fn name(self) -> &'static str {
        match self {
            Mech::OAuthBearer => "OAUTHBEARER",
            Mech::XOAuth2 => "XOAUTH2",
        }
    }

    /// The client's first message (before base64).
    pub(super) fn initial(self, user: &str, host: &str, port: u16, token: &str) -> Vec<u8> {
        match self {
            // gs2 header with the authzid (RFC 5801 saslname: `,` and `=` escaped), then
            // ^A-separated key=value pairs, ended by ^A^A.
            Mech::OAuthBearer => format!(
                "n,a={},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01",
                user.replace('=', "=3D").replace(',', "=2C")
            ),
            Mech::XOAuth2 => format!("user={user}\x01auth=Bearer {token}\x01\x01"),
        }
        .into_bytes()
    }

    /// The answer to the server's error challenge (RFC 7628 §3.2.3: `^A`; XOAUTH2: empty).
    fn dummy(self) -> &'static [u8] {
        match self {
            Mech::OAuthBearer => b"\x01",
            Mech::XOAuth2 => b"",
        }
    }
}

/// Log in with a token from `src`: once with the kept token, and once more with a new one if
/// the server says NO (an expired token). The tagged status and text of the last attempt.
pub(super) fn authenticate(
    cfg: &ServerConfig,
    src: &TokenSource,
    wire: &mut Wire<super::connect::Stream>,
    caps: &Caps,
    on_untagged: &mut dyn FnMut(Vec<u8>) -> Result<(), WireError>,
) -> Result<(Status, String), ConnectFailure> {
    let Some(mech) = Mech::choose(caps) else {
        return Err(ConnectFailure::new(
            FailKind::Setup,
            format!(
                "cannot log in as {} with OAuth2: the server offers neither AUTH=OAUTHBEARER nor AUTH=XOAUTH2",
                who(cfg)
            ),
        ));
    };
    let token_failure = |e: String| ConnectFailure::new(FailKind::Auth, e);
    let token = src.get().map_err(token_failure)?;
    let first = attempt(cfg, mech, &token, wire, caps, on_untagged)?;
    if first.0 != Status::No || super::connect::is_limit(&first.1) {
        return Ok(first);
    }
    log::info!(
        "{} refused the OAuth2 token for {} ({}): running the token command again",
        addr(cfg),
        cfg.user,
        first.1
    );
    let token = src.renew(&token).map_err(token_failure)?;
    attempt(cfg, mech, &token, wire, caps, on_untagged)
}

fn attempt(
    cfg: &ServerConfig,
    mech: Mech,
    token: &Token,
    wire: &mut Wire<super::connect::Stream>,
    caps: &Caps,
    on_untagged: &mut dyn FnMut(Vec<u8>) -> Result<(), WireError>,
) -> Result<(Status, String), ConnectFailure> {
    log::debug!(
        "AUTHENTICATE {} {} (token not shown) at {}",
        mech.name(),
        cfg.user,
        addr(cfg)
    );
    let payload = mech.initial(&cfg.user, &cfg.host, cfg.port, token.secret.expose());
    exchange(wire, mech, &payload, caps.has("SASL-IR"), on_untagged)
        .map_err(|e| login_wire_failure(cfg, e))
}

/// One AUTHENTICATE: the initial response on the command line (SASL-IR) or after the server's
/// `+`; an error challenge is answered with the mechanism's dummy reply, and its `status` is
/// added to the text of the tagged NO that follows.
pub(super) fn exchange<T: Transport>(
    wire: &mut Wire<T>,
    mech: Mech,
    payload: &[u8],
    sasl_ir: bool,
    on_untagged: &mut dyn FnMut(Vec<u8>) -> Result<(), WireError>,
) -> Result<(Status, String), WireError> {
    let encoded = base64(payload);
    let tag = wire.new_tag();
    let mut tally = Tally::default();
    let lim = &wire::CONTROL;
    let name = mech.name();
    if sasl_ir {
        wire.send(format!("{tag} AUTHENTICATE {name} {encoded}\r\n").as_bytes())?;
    } else {
        wire.send(format!("{tag} AUTHENTICATE {name}\r\n").as_bytes())?;
        wire.io.clock().begin_default();
        if let Err(done) = wire.await_challenge(&tag, lim, &mut tally, on_untagged)? {
            return Ok(done);
        }
        wire.send(format!("{encoded}\r\n").as_bytes())?;
    }
    wire.io.clock().begin_default();
    let challenge = match wire.await_challenge(&tag, lim, &mut tally, on_untagged)? {
        Err(done) => return Ok(done),
        Ok(c) => c,
    };
    let reason = error_status(&challenge);
    wire.send(format!("{}\r\n", base64(mech.dummy())).as_bytes())?;
    wire.io.clock().begin_default();
    let (status, text) = match wire.await_challenge(&tag, lim, &mut tally, on_untagged)? {
        Err(done) => done,
        Ok(_) => cancel_exchange(wire, &tag, &mut tally, on_untagged)?,
    };
    Ok(match reason {
        Some(r) if status != Status::Ok => (status, format!("{text} (token refused: {r})")),
        _ => (status, text),
    })
}

/// The `status` of an RFC 7628 error challenge (base64 JSON such as
/// `{"status":"invalid_token","scope":"..."}`), if it has one: short and printable only.
fn error_status(challenge: &[u8]) -> Option<String> {
    let json = base64_strict(std::str::from_utf8(challenge).ok()?)?;
    let text = String::from_utf8_lossy(&json);
    let after = &text[text.find("\"status\"")? + 8..];
    let after = after.trim_start().strip_prefix(':')?.trim_start();
    let value = after.strip_prefix('"')?;
    let value = &value[..value.find('"')?];
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    ok.then(|| value.to_string())
}

#[cfg(test)]
#[path = "oauth_tests.rs"]
mod tests;
