//! Mounting: fuser configuration from the command line, the session, clean unmount on
//! SIGINT/SIGTERM, and going to the background only once the mount is up.

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

/// Detach the mount at `path` even while it is busy (`umount2(MNT_DETACH)` as root, else
/// `fusermount3 -u -z`): processes inside keep what they hold, new ones no longer see it.
pub fn lazy_unmount(path: &Path) -> Result<(), String> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| format!("{}: NUL in path", path.display()))?;
    // SAFETY: umount2 with a valid NUL-terminated path; no memory is handed over.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
        return Ok(());
    }
    let mut last = String::new();
    for bin in ["fusermount3", "fusermount"] {
        match std::process::Command::new(bin)
            .args(["-u", "-z", "--"])
            .arg(path)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
        {
            Ok(s) if s.success() => return Ok(()),
            Ok(s) => last = format!("{bin} -u -z: {s}"),
            Err(e) => last = format!("{bin}: {e}"),
        }
    }
    Err(last)
}

/// Refuse a mountpoint that is missing, not a directory, a dead mount, or (unless `nonempty`)
/// not empty or already a mount point, with a clear message.
pub fn check_mountpoint(path: &Path, nonempty: bool) -> Result<(), String> {
    let shown = path.display();
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(format!("mountpoint {shown} is not a directory")),
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            return Err(format!(
                "mountpoint {shown} is a dead mount (its filesystem process is gone): run `fusermount3 -u {shown}` first"
            ))
        }
        Err(e) => return Err(format!("mountpoint {shown}: {e}")),
    }
    if nonempty {
        return Ok(());
    }
    if let Some(m) = mount_at(path) {
        return Err(format!(
            "mountpoint {shown} is already a mount point ({} {}); unmount it first, or mount over it with -o nonempty",
            m.fstype, m.source
        ));
    }
    let mut entries = std::fs::read_dir(path).map_err(|e| format!("mountpoint {shown}: {e}"))?;
    if entries.next().is_some() {
        return Err(format!(
            "mountpoint {shown} is not empty (its files would be hidden); use an empty directory, or -o nonempty"
        ));
    }
    Ok(())
}

/// One line of /proc/self/mountinfo.
#[derive(Debug, PartialEq, Eq)]
pub struct MountEntry {
    /// Unique while the mount exists (a new mount at the same place gets another).
    pub id: u64,
    pub fstype: String,
    pub source: String,
}

/// The topmost mount at `path`, from /proc/self/mountinfo.
pub fn mount_at(path: &Path) -> Option<MountEntry> {
    use std::os::unix::ffi::OsStrExt;
    // A dead FUSE mount cannot be resolved itself: resolve its parent.
    let want = std::fs::canonicalize(path)
        .or_else(|e| match (path.parent(), path.file_name()) {
            (Some(dir), Some(name)) => Ok(std::fs::canonicalize(dir)?.join(name)),
            _ => Err(e),
        })
        .ok()?;
    let info = std::fs::read("/proc/self/mountinfo").ok()?;
    let mut found = None;
    for line in info.split(|&b| b == b'\n') {
        let fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == b"-") else {
            continue;
        };
        if fields.len() < sep + 3 || fields.len() < 5 {
            continue;
        }
        if unescape_mountinfo(fields[4]) == want.as_os_str().as_bytes() {
            let text = |b: &[u8]| String::from_utf8_lossy(&unescape_mountinfo(b)).into_owned();
            found = Some(MountEntry {
                id: text(fields[0]).parse().ok()?,
                fstype: text(fields[sep + 1]),
                source: text(fields[sep + 2]),
            });
        }
    }
    found
}

/// mountinfo writes space, tab, newline and backslash as `\ooo` (octal).
fn unescape_mountinfo(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let oct = field
            .get(i + 1..i + 4)
            .filter(|o| o.iter().all(|c| (b'0'..=b'7').contains(c)));
        match oct {
            Some(o) if field[i] == b'\\' => {
                out.push(o.iter().fold(0u8, |n, c| n.wrapping_mul(8) + (c - b'0')));
                i += 4;
            }
            _ => {
                out.push(field[i]);
                i += 1;
            }
        }
    }
    out
}

/// The parent's half of going to the background: it waits for the child's word.
pub enum Daemon {
    /// We are the child: report to the parent through this pipe.
    Child(OwnedFd),
    /// Foreground: nobody to report to.
    Foreground,
}

/// Which side of [`fork_with_pipe`] this is.
pub(crate) enum Side {
    Parent,
    Child,
}

/// A close-on-exec pipe (read end, write end), then fork. Must run before any thread is started
/// (so the child may allocate and run ordinary code).
pub(crate) fn fork_with_pipe() -> Result<(Side, OwnedFd, OwnedFd), String> {
    let mut fds = [0; 2];
    // SAFETY: plain syscalls on fresh descriptors, each owned exactly once below; single-threaded
    // (documented precondition).
    unsafe {
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            return Err(format!("pipe: {}", std::io::Error::last_os_error()));
        }
        let (read, write) = (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]));
        match libc::fork() {
            -1 => Err(format!("fork: {}", std::io::Error::last_os_error())),
            0 => Ok((Side::Child, read, write)),
            _ => Ok((Side::Parent, read, write)),
        }
    }
}

/// Fork; the parent waits until the child reports success (exit 0) or an error line (printed,
/// exit 1), or dies (exit 1). Must run before any thread is started.
pub fn background() -> Result<Daemon, String> {
    match fork_with_pipe()? {
        (Side::Child, read, write) => {
            drop(read);
            // SAFETY: setsid has no memory effects.
            unsafe { libc::setsid() };
            Ok(Daemon::Child(write))
        }
        (Side::Parent, read, write) => {
            // (a `_` pattern would keep it open until the match ends: no EOF when the child dies)
            drop(write);
            let mut pipe = std::fs::File::from(read);
            let mut word = String::new();
            let _ = pipe.read_to_string(&mut word);
            match word.strip_prefix("ok") {
                Some(_) => std::process::exit(0),
                None if word.is_empty() => {
                    eprintln!("imapfs: the background process died before mounting");
                    std::process::exit(1)
                }
                None => {
                    eprintln!("imapfs: {}", word.trim_end());
                    std::process::exit(1)
                }
            }
        }
    }
}

impl Daemon {
    /// Tell the parent how it went. On success, detach from the terminal; on failure the child
    /// exits here (the parent prints the message), while a foreground caller goes on to print it.
    pub fn report(self, result: Result<(), &str>) {
        let Daemon::Child(fd) = self else { return };
        let mut pipe = std::fs::File::from(fd);
        if let (Err(msg), false) = (result, crate::logging::on_stderr()) {
            log::error!("{msg}");
        }
        let _ = match result {
            Ok(()) => pipe.write_all(b"ok"),
            Err(msg) => pipe.write_all(msg.as_bytes()),
        };
        drop(pipe);
        match result {
            Ok(()) => detach_stdio(),
            Err(_) => std::process::exit(1),
        }
    }
}

pub(crate) fn detach_stdio() {
    // SAFETY: replacing fds 0-2 with /dev/null.
    unsafe {
        let fd = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if fd >= 0 {
            libc::dup2(fd, 0);
            libc::dup2(fd, 1);
            libc::dup2(fd, 2);
            if fd > 2 {
                libc::close(fd);
            }
        }
    }
}

/// Block SIGINT/SIGTERM/SIGHUP/SIGUSR1 in this thread and every thread spawned after it; a
/// dedicated thread waits for them: SIGUSR1 runs `on_refresh` (any number of times), the others
/// run `on_stop` once. Call before starting other threads.
pub fn handle_signals(
    on_stop: impl FnOnce(i32) + Send + 'static,
    on_refresh: impl Fn() + Send + 'static,
) {
    // SAFETY: sigset manipulation on a local set; pthread_sigmask on the calling thread.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGUSR1] {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    std::thread::spawn(move || loop {
        let mut sig = 0;
        // SAFETY: waiting on the set blocked above.
        if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
            return;
        }
        if sig == libc::SIGUSR1 {
            on_refresh();
        } else {
            on_stop(sig);
            return;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountpoint_checks() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        assert!(check_mountpoint(&empty, false).is_ok());
        let file = dir.path().join("f");
        std::fs::write(&file, "").unwrap();
        assert!(check_mountpoint(&file, false)
            .unwrap_err()
            .contains("not a directory"));
        assert!(check_mountpoint(&dir.path().join("missing"), false).is_err());
        let err = check_mountpoint(dir.path(), false).unwrap_err();
        assert!(err.contains("is not empty"), "{err}");
        assert!(check_mountpoint(dir.path(), true).is_ok());
        // /proc is a mount point wherever this runs.
        let err = check_mountpoint(Path::new("/proc"), false).unwrap_err();
        assert!(err.contains("already a mount point (proc"), "{err}");
        assert_eq!(unescape_mountinfo(br"/a\040b\134c\"), b"/a b\\c\\");
    }
}
