//! The one place that speaks IMAP: TLS/STARTTLS connections with timeouts, login, a pool of
//! sessions each holding its EXAMINEd folder, tolerant parsing of raw FETCH responses, and
//! [`ImapStore`], the [`MailStore`](crate::store::MailStore) the filesystem runs on.
//!
//! CONTRACT (used by main and the core; keep these signatures): [`ServerConfig`], [`Security`],
//! [`ImapStore::connect`], `impl MailStore for ImapStore`, [`ConnectError`].

use std::path::PathBuf;
use std::time::Duration;

use crate::secret::Secret;
use crate::store::{FolderEntry, FolderListing, MailStore, RangeRequest, Result, StructureData};

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

pub struct ImapStore {
    _private: (),
}

impl ImapStore {
    /// Connect and log in once, so that a wrong password, an unreachable host or a bad
    /// certificate is reported before mounting; the connection is kept in the pool.
    pub fn connect(cfg: ServerConfig) -> std::result::Result<ImapStore, ConnectError> {
        todo!("imap agent {cfg:?}")
    }
}

impl MailStore for ImapStore {
    fn list_folders(&self) -> Result<Vec<FolderEntry>> {
        todo!("imap agent")
    }

    fn list_messages(&self, folder: &str) -> Result<FolderListing> {
        todo!("imap agent {folder}")
    }

    fn fetch_structures(
        &self,
        folder: &str,
        uidvalidity: u32,
        uids: &[u32],
    ) -> Result<Vec<(u32, Result<StructureData>)>> {
        todo!("imap agent {folder} {uidvalidity} {uids:?}")
    }

    fn fetch_ranges(
        &self,
        folder: &str,
        uidvalidity: u32,
        reqs: &[RangeRequest],
    ) -> Result<Vec<Vec<u8>>> {
        todo!("imap agent {folder} {uidvalidity} {reqs:?}")
    }
}
