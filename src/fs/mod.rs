//! The filesystem core: folders, message directories and part files over a [`MailStore`],
//! with no kernel involved, so it can be tested directly (see `fake` for the in-memory store).
//!
//! [`MailStore`]: crate::store::MailStore

mod content;
mod core;
mod dirsnap;
#[cfg(test)]
pub(crate) mod fake;
mod folders;
mod inflight;
mod inodes;
pub mod layout;
mod message;
mod permits;
mod readahead;

pub use self::core::{release_free_memory, FsOptions, MailFs, StatFs, MAX_MESSAGE_INFOS};

use crate::store::StoreError;

/// Decoded content is cached and fetched in chunks of this many bytes.
pub const CHUNK: u64 = 128 * 1024;

/// Why an operation failed, as the kernel will be told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FsError {
    #[error("no such file or directory")]
    NotFound,
    #[error("not a directory")]
    NotDir,
    #[error("is a directory")]
    IsDir,
    #[error("stale: the folder's UIDVALIDITY changed")]
    Stale,
    #[error("I/O error: {0}")]
    Io(String),
    /// Not offered by this filesystem at all (an extended attribute namespace).
    #[error("operation not supported")]
    NotSupported,
    /// A change on a read-only mount (the default).
    #[error("read-only file system")]
    ReadOnly,
    /// A change this node or the server does not allow (logged where it is refused).
    #[error("operation not permitted")]
    NotPermitted,
    /// Writing to a file that cannot change (message content).
    #[error("permission denied")]
    Denied,
    #[error("invalid argument: {0}")]
    Invalid(String),
    #[error("directory not empty")]
    NotEmpty,
    #[error("file exists")]
    Exists,
    /// CONDSTORE: someone else changed it meanwhile; look again and retry.
    #[error("changed meanwhile, try again")]
    Again,
    #[error("file too large")]
    TooBig,
}

impl FsError {
    pub fn errno(&self) -> i32 {
        match self {
            FsError::NotFound => libc::ENOENT,
            FsError::NotDir => libc::ENOTDIR,
            FsError::IsDir => libc::EISDIR,
            FsError::Stale => libc::ESTALE,
            FsError::Io(_) => libc::EIO,
            FsError::NotSupported => libc::EOPNOTSUPP,
            FsError::ReadOnly => libc::EROFS,
            FsError::NotPermitted => libc::EPERM,
            FsError::Denied => libc::EACCES,
            FsError::Invalid(_) => libc::EINVAL,
            FsError::NotEmpty => libc::ENOTEMPTY,
            FsError::Exists => libc::EEXIST,
            FsError::Again => libc::EAGAIN,
            FsError::TooBig => libc::EFBIG,
        }
    }
}

impl From<StoreError> for FsError {
    fn from(e: StoreError) -> FsError {
        match e {
            StoreError::NoSuchFolder(_) => FsError::NotFound,
            StoreError::UidValidityChanged(_) => FsError::Stale,
            StoreError::NotPermitted(m) => {
                log::warn!("refused: {m}");
                FsError::NotPermitted
            }
            StoreError::AlreadyExists(_) => FsError::Exists,
            StoreError::TooBig(m) => {
                log::warn!("refused: {m}");
                FsError::TooBig
            }
            other => FsError::Io(other.to_string()),
        }
    }
}

pub type FsResult<T> = Result<T, FsError>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink,
}

/// What `stat` shows for a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attr {
    pub ino: u64,
    pub kind: Kind,
    pub size: u64,
    /// Seconds since the Unix epoch.
    pub mtime: i64,
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
}

/// How long the kernel may trust an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ttl {
    /// Immutable: message directories and files (content under UIDVALIDITY+UID never changes).
    Long,
    /// Changes with the mailbox: the root and folder directories.
    Short,
    /// Changes at any time, so never cached: FLAGS, INDEX, FOLDERS.
    Live,
}

/// Something the kernel caches that is no longer true. Sent from the core, carried out by a
/// thread outside request handlers (notifying from inside one can deadlock).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invalidation {
    /// The name no longer exists in directory `parent`.
    Entry { parent: u64, name: String },
    /// The inode's attributes and cached data (for a directory: its listing) are out of date.
    Inode(u64),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub ino: u64,
    pub kind: Kind,
    pub name: String,
}

#[cfg(test)]
mod browse_tests;
#[cfg(test)]
mod desktop_tests;
#[cfg(test)]
mod search_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod write_tests;
