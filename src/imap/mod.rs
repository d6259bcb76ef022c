//! The one place that speaks IMAP: TLS/STARTTLS connections with timeouts, login, a pool of
//! sessions each holding its EXAMINEd folder, tolerant parsing of raw FETCH responses, and
//! [`ImapStore`], the [`MailStore`](crate::store::MailStore) the filesystem runs on.
//!
//! Every byte a server sends is read by one piece of code, [`wire`] (framing, limits, a
//! deadline per command), and parsed by ours ([`parse`], [`response`], [`list`]). The `imap`
//! crate was used for setup, LIST, EXAMINE, STATUS, SEARCH and IDLE until it had to go: it buffers
//! a response without limit (a line that never ends, an endless LIST, exhausted memory in
//! seconds), knows no deadline per command (a dripping server hung syscalls), fails whole
//! answers on what RFC 3501 allows (unsolicited responses, 8-bit or literal mailbox names), and
//! shared the socket with our FETCH reader. Layers: `wire` (bytes → frames) → `parse`/`response`
//! /`list` (frames → values) → `session` (commands on one connection) → `pool` → `store`.
//!
//! CONTRACT (used by main and the core; keep these signatures): [`ServerConfig`], [`Security`],
//! [`ImapStore::connect`], `impl MailStore for ImapStore`, [`ConnectError`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::secret::Secret;
use crate::token::TokenSource;

mod bodystructure;
mod browse;
mod caps;
mod cert;
mod clock;
mod cmd;
mod connect;
mod diagnose;
#[cfg(test)]
mod fake;
#[cfg(test)]
mod hostile;
#[cfg(test)]
mod hostile_server;
mod items;
mod list;
mod login;
mod mapping;
mod oauth;
mod parse;
mod plan;
mod pool;
mod quota;
mod refresh;
mod response;
mod search;
mod session;
mod sexp;
mod store;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;
mod uidset;
mod wire;
mod wire_stream;
#[cfg(test)]
mod wire_tests;
mod write;
mod write_append;
mod write_move;

pub use store::ImapStore;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// imaps://: TLS from the first byte.
    ImplicitTls,
    /// imap://: STARTTLS, and no password is sent unless it succeeds.
    StartTls,
}

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Secret,
    /// Log in with OAuth2 access tokens from this source instead of the password.
    pub oauth2: Option<Arc<TokenSource>>,
    pub security: Security,
    /// Extra trusted CA certificates (PEM).
    pub ca_file: Option<PathBuf>,
    /// Skip certificate and hostname verification.
    pub insecure: bool,
    /// Connect, read and write timeout of every socket.
    pub timeout: Duration,
    /// Most connections the pool opens.
    pub connections: usize,
}

/// Why the first connection failed: one clear line, never holding the password.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConnectError(pub String);
