//! The one place that speaks IMAP: TLS/STARTTLS connections with timeouts, login, a pool of
//! sessions each holding its EXAMINEd folder, tolerant parsing of raw FETCH responses, and
//! [`ImapStore`], the [`MailStore`](crate::store::MailStore) the filesystem runs on.
//!
//! CONTRACT (used by main and the core; keep these signatures): [`ServerConfig`], [`Security`],
//! [`ImapStore::connect`], `impl MailStore for ImapStore`, [`ConnectError`].

use std::path::PathBuf;
use std::time::Duration;

use crate::secret::Secret;

mod browse;
mod connect;
#[cfg(test)]
mod fake;
mod items;
mod pool;
mod raw;
mod response;
mod session;
mod store;
#[cfg(test)]
mod tests;
mod uidset;

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
