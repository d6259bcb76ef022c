//! imapfs: a read-only FUSE view of an IMAP account.
//!
//! Layers, each in its own module:
//! - [`imap`]: the one place that speaks IMAP (connections, pool, raw FETCH parsing).
//! - [`mime`]: BODYSTRUCTURE interpretation, section numbering, transfer decodings, sizes.
//! - [`cache`]: the byte-bounded LRU of decoded content chunks.
//! - [`fs`]: the filesystem core (inodes, directories, reads), testable without a kernel.
//! - [`fuse`]: the thin adapter from fuser's callbacks onto the core.
//! - [`names`]: folder-name decoding (modified UTF-7) and escaping into path components.

#![deny(clippy::undocumented_unsafe_blocks)]

pub mod autounmount;
pub mod cache;
pub mod cli;
pub mod fs;
pub mod fuse;
pub mod imap;
pub mod logging;
pub mod mime;
pub mod mount;
pub mod mountopts;
pub mod names;
pub mod notify;
pub mod parallel;
pub mod password;
pub mod search;
pub mod secret;
pub mod store;
pub mod sync;
pub mod token;
