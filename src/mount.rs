//! Mounting: fuser configuration from the command line, the session, clean unmount on
//! SIGINT/SIGTERM, and going to the background only once the mount is up.

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

use fuser::{Config, MountOption, SessionACL};

/// fuser configuration from `-o` options. The mount is always read-only, nosuid, nodev.
pub fn config(options: &[String], fsname: &str) -> Result<Config, String> {
    let mut cfg = Config::default();
    cfg.mount_options = vec![
        MountOption::FSName(fsname.to_string()),
        MountOption::Subtype("imapfs".into()),
        MountOption::RO,
        MountOption::NoSuid,
        MountOption::NoDev,
    ];
    for opt in options.iter().flat_map(|o| o.split(',')).map(str::trim) {
        match opt {
            "" | "ro" => {}
            "rw" => return Err("imapfs is read-only: -o rw is not supported".into()),
            "allow_other" => cfg.acl = SessionACL::All,
            "allow_root" => cfg.acl = SessionACL::RootAndOwner,
            "default_permissions" => push(&mut cfg, MountOption::DefaultPermissions),
            "auto_unmount" => push(&mut cfg, MountOption::AutoUnmount),
            "noexec" => push(&mut cfg, MountOption::NoExec),
            "noatime" => push(&mut cfg, MountOption::NoAtime),
            other if other.starts_with("fsname=") || other.starts_with("subtype=") => {
                return Err(format!("-o {other}: set by imapfs itself"))
            }
            other => push(&mut cfg, MountOption::CUSTOM(other.to_string())),
        }
    }
    // Others may read the mount only under the kernel's permission checks (files are 0444
    // and owned by the mounting user, so this keeps the mode bits meaningful).
    if cfg.acl != SessionACL::Owner {
        push(&mut cfg, MountOption::DefaultPermissions);
    }
    // Several workers: a slow fetch must not hold up an unrelated ls or stat.
    cfg.n_threads = Some(8);
    cfg.clone_fd = true;
    Ok(cfg)
}

fn push(cfg: &mut Config, opt: MountOption) {
    if !cfg.mount_options.contains(&opt) {
        cfg.mount_options.push(opt);
    }
}

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

/// Refuse a mountpoint that is missing or not a directory, with a clear message.
pub fn check_mountpoint(path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(format!("mountpoint {} is not a directory", path.display())),
        Err(e) => Err(format!("mountpoint {}: {e}", path.display())),
    }
}

/// The parent's half of going to the background: it waits for the child's word.
pub enum Daemon {
    /// We are the child: report to the parent through this pipe.
    Child(OwnedFd),
    /// Foreground: nobody to report to.
    Foreground,
}

/// Fork; the parent waits until the child reports success (exit 0) or an error line (printed,
/// exit 1), or dies (exit 1). Must run before any thread is started.
pub fn background() -> Result<Daemon, String> {
    let mut fds = [0; 2];
    // SAFETY: plain syscalls on fresh descriptors; single-threaded (documented precondition).
    unsafe {
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            return Err(format!("pipe: {}", std::io::Error::last_os_error()));
        }
        match libc::fork() {
            -1 => Err(format!("fork: {}", std::io::Error::last_os_error())),
            0 => {
                libc::close(fds[0]);
                libc::setsid();
                Ok(Daemon::Child(OwnedFd::from_raw_fd(fds[1])))
            }
            _ => {
                libc::close(fds[1]);
                let mut pipe = std::fs::File::from(OwnedFd::from_raw_fd(fds[0]));
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
}

impl Daemon {
    /// Tell the parent how it went. On success, detach from the terminal; on failure the child
    /// exits here (the parent prints the message), while a foreground caller goes on to print it.
    pub fn report(self, result: Result<(), &str>) {
        let Daemon::Child(fd) = self else { return };
        let mut pipe = std::fs::File::from(fd);
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

fn detach_stdio() {
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
    fn options() {
        let cfg = config(&["allow_other,noatime".into()], "imapfs:a@b").unwrap();
        assert_eq!(cfg.acl, SessionACL::All);
        assert!(cfg.mount_options.contains(&MountOption::DefaultPermissions));
        assert!(cfg.mount_options.contains(&MountOption::NoAtime));
        assert!(cfg.mount_options.contains(&MountOption::RO));
        assert!(config(&["rw".into()], "x").is_err());
        let plain = config(&[], "x").unwrap();
        assert_eq!(plain.acl, SessionACL::Owner);
        assert!(!plain
            .mount_options
            .contains(&MountOption::DefaultPermissions));
    }

    #[test]
    fn mountpoint_checks() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_mountpoint(dir.path()).is_ok());
        let file = dir.path().join("f");
        std::fs::write(&file, "").unwrap();
        assert!(check_mountpoint(&file)
            .unwrap_err()
            .contains("not a directory"));
        assert!(check_mountpoint(&dir.path().join("missing")).is_err());
    }
}
