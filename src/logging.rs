//! Where log lines go: stderr in the foreground, syslog (`/dev/log`) once in the background (or,
//! where there is no syslog, `~/.local/state/imapfs/imapfs.log`), or a file given with
//! `--log-file` (either way).
//!
//! Syslog is written by hand (a datagram per line in the RFC 3164 form glibc's syslog() sends,
//! which journald and rsyslog read): a few lines of std, where the `syslog` crate would bring a
//! second logger setup and its own dependencies for the same datagram.

use std::fs::File;
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The socket of the local syslog daemon (or journald's syslog socket).
pub const SYSLOG_SOCKET: &str = "/dev/log";

enum Dest {
    Stderr,
    File(File),
    Syslog(UnixDatagram),
}

static DEST: Mutex<Dest> = Mutex::new(Dest::Stderr);

/// Install the logger: `imapfs=warn` (or `imapfs=debug` with `debug`) unless RUST_LOG says
/// otherwise; lines go to stderr until [`to_file`] or [`to_syslog`].
pub fn init(debug: bool) {
    let default = if debug { "imapfs=debug" } else { "imapfs=warn" };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default))
        .write_style(env_logger::WriteStyle::Never)
        .target(env_logger::Target::Pipe(Box::new(Sink)))
        .format(|buf, record| {
            let text = format!("{} {}: {}", record.level(), record.target(), record.args());
            if is_syslog() {
                // facility daemon (3); severity by level
                let severity = match record.level() {
                    log::Level::Error => 3,
                    log::Level::Warn => 4,
                    log::Level::Info => 6,
                    _ => 7,
                };
                // SAFETY: getpid cannot fail.
                let pid = unsafe { libc::getpid() };
                write!(buf, "<{}>imapfs[{pid}]: {text}", 3 * 8 + severity)
            } else if is_file() {
                let now = chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now())
                    .format("%Y-%m-%dT%H:%M:%S%.3fZ");
                writeln!(buf, "{now} imapfs {text}")
            } else {
                writeln!(buf, "imapfs {text}")
            }
        })
        .init();
}

fn dest() -> std::sync::MutexGuard<'static, Dest> {
    crate::sync::lock(&DEST)
}

fn is_syslog() -> bool {
    matches!(*dest(), Dest::Syslog(_))
}

fn is_file() -> bool {
    matches!(*dest(), Dest::File(_))
}

/// Append log lines to `path` (created 0600 if missing).
pub fn to_file(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("--log-file {}: {e}", path.display()))?;
    *dest() = Dest::File(file);
    Ok(())
}

/// Where a background process logs when there is no syslog socket:
/// `$XDG_STATE_HOME/imapfs/imapfs.log` (by default `~/.local/state/imapfs/imapfs.log`).
pub fn state_log_path() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_STATE_HOME").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => dir,
        _ => PathBuf::from(std::env::var_os("HOME")?).join(".local/state"),
    };
    Some(base.join("imapfs").join("imapfs.log"))
}

/// Log to [`state_log_path`], creating its directory (0700). False if that is impossible.
pub fn to_state_file() -> bool {
    use std::os::unix::fs::DirBuilderExt;
    let Some(path) = state_log_path() else {
        return false;
    };
    let dir_ok = path.parent().is_some_and(|dir| {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .is_ok()
    });
    dir_ok && to_file(&path).is_ok()
}

/// True if something could be listening on the syslog socket.
pub fn syslog_available() -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(SYSLOG_SOCKET).is_ok_and(|m| m.file_type().is_socket())
}

/// Send log lines to syslog. False if there is no syslog socket (the lines would be lost).
pub fn to_syslog() -> bool {
    let Ok(sock) = UnixDatagram::unbound() else {
        return false;
    };
    let listening = sock.connect(SYSLOG_SOCKET).is_ok();
    *dest() = Dest::Syslog(sock);
    listening
}

/// True while lines go to stderr (so an error printed there is not also logged twice).
pub fn on_stderr() -> bool {
    matches!(*dest(), Dest::Stderr)
}

/// env_logger hands each formatted record to one `write_all`, so a write is one line (and for
/// syslog one datagram).
struct Sink;

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut *dest() {
            Dest::Stderr => std::io::stderr().write_all(buf)?,
            Dest::File(f) => f.write_all(buf)?,
            Dest::Syslog(sock) => {
                // A syslog daemon that restarted: reconnect once; a lost line is not an error.
                if sock.send(buf).is_err() && sock.connect(SYSLOG_SOCKET).is_ok() {
                    let _ = sock.send(buf);
                }
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
