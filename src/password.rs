//! Where the password comes from: IMAPFS_PASSWORD, a command, a private file, or the terminal.
//! Never from argv; the environment copy is wiped once read.

use std::io::{IsTerminal, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::secret::Secret;

pub const ENV_VAR: &str = "IMAPFS_PASSWORD";

/// Take the password out of the environment, wiping the bytes the kernel shows in
/// `/proc/<pid>/environ`. Call first thing in `main`, before any thread exists.
pub fn take_from_env() -> Option<Secret> {
    let value = std::env::var(ENV_VAR).ok();
    wipe_env_bytes(ENV_VAR);
    std::env::remove_var(ENV_VAR);
    value.map(Secret::new)
}

/// Overwrite the value of `NAME=value` in the process's original environment block: removing
/// the variable only unlinks it, while /proc/<pid>/environ keeps showing the original bytes.
fn wipe_env_bytes(name: &str) {
    extern "C" {
        static mut environ: *mut *mut libc::c_char;
    }
    let prefix = format!("{name}=");
    // SAFETY: single-threaded at this point (documented precondition); `environ` is a
    // NULL-terminated array of NUL-terminated strings owned by the process.
    unsafe {
        let mut p = environ;
        if p.is_null() {
            return;
        }
        while !(*p).is_null() {
            let entry = *p;
            let len = libc::strlen(entry);
            let bytes = std::slice::from_raw_parts(entry as *const u8, len);
            if bytes.starts_with(prefix.as_bytes()) {
                let value = entry.add(prefix.len());
                libc::memset(value as *mut libc::c_void, 0, len - prefix.len());
            }
            p = p.add(1);
        }
    }
}

/// The password from the first source given: environment (already taken), command, file, or
/// an interactive prompt.
pub fn obtain(
    from_env: Option<Secret>,
    command: Option<&str>,
    file: Option<&Path>,
    prompt: &str,
) -> Result<Secret, String> {
    if let Some(s) = from_env {
        return Ok(s);
    }
    if let Some(cmd) = command {
        return from_command(cmd);
    }
    if let Some(path) = file {
        return from_file(path);
    }
    if !std::io::stdin().is_terminal() {
        return Err(format!(
            "no password: set {ENV_VAR}, or use --password-command or --password-file"
        ));
    }
    rpassword::prompt_password(prompt)
        .map(Secret::new)
        .map_err(|e| format!("cannot read the password from the terminal: {e}"))
}

/// Most bytes of a command's output read: a password or token is its first line.
const MAX_OUTPUT: usize = 64 << 10;

fn first_line(bytes: &[u8]) -> Result<Secret, String> {
    let line = match bytes.iter().position(|&b| b == b'\n') {
        Some(k) => &bytes[..k],
        None if bytes.len() >= MAX_OUTPUT => return Err("its first line is too long".into()),
        None => bytes,
    };
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = std::str::from_utf8(line).map_err(|_| "its first line is not valid UTF-8")?;
    if text.is_empty() {
        return Err("its first line is empty".into());
    }
    Ok(Secret::new(text.to_string()))
}

fn from_command(cmd: &str) -> Result<Secret, String> {
    command_first_line(cmd, "--password-command", None)
}

/// Run `cmd` with `sh -c` (stdin and stderr are ours, so it may prompt) and take the first line
/// of its output. At most [`MAX_OUTPUT`] bytes are read; with `limit`, a command still running
/// after it is killed. Errors name `what`, never the output.
pub fn command_first_line(
    cmd: &str,
    what: &str,
    limit: Option<Duration>,
) -> Result<Secret, String> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    let deadline = limit.map(|l| Instant::now() + l);
    let out = match child.stdout.take() {
        Some(stdout) => read_bounded(stdout, deadline),
        None => Err(Some("no output pipe".to_string())),
    };
    // No thread reads the pipe: this may run before the fork into the background.
    let status = match (out.is_ok(), deadline) {
        (true, Some(d)) => wait_until(&mut child, d),
        (true, None) => child.wait().ok(),
        (false, _) => None,
    };
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(match out {
            Err(Some(e)) => format!("{what}: {e}"),
            _ => format!("{what} did not finish within {}s", secs(limit)),
        });
    };
    let out = out.map_err(|e| format!("{what}: {}", e.unwrap_or_default()))?;
    if !status.success() {
        return Err(format!("{what} failed ({status})"));
    }
    first_line(&out).map_err(|e| format!("{what}: {e}"))
}

fn secs(limit: Option<Duration>) -> u64 {
    limit.map_or(0, |l| l.as_secs())
}

/// Read the pipe to its end (or [`MAX_OUTPUT`] bytes), giving up at `deadline` (Err(None)).
fn read_bounded(
    mut pipe: std::process::ChildStdout,
    deadline: Option<Instant>,
) -> Result<Vec<u8>, Option<String>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while out.len() < MAX_OUTPUT {
        if let Some(d) = deadline {
            let left = d.saturating_duration_since(Instant::now());
            let mut pfd = libc::pollfd {
                fd: pipe.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = left.as_millis().min(i32::MAX as u128) as i32;
            // SAFETY: one valid pollfd for the duration of the call.
            let n = unsafe { libc::poll(&mut pfd, 1, ms) };
            if n == 0 {
                return Err(None);
            }
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(Some(format!("cannot read its output: {e}")));
            }
        }
        match pipe.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n.min(MAX_OUTPUT - out.len())]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Some(format!("cannot read its output: {e}"))),
        }
    }
    Ok(out)
}

/// The child's exit status, or None when it has not exited by `deadline`.
fn wait_until(child: &mut std::process::Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return Some(s),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => return None,
        }
    }
}

fn from_file(path: &Path) -> Result<Secret, String> {
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("cannot read password file {}: {e}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(format!(
            "password file {} is readable by others: chmod 600 it",
            path.display()
        ));
    }
    let bytes = std::fs::read(path)
        .map_err(|e| format!("cannot read password file {}: {e}", path.display()))?;
    first_line(&bytes).map_err(|e| format!("password file {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\nignored\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = from_file(&path).unwrap_err();
        assert!(err.contains("chmod 600"), "{err}");
        assert!(!err.contains("s3cret"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(from_file(&path).unwrap().expose(), "s3cret");
    }

    #[test]
    fn command_output_first_line() {
        assert_eq!(
            from_command("printf 'pw1\\npw2\\n'").unwrap().expose(),
            "pw1"
        );
        assert!(from_command("exit 3").is_err());
        assert!(from_command("true").is_err(), "empty output is no password");
        assert_eq!(from_command("printf 'pw\\r\\n'").unwrap().expose(), "pw");
    }

    #[test]
    fn command_is_bounded() {
        let t0 = Instant::now();
        let e = command_first_line("sleep 5", "CMD", Some(Duration::from_millis(300))).unwrap_err();
        assert!(e.contains("did not finish"), "{e}");
        // Output without end: read up to the limit, then killed at the deadline.
        let e = command_first_line("yes x | tr -d '\\n'", "CMD", Some(Duration::from_secs(2)))
            .unwrap_err();
        assert!(e.contains("too long") || e.contains("failed"), "{e}");
        assert!(t0.elapsed() < Duration::from_secs(4));
        let s = command_first_line("echo tok; sleep 0.1", "CMD", Some(Duration::from_secs(5)));
        assert_eq!(s.unwrap().expose(), "tok");
    }
}
