//! Where the password comes from: IMAPFS_PASSWORD, a command, a private file, or the terminal.
//! Never from argv; the environment copy is wiped once read.

use std::io::IsTerminal;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

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

fn first_line(bytes: &[u8]) -> Result<Secret, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "the password is not valid UTF-8")?;
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        return Err("the password is empty".into());
    }
    Ok(Secret::new(line.to_string()))
}

fn from_command(cmd: &str) -> Result<Secret, String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::inherit())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run --password-command: {e}"))?;
    if !out.status.success() {
        return Err(format!("--password-command failed ({})", out.status));
    }
    first_line(&out.stdout).map_err(|e| format!("--password-command: {e}"))
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
    fn command_first_line() {
        assert_eq!(
            from_command("printf 'pw1\\npw2\\n'").unwrap().expose(),
            "pw1"
        );
        assert!(from_command("exit 3").is_err());
        assert!(from_command("true").is_err(), "empty output is no password");
    }
}
