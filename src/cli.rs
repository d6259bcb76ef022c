//! Command-line arguments and their parsing (URL, sizes).

use std::path::PathBuf;

use clap::Parser;

use crate::imap::Security;

/// Mount an IMAP account as a read-only filesystem.
///
/// The password comes from IMAPFS_PASSWORD, --password-command, --password-file, or a prompt on
/// the terminal; never from an argument.
#[derive(Parser, Debug)]
#[command(name = "imapfs", version = VERSION, after_help = EXAMPLES)]
pub struct Args {
    /// imaps://USER@HOST[:PORT] (TLS, port 993) or imap://USER@HOST[:PORT] (STARTTLS, port 143)
    pub url: String,

    /// Directory to mount on
    pub mountpoint: PathBuf,

    /// Run CMD with `sh -c` and use the first line of its output as the password
    #[arg(long, value_name = "CMD")]
    pub password_command: Option<String>,

    /// Read the password from the first line of FILE (must not be readable by others: mode 0600)
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,

    /// Log in with OAuth2 (OAUTHBEARER or XOAUTH2): run CMD with `sh -c` and use the first line of
    /// its output as the access token (again whenever the server refuses it or it is 10 minutes old)
    #[arg(long, value_name = "CMD")]
    pub oauth2_token_command: Option<String>,

    /// Trust the certificates in this PEM file too
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,

    /// Do not verify the server's certificate (dangerous: anyone on the path can read your mail)
    #[arg(long)]
    pub insecure: bool,

    /// Stay in the foreground (otherwise go to the background once the mount is up)
    #[arg(short = 'f', long)]
    pub foreground: bool,

    /// Bytes of decoded content kept in memory, e.g. 64M, 1G
    #[arg(long, value_name = "SIZE", default_value = "256M", value_parser = parse_size)]
    pub cache_size: u64,

    /// Most IMAP connections to open at once
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub connections: u16,

    /// Seconds before a connect, read or write to the server is given up
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,

    /// Seconds a folder listing is trusted before the server is asked again
    #[arg(long, value_name = "SECS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub poll_interval: u64,

    /// Allow changes: flags (FLAGS files), folders (mkdir, rmdir, mv). Folders are then opened
    /// with SELECT; without this option nothing on the server is ever changed
    #[arg(long)]
    pub read_write: bool,

    /// Comma-separated: mount options (allow_other, auto_unmount, nonempty, ...) and any option above as name=value
    #[arg(short = 'o', value_name = "OPTIONS")]
    pub options: Vec<String>,

    /// Debug logging (same as RUST_LOG=imapfs=debug)
    #[arg(short = 'd', long)]
    pub debug: bool,

    /// Append log lines to FILE (default: stderr in the foreground, syslog in the background)
    #[arg(long, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
}

/// `--version`: the crate's version and the commit it was built from (build.rs).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("IMAPFS_GIT_COMMIT"),
    ")"
);

const EXAMPLES: &str = "\
Every option may also be given as -o name=value (e.g. -o password_command=CMD,cache_size=64M),
which is what /etc/fstab and mount(8) use. Mount options: allow_other, allow_root,
default_permissions, auto_unmount, nonempty, noexec, noatime; ro/rw/nodev/nosuid/_netdev/user/
noauto/nofail/x-systemd.* are accepted (the mount is always read-only).

Examples:
  IMAPFS_PASSWORD=... imapfs imaps://alice@mail.example.org ~/mail
  imapfs --password-command 'pass mail' imap://bob@127.0.0.1:1143 ~/mail -f
  /etc/fstab: imaps://alice@mail.example.org /home/alice/mail fuse.imapfs noauto,user,_netdev,password_command=pass\\040mail 0 0

Unmount:  fusermount3 -u MOUNTPOINT   (or SIGTERM/SIGINT to the process)
Logs:     background mounts log to syslog (journalctl -t imapfs; without syslog to
          ~/.local/state/imapfs/imapfs.log), or to --log-file FILE";

/// Where to connect, from the URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerUrl {
    pub security: Security,
    pub user: String,
    pub host: String,
    pub port: u16,
}

/// Parse `imaps://USER@HOST[:PORT]` or `imap://USER@HOST[:PORT]`. The user may hold `@` as
/// `%40` (or literally: the last `@` separates the host).
pub fn parse_url(url: &str) -> Result<ServerUrl, String> {
    let (security, rest, default_port) = if let Some(rest) = url.strip_prefix("imaps://") {
        (Security::ImplicitTls, rest, 993)
    } else if let Some(rest) = url.strip_prefix("imap://") {
        (Security::StartTls, rest, 143)
    } else {
        return Err(format!(
            "invalid URL {url:?}: expected imaps://USER@HOST[:PORT] or imap://USER@HOST[:PORT]"
        ));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (user, hostport) = rest
        .rsplit_once('@')
        .ok_or_else(|| format!("invalid URL {url:?}: no user (expected USER@HOST)"))?;
    if user.contains(':') {
        return Err(
            "passwords do not belong in the URL: use IMAPFS_PASSWORD, --password-command or --password-file"
                .to_string(),
        );
    }
    let user =
        percent_decode(user).ok_or_else(|| format!("invalid URL {url:?}: bad %-escape in user"))?;
    if user.is_empty() {
        return Err(format!("invalid URL {url:?}: empty user"));
    }
    let (host, port) = split_host_port(hostport)
        .ok_or_else(|| format!("invalid URL {url:?}: bad host or port"))?;
    Ok(ServerUrl {
        security,
        user,
        host,
        port: port.unwrap_or(default_port),
    })
}

fn split_host_port(s: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (host, port)
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty() || host.contains('/') {
        return None;
    }
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok().filter(|&p| p != 0)?),
        None => None,
    };
    Some((host.to_string(), port))
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Parse a size like `4096`, `64K`, `64M`, `1G`, `1.5G` (powers of 1024; a trailing `B`/`iB`
/// is accepted).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (num, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m' | 'M') => (&t[..t.len() - 1], 1 << 20),
        Some('g' | 'G') => (&t[..t.len() - 1], 1 << 30),
        Some('t' | 'T') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let value: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("invalid size {s:?}: expected e.g. 64M or 1G"))?;
    if !(value.is_finite() && value >= 0.0) {
        return Err(format!("invalid size {s:?}"));
    }
    let bytes = value * mult as f64;
    if bytes > u64::MAX as f64 / 2.0 {
        return Err(format!("size {s:?} is too large"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = parse_url("imaps://alice@mail.example.org").unwrap();
        assert_eq!(
            u,
            ServerUrl {
                security: Security::ImplicitTls,
                user: "alice".into(),
                host: "mail.example.org".into(),
                port: 993
            }
        );
        let u = parse_url("imap://bob%40example.org@127.0.0.1:1143/").unwrap();
        assert_eq!(u.security, Security::StartTls);
        assert_eq!(u.user, "bob@example.org");
        assert_eq!((u.host.as_str(), u.port), ("127.0.0.1", 1143));
        let u = parse_url("imaps://carol@[::1]:9993").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 9993));
        let u = parse_url("imaps://dave@x.org@host").unwrap();
        assert_eq!((u.user.as_str(), u.host.as_str()), ("dave@x.org", "host"));
    }

    #[test]
    fn bad_urls() {
        for bad in [
            "http://a@b",
            "imaps://host",
            "imaps://@host",
            "imaps://a@",
            "imaps://a@host:0",
            "imaps://a@host:99999",
            "imaps://a@host:x",
            "imaps://a:secret@host",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
        // The password must not be echoed back in the error.
        assert!(!parse_url("imaps://a:hunter2@host")
            .unwrap_err()
            .contains("hunter2"));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("-1M").is_err());
    }
}
