//! `-o auto_unmount`: a small child process whose only job is to detach the mount if imapfs dies
//! without unmounting (even by SIGKILL), as fusermount3's auto_unmount does. fuser offers
//! AutoUnmount only with allow_other/allow_root; this works for the mounting user alone.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::mount::{detach_stdio, fork_with_pipe, lazy_unmount, mount_at, Side};

/// Our end of the pipe to the watcher: it sees EOF when this process is gone.
pub struct Watcher(File);

impl Watcher {
    /// Tell the watcher which mount is ours (its mountinfo ID), so that it never detaches a
    /// later mount at the same place.
    pub fn mounted(&mut self, mountpoint: &Path) {
        if let Some(m) = mount_at(mountpoint) {
            let _ = writeln!(self.0, "{}", m.id);
        }
    }
}

/// Fork the watcher. Must run before any thread is started.
pub fn spawn(mountpoint: &Path) -> Result<Watcher, String> {
    let mountpoint = std::fs::canonicalize(mountpoint)
        .map_err(|e| format!("mountpoint {}: {e}", mountpoint.display()))?;
    match fork_with_pipe()? {
        (Side::Child, read, write) => {
            // SAFETY: signal dispositions, closing descriptors this process does not use, and
            // _exit: no memory is handed over.
            unsafe {
                // Only the parent's death may end this process: not ^C or a hangup meant for it.
                for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGUSR1] {
                    libc::signal(sig, libc::SIG_IGN);
                }
                let keep = read.as_raw_fd() as libc::c_uint;
                // Hold no other descriptor (the background pipe, a terminal, our own write end)
                // open: EOF must come when the parent dies.
                libc::syscall(libc::SYS_close_range, 3 as libc::c_uint, keep - 1, 0);
                libc::syscall(libc::SYS_close_range, keep + 1, libc::c_uint::MAX, 0);
                std::mem::forget(write); // already closed by close_range
                detach_stdio();
                watch(File::from(read), &mountpoint);
                libc::_exit(0)
            }
        }
        // Kept open (close-on-exec) for as long as this process lives.
        (Side::Parent, read, write) => {
            drop(read);
            Ok(Watcher(File::from(write)))
        }
    }
}

/// Wait for EOF (the parent is gone), then detach the mount if it is still the one announced.
fn watch(mut pipe: File, mountpoint: &Path) {
    let mut said = Vec::new();
    let mut buf = [0u8; 64];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => break,
            Ok(n) if said.len() < 64 => said.extend_from_slice(&buf[..n]),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let ours = std::str::from_utf8(&said)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    if ours.is_some() && mount_at(mountpoint).map(|m| m.id) == ours {
        let _ = lazy_unmount(mountpoint);
    }
}
