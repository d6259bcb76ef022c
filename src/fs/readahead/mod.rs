//! Read-ahead, in one place: what to fetch before it is asked for, and the workers that fetch
//! it. Three policies, each pure and unit-tested; the core runs the jobs they name
//! (`core/ahead.rs`).
//! - [`sequential`]: a window beyond a sequential reader of one file, growing fourfold.
//! - [`across`]: a tool reading one file name through many messages (`grep x F/*/1`): the
//!   first chunk of that file of the next messages, in one batch.
//! - [`meta`]: a tool walking a folder's message directories (`find`, `ls -lR`, `du`): the
//!   structures and sizes of the next messages, in doubling windows.

mod across;
mod meta;
mod sequential;
mod workers;

pub use across::Walk;
pub use meta::{MetaAhead, MetaWalk};
pub use sequential::ReadState;
pub use workers::{Background, ReadAhead, Workers};
